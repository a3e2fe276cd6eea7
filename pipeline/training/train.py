"""Train or fine-tune an HTDemucs dialogue / music / effects separator on random remixes of a stems corpus.

Writes demucs's own formats (a checksummed `<name>-<sha8>.th` package and `<name>.safetensors`); every run
resumes from `OUT_DIR/checkpoint.pt`. Arrays are float32 (sources, channels, samples) at the model rate.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, MediaError, ModelError
from ..outputs import atomic_output, write_text_atomic

log = logging.getLogger(__name__)

SOURCES = ("dialogue", "music", "effects")
CHECKPOINT_NAME = "checkpoint.pt"      # not .th: a repo folder must hold only the model (pipeline.models.resolve)
LOG_NAME = "training_log.csv"
VALIDATION_NAME = "validation.json"
LOG_FIELDS = ("step", "seconds", "loss", "lr")
CHECKPOINT_VERSION = 1
# TrainConfig fields that shape the network: a checkpoint can only be resumed with the same values.
ARCH_FIELDS = ("segment_s", "samplerate", "channels", "depth", "t_layers", "nfft")


def _check_range(value: float, lo: float, hi: float, name: str) -> None:
    if not (lo <= value <= hi):
        raise ConfigError(f"{name} = {value} is out of range [{lo}, {hi}]")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Times in seconds unless named otherwise, levels in dB.

    The network fields (channels, depth, t_layers, nfft, samplerate) only apply to a model trained from
    scratch; a fine-tuned (`init`) model keeps its own. The default (16 channels, depth 4, one transformer
    layer, 1.43 M parameters) trains at about 0.8–0.9 steps/s at batch 4 on 2 idle CPU cores.
    """

    segment_s: float = 2.0          # training crop, s; also the segment the saved model evaluates in
    batch_size: int = 4
    lr: float = 1e-3                # Adam, reached after a linear warm-up of `warmup_steps`
    warmup_steps: int = 100
    clip_grad: float = 5.0          # max global gradient norm; 0 = off
    channels: int = 16
    depth: int = 4
    t_layers: int = 1               # transformer layers at the bottom (0 = plain hybrid U-Net)
    nfft: int = 4096
    samplerate: int = 44100         # model rate, Hz; the stems are resampled to it with soxr
    steps: int | None = None        # total steps of the run (counting resumed ones)
    minutes: float | None = 30.0    # wall-time budget of one call; whichever of steps/minutes comes first
    seed: int = 0
    loss: str = "l1"                # "l1" (demucs's waveform L1) or "l1+sisdr"
    sisdr_weight: float = 0.01      # weight of −SI-SDR (dB) in "l1+sisdr"
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)   # per source, in SOURCES order
    checkpoint_every: int = 100     # steps
    valid_examples: int = 16        # held-out mixtures for the final validation
    # Augmentation of each random mixture
    dialogue_db: tuple[float, float] = (-12.0, 6.0)     # dialogue level against M&E
    balance_db: tuple[float, float] = (-10.0, 10.0)     # music against effects
    p_reverb: float = 0.3           # chance of a synthetic room on the dialogue
    reverb_s: tuple[float, float] = (0.2, 0.8)          # decay length (≈ RT60) of that room
    reverb_wet: tuple[float, float] = (0.1, 0.6)
    p_silent_dialogue: float = 0.1  # the model must learn "no dialogue"
    p_silent_effects: float = 0.1

    def __post_init__(self):
        _check_range(self.segment_s, 0.25, 60.0, "segment_s")
        _check_range(self.batch_size, 1, 4096, "batch_size")
        _check_range(self.lr, 1e-7, 1.0, "lr")
        _check_range(self.warmup_steps, 0, 10**7, "warmup_steps")
        _check_range(self.clip_grad, 0.0, 1e6, "clip_grad")
        _check_range(self.channels, 2, 512, "channels")
        _check_range(self.depth, 1, 8, "depth")
        _check_range(self.t_layers, 0, 32, "t_layers")
        _check_range(self.samplerate, 8000, 192000, "samplerate")
        _check_range(self.checkpoint_every, 1, 10**9, "checkpoint_every")
        _check_range(self.valid_examples, 0, 10**5, "valid_examples")
        _check_range(self.sisdr_weight, 0.0, 10.0, "sisdr_weight")
        if self.nfft < 64 or self.nfft & (self.nfft - 1):
            raise ConfigError(f"nfft = {self.nfft} must be a power of two ≥ 64")
        if self.steps is not None:
            _check_range(self.steps, 0, 10**9, "steps")
        if self.minutes is not None:
            _check_range(self.minutes, 0.0, 10**6, "minutes")
        if self.loss not in ("l1", "l1+sisdr"):
            raise ConfigError(f"loss = {self.loss!r} must be 'l1' or 'l1+sisdr'")
        if len(self.weights) != len(SOURCES) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ConfigError(f"weights = {self.weights} must be {len(SOURCES)} non-negative numbers, not all 0")
        for name in ("p_reverb", "p_silent_dialogue", "p_silent_effects"):
            _check_range(getattr(self, name), 0.0, 1.0, name)
        for name in ("dialogue_db", "balance_db", "reverb_s", "reverb_wet"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"{name} = ({lo}, {hi}) must be (low, high)")
        _check_range(self.reverb_s[0], 0.01, 5.0, "reverb_s")
        _check_range(self.reverb_s[1], 0.01, 5.0, "reverb_s")

    def segment_samples(self, samplerate: int) -> int:
        return int(round(self.segment_s * samplerate))

    def model_kwargs(self) -> dict:
        """HTDemucs keyword arguments for a model trained from scratch (segment as an exact Fraction)."""
        rate = self.samplerate
        return dict(sources=list(SOURCES), audio_channels=2, samplerate=rate,
                    segment=Fraction(self.segment_samples(rate), rate), channels=self.channels,
                    depth=self.depth, t_layers=self.t_layers, nfft=self.nfft)


