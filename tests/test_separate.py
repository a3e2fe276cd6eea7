"""Separation: the Demucs path with small demucs-format models written here, and the bundled DFN3."""
import numpy as np
import pytest
import soundfile as sf

from conftest import si_sdr
from pipeline.config import SeparationSettings
from pipeline.demo import make_demo_reel, render_sources
from pipeline.errors import ModelError
from pipeline.models import load_demucs, resolve
from pipeline.separate import Dfn3Separator, load_separator
from tiny_demucs import write_tiny_model

RATE = 48000


def _noise(seconds, channels, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal((int(seconds * RATE), channels))).astype(np.float32)


@pytest.mark.parametrize("sources,has_mx_fx", [
    (("dialogue", "music", "effects"), True),
    (("drums", "bass", "other", "vocals"), False),
    (("vocals", "other"), False),
    (("drums", "bass", "other", "vocals", "guitar", "piano"), False),
])
def test_demucs_stem_maps_and_null(tmp_path, sources, has_mx_fx):
    path = write_tiny_model(tmp_path, name=f"tiny{len(sources)}", sources=sources)
    spec = resolve(str(path))
    assert (spec.kind, spec.source) == ("demucs", "file")
    sep = load_separator(spec, SeparationSettings())
    mix = _noise(2.0, 2)
    out = sep.separate(mix, RATE, "stereo")
    assert out.dx.shape == mix.shape and out.dx.dtype == np.float32
    assert np.abs(out.dx).max() > 0                           # the model really ran
    assert np.abs(mix - (out.dx + out.me)).max() < 1e-6     # M&E = mix - DX: the null test
    assert (out.mx is not None, out.fx is not None) == (has_mx_fx, has_mx_fx)


def test_demucs_5_1_keeps_lfe_in_me(tmp_path):
    sep = load_separator(resolve(str(write_tiny_model(tmp_path))), SeparationSettings())
    mix = _noise(1.5, 6, seed=1)
    out = sep.separate(mix, RATE, "5.1")
    assert np.all(out.dx[:, 3] == 0) and np.array_equal(out.me[:, 3], mix[:, 3])
    assert all(np.abs(out.dx[:, c]).max() > 0 for c in (0, 1, 2, 4, 5))


def test_demucs_repo_folder_and_checksum(tmp_path):
    path = write_tiny_model(tmp_path / "repo", name="tinyrepo")
    spec = resolve(str(tmp_path / "repo"))
    assert (spec.name, spec.source) == ("tinyrepo", "repo")
    assert load_demucs(spec).sources == ["dialogue", "music", "effects"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="Invalid checksum"):
        load_demucs(spec)


def test_model_without_dialogue_stem_is_refused(tmp_path):
    spec = resolve(str(write_tiny_model(tmp_path, name="nodx", sources=("drums", "bass"))))
    with pytest.raises(ModelError, match="no stem mapped to dialogue"):
        load_separator(spec, SeparationSettings())


def test_dfn3_is_aligned_and_full_length():
    """DFN3 keeps speech and drops clicks, so alignment is proven on speech: the cross-correlation of its
    output with the clean input peaks at lag 0 (a 1440-sample misalignment would make DX worse than the mix),
    and the output is exactly as long as the input."""
    from scipy.signal import correlate

    dialogue, _, _, regions = render_sources(6.0, RATE, seed=2)
    x = dialogue[:, 0] + _noise(6.0, 1, seed=3)[:, 0] * 0.05
    x = x[: x.size - 77]                       # a length that is not a multiple of DFN3's 480-sample hop
    y = Dfn3Separator(SeparationSettings()).enhance(x)
    assert y.shape == x.shape and regions
    lags = np.arange(-2000, 2001)
    xc = correlate(y, dialogue[: x.size, 0], mode="full")[x.size - 1 - 2000: x.size + 2000]
    assert lags[int(np.argmax(xc))] == 0


