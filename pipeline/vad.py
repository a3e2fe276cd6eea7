"""Speech regions with silero-vad: per-frame speech probability, regions in seconds, and the BS.1770
gating blocks that hold speech (for dialogue-gated loudness). Audio is read block by block from a reader
(pipeline.readers); an in-memory array is read through an ArrayReader, the same code.
"""
from __future__ import annotations

import functools
import math
import threading
import warnings
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import soxr

from .errors import ModelError
from .layout import find_layout
from .progress import report
from .readers import ArrayReader

SR = 16_000  # silero-vad's rate
WIN = 512  # samples per model frame at 16 kHz: one probability per 32 ms
FRAME_S = WIN / SR
_LANE_FRAMES = 1024  # a chunk is cut into lanes of <= 1024 frames (32.8 s) run as one batch
_WARM_FRAMES = 32  # each lane first runs over the 1.02 s before it (silence at the start); not returned
_LOCK = threading.Lock()  # the model keeps its recurrent state between calls


@dataclass(frozen=True)
class Region:
    """A stretch of speech, [start_s, end_s) in seconds from the start of the audio."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def __iter__(self):  # unpacks as a (start_s, end_s) pair: `for start, end in regions`
        return iter((self.start_s, self.end_s))


RegionLike = Region | tuple[float, float]


# --------------------------------------------------------------------------------------------------
# the model


@functools.lru_cache(maxsize=1)
def _model():
    """silero-vad's TorchScript model, from the wheel (no download), loaded once per process."""
    try:
        import torch

        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad

            with warnings.catch_warnings():  # its loader's DeprecationWarnings (importlib path, torch.jit.load)
                warnings.simplefilter("ignore", DeprecationWarning)
                return load_silero_vad()
        finally:    # silero_vad/model.py calls torch.set_num_threads(1) when imported: for the whole process,
            torch.set_num_threads(threads)      # so every later separation would run on one thread
    except Exception as exc:  # ImportError, a damaged wheel, a torch mismatch
        raise ModelError(f"cannot load silero-vad: {exc} (pip install silero-vad)") from exc


def _model_probs(batch) -> np.ndarray:
    """Speech probabilities float32 (lanes, frames) of independent lanes, a float32 tensor (lanes, frames * WIN)
    at 16 kHz, each starting from a reset state. Holds the lock and one torch thread while it runs."""
    import torch

    model = _model()
    lanes, n_frames = batch.shape[0], batch.shape[1] // WIN
    out = torch.empty((lanes, n_frames))
    with _LOCK, torch.inference_mode():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model.reset_states()
            for i in range(n_frames):  # the model takes one 512-sample frame per lane per call
                out[:, i] = model(batch[:, i * WIN : (i + 1) * WIN], SR)[:, 0]
            model.reset_states()
        finally:
            torch.set_num_threads(threads)
    return out.numpy()


# --------------------------------------------------------------------------------------------------
# audio in, probabilities out


def _check(audio: np.ndarray, rate: int) -> np.ndarray:
    x = np.asarray(audio)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[1] < 1 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio must be float (samples, channels), got {x.dtype} {np.shape(audio)}")
    if int(rate) != rate or rate <= 0:
        raise ValueError(f"sample rate must be a positive whole number of Hz, got {rate!r}")
    return x


def _mono_16k_read(read, frames: int, n_ch: int, rate: int, block: int) -> Iterator[np.ndarray]:
    """The downmix of audio `frames` x `n_ch` got through `read(start, count)`, `block` samples a call,
    resampled to 16 kHz (soxr HQ), float32: the mean of the channels, without the LFE of the usual layout for
    the count (5.1: L R C Ls Rs)."""
    lay = find_layout(None, n_ch)
    keep = list(lay.full_band) if lay is not None else list(range(n_ch))   # the LFE left out
    weights = np.zeros(n_ch, np.float32)
    weights[keep] = 1.0 / len(keep)
    stream = None if rate == SR else soxr.ResampleStream(rate, SR, 1, dtype="float32", quality="HQ")
    for a in range(0, frames, block):
        x = np.asarray(read(a, min(block, frames - a)))
        if x.shape != (min(block, frames - a), n_ch):
            raise ValueError(f"reader returned {x.shape} for {min(block, frames - a)} samples at {a} "
                             f"of {frames} x {n_ch}")
        mono = (x @ weights).astype(np.float32, copy=False)
        yield mono if stream is None else stream.resample_chunk(mono, last=a + block >= frames)
        report("vad", a + x.shape[0], frames)      # read and taken (the model runs chunk_s at a time)


