"""Streaming BS.1770-4 measurement and true-peak limiting: the one implementation reelsplit measures and limits with.

Each object is fed consecutive blocks of one programme, (n, channels) float (any n >= 0, full scale 1.0), and
holds O(block) memory whatever the programme's length; the only per-programme state is one float per 100 ms.
The figures do not depend on how the programme is cut into blocks. The definitions they run (K-weighting,
gates, true-peak interpolator) are in pipeline.loudness; tests/reference holds the whole-array algorithms the
tests compare them with.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.ndimage
import scipy.signal

from .errors import PipelineError
from .loudness import (
    ABS_GATE_LUFS,
    GATE_BLOCK_S,
    HOP_S,
    LRA_PERCENTILES,
    LRA_REL_GATE_LU,
    SHORT_TERM_S,
    TP_HALF_TAPS,
    as_2d,
    check_limiter_args,
    check_rate,
    db,
    gated_loudness,
    k_weighting_sos,
    measured_channels,
    oversampling,
    peak_track,
)

_CORRECTIONS = 3  # envelope stages of the limiter: the first pass and two corrections


class _BlockMeter:
    """What every meter does with a block: check it is (n, channels) float, skip it when empty, count it."""

    def __init__(self, rate: int, channels: int):
        self.rate = check_rate(rate)
        self.channels = int(channels)
        self.samples = 0  # fed so far

    def add(self, block: np.ndarray) -> None:
        """Feed the next (n, channels) float block of the programme (n may be 0)."""
        x = as_2d(block, "block")
        if x.shape[1] != self.channels:
            raise ValueError(f"block has {x.shape[1]} channels, the meter was made for {self.channels}")
        if x.shape[0]:
            self._take(x)
            self.samples += x.shape[0]

    def _take(self, x: np.ndarray) -> None:
        """Measure the next (n >= 1, channels) block; `self.samples` counts the blocks before it."""
        raise NotImplementedError


class _Series:
    """A growable float64 array (amortised doubling): the per-100-ms values of a programme."""

    def __init__(self) -> None:
        self._data = np.empty(64)
        self._size = 0

    def extend(self, values: np.ndarray | float) -> None:
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
        need = self._size + values.size
        if need > self._data.size:
            grown = np.empty(max(need, 2 * self._data.size))
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : need] = values
        self._size = need

    def view(self) -> np.ndarray:
        return self._data[: self._size]


# --------------------------------------------------------------------------------------------------
# loudness


class LoudnessMeter(_BlockMeter):
    """BS.1770-4 / EBU R 128 loudness of a programme fed as consecutive (n, channels) blocks.

    K-weighting (loudness.k_weighting_sos) runs with its filter state carried across blocks, so the filtered
    signal is the one a whole-array filter gives; the channel-weighted energy (BS.1770-4 eq. 2, LFE dropped) is
    summed per 100 ms hop. Gating blocks (4 hops), short-term windows (30 hops), integrated loudness and LRA
    are computed from those sums. Memory: one float per 100 ms. MediaError for a layout BS.1770 can't weight.
    """

    def __init__(self, rate: int, channels: int, layout: str | None = None):
        super().__init__(rate, channels)
        self._keep, self._weights = measured_channels(self.channels, layout)
        self._sos = k_weighting_sos(self.rate)
        self._zi = np.zeros((self._sos.shape[0], 2, len(self._keep)))
        self._hop = int(round(HOP_S * self.rate))
        self._pending = np.zeros(self._hop)  # weighted squares of the hop being filled
        self._n_pending = 0
        self._energy = _Series()  # per complete hop: sum over its samples of sum_i G_i y_i^2

    def _take(self, x: np.ndarray) -> None:
        n = x.shape[0]
        y, self._zi = scipy.signal.sosfilt(
            self._sos, np.asarray(x[:, self._keep], dtype=np.float64), axis=0, zi=self._zi
        )
        w = np.square(y) @ self._weights
        hop, i = self._hop, 0
        if self._n_pending:  # complete the hop left open by the previous block
            i = min(hop - self._n_pending, n)
            self._pending[self._n_pending : self._n_pending + i] = w[:i]
            self._n_pending += i
            if self._n_pending == hop:
                self._energy.extend(self._pending.sum())
                self._n_pending = 0
        whole = (n - i) // hop
        if whole:
            self._energy.extend(w[i : i + whole * hop].reshape(whole, hop).sum(axis=1))
            i += whole * hop
        if i < n:
            self._pending[: n - i] = w[i:]
            self._n_pending = n - i

    def _windowed(self, window_s: float) -> np.ndarray:
        """Loudness of the complete windows of `window_s` (a whole number of hops) every 100 ms, LUFS:
        L = -0.691 + 10 log10(sum_i G_i z_i), z_i the mean square of K-weighted channel i (BS.1770-4 eq. 2)."""
        n_win = int(round(window_s / HOP_S))
        energy = self._energy.view()
        if energy.size < n_win:
            return np.empty(0)
        power = np.lib.stride_tricks.sliding_window_view(energy, n_win).sum(axis=1) / (n_win * self._hop)
        with np.errstate(divide="ignore"):
            return -0.691 + 10.0 * np.log10(power)

    def gating_blocks(self) -> np.ndarray:
        """BS.1770-4 gating-block loudness so far (eq. 3: 400 ms every 100 ms, complete blocks only), LUFS, float64
        (blocks,); block k covers [0.1 k, 0.1 k + 0.4) s, silence reads -inf."""
        return self._windowed(GATE_BLOCK_S)

    def short_term(self) -> np.ndarray:
        """EBU Tech 3341 short-term loudness (3 s windows every 100 ms, complete windows only, as ffmpeg's
        ebur128), LUFS, float64: floor(T / 0.1 s) - 29 values, none under 3 s."""
        return self._windowed(SHORT_TERM_S)

    def gated(self, mask: np.ndarray | None = None) -> float:
        """loudness.gated_loudness over this meter's gating blocks (e.g. `mask` = speech blocks), LUFS."""
        return gated_loudness(self.gating_blocks(), mask)

    def integrated(self) -> float:
        """BS.1770-4 integrated loudness so far, LUFS (eqs. 4-7); -inf for silence and for less than 400 ms.

        The blocks are counted as pyloudnorm counts them (the tests hold the two within 0.01 LU; measured
        <= 2e-7): round((T - 0.4 s) / 0.1 s) + 1 blocks of T seconds, so the last block may run past the end
        by up to 50 ms (the missing part counts as silence, the divisor stays 400 ms); that block is rebuilt
        here from the last complete hops and the open one.
        """
        n = self.samples
        if n < GATE_BLOCK_S * self.rate:
            return -math.inf
        hop, energy = self._hop, self._energy.view()
        n_blocks = int(np.round((n / self.rate - GATE_BLOCK_S) / (GATE_BLOCK_S * (1.0 - 0.75)))) + 1
        n_win = int(round(GATE_BLOCK_S / HOP_S))
        full = max(0, min(n_blocks, energy.size - n_win + 1))  # blocks inside the complete hops
        sums = np.lib.stride_tricks.sliding_window_view(energy, n_win).sum(axis=1)[:full] if full else np.empty(0)
        tail = [energy[j:].sum() + self._pending[: self._n_pending].sum() for j in range(full, n_blocks)]
        power = np.concatenate([sums, tail]) / (n_win * hop)
        with np.errstate(divide="ignore"):
            return gated_loudness(-0.691 + 10.0 * np.log10(power))

    def lra(self) -> float:
        """EBU Tech 3342 loudness range so far, LU: of the short-term values, drop those under -70 LUFS and under
        the power mean of the rest - 20 LU; LRA = 95th - 10th percentile. nan under 3 s or when nothing passes."""
        st = self.short_term()
        st = st[st >= ABS_GATE_LUFS]
        if st.size == 0:
            return math.nan
        relative = 10.0 * math.log10(float(np.mean(np.power(10.0, st / 10.0)))) + LRA_REL_GATE_LU
        low, high = np.percentile(st[st >= relative], LRA_PERCENTILES)
        return float(high - low)


