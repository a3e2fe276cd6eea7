"""Block-by-block processing (issue #5): spill files, streaming resampling, ffmpeg pipes, and separation that
equals the whole-file result (better than −60 dB; in practice float rounding or bit-exact) with memory that does
not grow with the length."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline import audio, deliver, media, readers, resample
from pipeline.config import SeparationSettings
from pipeline.models import resolve
from pipeline.profiles import load_profile
from pipeline.layout import LAYOUTS
from pipeline.master import select_master
from pipeline.readers import Workspace
from pipeline.separate import load_separator
from pipeline.separate_dfn3 import Dfn3Separator
from reference.separate import demucs_whole, dfn3_whole
from pipeline.separate_demucs import stream_apply
from tiny_demucs import write_tiny_model


def error_db(got: np.ndarray, ref: np.ndarray) -> float:
    """Energy of the difference relative to the reference, dB (−inf when equal)."""
    assert got.shape == ref.shape, (got.shape, ref.shape)
    diff = float(np.sum((got.astype(np.float64) - ref) ** 2))
    return 10 * math.log10(diff / float(np.sum(ref.astype(np.float64) ** 2))) if diff > 0 else -math.inf


def signal(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """Tones switching on and off over noise: structure at block edges, not pure noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    cols = [0.3 * np.sin(2 * np.pi * (180 + 70 * c) * t) * (np.sin(2 * np.pi * (0.4 + 0.1 * c) * t) > 0)
            + 0.05 * rng.standard_normal(n) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return resolve(str(write_tiny_model(folder / "repo")))


# ---------------------------------------------------------------------------------------------- spill files

def test_rawfile_round_trip_and_overwrite(tmp_path):
    data = signal(1.0, 8000, 3)
    f = readers.RawFile(tmp_path / "x.f32", 3)
    for i in range(0, data.shape[0], 777):
        f.append(data[i:i + 777])
    assert f.frames == data.shape[0]
    assert np.array_equal(f.read(0, f.frames), data)
    assert np.array_equal(np.concatenate(list(f.blocks(1000))), data)
    assert f.read(f.frames - 5, 100).shape == (5, 3)          # clipped at the end
    f.write_at(10, np.ones((4, 3), np.float32))
    assert np.all(f.read(10, 4) == 1) and np.array_equal(f.read(14, 10), data[14:24])
    with pytest.raises(ValueError):
        f.append(np.zeros((2, 2), np.float32))                # wrong channel count
    f.remove()
    assert not (tmp_path / "x.f32").exists()


def test_spill_files_are_named_as_partials(tmp_path):
    from pipeline.outputs import remove_partials

    f = readers.RawFile(readers.spill_path(tmp_path, "mix"), 2)
    f.append(np.zeros((10, 2), np.float32))
    f.close()
    assert remove_partials(tmp_path) == 1 and not list(tmp_path.iterdir())


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=12),
       rates=st.sampled_from([(48000, 44100), (44100, 48000), (96000, 48000), (8000, 48000)]))
def test_streaming_resampler_equals_one_shot(sizes, rates):
    rate_in, rate_out = rates
    x = signal(sum(sizes) / rate_in, rate_in, 2, seed=len(sizes))
    x = x[:sum(sizes)]
    rs = resample.Resampler(rate_in, rate_out, 2)
    pieces, pos = [], 0
    for n in sizes:
        pieces.append(rs.push(x[pos:pos + n]))
        pos += n
    pieces.append(rs.flush())
    got = np.concatenate(pieces)
    ref = soxr.resample(x, rate_in, rate_out, quality="VHQ")
    assert got.shape == ref.shape
    assert error_db(got, ref) < -100


# ---------------------------------------------------------------------------------------------- ffmpeg pipes

