"""What `reelsplit run` shows while it works: per file being processed its stage, the percent of the stage's samples
done, the speed (× real time) and the estimated time left for the file and for the batch.

The stages report progress through `pipeline.progress` (samples done of total); a `Board` keeps each file's latest
report beside its StageTimer (flows/steps.py: which stage runs, since when) and does the arithmetic; a view shows it:
on a terminal a rich `Live` table redrawn in place (the run's own lines printed above it), elsewhere (a log, CI,
cron) plain lines at a steady rate with no control characters, and nothing with --quiet, which keeps only errors
and the summary (`echo`). Nothing here writes to the log file (flows/logs.py): the display is the terminal's only.

The estimates: a file's fraction done weighs its stages by their cost per second of audio (STAGE_WEIGHTS, then what
the batch's finished files measured); the file's ETA is its elapsed time × (1 − fraction) / fraction; the batch's is
the audio left (every file's duration, probed up front, × what is left of it) over the audio done per second of the
batch so far (concurrent files included).
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pipeline import progress
from pipeline.report import STAGES as REPORT_STAGES

# The stages a file's fraction is made of, in the report's order less the queue (a wait, not work) and the remux
# (it runs during the QC), and a first guess of their cost in seconds per second of audio on 2 CPU cores with DFN3
# (benchmarks/RESULTS.md, per-stage overhead; words: the peer benchmark's words stage). Replaced by the measured
# costs once a file of the batch is done.
STAGE_ORDER = tuple(s for s in REPORT_STAGES if s not in ("queue", "remux"))
STAGE_WEIGHTS = {"probe": 0.002, "extract": 0.002, "separate": 0.075, "cleanup": 0.005, "vad": 0.006,
                 "loudness": 0.002, "write": 0.012, "words": 0.057, "qc": 0.022}
PLAIN_EVERY_S = 10.0       # a plain progress line per running stage this often (--progress-every)
LIVE_REFRESH_HZ = 4        # redraws per second on a terminal
ERROR_MARKS = ("FAILED", "failed", "error:")   # a line with one of these is shown even with --quiet


# ---------------------------------------------------------------------------------------------------- arithmetic

def stage_fraction(done: int, total: int) -> float | None:
    """The share of a stage's samples done, in [0, 1]; None when the total is unknown (0)."""
    if total <= 0:
        return None
    return min(1.0, max(0.0, done / total))


def file_fraction(weights: dict[str, float], stage: str, within: float | None) -> float | None:
    """The share of a file's work done when `stage` is `within` done (None: just started): the stages before it
    and that part of it, each weighted by its cost. None for a stage outside STAGE_ORDER."""
    if stage not in STAGE_ORDER:
        return None
    costs = [weights.get(s, 0.0) for s in STAGE_ORDER]
    total = sum(costs)
    if total <= 0:
        return None
    k = STAGE_ORDER.index(stage)
    return (sum(costs[:k]) + costs[k] * (within or 0.0)) / total


def speed(audio_s: float, seconds: float) -> float | None:
    """Seconds of audio processed per second of wall time (× real time); None before there is any."""
    if not (audio_s > 0 and seconds > 0) or not math.isfinite(audio_s):
        return None
    return audio_s / seconds


def eta(elapsed: float, fraction: float | None) -> float | None:
    """Seconds left when `fraction` of the work took `elapsed` seconds, at the same pace; None before any."""
    if fraction is None or fraction <= 0 or elapsed <= 0:
        return None
    return elapsed * (1.0 - min(1.0, fraction)) / fraction


def batch_eta(audio_left_s: float, audio_done_s: float, elapsed: float) -> float | None:
    """Seconds left for the batch: the audio left at the pace of the audio done so far (all files together)."""
    pace = speed(audio_done_s, elapsed)
    if pace is None:
        return None
    return max(0.0, audio_left_s) / pace


def clock(seconds: float | None) -> str:
    """H:MM:SS, or -- when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def measured_weights(stage_seconds: dict[str, float], duration_s: float) -> dict[str, float] | None:
    """A finished file's cost of each stage in seconds per second of audio (None without a duration)."""
    if not (duration_s and duration_s > 0 and math.isfinite(duration_s)):
        return None
    return {s: stage_seconds.get(s, 0.0) / duration_s for s in STAGE_ORDER}


# ---------------------------------------------------------------------------------------------------- the board

@dataclass
class Tracked:
    """One file being processed: its StageTimer (flows/steps.py), its latest progress report (stage, done, total)
    and the largest fraction shown so far (a fold-down runs the stages again: the display never goes back)."""

    title: str
    timer: object
    last: tuple[str, int, int] = ("", 0, 0)
    reported_at: float = 0.0
    fraction: float = 0.0
    printed_at: float = 0.0