@dataclass(frozen=True)
class TrainResult:
    """What a `train` call produced. Losses are on level-normalised mixtures (unit std), averaged over
    the whole run recorded in training_log.csv (resumed steps included)."""

    model_path: Path          # the .th in demucs package format
    safetensors_path: Path
    steps: int                # total steps of the run so far
    seconds: float            # total training wall time, s (resumed calls included)
    first_loss: float         # mean loss over the first ~10% of steps (at least the first 5)
    last_loss: float          # mean over the last ~10%
    resumed_from: int         # step resumed from (0 = fresh)
    validation: dict          # {source: {"si_sdr", "si_sdr_mix", "sdr", "sdr_mix"}} in dB, see `validate`
    log_path: Path | None = None


@dataclass(frozen=True)
class TrainOptions:
    """How one `train` call runs; what is trained (network, batches, augmentation) is `config`.

    `minutes` (wall time of this call) and `steps` (total steps, resumed ones included) override the config's.
    `init` is a model spec to fine-tune (`pipeline.models.resolve`); `device` is auto, cpu, cuda or cuda:N;
    `eval_dir` a stems folder for the validation; `loader_workers` > 0 draws the training mixtures in that many
    worker processes (for a GPU, which the single-threaded mixing starves otherwise).
    """

    name: str = "dme-small"          # writes <name>-<sha8>.th and <name>.safetensors
    config: TrainConfig = field(default_factory=TrainConfig)
    init: str | None = None
    minutes: float | None = None
    steps: int | None = None
    device: str = "auto"
    progress: bool = True            # a tqdm bar on stderr, when it is a terminal
    eval_dir: Path | None = None
    loader_workers: int = 0


@dataclass(frozen=True)
class Mixtures:
    """A fixed batch of examples: `mix` (N, channels, samples) and `sources` (N, S, channels, samples),
    float32 torch tensors at the model rate, sources in the model's order; mix = sources.sum(1)."""

    mix: Any
    sources: Any


# ---------------------------------------------------------------------------------------------------- data

@dataclass
class StemPool:
    """Every source file of a corpus in memory: {source: [(2, samples) float32 at `samplerate`]}, with each
    file's active RMS (the level of its louder half of 50 ms blocks) so crops keep their natural pauses."""

    root: Path
    samplerate: int
    audio: dict[str, list[np.ndarray]] = field(default_factory=dict)
    rms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def seconds(self) -> dict[str, float]:
        return {s: sum(a.shape[1] for a in files) / self.samplerate for s, files in self.audio.items()}


def find_stems_root(stems_dir: Path) -> Path:
    """The folder holding dialogue/ music/ effects/: `stems_dir` itself or its `train/` subfolder."""
    stems_dir = Path(stems_dir)
    if not stems_dir.is_dir():
        raise ConfigError(f"stems folder not found: {stems_dir}", stems_dir)
    for root in (stems_dir, stems_dir / "train"):
        if any((root / s).is_dir() for s in SOURCES):
            missing = [s for s in SOURCES if not (root / s).is_dir()]
            if missing:
                raise ConfigError(f"{root} has no {missing[0]}/ folder (expected {', '.join(SOURCES)}/ "
                                  "folders of .wav files)", root)
            return root
    raise ConfigError(f"{stems_dir} holds no {'/, '.join(SOURCES)}/ folders (nor a train/ folder with them)",
                      stems_dir)


def default_eval_dir(stems_dir: Path) -> Path | None:
    """`DIR/eval` when `DIR` is a corpus (`DIR/train/` and `DIR/eval/`, as pipeline.training.corpus builds), else None."""
    if find_stems_root(stems_dir) == stems_dir / "train" and all((stems_dir / "eval" / s).is_dir() for s in SOURCES):
        return stems_dir / "eval"
    return None


