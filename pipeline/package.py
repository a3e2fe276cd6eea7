"""The M&E package a localization house receives with a reel: the delivered printmaster, the M&E in the
master's layout and in 2.0, DX (and MX and FX where the model makes them, FX then being M&E − MX so that
DX + MX + FX is the printmaster), and a dialogue guide: a mono fold-down of DX for the dubbing stage.

`guide_gains(layout)` gives the fold-down: the stereo downmix of pipeline/downmix.py (ITU-R BS.775: C and the
surrounds at −3 dB; a 7.1's side and rear surrounds at −6 dB) summed to mono at −6 dB, so a centred line keeps its
level (C at −3 dB) and L/R dialogue reads as their mean; the LFE is left out. `roles(...)` names each file of the
package for the manifest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .downmix import FOLDS, stereo_gains
from .layout import Layout

GUIDE_PEAK_DBFS = -1.0   # the guide is scaled down (never up) so its sample peak stays under this


def guide_gains(layout: Layout) -> np.ndarray:
    """(channels,) float32 weights of the mono dialogue guide in `layout`'s channel order: half of Lo + Ro (mono:
    1, stereo: 0.5 each)."""
    if layout.channels == 1:
        return np.ones(1, np.float32)
    if layout.name not in FOLDS:
        return np.full(layout.channels, 0.5, np.float32)     # stereo
    return (0.5 * stereo_gains(layout).sum(axis=1)).astype(np.float32)


def roles(wavs: dict[str, Path], guide: Path | None, layout: Layout) -> dict[str, Path]:
    """Role → file of the package, from the delivered stems (`wavs`: MIX, DX, ME, MX, FX and `stereo/…`)."""
    found = {"printmaster": wavs["MIX"], "dx": wavs["DX"], f"me_{layout.name}": wavs["ME"]}
    if layout.name == "stereo":
        found["me_2.0"] = wavs["ME"]
    elif "stereo/ME" in wavs:
        found["me_2.0"] = wavs["stereo/ME"]
    found.update({name.lower(): wavs[name] for name in ("MX", "FX") if name in wavs})
    if guide is not None:
        found["dialogue_guide"] = guide
    return found
