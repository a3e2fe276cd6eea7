"""Loudness, true peak and the true-peak limiter on synthetic compliance-style signals (EBU Tech 3341/3342 style),
cross-checked against ffmpeg's ebur128 filter where ffmpeg is installed and against pyloudnorm. Tolerance ±0.1 LU
unless stated.

Each check runs on the production meters and limiter of pipeline.meter (fed whole arrays in odd-size blocks;
`impl` "meter") and on the whole-array oracle the equivalence tests of tests/equivalence/test_meter.py compare them with
(reference.loudness; `impl` "oracle"), so both stand on the standard's signals on their own."""
from __future__ import annotations

import math
import os
import re
import shutil
import time
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from pipeline import ffmpeg, loudness
from pipeline.errors import MediaError
from pipeline.layout import LAYOUTS
from pipeline.loudness import Loudness, gain_to_target
from pipeline.meter import LoudnessMeter, StreamingLimiter, TruePeakMeter
from reference import loudness as oracle
from reference.loudness import LimiterResult, apply_gain, apply_limiter

RATE = 48_000
LU = 0.1  # loudness tolerance
A23 = 10 ** (-23 / 20)  # peak amplitude of a -23 dBFS sine

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None and not os.environ.get(ffmpeg.FFMPEG_ENV), reason="ffmpeg not installed"
)
LABELS_5_1 = LAYOUTS["5.1"].labels
BLOCK = 10_007  # samples per block fed to the streaming meters: odd, so blocks straddle hops and taps


# ------------------------------------------------------------------------------------------------
# the two implementations


def _blocks(x: np.ndarray):
    x = np.asarray(x)
    x = x[:, None] if x.ndim == 1 else x
    return x, [x[s : s + BLOCK] for s in range(0, len(x), BLOCK)]


def _loudness_meter(audio: np.ndarray, rate: int, layout: str | None = None) -> LoudnessMeter:
    x, blocks = _blocks(audio)
    meter = LoudnessMeter(rate, x.shape[1], layout)
    for b in blocks:
        meter.add(b)
    return meter


def _true_peak_meter(audio: np.ndarray, rate: int) -> TruePeakMeter:
    x, blocks = _blocks(audio)
    meter = TruePeakMeter(rate, x.shape[1])
    for b in blocks:
        meter.add(b)
    return meter


def _measure(audio: np.ndarray, rate: int, layout: str | None = None) -> Loudness:
    lm, tp = _loudness_meter(audio, rate, layout), _true_peak_meter(audio, rate)
    return Loudness(lm.integrated(), tp.dbtp, tp.sample_peak_dbfs, lm.lra())


def _limiter(signals, rate: int, ceiling_dbtp: float, lookahead_ms: float = 5.0, release_ms: float = 50.0,
             *, margin_db: float = 0.05) -> LimiterResult:
    """StreamingLimiter over whole arrays, block by block; its gain (None when it did not engage) in the
    oracle's LimiterResult, so the oracle's apply_limiter applies it."""
    lim = StreamingLimiter(rate, len(signals), ceiling_dbtp, lookahead_ms, release_ms, margin_db)
    ones = np.ones((len(signals[0]), 1), np.float32)  # the signal that gets the gain: the gain itself
    gain = [lim.process([np.asarray(s)[a : a + BLOCK] for s in signals], apply_to=[ones[a : a + BLOCK]])[0]
            for a in range(0, len(ones), BLOCK)]
    gain = np.concatenate([*gain, lim.flush()[0]])[:, 0] if len(ones) else np.zeros(0, np.float32)
    return LimiterResult(gain if lim.max_reduction_db > 0 else None, lim.max_reduction_db)


