"""The whole-array delivery reelsplit used before issue 13 (pipeline.deliver.deliver), kept unchanged as the oracle
pipeline.deliver.deliver_stream is tested against (tests/equivalence/test_stream.py). Its measurements and limiter are the
whole-array ones of reference.loudness; the measurement's choice, the gates, the gain rule and the pass limits
are pipeline's."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from pipeline.deliver import CONVERGED_LU, MAX_GAIN_DB, MAX_PASSES, choose_measurement
from pipeline.loudness import Loudness, gain_to_target, gated_loudness
from pipeline.profiles import Profile

from . import loudness


@dataclass(frozen=True)
class Delivery:
    stems: dict[str, np.ndarray]   # "MIX", "DX", "ME" (+ "MX", "FX"): (samples, channels) float32, delivered
    input: Loudness                # the original mix
    measurement: str               # what the gain was computed from (after any fallback)
    target_lufs: float             # the target of that measurement
    measured_lufs: float           # that measurement before the gain, LUFS
    speech_pct: float              # share of gating blocks with dialogue (nan when no VAD mask was given)
    gain_db: float                 # static gain applied to everything
    limiter_db: float              # the limiter's largest gain reduction (0.0 when it did not engage)
    seconds: float


def measure_for(measurement: str, mix: np.ndarray, dx: np.ndarray, rate: int, layout: str,
                speech_blocks: np.ndarray | None) -> float:
    """The loudness `measurement` of (samples, channels) audio at `rate`, in LUFS."""
    if measurement == "dialogue-stem":
        return loudness.integrated_loudness(dx, rate, layout)
    if measurement == "dialog-gated":
        return gated_loudness(loudness.gating_blocks(mix, rate, layout), speech_blocks)
    return loudness.integrated_loudness(mix, rate, layout)


def deliver(mix: np.ndarray, stems: dict[str, np.ndarray], rate: int, layout: str, profile: Profile,
            speech_blocks: np.ndarray | None = None) -> Delivery:
    """Gain everything so the profile's measurement reaches its target, then limit to the ceilings.

    `mix` and `stems` ("DX", "ME", ...) are (samples, channels) at `rate` Hz; `speech_blocks` marks the
    BS.1770 gating blocks (400 ms, 100 ms hop) with dialogue, needed for dialog-gated profiles.
    """
    start = time.perf_counter()
    if profile.measurement == "dialog-gated" and speech_blocks is None:
        raise ValueError("a dialog-gated profile needs the speech blocks of the dialogue stem")
    speech_pct = 100.0 * float(np.mean(speech_blocks)) if speech_blocks is not None and len(speech_blocks) else math.nan
    measurement, target = choose_measurement(profile, speech_pct)
    before = measure_for(measurement, mix, stems["DX"], rate, layout, speech_blocks)
    gain_db = gain_to_target(before, target, MAX_GAIN_DB)
    names = ["MIX", *stems]
    sources = [mix, *stems.values()]
    # Each signal scaled by its own ceiling, so one limiter run at 0 dBTP holds every ceiling with one envelope.
    ceilings = [profile.me_ceiling_dbtp if n == "ME" else profile.true_peak_dbtp for n in names]
    # When the limiter engages it lowers the loudness too (on peaky material by more than a dB), so the
    # static gain is corrected by what the limited result still misses, a few times, as two-pass normalisers do.
    limiter_db = 0.0
    for pass_no in range(MAX_PASSES):
        gained = [loudness.apply_gain(x, gain_db) for x in sources]
        scaled = [loudness.apply_gain(x, -c) for x, c in zip(gained, ceilings)]
        limiter = loudness.true_peak_limiter(scaled, rate, 0.0)
        if limiter.gain is None:
            limiter_db = 0.0
            break
        gained = loudness.apply_limiter(gained, limiter)
        limiter_db = limiter.max_reduction_db
        delivered = dict(zip(names, gained))
        missing = target - measure_for(measurement, delivered["MIX"], delivered["DX"], rate, layout, speech_blocks)
        if abs(missing) <= CONVERGED_LU or pass_no == MAX_PASSES - 1 or gain_db + missing > MAX_GAIN_DB:
            break
        gain_db += missing
    return Delivery(dict(zip(names, gained)), loudness.measure(mix, rate, layout), measurement, target, before,
                    speech_pct, gain_db, limiter_db, time.perf_counter() - start)