def integrated_loudness(audio: np.ndarray, rate: int, layout: str | None = None) -> float:
    """BS.1770-4 integrated loudness of a whole (samples, channels) array (1-D: mono), LUFS: a LoudnessMeter fed
    it as one block. For short clips (a spotting list's lines); a programme goes through the meter block by block.
    -inf for silence and under 400 ms; MediaError for a layout BS.1770 can't weight."""
    x = as_2d(audio)
    meter = LoudnessMeter(rate, x.shape[1], layout)
    meter.add(x)
    return meter.integrated()


# --------------------------------------------------------------------------------------------------
# true peak


class TruePeakMeter(_BlockMeter):
    """BS.1770-4 annex 2 true peak (and sample peak, clipped samples) of consecutive (n, channels) blocks.

    The interpolator (loudness.peak_track: 4x oversampling under 176.4 kHz, 2x to 352.8 kHz, none above) runs
    over each block with the last 2T - 1 input rows kept from the one before (T = taps each side), so every
    interpolated value is computed from the same taps as on the whole array; the reconstruction's ramp in
    before the first sample counts, and the ramp out after the last one is added whenever `dbtp` is read.
    """

    def __init__(self, rate: int, channels: int, clip_level: float = 1.0):
        super().__init__(rate, channels)
        self.clip_level = float(clip_level)
        self._factor = oversampling(self.rate)
        self._hist = np.zeros((0, self.channels), np.float32)  # rows [samples - len(hist), samples)
        self._next = -1  # next interpolation interval [i, i + 1) to measure; -1 is the ramp in
        self._peak = 0.0  # max of sample peak and of the interpolated values measured so far
        self._sample_peak = 0.0
        self.clipped = 0  # samples (one per channel) with |x| >= clip_level

    def _take(self, x: np.ndarray) -> None:
        mag = np.abs(x)
        self._sample_peak = max(self._sample_peak, float(mag.max()))
        self.clipped += int(np.count_nonzero(mag >= self.clip_level))
        start = self.samples - self._hist.shape[0]
        buf = np.concatenate([self._hist, x.astype(np.float32)])
        end = self.samples + x.shape[0] - TP_HALF_TAPS  # intervals whose taps (i-T+1 .. i+T) have all arrived
        if end > self._next:
            self._peak = max(self._peak, self._track(buf, start, self._next, end))
            self._next = end
        self._hist = buf[max(0, self._next - TP_HALF_TAPS + 1 - start) :]

    def _track(self, buf: np.ndarray, start: int, lo: int, hi: int) -> float:
        """max interpolated |x| over intervals [lo, hi), `buf` holding rows from `start` (zeros outside)."""
        floor = max(self._peak, self._sample_peak)  # exact above this; below it cannot raise the maximum
        return float(peak_track([buf], None, lo - start, hi - start, self._factor, floor).max())

    @property
    def sample_peak_dbfs(self) -> float:
        """max |sample| so far in dBFS; -inf if silent."""
        return db(self._sample_peak)

    @property
    def dbtp(self) -> float:
        """True peak of everything fed so far, dBTP: max over channels (LFE included); -inf if silent."""
        best = max(self._peak, self._sample_peak)
        if best == 0.0:
            return -math.inf
        if self.samples + 1 > self._next:  # the last intervals and the ramp out [N, N + 1), zeros after
            start = self.samples - self._hist.shape[0]
            best = max(best, self._track(self._hist, start, self._next, self.samples + 1))
        return db(best)


