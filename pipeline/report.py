"""Per-file result rows → the run's CSV (`OUT/reports/<run>.csv` and `latest.csv`) and an HTML table."""
from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from .outputs import write_text_atomic

STAGES = ("probe", "extract", "separate", "cleanup", "loudness", "write", "remux", "qc")


@dataclass
class ReportRow:
    """One input file's outcome. Levels in LUFS, peaks in dBTP/dBFS, times in seconds."""

    file: str
    status: str = "failed"             # ok | failed | skipped
    error: str = ""
    stage: str = ""                    # where it failed
    title: str = ""
    duration_s: float = math.nan
    sample_rate: int = 0
    channels: int = 0
    layout: str = ""
    model: str = ""
    cleanup: str = ""
    profile: str = ""
    input_lufs: float = math.nan
    output_lufs: float = math.nan
    target_lufs: float = math.nan
    dx_lufs: float = math.nan
    me_lufs: float = math.nan
    true_peak_dbtp: float = math.nan   # max over every written output
    ceiling_dbtp: float = math.nan
    lra_lu: float = math.nan
    null_residual_dbfs: float = math.nan
    gain_db: float = math.nan
    limiter_db: float = math.nan
    deliverable: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_s: float = math.nan
    rtf: float = math.nan              # processing seconds per second of audio

    def as_flat(self) -> dict:
        flat = {k: v for k, v in asdict(self).items() if k != "stage_seconds"}
        for stage in STAGES:
            flat[f"{stage}_s"] = round(self.stage_seconds.get(stage, math.nan), 3)
        return {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v) for k, v in flat.items()}

    @staticmethod
    def from_flat(data: dict) -> "ReportRow":
        known = {f.name for f in fields(ReportRow)}
        row = ReportRow(**{k: v for k, v in data.items() if k in known})
        row.stage_seconds = {s: float(data[f"{s}_s"]) for s in STAGES if f"{s}_s" in data}
        return row


def write_reports(rows: list[ReportRow], reports_dir: Path, run_id: str) -> tuple[Path, Path]:
    """Write `<run_id>.csv`, `latest.csv`, `<run_id>.html` and `latest.html`; returns (csv, html)."""
    frame = pd.DataFrame([r.as_flat() for r in rows])
    csv_text = frame.to_csv(index=False)
    page = _html(frame, run_id)
    csv_path, html_path = reports_dir / f"{run_id}.csv", reports_dir / f"{run_id}.html"
    for path, text in ((csv_path, csv_text), (reports_dir / "latest.csv", csv_text),
                       (html_path, page), (reports_dir / "latest.html", page)):
        write_text_atomic(path, text)
    return csv_path, html_path


def _html(frame: pd.DataFrame, run_id: str) -> str:
    cols = ["file", "status", "error", "model", "profile", "duration_s", "input_lufs", "output_lufs",
            "target_lufs", "true_peak_dbtp", "ceiling_dbtp", "dx_lufs", "me_lufs", "null_residual_dbfs",
            "gain_db", "limiter_db", "total_s", "rtf"]
    table = frame[[c for c in cols if c in frame]].to_html(index=False, na_rep="", escape=True,
                                                            classes="runs", border=0)
    counts = frame["status"].value_counts().to_dict() if "status" in frame else {}
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>reelsplit run {html.escape(run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table.runs{{border-collapse:collapse;font-size:13px}}
table.runs td,table.runs th{{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}}
table.runs td:first-child,table.runs td:nth-child(2),table.runs td:nth-child(3){{text-align:left}}</style></head>
<body><h1>reelsplit run {html.escape(run_id)}</h1><p>{html.escape(summary)}</p>{table}</body></html>
"""