METER = SimpleNamespace(
    integrated_loudness=lambda x, rate, layout=None: _loudness_meter(x, rate, layout).integrated(),
    loudness_range=lambda x, rate, layout=None: _loudness_meter(x, rate, layout).lra(),
    short_term_loudness=lambda x, rate, layout=None: _loudness_meter(x, rate, layout).short_term(),
    true_peak=lambda x, rate: _true_peak_meter(x, rate).dbtp,
    measure=_measure,
    true_peak_limiter=_limiter,
)
IMPLEMENTATIONS = {"meter": METER, "oracle": oracle}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def impl(request):
    """The production streaming meters and limiter ("meter") or the whole-array oracle ("oracle")."""
    return IMPLEMENTATIONS[request.param]


# ------------------------------------------------------------------------------------------------
# signals and helpers


def sine(freq: float, amp: float, seconds: float, rate: int = RATE, phase: float = 0.0) -> np.ndarray:
    n = int(round(seconds * rate))
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / rate + phase)


def faded(x: np.ndarray, rate: int = RATE, ms: float = 20.0) -> np.ndarray:
    """Raised-cosine fade in and out, so the start and end do not ring (Gibbs) in true-peak meters."""
    n = int(rate * ms / 1000)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    y = np.array(x, dtype=np.float64)
    y[:n] *= ramp if y.ndim == 1 else ramp[:, None]
    y[-n:] *= ramp[::-1] if y.ndim == 1 else ramp[::-1, None]
    return y


def channels(n_channels: int, **placed: np.ndarray) -> np.ndarray:
    """(samples, n_channels) with the given 1-D signals at channel indices (c0=..., c4=...)."""
    length = len(next(iter(placed.values())))
    out = np.zeros((length, n_channels))
    for key, sig in placed.items():
        out[:, int(key[1:])] = sig
    return out


def programme(seconds: float, n_channels: int, seed: int, rate: int = RATE) -> np.ndarray:
    """Noise + sine programme with level changes: pinkish noise in 5 s sections at different
    levels, a 440 Hz tone, different per channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    noise = scipy.signal.lfilter([0.05], [1, -0.95], rng.standard_normal((n, n_channels)), axis=0)
    sections_db = rng.choice([-3.0, -9.0, -15.0, -24.0], size=n // (5 * rate) + 1)
    levels = np.repeat(10 ** (sections_db / 20), 5 * rate)
    tone = sine(440, 0.05, seconds, rate)[:, None] * rng.uniform(0.3, 1.0, n_channels)
    return faded(noise * levels[:n, None] + tone, rate)


def write_wav(path, audio: np.ndarray, rate: int = RATE):
    sf.write(path, np.asarray(audio, dtype=np.float32), rate, subtype="FLOAT")
    return path


def ebur128(path) -> dict[str, float]:
    """ffmpeg's ebur128 summary (I in LUFS, LRA in LU, true Peak in dBFS) for a file."""
    proc = ffmpeg.run(
        ["ffmpeg", "-nostats", "-hide_banner", "-i", str(path),
         "-filter_complex", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
        timeout=120,
    )
    stderr = proc.stderr.decode("utf-8", errors="replace")
    summary = stderr[stderr.rindex("Summary:"):]
    number = r"(-?inf|-?\d+(?:\.\d+)?)"
    found = {
        "I": re.search(rf"I:\s+{number} LUFS", summary),
        "LRA": re.search(rf"LRA:\s+{number} LU", summary),
        "peak": re.search(rf"Peak:\s+{number} dBFS", summary),
    }
    assert all(found.values()), summary
    return {key: float(m.group(1)) for key, m in found.items()}


def k_weighting_power_gain(freq: float) -> float:
    """|H(f)|^2 of the K-weighting filter from the BS.1770-4 table 1 and 2 coefficients (48 kHz)."""
    shelf = (
        [1.53512485958697, -2.69169618940638, 1.19839281085285],
        [1.0, -1.69065929318241, 0.73248077421585],
    )
    highpass = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])
    h = 1.0
    for b, a in (shelf, highpass):
        h *= abs(scipy.signal.freqz(b, a, worN=[freq], fs=48_000)[1][0])
    return h * h


