"""Crash safety: `reelsplit run` killed with SIGKILL at different stages of a batch, again and again.

After every kill, each title folder either has a manifest that `reelsplit verify` accepts, or holds nothing under a
final name that is not complete (each WAV has every sample, the deliverable every track, the spotting lists their
last line): the unfinished work exists only under temporary names. A re-run resumes: titles whose manifest is
current are skipped and left untouched (same mtimes), unfinished ones are redone, and the batch ends with exit 0
and every manifest verified.

The CLI runs as a user runs it (`.venv/bin/reelsplit`, an argument list) in its own process group; the kill goes to
the reelsplit process, then to what it leaves behind (ffmpeg children). Runs talk to the session's Prefect test
server instead of starting a temporary one each, which saves ~15 s per run and changes nothing on disk.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import soundfile as sf

from conftest import ROOT, ffprobe, run_cli
from pipeline.manifest import MANIFEST
from pipeline.outputs import LOCK_NAME, PARTIAL_MARK

pytestmark = pytest.mark.slow

REELSPLIT = Path(sys.executable).with_name("reelsplit")
TITLES = ("r1", "r2", "r3")
SECONDS = 4


class Run:
    """`reelsplit run DROP --out OUT --model dfn3 …` in its own process group, its output read line by line."""

    def __init__(self, drop: Path, out: Path, env: dict, *extra: str):
        cmd = [str(REELSPLIT), "run", str(drop), "--out", str(out), "--model", "dfn3", "--workers", "1", *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.seen: list[str] = []
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def until(self, pattern: str, timeout: float = 300) -> bool:
        """Read output until a line matches `pattern` (True) or the output ends (False)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n" + "\n".join(self.seen[-30:]))
            if line is None:
                return False
            self.seen.append(line)
            if re.search(pattern, line):
                return True

    def kill(self) -> None:
        """SIGKILL the reelsplit process, then whatever it started (its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def finish(self, timeout: float = 300) -> int:
        self.until(r"(?!)", timeout)   # read everything
        return self.proc.wait(timeout)

    def lines_of(self, title: str) -> list[str]:
        return [line for line in self.seen if line.startswith(f"[{title}] ")]

    def redid(self, title: str) -> list[str]:
        """The lines of `title` past its probe other than 'skipped': work done again."""
        return [line for line in self.lines_of(title)
                if not line.startswith((f"[{title}] probe ", f"[{title}] skipped: outputs are complete and current"))]


@pytest.fixture(scope="module")
def reels(tmp_path_factory):
    drop = tmp_path_factory.mktemp("crash-drop")
    for seed, title in enumerate(TITLES, start=1):
        subprocess.run([sys.executable, "-m", "flows.cli", "demo-reel", str(drop / f"{title}.mov"),
                        "--seconds", str(SECONDS), "--layout", "stereo", "--seed", str(seed)], cwd=ROOT, check=True,
                       capture_output=True, stdin=subprocess.DEVNULL)
    return drop


@pytest.fixture
def cli_env(harness):
    from prefect.settings import PREFECT_API_URL
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return env


def expected_frames(drop: Path) -> dict[str, int]:
    from pipeline.media import probe
    frames = {}
    for title in TITLES:
        stream = probe(drop / f"{title}.mov").audio[0]
        frames[title] = round(stream.duration_s * stream.sample_rate)
    return frames


def assert_complete(path: Path, frames: int) -> None:
    """A file under its final name is whole: every sample, every track, the last line."""
    if path.suffix == ".wav":
        info = sf.info(str(path))
        assert (info.frames, info.subtype) == (frames, "PCM_24"), (path, info.frames, info.subtype)
    elif path.suffix == ".mov":
        streams = ffprobe(path)["streams"]
        assert [s["codec_type"] for s in streams] == ["video"] + ["audio"] * 4, path
        assert all(abs(float(s["duration"]) - SECONDS) < 0.1 for s in streams if s["codec_type"] == "audio"), path
    elif path.suffix == ".csv":      # the dialogue list, the ADR cue sheet: the header and whole lines
        text = path.read_text(encoding="utf-8")
        header = next(csv.reader(text.splitlines()))
        assert text.endswith("\n") and ("start_s" in header or "Start TC" in header), path
    elif path.suffix == ".json":     # <title>_transcript.json: whole JSON with its lines
        assert "lines" in json.loads(path.read_text(encoding="utf-8")), path
    elif path.suffix == ".srt":
        text = path.read_text(encoding="utf-8")
        assert text == "" or text.endswith("\n"), path
    elif path.suffix == ".vtt":
        assert path.read_text(encoding="utf-8").startswith("WEBVTT"), path
    elif path.suffix == ".ttml":     # whole XML: a cut file does not parse
        assert ET.parse(path).getroot().tag == "{http://www.w3.org/ns/ttml}tt", path
    elif path.suffix == ".edl":
        text = path.read_text(encoding="utf-8")
        assert text.startswith("TITLE:") and text.endswith("\n"), path
    else:
        pytest.fail(f"unexpected output {path}")


def check_out(out: Path, frames: dict[str, int]) -> set[str]:
    """The invariant after a kill; returns the titles that are finished (manifest present and verified)."""
    proc = run_cli("verify", out, timeout=120)
    verdicts = {}
    for line in proc.stdout.splitlines():
        if line.startswith(("ok ", "BAD ")):
            status, rest = line.split(None, 1)
            verdicts[rest.split(":")[0]] = (status, line)
    finished = set()
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "reports"):
        files = [p for p in folder.rglob("*") if p.is_file()]
        hidden = [p.name for p in files if p.name.startswith(".")]
        assert all(n == LOCK_NAME or PARTIAL_MARK in n for n in hidden), hidden
        if (folder / MANIFEST).exists():
            assert verdicts[folder.name][0] == "ok", verdicts[folder.name][1]
            finished.add(folder.name)
        else:
            for p in files:
                if not p.name.startswith("."):
                    assert_complete(p, frames[folder.name])
    return finished


def stamps(out: Path, titles) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for t in titles for p in (out / t).rglob("*")
            if p.is_file() and not p.name.startswith(".")}


# kill points: (the line after which the kill is sent, what is running then)
PLAN = [
    (r"^\[r1\] extract ", "r1 separating"),
    (r"^\[r1\] loudness ", "r1 writing its stems"),
    (r"^\[r1\] write ", "r1 recognising its words (its stems already under their final names)"),
    (r"^\[r1\] words ", "r1 remuxing (its stems and transcript already under their final names)"),
    (r"^\[r2\] probe ", "r1 finished; r2 starting"),
    (r"^\[r2\] remux ", "r2 writing its spotting lists and manifest"),
]


def test_kill_9_at_every_stage_then_resume(reels, cli_env, tmp_path):
    out = tmp_path / "out"
    frames = expected_frames(reels)
    finished: dict[str, dict] = {}     # title → its outputs' mtimes when first seen finished
    rng = random.Random(int(os.environ.get("REELSPLIT_CRASH_SEED", "6")))
    random_delay = rng.uniform(0.0, 2.5)
    plan = PLAN + [(r"^\[r3\] probe ", f"r3, {random_delay:.2f} s after its probe (seeded random)")]

    for pattern, when in plan:
        run = Run(reels, out, cli_env)
        reached = run.until(pattern)
        assert reached, f"the run ended before {when}:\n" + "\n".join(run.seen[-20:])
        if pattern.startswith(r"^\[r3\]"):
            time.sleep(random_delay)
        run.kill()
        # titles finished before this run were skipped, not redone
        for title in finished:
            assert run.redid(title) == [], when
        now = check_out(out, frames)
        assert set(finished) <= now, (when, finished, now)
        for title, before in finished.items():
            assert stamps(out, [title]) == before, f"{title} was touched ({when})"
        for title in now - set(finished):
            finished[title] = stamps(out, [title])
        if when.startswith("r1 finished"):
            assert "r1" in now
        if when.startswith("r2 writing"):
            assert "r2" not in now

    final = Run(reels, out, cli_env)
    assert final.finish() == 0, "\n".join(final.seen[-30:])
    assert check_out(out, frames) == set(TITLES)
    for title, before in finished.items():
        assert stamps(out, [title]) == before, f"{title} was touched by the final run"
        assert final.redid(title) == [] and any("skipped" in line for line in final.lines_of(title))
    verify = run_cli("verify", out, timeout=120)
    assert verify.returncode == 0 and f"{len(TITLES)} of {len(TITLES)} titles verified" in verify.stdout
    assert not [p for p in out.rglob(f"*{PARTIAL_MARK}*")]


def test_kill_during_a_forced_rerun_leaves_no_stale_manifest(reels, cli_env, tmp_path):
    """`--force` rewrites a finished title: its manifest is dropped before the first output is rewritten, so a
    kill half-way leaves a folder that says it is unfinished (not an old manifest over new files), and the
    next plain run redoes it."""
    out = tmp_path / "out"
    frames = expected_frames(reels)
    assert Run(reels, out, cli_env).finish() == 0
    assert check_out(out, frames) == set(TITLES)
    others = stamps(out, ["r2", "r3"])

    forced = Run(reels, out, cli_env, "--force")
    assert forced.until(r"^\[r1\] write ")
    forced.kill()
    assert check_out(out, frames) == {"r2", "r3"}
    assert not (out / "r1" / MANIFEST).exists()

    again = Run(reels, out, cli_env)
    assert again.finish() == 0, "\n".join(again.seen[-30:])
    assert any(line.startswith("[r1] extract ") for line in again.seen)
    assert again.redid("r2") == again.redid("r3") == []
    assert check_out(out, frames) == set(TITLES)
    assert stamps(out, ["r2", "r3"]) == others
