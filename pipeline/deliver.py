"""Delivery gain, block by block: one gain takes the profile's measurement (programme, dialog-gated or the dialogue
stem) to its target; the same gain, and the same limiter envelope when a true-peak ceiling needs one, goes to every
stem, so DX + M&E still sums to the delivered mix and no output exceeds its ceiling. Memory does not grow with the
programme's length."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .loudness import Loudness, gain_to_target
from .meter import LoudnessMeter, StreamingLimiter, TruePeakMeter
from .profiles import Profile
from .progress import report

MAX_PASSES = 5
MAX_GAIN_DB = 30.0
CONVERGED_LU = 0.05


# ------------------------------------------------------------------------------------------------ the measurement

def choose_measurement(profile: Profile, speech_pct: float) -> tuple[str, float]:
    """(measurement, target): dialog-gated falls back to the programme when there is too little dialogue."""
    if (profile.measurement == "dialog-gated" and profile.fallback_min_speech_pct is not None
            and not speech_pct >= profile.fallback_min_speech_pct):
        return "programme", float(profile.fallback_target_lufs)
    return profile.measurement, profile.target_lufs


def measured_stem(measurement: str) -> str:
    """The stem `measurement` reads: "DX" for the dialogue stem, "MIX" for the programme and dialog-gated."""
    return "DX" if measurement == "dialogue-stem" else "MIX"


def read_measurement(measurement: str, meter: LoudnessMeter, speech_blocks: np.ndarray | None) -> float:
    """The value of `measurement`, LUFS, from the LoudnessMeter of its `measured_stem`: the gating blocks marked in
    `speech_blocks` (bool per block) for dialog-gated, else integrated loudness."""
    if measurement == "dialog-gated":
        return meter.gated(speech_blocks)
    return meter.integrated()


# ------------------------------------------------------------------------------------------------ delivery

@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field is ambiguous
class DeliverySettings:
    """What one programme is delivered to and how it is read."""

    rate: int                                # Hz, of every source
    layout: str                              # the sources' channel layout (pipeline.layout), e.g. "5.1"
    profile: Profile
    speech_blocks: np.ndarray | None = None  # bool per BS.1770 gating block (400 ms every 100 ms): dialogue in
                                             # it; dialog-gated profiles need it
    block: int = 1 << 18                     # samples read at a time

    def __post_init__(self):
        if self.profile.measurement == "dialog-gated" and self.speech_blocks is None:
            raise ValueError("a dialog-gated profile needs the speech blocks of the dialogue stem")
        if self.block < 1:
            raise ValueError(f"block must be at least 1 sample, got {self.block}")


@dataclass(frozen=True)
class DeliveryPlan:
    """What the measurement pass of `deliver_stream` found: the gain to start from."""

    input: Loudness
    measurement: str
    target_lufs: float
    measured_lufs: float
    speech_pct: float
    gain_db: float


@dataclass(frozen=True)
class StreamDelivery:
    """What `deliver_stream` did: the delivered stems went straight to their writers (`paths`)."""

    paths: dict[str, "object"]     # "MIX", "DX", "ME" (+ "MX", "FX") → what each writer's close() returned
    input: Loudness                # the original mix
    measurement: str               # what the gain was computed from (after any fallback)
    target_lufs: float             # the target of that measurement
    measured_lufs: float           # that measurement before the gain, LUFS
    speech_pct: float              # share of gating blocks with dialogue (nan when no VAD mask was given)
    gain_db: float                 # static gain applied to everything
    limiter_db: float              # the limiter's largest gain reduction (0.0 when it did not engage)
    passes: int                    # passes over the audio that wrote (1 unless the limiter needed a correction)
    seconds: float


def plan_delivery(sources: dict, settings: DeliverySettings) -> DeliveryPlan:
    """The measurement pass: the mix's loudness, the profile's measurement (after any fallback) and the gain
    that takes it to target. `sources` as for `deliver_stream`."""
    speech_blocks, block = settings.speech_blocks, settings.block
    speech_pct = 100.0 * float(np.mean(speech_blocks)) if speech_blocks is not None and len(speech_blocks) else math.nan
    measurement, target = choose_measurement(settings.profile, speech_pct)
    stem, mix = measured_stem(measurement), sources["MIX"]
    meters = {name: LoudnessMeter(settings.rate, sources[name].channels, settings.layout) for name in ("MIX", stem)}
    peak = TruePeakMeter(settings.rate, mix.channels)
    for s in range(0, mix.frames, block):
        chunk = mix.read(s, block)
        meters["MIX"].add(chunk)
        peak.add(chunk)
        if stem != "MIX":
            meters[stem].add(sources[stem].read(s, block))
        report("loudness", s + chunk.shape[0], mix.frames)
    before = read_measurement(measurement, meters[stem], speech_blocks)
    lm = meters["MIX"]
    gain = gain_to_target(before, target, MAX_GAIN_DB) if settings.profile.normalize else 0.0
    return DeliveryPlan(Loudness(lm.integrated(), peak.dbtp, peak.sample_peak_dbfs, lm.lra()), measurement,
                        target, before, speech_pct, gain)


def deliver_stream(sources: dict, settings: DeliverySettings, open_writer, *,
                   plan: DeliveryPlan | None = None) -> StreamDelivery:
    """Gain everything so the profile's measurement reaches its target, limit to the ceilings, and write, block by
    block in memory that does not grow with the length.

    `sources` maps "MIX", "DX", "ME" (+ "MX", "FX") to aligned readers (`frames`, `channels`,
    `read(start, count)`); `open_writer(name, channels)` returns a writer with `write(block)`, `close()` and
    `abort()` (stream.WavWriter). The measurement pass (`plan_delivery`, unless `plan` is given) finds the
    gain; each following pass gains, limits and writes (`_write_pass`). When the limiter engaged, it lowers the
    loudness too (on peaky material by more than a dB): if that took the measurement more than CONVERGED_LU off
    target, the pass's files are discarded and the static gain corrected, up to MAX_PASSES passes, as two-pass
    normalisers do.
    """
    start = time.perf_counter()
    plan = plan or plan_delivery(sources, settings)
    names = ["MIX", *[n for n in sources if n != "MIX"]]
    gain_db, passes = plan.gain_db, 0
    while True:
        passes += 1
        writers = {n: open_writer(n, sources[n].channels) for n in names}
        try:
            limiter_db, meter = _write_pass(sources, settings, plan.measurement, gain_db, writers)
            missing = (plan.target_lufs - read_measurement(plan.measurement, meter, settings.speech_blocks)
                       if limiter_db > 0 and settings.profile.normalize else 0.0)   # `keep`: no target chased
            if (limiter_db <= 0 or abs(missing) <= CONVERGED_LU or passes == MAX_PASSES
                    or gain_db + missing > MAX_GAIN_DB):
                paths = {n: w.close() for n, w in writers.items()}
                break
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for w in writers.values():
            w.abort()
        gain_db += missing
    return StreamDelivery(paths, plan.input, plan.measurement, plan.target_lufs, plan.measured_lufs, plan.speech_pct,
                          gain_db, limiter_db, passes, time.perf_counter() - start)


def _write_pass(sources: dict, settings: DeliverySettings, measurement: str, gain_db: float,
                writers: dict) -> tuple[float, LoudnessMeter]:
    """One pass over `sources`: every block gained by `gain_db`, limited and handed to the writer of its name.

    One StreamingLimiter for all signals, run at 0 dBTP on each signal scaled by its own ceiling (M&E may have its
    own), its gain applied to the unscaled ones: one envelope holds every ceiling. Returns the limiter's largest
    reduction (dB, 0.0 when it did not engage) and a LoudnessMeter of the delivered `measured_stem`.
    """
    names = list(writers)
    readers = [sources[n] for n in names]
    profile = settings.profile
    ceilings = [profile.me_ceiling_dbtp if n == "ME" else profile.true_peak_dbtp for n in names]
    g = np.float32(10.0 ** (gain_db / 20.0))
    scale = [np.float32(10.0 ** ((gain_db - c) / 20.0)) for c in ceilings]
    limiter = StreamingLimiter(settings.rate, len(names), 0.0)
    stem = measured_stem(measurement)
    meter, metered = LoudnessMeter(settings.rate, sources[stem].channels, settings.layout), names.index(stem)

    def put(outs: list[np.ndarray]) -> None:
        for writer, out in zip(writers.values(), outs):
            if out.shape[0]:
                writer.write(out)
        meter.add(outs[metered])

    frames = readers[0].frames
    for s in range(0, frames, settings.block):
        xs = [r.read(s, settings.block) for r in readers]
        put(limiter.process([x * k for x, k in zip(xs, scale)], apply_to=[x * g for x in xs]))
        report("write", s + xs[0].shape[0], frames)
    if frames:
        put(limiter.flush())
    return limiter.max_reduction_db, meter
