"""Training a tiny dialogue/music/effects HTDemucs on synthetic stems: outputs in demucs's formats, loss,
resume, fine-tuning, validation metrics and clear errors."""
from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import run_cli
from pipeline.errors import ConfigError, ModelError
from pipeline.models import resolve
from pipeline.training.train import (CHECKPOINT_NAME, LOG_NAME, SOURCES, TrainConfig, default_eval_dir,
                                     global_sdr, load_stems, make_mixtures, si_sdr, train, validate)

RATE = 48000

# A network small enough to train 40 steps in a few seconds on 2 cores.
TINY = TrainConfig(segment_s=1.0, batch_size=2, lr=3e-3, warmup_steps=5, channels=8, depth=2, t_layers=0,
                   nfft=1024, minutes=None, seed=0, checkpoint_every=20, valid_examples=4)


def _dialogue(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Speech-like: syllables (~4 Hz) of a gliding harmonic voice through two moving formants, with pauses."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(100, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formants = rng.uniform(500, 900), rng.uniform(1200, 2400)
    voice = sum(np.sin(k * phase) * (np.exp(-((k * f0 - formants[0]) / 300) ** 2)
                                     + 0.6 * np.exp(-((k * f0 - formants[1]) / 400) ** 2))
                for k in range(1, 25))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 2
    phrases = (np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6)) > -0.5).astype(float)
    mono = voice * syllables * phrases
    return np.stack([mono, 0.9 * mono], 1)


