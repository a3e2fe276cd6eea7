"""The start timecode of a source: read from ffprobe's JSON (pure, tolerant: a bad value is reported, not raised)
and the start a reel's outputs carry, `--start-tc` / `--tc-rate` applied.

What ffprobe (ffmpeg 5.1) shows, checked on files made with `ffmpeg -timecode` / `-metadata time_reference=N`:
- MOV / MP4: a data stream with codec tag `tmcd` whose tag `timecode` is the start ("00:59:59;28" for drop
  frame) and whose `avg_frame_rate` is the timecode track's own rate (timescale / frame duration); the picture
  stream carries the same `timecode` tag;
- MXF: format tag `timecode` (the material package's timecode), counted at the picture's rate;
- Matroska: format tag `TIMECODE`, counted at the picture's rate;
- BWF / WAV: format tag `time_reference`, the bext TimeReference in samples since midnight at the file's rate
  (absent when it is 0); no frame rate, so a label needs `--tc-rate`.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import ConfigError, MediaError
from .timecode import Rate, StartTimecode, frame_label, frames, label_fields, timecode_rate

HINT = "give --start-tc (and --tc-rate) to set the start yourself"


@dataclass(frozen=True)
class SourceTimecode:
    """The start timecode a file declares, as probed: `start` when it reads, else `problem` (one line) says why
    not. `origin` says where it was found; `label` is the file's own text ("" for a bext TimeReference)."""

    origin: str                       # "timecode track", "container tag", "picture stream tag", "bext TimeReference"
    label: str = ""
    start: StartTimecode | None = None
    problem: str = ""


def _tags(entry: dict) -> dict:
    tags = entry.get("tags") if isinstance(entry, dict) else None
    return {str(k).lower(): v for k, v in tags.items()} if isinstance(tags, dict) else {}


def _rate(text) -> Fraction | None:
    try:
        value = Fraction(text) if isinstance(text, str) and text else None
    except (ValueError, ZeroDivisionError):
        return None
    return value if value and value > 0 else None


def _fps(rate: Fraction) -> str:
    """17 -> "17", 24000/1001 -> "23.976 (24000/1001)"."""
    return str(rate) if rate.denominator == 1 else f"{float(rate):.3f} ({rate})"


def _from_label(origin: str, label, rate: Fraction | None) -> SourceTimecode:
    """The start labelled `label` at `rate`, or the problem with it."""
    label = str(label).strip()
    if rate is None:
        try:
            label_fields(label)
        except ValueError as exc:
            return SourceTimecode(origin, label, problem=f"start timecode of the {origin}: {exc}; {HINT}")
        return SourceTimecode(origin, label, problem=f"start timecode {label} of the {origin} has no frame rate "
                              "to count it at (no picture): give --tc-rate")
    try:
        return SourceTimecode(origin, label, StartTimecode.from_label(label, rate))
    except ValueError as exc:
        return SourceTimecode(origin, label, problem=f"start timecode {label!r} of the {origin} at "
                              f"{_fps(rate)} fps: {exc}; {HINT}")


def _tmcd(streams: list) -> SourceTimecode | None:
    """The first MOV/MP4 timecode track (`tmcd`): its `timecode` tag at its own rate."""
    for s in streams:
        if isinstance(s, dict) and s.get("codec_tag_string") == "tmcd":
            label, rate = _tags(s).get("timecode"), _rate(s.get("avg_frame_rate"))
            if label:
                return _from_label("timecode track", label, rate)
            return SourceTimecode("timecode track", problem=f"the timecode track (stream {s.get('index', '?')}) "
                                  f"has no readable start (rate {s.get('avg_frame_rate', 'unknown')}); {HINT}")
    return None


def _bext(fmt: dict, sample_rate: int | None, picture: Fraction | None) -> SourceTimecode | None:
    """A BWF's bext TimeReference (samples since midnight at the file's rate)."""
    value = _tags(fmt).get("time_reference")
    if value in (None, "", "0"):
        return None
    origin = "bext TimeReference"
    try:
        samples = int(str(value).strip())
    except ValueError:
        samples = -1
    if samples < 0 or samples >= 1 << 63 or not sample_rate:
        return SourceTimecode(origin, problem=f"bext TimeReference {value!r} is not a sample count; {HINT}")
    try:
        fps = timecode_rate(picture) if picture else None
    except ValueError:
        fps = None
    return SourceTimecode(origin, start=StartTimecode.from_samples(samples, sample_rate, fps))


