"""Centre-aware surround (pipeline/surround.py, `separation.surround: centre`): on a 5.1 of recorded speech (Asterisk's
prompts) over the demo's music and effects, centred dialogue stays out of L/R and the surrounds, off-screen dialogue
in L stays in DX L, DX + M&E nulls against the mix, and the result does not depend on the read blocks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import si_sdr
from pipeline import surround
from pipeline.config import SeparationSettings
from pipeline.layout import LAYOUTS
from pipeline.readers import ArrayReader, Difference, Workspace
from pipeline.separate_dfn3 import Dfn3Separator
from pipeline.training.demo import render_sources

RATE = 48000
PROMPTS = Path("/usr/share/asterisk/sounds/en")
L, R, C, LFE, LS, RS = range(6)
# Bars a little under what was measured (2026-12-04, the thresholds of pipeline/surround.py):
LEAK_CENTRED_DB = -30.0     # centred: DX in each of L, R, Ls, Rs re the dialogue: measured -32.2 (L), R/Ls/Rs silent
DX_C_SI_SDR_DB = 17.0       # centred: DX C against the true dialogue: measured 18.66 dB (DFN3 on C, both modes)
GAIN_OVER_ALL_DB = 8.0      # centred: DX SI-SDR over the 6 channels, centre minus all: measured 18.45 - 8.84 dB
OFFSCREEN_SI_SDR_DB = 1.0   # off-screen: DX L against the true dialogue in L: measured 1.80 dB (as `all`: 1.80)
OFFSCREEN_LEVEL_DB = -6.0   # off-screen: DX L's level re the true dialogue: measured -4.1 dB (kept, not gated)


def speech(seconds: float) -> np.ndarray:
    """Asterisk's recorded prompts (8 kHz, up to 48 kHz) one after another, 0.4 s apart, (n,) float32."""
    if not PROMPTS.is_dir():
        pytest.skip("needs asterisk-core-sounds-en-wav")
    n, parts = int(seconds * RATE), []
    for path in sorted(PROMPTS.glob("*.wav"))[40:]:
        x, rate = sf.read(str(path), dtype="float32")
        parts += [soxr.resample(x, rate, RATE).astype(np.float32), np.zeros(int(0.4 * RATE), np.float32)]
        if sum(p.size for p in parts) >= n:
            break
    out = np.concatenate(parts)[:n]
    return out / np.sqrt(np.mean(out ** 2)) * 0.05


def mix51(seconds: float, where: dict[int, float], seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(mix, true dialogue), (n, 6): the demo's music in L/R, its effects in L R Ls Rs and its low end in the LFE,
    recorded speech in the channels of `where` (channel -> gain) at about 0 dB against the music."""
    _, music, effects, _ = render_sources(seconds, RATE, seed=seed)
    n = music.shape[0]
    d = speech(seconds)[:n]
    bed = np.zeros((n, 6), np.float32)
    bed[:, [L, R]] = music / np.sqrt(np.mean(music ** 2)) * 0.05
    bed[:, [L, R, LS, RS]] += effects * 2.0
    bed[:, LFE] = 0.3 * music.mean(axis=1)
    dialogue = np.zeros((n, 6), np.float32)
    for ch, g in where.items():
        dialogue[:, ch] = g * d
    return (dialogue + bed).astype(np.float32), dialogue


def separate(mix: np.ndarray, folder, mode: str = "centre", block_s: float = 10.0) -> np.ndarray:
    sep = Dfn3Separator(SeparationSettings(surround=mode))
    stems = sep.separate(ArrayReader(mix), RATE, LAYOUTS["5.1"], Workspace(folder), block_s=block_s)
    return stems.dx.read(0, stems.dx.frames)


def leak_db(dx: np.ndarray, truth: np.ndarray, ch: int) -> float:
    return 10 * np.log10(np.sum(dx[:, ch].astype(np.float64) ** 2) / np.sum(truth.astype(np.float64) ** 2) + 1e-30)


def test_centred_dialogue_stays_in_the_centre(tmp_path):
    mix, truth = mix51(12.0, {C: 1.0})
    dx = separate(mix, tmp_path)
    leaks = {ch: leak_db(dx, truth, ch) for ch in (L, R, LS, RS)}
    assert max(leaks.values()) < LEAK_CENTRED_DB, leaks
    assert si_sdr(truth[:, C], dx[:, C]) > DX_C_SI_SDR_DB
    every_group = separate(mix, tmp_path / "all", mode="all")
    assert si_sdr(truth, dx) > si_sdr(truth, every_group) + GAIN_OVER_ALL_DB
    assert not dx[:, LFE].any()
    me = Difference(ArrayReader(mix), ArrayReader(dx)).read(0, mix.shape[0])      # M&E as the pipeline reads it
    residual = np.max(np.abs(mix.astype(np.float64) - (dx.astype(np.float64) + me)))
    assert residual <= np.finfo(np.float32).eps * np.abs(mix).max()              # DX + M&E nulls (float32 rounding)


def test_offscreen_dialogue_in_left_stays_in_dx_left(tmp_path):
    mix, truth = mix51(12.0, {L: 1.0})
    dx = separate(mix, tmp_path)
    assert si_sdr(truth[:, L], dx[:, L]) > OFFSCREEN_SI_SDR_DB
    assert leak_db(dx, truth, L) > OFFSCREEN_LEVEL_DB


def test_centre_mode_is_the_gate_over_the_groups_and_block_independent(tmp_path):
    mix, _ = mix51(5.3, {C: 0.7, L: 0.7})
    a = separate(mix, tmp_path / "a", block_s=0.77)
    b = separate(mix, tmp_path / "b", block_s=3.0)
    assert np.array_equal(a, b)
    groups = separate(mix, tmp_path / "g", mode="all")
    gated = surround.centre_gate(ArrayReader(mix), ArrayReader(groups), RATE, LAYOUTS["5.1"], Workspace(tmp_path))
    assert np.array_equal(gated.read(0, gated.frames), a)
    assert np.array_equal(a[:, C], groups[:, C])          # the centre is DFN3's, untouched


def test_stereo_and_mono_are_untouched(tmp_path):
    assert not surround.applies(LAYOUTS["stereo"]) and not surround.applies(LAYOUTS["mono"])
    assert surround.side_channels(LAYOUTS["7.1"]) == (0, 1, 4, 5, 6, 7)
    assert surround.side_channels(LAYOUTS["5.0"]) == (0, 1, 3, 4)