def _active_rms(audio: np.ndarray, rate: int) -> float:
    block = max(1, int(0.05 * rate))
    n = audio.shape[1] // block
    if n == 0:
        return float(np.sqrt(np.mean(audio ** 2)))
    power = np.mean(audio[:, :n * block].reshape(audio.shape[0], n, block) ** 2, axis=(0, 2))
    loud = np.sort(power)[n // 2:]
    return float(np.sqrt(np.mean(loud)))


def load_stems(stems_dir: Path, samplerate: int = 44100) -> StemPool:
    """Read `DIR/{dialogue,music,effects}/*.wav` (or `DIR/train/...`) into memory at `samplerate` (soxr VHQ).

    Mono files are duplicated to stereo; files with more than two channels are refused (MediaError).
    """
    import soundfile as sf
    import soxr

    root = find_stems_root(stems_dir)
    pool = StemPool(root, samplerate)
    for source in SOURCES:
        files = sorted(p for p in (root / source).iterdir() if p.suffix.lower() == ".wav" and p.is_file())
        if not files:
            raise ConfigError(f"{root / source} has no .wav files", root / source)
        pool.audio[source], pool.rms[source] = [], []
        for path in files:
            try:
                audio, rate = sf.read(path, dtype="float32", always_2d=True)
            except (RuntimeError, OSError) as exc:
                raise MediaError(f"cannot read {path.name}: {exc}", path) from exc
            if audio.shape[1] == 1:
                audio = np.repeat(audio, 2, axis=1)
            elif audio.shape[1] != 2:
                raise MediaError(f"{path.name} has {audio.shape[1]} channels: training stems must be mono or "
                                 "stereo", path)
            if rate != samplerate:
                audio = soxr.resample(audio, rate, samplerate, quality="VHQ")
            audio = np.ascontiguousarray(np.asarray(audio, np.float32).T)
            rms = _active_rms(audio, samplerate)
            if audio.shape[1] == 0 or rms < 1e-6:
                log.warning("skipping silent or empty stem %s", path)
                continue
            pool.audio[source].append(audio)
            pool.rms[source].append(rms)
        if not pool.audio[source]:
            raise ConfigError(f"{root / source} has only silent .wav files", root / source)
    log.info("stems from %s: %s", root, ", ".join(f"{s} {len(pool.audio[s])} files {t:.0f} s"
                                                   for s, t in pool.seconds.items()))
    return pool


class MixtureSampler:
    """Random mixtures from a StemPool, drawn with one seeded numpy Generator (see `_batches` for worker
    processes).

    Each example: a random crop of one file per source at its active-RMS level, music/effects balance and
    dialogue level random in the configured dB ranges, per-source random channel swap and polarity, sometimes
    a synthetic room on the dialogue (exponentially decaying noise IR) and sometimes silent dialogue or effects.
    """

    def __init__(self, pool: StemPool, config: TrainConfig, rng: np.random.Generator):
        self.pool = pool
        self.config = config
        self.rng = rng
        self.length = config.segment_samples(pool.samplerate)

    def _crop(self, source: str, length: int) -> np.ndarray:
        """`length` samples of one random file of `source`, at unit active RMS (zero-padded if shorter)."""
        files = self.pool.audio[source]
        k = int(self.rng.integers(len(files)))
        audio, gain = files[k], np.float32(1.0 / self.pool.rms[source][k])
        n = audio.shape[1]
        if n >= length:
            start = int(self.rng.integers(n - length + 1))
            return audio[:, start:start + length] * gain
        out = np.zeros((audio.shape[0], length), np.float32)
        start = int(self.rng.integers(length - n + 1))
        out[:, start:start + n] = audio * gain
        return out

    def _reverb(self, dry: np.ndarray, tail: int) -> np.ndarray:
        """Room on `dry` (channels, tail + T): decaying stereo noise IR, energy-normalised, mixed wet/dry;
        returns the last T samples so the tail of what came before the crop is heard."""
        from scipy.signal import fftconvolve

        cfg, rate = self.config, self.pool.samplerate
        decay = float(self.rng.uniform(*cfg.reverb_s))
        t = np.arange(max(1, int(decay * rate))) / rate
        ir = self.rng.standard_normal((dry.shape[0], t.size)) * np.exp(-6.9 * t / decay)  # −60 dB at `decay`
        ir /= np.sqrt(np.sum(ir ** 2, axis=1, keepdims=True)) + 1e-12
        wet = fftconvolve(dry, ir, axes=-1)[:, :dry.shape[1]]
        d, w = dry[:, tail:], wet[:, tail:]
        w *= np.sqrt(np.mean(d ** 2) / (np.mean(w ** 2) + 1e-12))
        mix = float(self.rng.uniform(*cfg.reverb_wet))
        return ((1.0 - mix) * d + mix * w).astype(np.float32)

    def example(self, silence: bool = True) -> np.ndarray:
        """One example: (3, 2, segment samples) float32, sources in SOURCES order (their sum is the mix)."""
        cfg, rng, n = self.config, self.rng, self.length
        if rng.random() < cfg.p_reverb:
            tail = int(cfg.reverb_s[1] * self.pool.samplerate)
            dialogue = self._reverb(self._crop("dialogue", n + tail), tail)
        else:
            dialogue = self._crop("dialogue", n)
        music, effects = self._crop("music", n), self._crop("effects", n)
        balance = rng.uniform(*cfg.balance_db)
        music *= 10 ** (balance / 40)
        effects *= 10 ** (-balance / 40)
        if silence and rng.random() < cfg.p_silent_effects:
            effects[:] = 0
        me_rms = math.sqrt(10 ** (balance / 20) + (0 if not effects.any() else 10 ** (-balance / 20)))
        dialogue *= me_rms * 10 ** (rng.uniform(*cfg.dialogue_db) / 20)
        if silence and rng.random() < cfg.p_silent_dialogue:
            dialogue[:] = 0
        stems = np.stack([dialogue, music, effects])                     # (S, C, T)
        swap = rng.random(len(SOURCES)) < 0.5
        stems[swap] = stems[swap][:, ::-1]
        stems *= np.where(rng.random(len(SOURCES)) < 0.5, -1.0, 1.0).astype(np.float32)[:, None, None]
        return stems

    def batch(self, size: int, silence: bool = True) -> np.ndarray:
        """(size, 3, 2, segment samples) float32; a digitally silent mixture is redrawn."""
        out = []
        while len(out) < size:
            ex = self.example(silence)
            if ex.sum(0).std() > 1e-4:
                out.append(ex)
        return np.stack(out)


def make_mixtures(pool: StemPool, config: TrainConfig, n: int, seed: int, order: Sequence[str] = SOURCES,
                  device: str = "cpu") -> Mixtures:
    """A fixed, seeded set of `n` mixtures (no silent sources, so every SI-SDR is defined)."""
    import torch

    stems = MixtureSampler(pool, config, np.random.default_rng(seed)).batch(n, silence=False)
    stems = stems[:, [SOURCES.index(s) for s in order]]
    sources = torch.from_numpy(np.ascontiguousarray(stems)).to(device)
    return Mixtures(mix=sources.sum(1), sources=sources)


# ---------------------------------------------------------------------------------------------------- loss

def normalise(mix, sources=None):
    """Level-normalise as `demucs.api.Separator.separate_tensor` does: per example, subtract the mean and
    divide by the std of the channel-averaged mix. mix (B, C, T), sources (B, S, C, T); the sources get the
    same scale (and mean/S each) so they still sum to the mix. Returns (mix, sources, mean, std)."""
    ref = mix.mean(1)                                    # (B, T)
    mean = ref.mean(-1)[:, None, None]
    std = ref.std(-1)[:, None, None].clamp_min(1e-8)
    mix_n = (mix - mean) / std
    if sources is None:
        return mix_n, None, mean, std
    return mix_n, (sources - mean[:, None] / sources.shape[1]) / std[:, None], mean, std


def si_sdr(estimate, target, eps: float = 1e-8):
    """Scale-invariant SDR in dB over the last two dims (channels, samples): (..., C, T) → (...)."""
    est = estimate.flatten(-2)
    ref = target.flatten(-2)
    alpha = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    scaled = alpha * ref
    return 10 * ((scaled.pow(2).sum(-1) + eps) / ((scaled - est).pow(2).sum(-1) + eps)).log10()


def global_sdr(estimate, target, eps: float = 1e-8):
    """SDX "global SDR" in dB, 10·log10(Σs² / Σ(s − ŝ)²) over (channels, samples): (..., C, T) → (...)."""
    num = target.pow(2).flatten(-2).sum(-1)
    den = (target - estimate).pow(2).flatten(-2).sum(-1)
    return 10 * ((num + eps) / (den + eps)).log10()


def separation_loss(estimate, sources, weights, kind: str = "l1", sisdr_weight: float = 0.01):
    """Demucs's training loss: waveform L1 per source (mean over batch, channels, samples), weighted mean
    over sources; "l1+sisdr" subtracts `sisdr_weight` × the mean SI-SDR (dB) of the non-silent targets.
    estimate/sources (B, S, C, T); weights (S,) tensor."""
    per_source = (estimate - sources).abs().mean(dim=(0, 2, 3))
    loss = (per_source * weights).sum() / weights.sum()
    if kind == "l1+sisdr":
        active = sources.pow(2).mean(dim=(2, 3)) > 1e-8             # (B, S)
        if bool(active.any()):
            loss = loss - sisdr_weight * si_sdr(estimate, sources)[active].mean()
    return loss


def validate(model, examples: Mixtures, *, batch_size: int = 4, device: str | None = None) -> dict:
    """Separate each held-out mixture (normalised, `demucs.apply.apply_model`, no shifts) and score it.

    Returns {source: {"si_sdr", "si_sdr_mix", "sdr", "sdr_mix"}}: means over the examples, in dB, of the
    SI-SDR and SDX global SDR of the model's estimate and of the unprocessed mixture used as the estimate
    (the baseline). Sources follow the model's order; silent targets are skipped. The model runs on
    `device` (default: where its parameters are; note that `apply_model` moves it there).
    """
    import torch
    from demucs.apply import apply_model

    if device is None:
        device = next((p.device for p in model.parameters()), examples.mix.device)
    was_training = model.training
    model.eval()
    estimates = []
    try:
        with torch.inference_mode():
            for i in range(0, examples.mix.shape[0], batch_size):
                mix = examples.mix[i:i + batch_size]
                mix_n, _, mean, std = normalise(mix)
                out = apply_model(model, mix_n, shifts=0, split=True, overlap=0.25, progress=False,
                                  device=device)
                estimates.append(out.to(mix.device) * std[:, None] + mean[:, None] / out.shape[1])
    finally:
        model.train(was_training)
    est = torch.cat(estimates).float()
    ref = examples.sources.float()
    mix = examples.mix.float()[:, None].expand_as(ref)
    active = ref.pow(2).mean(dim=(2, 3)) > 1e-10                         # (N, S)
    scores = {"si_sdr": si_sdr(est, ref), "si_sdr_mix": si_sdr(mix, ref),
              "sdr": global_sdr(est, ref), "sdr_mix": global_sdr(mix, ref)}
    result = {}
    for k, source in enumerate(model.sources):
        keep = active[:, k]
        result[source] = {name: float(v[:, k][keep].mean()) if bool(keep.any()) else float("nan")
                          for name, v in scores.items()}
    return result


# ---------------------------------------------------------------------------------------------------- model

def resolve_device(device: str) -> str:
    """"auto" → "cuda" when torch sees a GPU, else "cpu"; "cpu", "cuda" and "cuda:N" are taken as asked."""
    import torch

    device = str(device).strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} requested but torch sees no CUDA device")
        return device
    raise ConfigError(f"--device {device!r} must be auto, cpu, cuda or cuda:N")