# --------------------------------------------------------------------------------------------------
# true-peak limiter


class _Envelope:
    """One limiter stage, run causally: q (true peak per interval) in, gain envelope out.

    Per sample n (A lookahead, H hold, both in samples):
      1. p[n] = max(q[n-1], q[n]): q[n] is the oversampled peak over [n, n+1) across all signals and channels,
         so p[n] covers both intervals the sample borders (the first and last sample also take the
         reconstruction's ramp in [-1, 0) and out [N, N+1));
      2. r[n] = min(1, target / p[n]), the gain sample n needs;  d = 1 - r, the reduction;
      3. h[k] = max(d[k-H .. k+A])  (scipy maximum_filter1d);
      4. g[n] = 1 - mean(h[n-A .. n]).
    Why g <= r: for every k in [n-A, n] the window [k-H, k+A] contains n, so h[k] >= d[n]; their mean is
    >= d[n]; so g[n] <= 1 - d[n] = r[n]. Shape: ramps down linearly over A samples ending at a peak, holds H
    samples, ramps up over A. g[n] needs q up to n + A, so it trails its input by A samples. Kept: the last
    A + H values of d and the last A of h. A stage is armed at its first peak over the ceiling and reduces
    nothing before it (it cannot know an over will come; the peaks it lets through there lie under the
    ceiling).
    """

    def __init__(self, lookahead: int, hold: int, target: float, ceiling: float):
        self.a, self.h = lookahead, hold
        self.target, self.ceiling = target, ceiling
        self.q_next = -1  # next q index expected (-1: the ramp in)
        self._q_prev = 0.0
        self._d = np.zeros(lookahead + hold)  # d for positions [d_next - A - H, d_next); < 0 is zero
        self._d_next = 0
        self._hmax = np.zeros(lookahead)  # h for positions [h_next - A, h_next)
        self._h_next = -lookahead
        self.g_next = 0  # envelope computed for positions [0, g_next)
        self.armed = False

    def peaks(self, q: np.ndarray, n_total: int | None) -> np.ndarray:
        """p for the positions q completes; q holds indices [q_next, q_next + len(q)). `n_total` (the length,
        at the end) folds the ramp out q[N] into p[N-1]."""
        qq = np.concatenate(([self._q_prev], q))
        q0 = self.q_next
        self.q_next += q.size
        if q.size:
            self._q_prev = float(q[-1])
        p = np.maximum(qq[:-1], qq[1:])  # positions [q0, q_next)
        if q0 < 0:
            p = p[-q0:]  # position -1 does not exist; q[-1] is in p[0]
        if n_total is not None and self.q_next == n_total + 1 and p.size:
            p = p[:-1]
            if p.size:
                p[-1] = max(p[-1], float(q[-1]))
        return p

    def feed(self, p: np.ndarray, final: bool) -> np.ndarray:
        """d from p (positions [d_next, d_next + len(p))), and the envelope g (float64) for the positions
        that are now complete ([g_next, ...)); at the end (`final`), up to the last position."""
        a, hold = self.a, self.h
        d = np.zeros_like(p)
        over = p > self.target
        if not self.armed:
            hot = np.flatnonzero(p > self.ceiling)
            if hot.size:
                self.armed = True
                over[: hot[0]] = False
            else:
                over[:] = False
        np.divide(self.target, p, out=d, where=over)
        np.subtract(1.0, d, out=d, where=over)  # d = 1 - r where r < 1, else 0
        d_base = self._d_next - a - hold
        d_end = self._d_next + p.size
        h_end = d_end if final else d_end - a
        if not over.any() and not self._d.any() and not self._hmax.any():  # no reduction near: g = 1
            count = max(0, h_end - self.g_next)
            self._d_next, self._h_next, self.g_next = d_end, h_end, self.g_next + count
            return np.ones(count)
        darr = np.concatenate([self._d, d, np.zeros(a if final else 0)])
        size = a + hold + 1
        # h[k] for k in [h_next, h_end): window d[k-H .. k+A] starts at darr index k - H - d_base
        hmax = scipy.ndimage.maximum_filter1d(darr, size, mode="constant")
        c1 = size // 2  # maximum_filter1d(size) at j spans [j - c1, j + size - 1 - c1]
        j0 = self._h_next - hold - d_base + c1
        h_new = hmax[j0 : j0 + (h_end - self._h_next)]
        harr = np.concatenate([self._hmax, h_new])  # positions [h_next - A, h_end)
        h_base = self._h_next - a
        cs = np.concatenate(([0.0], np.cumsum(harr)))
        i0, count = self.g_next - h_base, max(0, h_end - self.g_next)  # none while h_end < 0 (the start)
        s = (cs[i0 + 1 : i0 + 1 + count] - cs[i0 - a : i0 - a + count]) / (a + 1)
        g = 1.0 - s
        # Rounding guard: g <= r holds exactly in real arithmetic (see the class); keep it in floats.
        np.minimum(g, 1.0 - darr[self.g_next - d_base : self.g_next - d_base + count], out=g)
        self._d = darr[d_end - d_base - (a + hold) : d_end - d_base]
        self._d_next = d_end
        self._hmax = harr[harr.size - a :]
        self._h_next = h_end
        self.g_next += count
        return g


