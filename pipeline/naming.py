"""Output file names from a profile's templates: the fields a delivery spec puts in a name, each template checked
when the profile loads (one ConfigError naming the file and the key) and filled from a reel's values.

Fields: {title} (the reel's title), {stem} (MIX DX ME MX FX, or the profile's `stem_names` for them), {layout}
("6ch", "2ch", "8ch", "mono"), {rate} ("48k", "44.1k"), {bits} ("24b"), {fps} (the timecode rate without its
point: "23976", "24", "25", "2997") and, in per-channel names only, {channel} (Layout.labels: L R C LFE Ls Rs).
They are the items of Netflix's audio naming convention (Netflix Partner Help Center, "Asset Naming: Sound
Mastering and Music Archival", article 1500000261101: `chefs_table_s02e02_v03_FXSTEM_6ch_48k_24b_23976.L.wav`).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

from .config import check_choice, check_mapping
from .errors import ConfigError, MediaError
from .layout import LAYOUTS, Layout

STEMS = ("MIX", "DX", "ME", "MX", "FX")
FIELDS = ("title", "stem", "layout", "rate", "bits", "fps")   # of a stem's (interleaved) file name
CHANNEL = "channel"                                            # only in the names of one channel's file
DEFAULT_NAMING = "{title}_{stem}.wav"
SUFFIX = ".wav"
# What a stem name may hold: the characters Netflix allows in a file name ([a-z] [A-Z] [0-9] . _ -).
_STEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class NameFields:
    """One reel's values of the naming fields but {stem} and {channel}, which each file sets. `fps` is None when
    the reel has no frame rate (audio only, no timecode rate); `source` is the file named when that matters."""

    title: str
    layout: str       # "6ch"
    rate: str         # "48k"
    bits: str         # "24b"
    fps: str | None   # "23976"
    source: Path | None = None

    def with_layout(self, layout: Layout) -> NameFields:
        """The same values for files in `layout` (the stereo downmix of a 5.1 reel)."""
        return replace(self, layout=layout_field(layout))


def layout_field(layout: Layout) -> str:
    """{layout}: "mono" for one channel, else the channel count and "ch" ("2ch", "6ch", "8ch"), as Netflix's
    convention writes them (mono, 2ch, 6ch)."""
    return "mono" if layout.channels == 1 else f"{layout.channels}ch"


def rate_field(sample_rate: int) -> str:
    """{rate}: kHz and "k": 48000 -> "48k", 44100 -> "44.1k", 96000 -> "96k"."""
    return f"{sample_rate / 1000:g}k"


def fps_field(fps: Fraction | float) -> str:
    """{fps}: frames per second without the point, to three decimals: 24000/1001 -> "23976", 30000/1001 ->
    "2997", 25 -> "25", 60000/1001 -> "5994"."""
    text = f"{float(fps):.3f}".rstrip("0").rstrip(".")
    return text.replace(".", "")


def reel_fields(title: str, layout: Layout, sample_rate: int, bit_depth: int, fps: Fraction | None,
                source: Path | None = None) -> NameFields:
    """The naming fields of a reel: its title, layout, output rate and bit depth, and its frame rate (the start
    timecode's rate, else the picture's; None for audio with neither)."""
    return NameFields(title, layout_field(layout), rate_field(sample_rate), f"{bit_depth}b",
                      None if fps is None else fps_field(fps), source)


def channel_template(naming: str, channel_naming: str = "") -> str:
    """The per-channel template: `channel_naming`, or `naming` with ".{channel}" before ".wav" (Netflix's
    `..._DX.L.wav` form)."""
    return channel_naming or naming[: -len(SUFFIX)] + ".{" + CHANNEL + "}" + SUFFIX


def render(template: str, fields: NameFields, stem: str, channel: str | None = None) -> str:
    """The file name `template` gives a stem (its name in the spec: `stem`), or one `channel` of it. MediaError
    (naming `fields.source`) when the template asks for {fps} and the reel has no frame rate."""
    values = dict(title=fields.title, stem=stem, layout=fields.layout, rate=fields.rate, bits=fields.bits,
                  fps=fields.fps, channel=channel)
    if fields.fps is None and "fps" in used_fields(template):
        raise MediaError("the profile's naming has {fps}, but the file has no frame rate (audio only, no "
                         "timecode rate): give --tc-rate FPS (23.976, 24, 25, 29.97 …)", fields.source)
    return template.format(**values)


def used_fields(template: str) -> tuple[str, ...]:
    """The field names of `template`, in order (ValueError for one that does not parse)."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


