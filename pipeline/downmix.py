"""Stereo (2.0) fold-down of a surround layout: ITU-R BS.775-3's downmix, by channel label.

5.0 and 5.1 (BS.775-3, table 2, 3/2 → 2/0): Lo = L + 0.7071·C + 0.7071·Ls, Ro = R + 0.7071·C + 0.7071·Rs, the LFE
left out. 7.1 (L R C LFE Lss Rss Lrs Rrs): BS.775 has no 3/4 table, so the side and the rear surround of each
side are first taken into the Ls/Rs they stand for at −3 dB each (Ls = 0.7071·Lss + 0.7071·Lrs, which keeps the
power of uncorrelated surrounds), then folded as a 5.1's: Lss and Lrs reach Lo at −6 dB (0.501).
The −3 dB gains are 10^(−3/20) = 0.708 (BS.775 writes 0.7071).
"""
from __future__ import annotations

import numpy as np

from .layout import LAYOUTS, Layout

CENTRE_GAIN = SURROUND_GAIN = 10 ** (-3 / 20)   # −3 dB, BS.775-3 table 2
SIDE_REAR_GAIN = 10 ** (-3 / 20)                 # −3 dB: a 7.1's side or rear surround into the Ls/Rs it stands for
# Each channel's (Lo, Ro) gain, by label.
_TO_STEREO = {
    "L": (1.0, 0.0), "R": (0.0, 1.0), "C": (CENTRE_GAIN, CENTRE_GAIN), "LFE": (0.0, 0.0),
    "Ls": (SURROUND_GAIN, 0.0), "Rs": (0.0, SURROUND_GAIN),
    **{f"L{s}": (SIDE_REAR_GAIN * SURROUND_GAIN, 0.0) for s in ("ss", "rs")},
    **{f"R{s}": (0.0, SIDE_REAR_GAIN * SURROUND_GAIN) for s in ("ss", "rs")},
}
FOLDS = ("5.0", "5.1", "7.1")   # the layouts with a stereo fold-down


def stereo_gains(layout: Layout) -> np.ndarray:
    """(channels, 2) float32: row i is channel i's gain into (Lo, Ro). ValueError for a layout with no fold-down."""
    if layout.name not in FOLDS:
        raise ValueError(f"no stereo fold-down for {layout.name} (only {', '.join(FOLDS)})")
    return np.array([_TO_STEREO[label] for label in layout.labels], np.float32)


def itu_downmix(audio: np.ndarray, layout: Layout = LAYOUTS["5.1"]) -> np.ndarray:
    """(samples, channels) in `layout`'s order → (samples, 2) float32. Linear, so stems downmixed one by one still
    sum to the downmixed mix."""
    if audio.ndim != 2 or audio.shape[1] != layout.channels:
        raise ValueError(f"a {layout.name} downmix needs (samples, {layout.channels}) audio, got {audio.shape}")
    return (audio @ stereo_gains(layout)).astype(np.float32)
