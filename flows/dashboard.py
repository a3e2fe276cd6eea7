"""What a run shows in Prefect's dashboard besides its task runs (one per reel): per reel a progress artifact fed by
the same progress reports as the terminal's display, a table artifact with its QC verdict and key figures, and at
the end of the flow a markdown artifact linking the run's HTML report.

The progress artifact's value is the reel's percent done (the stages weighted by their cost, as the terminal's
display does, flows/display.py) and its description names the stage and its own percent. Updates are throttled:
one per reel at most every `UPDATE_EVERY_S` seconds, and one at each change and each end of a stage, so a long
separation sends a few hundred small requests, not one per block. The dashboard never stops a reel: an API that fails is logged once
and the reel's updates stop. Prefect API used (prefect 3.9.1, prefect/artifacts.py): `create_progress_artifact(
progress, key, description)` → id, `update_progress_artifact(artifact_id, progress, description)`,
`create_table_artifact(table, key, description)`, `create_markdown_artifact(markdown, key, description)`; keys hold
only lowercase letters, digits and dashes.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipeline.report import ReportRow

from .display import STAGE_ORDER, STAGE_WEIGHTS, file_fraction, stage_fraction

log = logging.getLogger("reelsplit.dashboard")

UPDATE_EVERY_S = 2.0      # at most one progress update per reel this often (and one per change of stage)
KEY_MAX = 64              # characters kept of an artifact key (a title can be long)


def artifact_key(prefix: str, title: str) -> str:
    """An artifact key Prefect accepts (lowercase letters, digits, dashes) for `title`: "qc-reel-1-v2" for
    ("qc", "Reel_1 v2"); anything else becomes a dash, runs of dashes one, none at the ends."""
    text = f"{prefix}-{title}".lower()
    key = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]", "-", text)).strip("-")
    return key[:KEY_MAX].rstrip("-") or prefix


@dataclass
class Throttle:
    """Decides which progress reports are sent: the first, each one that changes stage, the one that ends a stage
    (`last`), and otherwise one every `every` seconds (`clock` in seconds)."""

    every: float = UPDATE_EVERY_S
    clock: Callable[[], float] = time.monotonic
    stage: str | None = None
    sent_at: float = -math.inf

    def due(self, stage: str, last: bool = False) -> bool:
        now = self.clock()
        if last or stage != self.stage or now - self.sent_at >= self.every:
            self.stage, self.sent_at = stage, now
            return True
        return False


def in_run() -> bool:
    """True inside a Prefect flow or task run (an artifact belongs to one; outside, there is nothing to show)."""
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def create_progress(percent: float, key: str, description: str):
    """A progress artifact of the current run; None outside a run (no updates then)."""
    from prefect.artifacts import create_progress_artifact

    return create_progress_artifact(progress=percent, key=key, description=description) if in_run() else None


def update_progress(artifact_id, percent: float, description: str) -> None:
    from prefect.artifacts import update_progress_artifact

    update_progress_artifact(artifact_id=artifact_id, progress=percent, description=description)


@dataclass
class ReelProgress:
    """One reel's progress artifact: a progress callback (`pipeline.progress`) that turns (stage, done, total)
    into the reel's percent and sends it, throttled. `create` and `update` are Prefect's (replaced in tests).
    Reports may come from several threads (a stage hands work to another): a lock keeps them in order."""

    title: str
    words: bool = True
    throttle: Throttle = field(default_factory=Throttle)
    create: Callable = create_progress
    update: Callable = update_progress
    artifact_id: object = None
    percent: float = 0.0
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def weights(self) -> dict[str, float]:
        return {s: (0.0 if s == "words" and not self.words else w) for s, w in STAGE_WEIGHTS.items()}

    def start(self) -> "ReelProgress":
        """Create the artifact at 0 % (in the reel's task run, so the dashboard shows it there)."""
        self.send(lambda: setattr(self, "artifact_id", self.create(
            0.0, artifact_key("progress", self.title), f"{self.title}: started")))
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        within = stage_fraction(done, total)
        fraction = file_fraction(self.weights, stage, within)
        with self.lock:
            if fraction is not None:    # a fold-down runs stages again: the bar never goes back
                self.percent = max(self.percent, 100.0 * fraction)
            if self.artifact_id is None or not self.throttle.due(stage, last=within == 1.0):
                return
            step = f"stage {STAGE_ORDER.index(stage) + 1} of {len(STAGE_ORDER)}" if stage in STAGE_ORDER else ""
            shown = f" {100.0 * within:.0f} %" if within is not None else ""
            self.send(lambda: self.update(self.artifact_id, round(self.percent, 1),
                                          f"{self.title}: {stage}{shown} ({step})" if step else
                                          f"{self.title}: {stage}{shown}"))

    def finish(self, row: ReportRow) -> None:
        """The reel's end: 100 % when it was delivered or already current, else where it stopped and why."""
        with self.lock:
            if self.artifact_id is None:
                return
            if row.status == "failed":
                what = f"{self.title}: failed at {row.stage}: {row.error}"[:500]
            else:
                what = f"{self.title}: {row.status}" + (f", QC {row.qc}" if row.qc else "")
                self.percent = 100.0
            self.send(lambda: self.update(self.artifact_id, round(self.percent, 1), what))

    def send(self, call: Callable[[], object]) -> None:
        """Make one API call; the first failure is logged and ends this reel's updates (the reel goes on)."""
        if self.failed:
            return
        try:
            call()
        except Exception as exc:   # noqa: BLE001 - the dashboard is a view: it never fails a reel
            self.failed = True
            log.warning("dashboard: no progress for %s: %s: %s", self.title, type(exc).__name__, exc)


def _figure(value, digits: int = 1):
    """A number for the table (None for NaN: shown empty), rounded."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, digits)
    return value


def qc_table(row: ReportRow) -> list[dict[str, object]]:
    """The reel's QC verdict and key figures as (field, value) rows: the table artifact's content."""
    figures = [
        ("status", row.status), ("qc", row.qc or None), ("qc_reasons", row.qc_reasons or None),
        ("output_lufs", _figure(row.output_lufs)), ("target_lufs", _figure(row.target_lufs)),
        ("true_peak_dbtp", _figure(row.true_peak_dbtp)), ("ceiling_dbtp", _figure(row.ceiling_dbtp)),
        ("speech_pct", _figure(row.speech_pct)), ("qc_events_n", _figure(row.qc_events_n, 0)),
        ("words", _figure(row.words, 0)), ("language", row.language or None), ("layout", row.layout or None),
        ("duration_s", _figure(row.duration_s, 2)), ("total_s", _figure(row.total_s, 2)),
        ("deliverable", row.deliverable or None),
    ]
    if row.status == "failed":
        figures[1:1] = [("stage", row.stage), ("error", row.error)]
    stages = [(f"{stage}_s", round(seconds, 2)) for stage, seconds in row.stage_seconds.items()]
    return [{"field": name, "value": value} for name, value in figures + stages]


def publish_qc(row: ReportRow) -> None:
    """The reel's table artifact ("qc-<title>"); a failing API is logged, never raised."""
    from prefect.artifacts import create_table_artifact

    verdict = row.status + (f", QC {row.qc}" if row.qc else "")
    if not in_run():
        return
    try:
        create_table_artifact(table=qc_table(row), key=artifact_key("qc", row.title),
                              description=f"{row.title} ({Path(row.file).name}): {verdict}")
    except Exception as exc:   # noqa: BLE001 - the dashboard is a view: it never fails a reel
        log.warning("dashboard: no QC table for %s: %s: %s", row.title, type(exc).__name__, exc)


def report_markdown(rows: list[ReportRow], html: Path, csv: Path) -> str:
    """The run's summary for the dashboard: counts, one line per reel, links to the HTML and CSV reports (file://
    links: a browser opens them from the address bar, most will not follow them from an http:// page)."""
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "skipped", "failed")}
    lines = [f"# reelsplit run: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed", "",
             f"- HTML report: [{html.name}]({html.absolute().as_uri()}) (`{html.absolute()}`)",
             f"- CSV report: [{csv.name}]({csv.absolute().as_uri()}) (`{csv.absolute()}`)", "",
             "| reel | status | QC | output LUFS | true peak dBTP |", "|---|---|---|---|---|"]
    for r in rows:
        lufs, peak = _figure(r.output_lufs), _figure(r.true_peak_dbtp)
        lines.append(f"| {r.title} | {r.status} | {r.qc or ''} {r.qc_reasons if r.qc == 'fail' else ''} | "
                     f"{'' if lufs is None else lufs} | {'' if peak is None else peak} |")
    return "\n".join(lines) + "\n"


def publish_report(rows: list[ReportRow], html: Path, csv: Path) -> None:
    """The run's markdown artifact ("reelsplit-report"); a failing API is logged, never raised."""
    from prefect.artifacts import create_markdown_artifact

    if not in_run():
        return
    try:
        create_markdown_artifact(markdown=report_markdown(rows, html, csv), key="reelsplit-report",
                                 description=f"reelsplit report: {html.absolute()}")
    except Exception as exc:   # noqa: BLE001 - the dashboard is a view
        log.warning("dashboard: no report link: %s: %s", type(exc).__name__, exc)
