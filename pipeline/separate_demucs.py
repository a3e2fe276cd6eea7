"""Demucs separation, streamed segment by segment: any demucs-format model or bag of models, its stems mapped
to DX/MX/FX/ME by the stem map.

`demucs.apply.apply_model(split=True)` is itself a sum of overlapping segments (`segment` long,
`(1 - overlap) × segment` apart), each crossfaded into its neighbours by a triangular weight.
`demucs_batch.stream_apply` runs exactly those segments (and those of every shift pass), `batch_segments` at a
time, each read from the spill file with the context apply_model would give it, and hands on every sample no later
segment reaches: the whole-file result with demucs's own crossfade at every join (tests/equivalence/test_stream.py
compares it with the whole-file call, tests/reference/). The input normalisation (demucs.api's mean/std of the mono
mix) is measured over the whole group in a first pass, as the whole-file call does. A bag of models runs one such
pass per model. With `shifts > 0` demucs shifts the input at random, so no two runs (whole or streamed) are equal
unless Python's `random` is seeded alike.
"""
from __future__ import annotations

import math
import time
from typing import Iterator, Mapping

import numpy as np

from .config import DEFAULT_STEM_MAP, SeparationSettings
from .demucs_batch import stream_apply
from .errors import ConfigError, ModelError
from .layout import Layout
from .models import ModelSpec
from .progress import report, share
from .readers import Columns, RawFile, Reader, Repeat, Workspace
from .resample import Resampler, resample_file
from .stems import Stems, assemble

STATS_BLOCK = 1 << 18     # frames per read while measuring the group's mean and deviation
SILENT_BLOCK = 1 << 18    # frames per all-zero estimate of a digitally silent group
BAG_BLOCK = 1 << 16       # frames per read of a bag's weighted sum


