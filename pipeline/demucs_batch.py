"""Demucs segments in batches: `stream_apply` is `demucs.apply.apply_model(model, mix, shifts, split=True)` for one
(non-bag) model, streamed from a reader, its segments stacked into batches so that one forward pass separates many.

apply_model with `shifts = S > 0` draws S random offsets and separates S shifted copies of the whole input (each
delayed by d = max_shift − offset, zero outside the input), each split into `segment`-long pieces `stride` apart and
crossfaded by a triangle; the S results, each advanced by its d, are averaged (S = 0: one pass, no delay). Here each
such pass is a `Pass` (its delay and its overlap-add sums); the segments of every pass are taken in time order
(segment i of each pass, then i + 1), each read with the context `TensorChunk.padded` would give it, `batch` at a
time through one forward (autocast to bf16/fp16 on CUDA when asked), and a sample is handed on as soon as no later
segment of any pass reaches it. Memory: a few batches of segments, whatever the length of the input.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .config import SeparationSettings
from .errors import ModelError

PRECISIONS = ("fp32", "bf16", "fp16")
CPU_BATCH = 1             # segments per forward on the CPU when batch_segments is 0 (auto): benchmarks/RESULTS.md
MAX_AUTO_BATCH = 64       # on CUDA, auto never goes above this (the H200's gain flattens out: issue #19's table)
AUTO_MEMORY_SHARE = 0.5   # auto on CUDA: batches take at most this share of the device's free memory
PROBE_BATCH = 2           # segments in the forward pass that measures one segment's device memory


def segment_weight(segment_length: int, transition_power: float = 1.0) -> np.ndarray:
    """apply_model's triangular transition weight for one segment (demucs/apply.py)."""
    half = segment_length // 2
    w = np.concatenate([np.arange(1, half + 1), np.arange(segment_length - half, 0, -1)]).astype(np.float32)
    return (w / w.max()) ** transition_power


def valid_length(model, segment: float | None, length: int) -> int:
    """The input length of one forward for a piece of `length` frames, as apply_model(split=False) pads it."""
    from demucs.htdemucs import HTDemucs

    if isinstance(model, HTDemucs) and segment is not None:
        return int(segment * model.samplerate)
    if hasattr(model, "valid_length"):
        return int(model.valid_length(length))
    return length


@dataclass(frozen=True)
class Piece:
    """One segment of one pass: pass `k`, `offset` and `length` in the pass's frames, the forward's input read
    from `start` (input frames) for `valid` frames."""

    k: int
    offset: int
    length: int
    start: int
    valid: int


class Pass:
    """One shift pass over an input of `length` frames delayed by `delay`: apply_model's overlap-add of its
    segments (sums of weighted estimates and of weights), handing on finished samples in input frames."""

    def __init__(self, shape: tuple[int, int], length: int, delay: int, stride: int, weight: np.ndarray):
        self.delay, self.frames, self.stride, self.weight = delay, length + delay, stride, weight
        self.acc = np.zeros(shape + (0,), np.float32)     # sums for pass frames [base, base + acc.shape[-1])
        self.wsum = np.zeros(0, np.float32)
        self.base = 0

    def add(self, offset: int, est: np.ndarray) -> np.ndarray:
        """Add the (sources, channels, n) estimate of the segment at `offset`; returns the samples no later
        segment reaches, from the first not yet returned, in input frames (the delay's lead-in dropped)."""
        n = est.shape[-1]
        need = offset + n - self.base
        if need > self.acc.shape[-1]:
            grow = need - self.acc.shape[-1]
            self.acc = np.concatenate([self.acc, np.zeros(self.acc.shape[:2] + (grow,), np.float32)], axis=-1)
            self.wsum = np.concatenate([self.wsum, np.zeros(grow, np.float32)])
        self.acc[..., offset - self.base:offset - self.base + n] += self.weight[:n] * est
        self.wsum[offset - self.base:offset - self.base + n] += self.weight[:n]
        final = min(offset + self.stride, self.frames) - self.base
        if final <= 0:
            return self.acc[..., :0]
        out = self.acc[..., :final] / self.wsum[:final]
        skip = max(0, self.delay - self.base)              # pass frames before the delay are before the input
        self.acc, self.wsum, self.base = self.acc[..., final:], self.wsum[final:], self.base + final
        return out[..., skip:]


class ShiftMean:
    """The mean of the passes' results (apply_model sums the shifted passes in order, then divides), handed on
    as far as every pass has got."""

    def __init__(self, passes: int, divide: bool):
        self.pending: list[list[np.ndarray]] = [[] for _ in range(passes)]
        self.divide = divide

    def push(self, k: int, data: np.ndarray) -> None:
        if data.shape[-1]:
            self.pending[k].append(data)

    def pop(self) -> np.ndarray | None:
        """The samples every pass has reached (None when some pass has none yet)."""
        parts = [np.concatenate(p, axis=-1) if len(p) > 1 else (p[0] if p else None) for p in self.pending]
        ready = min((p.shape[-1] if p is not None else 0) for p in parts)
        if ready == 0:
            return None
        total = parts[0][..., :ready]
        for p in parts[1:]:
            total = total + p[..., :ready]
        self.pending = [[p[..., ready:]] if p.shape[-1] > ready else [] for p in parts]
        return total / np.float32(len(parts)) if self.divide else total