# ------------------------------------------------------------------------------------------------
# integrated loudness


@pytest.mark.parametrize("rate", [48_000, 44_100])
def test_stereo_sine_at_minus_23_dbfs_reads_minus_23_lufs(impl, rate):
    s = sine(1000, A23, 20, rate)
    assert impl.integrated_loudness(np.stack([s, s], axis=1), rate) == pytest.approx(-23.0, abs=LU)


def test_mono_counts_one_channel(impl):
    s = sine(1000, A23, 20)
    expected = -23.0 - 10 * math.log10(2)  # one channel instead of two (BS.1770-4 eq. 2)
    assert impl.integrated_loudness(s[:, None], RATE) == pytest.approx(expected, abs=LU)
    assert impl.integrated_loudness(s, RATE, "mono") == impl.integrated_loudness(s[:, None], RATE)


def test_5_1_front_pair_reads_like_stereo(impl):
    s = sine(1000, A23, 20)
    assert LABELS_5_1.index("L") == 0 and LABELS_5_1.index("R") == 1
    assert impl.integrated_loudness(channels(6, c0=s, c1=s), RATE) == pytest.approx(-23.0, abs=LU)
    assert impl.integrated_loudness(channels(6, c0=s, c1=s), RATE, "5.1(side)") == pytest.approx(-23.0, abs=LU)


def test_5_1_lfe_is_not_measured(impl):
    lfe = LABELS_5_1.index("LFE")
    loud_lfe = sine(60, 0.5, 20)
    assert impl.integrated_loudness(channels(6, **{f"c{lfe}": loud_lfe}), RATE) == -math.inf
    s = sine(1000, A23, 20)
    with_lfe = channels(6, c0=s, c1=s, **{f"c{lfe}": loud_lfe})
    without_lfe = impl.integrated_loudness(channels(6, c0=s, c1=s), RATE)
    assert impl.integrated_loudness(with_lfe, RATE) == pytest.approx(without_lfe, abs=1e-9)


@pytest.mark.parametrize("name", ["Ls", "Rs"])
def test_5_1_surround_weighted_1_41(impl, name):
    s = sine(1000, A23, 20)
    mean_square = A23**2 / 2 * k_weighting_power_gain(1000)
    expected = 10 * math.log10(1.41 * mean_square) - 0.691  # BS.1770-4 eq. 2, G = 1.41
    assert expected == pytest.approx(-23.0 - 10 * math.log10(2) + 10 * math.log10(1.41), abs=0.02)
    measured = impl.integrated_loudness(channels(6, **{f"c{LABELS_5_1.index(name)}": s}), RATE)
    assert measured == pytest.approx(expected, abs=LU)


@pytest.mark.parametrize(
    "n_channels, layout", [(7, None), (3, None), (4, None), (6, "stereo"), (8, "octagonal"), (2, "quad")]
)
def test_unsupported_layouts_raise_media_error(impl, n_channels, layout):
    x = np.zeros((RATE, n_channels))
    with pytest.raises(MediaError, match="channel|layout"):
        impl.integrated_loudness(x, RATE, layout)
    with pytest.raises(MediaError):
        impl.loudness_range(x, RATE, layout)


def test_bad_arrays_raise_value_error(impl):
    with pytest.raises(ValueError, match="float"):
        impl.integrated_loudness(np.zeros((RATE, 2), np.int16), RATE)
    with pytest.raises(ValueError, match="shape"):
        impl.true_peak(np.zeros((2, RATE, 2)), RATE)
    with pytest.raises(ValueError, match="rate"):
        impl.true_peak(np.zeros((RATE, 2)), 0)