def test_extract_to_raw_equals_an_independent_decode(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, signal(3.3, 44100, 2), 44100, subtype="PCM_24")
    info = media.probe(src)
    whole = sf.read(src, dtype="float32")[0]                   # an independent decoder as the reference
    raw = audio.extract_to_raw(src, select_master(info), readers.RawFile(tmp_path / "a.f32", 2))
    assert np.array_equal(raw.read(0, raw.frames), whole)
    assert np.array_equal(audio.extract(src, select_master(info)), whole)
    at48 = audio.extract_to_raw(src, select_master(info), readers.RawFile(tmp_path / "b.f32", 2), rate_out=48000)
    ref = soxr.resample(whole, 44100, 48000, quality="VHQ")
    assert at48.frames == ref.shape[0] and error_db(at48.read(0, at48.frames), ref) < -100


def test_wav_writer_writes_a_complete_file_or_nothing(tmp_path):
    data = signal(2.0, 48000, 6) * 0.5
    w = audio.WavWriter(tmp_path / "s.wav", 48000, "5.1", 6, description="test")
    for i in range(0, data.shape[0], 10000):
        w.write(data[i:i + 10000])
        assert not (tmp_path / "s.wav").exists()              # only a temporary name until complete
    w.close()
    back, rate = sf.read(tmp_path / "s.wav", dtype="float32")
    assert rate == 48000 and back.shape == data.shape
    assert np.max(np.abs(back - data)) < 2 ** -22             # 24-bit
    assert sf.info(str(tmp_path / "s.wav")).subtype == "PCM_24"
    aborted = audio.WavWriter(tmp_path / "t.wav", 48000, "stereo", 2)
    aborted.write(data[:1000, :2])
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.wav"]


# ---------------------------------------------------------------------------------------------- separation

@pytest.mark.parametrize("layout,channels,rate,overlap", [
    ("stereo", 2, 48000, 0.25), pytest.param("stereo", 2, 44100, 0.5, marks=pytest.mark.slow),
    ("mono", 1, 48000, 0.25), pytest.param("5.1", 6, 48000, 0.25, marks=pytest.mark.slow)])
def test_demucs_blockwise_equals_whole_file(tiny, tmp_path, layout, channels, rate, overlap):
    """The issue's bar: block-wise within −60 dB of whole-file. Measured: float rounding (about −145 dB) or
    bit-exact, on a 13 s signal the tiny model (4 s segments) separates in 4 to 7 segments."""
    sep = load_separator(tiny, SeparationSettings(overlap=overlap))
    mix = signal(13.1, rate, channels, seed=channels)
    whole = demucs_whole(sep, mix, rate, layout)
    got = sep.separate(readers.ArrayReader(mix), rate, LAYOUTS[layout], Workspace(tmp_path))
    assert got.blocks > 3
    for name in ("dx", "mx", "fx"):
        f = getattr(got, name)
        assert f.frames == mix.shape[0]
        assert error_db(f.read(0, f.frames), getattr(whole, name)) < -60
    if layout == "5.1":
        assert not np.any(got.dx.read(0, got.dx.frames)[:, 3])   # LFE never in DX
    assert not list(tmp_path.glob("*g0-*"))                      # per-group spill files are gone


@pytest.mark.slow
def test_demucs_bag_of_models_blockwise_equals_whole_file(tmp_path):
    from demucs.apply import BagOfModels
    from pipeline.models import ModelSpec
    from pipeline.separate_demucs import DemucsSeparator

    models = []
    for seed, segment in ((0, 4), (1, 3)):
        path = write_tiny_model(tmp_path / f"r{seed}", name=f"m{seed}", seed=seed)
        models.append(resolve(str(path)))
    from pipeline.models import load_demucs
    bag = BagOfModels([load_demucs(m) for m in models], weights=[[1.0, 2.0, 1.0], [3.0, 1.0, 1.0]])
    sep = DemucsSeparator(bag, ModelSpec(kind="demucs", name="bag", source="file"), SeparationSettings())
    mix = signal(9.0, 44100, 2, seed=5)
    whole = demucs_whole(sep, mix, 44100, "stereo")
    got = sep.separate(readers.ArrayReader(mix), 44100, LAYOUTS["stereo"], Workspace(tmp_path))
    assert error_db(got.dx.read(0, got.dx.frames), whole.dx) < -60


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=st.floats(4.2, 11.0), overlap=st.sampled_from([0.1, 0.25, 0.5, 0.75]),
       segment=st.sampled_from([None, 1.5, 2.5]))