def _init_model(init: str, config: TrainConfig):
    """Load the model behind `init` (a pipeline.models spec) for fine-tuning: one HTDemucs with sources
    dialogue/music/effects (any order), stereo. Returns (klass, args, kwargs, model)."""
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs
    from ..models import load_demucs, resolve

    spec = resolve(init)
    if spec.kind != "demucs":
        raise ModelError(f"--init {init}: only a demucs-format HTDemucs can be fine-tuned, not {spec.name}")
    model = load_demucs(spec)
    if isinstance(model, BagOfModels):
        if len(model.models) != 1:
            raise ModelError(f"--init {init} is a bag of {len(model.models)} models: pass one of its .th or "
                             ".safetensors files instead")
        model = model.models[0]
    if not isinstance(model, HTDemucs):
        raise ModelError(f"--init {init} is a {type(model).__name__}: only HTDemucs models can be fine-tuned")
    if sorted(model.sources) != sorted(SOURCES):
        raise ModelError(
            f"--init {init} separates {', '.join(model.sources)}, not {', '.join(SOURCES)}: fine-tuning keeps "
            "the model's stems, so start from a dialogue/music/effects model (or train from scratch without "
            "--init)")
    if model.audio_channels != 2:
        raise ModelError(f"--init {init} has {model.audio_channels} audio channels: training stems are stereo")
    args, kwargs = model._init_args_kwargs
    kwargs = dict(kwargs)
    rate = int(model.samplerate)
    # The saved model evaluates in the segment it was trained on.
    kwargs["segment"] = Fraction(config.segment_samples(rate), rate)
    model.segment = kwargs["segment"]
    return type(model), tuple(args), kwargs, model