class Runner:
    """Forward passes of one model on one device at one precision. On CUDA a batch's result is copied back
    asynchronously: `launch` returns at once, `result` waits, so the CPU prepares the next batch meanwhile."""

    def __init__(self, model, device: str, precision: str):
        import torch

        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.cuda = str(device).startswith("cuda")
        if precision != "fp32" and not self.cuda:
            raise ModelError(f"precision {precision} needs a CUDA device: on the CPU demucs runs in fp32")
        self.model, self.device, self.precision = model, device, precision
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        model.to(device)
        model.eval()

    def launch(self, inputs: np.ndarray):
        """Start the forward of (batch, channels, valid) inputs; the handle goes to `result`."""
        import torch

        with torch.inference_mode(), torch.autocast("cuda" if self.cuda else "cpu", dtype=self.dtype,
                                                    enabled=self.dtype is not None):
            out = self.model(torch.from_numpy(inputs).to(self.device)).float()
        if not self.cuda:
            return out.numpy()
        host = torch.empty(out.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(out, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def result(self, handle) -> np.ndarray:
        """(batch, sources, channels, valid) float32 of a launched forward."""
        if not self.cuda:
            return handle
        host, done = handle
        done.synchronize()
        return host.numpy()


_auto: dict[tuple, int] = {}
_auto_lock = threading.Lock()


def batch_size(runner: Runner, setting: int, channels: int, valid: int) -> int:
    """Segments per forward: `setting` when given, else CPU_BATCH on the CPU, else on CUDA as many as fit in
    AUTO_MEMORY_SHARE of the free device memory (one segment's memory measured by a forward of PROBE_BATCH
    segments, once per model, shape and precision), at most MAX_AUTO_BATCH."""
    if setting:
        return setting
    if not runner.cuda:
        return CPU_BATCH
    import torch

    key = (id(runner.model), channels, valid, runner.precision)
    with _auto_lock:
        if key not in _auto:
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            runner.result(runner.launch(np.zeros((PROBE_BATCH, channels, valid), np.float32)))
            per = max(1.0, (torch.cuda.max_memory_allocated() - before) / PROBE_BATCH)
            free, _ = torch.cuda.mem_get_info()
            _auto[key] = int(min(MAX_AUTO_BATCH, max(1, AUTO_MEMORY_SHARE * free // per)))
        return _auto[key]


def pieces(model, passes: list[Pass], seg: int, segment: float | None) -> Iterator[Piece]:
    """Every pass's segments, in time order: segment i of each pass, then segment i + 1."""
    stride = passes[0].stride
    for offset in range(0, max(p.frames for p in passes), stride):
        for k, p in enumerate(passes):
            if offset < p.frames:
                n = min(seg, p.frames - offset)
                valid = valid_length(model, segment, n)
                yield Piece(k, offset, n, offset - p.delay - (valid - n) // 2, valid)


def batches(items: Iterator[Piece], size: int) -> Iterator[list[Piece]]:
    """Runs of up to `size` pieces with one input length (a forward takes one shape)."""
    run: list[Piece] = []
    for item in items:
        if run and (len(run) == size or item.valid != run[0].valid):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def read_input(reader, start: int, count: int, mean: np.float32, std: np.float32) -> np.ndarray:
    """(channels, count) of the normalised input from frame `start`, zero outside it (as the padding of
    apply_model's normalised tensor)."""
    out = np.zeros((reader.channels, count), np.float32)
    a, b = max(0, start), min(reader.frames, start + count)
    if b > a:
        out[:, a - start:b - start] = ((reader.read(a, b - a) - mean) / std).T
    return out


def stream_apply(model, reader, mean: float, std: float, settings: SeparationSettings,
                 device: str) -> Iterator[tuple[int, np.ndarray]]:
    """`demucs.apply.apply_model(model, mix, shifts, split=True)` of the normalised `reader` ((n, channels) at the
    model's rate), streamed and batched: yields (start, (sources, channels, n) float32) in order, de-normalised.
    `settings` gives segment, overlap, shifts, batch_segments and precision."""
    seg = int(model.samplerate * float(settings.segment if settings.segment is not None else model.segment))
    stride = int((1 - settings.overlap) * seg)
    if seg <= 0 or stride <= 0:
        raise ValueError(f"segment {seg} and overlap {settings.overlap} give no stride")
    runner = Runner(model, device, settings.precision)
    max_shift = int(0.5 * model.samplerate)
    delays = [max_shift - random.randint(0, max_shift) for _ in range(settings.shifts)] or [0]
    shape = (len(model.sources), reader.channels)
    passes = [Pass(shape, reader.frames, d, stride, segment_weight(seg)) for d in delays]
    mean32, std32 = np.float32(mean), np.float32(std)      # as the whole-file call's float32 tensors
    merged, done = ShiftMean(len(passes), divide=settings.shifts > 0), 0
    size = batch_size(runner, settings.batch_segments, reader.channels,
                      valid_length(model, settings.segment, min(seg, reader.frames or 1)))
    pending = None
    for run in [*batches(pieces(model, passes, seg, settings.segment), size), None]:
        handle = None
        if run is not None:
            inputs = np.stack([read_input(reader, p.start, p.valid, mean32, std32) for p in run])
            handle = runner.launch(inputs)              # on CUDA it runs while the previous batch is summed
        if pending is not None:
            outs = runner.result(pending[1])
            for p, out in zip(pending[0], outs):
                trim = (p.valid - p.length) // 2         # demucs.utils.center_trim
                merged.push(p.k, passes[p.k].add(p.offset, out[..., trim:trim + p.length]))
            est = merged.pop()
            if est is not None:
                yield done, est * std32 + mean32
                done += est.shape[-1]
        pending = (run, handle) if run is not None else None
