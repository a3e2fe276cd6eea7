"""pipeline/downmix.py: the 2.0 fold-down of 5.0, 5.1 and 7.1, measured with a tone per channel (each channel a
sine of its own frequency, so each one's gain into Lo and Ro is read back independently of the others)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.downmix import itu_downmix, stereo_gains
from pipeline.layout import LAYOUTS
from pipeline.package import guide_gains

RATE = 48000
MINUS3 = 10 ** (-3 / 20)
# Expected gain of each channel into (Lo, Ro), by label: ITU-R BS.775-3 table 2 for 3/2 (C and the surrounds at
# −3 dB, the LFE left out); a 7.1's side and rear surrounds each −3 dB into the Ls/Rs they stand for, then −3 dB
# into Lo/Ro as the 5.1's Ls/Rs: −6 dB in all (0.501).
EXPECTED = {"L": (1, 0), "R": (0, 1), "C": (MINUS3, MINUS3), "LFE": (0, 0), "Ls": (MINUS3, 0), "Rs": (0, MINUS3),
            "Lss": (MINUS3 ** 2, 0), "Rss": (0, MINUS3 ** 2), "Lrs": (MINUS3 ** 2, 0), "Rrs": (0, MINUS3 ** 2)}


def tones(channels: int) -> tuple[np.ndarray, list[float]]:
    """One second of (RATE, channels) float32: channel k a 0.1-amplitude sine at 1000 + 250 k Hz (whole cycles)."""
    t = np.arange(RATE) / RATE
    freqs = [1000.0 + 250.0 * k for k in range(channels)]
    return np.stack([0.1 * np.sin(2 * np.pi * f * t) for f in freqs], axis=1).astype(np.float32), freqs


def gain_of(signal: np.ndarray, freq: float) -> float:
    """The amplitude of the sine at `freq` in `signal` (one second, whole cycles: an exact DFT bin) over 0.1."""
    t = np.arange(len(signal)) / RATE
    return float(2 * np.abs(np.dot(signal.astype(np.float64), np.exp(-2j * np.pi * freq * t))) / len(signal) / 0.1)


@pytest.mark.parametrize("layout", ["5.0", "5.1", "7.1"])
def test_each_channels_gain_into_lo_and_ro(layout):
    lay = LAYOUTS[layout]
    audio, freqs = tones(lay.channels)
    stereo = itu_downmix(audio, lay)
    assert stereo.shape == (RATE, 2) and stereo.dtype == np.float32
    for label, freq in zip(lay.labels, freqs):
        got = (gain_of(stereo[:, 0], freq), gain_of(stereo[:, 1], freq))
        assert got == pytest.approx(EXPECTED[label], abs=1e-4), label


def test_the_matrix_and_the_default_5_1():
    assert stereo_gains(LAYOUTS["7.1"]).shape == (8, 2)
    audio, _ = tones(6)
    assert np.array_equal(itu_downmix(audio), itu_downmix(audio, LAYOUTS["5.1"]))
    with pytest.raises(ValueError, match="5.1 downmix needs .* 6"):
        itu_downmix(audio[:, :5], LAYOUTS["5.1"])
    with pytest.raises(ValueError, match="no stereo fold-down for stereo"):
        stereo_gains(LAYOUTS["stereo"])


@pytest.mark.parametrize("layout", ["5.0", "5.1", "7.1"])
def test_the_dialogue_guide_is_the_fold_down_summed_at_minus_6_db(layout):
    lay = LAYOUTS[layout]
    assert np.allclose(guide_gains(lay), 0.5 * stereo_gains(lay).sum(axis=1))
    assert guide_gains(lay)[lay.labels.index("C")] == pytest.approx(MINUS3)   # a centred line keeps its level
