"""SMPTE timecode (ST 12-1) labels for frame numbers and seconds: 23.976, 24, 25, 29.97 DF, 30, 50,
59.94 DF and 60 fps. Labels start at 00:00:00:00 for frame 0 and do not wrap at 24 hours.
"""
from __future__ import annotations

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


def frames(seconds: float, fps: Fraction | float | str | Rate) -> int:
    """The number of the frame holding `seconds` (>= 0) of wall-clock: floor(seconds * fps). A 1e-6 frame
    tolerance keeps k / fps on frame k despite float rounding."""
    if not 0 <= seconds < math.inf:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds}")
    return math.floor(Fraction(float(seconds)) * timecode_rate(fps).fps + Fraction(1, 10**6))


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


def parse_timecode(text: str, fps: Fraction | float | str | Rate) -> int:
    """The frame number of label `text` (HH:MM:SS:FF; ';' or '.' before FF also read). ValueError for a
    malformed label, a field out of range or a label that drop frame skips."""
    rate = timecode_rate(fps)
    m = re.fullmatch(r"\s*(\d+):(\d\d):(\d\d)[:;.,](\d\d)\s*", text)
    if not m:
        raise ValueError(f"cannot read timecode {text!r}: expected HH:MM:SS:FF")
    hh, mm, ss, ff = map(int, m.groups())
    if mm > 59 or ss > 59 or ff >= rate.nominal:
        raise ValueError(f"timecode {text!r} has a field out of range at {rate.nominal} frames per second")
    if rate.drop and ss == 0 and ff < rate.drop and mm % 10:
        raise ValueError(f"timecode {text!r} does not exist in drop frame (labels ;00-;{rate.drop - 1:02d} are "
                         f"skipped at the start of each minute but every tenth)")
    minutes = 60 * hh + mm
    return (60 * minutes + ss) * rate.nominal + ff - rate.drop * (minutes - minutes // 10)
