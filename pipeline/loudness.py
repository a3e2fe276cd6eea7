"""ITU-R BS.1770-4 definitions the streaming meters and limiter of pipeline.meter are built from: the constants,
the K-weighting filter, the gates, the true-peak interpolator (annex 2), the gain to a target.

Pure functions over numpy arrays: no file I/O, no state. Audio is float32/float64 shaped (samples, channels) (a 1-D
array is taken as mono), full scale = 1.0, sample rate in Hz. Loudness is in LUFS (= LKFS), loudness range in LU,
peaks in dBFS / dBTP, gains in dB. Channel order and weights come from pipeline.layout (5.1: L R C LFE Ls Rs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import scipy.signal

from .errors import MediaError
from .layout import find_layout, supported

HOP_S = 0.1  # one energy value per 100 ms: gating blocks are 4 hops (75 % overlap, eq. 3), short-term windows 30
GATE_BLOCK_S = 0.400  # BS.1770-4 gating block T_g (eq. 3)
SHORT_TERM_S = 3.0  # EBU Tech 3341/3342 short-term window
ABS_GATE_LUFS = -70.0  # BS.1770-4 eq. 6 / Tech 3342 absolute gate
REL_GATE_LU = -10.0  # BS.1770-4 eq. 7 relative gate
LRA_REL_GATE_LU = -20.0  # Tech 3342 relative gate
LRA_PERCENTILES = (10.0, 95.0)  # Tech 3342: LRA = 95th - 10th percentile of gated short-term loudness

# K-weighting (BS.1770-4 tables 1 and 2) for any rate, as Brecht De Man derived it: a high shelf and the RLB
# high-pass, each from its analogue prototype by the bilinear transform; at 48 kHz they give the tables'
# coefficients. The same filters as pyloudnorm's "DeMan" class (tests/equivalence/test_loudness.py checks every bit).
_SHELF_GAIN_DB, _SHELF_Q, _SHELF_HZ = 3.99984385397, 0.7071752369554193, 1681.9744509555319
_SHELF_VB_EXPONENT = 0.499666774155  # the shelf's mid gain Vb = Vh ** this
_HIGH_PASS_Q, _HIGH_PASS_HZ = 0.5003270373253953, 38.13547087613982

# True-peak interpolator: a Kaiser-windowed sinc with T taps of the input on each side of the
# interpolated point (2T taps per phase; BS.1770-4 annex 2's example uses 12, we use 16 to keep the
# response flat within 0.02 dB to 19 kHz at 48 kHz, -0.35 dB at 20 kHz on the worst phase).
# The cutoff sits at the input Nyquist frequency, so phase 0 returns the samples exactly (the true
# peak is never below the sample peak).
TP_HALF_TAPS = 8
_TP_KAISER_BETA = 5.0
_SCREEN_CHUNK = 1024  # samples per screening chunk (>= 2T): chunks proven quiet skip interpolation


@dataclass(frozen=True)
class Loudness:
    """Loudness figures of one programme (all channels together)."""

    integrated_lufs: float  # BS.1770-4 gated integrated loudness; -inf for silence or < 400 ms
    true_peak_dbtp: float  # max over all channels (LFE included), oversampled (annex 2); -inf if silent
    sample_peak_dbfs: float  # max |sample| over all channels; -inf if silent
    lra_lu: float  # EBU Tech 3342 loudness range; nan if shorter than 3 s or nothing above the gates


# --------------------------------------------------------------------------------------------------
# input checks


def as_2d(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """View `audio` as (samples, channels); a 1-D array is mono. Raises ValueError on bad arrays."""
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must be shaped (samples, channels), got shape {np.shape(audio)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be float32/float64 with full scale 1.0, got {x.dtype}")
    return x


def check_rate(rate: float) -> int:
    """`rate` as an int; ValueError unless it is a positive whole number of Hz."""
    if not (isinstance(rate, (int, np.integer)) or float(rate).is_integer()) or rate <= 0:
        raise ValueError(f"sample rate must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def measured_channels(n_channels: int, layout: str | None) -> tuple[list[int], np.ndarray]:
    """The channel positions BS.1770-4 measures in (samples, n_channels) audio of `layout` (None: the usual one
    for the count) and their weights G_i (eq. 2), from pipeline.layout; MediaError for a layout it can't weight."""
    lay = find_layout(layout, n_channels)
    if lay is None:
        raise MediaError(f"cannot measure loudness of {n_channels} channels as layout {layout or 'unnamed'}: "
                         f"supported layouts are {supported()}")
    keep = list(lay.full_band)
    return keep, np.array([lay.weights[i] for i in keep])


