"""Quality checks on what was actually written: loudness and true peak of each delivered WAV, and the null
test (peak of MIX − (DX + M&E)) after 24-bit quantisation."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from . import loudness


@dataclass(frozen=True)
class QcResult:
    output_lufs: float          # delivered mix, integrated (BS.1770-4)
    lra_lu: float               # delivered mix loudness range (EBU Tech 3342)
    dx_lufs: float
    me_lufs: float
    true_peak_dbtp: float       # max over every written stem
    stem_true_peaks: dict[str, float]
    null_residual_dbfs: float   # peak of MIX − (DX + ME), dBFS; −inf when exact
    samples: int                # length of the written stems, samples (all equal)


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else float("-inf")


def check_stems(wavs: dict[str, Path], layout: str) -> QcResult:
    """Read the written WAVs back and measure them. `wavs` has at least MIX, DX and ME."""
    data, rate = {}, None
    for name, path in wavs.items():
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        data[name] = audio
    lengths = {a.shape[0] for a in data.values()}
    if len(lengths) != 1:
        raise ValueError(f"written stems differ in length: {sorted(lengths)} samples")
    mix, dx, me = data["MIX"], data["DX"], data["ME"]
    residual = mix.astype(np.float64) - (dx.astype(np.float64) + me.astype(np.float64))
    peaks = {name: loudness.true_peak(a, rate) for name, a in data.items()}
    measured = loudness.measure(mix, rate, layout)
    return QcResult(
        output_lufs=measured.integrated_lufs,
        lra_lu=measured.lra_lu,
        dx_lufs=loudness.integrated_loudness(dx, rate, layout),
        me_lufs=loudness.integrated_loudness(me, rate, layout),
        true_peak_dbtp=max(peaks.values()),
        stem_true_peaks=peaks,
        null_residual_dbfs=_db(float(np.max(np.abs(residual))) if residual.size else 0.0),
        samples=lengths.pop(),
    )
