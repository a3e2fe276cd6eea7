"""What a user sees while a reel runs (issue 17): on a terminal (a pty) the progress table's percentages advance
during the separate stage; in a log (a pipe) plain progress lines with no control characters; with --quiet only
errors and the summary. Each run is the CLI as a user starts it, on a demo reel long enough for several updates
during the separation (DFN3 reads 10 s blocks: a report per block)."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

SECONDS = 60            # six DFN3 blocks of 10 s: six reports during the separation
STYLE = re.compile(r"\x1b\[[0-9;]*m")                          # colours and bold: removed
MOVES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")   # cursor moves, erasures: a new line

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reel(tmp_path_factory) -> Path:
    from pipeline.training.demo import make_demo_reel

    return make_demo_reel(tmp_path_factory.mktemp("progress") / "long.mov", seconds=SECONDS, layout="stereo",
                          seed=5).path


def run_in_pty(args: list[str], timeout: float = 600) -> tuple[int, str]:
    """The CLI on a pseudo-terminal 140 columns wide (rich sees a terminal); its exit code and everything it
    wrote, control sequences included."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 140, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", PYTHONUNBUFFERED="1")
    for name in ("NO_COLOR", "TTY_COMPATIBLE", "FORCE_COLOR", "COLUMNS", "LINES"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:         # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def screens(raw: str) -> list[str]:
    """The text lines a terminal would have shown at some moment, control sequences removed."""
    return [line for line in re.split(r"[\r\n]+", MOVES.sub("\n", STYLE.sub("", raw))) if line.strip()]


def test_terminal_shows_separate_percentages_advancing(reel, tmp_path):
    code, raw = run_in_pty(["run", reel, "--out", tmp_path / "out", "--no-transcribe"])
    lines = screens(raw)
    assert code == 0, "\n".join(lines[-40:])
    assert "\x1b[" in raw                               # redrawn in place: a live display, not plain lines
    timing = next(i for i, line in enumerate(lines) if re.search(r"\[long\] separate\s+\d+\.\d\d s", line))
    percents = [float(m.group(1)) for line in lines[:timing]
                if (m := re.search(r"long\s+separate\s+(\d+\.\d) %", line))]
    distinct = sorted(set(percents))
    assert len(distinct) >= 3 and distinct[0] < 50, percents       # several updates during the stage
    assert percents == sorted(percents), percents                  # never going back
    assert any(re.search(r"separate\s+\d+\.\d %\s+\d+\.\d× real time\s+\d:\d\d:\d\d", line) for line in lines)
    assert any(re.search(r"batch: 0 of 1 files done, ETA \d:\d\d:\d\d", line) for line in lines)
    assert any(line.startswith("reelsplit: 1 ok, 0 skipped, 0 failed") for line in lines)


def test_log_output_has_progress_lines_and_no_control_characters(reel, tmp_path):
    proc = run_cli("run", reel, "--out", tmp_path / "out", "--no-transcribe", "--progress-every", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert "\x1b" not in stream and "\r" not in stream
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", stream)
    progress = re.findall(r"^\[long\] separate +(\d+\.\d) % +\d+\.\d+x real time +ETA file \d:\d\d:\d\d, "
                          r"batch \d:\d\d:\d\d \(0 of 1 files done\)$", proc.stdout, re.M)
    assert len(progress) >= 2 and [float(p) for p in progress] == sorted(float(p) for p in progress), proc.stdout
    # the stage lines with their timings stay, one per stage
    for stage in ("extract", "separate", "vad", "loudness", "write", "qc"):
        assert len(re.findall(rf"^\[long\] {stage} +\d+\.\d\d s$", proc.stdout, re.M)) == 1, stage
    log = (tmp_path / "out" / "reports" / "reelsplit.log").read_text(encoding="utf-8")
    assert "real time" not in log and " % " not in log          # the progress display never reaches the log


def test_quiet_keeps_only_errors_and_the_summary(reel, tmp_path):
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"\x00\x00\x00\x18ftypqt  " + bytes(range(256)) * 4)
    proc = run_cli("run", reel, broken, "--out", tmp_path / "out", "--no-transcribe", "--progress-every", "1",
                   "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("[long]")] == []             # no stage lines, no progress
    assert [line for line in lines if line.startswith("[broken]")] == [
        next(line for line in lines if line.startswith("[broken] FAILED at probe: "))]  # the error, once
    start = lines.index("reelsplit: 1 ok, 0 skipped, 1 failed; QC: 0 fail")
    assert all(line.startswith("[broken] FAILED") for line in lines[:start]), lines   # nothing else before it
    assert lines[-1].startswith("report (HTML): ")
