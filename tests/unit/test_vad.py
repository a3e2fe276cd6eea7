"""pipeline.vad: silero-vad regions against the known lines of the demo's espeak-ng dialogue, rates and
layouts, chunking, and the region arithmetic (merge, fraction, BS.1770 gating-block mask)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soxr

from pipeline import vad
from pipeline.meter import LoudnessMeter
from pipeline.training import demo
from pipeline.vad import FRAME_S, Region, block_mask, merge_regions, speech_fraction, speech_regions

RATE = 48_000
SECONDS = 16.0
needs_demo = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("fluidsynth") and demo.SOUNDFONT.is_file()),
    reason="needs espeak-ng, fluidsynth and fluid-soundfont-gm",
)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture(scope="module")
def sources():
    """(dialogue (n, 1), music (n, 2) 10 dB under the spoken lines, effects (n, 4), true regions) at 48 kHz."""
    dialogue, music, effects, regions = demo.render_sources(SECONDS, RATE, seed=3)
    assert len(regions) >= 3
    spoken = np.concatenate([dialogue[round(a * RATE): round(b * RATE), 0] for a, b in regions])
    music = music * np.float32(rms(spoken) / rms(music) * 10 ** (-10 / 20))
    return dialogue, music, effects, regions


def iou(found, truth, seconds: float) -> float:
    """Total intersection over union of two sets of (start_s, end_s), on a 1 ms grid."""
    t = np.arange(0, seconds, 0.001)
    a, b = (np.any([(t >= s) & (t < e) for s, e in regs] or [t < 0], axis=0) for regs in (found, truth))
    return float((a & b).sum() / (a | b).sum())


def as_pairs(regions):
    return [(r.start_s, r.end_s) for r in regions]


# --------------------------------------------------------------------------------------------------
# detection on espeak-ng dialogue


@needs_demo
@pytest.mark.parametrize("case", ["stereo 48k", "stereo 44.1k", "mono 48k", "5.1 48k"])
def test_regions_match_the_spoken_lines(sources, case):
    dialogue, music, effects, truth = sources
    layout, rate = case.split()[0], {"48k": 48_000, "44.1k": 44_100}[case.split()[1]]
    stems = demo.layout_stems(dialogue, music, effects, layout, RATE)
    mix = stems[0] + stems[1]  # dialogue + music (5.1: the dialogue in C only)
    if layout == "5.1":
        mix = mix + stems[2]  # and the effects, LFE thumps included
    if rate != RATE:
        mix = soxr.resample(mix, RATE, rate)
    found = speech_regions(mix, rate)
    score = iou(as_pairs(found), truth, SECONDS)
    print(f"{case}: IoU {score:.3f}, {len(found)} regions for {len(truth)} lines")
    assert score >= 0.7
    assert all(0 <= r.start_s < r.end_s <= mix.shape[0] / rate for r in found)
    assert list(found) == sorted(found, key=lambda r: r.start_s)


@needs_demo
@pytest.mark.parametrize("what", ["music", "effects", "noise", "silence"])
def test_no_speech_in_music_noise_or_silence(sources, what):
    _, music, effects, _ = sources
    n = music.shape[0]
    audio = {"music": music, "effects": effects,
             "noise": (np.random.default_rng(1).standard_normal((n, 2)) * 0.03).astype(np.float32),
             "silence": np.zeros((n, 2), np.float32)}[what]
    assert speech_fraction(speech_regions(audio, RATE), SECONDS) < 0.05


@needs_demo
def test_chunk_edges_do_not_change_the_regions(sources):
    """12 s in 3 s chunks (each lane warmed up on the second before it) = the same regions within one frame."""
    dialogue, music, _, _ = sources
    mix = (dialogue + music)[: 12 * RATE]
    whole = speech_regions(mix, RATE)
    chunked = speech_regions(mix, RATE, chunk_s=3.0)
    assert len(whole) >= 2 and len(chunked) == len(whole)
    for a, b in zip(whole, chunked):
        assert abs(a.start_s - b.start_s) <= FRAME_S + 1e-9 and abs(a.end_s - b.end_s) <= FRAME_S + 1e-9


@needs_demo
def test_speech_probability(sources):
    dialogue, music, _, truth = sources
    mix = dialogue + music
    probs = vad.speech_probability(mix, RATE)
    assert probs.dtype == np.float32 and probs.shape == (int(np.ceil(SECONDS / FRAME_S)),)
    assert 0 <= probs.min() and probs.max() <= 1
    frame_t = (np.arange(probs.size) + 0.5) * FRAME_S
    inside = np.any([(frame_t >= a) & (frame_t < b) for a, b in truth], axis=0)
    assert probs[inside].mean() > 0.7 and probs[~inside].mean() < 0.3
    coarse = vad.speech_probability(mix, RATE, hop_s=4 * FRAME_S)
    assert coarse.shape == (int(np.ceil(probs.size / 4)),)
    np.testing.assert_array_equal(coarse[:10], probs[:40].reshape(10, 4).max(axis=1))
    with pytest.raises(ValueError, match="multiple"):
        vad.speech_probability(mix, RATE, hop_s=0.05)


def test_short_and_bad_inputs():
    assert speech_regions(np.zeros((0, 2), np.float32), RATE) == ()
    assert speech_regions(np.zeros(100, np.float32), 44_100) == ()  # under one frame
    assert vad.speech_probability(np.zeros((0, 1), np.float32), RATE).size == 0
    with pytest.raises(ValueError, match="float"):
        speech_regions(np.zeros((10, 2), np.int16), RATE)
    with pytest.raises(ValueError, match="sample rate"):
        speech_regions(np.zeros((10, 2), np.float32), 0)


# --------------------------------------------------------------------------------------------------
# region arithmetic


def test_merge_regions():
    regions = [(5.0, 6.0), Region(0.0, 1.0), (1.2, 2.0), (1.5, 1.8), (2.6, 3.0), (4.0, 4.0)]
    assert merge_regions(regions, 0.0) == (Region(0.0, 1.0), Region(1.2, 2.0), Region(2.6, 3.0), Region(5.0, 6.0))
    assert merge_regions(regions, 0.2) == (Region(0.0, 2.0), Region(2.6, 3.0), Region(5.0, 6.0))
    assert merge_regions(regions, 0.6) == (Region(0.0, 3.0), Region(5.0, 6.0))
    assert merge_regions([], 1.0) == ()
    assert Region(1.0, 2.5).duration_s == 1.5 and tuple(Region(1.0, 2.5)) == (1.0, 2.5)


def test_speech_fraction():
    assert speech_fraction([(0, 1), (0.5, 2), (9, 12)], 10.0) == pytest.approx(0.3)  # overlap once, clipped
    assert speech_fraction([], 10.0) == 0.0 and speech_fraction([(0, 1)], 0.0) == 0.0
    with pytest.raises(ValueError):
        speech_fraction([], -1.0)


def test_block_mask_half_block_rule():
    # block k covers [0.1 k, 0.1 k + 0.4): a block counts when >= 0.2 s of it is speech
    mask = block_mask([(0.0, 0.2), (1.0, 2.0)], 25)
    assert mask.dtype == bool and mask.shape == (25,)
    assert list(np.flatnonzero(mask)) == [0, *range(8, 19)]
    assert list(np.flatnonzero(block_mask([(1.0, 1.1), (1.15, 1.25)], 20))) == [9, 10]  # two bits add up
    assert not block_mask([], 5).any() and block_mask([(0, 1)], 0).shape == (0,)
    assert list(np.flatnonzero(block_mask([(0.0, 1.0)], 10, block_s=1.0, hop_s=0.5))) == [0, 1]


def test_block_mask_gates_loudness_to_dialogue():
    """Dialogue-gated loudness: only the blocks under speech count, as LoudnessMeter.gating_blocks numbers them."""
    t = np.arange(6 * RATE) / RATE
    x = (10 ** (-30 / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # 1 kHz, -33.01 LUFS ...
    x[2 * RATE: 4 * RATE] *= 10 ** (10 / 20)  # ... and -23.01 LUFS over [2, 4) s, the "dialogue"
    meter = LoudnessMeter(RATE, 1)
    meter.add(x)
    mask = block_mask([(2.0, 4.0)], meter.gating_blocks().size)
    assert meter.integrated() < -26  # the quiet part passes the relative gate
    # the edge blocks, half in the dialogue, pull the gated figure down by about 0.3 LU
    assert meter.gated(mask) == pytest.approx(-23.01, abs=0.5)
