"""Resources running out or misbehaving: a full disk, a hanging ffmpeg, an input still being copied.

Each case asserts what a user sees: the file's report row says `failed` with one line naming the reason, its
title folder holds nothing that looks delivered (no output under a final name, no temporary file), and the
next file of the batch is delivered complete (its manifest verifies). Batches run in-process under the session's
Prefect test harness; the full disk is injected (`OSError(ENOSPC)` from fsync, as ext4 and NFS report it) and,
where the test may mount one, real (a 4 MiB tmpfs).
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

import hostile_corpus
from pipeline import outputs
from pipeline.audio import write_wav
from pipeline.errors import FfmpegError, MediaError, TransientInputError
from pipeline.manifest import verify

ENOSPC_TEXT = os.strerror(errno.ENOSPC)   # "No space left on device"


def tone(path: Path, seconds: float, seed: int = 0) -> Path:
    """A stereo 48 kHz 24-bit WAV (written by soundfile, not by the code under test): a tone and a little noise
    at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 48000)) / 48000
    x = 0.1 * np.sin(2 * np.pi * (220 + 55 * seed) * t)[:, None] + 0.01 * rng.standard_normal((t.size, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, 48000, subtype="PCM_24")
    return path


def _setup():
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile
    return resolve("dfn3"), Settings.load(), load_profile("ebu-r128")


def run_batch(inputs, out: Path, **kwargs):
    """The flow in-process; returns (rows by file name, what it printed)."""
    from flows.reel import RunOptions, run
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = run(list(inputs), out, *_setup(), RunOptions(**kwargs))
    return {Path(r.file).name: r for r in summary.rows}, printed.getvalue()


def leftovers(folder: Path) -> list[str]:
    """Files under a title folder other than its lock: outputs under final names and temporary files alike."""
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != outputs.LOCK_NAME)


def assert_failed_cleanly(row, stage: str | set, words: str, printed: str, out: Path) -> None:
    assert row.status == "failed" and row.stage in ({stage} if isinstance(stage, str) else stage), (row.stage, row.error)
    assert words in row.error and "\n" not in row.error and not row.error.startswith("internal error"), row.error
    assert sum(f"FAILED at {row.stage}: {row.file}: {row.error}" in line for line in printed.splitlines()) == 1
    assert leftovers(out / row.title) == []


def assert_delivered(row, out: Path) -> None:
    assert row.status == "ok", (row.stage, row.error)
    assert verify(out / row.title) == []


# --- disk full, injected -------------------------------------------------------------------------------------

# title → (the output whose fsync reports ENOSPC, the stage the row names)
ENOSPC_AT = {
    "stem": ("stem_DX.wav", "write"),            # the second stem written (the MIX before it is already in place)
    "remux": ("remux.mov", "remux"),             # the deliverable, after every stem was written
    "spotting": ("spotting_dialogue.csv", "qc"),
    "last": ("manifest.json", "qc"),             # the last file of a title
}


@pytest.fixture(scope="module")
def enospc_batch(harness, tmp_path_factory):
    """One batch: four files that each hit a full disk at a different output, then one that has room."""
    root = tmp_path_factory.mktemp("enospc")
    drop = root / "drop"
    drop.mkdir()
    for i, title in enumerate(ENOSPC_AT):
        hostile_corpus.movie(drop / f"{title}.mov", seed=i)
    hostile_corpus.movie(drop / "z_fine.mov", seed=7)
    real_fsync = outputs.fsync_path
    injected = []

    def fsync_or_enospc(path):
        path = Path(path)
        name = ENOSPC_AT.get(path.parent.name, ("",))[0]
        if name and path.name.startswith(f".{Path(name).stem}{outputs.PARTIAL_MARK}"):   # its temporary file
            injected.append(name)
            raise OSError(errno.ENOSPC, ENOSPC_TEXT)
        return real_fsync(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outputs, "fsync_path", fsync_or_enospc)
        rows, printed = run_batch([drop], root / "out")
    return dict(rows=rows, printed=printed, out=root / "out", injected=injected)