def test_dfn3_separates_dialogue_better_than_the_mixture(tmp_path):
    """On a demo mix with known stems, DFN3's DX is closer to the true dialogue than the mixture is."""
    reel = make_demo_reel(tmp_path / "r.wav", seconds=8, layout="stereo", seed=5, write_stems=True)
    mix, _ = sf.read(str(reel.path), dtype="float32", always_2d=True)
    truth, _ = sf.read(str(reel.stems_dir / "dialogue.wav"), dtype="float32", always_2d=True)
    out = Dfn3Separator(SeparationSettings()).separate(mix, RATE, "stereo")
    base, got = si_sdr(truth, mix), si_sdr(truth, out.dx)
    assert got > base + 3.0, (base, got)
    assert np.abs(mix - (out.dx + out.me)).max() < 1e-6


def test_dfn3_cleanup_after_demucs_keeps_the_null(tmp_path):
    """`cleanup: dfn3` runs DFN3 over a Demucs DX: noise-only dialogue is mostly removed, into M&E."""
    from pipeline.cleanup import clean_dialogue
    from pipeline.separate import Separation

    mix = _noise(2.0, 2, seed=4)
    dx = 0.5 * mix
    sep = Separation(dx=dx, me=mix - dx, mx=None, fx=None, model="x", seconds=0.0)
    out = clean_dialogue(mix, sep, RATE, method="dfn3")
    assert out.method == "dfn3" and out.dx.shape == mix.shape
    assert np.sqrt(np.mean(out.dx ** 2)) < 0.3 * np.sqrt(np.mean(dx ** 2))   # noise is not dialogue
    assert np.abs(mix - (out.dx + out.me)).max() < 1e-6


def test_dfn3_pair_follows_the_dialogue_pan():
    """Dialogue panned 80/20 comes back in DX with about that balance (the mid estimate is placed by pan)."""
    dialogue, music, _, _ = render_sources(6.0, RATE, seed=7)
    n = dialogue.shape[0]
    left_heavy = dialogue[:, :1] * np.array([[1.6, 0.4]], np.float32)
    bed = music[:n] * np.sqrt(np.mean(left_heavy ** 2) / np.mean(music[:n] ** 2))   # dialogue at 0 dB against music
    mix = left_heavy + bed
    out = Dfn3Separator(SeparationSettings()).separate(mix, RATE, "stereo")
    ratio_db = 20 * np.log10(np.sqrt(np.mean(out.dx[:, 0] ** 2) / np.mean(out.dx[:, 1] ** 2)))
    assert 9.0 < ratio_db < 15.0          # 1.6 / 0.4 = 12.0 dB
    assert si_sdr(left_heavy, out.dx) > si_sdr(left_heavy, mix) + 3


@pytest.mark.slow
def test_bundled_dme_small_beats_the_mixture(tmp_path):
    """The project's own trained demucs-format model (models/dme-small-*.safetensors, trained on the generated
    corpus) resolves by name offline and improves dialogue over the unprocessed mix on unseen material."""
    spec = resolve("dme-small")
    assert (spec.kind, spec.source) == ("demucs", "bundled")
    sep = load_separator(spec, SeparationSettings())
    gains = []
    for seed in (6, 7, 8):                       # three unseen demo reels; the first is its weakest case
        reel = make_demo_reel(tmp_path / f"r{seed}.wav", seconds=8, layout="stereo", seed=seed, write_stems=True)
        mix, _ = sf.read(str(reel.path), dtype="float32", always_2d=True)
        truth, _ = sf.read(str(reel.stems_dir / "dialogue.wav"), dtype="float32", always_2d=True)
        out = sep.separate(mix, RATE, "stereo")
        assert out.mx is not None and out.fx is not None
        gains.append(si_sdr(truth, out.dx) - si_sdr(truth, mix))
    assert min(gains) > 0 and np.mean(gains) > 1.0, gains