def _build(klass, args, kwargs):
    try:
        return klass(*args, **kwargs)
    except (ValueError, TypeError, AssertionError, RuntimeError) as exc:
        raise ConfigError(f"cannot build {klass.__name__} with {kwargs}: {exc}") from exc


def _json_default(value):
    if isinstance(value, Fraction):     # as demucs.hf._decode_json expects
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise ModelError(f"cannot store model argument {value!r} ({type(value).__name__}) in safetensors metadata")


def float32_state(model) -> dict:
    """The model's state dict on the CPU, floating tensors as float32, every tensor its own contiguous copy."""
    import torch

    return {k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu())
            .contiguous().clone() for k, v in model.state_dict().items()}


def write_package(out_dir: Path, name: str, klass, args, kwargs, state: dict, training_args: dict) -> Path:
    """Write `out_dir/<name>-<sha256[:8]>.th` with `demucs.states.save_with_checksum` (atomically: into a
    temp folder, then renamed over any older `<name>-*.th`), loadable by
    `demucs.pretrained.get_model(name, repo=out_dir)`. Returns its path."""
    from demucs.states import save_with_checksum

    package = {"klass": klass, "args": list(args), "kwargs": dict(kwargs), "state": state,
               "training_args": training_args}
    tmp = Path(tempfile.mkdtemp(prefix=".train-", dir=out_dir))
    try:
        save_with_checksum(package, tmp / f"{name}.th")
        (written,) = tmp.glob(f"{name}-*.th")
        for old in out_dir.glob(f"{name}-*.th"):
            if old.stem.rsplit("-", 1)[0] == name:
                old.unlink()
        final = out_dir / written.name
        os.replace(written, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_safetensors(path: Path, klass, args, kwargs, state: dict) -> Path:
    """Write `path` for `demucs.hf.load_safetensors_model`: the tensors, plus metadata `klass` (dotted
    name), `args` and `kwargs` as JSON with Fractions as {"_type": "fraction", ...}."""
    from safetensors.torch import save

    metadata = {"klass": f"{klass.__module__}.{klass.__qualname__}",
                "args": json.dumps(list(args), default=_json_default),
                "kwargs": json.dumps(dict(kwargs), default=_json_default)}
    data = save(state, metadata=metadata)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------------- loop

def _save_checkpoint(path: Path, payload: dict) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _load_checkpoint(path: Path) -> dict:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)   # our own file, in the out dir
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(f"cannot read checkpoint {path}: {exc}; delete it to start over", path) from exc
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise ModelError(f"{path} is not a reelsplit training checkpoint (version {CHECKPOINT_VERSION}); "
                         "delete it or use another --out", path)
    return ckpt


