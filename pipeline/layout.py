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
    # ffmpeg's "5.1" names the surrounds BL/BR and "5.1(side)" SL/SR; film uses the six channels alike.
    "5.1": Layout("5.1", ("L", "R", "C", "LFE", "Ls", "Rs"), ("FL", "FR", "FC", "LFE", "BL", "BR"), "5.1",
                  ((0, 1), (2,), (4, 5)), (2,), ("5.1(side)",)),
}
_BY_ALIAS = {alias: lay for lay in LAYOUTS.values() for alias in lay.aliases}
_BY_CHANNELS = {lay.channels: lay for lay in LAYOUTS.values()}


def supported() -> str:
    """The supported layouts for a message: "mono, stereo and 5.1 (L R C LFE Ls Rs)"."""
    names = list(LAYOUTS)
    last = LAYOUTS[names[-1]]
    return f"{', '.join(names[:-1])} and {last.name} ({' '.join(last.labels)})"


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