@dataclass(frozen=True)
class Line:
    """What the view shows for one file."""

    title: str
    stage: str
    percent: float | None
    speed: float | None
    file_eta: float | None


@dataclass
class Board:
    """Every file of a run: durations (probed in the background), the ones being processed, the ones done. Fed
    from the worker threads (`track`, `reporter`, `finish`), read by the view; a lock keeps the maps whole."""

    titles: list[str]
    words: bool = True
    durations: dict[str, float] = field(default_factory=dict)
    active: dict[str, Tracked] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)   # title → its fraction of the batch counted (1 or 0)
    learned: list[dict[str, float]] = field(default_factory=list)
    started: float | None = None       # when the first file started (the batch's pace is from then)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def weights(self) -> dict[str, float]:
        """Each stage's cost per second of audio: the mean of the finished files', else STAGE_WEIGHTS."""
        if self.learned:
            return {s: sum(w[s] for w in self.learned) / len(self.learned) for s in STAGE_ORDER}
        return {s: (0.0 if s == "words" and not self.words else w) for s, w in STAGE_WEIGHTS.items()}

    def track(self, title: str, timer) -> None:
        with self.lock:
            self.active[title] = Tracked(title, timer)
            self.started = timer.started if self.started is None else self.started

    def reporter(self, title: str) -> progress.Progress:
        """The progress callback of `title`'s stages."""
        def report(stage: str, done: int, total: int) -> None:
            tracked = self.active.get(title)
            if tracked is not None:
                tracked.last, tracked.reported_at = (stage, done, total), time.perf_counter()
        return report

    def finish(self, title: str, status: str, stage_seconds: dict[str, float]) -> None:
        """`title` is done: a processed file counts as done audio and teaches the stage costs; a skipped or failed
        one leaves the batch (it says nothing about the pace)."""
        with self.lock:
            self.active.pop(title, None)
            self.finished[title] = 1.0 if status == "ok" else 0.0
            learned = measured_weights(stage_seconds, self.durations.get(title, math.nan)) if status == "ok" else None
            if learned is not None:
                self.learned.append(learned)

    def duration(self, title: str) -> float:
        """The file's seconds of audio; one not (yet) probed counts as the mean of the others."""
        durations = dict(self.durations)      # a copy: the probing thread may be adding to it
        known = [d for d in durations.values() if d > 0]
        got = durations.get(title, math.nan)
        return got if got > 0 else (sum(known) / len(known) if known else 0.0)

    def line(self, tracked: Tracked, now: float) -> Line:
        """One file's stage, percent of the stage, speed of the stage and ETA, as of `now`."""
        timer = tracked.timer
        stage, began = timer.current, getattr(timer, "stage_started", timer.started)
        name, done, total = tracked.last
        within = stage_fraction(done, total) if name == stage and tracked.reported_at >= began else None
        fraction = file_fraction(self.weights, stage, within)
        if fraction is not None:
            tracked.fraction = max(tracked.fraction, fraction)
        duration = self.duration(tracked.title)
        return Line(tracked.title, stage, None if within is None else 100.0 * within,
                    speed((within or 0.0) * duration, now - began),
                    eta(now - timer.started, tracked.fraction) if tracked.fraction > 0 else None)

    def lines(self, now: float) -> list[Line]:
        with self.lock:
            active = list(self.active.values())
        return [self.line(t, now) for t in active]

    def batch(self, now: float) -> tuple[int, float | None]:
        """(files done, ETA of the batch in seconds)."""
        with self.lock:
            active, finished = list(self.active.values()), dict(self.finished)
        left = [t for t in self.titles if t not in finished]
        counted = [t for t in self.titles if finished.get(t, 1.0) > 0]      # skipped and failed files leave
        done_audio = sum(self.duration(t) for t, f in finished.items() if f > 0)
        done_audio += sum(t.fraction * self.duration(t.title) for t in active)
        total = sum(self.duration(t) for t in counted)
        elapsed = now - self.started if self.started is not None else 0.0
        return len(self.titles) - len(left), batch_eta(total - done_audio, done_audio, elapsed)

    def probe_durations(self, paths: dict[str, Path]) -> None:
        """Every file's duration by ffprobe, in the background (a file that cannot be probed counts as 0: it will
        fail at its own probe)."""
        from pipeline.media import probe

        def run() -> None:
            for title, path in paths.items():
                try:
                    self.durations[title] = float(probe(path).duration_s or 0.0)
                except Exception:   # noqa: BLE001 - the file's own probe reports it
                    self.durations[title] = 0.0
        threading.Thread(target=run, name="reelsplit-durations", daemon=True).start()


# ---------------------------------------------------------------------------------------------------- views

