"""pipeline.cuesheets and pipeline.wordfiles: the dialogue list, the ADR cue sheet and the marker EDL read back (csv,
pycmx's CMX 3600 parser), timecodes on the source's clock for 23.976 NDF and 29.97 DF, and write_words' files."""
from __future__ import annotations

import csv
import io
import re
from fractions import Fraction

import pytest

from pipeline.cuesheets import (ADR_COLUMNS, DIALOGUE_COLUMNS, words_of_spots, write_adr_csv, write_dialogue_csv,
                                write_marker_edl)
from pipeline.spotting import CSV_COLUMNS, Spot, write_spotting_csv
from pipeline.subtitles import subtitle_events
from pipeline.timecode import StartTimecode, parse_timecode
from pipeline.wordfiles import word_paths, write_words
from pipeline.words import Line, Transcript, Word


def _line(start: float, end: float, text: str, confidence: float = 0.9, level: float | None = -24.5) -> Line:
    ws = text.split()
    step = (end - start) / len(ws)
    words = tuple(Word(start + i * step, start + (i + 1) * step, w, confidence) for i, w in enumerate(ws))
    return Line(start, end, text, words, confidence, level)


TRANSCRIPT = Transcript("en", 0.97, (
    _line(10.0, 12.5, "Where were you | last night?"),
    _line(60.0, 61.0, "Out.", 0.42, None),
    _line(61.0, 64.2, "Out where, exactly? With \"him\", again?"),
    _line(600.0, 603.5, "Ten minutes in, and it still isn't done."),
), "whisper-base (test)", "dx")

# start label, rate, expected (TC in, TC out) per line: frames counted by hand
#  23.976: 10 s = floor(239.76) = 239 frames = 9 s 23 fr; 12.5 s = 299 = 12 s 11 fr; 60 s = 1438 = 59 s 22 fr;
#  600 s = floor(14385.6) = 14385 = 599 s 9 fr (23.976 labels run 0.1 % slow against the clock)
#  29.97 DF from 01:00:00;00: 60 s = 1798 frames = 01:00:59;28 (minute 60 keeps all its labels); 61 s = 1828 =
#  minute 61 (labels ;00 ;01 dropped) frame 28 = 01:01:01;00; 600 s = floor(17982.02) = 17982 = 01:10:00;00
CASES = {
    "23.976": ("01:00:00:00", [("01:00:09:23", "01:00:12:11"), ("01:00:59:22", "01:01:00:22"),
                               ("01:01:00:22", "01:01:04:03"), ("01:09:59:09", "01:10:02:21")]),
    "29.97": ("01:00:00;00", [("01:00:09;29", "01:00:12;14"), ("01:00:59;28", "01:01:01;00"),
                              ("01:01:01;00", "01:01:04;06"), ("01:10:00;00", "01:10:03;14")]),
}


def _spot(index: int, start: float, end: float, level: float = -24.5) -> Spot:
    return Spot(index, start, end, end - start, f"01:00:{int(start):02d}:00", f"01:00:{int(end):02d}:00", level,
                level - 3.0)


def test_dialogue_list_is_the_spotting_list_with_the_words(tmp_path):
    """One row per spotting line, its columns as the spotting list writes them, then the words whose middle lies
    in it; a word between lines joins the nearest; a line with no word has empty text and confidence."""
    spots = [_spot(1, 9.9, 12.7), _spot(2, 59.8, 64.4), _spot(3, 300.0, 301.0), _spot(4, 599.9, 604.0)]
    path = tmp_path / "reel_dialogue.csv"
    write_dialogue_csv(path, spots, TRANSCRIPT)
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header[: len(CSV_COLUMNS)]) == CSV_COLUMNS and tuple(header) == DIALOGUE_COLUMNS
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    spotting = tmp_path / "spots.csv"
    write_spotting_csv(spotting, spots)
    assert [{k: r[k] for k in CSV_COLUMNS} for r in rows] == list(csv.DictReader(io.StringIO(spotting.read_text())))
    assert [r["text"] for r in rows] == ["Where were you | last night?", 'Out. Out where, exactly? With "him", again?',
                                         "", "Ten minutes in, and it still isn't done."]
    assert rows[1]["confidence"] == f"{(0.42 + 0.9 * 6) / 7:.3f}" and rows[2]["confidence"] == ""
    assert {r["language"] for r in rows} == {"en"}


