"""Dialogue spotting lists for ADR and subtitling: one row per line of dialogue with times, timecode and
level, written as CSV and as SubRip (.srt) subtitles, both atomically. Times are media seconds (from the start
of the audio; the SRT too, as players expect); timecodes are the source's: its start timecode + the offset.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np

from .errors import MediaError
from .layout import find_layout
from .meter import integrated_loudness
from .outputs import write_text_atomic
from .timecode import Rate, StartTimecode, timecode_rate
from .vad import RegionLike, merge_regions

CSV_COLUMNS = ("index", "start_s", "end_s", "duration_s", "start_tc", "end_tc", "level_lufs", "level_rms_dbfs")


@dataclass(frozen=True)
class Spot:
    """One line of dialogue. Times in seconds of wall-clock from the start of the audio; timecodes label the
    frames holding start_s and end_s on the source's timecode, which starts at its start timecode ('' for
    audio-only material with no timecode rate)."""

    index: int  # 1, 2, ... in time order
    start_s: float
    end_s: float
    duration_s: float
    start_tc: str
    end_tc: str
    level_lufs: float  # BS.1770-4 integrated loudness of the DX over the spot; -inf under 400 ms or silent
    level_rms_dbfs: float  # RMS level of the DX over the spot (use it where level_lufs is -inf); -inf if silent


def _rms_dbfs(x: np.ndarray, keep: list[int]) -> float:
    """10 log10 of the sum over channels `keep` of each channel's mean square (plain RMS dBFS for mono); the
    LFE is not among them, as BS.1770 leaves it out."""
    x = x[:, keep]
    if x.shape[0] == 0:
        return -math.inf
    power = float(np.sum(np.mean(np.square(x, dtype=np.float64), axis=0)))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


Clock = StartTimecode | Fraction | float | str | Rate | None


def _clock(timecode: Clock) -> StartTimecode | None:
    """A StartTimecode as given; a frame rate alone is timecode from 00:00:00:00 at that rate."""
    if timecode is None or isinstance(timecode, StartTimecode):
        return timecode
    return StartTimecode(Fraction(0), timecode_rate(timecode))


def spotting_list(regions: Iterable[RegionLike], dx: np.ndarray, rate: int, timecode: Clock, *,
                  merge_gap_s: float = 0.5, layout: str | None = None) -> list[Spot]:
    """Spots for speech `regions` (Region or (start_s, end_s) pairs, seconds) of the dialogue stem `dx`.

    `dx` is (samples, channels) float at `rate` Hz, full scale 1.0 (a 1-D array is mono); `layout` as in
    meter.LoudnessMeter (default by channel count: mono, stereo, 5.1 in L R C LFE Ls Rs order).
    Regions at most `merge_gap_s` apart become one spot; spots are clipped to the audio. `timecode` is the
    source's start (a timecode.StartTimecode: a spot's timecode is the start + its offset, counted in frames,
    drop frame included), or a frame rate alone for timecode from 00:00:00:00 (see timecode.timecode_rate);
    None, or a start without a rate, for audio-only material, which leaves start_tc and end_tc empty.
    """
    x = np.asarray(dx)
    x = x[:, None] if x.ndim == 1 else x
    return _spots(regions, _Reader(x.shape[0], x.shape[1], lambda a, n: x[a : a + n]), rate, _clock(timecode),
                  merge_gap_s, layout)


def spotting_list_from_wav(regions: Iterable[RegionLike], wav_path: Path, rate: int, timecode: Clock, *,
                           merge_gap_s: float = 0.5, layout: str | None) -> list[Spot]:
    """`spotting_list` of the dialogue stem in the WAV (or RF64) file `wav_path`, reading only each spot's
    samples from it: memory O(the longest spot), whatever the reel's length. `rate` must be the file's."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(wav_path)) as f:
            if f.samplerate != rate:
                raise ValueError(f"{wav_path}: sample rate {f.samplerate} Hz, expected {rate} Hz")

            def read(a: int, n: int) -> np.ndarray:
                f.seek(a)
                return f.read(n, dtype="float32", always_2d=True)

            return _spots(regions, _Reader(f.frames, f.channels, read), rate, _clock(timecode), merge_gap_s,
                          layout)
    except sf.LibsndfileError as exc:
        raise MediaError(f"cannot read the dialogue stem: {exc.error_string}", wav_path) from exc


class _Reader(NamedTuple):
    """Audio as pipeline.stream's readers give it: `frames` x `channels`, `read(start, count)` the samples
    [start, start + count) as (count, channels) float."""

    frames: int
    channels: int
    read: Callable[[int, int], np.ndarray]


def _spots(regions: Iterable[RegionLike], dx, rate: int, clock: StartTimecode | None, merge_gap_s: float,
           layout: str | None) -> list[Spot]:
    """Spots of the dialogue stem read from `dx` (a reader: `frames`, `channels`, `read(start, count)`); see
    `spotting_list`. Each spot's level is measured on its own samples only."""
    duration = dx.frames / rate
    lay = find_layout(layout, dx.channels)
    keep = list(lay.full_band) if lay is not None else list(range(dx.channels))
    spots = []
    for r in merge_regions(regions, merge_gap_s):
        start, end = max(0.0, r.start_s), min(duration, r.end_s)
        if end <= start:
            continue
        a = round(start * rate)
        seg = dx.read(a, round(end * rate) - a)
        spots.append(Spot(
            index=len(spots) + 1, start_s=start, end_s=end, duration_s=end - start,
            start_tc=clock.label_at(start) if clock is not None else "",
            end_tc=clock.label_at(end) if clock is not None else "",
            level_lufs=integrated_loudness(seg, rate, layout), level_rms_dbfs=_rms_dbfs(seg, keep)))
    return spots


def write_spotting_csv(path: Path, spots: Iterable[Spot]) -> None:
    """CSV with a header row (CSV_COLUMNS); times to the millisecond, levels to 0.01 dB ("-inf" if none)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    out.writerows(spot_row(s) for s in spots)
    write_text_atomic(Path(path), buf.getvalue())


def spot_row(s: Spot) -> list:
    """A spot's CSV_COLUMNS values: times to the millisecond, levels to 0.01 dB ("-inf" if none)."""
    return [s.index, f"{s.start_s:.3f}", f"{s.end_s:.3f}", f"{s.duration_s:.3f}", s.start_tc, s.end_tc,
            f"{s.level_lufs:.2f}", f"{s.level_rms_dbfs:.2f}"]


def srt_time(seconds: float) -> str:
    """SubRip time HH:MM:SS,mmm of `seconds` of wall-clock, rounded to the millisecond."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_srt(path: Path, spots: Iterable[Spot],
              text: Callable[[Spot], str] = lambda spot: f"[DIALOGUE {spot.index}]") -> None:
    """SubRip subtitles: per spot its index, `start --> end` (wall-clock ms), text(spot) and a blank line.
    Blank lines inside a text are dropped (they would end the cue); no spots make an empty file."""
    cues = []
    for s in spots:
        lines = "\n".join(line for line in text(s).splitlines() if line.strip())
        cues.append(f"{s.index}\n{srt_time(s.start_s)} --> {srt_time(s.end_s)}\n{lines}\n\n")
    write_text_atomic(Path(path), "".join(cues))