class DemucsSeparator:
    """A demucs model or bag, applied segment by segment with the configured segment/overlap/shifts; the
    model's stems are mapped to DX/MX/FX/ME by the stem map. Loaded once, reused for every file."""

    def __init__(self, model, spec: ModelSpec, settings: SeparationSettings,
                 stem_map: Mapping[str, str] = DEFAULT_STEM_MAP):
        self.model = model
        self.name = spec.name
        self.settings = settings
        self.sample_rate = int(model.samplerate)
        self.audio_channels = int(model.audio_channels)
        self.sources = list(model.sources)
        unknown = [s for s in self.sources if s not in stem_map]
        if unknown:
            raise ModelError(f"model {spec.name} has stem {unknown[0]!r} that the stem map does not place "
                             "(add it to stem_map in the config: DX, MX, FX or ME)")
        self.targets = {s: stem_map[s] for s in self.sources}
        if "DX" not in self.targets.values():
            raise ModelError(f"model {spec.name} has no stem mapped to dialogue (DX): its stems are "
                             f"{', '.join(self.sources)}")
        self.device = torch_device(settings.device)

    @property
    def members(self) -> list:
        """The models of a bag (one for a single model), each run as its own streamed pass."""
        return list(getattr(self.model, "models", None) or [self.model])

    @property
    def bag_weights(self) -> list:
        return getattr(self.model, "weights", None) or [[1.0] * len(self.sources)]

    def separate(self, mix: Reader, rate: int, layout: Layout, workspace: Workspace) -> Stems:
        """DX (and MX/FX when the model has them) of `mix` at `rate`, each group of `layout` separated
        together at the model's rate and resampled back; spill files in `workspace`."""
        start = time.perf_counter()
        targets = sorted(set(self.targets.values()) | {"DX"})
        parts: dict[str, list] = {t: [] for t in targets}
        n_blocks = 0
        for gi, group in enumerate(layout.groups):
            with share(gi, len(layout.groups)):
                files, blocks = self._separate_group(mix, rate, gi, group, targets, workspace)
            n_blocks += blocks
            for t in targets:
                parts[t].append((group, files[t]))
        outs = {t: assemble(workspace, f"stem-{t}", mix.channels, mix.frames, parts[t]) for t in targets}
        return Stems(dx=outs["DX"], mx=outs.get("MX"), fx=outs.get("FX"), model=self.name,
                     seconds=time.perf_counter() - start, blocks=n_blocks)

    def _separate_group(self, mix: Reader, rate: int, gi: int, group, targets, workspace: Workspace):
        """One group's stems at the source rate, in spill files per target; returns (files, blocks)."""
        at_model = resample_file(Columns(mix, group), workspace.spill(f"g{gi}-in", len(group)), rate,
                                 self.sample_rate)
        files = {t: workspace.spill(f"g{gi}-{t}", len(group)) for t in targets}
        back = {t: Resampler(self.sample_rate, rate, len(group), length=mix.frames) for t in targets}
        n_blocks = 0
        for est in self._estimates(at_model, workspace, f"g{gi}"):
            n_blocks += 1
            for t, data in self._to_targets(est, targets).items():
                files[t].append(back[t].push(data))
        for t in targets:
            files[t].append(back[t].flush())
        workspace.remove(at_model)
        return files, n_blocks

    def _to_targets(self, est: np.ndarray, targets) -> dict[str, np.ndarray]:
        """(sources, channels, n) estimates summed into (n, channels) per target stem."""
        stems = {t: np.zeros((est.shape[-1], est.shape[1]), np.float32) for t in targets}
        for k, source in enumerate(self.sources):
            stems[self.targets[source]] += est[k].T
        return stems

    def _estimates(self, at_model: RawFile, workspace: Workspace, name: str) -> Iterator[np.ndarray]:
        """The model's (sources, channels, n) estimates of the group, in order."""
        mean, std = mean_std(at_model, STATS_BLOCK)
        channels = at_model.channels
        if std < 1e-6:      # digital silence: no model call, all stems silent
            for s in range(0, at_model.frames, SILENT_BLOCK):
                yield np.zeros((len(self.sources), channels, min(SILENT_BLOCK, at_model.frames - s)), np.float32)
            return
        members = self.members
        if len(members) == 1:
            for _, est in self._apply(members[0], at_model, mean, std):
                yield est
            return
        yield from self._bag(members, at_model, mean, std, workspace.spill(f"{name}-bag",
                                                                            len(self.sources) * channels))

    def _bag(self, members, at_model: RawFile, mean: float, std: float, acc: RawFile) -> Iterator[np.ndarray]:
        """A bag of models as apply_model sums it: each member's weighted pass into `acc`, then the weighted
        mean read back."""
        channels = at_model.channels
        totals = np.sum(np.asarray(self.bag_weights, np.float32), axis=0)
        for mi, (m, w) in enumerate(zip(members, self.bag_weights)):
            wv = np.asarray(w, np.float32)[:, None, None]
            with share(mi, len(members)):
                for s0, est in self._apply(m, at_model, mean, std):
                    flat = (est * wv).reshape(-1, est.shape[-1]).T
                    if mi:
                        flat = flat + acc.read(s0, flat.shape[0])
                    acc.write_at(s0, flat)
        for s0 in range(0, acc.frames, BAG_BLOCK):
            flat = acc.read(s0, BAG_BLOCK)
            yield (flat.T.reshape(len(self.sources), channels, -1) / totals[:, None, None]).astype(np.float32)
        acc.remove()

    def _apply(self, model, reader: Reader, mean: float, std: float) -> Iterator[tuple[int, np.ndarray]]:
        """stream_apply for one group, its progress reported; mono into a stereo model is duplicated, then
        averaged back."""
        for s0, est in self._apply_model(model, reader, mean, std):
            report("separate", s0 + est.shape[-1], reader.frames)
            yield s0, est

    def _apply_model(self, model, reader: Reader, mean: float, std: float) -> Iterator[tuple[int, np.ndarray]]:
        channels = reader.channels
        if channels == model.audio_channels:
            yield from stream_apply(model, reader, mean, std, self.settings, self.device)
            return
        if channels == 1:
            for s0, est in stream_apply(model, Repeat(reader, model.audio_channels), mean, std, self.settings,
                                        self.device):
                yield s0, est.mean(axis=1, keepdims=True)
            return
        raise ValueError(f"cannot feed {channels} channels to a {model.audio_channels}-channel model")


def torch_device(setting: str) -> str:
    """"cpu", or "cuda" for `cuda` (ModelError when torch sees none) and for `auto` where there is one."""
    if setting == "cpu":
        return "cpu"
    import torch
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda requested but torch sees no CUDA device")
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_precision(settings: SeparationSettings) -> None:
    """ConfigError, one line, for bf16/fp16 where demucs would run on the CPU (autocast is for CUDA only)."""
    if settings.precision != "fp32" and torch_device(settings.device) == "cpu":
        raise ConfigError(f"precision {settings.precision} needs a CUDA device (separation.device is "
                          f"{settings.device}, and demucs runs in fp32 on the CPU): use --device cuda or fp32")


def mean_std(reader, block: int) -> tuple[float, float]:
    """Mean and sample standard deviation (as torch.std) of the mono mean of `reader`'s channels."""
    n, s, ss = 0, 0.0, 0.0
    for chunk in reader.blocks(block):
        ref = chunk.astype(np.float64).mean(axis=1)
        n, s, ss = n + ref.size, s + ref.sum(), ss + np.dot(ref, ref)
    if n < 2:
        return (s / n if n else 0.0), 0.0
    mean = s / n
    return mean, math.sqrt(max(0.0, (ss - n * mean * mean) / (n - 1)))
