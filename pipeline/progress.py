"""Progress of the long stages in samples: one small callback, `progress(stage, done, total)`, that the stages call
as they go, and nothing about how it is shown (the display is flows/display.py).

The callback is ambient, not a parameter: `reporting(callback)` sets it for the calling thread's context (a
`contextvars.ContextVar`, so each worker thread or Prefect task run has its own), and the stages call `report(...)`,
which is a no-op when nothing is set. Progress is a side channel like logging, it changes no result, and the loops
that know how far they are sit several calls deep (a Demucs group inside a bag inside a separator), so an ambient
callback costs no signature anywhere; a stage that hands work to another (DFN3 as the clean-up) relabels it with
`relabel`. `stage` is the step's own name: extract, separate, cleanup, vad, loudness, write, words. `done` and
`total` are sample frames at the rate the stage works at; `total` 0 means unknown.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Protocol


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int) -> None: ...


def no_progress(stage: str, done: int, total: int) -> None:
    """The default: progress goes nowhere."""


_current: contextvars.ContextVar[Progress] = contextvars.ContextVar("reelsplit_progress", default=no_progress)


def report(stage: str, done: int, total: int) -> None:
    """Tell the current callback that `stage` has processed `done` of `total` sample frames."""
    _current.get()(stage, int(done), int(total))


def current() -> Progress:
    """The callback `report` calls in this context (for work handed to another thread)."""
    return _current.get()


@contextlib.contextmanager
def reporting(callback: Progress) -> Iterator[None]:
    """`report` calls `callback` inside this block (in this thread's context)."""
    token = _current.set(callback)
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def relabel(stage: str) -> Iterator[None]:
    """Reports inside this block are made under `stage` (DFN3 running as the clean-up reports "cleanup")."""
    outer = _current.get()
    with reporting(lambda _stage, done, total: outer(stage, done, total)):
        yield


@contextlib.contextmanager
def share(index: int, count: int) -> Iterator[None]:
    """Reports inside this block are part `index` of `count` equal parts of the work (a Demucs group of a layout,
    a model of a bag): `done` of `total` becomes index × total + done of count × total."""
    outer = _current.get()
    with reporting(lambda stage, done, total: outer(stage, index * total + done, count * total)):
        yield


@contextlib.contextmanager
def also(callback: Progress) -> Iterator[None]:
    """Reports inside this block go to `callback` as well as to the current callback (a second view of the same
    progress: the terminal's display and the Prefect dashboard)."""
    outer = _current.get()

    def both(stage: str, done: int, total: int) -> None:
        outer(stage, done, total)
        callback(stage, done, total)
    with reporting(both):
        yield