def test_demucs_segment_joins_property(tiny, tmp_path, seconds, overlap, segment):
    """Any length, overlap and segment: the streamed segments join exactly as apply_model's."""
    import torch
    from demucs.apply import apply_model

    sep = load_separator(tiny, SeparationSettings(overlap=overlap, segment=segment))
    x = signal(seconds, 44100, 2, seed=int(seconds * 10)) / 0.2
    reader = readers.ArrayReader(x)
    got = np.concatenate([est for _, est in stream_apply(sep.model, reader, 0.0, 1.0, sep.settings, "cpu")],
                         axis=-1)
    with torch.inference_mode():
        ref = apply_model(sep.model, torch.from_numpy(x.T.copy())[None], segment=segment, overlap=overlap,
                          shifts=0, split=True, progress=False)[0].numpy()
    assert error_db(got, ref) < -60


@pytest.mark.parametrize("pairs,rate,layout,channels", [
    ("mid", 48000, "stereo", 2), ("mid", 44100, "stereo", 2), ("channels", 48000, "stereo", 2),
    pytest.param("mid", 48000, "5.1", 6, marks=pytest.mark.slow), ("channels", 48000, "mono", 1)])
def test_dfn3_blockwise_equals_whole_file(tmp_path, pairs, rate, layout, channels):
    sep = Dfn3Separator(SeparationSettings(dfn3_pairs=pairs, surround="all"))   # the oracle: every group alike
    mix = signal(5.3, rate, channels, seed=3)
    whole = dfn3_whole(sep, mix, rate, layout)
    got = sep.separate(readers.ArrayReader(mix), rate, LAYOUTS[layout], Workspace(tmp_path), block_s=0.77)
    assert got.dx.frames == mix.shape[0]
    assert error_db(got.dx.read(0, got.dx.frames), whole.dx) < -60


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(block_s=st.floats(0.05, 4.0), seconds=st.floats(0.2, 4.0))
def test_dfn3_block_joins_property(tmp_path, block_s, seconds):
    """Any block length, including blocks shorter than DFN3's hop and than the pan window."""
    sep = Dfn3Separator(SeparationSettings())
    mix = signal(seconds, 48000, 2, seed=7)
    whole = dfn3_whole(sep, mix, 48000, "stereo")
    got = sep.separate(readers.ArrayReader(mix), 48000, LAYOUTS["stereo"], Workspace(tmp_path), block_s=block_s)
    out = got.dx.read(0, got.dx.frames)
    got.dx.remove()
    assert error_db(out, whole.dx) < -60