def test_silence_and_short_audio(impl):
    short = np.stack([sine(1000, 0.5, 0.3)] * 2, axis=1)  # < one 400 ms gating block
    assert impl.integrated_loudness(short, RATE) == -math.inf
    assert math.isnan(impl.loudness_range(short, RATE))
    assert impl.short_term_loudness(short, RATE).size == 0
    result = impl.measure(np.zeros((5 * RATE, 2), np.float32), RATE)
    assert result.integrated_lufs == -math.inf
    assert result.true_peak_dbtp == -math.inf and result.sample_peak_dbfs == -math.inf
    assert math.isnan(result.lra_lu)
    assert impl.true_peak(np.zeros((0, 2)), RATE) == -math.inf


def test_measure_collects_all_figures(impl):
    s = faded(sine(997, 10 ** (-1 / 20), 10))
    result = impl.measure(np.stack([s, s], axis=1), RATE)
    assert isinstance(result, Loudness)
    assert result.integrated_lufs == pytest.approx(-1.0, abs=LU)  # like the -23 dBFS case, 22 dB up
    assert result.sample_peak_dbfs == pytest.approx(-1.0, abs=0.01)
    assert result.true_peak_dbtp == pytest.approx(-1.0, abs=0.01)
    assert result.lra_lu == pytest.approx(0.0, abs=0.1)


# ------------------------------------------------------------------------------------------------
# true peak


@needs_ffmpeg
@pytest.mark.parametrize(
    "freq, amp, phase",
    [
        (997, 10 ** (-1 / 20), 0.0),  # ordinary tone: true peak = sample peak = -1 dBFS
        (12_000, 10 ** (-0.5 / 20), math.pi / 4),  # fs/4 at 45°: samples at ±0.707 A, true peak A
    ],
)
def test_true_peak_matches_ffmpeg(impl, tmp_path, freq, amp, phase):
    s = faded(sine(freq, amp, 5, phase=phase))
    x = np.stack([s, 0.5 * s], axis=1)
    ours = impl.true_peak(x, RATE)
    ff = ebur128(write_wav(tmp_path / "tone.wav", x))["peak"]
    assert ours == pytest.approx(20 * math.log10(amp), abs=0.05)
    assert ours == pytest.approx(ff, abs=0.3), f"ours {ours:.2f} dBTP, ffmpeg {ff:.1f}"
    if freq == 12_000:
        sample_peak = 20 * math.log10(np.abs(x).max())
        assert ours > sample_peak + 2.0


@pytest.mark.parametrize("rate", [44_100, 96_000, 192_000, 384_000])
def test_true_peak_other_rates(impl, rate):
    # a tone whose peaks fall between samples: the sample peak under-reads, the true peak does not
    if rate <= 48_000:
        s = sine(rate / 4, 0.9, 2, rate, phase=math.pi / 4)  # samples at ±0.64, peaks of 0.9 between them
    else:
        s = sine(9_000.5, 0.9, 2, rate)  # highly oversampled already: 2x (192 kHz) or none (384 kHz)
    s = faded(s, rate)
    assert impl.true_peak(s[:, None], rate) == pytest.approx(20 * math.log10(0.9), abs=0.2)


def _band_limited_noise() -> np.ndarray:
    rng = np.random.default_rng(5)
    b, a = scipy.signal.butter(8, 16_000, fs=RATE)  # keep content below 16 kHz: both filters are flat there
    x = scipy.signal.lfilter(b, a, rng.standard_normal((3 * RATE, 2)) * 0.2, axis=0)
    x[RATE] *= 3
    return x


def test_true_peak_agrees_with_resample_poly(impl):
    x = _band_limited_noise()
    reference = 20 * math.log10(np.abs(scipy.signal.resample_poly(x, 4, 1, axis=0)).max())
    ours = impl.true_peak(x, RATE)
    assert ours == pytest.approx(reference, abs=0.02)
    assert ours >= 20 * math.log10(np.abs(x).max())


def test_oracle_true_peak_ignores_block_size(monkeypatch):
    x = _band_limited_noise()
    ours = oracle.true_peak(x, RATE)
    monkeypatch.setattr(oracle, "_BLOCK", 4_000)
    assert oracle.true_peak(x, RATE) == ours