def db(linear: float) -> float:
    """20*log10 of an amplitude; -inf for 0."""
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


# --------------------------------------------------------------------------------------------------
# loudness


@lru_cache(maxsize=16)
def k_weighting_sos(rate: int) -> np.ndarray:
    """BS.1770-4 K-weighting at `rate` Hz as second-order sections (2, 6) [b0 b1 b2 a0 a1 a2], a0 = 1: the
    shelving filter (table 1), then the RLB high-pass (table 2)."""
    k = np.tan(np.pi * _SHELF_HZ / rate)  # bilinear transform, prewarped at the shelf frequency
    vh = np.power(10.0, _SHELF_GAIN_DB / 20.0)
    vb = np.power(vh, _SHELF_VB_EXPONENT)
    q = _SHELF_Q
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    k, q = np.tan(np.pi * _HIGH_PASS_HZ / rate), _HIGH_PASS_Q
    a0 = 1.0 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, high_pass], dtype=np.float64)


def weighted_level(audio: np.ndarray, rate: int, layout: str | None = None) -> float:
    """BS.1770-4 K-weighted level of a short clip, ungated, in dB (LUFS scale): -0.691 + 10 log10(sum G_i z_i),
    eq. 2 over the whole clip without the 400 ms blocks and gates of eqs. 3-7, so a line of dialogue shorter than
    a gating block still has a level. -inf for silence or an empty clip."""
    x = as_2d(audio)
    keep, g = measured_channels(x.shape[1], layout)
    if x.shape[0] == 0:
        return -math.inf
    y = scipy.signal.sosfilt(k_weighting_sos(check_rate(rate)), x[:, keep].astype(np.float64), axis=0)
    power = float(np.dot(g, np.mean(np.square(y), axis=0)))
    return -0.691 + 10.0 * math.log10(power) if power > 0 else -math.inf


def gated_loudness(block_lufs: np.ndarray, mask: np.ndarray | None = None) -> float:
    """BS.1770-4 integrated loudness from gating-block loudness (eqs. 4–7): absolute gate −70 LUFS, then
    relative gate −10 LU below the power mean of what passed. `mask` (bool per block) first keeps only
    the chosen blocks — with speech blocks from a VAD this is dialog-gated loudness. −inf when no block passes.
    """
    blocks = np.asarray(block_lufs, dtype=np.float64)
    if mask is not None:
        blocks = blocks[np.asarray(mask, dtype=bool)[: blocks.size]]
    blocks = blocks[blocks > ABS_GATE_LUFS]
    if blocks.size == 0:
        return -math.inf
    relative = 10.0 * math.log10(float(np.mean(np.power(10.0, blocks / 10.0)))) + REL_GATE_LU
    blocks = blocks[blocks > relative]
    return float(10.0 * math.log10(float(np.mean(np.power(10.0, blocks / 10.0)))))


def gain_to_target(measured_lufs: float, target_lufs: float, max_gain_db: float = 30.0) -> float:
    """Gain in dB that brings `measured_lufs` to `target_lufs`, clamped to +-max_gain_db.

    Silence (measured -inf) gets 0.0: there is nothing to bring to the target.
    """
    if not math.isfinite(target_lufs):
        raise ValueError(f"target loudness must be finite, got {target_lufs}")
    if not max_gain_db >= 0:
        raise ValueError(f"max_gain_db must be >= 0, got {max_gain_db}")
    if measured_lufs == -math.inf:
        return 0.0
    if not math.isfinite(measured_lufs):
        raise ValueError(f"measured loudness must be finite or -inf, got {measured_lufs}")
    return float(min(max_gain_db, max(-max_gain_db, target_lufs - measured_lufs)))


