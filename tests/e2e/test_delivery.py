"""Delivery to spec: every profile end to end on a stereo and a 5.1 reel, checked with ffmpeg's ebur128;
dialog-gated loudness and spotting lists against dialogue of known level and timing (made with the whole-array
oracle, reference.loudness; measured with the production meter)."""
import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from conftest import ffmpeg_ebur128
from pipeline import deliver, loudness, readers, vad
from pipeline.config import Settings
from pipeline.layout import LAYOUTS
from pipeline.models import resolve
from pipeline.naming import reel_fields
from pipeline.profiles import available, load_profile
from pipeline.meter import LoudnessMeter
from pipeline.spotting import spotting_list
from pipeline.training.demo import make_demo_reel, render_sources
from pipeline.qcevents import EventSettings
from reference import deliver as oracle_deliver
from reference import loudness as oracle

RATE = 48000


@pytest.fixture(scope="module")
def reels(tmp_path_factory):
    root = tmp_path_factory.mktemp("reels")
    return [make_demo_reel(root / "st.wav", seconds=8, layout="stereo", seed=31).path,
            make_demo_reel(root / "sur.wav", seconds=8, layout="5.1", seed=32).path]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(available()) - {"keep"}))
def test_each_profile_end_to_end(harness, reels, tmp_path, name):
    """Every profile on a stereo and a 5.1 reel; the reels are audio only, so --tc-rate 24 gives a naming with
    {fps} (netflix's) its frame rate."""
    from flows.reel import RunOptions, run

    # loudness, peaks and names here; which QC events fail a reel (netflix: words DFN3 leaves in the M&E of the
    # demo's espeak-ng voice) is tested in tests/e2e/test_qc_events.py
    profile = dataclasses.replace(load_profile(name), qc_events=EventSettings())
    summary = run(reels, tmp_path / "out", resolve("dfn3"), Settings.load(), profile, RunOptions(tc_rate="24"))
    for row in summary.rows:
        assert row.status == "ok" and row.qc == "pass", (row.title, row.qc_reasons)
        fields = reel_fields(row.title, LAYOUTS[row.layout], RATE, profile.bit_depth, Fraction(24))
        meters = {s: ffmpeg_ebur128(tmp_path / "out" / row.title / profile.file_name(fields, s))
                  for s in ("MIX", "DX", "ME")}
        assert meters["MIX"]["TP"] <= profile.true_peak_dbtp and meters["DX"]["TP"] <= profile.true_peak_dbtp
        assert meters["ME"]["TP"] <= profile.me_ceiling_dbtp
        if row.measurement == "programme":
            assert abs(meters["MIX"]["I"] - row.delivery_target_lufs) <= profile.tolerance_lu
        elif row.measurement == "dialogue-stem":
            assert abs(meters["DX"]["I"] - profile.target_lufs) <= profile.tolerance_lu
        else:   # ffmpeg has no dialogue gate: our gated figure, plus ffmpeg's programme figure as a sanity bound
            assert abs(row.dialog_gated_lufs - profile.target_lufs) <= profile.tolerance_lu
            assert meters["MIX"]["I"] <= row.dialog_gated_lufs + 1.0
        assert abs(meters["MIX"]["I"] - row.output_lufs) <= 0.15       # our meter agrees with ffmpeg's


@pytest.mark.slow
def test_keep_profile_keeps_a_compliant_printmasters_level(harness, reels, tmp_path):
    """`keep` applies no gain: a mix already at -23 LUFS (made compliant by an ebu-r128 run) comes out sample for
    sample as it went in, QC pass; a mix 2 LU too loud keeps its level too (the limiter holds -1 dBTP), and QC
    says it is off target."""
    from flows.reel import run

    first = run(reels[:1], tmp_path / "ebu", resolve("dfn3"), Settings.load(), load_profile("ebu-r128"))
    compliant = tmp_path / "ebu" / first.rows[0].title / f"{first.rows[0].title}_MIX.wav"
    hot = tmp_path / "hot.wav"
    x, rate = sf.read(compliant, dtype="float64", always_2d=True)
    sf.write(hot, x * 10 ** (2 / 20), rate, subtype="PCM_24")       # +2 LU: peaks up to +1 dBTP, under 0 dBFS
    keep = load_profile("keep")
    rows = {r.title: r for r in run([compliant, hot], tmp_path / "keep", resolve("dfn3"), Settings.load(),
                                    keep).rows}
    good = rows[compliant.stem]
    assert good.status == "ok" and good.gain_db == 0.0 and good.limiter_db == 0.0 and good.qc == "pass"
    out = sf.read(tmp_path / "keep" / good.title / f"{good.title}_MIX.wav", dtype="int32")[0]
    assert np.array_equal(out, sf.read(compliant, dtype="int32")[0])
    loud = rows["hot"]
    assert loud.status == "ok" and loud.gain_db == 0.0 and loud.qc == "fail", loud.qc_reasons
    assert abs(loud.output_lufs - loud.input_lufs) < 0.1 + loud.limiter_db and "LUFS" in loud.qc_reasons


