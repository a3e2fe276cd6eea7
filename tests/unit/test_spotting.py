"""pipeline.timecode (SMPTE labels, drop frame, round trips) and pipeline.spotting (spots, CSV, SubRip)."""
from __future__ import annotations

import csv
import math
import re
from fractions import Fraction

import numpy as np
import pytest

from pipeline.spotting import CSV_COLUMNS, Spot, spotting_list, srt_time, write_spotting_csv, write_srt
from pipeline.timecode import format_timecode, frame_label, frames, parse_timecode, timecode_rate
from pipeline.vad import Region, merge_regions
from reference import loudness as oracle

RATE = 48_000
RATES = ["23.976", "24", "25", "29.97", "30", "50", "59.94", "60"]

# --------------------------------------------------------------------------------------------------
# timecode


@pytest.mark.parametrize("fps, frame, label", [
    ("29.97", 0, "00:00:00;00"), ("29.97", 1799, "00:00:59;29"), ("29.97", 1800, "00:01:00;02"),
    ("29.97", 3597, "00:01:59;29"), ("29.97", 3598, "00:02:00;02"), ("29.97", 17982, "00:10:00;00"),
    ("29.97", 17981, "00:09:59;29"), ("29.97", 107892, "01:00:00;00"),
    ("59.94", 3600, "00:01:00;04"), ("59.94", 35964, "00:10:00;00"), ("59.94", 215784, "01:00:00;00"),
    ("29.97 NDF", 1800, "00:01:00:00"), ("23.976", 86313, "00:59:56:09"),
    ("24", 86400, "01:00:00:00"), ("25", 26, "00:00:01:01"), ("50", 90000, "00:30:00:00"),
    ("60", 59, "00:00:00:59"), ("30", 108000, "01:00:00:00"),
])
def test_known_labels(fps, frame, label):
    assert frame_label(frame, fps) == label
    assert parse_timecode(label, fps) == frame


def test_wall_clock():
    # drop frame keeps to the clock: one hour of wall-clock is 01:00:00;00 (within a frame)
    assert parse_timecode(format_timecode(3600.0, "29.97"), "29.97") == 107892 == parse_timecode("01:00:00;00", 29.97)
    assert format_timecode(3600.0, 59.94) == "01:00:00;00"
    # 23.976 counts 24 labels per timecode second: after 3600 s of clock, frame floor(3600 * 24000/1001) = 86313
    assert frames(3600.0, Fraction(24000, 1001)) == 86313
    assert format_timecode(3600.0, 24000 / 1001) == "00:59:56:09"
    assert format_timecode(3600.0, 25) == "01:00:00:00" and format_timecode(0.999, 25) == "00:00:00:24"
    for fps in RATES:  # frame k starts at k / fps: floats must not fall onto frame k - 1
        exact = timecode_rate(fps).fps
        assert all(frames(float(k / exact), fps) == k for k in range(0, 200_000, 997))


@pytest.mark.parametrize("fps", RATES)
def test_round_trip_every_7th_frame_for_2_hours(fps):
    rate = timecode_rate(fps)
    for frame in range(0, int(7200 * rate.fps), 7):
        assert parse_timecode(frame_label(frame, rate), rate) == frame


def _fields(label: str) -> tuple[int, int, int, int]:
    hh, mm, ss, ff = map(int, re.split("[:;]", label))
    return hh, mm, ss, ff


@pytest.mark.parametrize("fps", RATES)
def test_labels_are_monotonic_and_skip_only_drop_frames(fps):
    rate = timecode_rate(fps)
    for start in (0, int(3590 * rate.fps)):  # the first 12 minutes, and across the hour
        fields = [_fields(frame_label(f, rate)) for f in range(start, start + int(720 * rate.fps))]
        # each label read as a plain count of nominal frames must go up by 1, or by 1 + drop where
        # drop frame skips ;00 (and ;01, ...) at the start of a minute that is not a tenth minute
        counts = np.array([((hh * 60 + mm) * 60 + ss) * rate.nominal + ff for hh, mm, ss, ff in fields])
        steps = np.diff(counts)
        dropped = np.array([bool(rate.drop) and ss == 0 and ff == rate.drop and mm % 10 != 0
                            for hh, mm, ss, ff in fields[1:]])
        assert (steps[~dropped] == 1).all()
        assert (steps[dropped] == 1 + rate.drop).all()
        minutes = [hh * 60 + mm for hh, mm, ss, ff in fields]
        new_minutes = [b for a, b in zip(minutes, minutes[1:]) if b != a]
        assert len(new_minutes) >= 11
        assert dropped.sum() == (sum(m % 10 != 0 for m in new_minutes) if rate.drop else 0)


