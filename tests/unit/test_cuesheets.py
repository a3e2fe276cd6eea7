"""pipeline.cuesheets and pipeline.wordfiles: the dialogue list, the ADR cue sheet and the marker EDL read back (csv,
pycmx's CMX 3600 parser), timecodes on the source's clock for 23.976 NDF and 29.97 DF, and write_words' files."""
from __future__ import annotations

import csv
import io
import re
from fractions import Fraction

import pytest

from pipeline.cuesheets import (ADR_COLUMNS, DIALOGUE_COLUMNS, write_adr_csv, write_dialogue_csv,
                                write_marker_edl)
from pipeline.spotting import CSV_COLUMNS
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


@pytest.mark.parametrize("fps", sorted(CASES))
def test_dialogue_list_timecodes_and_columns(tmp_path, fps):
    label, expected = CASES[fps]
    clock = StartTimecode.from_label(label, fps)
    path = tmp_path / "reel_dialogue.csv"
    write_dialogue_csv(path, TRANSCRIPT, clock)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header[: len(CSV_COLUMNS)]) == CSV_COLUMNS and tuple(header) == DIALOGUE_COLUMNS
    assert [(r["start_tc"], r["end_tc"]) for r in rows] == expected
    for r, line in zip(rows, TRANSCRIPT.lines):
        # TC in = start + the offset in whole frames, drop frame included
        offset = parse_timecode(r["start_tc"], clock.rate) - clock.frame
        assert offset == int(line.start * clock.rate.fps + Fraction(1, 10**6))
        assert float(r["start_s"]) == pytest.approx(line.start, abs=5e-4)
        assert float(r["duration_s"]) == pytest.approx(line.end - line.start, abs=1e-3)
        assert r["text"] == line.text and r["language"] == "en"
        assert float(r["confidence"]) == pytest.approx(line.confidence, abs=5e-4)
        assert r["level_lufs"] == ("" if line.level_db is None else f"{line.level_db:.2f}")
    assert [int(r["index"]) for r in rows] == [1, 2, 3, 4]


def test_dialogue_list_without_a_rate_leaves_timecodes_empty(tmp_path):
    write_dialogue_csv(tmp_path / "d.csv", TRANSCRIPT, None)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "d.csv").read_text())))
    assert all(r["start_tc"] == r["end_tc"] == "" for r in rows) and rows[3]["start_s"] == "600.000"


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
    rows = list(csv.DictReader(io.StringIO(paths["dialogue_list"].read_text(encoding="utf-8"))))
    assert rows[0]["start_tc"] == tc
    adr = list(csv.reader(io.StringIO(paths["adr_cues"].read_text(encoding="utf-8"))))
    assert adr[1][2] == (tc or "00:00:10:00")   # without a rate the ADR sheet counts at 24 fps from 00:00:00:00
    srt = paths["srt"].read_text(encoding="utf-8")
    events = subtitle_events(TRANSCRIPT, fps if fps is not None else (start.rate if start else None))
    assert srt.count(" --> ") == len(events) and "Where were you | last night?" in srt