@pytest.mark.slow
@pytest.mark.parametrize("title", list(ENOSPC_AT))
def test_disk_full_fails_the_file_cleanly(enospc_batch, title):
    """The file fails at the stage that was writing, with 'No space left on device' naming the output, and
    nothing it wrote before (stems already renamed into place included) is left behind."""
    name, stage = ENOSPC_AT[title]
    assert name in enospc_batch["injected"]
    row = enospc_batch["rows"][f"{title}.mov"]
    assert_failed_cleanly(row, stage, f"cannot write {name}: {ENOSPC_TEXT}", enospc_batch["printed"],
                          enospc_batch["out"])


@pytest.mark.slow
def test_disk_full_the_batch_goes_on(enospc_batch):
    rows = enospc_batch["rows"]
    assert list(rows) == sorted(f"{t}.mov" for t in ENOSPC_AT) + ["z_fine.mov"]   # the good file came last
    assert_delivered(rows["z_fine.mov"], enospc_batch["out"])
    assert (enospc_batch["out"] / "z_fine" / "z_fine.mov").is_file()


# --- disk full, for real: a small tmpfs ----------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs, mounted for the test (root only; skipped where mounting is not allowed)."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.slow
def test_real_full_disk_fails_the_file_and_frees_its_space(harness, tmp_path, small_tmpfs):
    """8 s of stereo is 2.3 MB per 24-bit stem (more for the work files beside them): 4 MiB runs out while the
    file is worked on, at whichever stage writes the byte that does not fit. The file fails in one line, all it
    wrote is removed, and that leaves room for the next file (1 s)."""
    big, small = tone(tmp_path / "in" / "a_big.wav", 8.0, seed=1), tone(tmp_path / "in" / "b_small.wav", 1.0, seed=2)
    out = small_tmpfs / "out"
    rows, printed = run_batch([big, small], out)
    working = {"extract", "separate", "cleanup", "vad", "loudness", "write", "remux", "qc"}
    assert_failed_cleanly(rows["a_big.wav"], working, ENOSPC_TEXT, printed, out)
    assert_delivered(rows["b_small.wav"], out)
    assert sf.info(str(out / "b_small" / "b_small_MIX.wav")).frames == 48000


# --- ffmpeg hanging --------------------------------------------------------------------------------------------

def _ffmpeg_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE and "ffmpeg" in " ".join(p.cmdline())]


def test_ffmpeg_reading_a_fifo_nobody_writes_is_killed_at_the_timeout(tmp_path):
    """ffmpeg blocks opening a FIFO without a writer and prints nothing: the read of its output must not block
    past the limit. It is killed at the limit (not before), and the error says so in one line."""
    from pipeline.audio import extract
    from pipeline.layout import LAYOUTS
    from pipeline.master import Master
    from pipeline.media import AudioStream

    fifo = tmp_path / "stalled.wav"
    os.mkfifo(fifo)
    stream = AudioStream(0, 0, "pcm_s24le", 2, "stereo", 48000, 1.0, None, None)
    master = Master(LAYOUTS["stereo"], ((stream, 0), (stream, 1)))
    started = time.monotonic()
    with pytest.raises(FfmpegError) as caught:
        extract(fifo, master, timeout=1.5)
    waited = time.monotonic() - started
    assert str(caught.value) == "ffmpeg timed out after 2 s" and caught.value.path == fifo
    assert 1.5 <= waited < 30, waited
    assert _ffmpeg_children() == []


@pytest.fixture
def hanging_ffmpeg(tmp_path, monkeypatch):
    """REELSPLIT_FFMPEG → a stand-in that hangs (never reads, never writes) when a file name on its command line
    contains 'STALL', and runs the real ffmpeg otherwise."""
    from pipeline import ffmpeg as runner
    real = runner.find_binary("ffmpeg")
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport os, sys, time\n"
                    "if any('STALL' in os.path.basename(a) for a in sys.argv[1:]):\n    time.sleep(600)\n"
                    f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n")
    fake.chmod(0o755)
    monkeypatch.setenv(runner.FFMPEG_ENV, str(fake))
    runner.find_binary.cache_clear()
    yield fake
    runner.find_binary.cache_clear()


