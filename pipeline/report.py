"""Per-file result rows → the run's CSV (`OUT/reports/<run>.csv` and `latest.csv`) and an HTML table."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from . import excerpts, htmlreport
from .outputs import write_text_atomic

# the stages timed per reel, in the order they run; `queue` is the wait for the device's turn before the separation
# (flows.steps.device_turn: one reel at a time on a GPU), 0 or absent when there was none
STAGES = ("probe", "extract", "queue", "separate", "cleanup", "vad", "loudness", "write", "words", "remux", "qc")


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
    tracks: str = ""                   # what was processed: "a:0 5.1", or assembled tracks and what was not
    start_tc: str = ""                 # the source timecode the outputs start at (HH:MM:SS:FF, ';' drop frame)
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
    qc: str = ""                       # pass | fail (ok files only)
    qc_reasons: str = ""               # each failed check, "measured vs allowed", joined by "; "
    measurement: str = ""              # programme | dialog-gated | dialogue-stem (after any fallback)
    delivery_target_lufs: float = math.nan
    speech_pct: float = math.nan
    dialog_gated_lufs: float = math.nan
    mix_tp_dbtp: float = math.nan
    dx_tp_dbtp: float = math.nan
    me_tp_dbtp: float = math.nan
    speech_leak_pct: float = math.nan  # dialogue-active time in which the VAD still finds speech in M&E
    me_to_dx_db: float = math.nan      # M&E against DX while dialogue is active
    dx_nonspeech_lu: float = math.nan  # DX where there is no dialogue, relative to DX during dialogue
    clipped_samples: float = math.nan
    qc_events: str = ""                # the reel's QC events file (<title>_qc_events.csv, pipeline.qcevents)
    qc_events_n: float = math.nan      # events in it
    dialogue_lines: float = math.nan  # entries in the spotting list
    stereo_lufs: float = math.nan      # stereo downmix of a 5.1 source (on request), integrated
    stereo_tp_dbtp: float = math.nan
    ltrt_lufs: float = math.nan        # the Lt/Rt fold-down of a surround master, delivered, integrated
    ltrt_dx_lufs: float = math.nan     # ... its DX
    ltrt_tp_dbtp: float = math.nan
    lra_lu: float = math.nan
    short_term_max_lufs: float = math.nan
    momentary_max_lufs: float = math.nan
    null_residual_dbfs: float = math.nan
    gain_db: float = math.nan
    limiter_db: float = math.nan
    deliverable: str = ""
    language: str = ""                 # ISO 639-2 of the dialogue's language as recognised (forced or detected)
    words: float = math.nan            # words recognised
    asr_seconds: float = math.nan      # seconds speech recognition took (model load included)
    asr_error: str = ""                # why there are no words (recognition failed; the stems are delivered)
    transcript: str = ""               # the transcript file (<title>_transcript.json)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_s: float = math.nan
    rtf: float = math.nan              # processing seconds per second of audio
    plots: dict = field(default_factory=dict, repr=False)   # short-term loudness and speech, for the HTML only

    def as_flat(self) -> dict:
        flat = {k: v for k, v in asdict(self).items() if k not in ("stage_seconds", "plots")}
        for stage in STAGES:
            flat[f"{stage}_s"] = round(self.stage_seconds.get(stage, math.nan), 3)
        return {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v) for k, v in flat.items()}

    @staticmethod
    def from_flat(data: dict) -> "ReportRow":
        known = {f.name for f in fields(ReportRow)} - {"plots", "stage_seconds"}
        row = ReportRow(**{k: v for k, v in data.items() if k in known})
        row.stage_seconds = {s: float(data[f"{s}_s"]) for s in STAGES if f"{s}_s" in data}
        return row


def write_reports(rows: list[ReportRow], reports_dir: Path, run_id: str, *, profile=None, model: str = "") -> tuple[Path, Path]:
    """Write `<run_id>.csv`, `latest.csv`, `<run_id>.html` and `latest.html`; returns (csv, html)."""
    frame = pd.DataFrame([r.as_flat() for r in rows])
    csv_text = frame.to_csv(index=False)
    page = htmlreport.render_report(run_id, [section(r, profile) for r in rows],
                                    profile=getattr(profile, "name", ""), model=model,
                                    created=dt.datetime.now().strftime("%Y-%m-%d %H:%M"))
    csv_path, html_path = reports_dir / f"{run_id}.csv", reports_dir / f"{run_id}.html"
    for path, text in ((csv_path, csv_text), (reports_dir / "latest.csv", csv_text),
                       (html_path, page), (reports_dir / "latest.html", page)):
        write_text_atomic(path, text)
    return csv_path, html_path


def section(row: ReportRow, profile=None) -> htmlreport.FileSection:
    """The HTML report's view of one row."""
    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan
    figures = {
        "input LUFS": num(row.input_lufs), htmlreport.FIG_OUTPUT_LUFS: num(row.output_lufs),
        "dialog-gated LUFS": num(row.dialog_gated_lufs), htmlreport.FIG_SPEECH_PCT: num(row.speech_pct),
        htmlreport.FIG_TRUE_PEAK: num(row.true_peak_dbtp), "true peak MIX dBTP": num(row.mix_tp_dbtp),
        "true peak DX dBTP": num(row.dx_tp_dbtp), "true peak M&E dBTP": num(row.me_tp_dbtp),
        "gain dB": num(row.gain_db), "limiter dB": num(row.limiter_db), "LRA LU": num(row.lra_lu),
        "short-term max LUFS": num(row.short_term_max_lufs), "momentary max LUFS": num(row.momentary_max_lufs),
        "null residual dBFS": num(row.null_residual_dbfs), "DX LUFS": num(row.dx_lufs), "M&E LUFS": num(row.me_lufs),
        "speech in M&E %": num(row.speech_leak_pct), "M&E vs DX in dialogue dB": num(row.me_to_dx_db),
        "DX without dialogue LU": num(row.dx_nonspeech_lu), "clipped samples": num(row.clipped_samples),
    } if row.status != "failed" else {}
    target = num(row.delivery_target_lufs)
    return htmlreport.FileSection(
        title=row.title or Path(row.file).name, file=row.file, status=row.status, error=row.error,
        qc=row.qc if row.qc in ("pass", "fail") else "",
        qc_reasons=tuple(r for r in str(row.qc_reasons or "").split("; ") if r),
        figures=figures, short_term=row.plots.get("short_term", {}),
        target_lufs=target if math.isfinite(target) else num(row.target_lufs),
        tolerance_lu=getattr(profile, "tolerance_lu", math.nan),
        speech=tuple(tuple(r) for r in row.plots.get("speech", ())), duration_s=num(row.duration_s),
        lines=tuple(tuple(r) for r in row.plots.get("lines", ())), listening=listening(row, profile))


def listening(row: ReportRow, profile=None) -> excerpts.Listening | None:
    """The reel's QC events and excerpts to hear (pipeline.excerpts), None for a failed reel. Which events fail:
    the profile's rules, or without a profile the kinds the row's QC reasons name."""
    if row.status == "failed":
        return None
    reasons = [r for r in str(row.qc_reasons or "").split("; ") if r]
    fails = excerpts.judge_with(getattr(profile, "qc_events", None), reasons)
    return excerpts.listen(row.qc_events or None, row.plots.get("wavs"), layout=str(row.layout or ""),
                           lines=row.plots.get("lines", ()), speech=row.plots.get("speech", ()), fails=fails)