def _music(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Sustained chords of sines (root, third, fifth, octave), one chord per second, slightly wide."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros((n, 2))
    for start in range(0, n, RATE):
        root = 110 * 2 ** (rng.integers(0, 12) / 12)
        seg = slice(start, min(n, start + RATE))
        for ratio, pan in ((1, 0.5), (1.26, 0.3), (1.5, 0.7), (2, 0.5)):
            tone = np.sin(2 * np.pi * root * ratio * t[seg]) * np.exp(-0.5 * (t[seg] - t[seg][0]))
            out[seg, 0] += (1 - pan) * tone
            out[seg, 1] += pan * tone
    return out


def _effects(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Noise bursts with fast attacks and exponential decays, at random times, independently per channel."""
    n = int(seconds * RATE)
    out = np.zeros((n, 2))
    for _ in range(int(seconds * 3)):
        at, length = rng.integers(0, n), rng.integers(RATE // 20, RATE // 3)
        burst = rng.standard_normal((length, 2)) * np.exp(-np.arange(length) / (length / 5))[:, None]
        end = min(n, at + length)
        out[at:end] += burst[:end - at] * rng.uniform(0.3, 1.0, 2)
    return out


def write_synthetic_stems(folder: Path, files: int = 3, seconds: float = 4.0, seed: int = 0) -> Path:
    """`folder/{dialogue,music,effects}/NN.wav`: 48 kHz stereo float WAVs of synthetic sources."""
    rng = np.random.default_rng(seed)
    for source, make in (("dialogue", _dialogue), ("music", _music), ("effects", _effects)):
        (folder / source).mkdir(parents=True, exist_ok=True)
        for i in range(files):
            audio = make(rng, seconds)
            sf.write(folder / source / f"{i:02d}.wav", (0.3 * audio / np.abs(audio).max()).astype(np.float32),
                     RATE, subtype="FLOAT")
    return folder


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks gain nothing from a second thread, and one thread degrades gracefully on shared cores."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def stems(tmp_path_factory) -> Path:
    return write_synthetic_stems(tmp_path_factory.mktemp("stems"))


@pytest.fixture(scope="module")
def trained(stems, tmp_path_factory):
    """One 40-step run shared by the tests below: (out_dir, result)."""
    out = tmp_path_factory.mktemp("model")
    return out, train(stems, out, name="dme-tiny", config=TINY, steps=40, device="cpu", progress=False)


def _log_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_outputs_load_with_demucs_and_agree(trained):
    from demucs.hf import load_safetensors_model
    from demucs.pretrained import get_model

    out, result = trained
    assert result.model_path.parent == out and result.model_path.name.startswith("dme-tiny-")
    assert len(result.model_path.stem.rsplit("-", 1)[1]) == 8
    from_th = get_model("dme-tiny", repo=out)
    assert resolve(str(out)).name == "dme-tiny"      # the checkpoint does not make the folder ambiguous
    from_st = load_safetensors_model(result.safetensors_path)
    for model in (from_th, from_st):
        assert list(model.sources) == list(SOURCES)
        assert model.samplerate == 44100 and model.audio_channels == 2
        assert model.segment == 1          # evaluates in the segment it was trained on
    from_st.eval()
    x = torch.randn(1, 2, 44100 + 1234, generator=torch.Generator().manual_seed(1))
    from demucs.apply import apply_model
    a = apply_model(from_th, x, shifts=0, split=True, overlap=0.25)
    b = apply_model(from_st, x, shifts=0, split=True, overlap=0.25)
    assert a.shape == (1, 3, 2, x.shape[-1])
    assert torch.equal(a, b)
    package = torch.load(result.model_path, map_location="cpu", weights_only=False)
    assert set(package) >= {"klass", "args", "kwargs", "state", "training_args"}
    assert all(v.dtype == torch.float32 for v in package["state"].values() if v.is_floating_point())
    assert package["training_args"]["step"] == 40 and package["training_args"]["channels"] == 8


def test_loss_goes_down_and_is_logged(trained):
    out, result = trained
    assert result.steps == 40 and result.resumed_from == 0
    assert result.last_loss < 0.85 * result.first_loss, (result.first_loss, result.last_loss)
    rows = _log_rows(out / LOG_NAME)
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    assert float(rows[0]["lr"]) < float(rows[-1]["lr"]) == pytest.approx(TINY.lr)   # warm-up
    assert set(result.validation) == set(SOURCES)
    for v in result.validation.values():
        assert set(v) == {"si_sdr", "si_sdr_mix", "sdr", "sdr_mix"} and all(np.isfinite(list(v.values())))
    assert (out / "validation.json").exists() and (out / CHECKPOINT_NAME).exists()


def test_resume_continues_the_run(trained, stems, tmp_path):
    import shutil

    src, first = trained
    out = tmp_path / "resumed"
    shutil.copytree(src, out)
    result = train(stems, out, name="dme-tiny", config=TINY, steps=50, device="cpu", progress=False)
    assert result.resumed_from == 40 and result.steps == 50
    assert result.seconds > first.seconds
    rows = _log_rows(out / LOG_NAME)
    assert [int(r["step"]) for r in rows] == list(range(1, 51))
    assert [r["loss"] for r in rows[:40]] == [r["loss"] for r in _log_rows(src / LOG_NAME)]
    # the continued loss is in the range the first run ended at, not back at a fresh model's level
    assert np.mean([float(r["loss"]) for r in rows[40:]]) < first.first_loss
    assert len(list(out.glob("dme-tiny-*.th"))) == 1


def test_resume_is_seamless(stems, tmp_path):
    """Stopping at step 6 and resuming to 9 gives the losses of one uninterrupted 9-step run (same data,
    same optimizer state, same RNG)."""
    for steps in (6, 9):
        train(stems, tmp_path / "split", config=TINY, steps=steps, device="cpu", progress=False)
    train(stems, tmp_path / "whole", config=TINY, steps=9, device="cpu", progress=False)
    split, whole = (_log_rows(tmp_path / k / LOG_NAME) for k in ("split", "whole"))
    assert [float(r["loss"]) for r in split] == pytest.approx([float(r["loss"]) for r in whole], rel=1e-3)


def test_resume_refuses_another_network(trained, stems, tmp_path):
    import dataclasses
    import shutil

    src, _ = trained
    out = tmp_path / "other"
    shutil.copytree(src, out)
    with pytest.raises(ConfigError, match="channels = 8, not 12"):
        train(stems, out, config=dataclasses.replace(TINY, channels=12), steps=45, device="cpu", progress=False)


def test_fine_tune_starts_from_init_weights(trained, stems, tmp_path):
    src, first = trained
    tuned = train(stems, tmp_path / "tuned", name="dme-tuned", config=TINY, init=str(src),   # the repo folder
                  steps=6, device="cpu", progress=False)
    assert tuned.resumed_from == 0 and tuned.steps == 6
    # same seed → same first batches: the fine-tune starts where the first run ended, not from scratch
    assert abs(tuned.first_loss - first.last_loss) < abs(tuned.first_loss - first.first_loss)
    assert tuned.first_loss < 0.85 * first.first_loss


def test_train_subfolder_layout_and_validate(stems, tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train").symlink_to(stems, target_is_directory=True)
    pool = load_stems(tmp_path / "corpus", 44100)
    assert pool.root == tmp_path / "corpus" / "train"
    assert default_eval_dir(tmp_path / "corpus") is None
    (tmp_path / "corpus" / "eval").symlink_to(stems, target_is_directory=True)
    assert default_eval_dir(tmp_path / "corpus") == tmp_path / "corpus" / "eval"   # pipeline.training.corpus's split
    assert all(len(pool.audio[s]) == 3 and pool.audio[s][0].shape == (2, 4 * 44100) for s in SOURCES)
    examples = make_mixtures(pool, TINY, 3, seed=5)
    again = make_mixtures(pool, TINY, 3, seed=5)
    assert torch.equal(examples.mix, again.mix)                  # seeded
    assert torch.allclose(examples.sources.sum(1), examples.mix)

    class Passthrough(torch.nn.Module):
        """Gives the whole mix as dialogue and silence as music and effects (checks validate's bookkeeping)."""
        sources, samplerate, audio_channels, segment = list(SOURCES), 44100, 2, 1

        def forward(self, mix):
            return torch.stack([mix, 0 * mix, 0 * mix], 1)

    scores = validate(Passthrough(), examples, batch_size=2)
    assert scores["dialogue"]["si_sdr"] == pytest.approx(scores["dialogue"]["si_sdr_mix"], abs=0.01)
    assert scores["dialogue"]["sdr"] == pytest.approx(scores["dialogue"]["sdr_mix"], abs=0.01)
    for source in ("music", "effects"):
        assert scores[source]["sdr"] == pytest.approx(0.0, abs=0.01)      # Σs² / Σ(s − 0)²


def test_sampler_augmentations(stems):
    import dataclasses

    from pipeline.training.train import MixtureSampler

    pool = load_stems(stems, 44100)
    silent = MixtureSampler(pool, dataclasses.replace(TINY, p_silent_dialogue=1.0, p_silent_effects=1.0),
                            np.random.default_rng(0)).batch(3)
    assert silent.shape == (3, 3, 2, 44100) and silent.dtype == np.float32
    assert not silent[:, 0].any() and not silent[:, 2].any() and silent[:, 1].any()
    wet = MixtureSampler(pool, dataclasses.replace(TINY, p_reverb=1.0, p_silent_dialogue=0.0,
                                                   dialogue_db=(0.0, 0.0), balance_db=(0.0, 0.0)),
                         np.random.default_rng(0)).batch(8)
    assert np.isfinite(wet).all() and wet[:, 0].any(axis=(1, 2)).all()
    rms = np.sqrt((wet ** 2).mean(axis=(2, 3)))                 # (examples, sources)
    # dialogue at 0 dB against M&E, on average over crops (their own levels vary around the file's)
    assert 0.25 < np.median(rms[:, 0] / np.sqrt(rms[:, 1] ** 2 + rms[:, 2] ** 2)) < 4


def test_metrics_on_known_signals():
    ref = torch.randn(1, 2, 1000, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(1, 2, 1000, generator=torch.Generator().manual_seed(1))
    est = 0.5 * ref + 0.1 * noise                            # scale does not matter to SI-SDR
    expected = 10 * torch.log10((0.5 * ref).pow(2).sum() / (0.1 * noise).pow(2).sum())
    assert float(si_sdr(est, ref)) == pytest.approx(float(expected), abs=0.2)
    assert float(global_sdr(ref + 0.1 * noise, ref)) == pytest.approx(20.0, abs=0.5)


def test_missing_source_folder_is_a_clear_error(stems, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(stems, bad)
    shutil.rmtree(bad / "effects")
    with pytest.raises(ConfigError, match="no effects/ folder"):
        train(bad, tmp_path / "out", config=TINY, steps=1, device="cpu", progress=False)
    (bad / "effects").mkdir()
    with pytest.raises(ConfigError, match=r"effects has no \.wav files"):
        train(bad, tmp_path / "out", config=TINY, steps=1, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="holds no dialogue"):
        train(tmp_path / "out", tmp_path / "out2", config=TINY, steps=1, device="cpu", progress=False)


def test_init_from_another_dme_model_takes_the_training_segment(stems, tmp_path):
    from demucs.hf import load_safetensors_model

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tiny_demucs import write_tiny_model

    other = write_tiny_model(tmp_path / "repo", "tiny_dme")          # segment 4 s, sources in our order
    result = train(stems, tmp_path / "out", name="tuned", config=TINY, init=str(other), steps=2, device="cpu",
                   progress=False)
    model = load_safetensors_model(result.safetensors_path)
    assert model.segment == 1 and model.nfft == 1024 and list(model.sources) == list(SOURCES)
    package = torch.load(result.model_path, map_location="cpu", weights_only=False)
    assert package["training_args"]["init"] == str(other)


def test_init_with_other_sources_is_refused(stems, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tiny_demucs import write_tiny_model

    music_model = write_tiny_model(tmp_path / "repo", "tiny_music", sources=("drums", "bass", "other", "vocals"))
    with pytest.raises(ModelError, match="separates drums, bass, other, vocals"):
        train(stems, tmp_path / "out", config=TINY, init=str(music_model), steps=1, device="cpu", progress=False)


def test_config_is_validated():
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig(loss="l2")
    with pytest.raises(ConfigError, match="segment_s"):
        TrainConfig(segment_s=0)
    with pytest.raises(ConfigError, match="nfft"):
        TrainConfig(nfft=1000)


def test_cli_reports_errors_and_trains(stems, tmp_path):
    bad = run_cli("train", "--stems", tmp_path / "nowhere", "--out", tmp_path / "o", "--steps", "1")
    assert bad.returncode == 2
    assert "stems folder not found" in bad.stderr
    args = ["train", "--stems", str(stems), "--out", str(tmp_path / "cli"), "--steps", "3", "--device", "cpu",
            "--segment", "1", "--batch-size", "1", "--channels", "8", "--depth", "2", "--t-layers", "0",
            "--nfft", "1024", "--loss", "l1+sisdr", "--no-progress", "--name", "cli", "--threads", "1"]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    assert "model:" in printed and "dialogue" in printed
    assert len(list((tmp_path / "cli").glob("cli-*.th"))) == 1 and (tmp_path / "cli" / "cli.safetensors").exists()


def _fake_run(seed: int = 0, step: int = 0):
    from types import SimpleNamespace
    config = dataclasses.replace(TINY, seed=seed, batch_size=2)
    return SimpleNamespace(config=dataclasses.replace(config, samplerate=44100), order=list(SOURCES), step=step,
                           device="cpu", rng=np.random.default_rng(seed))


def test_loader_workers_draw_distinct_seeded_batches(stems):
    """Two worker processes: each draws its own stream (no duplicated batches), and the same seed and first step
    give the same batches again; another first step (a resumed run) gives other ones."""
    from pipeline.training.train import _batches, load_stems

    pool = load_stems(stems, 44100)

    def draw(**kw):
        it = _batches(_fake_run(**kw), pool, workers=2)
        return [next(it).numpy() for _ in range(4)]

    first, again, later = draw(), draw(), draw(step=40)
    assert first[0].shape == (2, 3, 2, TINY.segment_samples(44100))
    assert not np.allclose(first[0], first[1])          # worker 0 and worker 1 are seeded apart
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.allclose(first[0], later[0])


def test_training_with_loader_workers_learns(stems, tmp_path):
    with pytest.raises(ConfigError, match="--loader-workers must be 0 or more"):
        train(stems, tmp_path / "bad", config=TINY, steps=1, device="cpu", progress=False, loader_workers=-1)
    result = train(stems, tmp_path / "w", name="dme-tiny", config=TINY, steps=40, device="cpu", progress=False,
                   loader_workers=2)
    assert result.steps == 40
    assert result.last_loss < 0.85 * result.first_loss, (result.first_loss, result.last_loss)
    assert len(list((tmp_path / "w").glob("dme-tiny-*.th"))) == 1
