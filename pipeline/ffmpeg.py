"""The one ffmpeg/ffprobe runner: every call in reelsplit goes through `run` or `run_json`.

Commands are argument lists (usually compiled by typed-ffmpeg), never shell strings; they are logged with
`shlex.join`, stdin is closed unless we feed it, stderr is decoded with errors="replace", and a non-zero
exit raises `FfmpegError` carrying the last line ffmpeg printed.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from .errors import FfmpegError

log = logging.getLogger(__name__)

# Environment variables that override the binaries found on PATH (as ffmpeg-normalize does).
FFMPEG_ENV = "REELSPLIT_FFMPEG"
FFPROBE_ENV = "REELSPLIT_FFPROBE"


@lru_cache(maxsize=None)
def find_binary(name: str) -> str:
    """Path of `ffmpeg` or `ffprobe`: the override variable first, then PATH.

    Raises FfmpegError with the install command when neither finds it.
    """
    env = FFMPEG_ENV if name == "ffmpeg" else FFPROBE_ENV
    override = os.environ.get(env)
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise FfmpegError(f"{env}={override} is not an executable file")
    found = shutil.which(name)
    if not found:
        raise FfmpegError(
            f"{name} not found on PATH: install it (Debian: apt-get install -y ffmpeg) or set {env}"
        )
    return found


def _resolve(cmd: Sequence[str]) -> list[str]:
    cmd = [str(part) for part in cmd]
    if cmd and cmd[0] in ("ffmpeg", "ffprobe"):
        cmd[0] = find_binary(cmd[0])
    return cmd


def last_error_line(stderr: str) -> str:
    """The most useful line of ffmpeg's stderr: the last non-empty one."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def run(
    cmd: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float | None = None,
    path: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run an ffmpeg/ffprobe argument list to completion and return the completed process.

    `path` names the file the command concerns, for the error message. stdout is captured as bytes.
    """
    cmd = _resolve(cmd)
    log.debug("run: %s", shlex.join(cmd))
    try:
        proc = subprocess.run(
            cmd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FfmpegError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s", path) from exc
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", errors="replace")
        log.debug("stderr of failed command:\n%s", stderr)
        raise FfmpegError(
            f"{Path(cmd[0]).name} exited with {proc.returncode}: {last_error_line(stderr)}", path
        )
    return proc


def run_json(cmd: Sequence[str], *, timeout: float | None = 60, path: Path | None = None) -> dict:
    """Run ffprobe (or any command printing JSON) and parse its stdout."""
    proc = run(cmd, timeout=timeout, path=path)
    try:
        return json.loads(proc.stdout.decode("utf-8", errors="replace") or "{}")
    except json.JSONDecodeError as exc:
        raise FfmpegError(f"ffprobe printed invalid JSON: {exc}", path) from exc


def add_output_options(cmd: Sequence[str], options: Sequence[tuple[str, str]]) -> list[str]:
    """Insert repeated output options (`-metadata:s:a:0 title=…`, `-metadata:s:a:0 language=…`) before the
    output filename of a compiled single-output command. typed-ffmpeg takes options as a dict, which cannot
    repeat a key; ffmpeg needs the key repeated for several metadata entries on one stream.
    """
    cmd = list(cmd)
    extra = [part for key, value in options for part in (key, value)]
    return cmd[:-1] + extra + cmd[-1:]


def _watch(proc: subprocess.Popen, timeout: float | None) -> subprocess.Popen:
    """Kill `proc` once `timeout` seconds have passed, so a hung ffmpeg cannot block the thread reading its
    stdout or writing its stdin (where `communicate`'s own timeout never comes into play); `finish` then
    reports the timeout."""
    proc.watchdog_fired = threading.Event()
    proc.watchdog = None
    if timeout is not None:
        def expire() -> None:
            proc.watchdog_fired.set()
            proc.kill()
        proc.watchdog = threading.Timer(timeout, expire)
        proc.watchdog.daemon = True
        proc.watchdog.start()
    return proc


def popen_reader(cmd: Sequence[str], *, timeout: float | None = None) -> subprocess.Popen:
    """Start a command whose stdout we read as a stream (raw PCM); the caller must `finish` it. It is killed
    after `timeout` seconds."""
    cmd = _resolve(cmd)
    log.debug("stream: %s", shlex.join(cmd))
    return _watch(subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ), timeout)


def popen_writer(cmd: Sequence[str], *, timeout: float | None = None) -> subprocess.Popen:
    """Start a command we feed through stdin (raw PCM in); the caller must `finish` it. It is killed after
    `timeout` seconds."""
    cmd = _resolve(cmd)
    log.debug("stream: %s", shlex.join(cmd))
    return _watch(subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ), timeout)


def finish(proc: subprocess.Popen, *, timeout: float | None = None, path: Path | None = None) -> str:
    """Wait for a streaming process, raising FfmpegError on a non-zero exit or a timeout (this wait's own, or
    the watchdog's from `popen_reader`/`popen_writer`)."""
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # we already closed it after feeding; communicate() must not flush it
    watchdog = getattr(proc, "watchdog", None)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise FfmpegError(f"ffmpeg timed out after {timeout:.0f} s", path) from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if watchdog is not None and proc.watchdog_fired.is_set():
        raise FfmpegError(f"ffmpeg timed out after {watchdog.interval:.0f} s", path)
    if proc.returncode != 0:
        text = (stderr or b"").decode("utf-8", errors="replace")
        log.debug("stderr of failed command:\n%s", text)
        raise FfmpegError(f"ffmpeg exited with {proc.returncode}: {last_error_line(text)}", path)
    return (stderr or b"").decode("utf-8", errors="replace")