class StreamingLimiter:
    """A true-peak limiter run block by block, with a fixed delay of `latency` samples.

    `process` takes one aligned block per signal (same n, channel counts may differ) and returns each signal
    limited, delayed: the first calls return fewer samples; `flush` returns the rest, so the outputs add up to
    the input's length. One gain is shared by all signals (a mix that is the sum of stems still is), so the
    true peak of every signal stays <= `ceiling_dbtp` (aiming `margin_db` under it).

    It runs three envelope stages as a pipeline (the first pass and two corrections: where the gain moves fast
    it makes new inter-sample overs), each measuring the true peak of signal x gain-so-far and adding its own
    reduction (attack over the lookahead, hold `release_ms`, release over the lookahead), then a verifying
    stage that raises PipelineError if any interpolated peak of the output is still over the ceiling. Each stage
    trails the one before by lookahead + T samples (T = true-peak taps each side), so latency = 3 (A + T) + T.
    `apply_to` (optional, in every call) gives other aligned blocks that receive the gain instead of the
    measured ones (deliver.py limits signals scaled by their ceilings and gains the unscaled ones).
    Memory: the latency plus the current block; `max_reduction_db` is the largest reduction so far.
    """

    def __init__(self, rate: int, n_signals: int, ceiling_dbtp: float = 0.0, lookahead_ms: float = 5.0,
                 release_ms: float = 50.0, margin_db: float = 0.05):
        self.rate = check_rate(rate)
        if n_signals < 1:
            raise ValueError(f"the limiter needs at least one signal, got {n_signals}")
        check_limiter_args(ceiling_dbtp, lookahead_ms, release_ms, margin_db)
        self.n_signals = int(n_signals)
        self.ceiling_dbtp = float(ceiling_dbtp)
        lookahead = max(1, round(lookahead_ms * self.rate / 1000.0))
        hold = max(0, round(release_ms * self.rate / 1000.0))
        ceiling = 10.0 ** (ceiling_dbtp / 20.0)
        target = ceiling * 10.0 ** (-margin_db / 20.0)
        self._ceiling, self._target = ceiling, target
        self._factor = oversampling(self.rate)
        self._stages = [_Envelope(lookahead, hold, target, ceiling) for _ in range(_CORRECTIONS)]
        self._verify = _Envelope(lookahead, hold, target, ceiling)  # only its peaks() is used
        self.latency = _CORRECTIONS * (lookahead + TP_HALF_TAPS) + TP_HALF_TAPS
        self._x: list[np.ndarray] | None = None  # measured signals, float32, rows [base, n)
        self._y: list[np.ndarray] | None = None  # signals that get the gain (apply_to), rows [base, n)
        self._gain: list[np.ndarray] = [np.zeros(0, np.float32) for _ in range(_CORRECTIONS)]  # after stage k
        self._base = 0
        self._n = 0
        self._emitted = 0
        self._min_gain = 1.0
        self._done = False

    @property
    def max_reduction_db(self) -> float:
        """Largest gain reduction applied so far, dB (>= 0); 0.0 while the limiter has not engaged."""
        return 0.0 if self._min_gain >= 1.0 else -db(self._min_gain)

    def process(self, blocks: Sequence[np.ndarray], apply_to: Sequence[np.ndarray] | None = None
                ) -> list[np.ndarray]:
        """Feed one block per signal; returns the limited output that is ready (each float32, maybe 0 rows),
        of `apply_to` when given, else of `blocks`."""
        if self._done:
            raise ValueError("the limiter was flushed; make a new one for the next programme")
        if len(blocks) != self.n_signals:
            raise ValueError(f"expected {self.n_signals} signal blocks, got {len(blocks)}")
        xs = [as_2d(b, f"blocks[{i}]") for i, b in enumerate(blocks)]
        ys = xs if apply_to is None else [as_2d(b, f"apply_to[{i}]") for i, b in enumerate(apply_to)]
        if self._x is not None and (self._y is not None) != (apply_to is not None):
            raise ValueError("pass apply_to in every call or in none")
        n = xs[0].shape[0]
        if any(x.shape[0] != n for x in (*xs, *ys)):
            raise ValueError(f"blocks must have the same length, got {[x.shape[0] for x in (*xs, *ys)]} samples")
        if self._x is not None and (
                [x.shape[1] for x in xs] != [x.shape[1] for x in self._x]
                or (self._y is not None and [y.shape[1] for y in ys] != [y.shape[1] for y in self._y])):
            raise ValueError("the signals' channel counts changed between blocks")
        if self._x is None:
            self._x = [np.zeros((0, x.shape[1]), np.float32) for x in xs]
            self._y = [np.zeros((0, y.shape[1]), np.float32) for y in ys] if apply_to is not None else None
        self._x = [np.concatenate([old, x.astype(np.float32)]) for old, x in zip(self._x, xs)]
        if self._y is not None:
            self._y = [np.concatenate([old, y.astype(np.float32)]) for old, y in zip(self._y, ys)]
        self._n += n
        return self._advance(final=False)

    def flush(self) -> list[np.ndarray]:
        """The rest of the output (the last `latency` samples; [] if nothing was fed); no more input after."""
        if self._done:
            raise ValueError("the limiter was already flushed")
        self._done = True
        if self._x is None:
            return []
        return self._advance(final=True)

    def _peaks(self, gain: np.ndarray | None, avail: int, lo: int, hi: int) -> np.ndarray:
        """q over intervals [lo, hi) of signal x gain, from rows [base, avail) (zeros outside)."""
        assert self._x is not None
        rows = avail - self._base
        sigs = [x[:rows] for x in self._x]
        return peak_track(sigs, gain, lo - self._base, hi - self._base, self._factor, self._target)

    def _advance(self, final: bool) -> list[np.ndarray]:
        assert self._x is not None
        t, n, base = TP_HALF_TAPS, self._n, self._base
        avail, gain = n, None  # stage k's input: rows [base, avail) of x and of the gain so far
        for k, stage in enumerate(self._stages):
            q_end = n + 1 if final else avail - t
            if q_end > stage.q_next:
                q = self._peaks(gain, avail, stage.q_next, q_end)
                g0 = stage.g_next
                env = stage.feed(stage.peaks(q, n if final else None), final).astype(np.float32)
                new = env if k == 0 else gain[g0 - base : stage.g_next - base] * env
                self._gain[k] = np.concatenate([self._gain[k], new])
            avail, gain = stage.g_next, self._gain[k]
        # verify: every interpolated peak of the output so far under the ceiling
        q_end = n + 1 if final else avail - t
        ready = self._emitted
        if q_end > self._verify.q_next:
            p = self._verify.peaks(self._peaks(gain, avail, self._verify.q_next, q_end), n if final else None)
            if p.size and float(p.max()) > self._ceiling:
                raise PipelineError(
                    f"true-peak limiter could not hold {self.ceiling_dbtp} dBTP after {_CORRECTIONS} passes"
                )
            ready = min(self._verify.q_next, n)
        out_gain = gain[self._emitted - base : ready - base]
        if out_gain.size:
            self._min_gain = min(self._min_gain, float(out_gain.min()))
        sources = self._y if self._y is not None else self._x
        out = [y[self._emitted - base : ready - base] * out_gain[:, None] for y in sources]
        self._emitted = ready
        # keep rows still needed: the taps of the next intervals of the slowest (verifying) stage
        keep = max(base, min(self._emitted, self._verify.q_next - t + 1))
        self._x = [x[keep - base :] for x in self._x]
        if self._y is not None:
            self._y = [y[keep - base :] for y in self._y]
        self._gain = [g[keep - base :] for g in self._gain]
        self._base = keep
        return out
