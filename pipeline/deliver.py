"""Delivery gain: one gain takes the profile's measurement (programme, dialog-gated or the dialogue stem) to its
target; the same gain, and the same limiter envelope when a true-peak ceiling needs one, goes to every stem, so
DX + M&E still sums to the delivered mix and no output exceeds its ceiling."""
from __future__ import annotations

import math
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
    measurement: str               # what the gain was computed from (after any fallback)
    target_lufs: float             # the target of that measurement
    measured_lufs: float           # that measurement before the gain, LUFS
    speech_pct: float              # share of gating blocks with dialogue (nan when no VAD mask was given)
    gain_db: float                 # static gain applied to everything
    limiter_db: float              # the limiter's largest gain reduction (0.0 when it did not engage)
    seconds: float


def choose_measurement(profile: Profile, speech_pct: float) -> tuple[str, float]:
    """(measurement, target): dialog-gated falls back to the programme when there is too little dialogue."""
    if (profile.measurement == "dialog-gated" and profile.fallback_min_speech_pct is not None
            and not speech_pct >= profile.fallback_min_speech_pct):
        return "programme", float(profile.fallback_target_lufs)
    return profile.measurement, profile.target_lufs


def measure_for(measurement: str, mix: np.ndarray, dx: np.ndarray, rate: int, layout: str,
                speech_blocks: np.ndarray | None) -> float:
    """The loudness `measurement` of (samples, channels) audio at `rate`, in LUFS."""
    if measurement == "dialogue-stem":
        return loudness.integrated_loudness(dx, rate, layout)
    if measurement == "dialog-gated":
        return loudness.gated_loudness(loudness.gating_blocks(mix, rate, layout), speech_blocks)
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
    gain_db = loudness.gain_to_target(before, target, MAX_GAIN_DB)
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


# ------------------------------------------------------------------------------------------------ block by block

@dataclass(frozen=True)
class StreamDelivery:
    """`deliver` done block by block: the delivered stems went straight to their writers (`paths`)."""

    paths: dict[str, "object"]     # "MIX", "DX", "ME" (+ "MX", "FX") → what each writer's close() returned
    input: loudness.Loudness       # the original mix
    measurement: str
    target_lufs: float
    measured_lufs: float
    speech_pct: float
    gain_db: float
    limiter_db: float
    passes: int                    # passes over the audio that wrote (1 unless the limiter needed a correction)
    seconds: float


@dataclass(frozen=True)
class DeliveryPlan:
    """What the measurement pass of `deliver_stream` found: the gain to start from."""

    input: loudness.Loudness
    measurement: str
    target_lufs: float
    measured_lufs: float
    speech_pct: float
    gain_db: float


def _measured(measurement: str, mix_meter, dx_meter, speech_blocks: np.ndarray | None) -> float:
    """The value of `measurement` from streaming meters of the mix and of DX (only the one it reads is needed)."""
    if measurement == "dialogue-stem":
        return dx_meter.integrated()
    if measurement == "dialog-gated":
        return mix_meter.gated(speech_blocks)
    return mix_meter.integrated()


def plan_delivery(sources: dict, rate: int, layout: str, profile: Profile, *,
                  speech_blocks: np.ndarray | None = None, block: int = 1 << 18) -> DeliveryPlan:
    """The measurement pass: the mix's loudness, the profile's measurement (after any fallback) and the gain
    that takes it to target. `sources` as for `deliver_stream`."""
    from .meter import LoudnessMeter, TruePeakMeter

    if profile.measurement == "dialog-gated" and speech_blocks is None:
        raise ValueError("a dialog-gated profile needs the speech blocks of the dialogue stem")
    speech_pct = 100.0 * float(np.mean(speech_blocks)) if speech_blocks is not None and len(speech_blocks) else math.nan
    measurement, target = choose_measurement(profile, speech_pct)
    mix, dx = sources["MIX"], sources["DX"]
    lm, tp = LoudnessMeter(rate, mix.channels, layout), TruePeakMeter(rate, mix.channels)
    dm = LoudnessMeter(rate, dx.channels, layout) if measurement == "dialogue-stem" else None
    for s in range(0, mix.frames, block):
        chunk = mix.read(s, block)
        lm.add(chunk)
        tp.add(chunk)
        if dm is not None:
            dm.add(dx.read(s, block))
    before = _measured(measurement, lm, dm, speech_blocks)
    return DeliveryPlan(loudness.Loudness(lm.integrated(), tp.dbtp, tp.sample_peak_dbfs, lm.lra()), measurement,
                        target, before, speech_pct, loudness.gain_to_target(before, target, MAX_GAIN_DB))


