"""Timecode end to end (issue 14), through the CLI as a user runs it: reels whose timecode starts at
01:00:00:00 at 23.976 (MOV tmcd track), 00:59:59;28 at 29.97 drop frame (MXF) and 01:00:00:00 at 25 (Matroska),
a BWF whose bext TimeReference is 01:00:00:00 at 23.976, and a MOV whose timecode track has a broken rate.

Every stem's bext TimeReference and iXML are read back by tests/tc_reference.py (written from EBU Tech 3285 and
the iXML spec) and the TimeReference also by MediaInfo (Debian's `mediainfo`); the first spotting line's
timecode must be the start + its offset to the frame (labels from tests/tc_reference.py); the SRT stays in
media time; the deliverable keeps the timecode (ffprobe); `--start-tc` and `--tc-rate` override, the
deliverable's picture timecode included (read back by ffprobe and MediaInfo).
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

import hostile_corpus
from conftest import ffprobe, run_cli
from pipeline.training.demo import make_demo_reel
from tc_reference import read_bwf, smpte_label

pytestmark = pytest.mark.slow
NTSC = Fraction(1000, 1001)
RATE = 48000
STEMS = ("MIX", "DX", "ME")


# title -> (start label, timecode rate (fps), nominal frames per second, labels dropped, start frame since midnight)
REELS = {
    "tc2398": ("01:00:00:00", 24 * NTSC, 24, 0, 86400),
    "tc2997df": ("00:59:59;28", 30 * NTSC, 30, 2, 107890),
    "tc25": ("01:00:00:00", Fraction(25), 25, 0, 90000),
}


def _samples(frame: int, fps: Fraction) -> int:
    """Samples since midnight at 48 kHz of frame `frame`: wall-clock, frame / fps seconds, rounded."""
    return math.floor(Fraction(frame) / fps * RATE + Fraction(1, 2))


def _reel(path: Path, audio: Path, fps: str, video: list[str], timecode: str) -> Path:
    hostile_corpus.ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x36:rate={fps}:duration=5", "-i", audio,
                          "-map", "0:v", "-map", "1:a", *video, "-c:a", "pcm_s24le", "-timecode", timecode,
                          "-shortest", path)
    return path


@pytest.fixture(scope="module")
def reels(tmp_path_factory):
    root = tmp_path_factory.mktemp("timecode")
    drop = root / "drop"
    drop.mkdir()
    audio = make_demo_reel(root / "src.wav", seconds=5, layout="stereo", seed=3).path    # speech from 0.5 s
    h264 = list(hostile_corpus.H264)
    files = {
        "tc2398": _reel(drop / "tc2398.mov", audio, "24000/1001", h264, "01:00:00:00"),
        "tc2997df": _reel(drop / "tc2997df.mxf", audio, "30000/1001", ["-c:v", "mpeg2video"], "00:59:59;28"),
        "tc25": _reel(drop / "tc25.mkv", audio, "25", h264, "01:00:00:00"),
        "broken_rate": hostile_corpus.set_tmcd_rate(
            _reel(drop / "broken_rate.mov", audio, "24000/1001", h264, "01:00:00:00"), 17, 1, 17),
    }
    files["bwf"] = drop / "bwf.wav"
    hostile_corpus.ffmpeg("-i", audio, "-c:a", "pcm_s24le", "-write_bext", "1",
                          "-metadata", f"time_reference={86400 * 2002}", files["bwf"])   # 01:00:00:00 at 23.976
    return root, files


@pytest.fixture(scope="module")
def run1(reels):
    root, files = reels
    out = root / "out"
    proc = run_cli("run", root / "drop", "--out", out)
    return dict(proc=proc, out=out, files=files, report=pd.read_csv(out / "reports" / "latest.csv",
                                                                    keep_default_na=False, dtype=str).set_index("title"))


def _spots(folder: Path, title: str) -> list[dict]:
    with open(folder / f"{title}_dialogue.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _labels_at(start_frame: int, seconds: str, fps: Fraction, nominal: int, drop: int) -> set[str]:
    """The label of the frame holding `seconds` after the start: the CSV rounds seconds to the millisecond, so
    both frames are accepted when a frame boundary falls within half a millisecond."""
    s = Fraction(seconds)
    first, last = (start_frame + math.floor((s + d) * fps) for d in (-Fraction(1, 2000), Fraction(1, 2000)))
    return {smpte_label(f, nominal, drop) for f in range(first, last + 1)}


def test_broken_timecode_fails_that_file_alone(run1):
    proc, report, path = run1["proc"], run1["report"], run1["files"]["broken_rate"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = report.loc["broken_rate"]
    assert (row["status"], row["stage"]) == ("failed", "probe")
    assert "unsupported timecode frame rate 17" in row["error"] and "\n" not in row["error"]
    assert sum(f"FAILED at probe: {path}: {row['error']}" in line for line in proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert list(report.loc[["tc2398", "tc2997df", "tc25", "bwf"], "status"]) == ["ok"] * 4   # the batch went on


@pytest.mark.parametrize("title", list(REELS))
def test_stems_carry_the_source_timecode(run1, title):
    label, fps, _, drop, frame = REELS[title]
    assert run1["report"].loc[title, "start_tc"] == label
    for stem in STEMS:
        bwf = read_bwf(run1["out"] / title / f"{title}_{stem}.wav")
        assert bwf.time_reference == bwf.ixml_samples == _samples(frame, fps), (stem, bwf.time_reference)
        assert bwf.speed("TIMESTAMP_SAMPLE_RATE") == "48000"
        assert bwf.speed("TIMECODE_RATE") == f"{fps.numerator}/{fps.denominator}"
        assert bwf.speed("TIMECODE_FLAG") == ("DF" if drop else "NDF")
        assert bwf.track_names == [(1, 1, "L"), (2, 2, "R")]


def test_known_sample_counts():
    """The values Pro Tools and BWF MetaEdit show for these starts at 48 kHz."""
    assert [_samples(r[4], r[1]) for r in REELS.values()] == [172_972_800, 172_796_624, 172_800_000]


@pytest.mark.skipif(not shutil.which("mediainfo"), reason="mediainfo not installed (Debian package `mediainfo`)")
@pytest.mark.parametrize("title", [*REELS, "bwf"])
def test_mediainfo_reads_the_time_reference(run1, title):
    expected = 86400 * 2002 if title == "bwf" else _samples(REELS[title][4], REELS[title][1])
    for stem in STEMS:
        out = subprocess.run(["mediainfo", "--Output=JSON", str(run1["out"] / title / f"{title}_{stem}.wav")],
                             capture_output=True, text=True, check=True).stdout
        audio = next(t for t in json.loads(out)["media"]["track"] if t["@type"] == "Audio")
        assert audio["Delay_Source"] == "Container (bext)"
        assert round(float(audio["Delay"]) * RATE) == expected, (stem, audio["Delay"])


@pytest.mark.parametrize("title", list(REELS))
def test_spotting_list_in_source_timecode_srt_in_media_time(run1, title):
    _, fps, nominal, drop, frame = REELS[title]
    folder = run1["out"] / title
    spots = _spots(folder, title)
    assert spots and 0.3 < float(spots[0]["start_s"]) < 1.0          # media seconds: the speech starts at 0.5 s
    for spot in spots:
        assert spot["start_tc"] in _labels_at(frame, spot["start_s"], fps, nominal, drop), spot
        assert spot["end_tc"] in _labels_at(frame, spot["end_s"], fps, nominal, drop), spot
    cue = (folder / f"{title}_dialogue.srt").read_text().splitlines()
    ms = round(float(spots[0]["start_s"]) * 1000)
    assert cue[0] == "1" and cue[1].startswith(f"00:00:0{ms // 1000},{ms % 1000:03d} --> 00:00:0")


@pytest.mark.parametrize("title, suffix", [("tc2398", ".mov"), ("tc2997df", ".mov"), ("tc25", ".mkv")])
def test_deliverable_keeps_the_timecode(run1, title, suffix):
    """MOV keeps a tmcd track, Matroska its TIMECODE tag; an MXF source is delivered as MOV with a tmcd track."""
    deliverable = run1["out"] / title / f"{title}{suffix}"
    assert run1["report"].loc[title, "deliverable"] == str(deliverable)
    probe = ffprobe(deliverable)
    tags = {k.lower(): v for k, v in probe["format"].get("tags", {}).items()}
    tmcd = [s for s in probe["streams"] if s.get("codec_tag_string") == "tmcd"]
    found = tmcd[0]["tags"]["timecode"] if suffix == ".mov" else tags["timecode"]
    assert found == REELS[title][0]
    if suffix == ".mov":
        assert Fraction(tmcd[0]["avg_frame_rate"]) == REELS[title][1]


def test_bwf_input_gives_stems_with_its_time_reference(run1):
    folder = run1["out"] / "bwf"
    assert run1["report"].loc["bwf", "start_tc"] == "01:00:03.600"      # no frame rate: the clock time
    for stem in STEMS:
        bwf = read_bwf(folder / f"bwf_{stem}.wav")
        assert bwf.time_reference == bwf.ixml_samples == 86400 * 2002
        assert bwf.speed("TIMECODE_RATE") is None
    spots = _spots(folder, "bwf")
    assert spots and all(s["start_tc"] == s["end_tc"] == "" for s in spots)   # seconds only without --tc-rate


def test_start_tc_and_tc_rate_override(run1):
    """A second run into the same OUT with --start-tc 10:00:00:00 --tc-rate 25: the titles done without them are
    redone (the overrides are part of the cache key), every stem and spot at 10:00:00:00 + offset."""
    files, out = run1["files"], run1["out"]
    proc = run_cli("run", files["tc25"], files["bwf"], "--out", out, "--start-tc", "10:00:00:00", "--tc-rate", "25")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = pd.read_csv(out / "reports" / "latest.csv", keep_default_na=False, dtype=str).set_index("title")
    for title in ("tc25", "bwf"):
        assert (report.loc[title, "status"], report.loc[title, "start_tc"]) == ("ok", "10:00:00:00")
        for stem in STEMS:
            bwf = read_bwf(out / title / f"{title}_{stem}.wav")
            assert bwf.time_reference == bwf.ixml_samples == 36000 * RATE
            assert (bwf.speed("TIMECODE_RATE"), bwf.speed("TIMECODE_FLAG")) == ("25/1", "NDF")
        spots = _spots(out / title, title)
        assert spots and spots[0]["start_tc"] in _labels_at(900000, spots[0]["start_s"], Fraction(25), 25, 0)
    deliverable = out / "tc25" / "tc25.mkv"              # the picture's timecode moved with the stems
    tags = {k.lower(): v for k, v in ffprobe(deliverable)["format"].get("tags", {}).items()}
    assert tags["timecode"] == "10:00:00:00"
    if shutil.which("mediainfo"):
        assert _mediainfo_timecode(deliverable) == ("10:00:00:00", "Matroska tags")


def _mediainfo_timecode(path: Path) -> tuple[str, str]:
    """(first frame's timecode, where) as MediaInfo reads it: a MOV's timecode track ("Other" track), else
    Matroska's TIMECODE tag (the General track's extra fields)."""
    out = subprocess.run(["mediainfo", "--Output=JSON", str(path)], capture_output=True, text=True,
                         check=True).stdout
    tracks = json.loads(out)["media"]["track"]
    other = [t for t in tracks if t["@type"] == "Other" and "TimeCode_FirstFrame" in t]
    if other:
        return other[0]["TimeCode_FirstFrame"], other[0]["Format"]
    extra = next(t for t in tracks if t["@type"] == "General").get("extra", {})
    return extra.get("TimeCode_FirstFrame", ""), extra.get("TimeCode_Source", "")


@pytest.mark.parametrize("title, label, fps, frame", [
    ("tc2398", "02:00:00:00", 24 * NTSC, 172800),      # the picture's own rate: the label itself
    ("tc2997df", "02:00:00:00", 30 * NTSC, 216000),    # a non-drop label at 29.97 stays non-drop
])
def test_start_tc_is_the_deliverables_timecode(start_tc_run, title, label, fps, frame):
    """--start-tc 02:00:00:00 on MOV and MXF masters (each delivered as MOV): the deliverable's timecode track is
    rewritten (ffprobe and MediaInfo read 02:00:00:00 at the picture's rate, non-drop), and lines up with the
    stems' bext TimeReference to the sample."""
    out = start_tc_run
    deliverable = out / title / f"{title}.mov"
    tmcd = [s for s in ffprobe(deliverable)["streams"] if s.get("codec_tag_string") == "tmcd"]
    assert len(tmcd) == 1 and tmcd[0]["tags"]["timecode"] == label
    assert Fraction(tmcd[0]["avg_frame_rate"]) == fps
    if shutil.which("mediainfo"):
        assert _mediainfo_timecode(deliverable) == (label, "QuickTime TC")
    for stem in STEMS:
        assert read_bwf(out / title / f"{title}_{stem}.wav").time_reference == _samples(frame, fps)


@pytest.fixture(scope="module")
def start_tc_run(reels):
    root, files = reels
    out = root / "out_start_tc"
    proc = run_cli("run", files["tc2398"], files["tc2997df"], "--out", out, "--start-tc", "02:00:00:00")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_bad_start_tc_is_a_usage_error(tmp_path):
    proc = run_cli("run", tmp_path, "--out", tmp_path / "out", "--start-tc", "01:00:00;00", "--tc-rate", "25")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "reelsplit: error: --start-tc 01:00:00;00 at --tc-rate 25: timecode '01:00:00;00' is drop frame, but 25.000 "
        "fps has no drop-frame timecode (only 29.97 and 59.94)"]