def _write_log(path: Path, rows: list[tuple]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LOG_FIELDS)
    for step, seconds, loss, lr in rows:
        writer.writerow((step, f"{seconds:.3f}", f"{loss:.6f}", f"{lr:.3g}"))
    write_text_atomic(path, buf.getvalue())


def _window_means(losses: list[float]) -> tuple[float, float]:
    if not losses:
        return float("nan"), float("nan")
    k = min(len(losses), max(5, len(losses) // 10))
    return float(np.mean(losses[:k])), float(np.mean(losses[-k:]))


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\") or name.startswith(".") or name == Path(CHECKPOINT_NAME).stem:
        raise ConfigError(f"model name {name!r} must be a plain file name (no folders, not 'checkpoint')")


class _Run:
    """The mutable state of one training run: network, optimizer, data RNG, step counter and log rows.
    Built fresh, from `init`, or from a checkpoint; `save()` writes the checkpoint and the log atomically."""

    def __init__(self, out_dir: Path, config: TrainConfig, init: str | None, device: str):
        import torch

        self.out_dir, self.config, self.init, self.device = out_dir, config, init, device
        self.ckpt_path = out_dir / CHECKPOINT_NAME
        ckpt = _load_checkpoint(self.ckpt_path) if self.ckpt_path.exists() else None
        torch.manual_seed(config.seed)
        if ckpt is not None:
            self._check_resumable(ckpt)
            self.klass, self.args, self.kwargs = ckpt["klass"], tuple(ckpt["args"]), dict(ckpt["kwargs"])
            self.model = _build(self.klass, self.args, self.kwargs)
            self.model.load_state_dict(ckpt["model"])
            self.init = ckpt.get("init")
        elif init is not None:
            self.klass, self.args, self.kwargs, self.model = _init_model(init, config)
        else:
            from demucs.htdemucs import HTDemucs
            self.klass, self.args, self.kwargs = HTDemucs, (), config.model_kwargs()
            self.model = _build(self.klass, self.args, self.kwargs)
        self.samplerate = int(self.model.samplerate)
        self.config = dataclasses.replace(config, samplerate=self.samplerate)
        self.order = list(self.model.sources)
        self.model.to(device).train()
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.rng = np.random.default_rng(config.seed)
        self.step, self.seconds, self.losses, self.rows = 0, 0.0, [], []
        if ckpt is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.rng.bit_generator.state = ckpt["rng"]["numpy"]
            torch.set_rng_state(ckpt["rng"]["torch"])
            if device.startswith("cuda") and ckpt["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
            self.step, self.seconds = int(ckpt["step"]), float(ckpt["seconds"])
            self.losses, self.rows = list(ckpt["losses"]), [tuple(r) for r in ckpt["log"]]
            log.info("resuming %s at step %d (%.0f s trained)", self.ckpt_path, self.step, self.seconds)
        self.resumed_from = self.saved_at = self.step
        self.weights = torch.tensor([config.weights[SOURCES.index(s)] for s in self.order], device=device)

    def _check_resumable(self, ckpt: dict) -> None:
        old, new = ckpt["config"], self.config
        # A fine-tuned network is the init model's: only its training segment comes from the config.
        fields = ARCH_FIELDS if ckpt.get("init") is None else ("segment_s",)
        for f in fields:
            if old.get(f) != getattr(new, f):
                raise ConfigError(f"{self.ckpt_path} was trained with {f} = {old.get(f)}, not {getattr(new, f)}: "
                                  "use the same settings or another --out", self.ckpt_path)
        if self.init is not None and self.init != ckpt.get("init"):
            log.warning("resuming from %s: --init %s is ignored", self.ckpt_path, self.init)

    def lr(self) -> float:
        """Linear warm-up over `warmup_steps`, then constant (the run's length is a time budget)."""
        warmup = self.config.warmup_steps
        return self.config.lr * min(1.0, (self.step + 1) / warmup) if warmup else self.config.lr

    def train_step(self, stems) -> float:
        """One Adam step on a batch (B, S, C, T) float32 tensor (sources in the model's order); the loss."""
        import torch

        mix_n, src_n, _, _ = normalise(stems.sum(1), stems)
        lr = self.lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = separation_loss(self.model(mix_n), src_n, self.weights, self.config.loss, self.config.sisdr_weight)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ModelError(f"training diverged at step {self.step + 1} (loss {value}); lower --lr or resume "
                             f"from the last checkpoint (step {self.saved_at})", self.ckpt_path)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.optimizer.step()
        self.step += 1
        self.losses.append(value)
        return value

    def save(self) -> None:
        import torch

        cuda = self.device.startswith("cuda")
        _save_checkpoint(self.ckpt_path, {
            "version": CHECKPOINT_VERSION, "klass": self.klass, "args": list(self.args), "kwargs": self.kwargs,
            "model": float32_state(self.model), "optimizer": self.optimizer.state_dict(), "step": self.step,
            "seconds": self.seconds, "losses": self.losses, "log": self.rows,
            "config": dataclasses.asdict(self.config), "init": self.init,
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state() if cuda else None}})
        _write_log(self.out_dir / LOG_NAME, self.rows)
        self.saved_at = self.step

    def export(self, name: str, training_args: dict) -> tuple[Path, Path]:
        """Write `<name>-<sha8>.th` and `<name>.safetensors` (float32, evaluating in the training segment)."""
        self.model.segment = self.kwargs["segment"]
        state = float32_state(self.model)
        plain = json.loads(json.dumps(training_args))        # lists, floats and strings only
        th = write_package(self.out_dir, name, self.klass, self.args, self.kwargs, state, plain)
        st = write_safetensors(self.out_dir / f"{name}.safetensors", self.klass, self.args, self.kwargs, state)
        return th, st


class _WorkerBatches:
    """An endless stream of (B, S, C, T) float32 training batches drawn in DataLoader worker processes, each with
    its own MixtureSampler seeded from (seed, first step, worker id): the CPU-side mixing (random crops, gains,
    reverb by FFT convolution) runs beside the network instead of between its steps."""

    def __init__(self, pool: StemPool, config: TrainConfig, perm: list[int], first_step: int):
        self.pool, self.config, self.perm, self.first_step = pool, config, perm, first_step

    def __iter__(self):
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.config.seed, self.first_step, worker])
        yield from _draws(MixtureSampler(self.pool, self.config, rng), self.config.batch_size, self.perm)