def test_rates_and_bad_labels():
    assert timecode_rate("24000/1001").nominal == 24 and timecode_rate(23.98).fps == Fraction(24000, 1001)
    assert timecode_rate("29.97DF").drop == 2 and timecode_rate("29.97 ndf").drop == 0
    for bad in (23.5, "48", "12.5", "25 DF", "fast"):
        with pytest.raises(ValueError, match="frame rate|drop-frame"):
            timecode_rate(bad)
    with pytest.raises(ValueError, match="does not exist in drop frame"):
        parse_timecode("00:01:00;01", "29.97")
    assert parse_timecode("00:10:00;00", "29.97") == 17982  # every tenth minute keeps ;00
    with pytest.raises(ValueError, match="out of range"):
        parse_timecode("00:00:00:25", 25)
    with pytest.raises(ValueError, match="HH:MM:SS:FF"):
        parse_timecode("1:2:3", 25)
    with pytest.raises(ValueError, match=">= 0"):
        format_timecode(-0.5, 25)


# --------------------------------------------------------------------------------------------------
# spotting


def tones(regions, seconds: float, peak: float, channels: int = 1, channel: int = 0) -> np.ndarray:
    """(n, channels) float32: a 1 kHz sine of `peak` amplitude in `channel` over each region, silence elsewhere."""
    x = np.zeros((round(seconds * RATE), channels), np.float32)
    t = np.arange(x.shape[0]) / RATE
    on = np.any([(t >= r.start_s) & (t < r.end_s) for r in merge_regions(regions)], axis=0)
    x[on, channel] = peak * np.sin(2 * np.pi * 1000 * t[on])
    return x


def read_srt(path) -> list[tuple[int, float, float, str]]:
    """A tiny SubRip reader: (index, start_s, end_s, text) per cue."""
    def secs(ts):
        h, m, s, ms = map(int, re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3})", ts).groups())
        return h * 3600 + m * 60 + s + ms / 1000
    cues = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        if block.strip():
            index, times, *text = block.strip("\n").split("\n")
            start, end = times.split(" --> ")
            cues.append((int(index), secs(start), secs(end), "\n".join(text)))
    return cues


REGIONS = [(1.0, 2.0), Region(2.3, 3.0), (5.0, 5.2), (8.5, 9.75)]
PEAK = 10 ** (-20 / 20)  # 1 kHz at -20 dBFS peak reads -23.01 LUFS and -23.01 dBFS RMS


