"""Dialogue clean-up on DX, block by block, behind one small interface: noisereduce spectral gating, DeepFilterNet3
per channel, or none. M&E is mix − DX, so whatever the clean-up takes out of DX lands in M&E and the stems still
null against the mix.

`make_cleaner(method, strength, separation)` gives a `Cleaner`; `cleaner.clean(dx, rate, layout, workspace)`
returns the cleaned DX as a reader (a spill file in `workspace`, or `dx` itself for none).
"""
from __future__ import annotations

import dataclasses
import inspect
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np

from .config import SeparationSettings
from .layout import Layout
from .progress import relabel, report
from .readers import Reader, Workspace

AUTO = "auto"


def resolve_method(setting: str, model_kind: str) -> str:
    """The clean-up a run actually applies. `auto` is none after DFN3, which is itself a speech denoiser
    (noisereduce after it took 0.34 dB off the dialogue SI-SDR on the separation benchmark's 20 mixtures,
    +7.45 → +7.11 dB, for +0.09 dB of SDR, and spent ~14 % of the run: benchmarks/RESULTS.md), and
    noisereduce after a Demucs model, whose dialogue stem keeps the recording's noise; anything else is taken
    as given."""
    if setting != AUTO:
        return setting
    return "none" if model_kind == "dfn3" else "noisereduce"


def auto_reason(model_kind: str) -> str:
    """Why `auto` resolves as it does for `model_kind` (the run prints it beside the method)."""
    return "DFN3 is itself a speech denoiser" if model_kind == "dfn3" else "after a Demucs model"


@dataclass
class CleanupStats:
    """Running totals of one `NoiseReduce.blocks`, complete once its last block has been taken.

    `method`/`strength`: "none", 0.0 when nothing was cleaned (method "none", strength 0 or an all-zero DX);
    `removed_db` = level of what was removed relative to DX, dB.
    """

    method: str = "none"
    strength: float = 0.0
    dx_energy: float = 0.0       # sum of squares of DX, all channels
    removed_energy: float = 0.0  # sum of squares of DX − cleaned DX
    seconds: float = 0.0         # time spent inside the generator

    @property
    def removed_db(self) -> float:
        if self.removed_energy <= 0 or self.dx_energy <= 0:
            return float("-inf")
        return 10 * np.log10(self.removed_energy / self.dx_energy)


class Cleaner(Protocol):
    method: str      # "none" | "noisereduce" | "dfn3": what is applied

    def clean(self, dx: Reader, rate: int, layout: Layout, workspace: Workspace) -> Reader: ...


@dataclass(frozen=True)
class NoCleanup:
    method: str = "none"

    def clean(self, dx: Reader, rate: int, layout: Layout, workspace: Workspace) -> Reader:
        return dx


@dataclass(frozen=True)
class Dfn3Cleanup:
    """DeepFilterNet3 over each dialogue channel of `layout`'s groups (the LFE stays silent), with the run's
    DFN3 settings (`dfn3_atten_lim_db` honoured)."""

    separation: SeparationSettings
    method: str = "dfn3"

    def clean(self, dx: Reader, rate: int, layout: Layout, workspace: Workspace) -> Reader:
        from .separate_dfn3 import Dfn3Separator

        per_channel = Dfn3Separator(dataclasses.replace(self.separation, dfn3_pairs="channels",
                                                                      surround="all"))
        with relabel("cleanup"):
            return per_channel.separate(dx, rate, layout, workspace, name="dx-clean").dx