def _draws(sampler: MixtureSampler, size: int, perm: list[int]):
    """Endless (size, S, C, T) float32 tensors from `sampler`, sources reordered by `perm`."""
    import torch

    while True:
        yield torch.from_numpy(np.ascontiguousarray(sampler.batch(size)[:, perm]))


def _batches(run: _Run, pool: StemPool, workers: int):
    """Training batches on the CPU, (B, S, C, T) tensors in the model's source order. `workers` = 0 draws them
    here from `run.rng` (so a resumed run continues the same stream: checkpointed); > 0 draws them in that many
    DataLoader worker processes (a resumed run draws a different, still seeded, stream)."""
    cfg = run.config
    perm = [SOURCES.index(s) for s in run.order]
    if workers <= 0:
        return _draws(MixtureSampler(pool, cfg, run.rng), cfg.batch_size, perm)

    from torch.utils.data import DataLoader, IterableDataset

    class Stream(_WorkerBatches, IterableDataset):
        pass

    # fork: the workers share the loaded stems copy-on-write instead of each unpickling a copy (and the
    # dataset class, local to this function, need not be importable)
    loader = DataLoader(Stream(pool, cfg, perm, run.step), batch_size=None, num_workers=workers,
                        prefetch_factor=4, pin_memory=run.device.startswith("cuda"), multiprocessing_context="fork")
    return iter(loader)


def _fit(run: _Run, batches, deadline: float | None, progress: bool, label: str) -> None:
    """Train on `batches` (see `_batches`) until `run.config.steps` or `deadline` (time.monotonic()),
    checkpointing every `checkpoint_every` steps; an interrupt saves a checkpoint first."""
    from tqdm import tqdm

    cfg = run.config
    bar = tqdm(total=cfg.steps, initial=run.step, unit="step", desc=label, dynamic_ncols=True,
               disable=not progress or not sys.stderr.isatty())
    running = None
    try:
        while (cfg.steps is None or run.step < cfg.steps) and (deadline is None or time.monotonic() < deadline):
            t0 = time.monotonic()
            stems = next(batches).to(run.device, non_blocking=True)
            lr = run.lr()
            value = run.train_step(stems)
            run.seconds += time.monotonic() - t0
            run.rows.append((run.step, run.seconds, value, lr))
            running = value if running is None else 0.95 * running + 0.05 * value
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
            bar.update(1)
            if run.step % cfg.checkpoint_every == 0:
                run.save()
    except KeyboardInterrupt:
        if run.step > run.saved_at:
            run.save()
        raise
    finally:
        bar.close()