# --------------------------------------------------------------------------------------------------
# true peak


def oversampling(rate: int) -> int:
    """Oversampling factor for the true peak. BS.1770-4 annex 2 oversamples 48 kHz by 4 (to
    192 kHz) and lets higher input rates use a lower ratio; we keep the oversampled rate at
    >= 176.4 kHz (4 x 44.1 kHz): 4x below 176.4 kHz, 2x from 176.4 kHz, none from 352.8 kHz."""
    if rate < 176_400:
        return 4
    if rate < 352_800:
        return 2
    return 1


@lru_cache(maxsize=4)
def _tp_kernel(factor: int) -> tuple[np.ndarray, float]:
    """Polyphase weights (2T, factor-1) float32 for the interpolated values at n + k/factor,
    k = 1..factor-1, from input samples n + m, m = -T+1..T; and the largest per-phase L1 norm
    (a bound: |interpolated| <= L1 * max |x| over the taps)."""
    t = TP_HALF_TAPS
    if factor == 1:
        return np.zeros((2 * t, 0), np.float32), 1.0
    # Annex 2: zero-stuff by `factor`, low-pass at the original Nyquist frequency (gain `factor`).
    h = scipy.signal.firwin(2 * t * factor + 1, 1.0 / factor, window=("kaiser", _TP_KAISER_BETA)) * factor
    m = np.arange(-t + 1, t + 1)
    # y(n + k/f) = sum_m x[n+m] h_c[k - f*m], h_c centred at index f*t
    weights = np.stack([h[k - factor * m + factor * t] for k in range(1, factor)], axis=1)
    weights = weights.astype(np.float32)
    # + 1e-4: room for float32 rounding of the sums, so the bound stays a bound
    l1 = float(np.abs(weights.astype(np.float64)).sum(axis=0).max()) * (1 + 1e-4)
    return weights, l1


def _signal_block(sig: np.ndarray, gain: np.ndarray | None, a: int, b: int) -> np.ndarray:
    """float32 rows [a, b) of `sig` * `gain`, zero outside [0, len(sig)). Multiplied as the limiter's output
    is (float32 * float32), so what the limiter verifies is what gets delivered."""
    n = sig.shape[0]
    s0, s1 = max(a, 0), min(b, n)
    if s0 == a and s1 == b:
        out = sig[a:b].astype(np.float32)  # always a copy
    else:
        out = np.zeros((b - a, sig.shape[1]), np.float32)
        if s1 > s0:
            out[s0 - a : s1 - a] = sig[s0:s1]
    if gain is not None and s1 > s0:
        out[s0 - a : s1 - a] *= gain[s0:s1, None]
    return out


def _rowmax(x: np.ndarray) -> np.ndarray:
    """max over axis 1 of (L, C), column by column: numpy's max(axis=1) is ~10x slower on few columns."""
    out = x[:, 0].copy()
    for c in range(1, x.shape[1]):
        np.maximum(out, x[:, c], out=out)
    return out