def read_source_timecode(streams: list, fmt: dict, picture: Fraction | None,
                         sample_rate: int | None) -> SourceTimecode | None:
    """The start timecode in ffprobe's `-show_streams -show_format` JSON (`streams`, `format`): a MOV/MP4
    timecode track at its own rate, else a container tag (MXF `timecode`, Matroska `TIMECODE`) or the
    picture stream's `timecode` tag at the `picture` frame rate, else a bext TimeReference (samples at
    `sample_rate`, the first audio stream's). None when the file declares none. Never raises."""
    streams = streams if isinstance(streams, list) else []
    found = _tmcd(streams)
    if found is not None:
        return found
    video = [s for s in streams if isinstance(s, dict) and s.get("codec_type") == "video"]
    for origin, label in (("container tag", _tags(fmt).get("timecode")),
                          ("picture stream tag", _tags(video[0]).get("timecode") if video else None)):
        if label:
            return _from_label(origin, label, picture)
    return _bext(fmt if isinstance(fmt, dict) else {}, sample_rate, picture)


def check_options(start_tc: str | None, tc_rate: str | None) -> None:
    """`--start-tc` and `--tc-rate` checked before any file is processed: ConfigError naming the option."""
    if start_tc is not None:
        try:
            label_fields(start_tc)
        except ValueError as exc:
            raise ConfigError(f"--start-tc: {exc}") from None
    if tc_rate is not None:
        try:
            rate = timecode_rate(tc_rate)
            if start_tc is not None:
                StartTimecode.from_label(start_tc, rate)
        except ValueError as exc:
            raise ConfigError(f"--tc-rate {tc_rate}: {exc}" if start_tc is None else f"--start-tc {start_tc} "
                              f"at --tc-rate {tc_rate}: {exc}") from None


def smpte_rate(fps: Fraction | None) -> Rate | None:
    """The timecode rate of a picture's frame rate, None for none or one that has no SMPTE timecode (120 fps)."""
    try:
        return timecode_rate(fps) if fps else None
    except ValueError:
        return None


def reel_start(found: SourceTimecode | None, picture: Fraction | None, path: Path, *,
               start_tc: str | None = None, tc_rate: str | None = None) -> StartTimecode | None:
    """Where a reel's outputs start: `start_tc` (a label) when given, else the source's start (`found`), else
    00:00:00:00. Labels count at `tc_rate` when given (the rate of an audio-only source, which has none of its
    own, or a correction), else at the source timecode's own rate or the `picture` frame rate (a SMPTE one).
    None for audio with no timecode and no rate: seconds only. MediaError (one line, `path` named) when the
    source's timecode cannot be read, or a label cannot be counted."""
    check_options(start_tc, tc_rate)
    rate = timecode_rate(tc_rate) if tc_rate else None
    if start_tc or found is None:
        own = found.start.rate if found is not None and found.start is not None else None
        fps = rate or own or smpte_rate(picture)
        if not start_tc:
            return StartTimecode(Fraction(0), fps) if fps else None
        if fps is None:
            raise MediaError(f"--start-tc {start_tc} needs a frame rate and the file has none: give --tc-rate", path)
        label, what = start_tc, "--start-tc"
    elif rate is not None and found.label:
        label, fps, what = found.label, rate, f"start timecode of the {found.origin} at --tc-rate"
    elif found.start is not None:
        return found.start if rate is None else StartTimecode(found.start.seconds, rate)
    else:
        raise MediaError(found.problem, path)
    try:
        return StartTimecode.from_label(label, fps)
    except ValueError as exc:
        raise MediaError(f"{what}: {exc}", path) from None


def picture_label(start: StartTimecode | None, picture: Fraction | None) -> str | None:
    """The timecode a picture at `picture` fps starts at so that it lines up with `start` (the stems' start):
    `start`'s own label when it counts at the picture's rate (its drop-frame flag kept), else the label of the
    picture frame holding `start` (--start-tc 10:00:00:00 --tc-rate 25 on a 23.976 picture: 09:59:24:00, the
    same instant). None without a start, a picture or a SMPTE picture rate."""
    rate = smpte_rate(picture)
    if start is None or rate is None:
        return None
    if start.rate is not None and start.rate.fps == rate.fps:
        return start.label
    return frame_label(frames(start.seconds, rate), rate)