def _chunk_probs(history: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """Frame probabilities (ceil(len(chunk) / WIN),) of 16 kHz `chunk`; `history` (the _WARM_FRAMES * WIN
    samples before it) warms each lane's state up, so results do not depend on where chunks are cut."""
    n_frames = -(-chunk.size // WIN)
    lanes = -(-n_frames // _LANE_FRAMES)
    per = -(-n_frames // lanes)  # frames per lane
    warm = history.size
    ext = np.zeros(warm + lanes * per * WIN, np.float32)
    ext[:warm], ext[warm : warm + chunk.size] = history, chunk
    import torch

    # lane b: its warm-up and its `per` frames, as overlapping views of `ext` (no copy)
    batch = torch.from_numpy(ext).as_strided((lanes, warm + per * WIN), (per * WIN, 1))
    return _model_probs(batch)[:, _WARM_FRAMES:].reshape(-1)[:n_frames]


def _pieces_probs(pieces: Iterable[np.ndarray], chunk_s: float) -> tuple[np.ndarray, int]:
    """Per-32 ms-frame speech probabilities float32 (frames,) of 16 kHz mono audio that arrives as `pieces` of
    any length, and its length in samples. Run `chunk_s` at a time (memory O(chunk) beyond the result); model
    state is reset per chunk and per lane, after a warm-up over the audio just before it."""
    chunk = max(1, round(chunk_s * SR / WIN)) * WIN
    history = np.zeros(_WARM_FRAMES * WIN, np.float32)  # silence before the start
    pending, have, parts, total = [], 0, [], 0
    for piece in pieces:
        pending.append(piece)
        have, total = have + piece.size, total + piece.size
        while have >= chunk:
            buf, pending = np.concatenate(pending), []
            parts.append(_chunk_probs(history, buf[:chunk]))
            tail = buf[max(0, chunk - history.size) : chunk]
            history = np.concatenate([history[tail.size :], tail])  # copies: buf can be freed
            pending, have = [buf[chunk:].copy()], buf.size - chunk
    if have:
        parts.append(_chunk_probs(history, np.concatenate(pending)))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), total


@dataclass(frozen=True)
class Hysteresis:
    """silero-vad's own hysteresis (`get_speech_timestamps_from_probs`): speech starts at >= threshold, ends
    after min_silence_s below threshold - 0.15; regions under min_speech_s dropped, pad_s added each side."""

    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    pad_s: float = 0.03


def _frames(source, rate: int, chunk_s: float, block_s: float) -> tuple[np.ndarray, int, int]:
    """(frame probabilities, 16 kHz length, source frames) of a reader or (samples, channels) array."""
    if isinstance(source, np.ndarray) or not hasattr(source, "read"):
        source = ArrayReader(_check(source, rate))
    frames, n_ch = int(source.frames), int(source.channels)
    if int(rate) != rate or rate <= 0:
        raise ValueError(f"sample rate must be a positive whole number of Hz, got {rate!r}")
    if n_ch < 1 or frames < 0:
        raise ValueError(f"reader must hold (samples, channels) audio, got {frames} x {n_ch}")
    if chunk_s <= 0 or block_s <= 0:
        raise ValueError(f"chunk_s and block_s must be > 0, got {chunk_s} and {block_s}")
    pieces = _mono_16k_read(source.read, frames, n_ch, int(rate), block=max(1, math.ceil(block_s * rate)))
    probs, n16 = _pieces_probs(pieces, chunk_s)
    return probs, n16, frames


def speech_probability(source, rate: int, hop_s: float = FRAME_S, *, chunk_s: float = 600.0) -> np.ndarray:
    """Speech probability in [0, 1], float32 (frames,): value i covers [i * hop_s, (i + 1) * hop_s).

    `source` is a block reader or a (samples, channels) float array at `rate` Hz (the downmix as in
    `speech_regions`). `hop_s` must be a whole number of silero frames (32 ms); a longer hop takes the largest
    probability of its frames.
    """
    k = round(hop_s / FRAME_S)
    if k < 1 or abs(k * FRAME_S - hop_s) > 1e-9:
        raise ValueError(f"hop_s must be a whole multiple of {FRAME_S} s, got {hop_s}")
    probs, _, _ = _frames(source, rate, chunk_s, 10.0)
    if k > 1:
        padded = np.zeros(-(-probs.size // k) * k, np.float32)
        padded[: probs.size] = probs
        probs = padded.reshape(-1, k).max(axis=1)
    return probs


def speech_regions(source, rate: int, *, hysteresis: Hysteresis = Hysteresis(), chunk_s: float = 600.0,
                   block_s: float = 10.0) -> tuple[Region, ...]:
    """Speech regions, sorted, in seconds, of a block reader (`frames`, `channels`, `read(start, count)`
    giving float (samples, channels) at `rate` Hz) or of a (samples, channels) float array (read through an
    in-memory reader: the same code).

    Read `block_s` at a time, each sample once; downmixed to mono (the mean of the channels without the LFE),
    resampled to 16 kHz (soxr), then silero-vad gives a probability per 32 ms frame and its hysteresis runs
    over the whole input at once, so regions continue across chunk edges. The model runs `chunk_s` of audio
    at a time, cut into ~33 s lanes run as one batch: about 0.15 s per minute of audio on one CPU thread.
    Memory beyond the result (4 bytes per 32 ms): one read block plus about 0.2 MB per second of chunk.
    """
    probs, n16, frames = _frames(source, rate, chunk_s, block_s)
    return _probs_regions(probs, n16, frames / int(rate), hysteresis)


def speech_regions_at(source, rate: int, hystereses: tuple[Hysteresis, ...], *, chunk_s: float = 600.0,
                      block_s: float = 10.0) -> list[tuple[Region, ...]]:
    """`speech_regions` under each of several hystereses (e.g. thresholds), from one pass of the model."""
    probs, n16, frames = _frames(source, rate, chunk_s, block_s)
    return [_probs_regions(probs, n16, frames / int(rate), h) for h in hystereses]


def _probs_regions(probs: np.ndarray, n16: int, duration: float, h: Hysteresis) -> tuple[Region, ...]:
    """Regions, clipped to [0, duration], from frame probabilities of `n16` samples at 16 kHz."""
    from silero_vad import get_speech_timestamps_from_probs

    stamps = get_speech_timestamps_from_probs(
        probs.tolist(), sampling_rate=SR, threshold=h.threshold, min_speech_duration_ms=h.min_speech_s * 1000,
        min_silence_duration_ms=h.min_silence_s * 1000, speech_pad_ms=h.pad_s * 1000, audio_length_samples=n16)
    return tuple(Region(max(0.0, s["start"] / SR), min(duration, s["end"] / SR)) for s in stamps)


# --------------------------------------------------------------------------------------------------
# regions


def _regions(regions: Iterable[RegionLike]) -> list[Region]:
    """Regions (or (start_s, end_s) pairs) sorted by start, empty ones dropped."""
    out = [r if isinstance(r, Region) else Region(*map(float, r)) for r in regions]
    return sorted((r for r in out if r.end_s > r.start_s), key=lambda r: r.start_s)


def merge_regions(regions: Iterable[RegionLike], max_gap_s: float = 0.0) -> tuple[Region, ...]:
    """Sorted, disjoint regions: overlapping ones and those at most `max_gap_s` apart (1 ns tolerance) joined."""
    out: list[Region] = []
    for r in _regions(regions):
        if out and r.start_s - out[-1].end_s <= max_gap_s + 1e-9:
            out[-1] = Region(out[-1].start_s, max(out[-1].end_s, r.end_s))
        else:
            out.append(r)
    return tuple(out)


def _speech_time(regions: Iterable[RegionLike], t: np.ndarray) -> np.ndarray:
    """Seconds of speech in [0, t) for each t (the union of the regions counted once)."""
    merged = merge_regions(regions)
    if not merged:
        return np.zeros(np.shape(t))
    edges = np.array([(r.start_s, r.end_s) for r in merged]).ravel()
    covered = np.cumsum([0.0] + [v for r in merged for v in (r.duration_s, 0.0)])[:-1]
    return np.interp(t, edges, covered)


def speech_fraction(regions: Iterable[RegionLike], duration_s: float) -> float:
    """The share of [0, duration_s) covered by speech, in [0, 1]; 0.0 for an empty programme."""
    if duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    if duration_s == 0:
        return 0.0
    return float(_speech_time(regions, np.array([duration_s]))[0]) / duration_s


def block_mask(regions: Iterable[RegionLike], n_blocks: int, block_s: float = 0.4, hop_s: float = 0.1
               ) -> np.ndarray:
    """bool (n_blocks,): True where gating block k, covering [k * hop_s, k * hop_s + block_s), holds at least
    block_s / 2 of speech (BS.1770-4 eq. 3 blocks by default: 400 ms every 100 ms, as LoudnessMeter.gating_blocks).

    Rule: a block counts as dialogue when speech fills half of it or more (1 µs tolerance), so a block
    straddling the edge of a line belongs to the side that holds most of it.
    """
    starts = np.arange(int(n_blocks)) * hop_s
    covered = _speech_time(regions, starts + block_s) - _speech_time(regions, starts)
    return covered >= block_s / 2 - 1e-6
