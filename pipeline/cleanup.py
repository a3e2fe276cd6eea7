"""Dialogue clean-up on DX — noisereduce spectral gating or DeepFilterNet3 — with M&E recomputed as mix − DX.

Whatever the noise reduction takes out of DX lands in M&E, so DX + M&E still nulls against the mix.
"""
from __future__ import annotations

import inspect
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np

from .separate import Separation


class BlockReader(Protocol):
    """Audio read a block at a time: `frames` samples of `channels` channels in all."""

    frames: int
    channels: int

    def read(self, start: int, count: int) -> np.ndarray:
        """float32 (min(count, frames - start), channels) from sample `start`."""
        ...


@dataclass(frozen=True)
class CleanupResult:
    dx: np.ndarray          # cleaned dialogue (samples, channels) float32
    me: np.ndarray          # mix − cleaned dialogue
    method: str             # "noisereduce" | "none"
    strength: float         # noisereduce prop_decrease, 0..1
    removed_db: float       # level of what was removed relative to DX, dB (−inf when nothing)
    seconds: float


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


def _rms_db(x: np.ndarray) -> float:
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10 * np.log10(ms) if ms > 0 else float("-inf")


def _dfn3_cleanup(mix: np.ndarray, dx: np.ndarray, rate: int, start: float) -> CleanupResult:
    """DeepFilterNet3 over each dialogue channel (Demucs DX → DFN3: the high-quality combination)."""
    from .config import SeparationSettings
    from .separate import Dfn3Separator, resample

    dfn = Dfn3Separator(SeparationSettings())
    cleaned = dx.copy()
    for c in range(dx.shape[1]):
        if np.any(dx[:, c]):
            x = resample(dx[:, c:c + 1], rate, dfn.sample_rate)[:, 0]
            cleaned[:, c] = resample(dfn.enhance(x)[:, None], dfn.sample_rate, rate, length=dx.shape[0])[:, 0]
    removed_db = _rms_db(dx - cleaned) - _rms_db(dx)
    return CleanupResult(cleaned, (mix - cleaned).astype(np.float32), "dfn3", 1.0, removed_db,
                         time.perf_counter() - start)


def clean_dialogue(mix: np.ndarray, sep: Separation, rate: int, *, method: str = "noisereduce",
                   strength: float = 0.5) -> CleanupResult:
    """Clean `sep.dx`: "noisereduce" (non-stationary spectral gating, `prop_decrease=strength`), "dfn3"
    (DeepFilterNet3 per channel) or "none".

    `mix` and the stems are (samples, channels) at `rate` Hz. Returns the new DX and M&E = mix − DX.
    """
    start = time.perf_counter()
    if method == "none" or strength <= 0 or not np.any(sep.dx):
        return CleanupResult(sep.dx, sep.me, "none", 0.0, float("-inf"), time.perf_counter() - start)
    dx = sep.dx.copy()
    if method == "dfn3":
        return _dfn3_cleanup(mix, dx, rate, start)
    import noisereduce as nr

    # Only channels that carry dialogue: noisereduce divides by the smoothed spectrum, and an all-zero
    # channel (the LFE of a 5.1 DX) turns into NaN.
    active = [c for c in range(dx.shape[1]) if np.any(dx[:, c])]
    cleaned = nr.reduce_noise(y=dx[:, active].T, sr=rate, prop_decrease=strength, stationary=False, n_jobs=1)
    dx[:, active] = np.asarray(cleaned, dtype=np.float32).reshape(len(active), -1).T
    dx = np.nan_to_num(dx, nan=0.0, posinf=0.0, neginf=0.0)
    removed_db = _rms_db(sep.dx - dx) - _rms_db(sep.dx)
    return CleanupResult(dx, (mix - dx).astype(np.float32), method, strength, removed_db,
                         time.perf_counter() - start)


# --------------------------------------------------------------------------------------------------
# streaming: the same clean-up, a block at a time


@dataclass
class CleanupStats:
    """Running totals of one `clean_stream`, complete once its last block has been taken.

    `method`/`strength` as clean_dialogue reports them ("none", 0.0 when nothing was cleaned: method "none",
    strength 0 or an all-zero DX); `removed_db` = level of what was removed relative to DX, dB.
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


def _noisereduce_grid() -> tuple[int, int]:
    """(chunk_size, padding) in samples that `noisereduce.reduce_noise` uses by default, as installed
    (600000 and 30000 in noisereduce 3): the grid clean_dialogue's single call processes DX on."""
    import noisereduce as nr

    params = inspect.signature(nr.reduce_noise).parameters
    return int(params["chunk_size"].default), int(params["padding"].default)