def deliver_stream(sources: dict, rate: int, layout: str, profile: Profile, open_writer, *,
                   speech_blocks: np.ndarray | None = None, plan: DeliveryPlan | None = None,
                   block: int = 1 << 18) -> StreamDelivery:
    """`deliver` block by block, in memory that does not grow with the length.

    `sources` maps "MIX", "DX", "ME" (+ "MX", "FX") to aligned readers (`frames`, `channels`,
    `read(start, count)`); `open_writer(name, channels)` returns a writer with `write(block)`, `close()` and
    `abort()` (stream.WavWriter). The measurement pass (`plan_delivery`, unless `plan` is given) finds the
    gain; each following pass gains, limits (one shared true-peak limiter, each signal scaled by its own
    ceiling, as `deliver` does) and writes. When the limiter engaged and took the measurement more than
    0.05 LU off target, the pass's files are discarded and the static gain corrected, up to MAX_PASSES
    times, as `deliver` does.
    """
    from .meter import LoudnessMeter, StreamingLimiter

    start = time.perf_counter()
    plan = plan or plan_delivery(sources, rate, layout, profile, speech_blocks=speech_blocks, block=block)
    measurement, target, gain_db = plan.measurement, plan.target_lufs, plan.gain_db
    names = ["MIX", *[n for n in sources if n != "MIX"]]
    readers = [sources[n] for n in names]
    frames = readers[0].frames

    ceilings = [profile.me_ceiling_dbtp if n == "ME" else profile.true_peak_dbtp for n in names]
    limiter_db, passes = 0.0, 0
    for pass_no in range(MAX_PASSES):
        passes += 1
        g = np.float32(10.0 ** (gain_db / 20.0))
        scale = [np.float32(10.0 ** ((gain_db - c) / 20.0)) for c in ceilings]
        limiter = StreamingLimiter(rate, len(names), 0.0)
        writers = {n: open_writer(n, r.channels) for n, r in zip(names, readers)}
        # the delivered measurement, for the correction: only the meter it reads (mix or DX)
        on_dx = measurement == "dialogue-stem"
        meter = LoudnessMeter(rate, sources["DX" if on_dx else "MIX"].channels, layout)
        metered = names.index("DX" if on_dx else "MIX")
        try:
            def put(outs):
                for n, out in zip(names, outs):
                    if out.shape[0]:
                        writers[n].write(out)
                meter.add(outs[metered])

            for s in range(0, frames, block):
                xs = [r.read(s, block) for r in readers]
                put(limiter.process([x * k for x, k in zip(xs, scale)], apply_to=[x * g for x in xs]))
            if frames:
                put(limiter.flush())
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        limiter_db = limiter.max_reduction_db
        missing = target - _measured(measurement, meter, meter, speech_blocks) if limiter_db > 0 else 0.0
        final = (limiter_db <= 0 or abs(missing) <= CONVERGED_LU or pass_no == MAX_PASSES - 1
                 or gain_db + missing > MAX_GAIN_DB)
        if final:
            try:
                paths = {n: w.close() for n, w in writers.items()}
            except BaseException:
                for w in writers.values():
                    w.abort()
                raise
            break
        for w in writers.values():
            w.abort()
        gain_db += missing
    return StreamDelivery(paths, plan.input, measurement, target, plan.measured_lufs, plan.speech_pct, gain_db,
                          limiter_db, passes, time.perf_counter() - start)