def test_ffmpeg_hanging_while_we_write_is_killed_at_the_timeout(tmp_path, hanging_ffmpeg):
    """A writer that never reads its input fills the pipe: writing must not block forever. No file remains."""
    audio = np.zeros((48000, 2), np.float32)   # 384 kB, more than a pipe buffer holds
    target = tmp_path / "out" / "STALL_MIX.wav"
    with pytest.raises(FfmpegError, match=r"^ffmpeg timed out after 2 s$"):
        write_wav(target, audio, 48000, "stereo", timeout=1.5)
    assert list(target.parent.iterdir()) == []
    assert _ffmpeg_children() == []


@pytest.mark.slow
def test_hanging_ffmpeg_in_a_batch_fails_that_file_at_its_time_limit(harness, tmp_path, hanging_ffmpeg, monkeypatch):
    """Each file's ffmpeg limit comes from its probed duration (flows.steps.ffmpeg_timeout); here the limit is
    shortened to 4 s so the test is quick. The hanging file fails at extract in one line; the next is delivered."""
    from flows import steps

    asked = []
    monkeypatch.setattr(steps, "ffmpeg_timeout", lambda duration: asked.append(duration) or 4.0)
    inputs = [tone(tmp_path / "in" / "STALL.wav", 1.0, seed=1), tone(tmp_path / "in" / "next.wav", 1.5, seed=2)]
    rows, printed = run_batch(inputs, tmp_path / "out")
    assert sorted(asked) == sorted(r.duration_s for r in rows.values()) == [1.0, 1.5]
    row = rows["STALL.wav"]
    assert_failed_cleanly(row, "extract", "ffmpeg timed out after 4 s", printed, tmp_path / "out")
    assert row.error == "ffmpeg timed out after 4 s"
    assert_delivered(rows["next.wav"], tmp_path / "out")


def test_time_limit_grows_with_the_duration():
    """A two-hour reel gets more than its running time twice over; a short one still gets a minute."""
    from flows.steps import ffmpeg_timeout
    assert ffmpeg_timeout(7200.0) >= 2 * 7200.0 and ffmpeg_timeout(1.0) >= 60.0
    assert ffmpeg_timeout(7200.0) - ffmpeg_timeout(3600.0) >= 3600.0


# --- an input still being copied into the drop folder --------------------------------------------------------

class SlowCopy:
    """Copies `source` to `target` a kilobyte every 50 ms (a slow network copy) until `finish()`, which writes
    the rest at once and closes the file."""

    def __init__(self, source: Path, target: Path):
        self.data, self.target = source.read_bytes(), target
        self.finished, self.closed = threading.Event(), threading.Event()
        target.write_bytes(self.data[:4096])
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self):
        done = 4096
        with open(self.target, "ab") as fh:
            while not self.finished.wait(0.05) and done < len(self.data) - 1024:
                fh.write(self.data[done:done + 1024])
                fh.flush()
                done += 1024
            if self.finished.is_set():
                fh.write(self.data[done:])
        self.closed.set()

    def finish(self):
        self.finished.set()
        self.closed.wait(30)


@pytest.fixture
def counted_checks(monkeypatch):
    """Spy on the task's settle check: every call's outcome, in order; hooks[(name, n)] runs after the n-th look
    that found file `name` changing."""
    from flows import reel
    calls, hooks = [], {}

    def check(path):
        try:
            reel_check(path)
        except TransientInputError:
            calls.append((Path(path).name, "changing"))
            hooks.get((Path(path).name, calls.count((Path(path).name, "changing"))), lambda: None)()
            raise
        calls.append((Path(path).name, "settled"))

    reel_check = reel.check_settled
    monkeypatch.setattr(reel, "check_settled", check)
    return calls, hooks