# ------------------------------------------------------------------------------------------------
# agreement with ffmpeg ebur128 on a programme


@needs_ffmpeg
@pytest.mark.parametrize("n_channels", [2, 6])
def test_integrated_and_lra_match_ffmpeg(impl, tmp_path, n_channels):
    x = programme(30, n_channels, seed=n_channels)
    if n_channels == 6:
        x[:, LABELS_5_1.index("LFE")] *= 4  # loud LFE: excluded by both meters
    ours = impl.measure(x, RATE)
    ff = ebur128(write_wav(tmp_path / "programme.wav", x))
    assert ours.integrated_lufs == pytest.approx(ff["I"], abs=LU)
    assert ours.lra_lu == pytest.approx(ff["LRA"], abs=1.0)
    assert ours.true_peak_dbtp == pytest.approx(ff["peak"], abs=0.3)


# ------------------------------------------------------------------------------------------------
# short-term loudness and loudness range


def test_short_term_loudness_of_steady_tone(impl):
    s = sine(1000, A23, 10)
    x = np.stack([s, s], axis=1)
    st = impl.short_term_loudness(x, RATE)
    assert st.shape == (int(10 / 0.1) - 30 + 1,)  # complete 3 s windows every 0.1 s
    np.testing.assert_allclose(st, impl.integrated_loudness(x, RATE), atol=0.01)


def test_oracle_short_term_loudness_ignores_block_size(monkeypatch):
    x = programme(12, 2, seed=3)
    st = oracle.short_term_loudness(x, RATE)
    monkeypatch.setattr(oracle, "_BLOCK", 7_000)
    np.testing.assert_allclose(oracle.short_term_loudness(x, RATE), st, rtol=0, atol=1e-9)


def test_short_term_loudness_follows_a_step(impl):
    x = np.concatenate([sine(1000, 10 ** (-20 / 20), 10), sine(1000, 10 ** (-30 / 20), 10)])
    st = impl.short_term_loudness(np.stack([x, x], axis=1), RATE)
    assert st[0] == pytest.approx(-20.0, abs=LU)  # window [0, 3) s
    assert st[-1] == pytest.approx(-30.0, abs=LU)  # window [17, 20) s
    assert np.all(np.diff(st) <= 1e-4)  # never rises on a downward step (but for the filters' start-up)


@needs_ffmpeg
def test_lra_of_alternating_levels(impl, tmp_path):
    # EBU Tech 3342 case 1 style: 20 s at -20 LUFS then 20 s at -30 LUFS, twice -> LRA 10 LU
    loud, quiet = sine(1000, 10 ** (-20 / 20), 20), sine(1000, 10 ** (-30 / 20), 20)
    s = np.concatenate([loud, quiet, loud, quiet])
    x = np.stack([s, s], axis=1)
    ours = impl.loudness_range(x, RATE)
    assert ours == pytest.approx(10.0, abs=1.0)
    assert ours == pytest.approx(ebur128(write_wav(tmp_path / "steps.wav", x))["LRA"], abs=1.0)


def test_lra_of_steady_tone_is_zero(impl):
    s = sine(1000, A23, 20)
    assert impl.loudness_range(np.stack([s, s], axis=1), RATE) == pytest.approx(0.0, abs=0.05)


# ------------------------------------------------------------------------------------------------
# gain to target


@pytest.mark.parametrize("target", [-23.0, -24.0, -31.0])
def test_normalize_round_trip(impl, target):
    x = programme(20, 2, seed=11)
    measured = impl.integrated_loudness(x, RATE)
    gain = gain_to_target(measured, target)
    y = apply_gain(x, gain)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert impl.integrated_loudness(y, RATE) == pytest.approx(target, abs=LU)


