"""Delivery gain: one gain takes the mix to the profile's target; the same gain (and the same limiter
envelope, when the true-peak ceiling needs one) goes to every stem, so DX + M&E still sums to the
delivered mix and no output exceeds the ceiling."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import loudness
from .profiles import Profile

MAX_PASSES = 5
MAX_GAIN_DB = 30.0
CONVERGED_LU = 0.05


@dataclass(frozen=True)
class Delivery:
    stems: dict[str, np.ndarray]   # "MIX", "DX", "ME" (+ "MX", "FX"): (samples, channels) float32, delivered
    input: loudness.Loudness       # the original mix
    gain_db: float                 # static gain applied to everything
    limiter_db: float              # the limiter's largest gain reduction (0.0 when it did not engage)
    seconds: float


def deliver(mix: np.ndarray, stems: dict[str, np.ndarray], rate: int, layout: str, profile: Profile) -> Delivery:
    """Measure `mix` (BS.1770-4), gain everything to `profile.target_lufs`, limit to `profile.true_peak_dbtp`.

    `stems` maps names ("DX", "ME", ...) to arrays shaped like `mix` (samples, channels) at `rate` Hz.
    """
    start = time.perf_counter()
    measured = loudness.measure(mix, rate, layout)
    gain_db = loudness.gain_to_target(measured.integrated_lufs, profile.target_lufs, MAX_GAIN_DB)
    names = ["MIX", *stems]
    sources = [mix, *stems.values()]
    # When the limiter engages it lowers the loudness too (on peaky material by more than a dB), so the
    # static gain is corrected by what the limited mix still misses, a few times, as two-pass normalisers do.
    for pass_no in range(MAX_PASSES):
        gained = [loudness.apply_gain(x, gain_db) for x in sources]
        limiter = loudness.true_peak_limiter(gained, rate, profile.true_peak_dbtp)
        if limiter.gain is None:
            break
        gained = loudness.apply_limiter(gained, limiter)
        missing = profile.target_lufs - loudness.integrated_loudness(gained[0], rate, layout)
        if abs(missing) <= CONVERGED_LU or pass_no == MAX_PASSES - 1 or gain_db + missing > MAX_GAIN_DB:
            break
        gain_db += missing
    return Delivery(dict(zip(names, gained)), measured, gain_db,
                    limiter.max_reduction_db if limiter.gain is not None else 0.0,
                    time.perf_counter() - start)
