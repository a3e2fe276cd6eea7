"""The whole-array QC reelsplit used before issue 13 (pipeline.qc.check_stems), kept unchanged as the oracle
pipeline.qc.check_stems_stream is tested against (tests/equivalence/test_meter.py): every stem read whole, measured with
reference.loudness, its own VAD run. The checks themselves (qc.verdict) and the result type are pipeline's."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline import vad
from pipeline.deliver import choose_measurement
from pipeline.loudness import gated_loudness
from pipeline.profiles import Profile
from pipeline.qc import FULL_SCALE, QcResult, verdict

from . import loudness
from .deliver import measure_for


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else float("-inf")


def _energy_in(x: np.ndarray, regions, rate: int) -> float:
    return float(sum(np.sum(np.square(x[int(r.start_s * rate):int(r.end_s * rate)], dtype=np.float64))
                     for r in regions))


def _overlap_s(a, b) -> float:
    return sum(max(0.0, min(x.end_s, y.end_s) - max(x.start_s, y.start_s)) for x in a for y in b)


def _verdict(profile: Profile, layout: str, m: dict, blocks_mix: np.ndarray, me_speech, speech_s: float,
             e_dx: float, e_me: float, dx_speech: float, dx_quiet: float) -> QcResult:
    """The QcResult from the measurements `m`: the figures derived from them (maxima, leakage, M&E against DX,
    DX outside dialogue) and the verdict."""
    short_term = m["short_term"]["MIX"]
    m = dict(
        m,
        short_term_max_lufs=float(short_term.max()) if short_term.size else float("-inf"),
        momentary_max_lufs=float(blocks_mix.max()) if blocks_mix.size else float("-inf"),
        true_peak_dbtp=max(m["stem_true_peaks"].values()),
        speech_leak_pct=100.0 * _overlap_s(m["speech"], me_speech) / speech_s if speech_s else 0.0,
        me_to_dx_db=10 * math.log10(e_me / e_dx) if e_dx > 0 and e_me > 0 else float("-inf"),
        dx_nonspeech_lu=dx_quiet - dx_speech if math.isfinite(dx_speech) else float("nan"),
    )
    reasons = verdict(profile, layout, m)
    return QcResult(qc="fail" if reasons else "pass", reasons=tuple(reasons), **m)


def check_stems(wavs: dict[str, Path], layout: str, profile: Profile) -> QcResult:
    """Read the written WAVs (at least MIX, DX, ME) back, measure them and give the verdict."""
    data, rate = {}, 0
    for name, path in wavs.items():
        data[name], rate = sf.read(str(path), dtype="float32", always_2d=True)
    lengths = {a.shape[0] for a in data.values()}
    if len(lengths) != 1:
        raise ValueError(f"written stems differ in length: {sorted(lengths)} samples")
    samples = lengths.pop()
    mix, dx, me = data["MIX"], data["DX"], data["ME"]
    residual = np.abs(mix.astype(np.float64) - (dx.astype(np.float64) + me.astype(np.float64)))
    null_db = _db(float(residual.max()) if residual.size else 0.0)
    peaks = {name: loudness.true_peak(a, rate) for name, a in data.items()}
    clipped = int(sum(np.count_nonzero(np.abs(a) >= FULL_SCALE) for a in data.values()))

    speech = vad.speech_regions(dx, rate)
    me_speech = vad.speech_regions(me, rate)
    duration = samples / rate
    speech_s = sum(r.duration_s for r in speech)
    speech_pct = 100.0 * vad.speech_fraction(speech, duration) if duration else 0.0
    blocks_mix = loudness.gating_blocks(mix, rate, layout)
    blocks_dx = loudness.gating_blocks(dx, rate, layout)
    mask = vad.block_mask(speech, blocks_mix.size)
    measurement, target = choose_measurement(profile, 100.0 * float(mask.mean()) if mask.size else 0.0)
    measured = measure_for(measurement, mix, dx, rate, layout, mask)
    dx_speech = gated_loudness(blocks_dx, mask)
    dx_quiet = gated_loudness(blocks_dx, ~mask)
    e_dx, e_me = _energy_in(dx, speech, rate), _energy_in(me, speech, rate)
    short_term = {n: loudness.short_term_loudness(data[n], rate, layout) for n in ("MIX", "DX", "ME")}

    return _verdict(profile, layout, dict(
        measurement=measurement, target_lufs=target, measured_lufs=measured,
        output_lufs=loudness.integrated_loudness(mix, rate, layout),
        dialog_gated_lufs=gated_loudness(blocks_mix, mask),
        lra_lu=loudness.loudness_range(mix, rate, layout),
        dx_lufs=loudness.integrated_loudness(dx, rate, layout),
        me_lufs=loudness.integrated_loudness(me, rate, layout),
        stem_true_peaks=peaks, null_residual_dbfs=null_db, clipped_samples=clipped, speech_pct=speech_pct,
        samples=samples, rate=rate, speech=speech, short_term=short_term,
    ), blocks_mix, me_speech, speech_s, e_dx, e_me, dx_speech, dx_quiet)