def _prepare(options: TrainOptions, out_dir: Path) -> tuple[TrainConfig, str]:
    """Check `options` and create `out_dir`: (the config with the options' minutes/steps applied, the device)."""
    _check_name(options.name)
    config = dataclasses.replace(options.config, **{k: v for k, v in (("minutes", options.minutes),
                                                                      ("steps", options.steps)) if v is not None})
    if config.minutes is None and config.steps is None:
        raise ConfigError("give a time budget (--minutes) or a step count (--steps)")
    if options.loader_workers < 0:
        raise ConfigError(f"--loader-workers must be 0 or more, got {options.loader_workers}")
    device = resolve_device(options.device)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {out_dir}: {exc.strerror}", out_dir) from exc
    return config, device


def _validation_set(run: _Run, pool: StemPool, eval_dir: Path | None) -> Mixtures | None:
    """`config.valid_examples` seeded mixtures from the stems in `eval_dir`, else from `pool`; None if 0."""
    config = run.config
    if not config.valid_examples:
        return None
    valid_pool = load_stems(eval_dir, run.samplerate) if eval_dir is not None else pool
    return make_mixtures(valid_pool, config, config.valid_examples, config.seed + 104729, run.order)


def _record_validation(run: _Run, valid_set: Mixtures | None, where: str | None) -> dict:
    """Score the trained model on `valid_set` (see `validate`), log the scores and write `validation.json`."""
    config = run.config
    validation = validate(run.model, valid_set, batch_size=config.batch_size, device=run.device) if valid_set else {}
    for source, v in validation.items():
        log.info("validation %s: SI-SDR %.2f dB (mixture %.2f dB), SDR %.2f dB (mixture %.2f dB)", source,
                 v["si_sdr"], v["si_sdr_mix"], v["sdr"], v["sdr_mix"])
    write_text_atomic(run.out_dir / VALIDATION_NAME, json.dumps(
        {"step": run.step, "examples": config.valid_examples, "eval_dir": where, "metrics": validation},
        indent=2) + "\n")
    return validation


def train(stems_dir: Path, out_dir: Path, options: TrainOptions | None = None, **fields) -> TrainResult:
    """Train (or fine-tune `options.init`) an HTDemucs separating dialogue / music / effects; resume if
    `out_dir` holds a checkpoint. `fields` override the options' fields by name:
    `train(stems, out, steps=40, device="cpu")` is `train(stems, out, TrainOptions(steps=40, device="cpu"))`.

    `stems_dir` holds dialogue/ music/ effects/ folders of .wav files (or a train/ folder that does).
    Training stops at the options' `minutes` or `steps`, whichever comes first. Writes into `out_dir`:
    `checkpoint.pt` (every `checkpoint_every` steps and at the end), `<name>-<sha8>.th`, `<name>.safetensors`,
    `training_log.csv` (step, seconds, loss, lr) and `validation.json`. Validation uses `config.valid_examples`
    seeded mixtures from `eval_dir` (same layout), else from a corpus's `eval/` split, else from the training
    stems. A resumed run keeps the checkpoint's network and ignores `init`.
    """
    started = time.monotonic()
    options = dataclasses.replace(options or TrainOptions(), **fields)
    out_dir = Path(out_dir)
    config, dev = _prepare(options, out_dir)
    run = _Run(out_dir, config, options.init, dev)
    config = run.config
    pool = load_stems(stems_dir, run.samplerate)
    eval_dir = options.eval_dir if options.eval_dir is not None else default_eval_dir(Path(stems_dir))
    valid_set = _validation_set(run, pool, eval_dir)
    log.info("training %s (%d parameters, sources %s) on %s at batch %d × %.2f s", run.klass.__name__,
             run.parameters, "/".join(run.order), dev, config.batch_size, config.segment_s)

    deadline = None if config.minutes is None else started + 60.0 * config.minutes
    _fit(run, _batches(run, pool, options.loader_workers), deadline, options.progress, f"train {options.name}")
    run.save()

    where = str(eval_dir) if eval_dir is not None else None
    validation = _record_validation(run, valid_set, where)
    training_args = {**dataclasses.asdict(config), "name": options.name, "stems_dir": str(pool.root),
                     "eval_dir": where, "init": run.init, "step": run.step, "seconds": run.seconds, "device": dev,
                     "parameters": run.parameters, "validation": validation}
    model_path, st_path = run.export(options.name, training_args)
    first, last = _window_means(run.losses)
    return TrainResult(model_path=model_path, safetensors_path=st_path, steps=run.step, seconds=run.seconds,
                       first_loss=first, last_loss=last, resumed_from=run.resumed_from, validation=validation,
                       log_path=out_dir / LOG_NAME)