@pytest.mark.parametrize("layout, channels", [("mono", 1), ("stereo", 2), ("5.1", 6)])
def test_spot_level_is_the_integrated_loudness_of_its_samples(layout, channels):
    """Each spot's level is the BS.1770-4 integrated loudness of its own samples (the streaming meter fed them as
    one block): the oracle's (pyloudnorm's) within 1e-5 LU, so the CSV's 0.01 dB reads the same; -inf for a
    spot under 400 ms (the 0.2 s one)."""
    rng = np.random.default_rng(channels)
    dx = tones(REGIONS, 10.0, PEAK, channels)
    levels = np.repeat(rng.uniform(0.001, 0.1, 20), RATE // 2)[:, None]  # noise stepping in level every 0.5 s
    dx += (rng.standard_normal(dx.shape) * levels).astype(np.float32)
    spots = spotting_list(REGIONS, dx, RATE, None, layout=layout)
    assert len(spots) == 3 and spots[1].level_lufs == -math.inf
    for s in spots:
        ref = oracle.integrated_loudness(dx[round(s.start_s * RATE) : round(s.end_s * RATE)], RATE, layout)
        assert s.level_lufs == ref or abs(s.level_lufs - ref) <= 1e-5
        assert f"{s.level_lufs:.2f}" == f"{ref:.2f}"


@pytest.mark.parametrize("fps", ["23.976", "29.97", 25])
def test_spots_merge_measure_and_label(fps):
    dx = tones(REGIONS, 10.0, PEAK)
    spots = spotting_list(REGIONS, dx, RATE, fps)
    assert [(s.index, s.start_s, s.end_s) for s in spots] == [(1, 1.0, 3.0), (2, 5.0, 5.2), (3, 8.5, 9.75)]
    for s in spots:
        assert s.duration_s == pytest.approx(s.end_s - s.start_s)
        assert s.start_tc == format_timecode(s.start_s, fps) and s.end_tc == format_timecode(s.end_s, fps)
    assert spots[2].level_lufs == pytest.approx(-23.01, abs=0.1)
    assert spots[2].level_rms_dbfs == pytest.approx(-23.01, abs=0.05)
    # spot 1 holds a 0.3 s gap of silence: RMS reads 10 log10(1.7 / 2) dB lower, BS.1770 a little lower
    assert spots[0].level_rms_dbfs == pytest.approx(-23.01 + 10 * math.log10(1.7 / 2), abs=0.05)
    assert -24.0 < spots[0].level_lufs < -23.0
    assert spots[1].level_lufs == -math.inf  # 0.2 s: shorter than one 400 ms block
    assert spots[1].level_rms_dbfs == pytest.approx(-23.01, abs=0.05)
    assert [s.index for s in spotting_list(REGIONS, dx, RATE, fps, merge_gap_s=0.0)] == [1, 2, 3, 4]


def test_spots_5_1_audio_only_and_clipped():
    dx = tones([(0.5, 1.5)], 2.0, PEAK, channels=6, channel=2)  # dialogue in C
    spots = spotting_list([(0.5, 1.5), (1.8, 2.6)], dx, RATE, None, merge_gap_s=0.2)
    assert [(s.start_s, s.end_s) for s in spots] == [(0.5, 1.5), (1.8, 2.0)]  # clipped to the audio
    assert spots[0].start_tc == spots[0].end_tc == ""
    assert spots[0].level_lufs == pytest.approx(-23.01, abs=0.1)
    assert spots[0].level_rms_dbfs == pytest.approx(-23.01, abs=0.05)
    assert spots[1].level_rms_dbfs == -math.inf  # silent


def test_csv_and_srt_round_trip(tmp_path):
    spots = spotting_list(REGIONS, tones(REGIONS, 10.0, PEAK), RATE, "29.97")
    write_spotting_csv(tmp_path / "spots.csv", spots)
    write_srt(tmp_path / "spots.srt", spots)
    with open(tmp_path / "spots.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS and len(rows) == len(spots)
    for row, s in zip(rows, spots):
        assert int(row["index"]) == s.index and (row["start_tc"], row["end_tc"]) == (s.start_tc, s.end_tc)
        for col in ("start_s", "end_s", "duration_s"):
            assert float(row[col]) == pytest.approx(getattr(s, col), abs=5e-4)
        for col in ("level_lufs", "level_rms_dbfs"):
            assert float(row[col]) == pytest.approx(getattr(s, col), abs=5e-3) or float(row[col]) == getattr(s, col)
        assert parse_timecode(row["start_tc"], "29.97") == frames(float(row["start_s"]), "29.97")
    assert rows[1]["level_lufs"] == "-inf"
    cues = read_srt(tmp_path / "spots.srt")
    assert [(i, a, b) for i, a, b, _ in cues] == [(s.index, s.start_s, s.end_s) for s in spots]
    assert cues[2][3] == "[DIALOGUE 3]"
    assert not list(tmp_path.glob(".*"))  # no partial files left behind


def test_srt_text_and_times(tmp_path):
    spot = Spot(7, 3661.2345, 3662.0, 0.7655, "", "", -20.0, -20.0)
    write_srt(tmp_path / "one.srt", [spot], text=lambda s: f"ROSE:\n\nLine {s.index}.\n")
    assert (tmp_path / "one.srt").read_text() == "7\n01:01:01,234 --> 01:01:02,000\nROSE:\nLine 7.\n\n"
    assert srt_time(0.0004) == "00:00:00,000" and srt_time(59.9996) == "00:01:00,000"


def test_empty_lists_write_valid_files(tmp_path):
    assert spotting_list([], np.zeros((RATE, 2), np.float32), RATE, 24) == []
    write_spotting_csv(tmp_path / "empty.csv", [])
    write_srt(tmp_path / "empty.srt", [])
    assert (tmp_path / "empty.csv").read_text() == ",".join(CSV_COLUMNS) + "\n"
    assert (tmp_path / "empty.srt").read_text() == "" and read_srt(tmp_path / "empty.srt") == []