# A child process separates `seconds` of stereo read from a spill file and prints its peak resident memory
# (ru_maxrss, KiB): RSS sees torch's and the DFN3 runtime's allocations, which tracemalloc does not.
PEAK_RSS_CHILD = """
import resource, sys
from pathlib import Path
from pipeline.config import SeparationSettings
from pipeline.layout import LAYOUTS
from pipeline.master import select_master
from pipeline.models import resolve
from pipeline.readers import RawFile, Workspace
from pipeline.separate import load_separator
from test_stream import signal

model, seconds, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
sep = load_separator(resolve(model), SeparationSettings())
raw = RawFile(folder / "in.f32", 2)
for i in range(seconds):
    raw.append(signal(1.0, 48000, 2, seed=i))
stems = sep.separate(raw, 48000, LAYOUTS["stereo"], Workspace(folder))
assert stems.dx.frames == raw.frames
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(model: str, seconds: int, folder) -> float:
    import os
    import subprocess
    import sys
    from conftest import ROOT

    folder.mkdir()
    paths = [ROOT, ROOT / "tests", ROOT / "tests" / "equivalence"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS_CHILD, model, str(seconds), str(folder)], env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1]) / 1024


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dfn3", "tiny"])
def test_stream_memory_does_not_grow_with_length(tiny, tmp_path, model):
    """Peak resident memory of a whole process separating 30 s and 180 s of stereo from a spill file. The extra
    150 s are 58 MB of float32 mix alone, so holding the mix or any stem whole fails the 30 MB bar. Measured
    (2026-12-04, 2 cores): DFN3 321 MB at every length; the tiny Demucs 533-566 MB from 5 s to 240 s, not
    monotonic (allocator noise of about ±15 MB, flat from 20 s on)."""
    name = "dfn3" if model == "dfn3" else str(tiny.path)
    short, long = (peak_rss_mb(name, s, tmp_path / f"s{s}") for s in (30, 180))
    assert long - short < 30.0, (short, long)


# ---------------------------------------------------------------------------------------------- delivery

@pytest.mark.parametrize("profile_name", ["ebu-r128", "netflix", "dx-reference"])
def test_deliver_stream_matches_whole_array_delivery(tmp_path, profile_name):
    """Same gain as the whole-array oracle (reference.deliver), loudness within 0.05 LU, ceilings held, DX + M&E
    still the mix — with a hot, peaky mix that makes the limiter work."""
    from pipeline import vad
    from reference import deliver as oracle_deliver
    from reference import loudness as oracle

    rate = 48000
    profile = load_profile(profile_name)
    rng = np.random.default_rng(1)
    dx = signal(12.0, rate, 2, seed=11) * 0.8
    me = (0.2 * rng.standard_normal(dx.shape)).astype(np.float32)
    me[::4800] += 0.9                                          # clicks: true-peak work for the limiter
    mix = dx + me
    n_blocks = mix.shape[0] // 4800 - 3
    speech_blocks = vad.block_mask([(1.0, 9.0)], n_blocks)
    whole = oracle_deliver.deliver(mix, {"DX": dx, "ME": mix - dx}, rate, "stereo", profile, speech_blocks)

    written = {}

    class Writer:
        def __init__(self, name, channels):
            self.name, self.parts = name, []

        def write(self, block):
            self.parts.append(block.copy())

        def close(self):
            written[self.name] = np.concatenate(self.parts)
            return self.name

        def abort(self):
            self.parts = []

    sources = {"MIX": readers.ArrayReader(mix), "DX": readers.ArrayReader(dx),
               "ME": readers.Difference(readers.ArrayReader(mix), readers.ArrayReader(dx))}
    got = deliver.deliver_stream(sources, deliver.DeliverySettings(rate, "stereo", profile, speech_blocks,
                                                                  block=30000), Writer)
    assert got.measurement == whole.measurement
    assert abs(got.measured_lufs - whole.measured_lufs) < 0.01
    assert abs(got.gain_db - whole.gain_db) < 0.05
    assert {k: v.shape for k, v in written.items()} == {"MIX": mix.shape, "DX": mix.shape, "ME": mix.shape}
    for name in ("MIX", "DX", "ME"):
        ceiling = profile.me_ceiling_dbtp if name == "ME" else profile.true_peak_dbtp
        assert oracle.true_peak(written[name], rate) <= ceiling + 1e-6
        assert abs(oracle.integrated_loudness(written[name], rate, "stereo")
                   - oracle.integrated_loudness(whole.stems[name], rate, "stereo")) < 0.05
    assert np.max(np.abs(written["MIX"] - written["DX"] - written["ME"])) < 1e-5
    if whole.limiter_db > 0:
        assert got.limiter_db > 0


# ---------------------------------------------------------------------------------------------- devices

def test_device_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    from conftest import run_cli

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("run", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "cuda")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0]


@pytest.mark.gpu
def test_demucs_stream_on_cuda_matches_cpu(tiny, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    mix = signal(9.0, 48000, 2, seed=9)
    cpu = load_separator(tiny, SeparationSettings(device="cpu"))
    ref = cpu.separate(readers.ArrayReader(mix), 48000, LAYOUTS["stereo"], Workspace(tmp_path))
    gpu = load_separator(tiny, SeparationSettings(device="cuda"))
    got = gpu.separate(readers.ArrayReader(mix), 48000, LAYOUTS["stereo"], Workspace(tmp_path))
    assert error_db(got.dx.read(0, got.dx.frames), ref.dx.read(0, ref.dx.frames)) < -60