@dataclass(frozen=True)
class NoiseReduce:
    """noisereduce's non-stationary spectral gating (`prop_decrease=strength`), on noisereduce's own block grid.

    noisereduce cuts its input into blocks of `chunk_size` samples and filters each with `padding` samples of
    context either side (zeros beyond the ends), seamed without a crossfade; the blocks here are those blocks,
    so the output is the one a single whole-array call gives (tests/equivalence/test_stream_stages.py).
    `block_s`/`margin_s` (seconds) set another block and context; None takes noisereduce's own. Memory: one
    block plus its context (600000 + 2 x 30000 samples by default, 13.75 s at 48 kHz) per thread, whatever the
    reel's length. `threads` > 1 filters that many blocks at once (noisereduce's FFTs and numpy release the
    GIL: 1.5x faster on 2 cores, benchmarks/RESULTS.md); the output is the same bit for bit."""

    strength: float = 0.5
    threads: int = 1
    block_s: float | None = None
    margin_s: float | None = None
    method: str = "noisereduce"

    def clean(self, dx: Reader, rate: int, layout: Layout, workspace: Workspace) -> Reader:
        out = workspace.spill("dx-clean", dx.channels)
        for block in self.blocks(dx, rate):
            out.append(block)
            report("cleanup", out.frames, dx.frames)
        out.flush()
        return out

    def grid(self, rate: int) -> tuple[int, int]:
        """(block, margin) in samples."""
        nr_block, nr_margin = _noisereduce_grid()
        block = nr_block if self.block_s is None else round(self.block_s * rate)
        margin = nr_margin if self.margin_s is None else round(self.margin_s * rate)
        if block < 1 or margin < 0:
            raise ValueError(f"block_s must be > 0 and margin_s >= 0, got {self.block_s} and {self.margin_s}")
        return block, margin

    def blocks(self, reader: Reader, rate: int, stats: CleanupStats | None = None) -> Iterator[np.ndarray]:
        """Cleaned DX as consecutive float32 (n, channels) blocks covering exactly `reader.frames` samples
        (strength <= 0: DX unchanged, bit for bit); totals go into `stats` when given. Blocks are read and
        yielded in order by the calling thread (readers are not thread-safe), filtered in the pool."""
        start_t = time.perf_counter()
        frames = int(reader.frames)
        block, margin = self.grid(rate)
        stats = CleanupStats() if stats is None else stats
        # noisereduce: an input longer than one block is read as whole blocks (the last zero-padded);
        # an input of one block or less is one block of its own length
        length = block if frames > block else frames
        jobs = ((_block_input(reader, a, length, margin), min(frames, a + block) - a) for a in range(0, frames, block))
        if self.strength <= 0:
            jobs = ((seg[margin:margin + n], None) for seg, n in jobs)
        for out in self._filtered(jobs, margin, rate, stats):
            stats.seconds += time.perf_counter() - start_t
            yield out
            start_t = time.perf_counter()

    def _filtered(self, jobs, margin: int, rate: int, stats: CleanupStats) -> Iterator[np.ndarray]:
        workers = max(1, self.threads)
        with ThreadPoolExecutor(workers, thread_name_prefix="noisereduce") as pool:
            pending: deque[Future] = deque()
            for seg, n in jobs:
                if n is None:           # strength 0: the block itself, unchanged
                    yield seg
                    continue
                pending.append(pool.submit(_gate, seg, margin, n, rate, self.strength))
                if len(pending) == workers:
                    yield _collect(pending.popleft(), self.strength, stats)
            while pending:
                yield _collect(pending.popleft(), self.strength, stats)


def _collect(job: Future, strength: float, stats: CleanupStats) -> np.ndarray:
    out, dx_energy, removed_energy, gated = job.result()
    if gated:
        stats.method, stats.strength = "noisereduce", float(strength)
    stats.dx_energy += dx_energy
    stats.removed_energy += removed_energy
    return out


def make_cleaner(method: str, strength: float, separation: SeparationSettings, threads: int = 1) -> Cleaner:
    """The clean-up for `method` as resolve_method gives it; none when `strength` (the profile's noise
    reduction) is 0 or below."""
    if method == "none" or strength <= 0:
        return NoCleanup()
    if method == "dfn3":
        return Dfn3Cleanup(separation)
    if method == "noisereduce":
        return NoiseReduce(strength=strength, threads=threads)
    raise ValueError(f"unknown clean-up method {method!r}")


def _noisereduce_grid() -> tuple[int, int]:
    """(chunk_size, padding) in samples that `noisereduce.reduce_noise` uses by default, as installed
    (600000 and 30000 in noisereduce 3): the grid its single whole-array call processes DX on."""
    import noisereduce as nr

    params = inspect.signature(nr.reduce_noise).parameters
    return int(params["chunk_size"].default), int(params["padding"].default)


def _read_exact(reader: Reader, start: int, count: int) -> np.ndarray:
    block = np.asarray(reader.read(start, count), dtype=np.float32)
    if block.shape != (count, reader.channels):
        raise ValueError(f"reader returned {block.shape} for {count} samples at {start} "
                         f"of {reader.frames} x {reader.channels}")
    return block


def _block_input(reader: Reader, a: int, length: int, margin: int) -> np.ndarray:
    """DX over [a − margin, a + length + margin), zeros outside the audio: one noisereduce block with its
    context, as noisereduce reads it."""
    lo, hi = max(0, a - margin), min(reader.frames, a + length + margin)
    seg = np.zeros((length + 2 * margin, reader.channels), np.float32)
    seg[lo - (a - margin): hi - (a - margin)] = _read_exact(reader, lo, hi - lo)
    return seg


def _gate(seg: np.ndarray, margin: int, n: int, rate: int,
          strength: float) -> tuple[np.ndarray, float, float, bool]:
    """The `n` samples after `margin` in `seg` cleaned by noisereduce over the whole of `seg`; returns them with
    the block's DX energy, the removed energy and whether any channel was filtered."""
    import noisereduce as nr

    dx = seg[margin: margin + n]  # the block itself, without its context
    out = dx.copy()
    # only channels that carry sound here: an all-zero one turns into NaN (0 after nan_to_num) anyway
    active = [c for c in range(seg.shape[1]) if np.any(seg[:, c])]
    if active:
        cleaned = nr.reduce_noise(y=seg[:, active].T, sr=rate, prop_decrease=strength, stationary=False,
                                  n_jobs=1, chunk_size=None, padding=0)
        cleaned = np.asarray(cleaned, dtype=np.float32).reshape(len(active), -1).T
        out[:, active] = cleaned[margin: margin + n]
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    return (out, float(np.sum(np.square(dx, dtype=np.float64))),
            float(np.sum(np.square(dx - out, dtype=np.float64))), bool(active))