def test_retries_back_off_and_only_transient_errors_are_retried():
    """The task is configured to retry with growing delays, and its retry condition accepts only
    TransientInputError: a permanent MediaError (a broken file) is never retried."""
    from prefect.states import Completed, Failed
    from flows.reel import reel_task, retry_if_transient

    delays = reel_task.retry_delay_seconds
    assert reel_task.retries >= 3 and len(delays) == reel_task.retries
    assert all(later > earlier for earlier, later in zip(delays, delays[1:]))

    def failed_with(exc):
        return Failed(data=exc)

    assert retry_if_transient(reel_task, None, failed_with(TransientInputError("still being written", "x.mov")))
    assert not retry_if_transient(reel_task, None, failed_with(MediaError("not a readable media file", "x.mov")))
    assert not retry_if_transient(reel_task, None, failed_with(RuntimeError("a bug")))
    assert not retry_if_transient(reel_task, None, Completed(data=1))


@pytest.mark.slow
def test_file_still_being_copied_is_retried_until_complete(harness, tmp_path, monkeypatch, counted_checks):
    """While the copy grows, the task raises TransientInputError and Prefect runs it again after a delay (shortened
    here); once the copy is complete the file is processed whole. A broken file beside it is tried once."""
    from flows.reel import reel_task

    calls, hooks = counted_checks
    monkeypatch.setattr(reel_task, "retry_delay_seconds", [0.2, 0.4, 0.8, 1.6, 3.2])
    source = tone(tmp_path / "src" / "copying.wav", 1.5, seed=3)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "broken.wav").write_bytes(b"RIFF" + os.urandom(2000))
    os.utime(drop / "broken.wav", (time.time() - 60, time.time() - 60))   # settled long ago
    copy = SlowCopy(source, drop / "copying.wav")
    hooks[("copying.wav", 2)] = copy.finish     # the copy completes after the second look that saw it change
    try:
        rows, printed = run_batch([drop], tmp_path / "out")
    finally:
        copy.finish()
    assert [c for c in calls if c[0] == "copying.wav"] == [("copying.wav", "changing")] * 2 + [("copying.wav", "settled")]
    assert [c for c in calls if c[0] == "broken.wav"] == [("broken.wav", "settled")]
    assert sum("[copying] still being written" in line and "trying again later" in line
               for line in printed.splitlines()) == 2
    row = rows["copying.wav"]
    assert_delivered(row, tmp_path / "out")
    assert sf.info(str(tmp_path / "out" / "copying" / "copying_MIX.wav")).frames == sf.info(str(source)).frames
    broken = rows["broken.wav"]
    assert (broken.status, broken.stage) == ("failed", "probe") and "not a readable media file" in broken.error


@pytest.mark.slow
def test_file_that_never_stops_growing_fails_after_the_retries(harness, tmp_path, monkeypatch, counted_checks):
    from flows.reel import reel_task

    calls, _ = counted_checks
    monkeypatch.setattr(reel_task, "retries", 2)
    monkeypatch.setattr(reel_task, "retry_delay_seconds", [0.1, 0.2])
    source = tone(tmp_path / "src" / "endless.wav", 30.0, seed=4)   # far more than the copy gets through
    drop = tmp_path / "drop"
    drop.mkdir()
    tone(drop / "steady.wav", 1.0, seed=5)
    os.utime(drop / "steady.wav", (time.time() - 60, time.time() - 60))
    copy = SlowCopy(source, drop / "endless.wav")
    try:
        rows, printed = run_batch([drop], tmp_path / "out")
    finally:
        copy.finish()
    assert [c for c in calls if c[0] == "endless.wav"] == [("endless.wav", "changing")] * 3
    row = rows["endless.wav"]
    assert_failed_cleanly(row, "input", "still being written", printed, tmp_path / "out")
    assert row.error.endswith("(still changing after 3 tries)")
    assert_delivered(rows["steady.wav"], tmp_path / "out")
