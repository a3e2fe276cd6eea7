"""Lists of what was said, for the people who work from it: the dialogue list (CSV, one row per recognised line,
the spotting list's columns + text, language, confidence), an ADR cue sheet CSV for bulk import into ADR Master
(and EdiCue-style tools), and a marker EDL that DaVinci Resolve loads as timeline markers. Timecodes are the
source's (its start timecode + the line's offset, counted in frames, drop frame included); seconds are media time.
"""
from __future__ import annotations

import csv
import io
import math
from fractions import Fraction
from pathlib import Path

from .outputs import write_text_atomic
from .spotting import CSV_COLUMNS
from .timecode import StartTimecode, frame_label, frames
from .words import Line, Transcript

DIALOGUE_COLUMNS = CSV_COLUMNS + ("text", "language", "confidence")
# ADR Master maps the columns of a CSV from keywords in its first line (its column mapping can be corrected in the
# import window); the names are the ADR cue fields: cue number, character, in, out, dialogue, reason, notes.
ADR_COLUMNS = ("Cue", "Character", "Start TC", "End TC", "Dialogue", "Reason", "Notes")
LOW_CONFIDENCE = 0.5      # markers of lines the recogniser was less sure of than this are yellow, not blue


def _csv(header: tuple[str, ...], rows) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(header)
    out.writerows(rows)
    return buf.getvalue()


def _label(clock: StartTimecode | None, seconds: float) -> str:
    return clock.label_at(max(0.0, seconds)) if clock is not None else ""


def _level(db: float | None) -> str:
    if db is None:
        return ""
    return f"{db:.2f}" if math.isfinite(db) else ("-inf" if db < 0 else "inf")


def _dialogue_row(i: int, line: Line, language: str, clock: StartTimecode | None) -> list:
    return [i, f"{line.start:.3f}", f"{line.end:.3f}", f"{line.end - line.start:.3f}", _label(clock, line.start),
            _label(clock, line.end), _level(line.level_db), "", " ".join(line.text.split()), language,
            f"{line.confidence:.3f}"]


def write_dialogue_csv(path: Path, transcript: Transcript, clock: StartTimecode | None) -> None:
    """The dialogue list: a header (DIALOGUE_COLUMNS) and one row per recognised line, in order.

    index, start_s, end_s, duration_s (media seconds to the ms), start_tc, end_tc (labels of the frames holding
    start and end on the source's clock; empty without a rate, as in the spotting list), level_lufs (the line's
    level_db: the DX stem's BS.1770 K-weighted level over the line, empty when unmeasured), level_rms_dbfs (kept
    for the spotting list's readers; empty: a transcript carries one level per line), text, language (ISO 639-1),
    confidence (mean word probability, 0..1)."""
    rows = [_dialogue_row(i, line, transcript.language, clock) for i, line in enumerate(transcript.lines, 1)]
    write_text_atomic(Path(path), _csv(DIALOGUE_COLUMNS, rows))


def write_adr_csv(path: Path, transcript: Transcript, clock: StartTimecode) -> None:
    """The ADR cue sheet: a header (ADR_COLUMNS) and one cue per recognised line: cue number, character (empty:
    the recogniser does not know who speaks), start and end timecode on the source's clock, the dialogue, and
    reason and notes left for the ADR supervisor. Comma-separated, quoted where a field needs it (RFC 4180)."""
    if clock.rate is None:
        raise ValueError("an ADR cue sheet needs a timecode rate")
    rows = [[f"{i:03d}", "", clock.label_at(max(0.0, line.start)), clock.label_at(max(0.0, line.end)),
             " ".join(line.text.split()), "", ""] for i, line in enumerate(transcript.lines, 1)]
    write_text_atomic(Path(path), _csv(ADR_COLUMNS, rows))


def _edl_text(text: str) -> str:
    """Marker text on one EDL line: no '|' (Resolve's field separator), no line breaks."""
    return " ".join(text.replace("|", "/").split())


def write_marker_edl(path: Path, transcript: Transcript, clock: StartTimecode, title: str) -> None:
    """A CMX 3600 EDL of timeline markers in the form DaVinci Resolve exports and imports them (Timelines >
    Export / Import > Timeline Markers to / from EDL): per line an event one frame long at its start timecode
    (source = record), then ` |C:<colour> |M:<name> |D:<duration in frames>`. The name is the line's text, the
    duration its length in frames; blue, or yellow under LOW_CONFIDENCE. FCM says drop frame or not."""
    rate = clock.rate
    if rate is None:
        raise ValueError("a marker EDL needs a timecode rate")
    out = [f"TITLE: {_edl_text(title)[:70]}", f"FCM: {'DROP FRAME' if rate.drop else 'NON-DROP FRAME'}", ""]
    for i, line in enumerate(transcript.lines, 1):
        first, last = (frames(clock.seconds + Fraction(max(0.0, t)), rate) for t in (line.start, line.end))
        tc_in, tc_next = frame_label(first, rate), frame_label(first + 1, rate)
        colour = "ResolveColorYellow" if line.confidence < LOW_CONFIDENCE else "ResolveColorBlue"
        out += [f"{i:03d}  001      V     C        {tc_in} {tc_next} {tc_in} {tc_next}  ",
                f" |C:{colour} |M:{_edl_text(line.text)} |D:{max(1, last - first)}", ""]
    write_text_atomic(Path(path), "\n".join(out))
