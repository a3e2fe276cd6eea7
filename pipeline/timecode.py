"""SMPTE timecode (ST 12-1) labels for frame numbers and seconds: 23.976, 24, 25, 29.97 DF, 30, 50,
59.94 DF and 60 fps. Labels start at 00:00:00:00 for frame 0 and do not wrap at 24 hours. `StartTimecode` is
where a source starts on that clock: a label and its rate, seconds and samples since midnight.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from fractions import Fraction

_NTSC = Fraction(1000, 1001)


@dataclass(frozen=True)
class Rate:
    """A timecode rate: `fps` frames per second of wall-clock, labelled with `nominal` frames per timecode
    second; `drop` frame labels (00, 01[, 02, 03]) skipped each minute except every tenth (drop frame)."""

    fps: Fraction
    nominal: int
    drop: int = 0


_RATES = {  # fps -> (nominal, drop)
    24 * _NTSC: (24, 0), Fraction(24): (24, 0), Fraction(25): (25, 0), 30 * _NTSC: (30, 2),
    Fraction(30): (30, 0), Fraction(50): (50, 0), 60 * _NTSC: (60, 4), Fraction(60): (60, 0),
}
_SUPPORTED = "23.976, 24, 25, 29.97 (drop frame), 30, 50, 59.94 (drop frame), 60"


def timecode_rate(fps: Fraction | float | str | Rate) -> Rate:
    """The Rate for `fps`: fractions (24000/1001), numbers or strings within 0.01 fps of a supported rate
    ("23.976", "23.98", 29.97, "59.94"). 29.97 and 59.94 are drop frame; a string ending in "NDF" asks for
    non-drop labels ("29.97 NDF"), one ending in "DF" insists on drop frame. ValueError otherwise."""
    if isinstance(fps, Rate):
        return fps
    mode = None
    if isinstance(fps, str):
        m = re.fullmatch(r"\s*([\d./]+)\s*(N?DF)?\s*", fps, re.IGNORECASE)
        if not m:
            raise ValueError(f"cannot read frame rate {fps!r}: supported rates are {_SUPPORTED}")
        mode = m.group(2) and m.group(2).upper()
        try:
            fps = Fraction(m.group(1)) if "/" in m.group(1) else float(m.group(1))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"cannot read frame rate {fps!r}: supported rates are {_SUPPORTED}") from None
    for rate, (nominal, drop) in _RATES.items():
        if abs(float(fps) - float(rate)) < 0.01:
            if mode == "DF" and not drop:
                raise ValueError(f"{float(rate):.3f} fps has no drop-frame timecode (only 29.97 and 59.94)")
            return Rate(rate, nominal, 0 if mode == "NDF" else drop)
    raise ValueError(f"unsupported timecode frame rate {float(fps):g}: supported rates are {_SUPPORTED}")


def frames(seconds: float | Fraction, fps: Fraction | float | str | Rate) -> int:
    """The number of the frame holding `seconds` (>= 0) of wall-clock: floor(seconds * fps), exact for a
    Fraction. A 1e-6 frame tolerance keeps k / fps on frame k despite float rounding."""
    if not 0 <= seconds < math.inf:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds}")
    exact = Fraction(seconds) if isinstance(seconds, (Fraction, int)) else Fraction(float(seconds))
    return math.floor(exact * timecode_rate(fps).fps + Fraction(1, 10**6))


def frame_label(frame: int, fps: Fraction | float | str | Rate) -> str:
    """The label of frame number `frame` (>= 0): HH:MM:SS:FF, or HH:MM:SS;FF for drop frame."""
    rate = timecode_rate(fps)
    if frame < 0:
        raise ValueError(f"frame number must be >= 0, got {frame}")
    if rate.drop:  # SMPTE ST 12-1 drop frame: skip `drop` labels per minute, except minutes 0, 10, 20, ...
        per_10min = rate.nominal * 600 - 9 * rate.drop  # 17982 at 29.97, 35964 at 59.94
        per_min = rate.nominal * 60 - rate.drop  # frames in a minute that drops labels: 1798, 3596
        tens, rest = divmod(frame, per_10min)
        frame += 9 * rate.drop * tens + (rate.drop * ((rest - rate.drop) // per_min) if rest >= rate.drop else 0)
    secs, ff = divmod(frame, rate.nominal)
    mins, ss = divmod(secs, 60)
    hh, mm = divmod(mins, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if rate.drop else ':'}{ff:02d}"


def format_timecode(seconds: float, fps: Fraction | float | str | Rate) -> str:
    """Timecode label of the frame holding `seconds` of wall-clock (see `frames`). 23.976 counts 24 labels
    per timecode second, so it runs 0.1 % slow against the clock; drop frame keeps up with it."""
    return frame_label(frames(seconds, fps), fps)


_LABEL = re.compile(r"\s*(\d+):(\d\d):(\d\d)([:;.,])(\d\d)\s*")


def label_fields(text: str) -> tuple[int, int, int, int, bool]:
    """(hours, minutes, seconds, frames, drop frame) of label `text`: HH:MM:SS:FF, or HH:MM:SS;FF (also '.' or
    ',' before FF) for drop frame, as SMPTE ST 12-1 writes it. ValueError for a malformed label or minutes or
    seconds over 59; the frames are checked against a rate by `parse_timecode`."""
    m = _LABEL.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"cannot read timecode {text!r}: expected HH:MM:SS:FF (HH:MM:SS;FF for drop frame)")
    hh, mm, ss, ff = (int(m.group(i)) for i in (1, 2, 3, 5))
    if mm > 59 or ss > 59:
        raise ValueError(f"timecode {text!r} has minutes or seconds over 59")
    return hh, mm, ss, ff, m.group(4) != ":"


def parse_timecode(text: str, fps: Fraction | float | str | Rate) -> int:
    """The frame number of label `text` (HH:MM:SS:FF; ';' or '.' before FF also read). ValueError for a
    malformed label, a field out of range or a label that drop frame skips."""
    rate = timecode_rate(fps)
    hh, mm, ss, ff, _ = label_fields(text)
    if ff >= rate.nominal:
        raise ValueError(f"timecode {text!r} has a field out of range at {rate.nominal} frames per second")
    if rate.drop and ss == 0 and ff < rate.drop and mm % 10:
        raise ValueError(f"timecode {text!r} does not exist in drop frame (labels ;00-;{rate.drop - 1:02d} are "
                         f"skipped at the start of each minute but every tenth)")
    minutes = 60 * hh + mm
    return (60 * minutes + ss) * rate.nominal + ff - rate.drop * (minutes - minutes // 10)


def label_rate(text: str, fps: Fraction | float | str | Rate) -> Rate:
    """The Rate label `text` counts at: `fps`, drop frame when the label says so (';' before the frames, as
    ffprobe writes a drop-frame tmcd track) and non-drop otherwise, so a 29.97 "01:00:00:00" is 29.97 NDF.
    ValueError for a drop-frame label at a rate that has none."""
    rate = timecode_rate(fps)
    if not label_fields(text)[4]:
        return dataclasses.replace(rate, drop=0)
    try:
        return timecode_rate(f"{rate.fps} DF")
    except ValueError as exc:
        raise ValueError(f"timecode {text!r} is drop frame, but {exc}") from None


@dataclass(frozen=True)
class StartTimecode:
    """Where a source starts on the clock: `seconds` of wall-clock since midnight (exact) and the timecode
    `rate`; `rate` is None where only the sample position is known (a BWF's TimeReference with no frame rate).

    Wall-clock, as BWF and iXML count it: TimeReference is "the first sample count since midnight" (EBU Tech
    3285), so a label is converted through its frame count at the real rate, frames x 1001/24000 s at 23.976:
    01:00:00:00 at 23.976 is 86400 frames = 3603.6 s = 172 972 800 samples at 48 kHz (the convention
    MediaInfo and BWF MetaEdit read TimeReference with, MediaArea/MediaInfoLib#2110; the same 2002 samples per
    23.976 frame that Pro Tools counts at 48 kHz), and 01:00:00;00 at 29.97 DF is 107892 frames = 3599.9964 s.
    """

    seconds: Fraction
    rate: Rate | None = None

    @classmethod
    def from_label(cls, text: str, fps: Fraction | float | str | Rate) -> StartTimecode:
        """The start labelled `text` at `fps` (drop frame as the label says: `label_rate`). ValueError if the
        label or the rate is not SMPTE timecode."""
        rate = label_rate(text, fps)
        return cls(parse_timecode(text, rate) / rate.fps, rate)

    @classmethod
    def from_samples(cls, samples: int, sample_rate: int, fps=None) -> StartTimecode:
        """The start at sample `samples` since midnight at `sample_rate` Hz (a BWF TimeReference), labelled at
        `fps` when given."""
        return cls(Fraction(samples, sample_rate), timecode_rate(fps) if fps is not None else None)

    @property
    def frame(self) -> int | None:
        """The number (since midnight) of the frame holding the start; None without a rate."""
        return None if self.rate is None else frames(self.seconds, self.rate)

    @property
    def label(self) -> str:
        """The start's label ("01:00:00:00", "00:59:59;28"); "" without a rate."""
        return "" if self.rate is None else frame_label(self.frame, self.rate)

    @property
    def text(self) -> str:
        """The label, or without a rate the wall-clock time since midnight, HH:MM:SS.mmm."""
        if self.rate is not None:
            return self.label
        ms = math.floor(self.seconds * 1000 + Fraction(1, 2))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    def samples(self, sample_rate: int) -> int:
        """The start in samples since midnight at `sample_rate` Hz (rounded to the nearest): the value of a
        BWF TimeReference and of iXML's TIMESTAMP_SAMPLES_SINCE_MIDNIGHT."""
        return math.floor(self.seconds * sample_rate + Fraction(1, 2))

    def label_at(self, offset_s: float) -> str:
        """The label of the frame holding `offset_s` (>= 0) seconds after the start, counted in frames so it is
        exact to the frame (start frame + offset frames, drop frame included); "" without a rate."""
        if self.rate is None:
            return ""
        if not 0 <= offset_s < math.inf:
            raise ValueError(f"offset must be finite and >= 0, got {offset_s}")
        return frame_label(frames(self.seconds + Fraction(float(offset_s)), self.rate), self.rate)