def test_gain_to_target_edge_cases():
    assert gain_to_target(-10.0, -23.0) == pytest.approx(-13.0)
    assert gain_to_target(-math.inf, -23.0) == 0.0  # silence: nothing to normalise
    assert gain_to_target(-70.0, -23.0) == 30.0  # clamped
    assert gain_to_target(-70.0, -23.0, max_gain_db=12.0) == 12.0
    assert gain_to_target(20.0, -23.0, max_gain_db=12.0) == -12.0
    with pytest.raises(ValueError):
        gain_to_target(math.nan, -23.0)
    with pytest.raises(ValueError):
        gain_to_target(-20.0, math.inf)
    assert apply_gain(np.ones((4, 2)), -6.0206)[0, 0] == pytest.approx(0.5, abs=1e-4)


# ------------------------------------------------------------------------------------------------
# true-peak limiter

CEILING = -1.0
EVENTS_S = [(1.0, 2.5), (3.5, 3.7), (5.0, 6.0)]  # where the stems are loud; quiet bed elsewhere


def stems(seed: int = 0, seconds: float = 8.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mix, dx, me) stereo, mix = dx + me, that exceed -1 dBTP only inside EVENTS_S once +12 dB.

    dx: speech-like tone bursts (150 Hz harmonics, syllable envelopes) with clicks, in events 1 and 3.
    me: a -50 dBFS noise bed everywhere, and in event 2 a 12 kHz burst whose samples stay under
    the ceiling but whose inter-sample peaks go over it.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    voice = sum(np.sin(2 * np.pi * 150 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    dx = np.zeros(n)
    for start, end in (EVENTS_S[0], EVENTS_S[2]):
        span = slice(int(start * RATE), int(end * RATE))
        dx[span] = 0.1 * voice[span] * syllables[span]
        for click in rng.integers(span.start + 100, span.stop - 100, 6):
            dx[click] += rng.choice([-0.3, 0.3])
    dx = np.stack([dx, 0.8 * dx], axis=1)
    me = 10 ** (-50 / 20) * rng.standard_normal((n, 2))
    burst = slice(int(EVENTS_S[1][0] * RATE), int(EVENTS_S[1][1] * RATE))
    me[burst] += faded(sine(RATE / 4, 0.25, EVENTS_S[1][1] - EVENTS_S[1][0], phase=math.pi / 4))[:, None]
    return dx + me, dx, me


def test_limiter_holds_ceiling_on_every_stem_with_one_gain(impl, tmp_path):
    mix, dx, me = (apply_gain(s, 12.0) for s in stems())
    assert oracle.true_peak(mix, RATE) > CEILING
    burst = slice(int(EVENTS_S[1][0] * RATE), int(EVENTS_S[1][1] * RATE))
    # an inter-sample over: the samples stay under the ceiling, the true peak does not
    assert 20 * math.log10(np.abs(me[burst]).max()) < CEILING < oracle.true_peak(me[burst], RATE)

    result = impl.true_peak_limiter([mix, dx, me], RATE, CEILING)
    gain = result.gain
    assert gain is not None and gain.dtype == np.float32 and gain.shape == (len(mix),)
    assert np.all((gain > 0) & (gain <= 1))
    assert result.max_reduction_db > 0
    assert result.max_reduction_db == pytest.approx(-20 * math.log10(gain.min()), abs=1e-4)

    out_mix, out_dx, out_me = apply_limiter([mix, dx, me], result)
    np.testing.assert_allclose(out_dx + out_me, out_mix, rtol=0, atol=1e-6)  # stems still sum to the mix
    for name, out in (("mix", out_mix), ("dx", out_dx), ("me", out_me)):
        ours = oracle.true_peak(out, RATE)
        assert ours <= CEILING, name
        ff = ebur128(write_wav(tmp_path / f"{name}.wav", out))["peak"] if shutil.which("ffmpeg") else ours
        assert ff == pytest.approx(ours, abs=0.3), f"{name}: ours {ours:.2f}, ffmpeg {ff:.1f}"

    # unity gain away from the events (further than lookahead + release, plus the interpolator taps)
    reach = int(0.005 * RATE) + int(0.050 * RATE) + loudness.TP_HALF_TAPS + 2
    near = np.zeros(len(mix), bool)
    for start, end in EVENTS_S:
        near[max(0, int(start * RATE) - reach) : int(end * RATE) + reach] = True
        assert gain[int(start * RATE) : int(end * RATE)].min() < 1  # every event needed limiting
    assert np.all(gain[~near] == 1.0)


def test_limiter_not_engaged_under_the_ceiling(impl):
    mix, dx, me = stems()
    assert oracle.true_peak(mix, RATE) < CEILING
    result = impl.true_peak_limiter([mix, dx, me], RATE, CEILING)
    assert result.gain is None and result.max_reduction_db == 0.0
    outs = apply_limiter([mix, dx, me], result)
    assert all(o.dtype == np.float32 for o in outs)
    np.testing.assert_array_equal(outs[1], dx.astype(np.float32))


def test_limiter_envelope_shape_on_one_click(impl):
    x = np.zeros((RATE, 1))
    x[20_000] = 1.0
    result = impl.true_peak_limiter([x], RATE, -6.0, lookahead_ms=5.0, release_ms=50.0)
    lookahead, hold = 240, 2_400
    below = np.flatnonzero(result.gain < 1)
    # attack over the lookahead ending at the click (one sample earlier: the click's inter-sample
    # ringing belongs to its neighbour too), hold, then back to 1 over the lookahead
    assert below[0] == 20_000 - lookahead - 1
    assert below[-1] == 20_000 + 1 + hold + lookahead
    assert result.gain[20_000] == pytest.approx(10 ** (-6.05 / 20), rel=1e-6)  # ceiling - 0.05 dB margin
    assert np.all(np.diff(result.gain[below[0] : 20_000 - 1]) < 0)  # linear attack
    assert oracle.true_peak(apply_limiter([x], result)[0], RATE) <= -6.0


@pytest.mark.parametrize("seed", range(4))
def test_limiter_random_stress(impl, seed):
    rng = np.random.default_rng(100 + seed)
    n = 3 * RATE
    dx = rng.standard_normal((n, 2)) * 0.05
    me = scipy.signal.lfilter([1.0], [1, -0.9], rng.standard_normal((n, 2)) * 0.02, axis=0)
    for pos in rng.integers(0, n - 2_000, 12):  # hot bursts and clicks, some at the very edges
        dx[pos : pos + rng.integers(1, 2_000)] *= rng.uniform(5, 25)
    dx[0] = dx[-1] = 0.99
    mix = dx + me
    ceiling = float(rng.uniform(-3.0, -0.5))
    lookahead_ms, release_ms = float(rng.uniform(0.5, 10)), float(rng.uniform(0, 200))
    result = impl.true_peak_limiter([mix, dx, me], RATE, ceiling, lookahead_ms, release_ms)
    assert result.gain is not None
    for out in apply_limiter([mix, dx, me], result):
        assert oracle.true_peak(out, RATE) <= ceiling


def test_oracle_limiter_gain_does_not_depend_on_block_size(monkeypatch):
    mix, dx, me = (apply_gain(s, 12.0) for s in stems(seed=1))
    reference = oracle.true_peak_limiter([mix, dx, me], RATE, CEILING)
    monkeypatch.setattr(oracle, "_BLOCK", 3_000)
    np.testing.assert_array_equal(oracle.true_peak_limiter([mix, dx, me], RATE, CEILING).gain, reference.gain)


def test_oracle_limiter_rejects_bad_input():  # the streaming limiter's: tests/equivalence/test_meter.py
    with pytest.raises(ValueError, match="same length"):
        oracle.true_peak_limiter([np.zeros((100, 2)), np.zeros((99, 2))], RATE, -1.0)
    with pytest.raises(ValueError):
        oracle.true_peak_limiter([], RATE, -1.0)
    with pytest.raises(ValueError):
        oracle.true_peak_limiter([np.zeros((100, 2))], RATE, -1.0, lookahead_ms=0)


def test_limiter_on_ten_minutes_of_stereo():
    """The streaming limiter, as deliver.py runs it: 10 minutes of 48 kHz stereo, three signals, in seconds."""
    rng = np.random.default_rng(7)
    n = 600 * RATE
    me = rng.standard_normal((n, 2), dtype=np.float32) * np.float32(0.05)
    dx = np.zeros((n, 2), np.float32)
    dx[rng.integers(0, n, 400)] = 0.95  # clicks over the ceiling every ~1.5 s
    mix = dx + me
    start = time.perf_counter()
    lim = StreamingLimiter(RATE, 3, CEILING)
    out = sum(len(lim.process([mix[a : a + (1 << 18)], dx[a : a + (1 << 18)], me[a : a + (1 << 18)]])[0])
              for a in range(0, n, 1 << 18))
    out += len(lim.flush()[0])
    elapsed = time.perf_counter() - start
    print(f"limiter, 10 min stereo x 3 signals: {elapsed:.2f} s")
    assert out == n and lim.max_reduction_db > 0


@pytest.mark.parametrize("layout,channels", [("stereo", 2), ("5.1", 6)])
def test_gated_loudness_from_blocks_matches_integrated(layout, channels):
    """Our own gating (BS.1770-4 eqs. 4-7 over the meter's 400 ms blocks) agrees with pyloudnorm's integrated
    loudness (the oracle's), so the dialog-gated figure built on it is measured the same way."""
    rng = np.random.default_rng(5)
    n = 48000 * 20
    env = np.repeat(rng.uniform(0.05, 0.5, n // 24000), 24000)[:, None]
    x = (rng.standard_normal((n, channels)) * env).astype(np.float32)
    x[48000 * 5: 48000 * 8] = 0.0                     # a silent stretch the absolute gate must drop
    blocks = _loudness_meter(x, 48000, layout).gating_blocks()
    assert blocks.size == (n // 4800) - 3
    assert loudness.gated_loudness(blocks) == pytest.approx(oracle.integrated_loudness(x, 48000, layout), abs=0.05)
    mask = np.zeros(blocks.size, bool)
    mask[:20] = True
    assert loudness.gated_loudness(blocks, mask) == pytest.approx(
        oracle.integrated_loudness(x[: int(48000 * 2.3)], 48000, layout), abs=0.05)
    assert loudness.gated_loudness(blocks, np.zeros(blocks.size, bool)) == -math.inf


@pytest.mark.parametrize("rate", [8_000, 32_000, 44_100, 48_000, 96_000, 192_000])
def test_k_weighting_is_pyloudnorms_deman_filter(rate):
    """The production K-weighting coefficients are pyloudnorm's "DeMan" filters to the last bit (the figures the
    pipeline delivered before issue 13 were measured with those)."""
    import pyloudnorm

    filters = pyloudnorm.Meter(rate, filter_class="DeMan")._filters.values()
    np.testing.assert_array_equal(loudness.k_weighting_sos(rate), [np.concatenate([f.b, f.a]) for f in filters])


def test_k_weighting_at_48k_is_the_standards_table():
    """BS.1770-4 tables 1 and 2 (the coefficients k_weighting_power_gain uses), to their printed precision."""
    sos = loudness.k_weighting_sos(48_000)
    np.testing.assert_allclose(sos[0], [1.53512485958697, -2.69169618940638, 1.19839281085285,
                                        1.0, -1.69065929318241, 0.73248077421585], rtol=0, atol=1e-8)
    np.testing.assert_allclose(sos[1], [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621], rtol=0, atol=1e-8)