def _hot_runs(sample_abs: np.ndarray, length: int, bound: float, floor: float) -> list[tuple[int, int]]:
    """Ranges [s, e) of outputs 0..length-1 whose interpolated values may exceed `floor`.

    `sample_abs` holds max |x| per input row, rows offset by T (output i uses rows i+1 .. i+2T).
    An interpolated value is at most `bound` (the phases' L1 norm) times the largest |x| under its
    taps, so chunks whose neighbourhood stays under floor / bound are skipped. Runs closer than
    8 chunks are merged to keep the number of numpy calls down.
    """
    chunk = _SCREEN_CHUNK
    n_out = -(-length // chunk)
    padded = np.zeros((n_out + 1) * chunk, np.float32)
    used = min(padded.size, sample_abs.size)
    padded[:used] = sample_abs[:used]
    chunk_max = padded.reshape(-1, chunk).max(axis=1)
    # output chunk c reads rows [c*chunk + 1, (c+1)*chunk - 1 + 2T] within row chunks c and c+1
    need = np.flatnonzero(np.maximum(chunk_max[:-1], chunk_max[1:]) * bound > floor)
    if need.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(need) > 8) + 1
    return [
        (int(group[0]) * chunk, min(length, (int(group[-1]) + 1) * chunk))
        for group in np.split(need, breaks)
    ]


def _interpolated_abs(xb: np.ndarray, s: int, e: int, weights: np.ndarray) -> np.ndarray:
    """max over channels and phases k = 1..factor-1 of |x interpolated at i + k/factor| for outputs
    i in [s, e) of a block whose rows are offset by T (see peak_track). float32 (e - s,)."""
    n = e - s
    acc = np.empty((n, xb.shape[1]), np.float32)
    tmp = np.empty_like(acc)
    best = np.zeros_like(acc)
    for k in range(weights.shape[1]):  # one FIR per phase, all channels at once, in float32
        np.multiply(xb[s + 1 : s + 1 + n], weights[0, k], out=acc)  # tap m = -T+1 is row i+1
        for j in range(1, weights.shape[0]):
            np.multiply(xb[s + 1 + j : s + 1 + j + n], weights[j, k], out=tmp)
            acc += tmp
        np.maximum(best, np.abs(acc, out=acc), out=best)
    return _rowmax(best)


def peak_track(
    signals: Sequence[np.ndarray], gain: np.ndarray | None, lo: int, hi: int, factor: int, floor: float
) -> np.ndarray:
    """q[n] for n in [lo, hi): max over signals, channels and k = 0..factor-1 of
    |signal*gain interpolated at n + k/factor| (BS.1770-4 annex 2, before taking the overall max).

    `signals` are (samples, channels) float arrays indexed from 0 (zeros outside), `gain` None or float32
    (samples,); `factor` from `oversampling`. The annex's 12.04 dB attenuation is for fixed-point headroom and
    is not needed in floating point; the values at n = -1 and n = samples (the reconstruction's ramp in and
    out) are computed like any other. Exact wherever it exceeds `floor`. Where the L1 bound proves the
    interpolated values cannot exceed `floor`, they are not computed and q is the sample peak there (<= floor
    and <= the exact value), which makes typical programme material several times cheaper. float64 (hi - lo,).
    """
    t = TP_HALF_TAPS
    weights, bound = _tp_kernel(factor)
    length = hi - lo
    q = np.zeros(length)
    for sig in signals:
        xb = _signal_block(sig, gain, lo - t, hi + t)  # rows lo-T .. hi+T-1: taps reach T either side
        sample_abs = _rowmax(np.abs(xb))
        np.maximum(q, sample_abs[t : t + length], out=q)  # phase 0: the samples themselves
        if weights.shape[1] == 0:
            continue
        for s, e in _hot_runs(sample_abs, length, bound, floor):
            np.maximum(q[s:e], _interpolated_abs(xb, s, e, weights), out=q[s:e])
    return q


# --------------------------------------------------------------------------------------------------
# limiter settings


def check_limiter_args(ceiling_dbtp: float, lookahead_ms: float, release_ms: float, margin_db: float) -> None:
    """ValueError unless the limiter's settings make sense."""
    if not math.isfinite(ceiling_dbtp):
        raise ValueError(f"ceiling must be finite, got {ceiling_dbtp}")
    if not lookahead_ms > 0 or not release_ms >= 0 or not margin_db >= 0:
        raise ValueError(
            "need lookahead_ms > 0, release_ms >= 0, margin_db >= 0; "
            f"got {lookahead_ms}, {release_ms}, {margin_db}"
        )
