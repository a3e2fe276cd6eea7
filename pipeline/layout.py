"""Channel layouts: one `Layout` value per layout reelsplit separates, the only place layout facts live.

Each entry gives the channels in order (film labels and ffmpeg's names), ffmpeg's layout name, the WAVE
channel mask ffmpeg writes for it, the ITU-R BS.1770-4 channel weights (eq. 2: G = 1.0 for L, R, C, 1.41 for the
surrounds, the LFE not measured), the groups of channels separated together and the channels dialogue is
expected in. Every other module asks this one; adding a layout is one entry in LAYOUTS.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import MediaError

# WAVE_FORMAT_EXTENSIBLE dwChannelMask bits (Microsoft's KSAUDIO speaker positions), by ffmpeg channel name.
SPEAKER_BITS = {"FL": 0x1, "FR": 0x2, "FC": 0x4, "LFE": 0x8, "BL": 0x10, "BR": 0x20, "SL": 0x200, "SR": 0x400}
# BS.1770-4 eq. 2 channel weights by ffmpeg channel name; the LFE is not part of the measurement.
BS1770_WEIGHT = {"FL": 1.0, "FR": 1.0, "FC": 1.0, "LFE": 0.0, "BL": 1.41, "BR": 1.41, "SL": 1.41, "SR": 1.41}


@dataclass(frozen=True)
class Layout:
    """One channel layout. Indices are positions in the (samples, channels) arrays reelsplit works on."""

    name: str                           # ours: "mono", "stereo", "5.1"
    labels: tuple[str, ...]             # film labels in order, e.g. L R C LFE Ls Rs
    ffmpeg_channels: tuple[str, ...]    # ffmpeg's channel names in the same order
    ffmpeg: str                         # ffmpeg's layout name for -ch_layout
    groups: tuple[tuple[int, ...], ...]  # channels separated together (a stereo pair, the centre); LFE in none
    dialogue: tuple[int, ...]           # channels dialogue is expected in
    aliases: tuple[str, ...] = ()       # other names ffprobe gives the same channels

    @property
    def channels(self) -> int:
        return len(self.labels)

    @property
    def mask(self) -> int:
        """The WAVE channel mask of the layout as ffmpeg writes it."""
        return sum(SPEAKER_BITS[c] for c in self.ffmpeg_channels)

    @property
    def weights(self) -> tuple[float, ...]:
        """BS.1770-4 channel weights G_i, in channel order (0.0 for the LFE)."""
        return tuple(BS1770_WEIGHT[c] for c in self.ffmpeg_channels)

    @property
    def lfe(self) -> tuple[int, ...]:
        """Positions of LFE channels (not measured by BS.1770, not separated)."""
        return tuple(i for i, c in enumerate(self.ffmpeg_channels) if c == "LFE")

    @property
    def full_band(self) -> tuple[int, ...]:
        """Positions of every channel but the LFE."""
        return tuple(i for i in range(self.channels) if i not in self.lfe)


LAYOUTS: dict[str, Layout] = {
    "mono": Layout("mono", ("C",), ("FC",), "mono", ((0,),), (0,), ("1.0",)),
    "stereo": Layout("stereo", ("L", "R"), ("FL", "FR"), "stereo", ((0, 1),), (0, 1), ("2.0",)),
    # ffmpeg's "5.0"/"5.1" name the surrounds BL/BR and "5.0(side)"/"5.1(side)" SL/SR; film uses them alike.
    "5.0": Layout("5.0", ("L", "R", "C", "Ls", "Rs"), ("FL", "FR", "FC", "BL", "BR"), "5.0",
                  ((0, 1), (2,), (3, 4)), (2,), ("5.0(side)",)),
    "5.1": Layout("5.1", ("L", "R", "C", "LFE", "Ls", "Rs"), ("FL", "FR", "FC", "LFE", "BL", "BR"), "5.1",
                  ((0, 1), (2,), (4, 5)), (2,), ("5.1(side)",)),
    # 7.1 in the WAVE channel-mask order ffmpeg reads and writes (FL FR FC LFE BL BR SL SR): the rear surrounds
    # before the side surrounds. A master in SMPTE film order (L R C LFE Lss Rss Lrs Rrs) is mapped by label.
    "7.1": Layout("7.1", ("L", "R", "C", "LFE", "Lrs", "Rrs", "Lss", "Rss"),
                  ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"), "7.1",
                  ((0, 1), (2,), (4, 5), (6, 7)), (2,)),
}
# Track-map and channel labels → ffmpeg's channel name: film labels, ffmpeg's own, and the side/back synonyms
# of 5.x (Ls/Rs are the surrounds whether ffmpeg calls them back or side). Lt/Rt: a stereo fold-down.
LABELS = {"L": "FL", "R": "FR", "C": "FC", "LFE": "LFE", "Ls": "BL", "Rs": "BR", "Lrs": "BL", "Rrs": "BR",
          "Lss": "SL", "Rss": "SR", "Lt": "Lt", "Rt": "Rt",
          **{c: c for c in ("FL", "FR", "FC", "BL", "BR", "SL", "SR")}}
_BY_ALIAS = {alias: lay for lay in LAYOUTS.values() for alias in lay.aliases}
_BY_CHANNELS = {lay.channels: lay for lay in LAYOUTS.values()}


def supported() -> str:
    """The supported layouts for a message: "mono, stereo, 5.0 (L R C Ls Rs), 5.1 (…) and 7.1 (…)"."""
    names = [n if n in ("mono", "stereo") else f"{n} ({' '.join(LAYOUTS[n].labels)})" for n in LAYOUTS]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def positions(layout: Layout) -> dict[str, int]:
    """ffmpeg channel name → position in `layout`, the side and back names of a 5.x's surrounds both taken."""
    found = {c: i for i, c in enumerate(layout.ffmpeg_channels)}
    if "SL" not in found and "BL" in found:
        found.update({"SL": found["BL"], "SR": found["BR"]})
    return found


