"""Whole-array noisereduce clean-up, as reelsplit did it before it streamed: one `noisereduce.reduce_noise` call
over the whole dialogue stem. The oracle for pipeline.cleanup.NoiseReduce (same samples, bit for bit)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cleaned:
    dx: np.ndarray          # cleaned dialogue (samples, channels) float32
    method: str             # "noisereduce" | "none"
    strength: float
    removed_db: float       # level of what was removed relative to DX, dB (−inf when nothing)


def _rms_db(x: np.ndarray) -> float:
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10 * np.log10(ms) if ms > 0 else float("-inf")


def noisereduce_whole(dx: np.ndarray, rate: int, strength: float = 0.5) -> Cleaned:
    """Non-stationary spectral gating (`prop_decrease=strength`) of the channels that carry sound (an all-zero
    channel turns into NaN in noisereduce), NaN → 0."""
    if strength <= 0 or not np.any(dx):
        return Cleaned(dx, "none", 0.0, float("-inf"))
    import noisereduce as nr

    out = dx.copy()
    active = [c for c in range(dx.shape[1]) if np.any(dx[:, c])]
    cleaned = nr.reduce_noise(y=dx[:, active].T, sr=rate, prop_decrease=strength, stationary=False, n_jobs=1)
    out[:, active] = np.asarray(cleaned, dtype=np.float32).reshape(len(active), -1).T
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    return Cleaned(out, "noisereduce", strength, _rms_db(dx - out) - _rms_db(dx))
