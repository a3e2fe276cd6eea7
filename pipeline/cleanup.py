"""Dialogue clean-up on DX — noisereduce spectral gating or DeepFilterNet3 — with M&E recomputed as mix − DX.

Whatever the noise reduction takes out of DX lands in M&E, so DX + M&E still nulls against the mix.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .separate import Separation


@dataclass(frozen=True)
class CleanupResult:
    dx: np.ndarray          # cleaned dialogue (samples, channels) float32
    me: np.ndarray          # mix − cleaned dialogue
    method: str             # "noisereduce" | "none"
    strength: float         # noisereduce prop_decrease, 0..1
    removed_db: float       # level of what was removed relative to DX, dB (−inf when nothing)
    seconds: float


def _rms_db(x: np.ndarray) -> float:
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10 * np.log10(ms) if ms > 0 else float("-inf")


def _dfn3_cleanup(mix: np.ndarray, dx: np.ndarray, rate: int, start: float) -> CleanupResult:
    """DeepFilterNet3 over each dialogue channel (Demucs DX → DFN3: the high-quality combination)."""
    from .config import SeparationSettings
    from .separate import Dfn3Separator, resample

    dfn = Dfn3Separator(SeparationSettings())
    cleaned = dx.copy()
    for c in range(dx.shape[1]):
        if np.any(dx[:, c]):
            x = resample(dx[:, c:c + 1], rate, dfn.sample_rate)[:, 0]
            cleaned[:, c] = resample(dfn.enhance(x)[:, None], dfn.sample_rate, rate, length=dx.shape[0])[:, 0]
    removed_db = _rms_db(dx - cleaned) - _rms_db(dx)
    return CleanupResult(cleaned, (mix - cleaned).astype(np.float32), "dfn3", 1.0, removed_db,
                         time.perf_counter() - start)


def clean_dialogue(mix: np.ndarray, sep: Separation, rate: int, *, method: str = "noisereduce",
                   strength: float = 0.5) -> CleanupResult:
    """Clean `sep.dx`: "noisereduce" (non-stationary spectral gating, `prop_decrease=strength`), "dfn3"
    (DeepFilterNet3 per channel) or "none".

    `mix` and the stems are (samples, channels) at `rate` Hz. Returns the new DX and M&E = mix − DX.
    """
    start = time.perf_counter()
    if method == "none" or strength <= 0 or not np.any(sep.dx):
        return CleanupResult(sep.dx, sep.me, "none", 0.0, float("-inf"), time.perf_counter() - start)
    dx = sep.dx.copy()
    if method == "dfn3":
        return _dfn3_cleanup(mix, dx, rate, start)
    import noisereduce as nr

    # Only channels that carry dialogue: noisereduce divides by the smoothed spectrum, and an all-zero
    # channel (the LFE of a 5.1 DX) turns into NaN.
    active = [c for c in range(dx.shape[1]) if np.any(dx[:, c])]
    cleaned = nr.reduce_noise(y=dx[:, active].T, sr=rate, prop_decrease=strength, stationary=False, n_jobs=1)
    dx[:, active] = np.asarray(cleaned, dtype=np.float32).reshape(len(active), -1).T
    dx = np.nan_to_num(dx, nan=0.0, posinf=0.0, neginf=0.0)
    removed_db = _rms_db(sep.dx - dx) - _rms_db(sep.dx)
    return CleanupResult(dx, (mix - dx).astype(np.float32), method, strength, removed_db,
                         time.perf_counter() - start)