def test_words_between_lines_join_the_nearest_and_none_is_lost():
    spots = [_spot(1, 9.0, 10.5), _spot(2, 11.5, 12.0)]   # "last night?" ends at 12.5, after both lines
    found = words_of_spots(spots, TRANSCRIPT)
    assert sum(map(len, found)) == sum(len(line.words) for line in TRANSCRIPT.lines)
    # "were" (10.42-10.83 s) is nearer line 1; "you" (mid 11.04 s) nearer line 2
    assert [w.text for w in found[0]] == ["Where", "were"] and found[1][-1].text == "done."
    assert words_of_spots([], TRANSCRIPT) == []


@pytest.mark.parametrize("fps", sorted(CASES))
def test_adr_cue_sheet(tmp_path, fps):
    label, expected = CASES[fps]
    path = tmp_path / "adr.csv"
    write_adr_csv(path, TRANSCRIPT, StartTimecode.from_label(label, fps))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == ADR_COLUMNS
    assert [(r[2], r[3]) for r in rows[1:]] == expected
    assert [r[4] for r in rows[1:]] == [line.text for line in TRANSCRIPT.lines]   # commas and quotes survive
    assert [r[0] for r in rows[1:]] == ["001", "002", "003", "004"]
    assert all(r[1] == r[5] == r[6] == "" for r in rows[1:])


@pytest.mark.parametrize("fps", sorted(CASES))
def test_marker_edl_reads_back_with_pycmx(tmp_path, fps):
    import pycmx

    label, expected = CASES[fps]
    clock = StartTimecode.from_label(label, fps)
    path = tmp_path / "m.edl"
    write_marker_edl(path, TRANSCRIPT, clock, "Reel 1 | final")
    text = path.read_text(encoding="utf-8")
    edl = pycmx.parse_cmx3600(io.StringIO(text))
    assert edl.title == "Reel 1 / final"
    events = list(edl.events)
    assert [e.number for e in events] == [1, 2, 3, 4]
    edits = [list(e.edits)[0] for e in events]
    assert [e.source_in for e in edits] == [e.record_in for e in edits] == [tc_in for tc_in, _ in expected]
    for e in edits:   # one frame long, as Resolve writes a marker
        assert parse_timecode(e.source_out, clock.rate) == parse_timecode(e.source_in, clock.rate) + 1
    assert ("FCM: DROP FRAME" if fps == "29.97" else "FCM: NON-DROP FRAME") in text.splitlines()
    markers = re.findall(r"^ \|C:(ResolveColor\w+) \|M:(.*) \|D:(\d+)$", text, re.M)
    assert [m[1] for m in markers] == ["Where were you / last night?", "Out.", 'Out where, exactly? With "him", again?',
                                      "Ten minutes in, and it still isn't done."]
    assert [m[0] for m in markers] == ["ResolveColorBlue", "ResolveColorYellow", "ResolveColorBlue",
                                       "ResolveColorBlue"]
    assert [int(m[2]) for m in markers] == [parse_timecode(b, clock.rate) - parse_timecode(a, clock.rate)
                                           for a, b in expected]


@pytest.mark.parametrize("start, fps, tc", [
    (StartTimecode.from_label("00:59:59;28", "29.97"), Fraction(30000, 1001), "01:00:09;27"),  # +2 +297
    (None, "25", "00:00:10:00"),
    (None, None, ""),
])
def test_write_words_writes_every_file(tmp_path, start, fps, tc):
    paths = write_words(TRANSCRIPT, tmp_path / "title", "title", start, fps)
    assert paths == word_paths(tmp_path / "title", "title")
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert not list((tmp_path / "title").glob(".*"))   # no temporary file left
    adr = list(csv.reader(io.StringIO(paths["adr_cues"].read_text(encoding="utf-8"))))
    assert adr[1][2] == (tc or "00:00:10:00")   # without a rate the ADR sheet counts at 24 fps from 00:00:00:00
    srt = paths["srt"].read_text(encoding="utf-8")
    events = subtitle_events(TRANSCRIPT, fps if fps is not None else (start.rate if start else None))
    assert srt.count(" --> ") == len(events) and "Where were you | last night?" in srt
