"""Start timecodes: label parsing (drop frame from the separator), StartTimecode's seconds, samples and offset
labels against tests/tc_reference.py's textbook SMPTE labels, pipeline.starttc's reading of ffprobe JSON and
its overrides, and spotting lists on the source's clock."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, MediaError
from pipeline.media import parse_probe
from pipeline.starttc import check_options, picture_label, read_source_timecode, reel_start
from pipeline.timecode import StartTimecode, label_fields, label_rate
from tc_reference import smpte_label

NTSC = Fraction(1000, 1001)
PATH = Path("/media/reel1.mov")


# --------------------------------------------------------------------------------------------------------- labels

@pytest.mark.parametrize("text, fields", [
    ("01:00:00:00", (1, 0, 0, 0, False)), ("00:59:59;28", (0, 59, 59, 28, True)),
    ("10:20:30.12", (10, 20, 30, 12, True)), (" 23:59:59:23 ", (23, 59, 59, 23, False)),
])
def test_label_fields(text, fields):
    assert label_fields(text) == fields


@pytest.mark.parametrize("text", ["1:00:00", "01:00:00:0", "01:60:00:00", "01:00:61:00", "abc", "", "01-00-00-00"])
def test_malformed_labels(text):
    with pytest.raises(ValueError):
        label_fields(text)


def test_label_rate_takes_drop_frame_from_the_separator():
    assert label_rate("01:00:00;00", "29.97").drop == 2 and label_rate("01:00:00:00", "29.97").drop == 0
    assert label_rate("01:00:00;00", Fraction(60000, 1001)).drop == 4
    assert label_rate("01:00:00:00", 25).drop == 0
    for fps in (25, "23.976", 30):
        with pytest.raises(ValueError, match="drop frame"):
            label_rate("01:00:00;00", fps)


# ------------------------------------------------------------------------------------------------ StartTimecode

@pytest.mark.parametrize("label, fps, frame, seconds, at_48k", [
    ("01:00:00:00", "23.976", 86400, Fraction(36036, 10), 172_972_800),      # 86400 x 2002 samples
    ("01:00:00:00", Fraction(24000, 1001), 86400, Fraction(36036, 10), 172_972_800),
    ("00:59:59;28", "29.97", 107890, 107890 / (30 * NTSC), 172_796_624),     # 107890 x 1601.6 samples
    ("01:00:00;00", "29.97", 107892, 107892 / (30 * NTSC), 172_799_827),     # 172 799 827.2, rounded
    ("01:00:00:00", "29.97", 108000, Fraction(36036, 10), 172_972_800),      # 29.97 NDF
    ("01:00:00;00", "59.94", 215784, 215784 / (60 * NTSC), 172_799_827),
    ("01:00:00:00", 25, 90000, Fraction(3600), 172_800_000),
    ("10:00:00:00", 24, 864000, Fraction(36000), 1_728_000_000),
])
def test_start_seconds_and_samples_since_midnight(label, fps, frame, seconds, at_48k):
    start = StartTimecode.from_label(label, fps)
    assert start.seconds == seconds and start.frame == frame and start.label == label.strip()
    assert start.samples(48000) == at_48k == math.floor(seconds * 48000 + Fraction(1, 2))
    assert start.samples(96000) == math.floor(seconds * 96000 + Fraction(1, 2))


@pytest.mark.parametrize("label, fps, nominal, drop", [
    ("01:00:00:00", "23.976", 24, 0), ("00:59:59;28", "29.97", 30, 2), ("00:09:59;20", "29.97", 30, 2),
    ("01:00:00:00", 25, 25, 0), ("00:00:59;50", "59.94", 60, 4), ("01:00:00:00", 30, 30, 0),
])
def test_offset_labels_are_start_plus_offset_in_frames(label, fps, nominal, drop):
    """Every offset up to 3 minutes (crossing drop-frame minutes) against frame arithmetic done here."""
    start = StartTimecode.from_label(label, fps)
    exact = start.rate.fps
    for k in range(0, int(180 * exact), 7):
        offset = float(k / exact) + 1e-4           # inside frame k after the start
        assert start.label_at(offset) == smpte_label(start.frame + k, nominal, drop), (label, k)


def test_offset_across_the_minute_that_drops_labels():
    assert StartTimecode.from_label("00:00:59;28", "29.97").label_at(2 / (30 * NTSC) + 1e-6) == "00:01:00;02"
    assert StartTimecode.from_label("00:59:59;28", "29.97").label_at(2 / (30 * NTSC) + 1e-6) == "01:00:00;00"


def test_start_from_samples():
    bwf = StartTimecode.from_samples(172_972_800, 48000)
    assert bwf.rate is None and bwf.label == "" and bwf.label_at(1.0) == "" and bwf.frame is None
    assert bwf.text == "01:00:03.600" and bwf.samples(48000) == 172_972_800 and bwf.samples(44100) == 158_918_760
    labelled = StartTimecode.from_samples(172_972_800, 48000, "23.976")
    assert labelled.label == "01:00:00:00" and labelled.label_at(1.0) == "01:00:00:23"
    assert StartTimecode.from_samples(172_972_800, 48000, 25).label == "01:00:03:15"   # 3603.6 s at 25 fps


# -------------------------------------------------------------------------------------------- reading ffprobe

def _mov(timecode="01:00:00:00", tmcd_rate="24000/1001", picture="24000/1001") -> dict:
    video = {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 64, "height": 36,
             "r_frame_rate": picture, "tags": {"timecode": timecode} if timecode else {}}
    audio = {"index": 1, "codec_type": "audio", "codec_name": "pcm_s24le", "channels": 2, "sample_rate": "48000"}
    tmcd = {"index": 2, "codec_type": "data", "codec_tag_string": "tmcd", "avg_frame_rate": tmcd_rate,
            "tags": {"timecode": timecode} if timecode else {}}
    return {"streams": [video, audio, tmcd], "format": {"format_name": "mov,mp4", "duration": "2.0"}}


def _probe(data):
    info = parse_probe(data, PATH)
    return info.timecode, info.video[0].frame_rate if info.video else None


def test_mov_timecode_track_at_its_own_rate():
    found, picture = _probe(_mov())
    assert found.origin == "timecode track" and found.start.label == "01:00:00:00" and not found.problem
    assert found.start.samples(48000) == 172_972_800
    found, _ = _probe(_mov(tmcd_rate="25/1"))        # the timecode track's rate, not the picture's
    assert found.start.rate.fps == 25 and found.start.samples(48000) == 172_800_000
    found, _ = _probe(_mov("00:59:59;28", "30000/1001", "30000/1001"))
    assert found.start.rate.drop == 2 and found.start.label == "00:59:59;28"


@pytest.mark.parametrize("data, words", [
    (_mov("01:24:42:06", "17/1"), "at 17 fps: unsupported timecode frame rate 17"),
    (_mov("01:00:00:0", "1/1"), "at 1 fps: unsupported timecode frame rate 1"),
    (_mov("01:00:00:0"), "cannot read timecode '01:00:00:0'"),
    (_mov(None, "0/1001"), "the timecode track (stream 2) has no readable start (rate 0/1001)"),
    (_mov("01:00:00;00", "25/1", "25/1"), "is drop frame, but 25.000 fps has no drop-frame timecode"),
    ({"streams": [{"codec_type": "audio", "channels": 2, "sample_rate": "48000"}],
      "format": {"tags": {"time_reference": "-5"}}}, "bext TimeReference '-5' is not a sample count"),
])
def test_a_broken_timecode_is_reported_not_raised(data, words):
    found, picture = _probe(data)
    assert found.start is None and words in found.problem and "\n" not in found.problem, found.problem
    with pytest.raises(MediaError) as err:
        reel_start(found, picture, PATH)
    assert words in str(err.value) and err.value.path == PATH
    # --start-tc replaces it
    assert reel_start(found, picture or Fraction(25), PATH, start_tc="10:00:00:00").label == "10:00:00:00"


@pytest.mark.parametrize("fmt_tags, picture, label, drop", [
    ({"timecode": "01:00:00:00"}, "25/1", "01:00:00:00", 0),          # MXF
    ({"TIMECODE": "00:59:59;28"}, "30000/1001", "00:59:59;28", 2),    # Matroska (upper-case tag)
])
def test_container_tags_at_the_picture_rate(fmt_tags, picture, label, drop):
    data = {"streams": [{"index": 0, "codec_type": "video", "r_frame_rate": picture},
                        {"index": 1, "codec_type": "audio", "channels": 2, "sample_rate": "48000"}],
            "format": {"tags": fmt_tags}}
    found, fps = _probe(data)
    assert found.origin == "container tag" and found.start.label == label and found.start.rate.drop == drop
    assert reel_start(found, fps, PATH) == found.start


def test_bwf_time_reference_and_tc_rate():
    data = {"streams": [{"index": 0, "codec_type": "audio", "channels": 2, "sample_rate": "48000"}],
            "format": {"format_name": "wav", "tags": {"time_reference": "172972800"}}}
    found, picture = _probe(data)
    assert found.origin == "bext TimeReference" and found.start.seconds == Fraction(36036, 10)
    start = reel_start(found, picture, PATH)
    assert start.rate is None and start.samples(48000) == 172_972_800 and start.text == "01:00:03.600"
    labelled = reel_start(found, picture, PATH, tc_rate="25")
    assert labelled.label == "01:00:03:15" and labelled.samples(48000) == 172_972_800
    # TimeReference 0 is written by every BWF writer that knows no better: ffprobe leaves it out, so do we
    assert read_source_timecode(data["streams"], {"tags": {"time_reference": "0"}}, None, 48000) is None


def test_a_label_without_a_rate_needs_tc_rate():
    data = {"streams": [{"codec_type": "audio", "channels": 2, "sample_rate": "48000"}],
            "format": {"tags": {"timecode": "01:00:00:00"}}}
    found, _ = _probe(data)
    assert "no frame rate" in found.problem and "--tc-rate" in found.problem
    with pytest.raises(MediaError, match="give --tc-rate"):
        reel_start(found, None, PATH)
    assert reel_start(found, None, PATH, tc_rate="23.976").samples(48000) == 172_972_800


def test_no_timecode():
    data = {"streams": [{"index": 0, "codec_type": "video", "r_frame_rate": "24/1"},
                        {"index": 1, "codec_type": "audio", "channels": 2, "sample_rate": "48000"}], "format": {}}
    found, fps = _probe(data)
    assert found is None
    assert reel_start(None, fps, PATH) == StartTimecode(Fraction(0), StartTimecode.from_label("00:00:00:00", 24).rate)
    assert reel_start(None, None, PATH) is None                       # audio only: seconds only, as before
    assert reel_start(None, Fraction(12), PATH) is None               # a picture rate timecode does not have
    assert reel_start(None, None, PATH, tc_rate="25").label_at(1.0) == "00:00:01:00"
    with pytest.raises(MediaError, match="needs a frame rate .* give --tc-rate"):
        reel_start(None, None, PATH, start_tc="01:00:00:00")
    assert reel_start(None, None, PATH, start_tc="01:00:00:00", tc_rate="25").samples(48000) == 172_800_000


def test_overrides_beat_the_source():
    found, picture = _probe(_mov())
    assert reel_start(found, picture, PATH, start_tc="10:00:00:00").samples(48000) == 864000 * 2002
    assert reel_start(found, picture, PATH, start_tc="10:00:00:00", tc_rate="25").samples(48000) == 1_728_000_000
    assert reel_start(found, picture, PATH, tc_rate="24").samples(48000) == 172_800_000   # the label re-read


@pytest.mark.parametrize("start_tc, tc_rate, picture, label", [
    ("10:00:00:00", None, 24 * NTSC, "10:00:00:00"),         # the picture's rate: the label itself
    ("10:00:00:00", "25", Fraction(25), "10:00:00:00"),
    ("01:00:00:00", "29.97", 30 * NTSC, "01:00:00:00"),      # a non-drop label at 29.97 stays non-drop
    ("00:59:59;28", "29.97", 30 * NTSC, "00:59:59;28"),
    ("10:00:00:00", "25", 24 * NTSC, "09:59:24:00"),         # 36000 s = frame 863136.86 at 23.976 (0.1 % slow)
    ("10:00:00:00", "25", 30 * NTSC, "10:00:00;01"),         # 10:00:00;00 DF is 35999.964 s: 36000 s is in ;01
])
def test_picture_label_is_the_stems_start_at_the_pictures_rate(start_tc, tc_rate, picture, label):
    """The deliverable's timecode under --start-tc: the same instant as the stems' start, to the frame."""
    start = reel_start(None, picture, PATH, start_tc=start_tc, tc_rate=tc_rate)
    got = picture_label(start, picture)
    assert got == label
    at_picture = StartTimecode.from_label(got, picture)
    assert at_picture.seconds <= start.seconds < at_picture.seconds + 1 / picture       # the frame holding it


def test_picture_label_needs_a_start_and_a_smpte_picture():
    start = StartTimecode.from_label("01:00:00:00", 25)
    assert picture_label(None, Fraction(25)) is None and picture_label(start, None) is None
    assert picture_label(start, Fraction(12)) is None


@pytest.mark.parametrize("start_tc, tc_rate, words", [
    ("25:61:00:00", None, "--start-tc: timecode '25:61:00:00' has minutes or seconds over 59"),
    ("1:00", None, "--start-tc: cannot read timecode"),
    (None, "17", "--tc-rate 17: unsupported timecode frame rate 17"),
    ("01:00:00;00", "25", "--start-tc 01:00:00;00 at --tc-rate 25: timecode '01:00:00;00' is drop frame"),
    ("01:00:00:30", "25", "field out of range at 25 frames per second"),
])
def test_options_checked_up_front(start_tc, tc_rate, words):
    with pytest.raises(ConfigError) as err:
        check_options(start_tc, tc_rate)
    assert words in str(err.value)


def test_garbage_never_raises_at_probe():
    for tags in ({"timecode": 5}, {"timecode": ""}, {"time_reference": "1e99"}, {"time_reference": None}, "x"):
        data = {"streams": [None, "x", {"codec_type": "data", "codec_tag_string": "tmcd", "tags": "bad"}],
                "format": {"tags": tags}}
        parse_probe(data, PATH)
    assert read_source_timecode("x", "y", None, None) is None


# ------------------------------------------------------------------------------------------------ spotting lists

def test_spotting_list_in_source_timecode_srt_in_media_time(tmp_path):
    import csv

    import numpy as np

    from pipeline.spotting import CSV_COLUMNS, spotting_list, write_spotting_csv, write_srt

    rate = 48000
    dx = np.zeros((rate * 4, 2), np.float32)
    dx[int(0.5 * rate): int(1.75 * rate)] = 0.1
    regions = [(0.5, 1.75), (2.99, 3.5)]
    start = StartTimecode.from_label("00:59:59;28", "29.97")
    spots = spotting_list(regions, dx, rate, start, merge_gap_s=0.0)
    plain = spotting_list(regions, dx, rate, "29.97", merge_gap_s=0.0)
    fps = 30 * NTSC
    for s, p in zip(spots, plain):
        assert (s.start_s, s.end_s, s.level_lufs) == (p.start_s, p.end_s, p.level_lufs)    # media seconds
        assert s.start_tc == smpte_label(107890 + math.floor(Fraction(s.start_s) * fps), 30, 2)
        assert s.end_tc == smpte_label(107890 + math.floor(Fraction(s.end_s) * fps), 30, 2)
    assert spots[0].start_tc == "01:00:00;12"                               # 00:59:59;28 + 14 frames
    assert spots[1].start_tc.startswith("01:00:02;")                        # across the hour
    assert spotting_list(regions, dx, rate, StartTimecode.from_samples(172_972_800, rate))[0].start_tc == ""
    write_spotting_csv(tmp_path / "a.csv", spots)
    write_srt(tmp_path / "a.srt", spots)
    write_srt(tmp_path / "b.srt", plain)
    with open(tmp_path / "a.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == CSV_COLUMNS
    assert (tmp_path / "a.srt").read_text() == (tmp_path / "b.srt").read_text()   # SRT: media time, unchanged
    assert (tmp_path / "a.srt").read_text().splitlines()[1] == "00:00:00,500 --> 00:00:01,750"