def plain_line(line: Line, files_done: int, files: int, batch_left: float | None) -> str:
    """One progress line for a log: ASCII, no control characters."""
    percent = f"{line.percent:5.1f} %" if line.percent is not None else "    - %"
    pace = f"{line.speed:6.1f}x real time" if line.speed is not None else "      - real time"
    return (f"[{line.title}] {line.stage:<9} {percent}  {pace}  ETA file {clock(line.file_eta)}, "
            f"batch {clock(batch_left)} ({files_done} of {files} files done)")


class PlainView:
    """Plain lines at a steady rate: each running stage with progress gets a line every `every` seconds."""

    def __init__(self, board: Board, every: float):
        self.board, self.every = board, max(0.1, every)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="reelsplit-progress", daemon=True)

    def run(self) -> None:
        while not self.stop.wait(min(self.every, 0.5)):
            now = time.perf_counter()
            with self.board.lock:
                active = list(self.board.active.values())
            due = [t for t in active
                   if now - max(t.printed_at, getattr(t.timer, "stage_started", t.timer.started)) >= self.every]
            if not due:
                continue
            lines = [(tracked, self.board.line(tracked, now)) for tracked in due]
            done, left = self.board.batch(now)
            for tracked, line in lines:
                if line.percent is not None:
                    tracked.printed_at = now
                    print(plain_line(line, done, len(self.board.titles), left), flush=True)

    def __enter__(self) -> "PlainView":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class LiveView:
    """A rich Live table redrawn in place on the terminal; what the run prints meanwhile goes above it."""

    def __init__(self, board: Board):
        from rich.console import Console
        from rich.live import Live

        self.board = board
        self.live = Live(get_renderable=self.render, console=Console(), refresh_per_second=LIVE_REFRESH_HZ,
                         transient=True, redirect_stdout=True, redirect_stderr=True)

    def render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = time.perf_counter()
        lines = self.board.lines(now)            # first: they bring each file's fraction up to date
        done, left = self.board.batch(now)
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column, justify in (("file", "left"), ("stage", "left"), ("done", "right"), ("speed", "right"),
                                ("ETA file", "right")):
            table.add_column(column, justify=justify, no_wrap=True)
        for line in lines:
            table.add_row(line.title, line.stage, f"{line.percent:.1f} %" if line.percent is not None else "",
                          f"{line.speed:.1f}× real time" if line.speed is not None else "", clock(line.file_eta))
        batch = Text(f"batch: {done} of {len(self.board.titles)} files done, ETA {clock(left)}", no_wrap=True)
        return Group(table, batch) if table.row_count else batch

    def __enter__(self) -> "LiveView":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)


# ---------------------------------------------------------------------------------------------------- the run's

_board: Board | None = None
_quiet = False


def set_quiet(quiet: bool) -> None:
    """--quiet: from now on `echo` prints only errors (the summary is printed apart)."""
    global _quiet
    _quiet = quiet


def echo(message: str) -> None:
    """Print one of the run's lines (a stage's timing, a skip, a failure); with --quiet only errors."""
    if not _quiet or any(mark in message for mark in ERROR_MARKS):
        print(message, flush=True)


def track(title: str, timer) -> None:
    """Show `title`'s stages (its StageTimer) while it is processed; nothing outside a `showing` block (a Dask
    worker, `reelsplit serve`, tests calling process_reel)."""
    if _board is not None:
        _board.track(title, timer)


@contextlib.contextmanager
def reporting(title: str) -> Iterator[None]:
    """The pipeline's progress reports of this thread go to `title`'s line."""
    if _board is None:
        yield
        return
    with progress.reporting(_board.reporter(title)):
        yield


def finish(title: str, status: str, stage_seconds: dict[str, float]) -> None:
    if _board is not None:
        _board.finish(title, status, stage_seconds)


def mode(quiet: bool) -> str:
    """"quiet", "live" on a terminal that can redraw, else "plain"."""
    if quiet:
        return "quiet"
    from rich.console import Console

    console = Console()
    return "live" if console.is_terminal and not console.is_dumb_terminal else "plain"


@contextlib.contextmanager
def showing(paths: dict[str, Path], *, quiet: bool = False, every: float = PLAIN_EVERY_S, words: bool = True,
            local: bool = True) -> Iterator[Board]:
    """The progress of a run over `paths` (title → file) shown for the block's duration (see the module). Not
    when the files run elsewhere (`local` False: Dask workers, whose reports cannot reach this process)."""
    global _board
    board = Board(list(paths), words=words)
    view = {"live": lambda: LiveView(board), "plain": lambda: PlainView(board, every)}.get(mode(quiet) if local
                                                                                          else "quiet")
    if view is not None:
        board.probe_durations(paths)
    _board = board
    try:
        with view() if view else contextlib.nullcontext():
            yield board
    finally:
        _board = None