def _read_exact(reader: BlockReader, start: int, count: int) -> np.ndarray:
    block = np.asarray(reader.read(start, count), dtype=np.float32)
    if block.shape != (count, reader.channels):
        raise ValueError(f"reader returned {block.shape} for {count} samples at {start} "
                         f"of {reader.frames} x {reader.channels}")
    return block


def clean_stream(reader: BlockReader, rate: int, *, method: str = "noisereduce", strength: float = 0.5,
                 block_s: float | None = None, margin_s: float | None = None,
                 stats: CleanupStats | None = None, threads: int = 1) -> Iterator[np.ndarray]:
    """Yield cleaned DX as consecutive float32 (n, channels) blocks covering exactly `reader.frames` samples.

    "none" (or `strength` <= 0): DX unchanged, bit for bit. "noisereduce": the call clean_dialogue makes
    (non-stationary, `prop_decrease=strength`, only channels not all zero, NaN → 0), block by block.
    noisereduce itself cuts its input into blocks of `chunk_size` samples and filters each with `padding`
    samples of context either side (zeros beyond the ends), seamed without a crossfade; the blocks here are
    those blocks. `block_s`/`margin_s` (seconds) set the block and the context; None (the default) takes
    noisereduce's own, which makes the output identical to clean_dialogue's. Memory: one block plus its
    context (600000 + 2 x 30000 samples by default, 13.75 s at 48 kHz), whatever the reel's length.
    `threads` > 1 filters that many blocks at once in a thread pool (noisereduce's FFTs and numpy release the
    GIL: 1.5x faster on 2 cores, measured in benchmarks/RESULTS.md), each with its own block's memory; the
    blocks are read and yielded in order by the calling thread, and the output is the same bit for bit.
    Totals (method, removed_db) go into `stats` when given. "dfn3" is not streamed here: ValueError.
    """
    start_t = time.perf_counter()
    frames = int(reader.frames)
    if method == "none" or strength <= 0:
        method = "none"
    elif method != "noisereduce":
        raise ValueError(f"clean_stream runs noisereduce or none, not {method!r}")
    nr_block, nr_margin = _noisereduce_grid()
    block = nr_block if block_s is None else round(block_s * rate)
    margin = nr_margin if margin_s is None else round(margin_s * rate)
    if block < 1 or margin < 0:
        raise ValueError(f"block_s must be > 0 and margin_s >= 0, got {block_s} and {margin_s}")
    stats = CleanupStats() if stats is None else stats
    # noisereduce: an input longer than one block is read as whole blocks (the last zero-padded);
    # an input of one block or less is one block of its own length
    length = block if frames > block else frames
    starts = range(0, frames, block)
    workers = max(1, threads)

    def collect(job: Future) -> np.ndarray:
        out, dx_energy, removed_energy, gated = job.result()
        if gated:
            stats.method, stats.strength = "noisereduce", float(strength)
        stats.dx_energy += dx_energy
        stats.removed_energy += removed_energy
        return out

    def blocks() -> Iterator[np.ndarray]:
        if method == "none":
            for a in starts:
                yield _read_exact(reader, a, min(frames, a + block) - a)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="noisereduce") as pool:
            pending: deque[Future] = deque()
            for a in starts:        # read here (readers are not thread-safe), filter in the pool, yield in order
                seg = _block_input(reader, a, length, margin)
                pending.append(pool.submit(_gate, seg, margin, min(frames, a + block) - a, rate, strength))
                if len(pending) == workers:
                    yield collect(pending.popleft())
            while pending:
                yield collect(pending.popleft())

    for out in blocks():
        stats.seconds += time.perf_counter() - start_t
        yield out
        start_t = time.perf_counter()


def _block_input(reader: BlockReader, a: int, length: int, margin: int) -> np.ndarray:
    """DX over [a − margin, a + length + margin), zeros outside the audio: one noisereduce block with its
    context, as noisereduce reads it."""
    lo, hi = max(0, a - margin), min(reader.frames, a + length + margin)
    seg = np.zeros((length + 2 * margin, reader.channels), np.float32)
    seg[lo - (a - margin): hi - (a - margin)] = _read_exact(reader, lo, hi - lo)
    return seg


def _gate(seg: np.ndarray, margin: int, n: int, rate: int, strength: float) -> tuple[np.ndarray, float, float, bool]:
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