def _known_dialogue(seconds=20.0, seed=3):
    """Dialogue whose loudness over its own speech blocks is -25 LUFS, a quiet music bed (-45 LUFS) under it."""
    dialogue, music, _, regions = render_sources(seconds, RATE, seed=seed)
    n = dialogue.shape[0]
    dx = np.repeat(dialogue, 2, axis=1)
    blocks = oracle.gating_blocks(dx, RATE)
    truth_mask = vad.block_mask(regions, blocks.size)
    dx *= 10 ** ((-25.0 - loudness.gated_loudness(blocks, truth_mask)) / 20)
    bed = music[:n] * 10 ** ((-45.0 - oracle.integrated_loudness(music[:n], RATE)) / 20)
    return dx.astype(np.float32), (dx + bed).astype(np.float32), regions


def test_dialog_gated_loudness_reads_the_dialogue_level():
    dx, mix, _ = _known_dialogue()
    regions = vad.speech_regions(dx, RATE)
    meter = LoudnessMeter(RATE, mix.shape[1])
    for s in range(0, len(mix), RATE):
        meter.add(mix[s : s + RATE])
    gated = meter.gated(vad.block_mask(regions, meter.gating_blocks().size))
    assert gated == pytest.approx(-25.0, abs=0.5)


def test_spotting_list_finds_dialogue_at_known_times():
    dx, _, truth = _known_dialogue(seed=4)
    spots = spotting_list(vad.speech_regions(dx, RATE), dx, RATE, 25, merge_gap_s=0.0)
    for start, end in truth:
        hits = [s for s in spots if s.start_s < end and s.end_s > start]
        assert hits, (start, end)
        assert min(abs(s.start_s - start) for s in hits) < 0.3
        assert min(abs(s.end_s - end) for s in hits) < 0.3
    assert all(s.start_tc.count(":") == 3 for s in spots)


def _quiet_with_clicks(seconds: float = 12.0):
    """(mix, dx) stereo float32: dialogue-like 180 Hz syllables from 1 s to 9 s under a -50 dBFS noise bed with 40
    clicks at 0.4: brought up to a delivery target, the clicks go far over every ceiling."""
    rng = np.random.default_rng(0)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    syllables = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 2 * (t > 1) * (t < 9)
    dx = (0.02 * np.sin(2 * np.pi * 180 * t) * syllables)[:, None] * [1.0, 0.8]
    me = 0.003 * rng.standard_normal((n, 2))
    for pos in rng.integers(0, n - 100, 40):
        me[pos : pos + 3] += rng.choice([-0.4, 0.4])
    return (dx + me).astype(np.float32), dx.astype(np.float32)


class _MemoryWriter:
    """open_writer for deliver_stream: the blocks of the pass that closes land in `written`."""

    def __init__(self, written: dict, name: str):
        self.written, self.name, self.parts = written, name, []

    def write(self, block):
        self.parts.append(block.copy())

    def close(self):
        self.written[self.name] = np.concatenate(self.parts)
        return self.name

    def abort(self):
        self.parts = []


@pytest.mark.parametrize("name", ["ebu-r128", "netflix", "dx-reference"])
def test_deliver_stream_with_the_limiter_equals_the_whole_array_delivery(name):
    """The gain goes up, the limiter holds the ceilings and takes the measurement off target, so deliver_stream
    corrects the gain over more passes: the same delivery as the whole-array oracle (reference.deliver). Measured:
    samples within 2.4e-7, gain and limiter within 2e-6 dB (the meters' integrated loudness and pyloudnorm's differ
    by ~1e-7 LU)."""
    profile = load_profile(name)
    mix, dx = _quiet_with_clicks()
    speech_blocks = vad.block_mask([(1.0, 9.0)], mix.shape[0] // 4800 - 3)
    whole = oracle_deliver.deliver(mix, {"DX": dx, "ME": mix - dx}, RATE, "stereo", profile, speech_blocks)
    sources = {"MIX": readers.ArrayReader(mix), "DX": readers.ArrayReader(dx),
               "ME": readers.Difference(readers.ArrayReader(mix), readers.ArrayReader(dx))}
    written = {}
    settings = deliver.DeliverySettings(RATE, "stereo", profile, speech_blocks, block=30_000)
    got = deliver.deliver_stream(sources, settings, lambda stem, channels: _MemoryWriter(written, stem))

    assert got.passes > 1 and got.limiter_db > 6  # the correction passes ran
    assert (got.measurement, got.target_lufs) == (whole.measurement, whole.target_lufs)
    assert got.measured_lufs == pytest.approx(whole.measured_lufs, abs=1e-5)
    assert got.gain_db == pytest.approx(whole.gain_db, abs=1e-5)
    assert got.limiter_db == pytest.approx(whole.limiter_db, abs=1e-5)
    assert written.keys() == whole.stems.keys()
    for stem, out in written.items():
        assert np.abs(out - whole.stems[stem]).max() <= 1e-6, stem  # -120 dBFS
        ceiling = profile.me_ceiling_dbtp if stem == "ME" else profile.true_peak_dbtp
        assert oracle.true_peak(out, RATE) <= ceiling
    np.testing.assert_allclose(written["DX"] + written["ME"], written["MIX"], rtol=0, atol=1e-6)