def by_channel_set(names: set[str]) -> Layout | None:
    """The layout whose channels are exactly `names` (ffmpeg channel names; SL/SR stand for 5.x's BL/BR)."""
    for lay in LAYOUTS.values():
        if len(names) == lay.channels and set(positions(lay)[n] for n in names if n in positions(lay)) == \
                set(range(lay.channels)):
            return lay
    return None


def normalise_layout(name: str | None, channels: int) -> str:
    """ffprobe's layout name mapped to ours; an unnamed layout gets the usual one for its channel count,
    and a name we do not know stays as ffprobe gave it ("unknown" when there is none)."""
    if name and name != "unknown":
        return _BY_ALIAS[name].name if name in _BY_ALIAS else name
    return _BY_CHANNELS[channels].name if channels in _BY_CHANNELS else "unknown"


def find_layout(name: str | None, channels: int) -> Layout | None:
    """The Layout called `name` (ours or an alias) with `channels` channels, or, for no name, the usual one
    for the channel count; None when there is none."""
    lay = _BY_CHANNELS.get(channels) if name is None else LAYOUTS.get(normalise_layout(name, channels))
    return lay if lay is not None and lay.channels == channels else None


def get_layout(name: str | None, channels: int) -> Layout:
    """As `find_layout`, or MediaError naming the layout and what is supported."""
    lay = find_layout(name, channels)
    if lay is None:
        raise MediaError(f"channel layout {name or 'unnamed'} ({channels} channels) is not supported: "
                         f"reelsplit separates {supported()}")
    return lay


def one_channel(layout: Layout, index: int) -> Layout:
    """Channel `index` of `layout` as a layout of its own, for a discrete mono file of that channel: its WAVE
    channel mask is that channel's speaker (L: FL 0x1, LFE: 0x8, Ls: BL 0x10), not a mono file's centre, and its
    label (the iXML track name) is the channel's, e.g. "L"."""
    label, speaker = layout.labels[index], layout.ffmpeg_channels[index]
    return Layout(label, (label,), (speaker,), speaker, ((0,),), (0,) if index in layout.dialogue else ())
