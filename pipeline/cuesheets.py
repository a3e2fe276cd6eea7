"""Lists of what was said, for the people who work from it: the dialogue list (CSV: the spotting list's rows and
columns, one per line of dialogue the VAD found, + the words recognised in it, language, confidence), an ADR cue sheet CSV for bulk import into ADR Master
(and EdiCue-style tools), and a marker EDL that DaVinci Resolve loads as timeline markers. Timecodes are the
source's (its start timecode + the line's offset, counted in frames, drop frame included); seconds are media time.
"""
from __future__ import annotations

import csv
import io
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from .outputs import write_text_atomic
from .spotting import CSV_COLUMNS, Spot, spot_row
from .timecode import StartTimecode, frame_label, frames
from .words import Transcript, Word

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


def words_of_spots(spots: Sequence[Spot], transcript: Transcript) -> list[list[Word]]:
    """The recognised words of each spotting line, in order: a word belongs to the line holding its midpoint,
    else to the nearest line (the recogniser's word edges and the VAD's line edges differ by tenths of a
    second). No word is lost while there is a line."""
    found: list[list[Word]] = [[] for _ in spots]
    if not spots:
        return found
    for line in transcript.lines:
        for word in line.words:
            mid = (word.start + word.end) / 2
            gaps = [max(s.start_s - mid, mid - s.end_s, 0.0) for s in spots]
            found[gaps.index(min(gaps))].append(word)
    return found


def write_dialogue_csv(path: Path, spots: Sequence[Spot], transcript: Transcript) -> None:
    """The dialogue list: a header (DIALOGUE_COLUMNS) and one row per spotting line (pipeline.spotting: the
    VAD's lines of dialogue on the written DX, timecodes on the source's clock, levels measured), with the
    words recognised in it (`words_of_spots`): text, language (ISO 639-1), confidence (the mean word
    probability, 0..1; empty for a line with no word recognised)."""
    rows = []
    for spot, words in zip(spots, words_of_spots(spots, transcript)):
        confidence = f"{sum(w.probability for w in words) / len(words):.3f}" if words else ""
        rows.append(spot_row(spot) + [" ".join(" ".join(w.text for w in words).split()), transcript.language,
                                      confidence])
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
