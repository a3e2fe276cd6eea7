"""The whole-array loudness algorithms reelsplit used before issue 13, kept unchanged as the oracle the streaming
meters and limiter of pipeline.meter are tested against (tests/equivalence/test_meter.py, tests/equivalence/test_loudness.py).

Independent of the production kernels: integrated loudness is pyloudnorm's, the K-weighting is taken from
pyloudnorm's filters, and the true-peak interpolator and the limiter are this module's own copies. Only the
layout's BS.1770 weights (pipeline.layout through measured_channels), the limiter's settings check and the
result type come from pipeline.loudness. Not used by pipeline/.

Audio is float32/float64 shaped (samples, channels) (a 1-D array is taken as mono), full scale = 1.0, sample
rate in Hz. Loudness is in LUFS (= LKFS), loudness range in LU, peaks in dBFS / dBTP, gains in dB.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pyloudnorm
import scipy.ndimage
import scipy.signal

from pipeline.errors import PipelineError
from pipeline.loudness import Loudness, check_limiter_args, measured_channels

log = logging.getLogger(__name__)

_K_FILTER_CLASS = "DeMan"

_GATE_BLOCK_S = 0.400  # BS.1770-4 gating block T_g (eq. 3)
_SHORT_TERM_S = 3.0  # EBU Tech 3341/3342 short-term window
_ABS_GATE_LUFS = -70.0  # BS.1770-4 eq. 6 / Tech 3342 absolute gate
_LRA_REL_GATE_LU = -20.0  # Tech 3342 relative gate
_LRA_PERCENTILES = (10.0, 95.0)  # Tech 3342: LRA = 95th - 10th percentile of gated short-term loudness

# Samples per processing block. Long inputs (a 2-hour reel) are processed block by block with overlap,
# so extra memory stays O(block) besides the arrays the API returns.
_BLOCK = 1 << 16

# True-peak interpolator: a Kaiser-windowed sinc with T taps of the input on each side of the
# interpolated point (2T taps per phase; BS.1770-4 annex 2's example uses 12, we use 16 to keep the
# response flat within 0.02 dB to 19 kHz at 48 kHz, -0.35 dB at 20 kHz on the worst phase).
# The cutoff sits at the input Nyquist frequency, so phase 0 returns the samples exactly (the true
# peak is never below the sample peak).
_TP_HALF_TAPS = 8
_TP_KAISER_BETA = 5.0
_SCREEN_CHUNK = 1024  # samples per screening chunk (>= 2T): chunks proven quiet skip interpolation


# --------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field is ambiguous
class LimiterResult:
    """The one gain envelope to apply to every signal handed to `true_peak_limiter`."""

    gain: np.ndarray | None  # float32 (samples,) linear gain in (0, 1]; None: the limiter did not engage
    max_reduction_db: float  # largest reduction in dB (>= 0); 0.0 when it did not engage


# --------------------------------------------------------------------------------------------------
# input checks


def _as_2d(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """View `audio` as (samples, channels); a 1-D array is mono. Raises ValueError on bad arrays."""
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must be shaped (samples, channels), got shape {np.shape(audio)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be float32/float64 with full scale 1.0, got {x.dtype}")
    return x


def _check_rate(rate: float) -> int:
    if not (isinstance(rate, (int, np.integer)) or float(rate).is_integer()) or rate <= 0:
        raise ValueError(f"sample rate must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def _db(linear: float) -> float:
    """20*log10 of an amplitude; -inf for 0."""
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


# --------------------------------------------------------------------------------------------------
# integrated loudness, short-term loudness, loudness range


def integrated_loudness(audio: np.ndarray, rate: int, layout: str | None = None) -> float:
    """BS.1770-4 gated integrated loudness of (samples, channels) audio, in LUFS.

    Measured by pyloudnorm (K-weighting: BS.1770-4 tables 1-2, its "DeMan" filters; 400 ms
    blocks with 75 % overlap, eq. 3; absolute gate -70 LUFS, eq. 6; relative gate -10 LU, eq. 7).
    The layouts of pipeline.layout are supported (5.1 in L R C LFE Ls Rs order); for 5.1 the LFE is dropped (BS.1770-4 does not measure it) and
    L R C Ls Rs go to pyloudnorm, which weights the surrounds by 1.41 (eq. 2, +1.5 dB).
    Returns -inf for silence and for audio shorter than one 400 ms gating block.
    Raises MediaError for any other channel count or layout.
    """
    rate = _check_rate(rate)
    x = _as_2d(audio)
    keep, _ = measured_channels(x.shape[1], layout)
    if len(keep) < x.shape[1]:       # the LFE: pyloudnorm weights what is left by position (L R C Ls Rs)
        x = x[:, keep]
    if x.shape[0] < _GATE_BLOCK_S * rate:  # pyloudnorm raises here: one block is the shortest input
        return -math.inf
    return float(pyloudnorm.Meter(rate, filter_class=_K_FILTER_CLASS).integrated_loudness(x))


@lru_cache(maxsize=16)
def _k_weighting_sos(rate: int) -> np.ndarray:
    """BS.1770-4 K-weighting as second-order sections (2, 6): shelving filter (table 1) then RLB
    high-pass (table 2), taken from the same pyloudnorm meter integrated_loudness uses (so the
    short-term and integrated figures agree)."""
    filters = pyloudnorm.Meter(rate, filter_class=_K_FILTER_CLASS)._filters
    # dict order is application order: shelving (stage 1), then high-pass (stage 2)
    return np.array([np.concatenate([f.b, f.a]) for f in filters.values()])


def windowed_loudness(
    audio: np.ndarray, rate: int, layout: str | None = None, window_s: float = _SHORT_TERM_S, hop_s: float = 0.1
) -> np.ndarray:
    """Loudness of sliding windows (K-weighted, channel-weighted; BS.1770-4 eq. 2 with the block T_g
    replaced by `window_s`), in LUFS, float64 shaped (windows,).

    Value i measures [i*hop_s, i*hop_s + window_s) (complete windows only, as ffmpeg's ebur128 does):
    window_s 3 s is short-term loudness (EBU Tech 3341), 0.4 s momentary loudness, and 0.4 s with a
    0.1 s hop the gating blocks of BS.1770-4 eq. 3 (75 % overlap). Windowed silence reads -inf.
    L = -0.691 + 10 log10(sum_i G_i z_i), z_i the mean square of K-weighted channel i.
    """
    rate = _check_rate(rate)
    x = _as_2d(audio)
    keep, weights = measured_channels(x.shape[1], layout)
    hop = int(round(hop_s * rate))
    n_win = int(round(window_s / hop_s))  # window length in hops
    if hop < 1 or n_win < 1 or abs(n_win * hop_s - window_s) > 1e-9:
        raise ValueError(f"window_s ({window_s}) must be a whole number of hops ({hop_s}) of at least 1 sample")
    n_hops = x.shape[0] // hop
    if n_hops < n_win:
        return np.empty(0)

    # Energy of each hop: sum over its samples of sum_i G_i y_i^2 (y = K-weighted), in blocks of
    # whole hops; the filter state carries across blocks so the result does not depend on blocking.
    sos = _k_weighting_sos(rate)
    zi = np.zeros((sos.shape[0], 2, len(keep)))
    energy = np.empty(n_hops)
    hops_per_block = max(1, _BLOCK // hop)
    for h0 in range(0, n_hops, hops_per_block):
        h1 = min(n_hops, h0 + hops_per_block)
        block = np.asarray(x[h0 * hop : h1 * hop, keep], dtype=np.float64)
        y, zi = scipy.signal.sosfilt(sos, block, axis=0, zi=zi)
        energy[h0:h1] = (np.square(y) @ weights).reshape(h1 - h0, hop).sum(axis=1)
    # Windows of n_win hops; summed directly (no cumulative-sum cancellation after loud passages).
    power = np.lib.stride_tricks.sliding_window_view(energy, n_win).sum(axis=1) / (n_win * hop)
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(power)


def short_term_loudness(
    audio: np.ndarray, rate: int, layout: str | None = None, hop_s: float = 0.1
) -> np.ndarray:
    """Short-term loudness (EBU Tech 3341: 3 s window), in LUFS, one value per `hop_s`; see windowed_loudness.
    There are floor(duration/hop_s) - 3/hop_s + 1 values, none when the audio is shorter than 3 s."""
    return windowed_loudness(audio, rate, layout, _SHORT_TERM_S, hop_s)


def gating_blocks(audio: np.ndarray, rate: int, layout: str | None = None) -> np.ndarray:
    """Loudness of the BS.1770-4 gating blocks (eq. 3: 400 ms, 75 % overlap), LUFS per block; block k
    covers [0.1 k, 0.1 k + 0.4) s."""
    return windowed_loudness(audio, rate, layout, _GATE_BLOCK_S, 0.1)


def loudness_range(audio: np.ndarray, rate: int, layout: str | None = None) -> float:
    """EBU Tech 3342 loudness range (LRA) of (samples, channels) audio, in LU.

    Short-term loudness every 0.1 s; drop values below -70 LUFS (absolute gate) and below the
    power mean of the remaining ones minus 20 LU (relative gate); LRA = 95th - 10th percentile.
    nan when the audio is shorter than 3 s or no short-term value passes the gates (silence).
    """
    st = short_term_loudness(audio, rate, layout)
    st = st[st >= _ABS_GATE_LUFS]
    if st.size == 0:
        return math.nan
    # Tech 3342: relative threshold = 10 log10(mean(10^(L_st/10))) - 20 LU
    relative = 10.0 * math.log10(float(np.mean(np.power(10.0, st / 10.0)))) + _LRA_REL_GATE_LU
    st = st[st >= relative]
    low, high = np.percentile(st, _LRA_PERCENTILES)
    return float(high - low)


# --------------------------------------------------------------------------------------------------
# true peak


def _oversampling(rate: int) -> int:
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
    t = _TP_HALF_TAPS
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
    """float32 rows [a, b) of `sig` * `gain`, zero outside [0, len(sig)). Multiplied exactly as
    `apply_limiter` does (float32 * float32), so what we verify is what gets delivered."""
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
    i in [s, e) of a block whose rows are offset by T (see _peak_track). float32 (e - s,)."""
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


def _peak_track(
    signals: Sequence[np.ndarray], gain: np.ndarray | None, lo: int, hi: int, factor: int, floor: float
) -> np.ndarray:
    """q[n] for n in [lo, hi): max over signals, channels and k = 0..factor-1 of
    |signal*gain interpolated at n + k/factor| (BS.1770-4 annex 2, before taking the overall max).

    Exact wherever it exceeds `floor`. Where the L1 bound proves the interpolated values cannot
    exceed `floor`, they are not computed and q is the sample peak there (<= floor and <= the exact
    value), which makes typical programme material several times cheaper. float64 (hi - lo,).
    """
    t = _TP_HALF_TAPS
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


def _max_abs(x: np.ndarray) -> float:
    """max |x| over a (samples, channels) array, block by block (no full-size temporary)."""
    peak = 0.0
    for b0 in range(0, x.shape[0], _BLOCK):
        peak = max(peak, float(np.abs(x[b0 : b0 + _BLOCK]).max()))
    return peak


def true_peak(audio: np.ndarray, rate: int) -> float:
    """True peak of (samples, channels) audio in dBTP: max over all channels (LFE included).

    BS.1770-4 annex 2: oversample 4x (polyphase FIR, see _TP_HALF_TAPS), take the max absolute
    value. Rates from 176.4 kHz are oversampled only 2x and from 352.8 kHz not at all, as the
    annex allows for high rates (see _oversampling). The annex's 12.04 dB attenuation is for
    fixed-point headroom and is not needed in floating point. The interpolated values just before
    the first and after the last sample (the reconstruction's ramp in/out) count too.
    Silence -> -inf.
    """
    rate = _check_rate(rate)
    x = _as_2d(audio)
    factor = _oversampling(rate)
    n = x.shape[0]
    best = _max_abs(x)  # the true peak is never below the sample peak (phase 0 is exact)
    if best == 0.0:
        return -math.inf
    for b0 in range(-1, n + 1, _BLOCK):  # q[-1] and q[n] cover [-1, 0) and [n, n+1)
        b1 = min(n + 1, b0 + _BLOCK)
        best = max(best, float(_peak_track([x], None, b0, b1, factor, best).max()))
    return _db(best)


def measure(audio: np.ndarray, rate: int, layout: str | None = None) -> Loudness:
    """Integrated loudness, true peak, sample peak and loudness range of (samples, channels) audio."""
    x = _as_2d(audio)
    return Loudness(
        integrated_lufs=integrated_loudness(x, rate, layout),
        true_peak_dbtp=true_peak(x, rate),
        sample_peak_dbfs=_db(_max_abs(x)),
        lra_lu=loudness_range(x, rate, layout),
    )


# --------------------------------------------------------------------------------------------------
# gain


def apply_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """`audio` (any shape, float) times 10^(gain_db/20), as a new float32 array. No clipping."""
    return np.asarray(audio, dtype=np.float32) * np.float32(10.0 ** (gain_db / 20.0))


# --------------------------------------------------------------------------------------------------
# true-peak limiter


def true_peak_limiter(
    signals: Sequence[np.ndarray],
    rate: int,
    ceiling_dbtp: float,
    lookahead_ms: float = 5.0,
    release_ms: float = 50.0,
    *,
    margin_db: float = 0.05,
) -> LimiterResult:
    """One gain envelope that keeps every signal's true peak <= `ceiling_dbtp` once applied.

    `signals` (e.g. the delivered mix, the dialogue stem, the M&E stem) are (samples, channels)
    arrays of the same length (channel counts may differ). All receive the same gain, so a mix that
    is the sum of stems still is after `apply_limiter`. The envelope reduces by the amount the
    loudest of them needs (aiming `margin_db` under the ceiling), attacks linearly over the
    lookahead, holds for `release_ms`, then returns to 1 over the lookahead again.

    Engages only when some true peak exceeds the ceiling; otherwise returns gain None. After
    computing the envelope it re-measures signal*gain (exactly as apply_limiter computes it) and
    corrects again where inter-sample peaks moved over the ceiling, up to 3 corrections; the
    returned gain is verified: true_peak(apply_limiter(signals, result)[i]) <= ceiling_dbtp for
    every i (PipelineError if 3 corrections did not get there, which should not happen).
    Vectorised and processed in blocks of _BLOCK samples, so a 2-hour reel needs memory for the
    (samples,) float32 gain (two while correcting) plus O(block). `margin_db` (keyword only) is
    how far under the ceiling the envelope aims.
    """
    rate = _check_rate(rate)
    xs = [_as_2d(s, f"signals[{i}]") for i, s in enumerate(signals)]
    if not xs:
        raise ValueError("true_peak_limiter needs at least one signal")
    n = xs[0].shape[0]
    if any(x.shape[0] != n for x in xs):
        raise ValueError(f"signals must have the same length, got {[x.shape[0] for x in xs]} samples")
    check_limiter_args(ceiling_dbtp, lookahead_ms, release_ms, margin_db)
    lookahead = max(1, round(lookahead_ms * rate / 1000.0))
    hold = max(0, round(release_ms * rate / 1000.0))
    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    target = ceiling * 10.0 ** (-margin_db / 20.0)
    factor = _oversampling(rate)

    gain: np.ndarray | None = None
    max_corrections = 3
    for sweep in range(max_corrections + 1):
        envelope = _limiter_sweep(xs, gain, n, factor, ceiling, target, lookahead, hold)
        if envelope is None:  # nothing over the ceiling: verified
            break
        if sweep == max_corrections:
            raise PipelineError(
                f"true-peak limiter could not hold {ceiling_dbtp} dBTP after {max_corrections} passes"
            )
        log.debug("limiter sweep %d: min gain %.2f dB", sweep, _db(float(envelope.min())))
        if gain is None:
            gain = envelope
        else:
            gain *= envelope
    if gain is None:
        return LimiterResult(gain=None, max_reduction_db=0.0)
    return LimiterResult(gain=gain, max_reduction_db=-_db(float(gain.min())))


def _limiter_sweep(
    xs: list[np.ndarray],
    gain: np.ndarray | None,
    n_samples: int,
    factor: int,
    ceiling: float,
    target: float,
    lookahead: int,
    hold: int,
) -> np.ndarray | None:
    """One pass over signal*gain: the extra envelope (float32 (n_samples,)) that brings every true
    peak to <= `target`, or None when no true peak exceeds `ceiling` (no correction needed).

    Per original sample n (A = lookahead, H = hold, both in samples):
      1. p[n] = max(q[n-1], q[n]): q[n] is the oversampled peak over [n, n+1) across all signals and
         channels, so p[n] covers both intervals the sample borders (the first and last sample also
         take the reconstruction's ramp in [-1, 0) and out [N, N+1), N = n_samples);
      2. r[n] = min(1, target / p[n]), the gain sample n needs;  d = 1 - r, the reduction;
      3. h[k] = max(d[k-H .. k+A])  (scipy maximum_filter1d);
      4. s[n] = mean(h[n-A .. n]),  gain = 1 - s.
    Why gain <= r: for every k in [n-A, n] the window [k-H, k+A] contains n (k-H <= n <= k+A), so
    h[k] >= d[n]; s[n], an average of such h[k], is >= d[n]; so 1 - s[n] <= 1 - d[n] = r[n].
    Shape: ramps down linearly over A samples ending at a peak, holds H samples, ramps up over A.
    A block [b0, b1) needs d on [b0-A-H, b1+A) and so q on [b0-A-H-1, b1+A): blocks overlap by
    that much and the result does not depend on the block size.
    """
    n = n_samples
    envelope: np.ndarray | None = None
    over = False
    a, h = lookahead, hold
    size = h + a + 1
    c1 = size // 2  # maximum_filter1d(size) at j spans [j - c1, j + size - 1 - c1]
    block = max(_BLOCK, 4 * (a + h))  # keep the overlap a small part of each block
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        lo, hi = b0 - a - h - 1, b1 + a
        q = _peak_track(xs, gain, lo, hi, factor, target)
        p = np.maximum(q[1:], q[:-1])  # p[n] for n in [lo+1, hi)
        # Samples outside the signal have no gain: fold the ramp out [N, N+1) into the last sample
        # (the ramp in [-1, 0) is already in p[0] through q[-1]) and ignore the rest.
        if hi > n:
            p[n - 1 - (lo + 1)] = max(p[n - 1 - (lo + 1)], q[n - lo])
            p[n - (lo + 1) :] = 0.0
        if lo + 1 < 0:
            p[: -(lo + 1)] = 0.0
        peak = float(p.max())
        if peak <= target:
            continue
        over = over or peak > ceiling
        d = np.zeros_like(p)
        np.divide(target, p, out=d, where=p > target)
        np.subtract(1.0, d, out=d, where=p > target)  # d = 1 - r where r < 1, else 0
        # h[k] for k in [b0 - A, b1): the window [k-H, k+A] in p's index k - (lo+1) is centred by c1
        hmax = scipy.ndimage.maximum_filter1d(d, size, mode="constant")[c1 : c1 + (b1 - b0) + a]
        csum = np.concatenate(([0.0], np.cumsum(hmax)))
        s = (csum[a + 1 :] - csum[: -(a + 1)]) / (a + 1)  # mean of hmax over [n-A, n], n in [b0, b1)
        g = 1.0 - s
        # Rounding guard: g <= r holds exactly in real arithmetic (proof above); keep it in floats.
        np.minimum(g, 1.0 - d[b0 - (lo + 1) : b1 - (lo + 1)], out=g)
        if envelope is None:
            envelope = np.ones(n, np.float32)
        envelope[b0:b1] = g
    return envelope if over else None


def apply_limiter(signals: Sequence[np.ndarray], result: LimiterResult) -> list[np.ndarray]:
    """Each (samples, channels) signal times `result.gain`, as new float32 arrays (copies as float32
    when the limiter did not engage)."""
    out = []
    for i, sig in enumerate(signals):
        x = _as_2d(sig, f"signals[{i}]")
        if result.gain is None:
            y = np.array(x, dtype=np.float32)
        else:
            if result.gain.shape != (x.shape[0],):
                raise ValueError(
                    f"gain has {result.gain.shape[0]} samples, signals[{i}] has {x.shape[0]}"
                )
            y = np.asarray(x, dtype=np.float32) * result.gain[:, None]
        out.append(y.reshape(np.shape(sig)) if np.ndim(sig) == 1 else y)
    return out