def check_stem_names(value, source: str | Path) -> dict[str, str]:
    """`stem_names` from a profile: a mapping of some of MIX DX ME MX FX to the spec's names for them (letters,
    digits, `.`, `_`, `-`); ConfigError naming the key otherwise."""
    names = {}
    for stem, name in check_mapping(value, "stem_names", source).items():
        check_choice(stem, STEMS, "stem_names", source)
        if not isinstance(name, str) or not _STEM_NAME.fullmatch(name):
            raise ConfigError(f"{source}: stem_names.{stem} must be letters, digits, '.', '_' or '-' (starting "
                              f"with a letter or digit); got {name!r}", source)
        names[stem] = name
    return names


def check_template(template, key: str, source: str | Path, *, channel: bool) -> str:
    """A naming template as a profile gives it, or ConfigError (naming the file and `key`): plain fields only
    ({title} and {stem} required; {channel} required in, and only in, per-channel names), no '/', not hidden,
    ending in .wav."""
    allowed = FIELDS + ((CHANNEL,) if channel else ())
    problem = _template_problem(template, allowed, channel)
    if problem:
        fields = ", ".join("{" + name + "}" for name in allowed)
        raise ConfigError(f"{source}: {key} {problem} (fields: {fields}); got {template!r}", source)
    return template


def _template_problem(template, allowed: tuple[str, ...], channel: bool) -> str:
    """Why `template` is not a usable naming template ("" when it is)."""
    if not isinstance(template, str):
        return "must be a text such as '{title}_{stem}.wav'"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"does not parse ({exc})"
    for _, name, spec, conversion in parsed:
        if name is not None and name not in allowed:
            return (f"has {{{name}}}, which is only for per-channel names (channel_naming)"
                    if name == CHANNEL else f"has an unknown field {{{name}}}")
        if spec or conversion:
            return f"has {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}: " \
                   "fields take no conversion or format"
    names = {name for _, name, _, _ in parsed}
    required = ("title", "stem") + ((CHANNEL,) if channel else ())
    missing = [f"{{{r}}}" for r in required if r not in names]
    if missing:
        return f"must contain {' and '.join(missing)}"
    if "/" in template or "\\" in template or "\x00" in template:
        return "must be a file name (no '/', '\\' or NUL)"
    if template.startswith(".") or not template.endswith(SUFFIX) or template == SUFFIX:
        return "must end in .wav and not start with '.'"
    return ""


def sample_cases() -> list[tuple[NameFields, Layout]]:
    """Sample values of the naming fields in every layout, for checking templates when a profile loads."""
    return [(NameFields("REEL_1", layout_field(lay), "48k", "24b", "23976"), lay) for lay in LAYOUTS.values()]


def check_distinct(naming: str, channels: str, stem_names: Mapping[str, str], source: str | Path,
                   cases: Sequence[tuple[NameFields, Layout]]) -> None:
    """ConfigError (MediaError for a missing {fps}) unless, in each case (a reel's values and its layout), the
    templates give every stem its own file name and every channel of every stem its own one, none a stem's."""
    for fields, layout in cases:
        seen: dict[str, str] = {}
        for stem in STEMS:
            spec_name = stem_names.get(stem, stem)
            _claim(seen, render(naming, fields, spec_name), stem, "naming", source)
            for label in layout.labels if layout.channels > 1 else ():
                _claim(seen, render(channels, fields, spec_name, label), f"{stem} {label}", "channel_naming", source)


def _claim(seen: dict[str, str], name: str, what: str, key: str, source: str | Path) -> None:
    """Record that `what` is written as `name`; ConfigError (naming `key`) when another file already is."""
    if name in seen:
        raise ConfigError(f"{source}: {key} gives {seen[name]} and {what} the same file name {name!r} (stem_names "
                          "and the templates must give every stem and channel its own name)", source)
    seen[name] = what
