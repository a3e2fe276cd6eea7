"""Block-by-block audio: on-disk spill files, ffmpeg decode and encode pipes, streaming resampling, and
separation over overlapping blocks, so that memory stays flat however long the reel.

A reel's audio is never held whole: ffmpeg decodes into a raw float32 spill file (`RawFile`, in the title's
work folder), every later stage reads it back in blocks, and stems go out through ffmpeg encode pipes. Only
small per-block figures (loudness per 100 ms, speech regions) grow with the length.

Separation block by block gives the same result as separating the whole file (tests/test_stream.py):
- Demucs: `apply_model(split=True)` is itself a sum of overlapping segments (`segment` long, `(1 - overlap) ×
  segment` apart), each crossfaded into its neighbours by a triangular weight. `stream_apply` runs exactly those
  segments, in order, each read from the spill file with the context apply_model would give it, and writes out
  every sample no later segment reaches: the whole-file result, segment by segment, with demucs's own crossfade
  at every join. The input normalisation (demucs.api's mean/std of the mono mix) is measured over the whole
  group in a first pass, as the whole-file call does. A bag of models runs one such pass per model. With
  `shifts > 0` demucs shifts each call at random, so no two runs (whole or streamed) are equal.
- DFN3: its runtime is a streaming one (`process_chunk` keeps its state), fed the same chunks in the same order;
  the pan placement of a pair's mid signal needs one second of look-ahead.
Resampling uses soxr's streaming resampler (`soxr.ResampleStream`), the same engine as one-shot `soxr.resample`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import ffmpeg as tf  # typed-ffmpeg
import numpy as np
import soxr

from .errors import MediaError
from .ffmpeg import add_output_options, finish, popen_reader, popen_writer
from .layout import get_layout
from .media import AudioStream
from .outputs import PARTIAL_MARK, atomic_output

BLOCK_S = 10.0          # default block length of the streaming stages, seconds
_READ_FRAMES = 1 << 16  # frames per pipe read


def _raw_bytes(block: np.ndarray) -> memoryview | bytes:
    """A C-contiguous array's own bytes, for a file or pipe write without the copy tobytes() makes."""
    return memoryview(block).cast("B") if block.size else b""


class Reader:
    """What every block reader here has: `frames`, `channels`, `read(start, count)` (clipped to the end) and
    consecutive `blocks(size)`."""

    frames: int
    channels: int

    def read(self, start: int, count: int) -> np.ndarray:
        raise NotImplementedError

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.frames, max(1, int(size))):
            yield self.read(start, size)


class RawFile(Reader):
    """A float32 interleaved (samples, channels) spill file: append blocks, read any range back.

    Reads and writes go through the file (no memory map), so reading a 2-hour file block by block keeps the
    process's resident memory at one block. Not thread-safe: one RawFile per thread.
    """

    def __init__(self, path: Path, channels: int, *, create: bool = True):
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.path, self.channels = Path(path), int(channels)
        self._fh = open(self.path, "w+b" if create else "r+b")
        self._frame_bytes = 4 * self.channels
        self.frames = os.fstat(self._fh.fileno()).st_size // self._frame_bytes

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype="<f4")
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"{self.path.name}: block of shape {block.shape}, expected (n, {self.channels})")
        self._fh.seek(self.frames * self._frame_bytes)
        self._fh.write(_raw_bytes(block))
        self.frames += block.shape[0]

    def write_at(self, start: int, block: np.ndarray) -> None:
        """Overwrite (or extend) samples from `start`; `start` must be <= frames."""
        block = np.ascontiguousarray(block, dtype="<f4")
        if start > self.frames or block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"{self.path.name}: cannot write {block.shape} at {start} of {self.frames}")
        self._fh.seek(start * self._frame_bytes)
        self._fh.write(_raw_bytes(block))
        self.frames = max(self.frames, start + block.shape[0])

    def read(self, start: int, count: int) -> np.ndarray:
        """Samples [start, start + count) clipped to the file, as float32 (n, channels)."""
        start = max(0, int(start))
        count = max(0, min(int(count), self.frames - start))
        self._fh.seek(start * self._frame_bytes)
        out = np.empty((count, self.channels), dtype="<f4")   # read straight into the array: one copy, not two
        got = self._fh.readinto(memoryview(out).cast("B")) if count else 0
        return out[: got // self._frame_bytes].astype(np.float32, copy=False)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> "RawFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def spill_path(folder: Path, name: str) -> Path:
    """A spill file's path in `folder`, named as a partial file so `outputs.remove_partials` clears what a
    killed run left behind."""
    return Path(folder) / f".{name}{PARTIAL_MARK}{os.getpid()}.f32"


class WavReader(Reader):
    """The RawFile reading interface over a WAV/RF64 file (soundfile), read in blocks."""

    def __init__(self, path: Path):
        import soundfile as sf

        self.path = Path(path)
        self._sf = sf.SoundFile(str(self.path))
        self.frames, self.channels, self.rate = self._sf.frames, self._sf.channels, self._sf.samplerate

    def read(self, start: int, count: int) -> np.ndarray:
        start = max(0, int(start))
        self._sf.seek(min(start, self.frames))
        return self._sf.read(max(0, min(int(count), self.frames - start)), dtype="float32", always_2d=True)

    def close(self) -> None:
        self._sf.close()


class Mapped(Reader):
    """A reader whose blocks are `fn(block)` of another's (e.g. a downmix); `channels` is fn's output width."""

    def __init__(self, reader, fn: Callable[[np.ndarray], np.ndarray], channels: int):
        self.reader, self.fn, self.channels, self.frames = reader, fn, channels, reader.frames

    def read(self, start: int, count: int) -> np.ndarray:
        return np.asarray(self.fn(self.reader.read(start, count)), dtype=np.float32)


class Difference(Reader):
    """A reader of `a − b` (M&E = mix − DX) over two aligned readers."""

    def __init__(self, a, b):
        self.a, self.b, self.channels, self.frames = a, b, a.channels, a.frames

    def read(self, start: int, count: int) -> np.ndarray:
        return (self.a.read(start, count) - self.b.read(start, count)).astype(np.float32)


class ArrayReader(Reader):
    """The RawFile reading interface over an in-memory (samples, channels) array (tests, small inputs)."""

    def __init__(self, audio: np.ndarray):
        self.audio = np.asarray(audio, dtype=np.float32)
        if self.audio.ndim == 1:
            self.audio = self.audio[:, None]
        self.frames, self.channels = self.audio.shape

    def read(self, start: int, count: int) -> np.ndarray:
        start = max(0, int(start))
        return self.audio[start:start + max(0, int(count))]


class Resampler:
    """Streaming soxr (VHQ) resampler of (n, channels) float32 blocks; identity when the rates are equal.
    `push(block)` returns what is ready, `flush()` the rest; `length` (if given) pads/trims the total."""

    def __init__(self, rate_in: int, rate_out: int, channels: int, length: int | None = None):
        self.identity = rate_in == rate_out
        self.channels, self.length, self.done = channels, length, 0
        self._rs = None if self.identity else soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32",
                                                                  quality="VHQ")

    def _limit(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, dtype=np.float32).reshape(-1, self.channels)
        if self.length is not None:
            out = out[:max(0, self.length - self.done)]
        self.done += out.shape[0]
        return out

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1, self.channels)
        if self.identity:
            return self._limit(block)
        return self._limit(self._rs.resample_chunk(block, last=last))

    def flush(self) -> np.ndarray:
        out = self.push(np.zeros((0, self.channels), np.float32), last=True)
        if self.length is not None and self.done < self.length:
            pad = np.zeros((self.length - self.done, self.channels), np.float32)
            self.done = self.length
            out = np.concatenate([out, pad])
        return out


def resample_file(src, dst: RawFile, rate_in: int, rate_out: int, *, block: int = 1 << 18,
                  length: int | None = None) -> RawFile:
    """Resample a reader into `dst` block by block (soxr streaming)."""
    rs = Resampler(rate_in, rate_out, src.channels, length)
    for chunk in src.blocks(block):
        dst.append(rs.push(chunk))
    dst.append(rs.flush())
    return dst


# ------------------------------------------------------------------------------------------------ ffmpeg I/O

def extract_to_raw(path: Path, stream: AudioStream, raw: RawFile, *, rate_out: int | None = None,
                   timeout: float | None = None) -> RawFile:
    """Decode audio stream `stream` of `path` through a pipe into `raw` (float32 at the stream's rate, or
    resampled to `rate_out` with soxr as it arrives). The same checks as `audio.extract`: a stream with no
    samples, undecodable packets or less audio than declared is a MediaError."""
    src = tf.input(str(Path(path).resolve()))
    cmd = (
        tf.output(src.audio_stream(stream.audio_index), filename="pipe:1", f="f32le", acodec="pcm_f32le",
                  ac=stream.channels, ar=stream.sample_rate)
        .global_args(hide_banner=True, loglevel="error")
        .compile()
    )
    rs = Resampler(stream.sample_rate, rate_out or stream.sample_rate, stream.channels)
    frame = 4 * stream.channels
    proc = popen_reader(cmd, timeout=timeout)
    assert proc.stdout is not None
    carry, decoded = b"", 0
    try:
        while data := proc.stdout.read(_READ_FRAMES * frame):
            data = carry + data
            usable = len(data) - len(data) % frame
            carry = data[usable:]
            block = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, stream.channels)
            decoded += block.shape[0]
            raw.append(rs.push(block))
        raw.append(rs.flush())
    finally:
        stderr = finish(proc, timeout=timeout, path=path)
    errors = stderr.count("Error while decoding")
    if decoded == 0:
        raise MediaError("the audio stream decoded to no samples", path)
    if errors:
        raise MediaError(f"damaged audio: {errors} packet(s) could not be decoded (corrupt data)", path)
    declared, got = stream.duration_s, decoded / stream.sample_rate
    if declared and declared - got > max(0.05, 0.01 * declared):
        raise MediaError(f"damaged audio: decoded only {got:.2f} s of the {declared:.2f} s the file declares "
                         "(truncated or corrupt)", path)
    raw.flush()
    return raw


class WavWriter:
    """A broadcast WAV (bext, channel mask, RF64 past 4 GB) written block by block through an ffmpeg pipe, to a
    temporary name that is renamed only when the file is complete (`close()`); `abort()` removes it."""

    def __init__(self, path: Path, rate: int, layout: str, channels: int, *, bit_depth: int = 24,
                 description: str = "", originator: str = "reelsplit", timeout: float | None = None):
        from .audio import PCM_CODECS

        self.path, self.channels, self.timeout = Path(path), channels, timeout
        self.frames = 0
        self._atomic = atomic_output(self.path)
        tmp = self._atomic.__enter__()
        now = dt.datetime.now()
        src = tf.input("pipe:0", f="f32le", ar=rate, ac=channels, extra_options={"ch_layout": get_layout(layout, channels).ffmpeg})
        cmd = (
            tf.output(src.audio, filename=str(tmp), f="wav", acodec=PCM_CODECS[bit_depth],
                      extra_options={"write_bext": 1, "rf64": "auto"})
            .global_args(hide_banner=True, loglevel="error", y=True)
            .compile()
        )
        cmd = add_output_options(cmd, [
            ("-metadata", f"description={description[:256]}"),
            ("-metadata", f"originator={originator[:32]}"),
            ("-metadata", f"origination_date={now:%Y-%m-%d}"),
            ("-metadata", f"origination_time={now:%H:%M:%S}"),
        ])
        self._proc = popen_writer(cmd, timeout=timeout)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype="<f4")
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"{self.path.name}: block of shape {block.shape}, expected (n, {self.channels})")
        try:
            self._proc.stdin.write(_raw_bytes(block))
        except BrokenPipeError:
            self._fail()
        self.frames += block.shape[0]

    def _fail(self) -> None:
        try:
            finish(self._proc, timeout=self.timeout, path=self.path)   # raises with ffmpeg's message
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        raise MediaError("ffmpeg stopped reading the audio", self.path)

    def close(self) -> Path:
        try:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
            finish(self._proc, timeout=self.timeout, path=self.path)
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._proc.kill()
            self._proc.communicate()
        with contextlib.suppress(Exception):
            err = RuntimeError("aborted")
            self._atomic.__exit__(RuntimeError, err, None)


# ------------------------------------------------------------------------------------------------ separation

@dataclass(frozen=True)
class StreamSeparation:
    """Stems written to spill files at the source rate, each (samples, channels) like the mix: `dx` always,
    `mx`/`fx` when the model has them; M&E is mix − DX, computed when read."""

    dx: RawFile
    mx: RawFile | None
    fx: RawFile | None
    model: str
    seconds: float
    blocks: int


def _stats(reader, block: int) -> tuple[float, float]:
    """Mean and sample standard deviation (as torch.std) of the mono mean of `reader`'s channels."""
    n, s, ss = 0, 0.0, 0.0
    for chunk in reader.blocks(block):
        ref = chunk.astype(np.float64).mean(axis=1)
        n, s, ss = n + ref.size, s + ref.sum(), ss + np.dot(ref, ref)
    if n < 2:
        return (s / n if n else 0.0), 0.0
    mean = s / n
    return mean, math.sqrt(max(0.0, (ss - n * mean * mean) / (n - 1)))


def segment_weight(segment_length: int, transition_power: float = 1.0) -> np.ndarray:
    """apply_model's triangular transition weight for one segment (demucs/apply.py)."""
    half = segment_length // 2
    w = np.concatenate([np.arange(1, half + 1), np.arange(segment_length - half, 0, -1)]).astype(np.float32)
    return (w / w.max()) ** transition_power


def stream_apply(model, reader, *, mean: float, std: float, segment: float | None, overlap: float,
                 shifts: int, device: str) -> Iterator[tuple[int, np.ndarray]]:
    """`demucs.apply.apply_model(model, mix, split=True)` for one (non-bag) model, streamed: each segment is
    read from `reader` (model rate, (n, channels)) with the context apply_model would give it, separated,
    weighted by the same triangle and summed; samples no later segment reaches are yielded as
    (start, (sources, channels, n) float32), de-normalised. Memory: a few segments."""
    import torch
    from demucs.apply import apply_model
    from demucs.apply import TensorChunk

    length = reader.frames
    mean, std = np.float32(mean), np.float32(std)      # as the whole-file call's float32 tensors
    seg = int(model.samplerate * float(segment if segment is not None else model.segment))
    stride = int((1 - overlap) * seg)
    if seg <= 0 or stride <= 0:
        raise ValueError(f"segment {seg} and overlap {overlap} give no stride")
    weight = segment_weight(seg)
    n_src, ch = len(model.sources), reader.channels
    acc = np.zeros((n_src, ch, 0), np.float32)     # sums for samples [base, base + acc.shape[-1])
    wsum = np.zeros(0, np.float32)
    base = 0
    for offset in range(0, length, stride):
        w0, w1 = max(0, offset - seg), min(length, offset + 2 * seg)   # the context .padded() may take
        window = torch.from_numpy(np.ascontiguousarray(((reader.read(w0, w1 - w0) - mean) / std).T))[None]
        chunk = TensorChunk(window, offset - w0, seg)
        with torch.inference_mode():
            out = apply_model(model, chunk, shifts=shifts, split=False, overlap=overlap, device=device,
                              segment=segment, progress=False)
        out = out[0].float().cpu().numpy()             # (sources, channels, n)
        n = out.shape[-1]
        need = offset + n - base
        if need > acc.shape[-1]:
            acc = np.concatenate([acc, np.zeros((n_src, ch, need - acc.shape[-1]), np.float32)], axis=-1)
            wsum = np.concatenate([wsum, np.zeros(need - wsum.size, np.float32)])
        acc[..., offset - base:offset - base + n] += weight[:n] * out
        wsum[offset - base:offset - base + n] += weight[:n]
        final = min(offset + stride, length) - base       # no later segment starts before offset + stride
        if final > 0:
            yield base, acc[..., :final] / wsum[:final] * std + mean
            acc, wsum, base = acc[..., final:], wsum[final:], base + final
    if acc.shape[-1]:
        yield base, acc / wsum * std + mean


def separate_demucs_stream(sep, mix, rate: int, layout: str, work: Path) -> StreamSeparation:
    """Demucs segment by segment (see the module docstring); `sep` is a `separate.DemucsSeparator`.
    A bag of models runs one streamed pass per model into a weighted spill file, as apply_model sums them."""
    from .separate import _groups

    start = time.perf_counter()
    model_rate = sep.sample_rate
    targets = sorted(set(sep.targets.values()) | {"DX"})
    groups = _groups(layout, mix.channels)
    models = list(getattr(sep.model, "models", None) or [sep.model])
    bag_weights = getattr(sep.model, "weights", None) or [[1.0] * len(sep.sources)]
    totals = np.sum(np.asarray(bag_weights, np.float32), axis=0)
    group_files: dict[tuple[str, int], RawFile] = {}
    n_blocks = 0
    for gi, group in enumerate(groups):
        at_model = resample_file(_Columns(mix, group), RawFile(spill_path(work, f"g{gi}-in"), len(group)), rate,
                                 model_rate)
        mean, std = _stats(at_model, 1 << 18)
        files = {t: RawFile(spill_path(work, f"g{gi}-{t}"), len(group)) for t in targets}
        group_files.update({(t, gi): f for t, f in files.items()})
        back = {t: Resampler(model_rate, rate, len(group), length=mix.frames) for t in targets}

        def to_targets(est: np.ndarray) -> dict[str, np.ndarray]:
            stems = {t: np.zeros((est.shape[-1], len(group)), np.float32) for t in targets}
            for k, source in enumerate(sep.sources):
                stems[sep.targets[source]] += est[k].T
            return stems

        def estimates() -> Iterator[np.ndarray]:
            if std < 1e-6:      # digital silence: no model call, all stems silent
                for s in range(0, at_model.frames, 1 << 18):
                    yield np.zeros((len(sep.sources), len(group), min(1 << 18, at_model.frames - s)), np.float32)
                return
            if len(models) == 1:
                for _, est in _apply_group(sep, models[0], at_model, mean, std):
                    yield est
                return
            acc = RawFile(spill_path(work, f"g{gi}-bag"), len(sep.sources) * len(group))
            for mi, (m, w) in enumerate(zip(models, bag_weights)):
                wv = np.asarray(w, np.float32)[:, None, None]
                for s0, est in _apply_group(sep, m, at_model, mean, std):
                    flat = (est * wv).reshape(-1, est.shape[-1]).T
                    if mi:
                        flat = flat + acc.read(s0, flat.shape[0])
                    acc.write_at(s0, flat)
            for s0 in range(0, acc.frames, 1 << 16):
                flat = acc.read(s0, 1 << 16)
                yield (flat.T.reshape(len(sep.sources), len(group), -1) / totals[:, None, None]).astype(np.float32)
            acc.remove()

        for est in estimates():
            n_blocks += 1
            for t, data in to_targets(est).items():
                files[t].append(back[t].push(data))
        for t in targets:
            files[t].append(back[t].flush())
        at_model.remove()
    outs = {t: _assemble(work, f"stem-{t}", mix.channels, mix.frames,
                         [(group, group_files[(t, gi)]) for gi, group in enumerate(groups)]) for t in targets}
    return StreamSeparation(dx=outs["DX"], mx=outs.get("MX"), fx=outs.get("FX"), model=sep.name,
                            seconds=time.perf_counter() - start, blocks=n_blocks)


def _apply_group(sep, model, reader, mean: float, std: float):
    """stream_apply for one group, handling a channel count that differs from the model's as
    DemucsSeparator._apply does (mono into a stereo model: duplicated, then averaged back)."""
    channels = reader.channels
    if channels == model.audio_channels:
        yield from stream_apply(model, reader, mean=mean, std=std, segment=sep.settings.segment,
                                overlap=sep.settings.overlap, shifts=sep.settings.shifts, device=sep.device)
        return
    if channels == 1:
        for s0, est in stream_apply(model, _Repeat(reader, model.audio_channels), mean=mean, std=std,
                                    segment=sep.settings.segment, overlap=sep.settings.overlap,
                                    shifts=sep.settings.shifts, device=sep.device):
            yield s0, est.mean(axis=1, keepdims=True)
        return
    raise ValueError(f"cannot feed {channels} channels to a {model.audio_channels}-channel model")


class _Repeat(Reader):
    """A mono reader seen as `n` identical channels."""

    def __init__(self, reader, n: int):
        self.reader, self.channels, self.frames = reader, n, reader.frames

    def read(self, start: int, count: int) -> np.ndarray:
        return np.repeat(self.reader.read(start, count), self.channels, axis=1)


class _Columns(Reader):
    """A reader of some channels of another reader."""

    def __init__(self, reader, columns: Sequence[int]):
        self.reader, self.columns = reader, list(columns)
        self.frames, self.channels = reader.frames, len(self.columns)

    def read(self, start: int, count: int) -> np.ndarray:
        return np.ascontiguousarray(self.reader.read(start, count)[:, self.columns])


def _assemble(work: Path, name: str, channels: int, frames: int,
              parts: list[tuple[Sequence[int], RawFile]]) -> RawFile:
    """The full-layout spill file `name` from per-group files, which are removed. One group holding every
    channel in order (stereo, mono) already is that file: it is renamed, not copied."""
    path = spill_path(work, name)
    if len(parts) == 1 and list(parts[0][0]) == list(range(channels)) and parts[0][1].frames == frames:
        only = parts[0][1]
        only.close()
        os.replace(only.path, path)
        return RawFile(path, channels, create=False)
    out = RawFile(path, channels)
    _interleave(out, parts, frames)
    for _, f in parts:
        f.remove()
    return out


def _interleave(out: RawFile, parts: list[tuple[Sequence[int], RawFile]], frames: int, block: int = 1 << 18) -> None:
    """Write the full-layout file `out` from per-group files (channels not in any group stay zero)."""
    for s in range(0, frames, block):
        n = min(block, frames - s)
        buf = np.zeros((n, out.channels), np.float32)
        for cols, f in parts:
            got = f.read(s, n)
            buf[:got.shape[0], list(cols)] = got
        out.append(buf)
    out.flush()


def separate_dfn3_stream(sep, mix: RawFile | ArrayReader, rate: int, layout: str, work: Path, *,
                         block_s: float = BLOCK_S, name: str = "stem-DX") -> StreamSeparation:
    """DFN3 block by block (its runtime streams); `sep` is a `separate.Dfn3Separator`. For each stereo pair
    in "mid" mode: DFN3 of the mid signal placed back by a least-squares pan gain per second, interpolated
    between the seconds' centres exactly as `Dfn3Separator._pair` does, which needs one second of look-ahead."""
    from .separate import _groups

    start = time.perf_counter()
    groups = _groups(layout, mix.channels)
    tracks: list[tuple[Sequence[int], str]] = []   # (channels, "mid" | "channel")
    for group in groups:
        if len(group) == 2 and sep.pairs == "mid":
            tracks.append((group, "mid"))
        else:
            tracks.extend(((c,), "channel") for c in group)
    engines = [_Dfn3Track(sep, rate, mix.frames, cols, kind) for cols, kind in tracks]
    dx = RawFile(spill_path(work, name), mix.channels)
    block = max(1, int(block_s * rate))
    pending: list[list[np.ndarray]] = [[] for _ in engines]   # per engine, output blocks not yet written
    written = 0
    n_blocks = 0

    def drain(final: bool) -> None:
        nonlocal written
        ready = min(sum(p.shape[0] for p in q) for q in pending) if pending else 0
        if final:
            ready = mix.frames - written
        if ready <= 0:
            return
        buf = np.zeros((ready, mix.channels), np.float32)
        for (cols, _), q in zip(tracks, pending):
            data = np.concatenate(q) if q else np.zeros((0, len(cols)), np.float32)
            buf[:min(ready, data.shape[0]), list(cols)] = data[:ready]
            q[:] = [data[ready:]] if data.shape[0] > ready else []
        dx.append(buf)
        written += ready

    for s in range(0, mix.frames, block):
        chunk = mix.read(s, block)
        n_blocks += 1
        for i, ((cols, _), eng) in enumerate(zip(tracks, engines)):
            out = eng.push(chunk[:, list(cols)])
            if out.shape[0]:
                pending[i].append(out)
        drain(False)
    for i, eng in enumerate(engines):
        out = eng.flush()
        if out.shape[0]:
            pending[i].append(out)
    drain(True)
    dx.flush()
    for eng in engines:   # drop each DFN3 runtime here, on the thread that made it (it is not Send)
        eng.proc = None
    return StreamSeparation(dx=dx, mx=None, fx=None, model=sep.name, seconds=time.perf_counter() - start,
                            blocks=n_blocks)


class _Dfn3Track:
    """One DFN3 stream: a channel, or a pair's mid signal with the pan placement. `push` returns output
    samples as they become final (aligned with the input, (n, len(cols))); `flush` the rest."""

    def __init__(self, sep, rate: int, frames: int, cols: Sequence[int], kind: str):
        self.sep, self.rate, self.frames, self.kind = sep, rate, frames, kind
        self.proc = sep._factory()
        self.to48 = Resampler(rate, sep.sample_rate, 1)
        self.back = Resampler(sep.sample_rate, rate, 1, length=frames)
        self.fed48 = 0          # samples at 48 kHz fed to DFN3 (without the delay padding)
        self.out48 = 0          # enhanced samples at 48 kHz returned so far
        self.buf48 = np.zeros(0, np.float32)
        # pan placement state (mid): pair and speech samples not yet emitted, window results so far
        self.win = max(1, rate)
        self.pair_q = np.zeros((0, 2), np.float32)
        self.speech_q = np.zeros(0, np.float32)
        self.q0 = 0             # sample index of pair_q[0]
        self.centres: list[float] = []
        self.gains: list[list[float]] = []
        self.emitted = 0

    def _dfn(self, x48: np.ndarray, last: bool) -> np.ndarray:
        """Feed 48 kHz samples to DFN3 in whole frames; returns enhanced samples ready so far."""
        frame = self.sep.frame * self.sep.BLOCK_FRAMES
        self.buf48 = np.concatenate([self.buf48, x48.astype(np.float32)])
        self.fed48 += x48.size
        if last:
            self.buf48 = np.concatenate([self.buf48, np.zeros(self.sep.DELAY, np.float32)])
        outs = []
        usable = self.buf48.size if last else (self.buf48.size // frame) * frame
        for i in range(0, usable, frame):
            outs.append(self.proc.process_chunk(np.ascontiguousarray(self.buf48[i:i + frame])))
        self.buf48 = self.buf48[usable:]
        if last:
            outs.append(self.proc.finalize())
        y = np.concatenate(outs) if outs else np.zeros(0, np.float32)
        if last:   # as enhance(): exactly as many samples as were fed, padded if the runtime gave fewer
            total = self.out48 + y.size
            y = y[:max(0, self.fed48 - self.out48)] if total >= self.fed48 else np.pad(y, (0, self.fed48 - total))
        else:
            y = y[:max(0, self.fed48 - self.out48)]
        self.out48 += y.size
        return y

    def push(self, chunk: np.ndarray) -> np.ndarray:
        return self._step(chunk, last=False)

    def flush(self) -> np.ndarray:
        return self._step(np.zeros((0, 2 if self.kind == "mid" else 1), np.float32), last=True)

    def _speech(self, mono: np.ndarray, last: bool) -> np.ndarray:
        """DFN3 of a mono signal at the source rate, streamed as `Dfn3Separator._channel` does it whole
        (to 48 kHz, DFN3, back); `last` flushes the resamplers and the runtime."""
        x48 = self.to48.flush() if last else self.to48.push(mono[:, None])
        out = self.back.push(self._dfn(x48[:, 0], last)[:, None])[:, 0]
        return np.concatenate([out, self.back.flush()[:, 0]]) if last else out

    def _step(self, chunk: np.ndarray, last: bool) -> np.ndarray:
        if self.kind == "channel":
            return self._speech(chunk[:, 0], last)[:, None]
        # mid: DFN3 of the pair's mean, then the pan gains per window of `rate` samples
        speech = self._speech(chunk.mean(axis=1), last)
        self.pair_q = np.concatenate([self.pair_q, chunk.astype(np.float32)])
        self.speech_q = np.concatenate([self.speech_q, speech])
        return self._place(last)

    def _place(self, last: bool) -> np.ndarray:
        n, win = self.frames, self.win
        # windows whose pair and speech samples are both complete
        while True:
            i = len(self.centres) * win
            if i >= n:
                break
            end = min(i + win, n)
            have = self.q0 + min(self.pair_q.shape[0], self.speech_q.shape[0])
            if have < end:
                break
            s = self.speech_q[i - self.q0:end - self.q0].astype(np.float64)
            p = self.pair_q[i - self.q0:end - self.q0]
            energy = float(np.dot(s, s))
            self.gains.append([float(np.clip(np.dot(p[:, c], s) / energy, 0.0, 2.0)) if energy > 1e-9 else 1.0
                               for c in range(2)])
            self.centres.append(i + (end - i - 1) / 2)
        # samples up to the latest centre are final (interpolation needs the next centre), all at the end
        done_windows = len(self.centres)
        complete = last or done_windows * win >= n
        limit = n if complete else (int(math.floor(self.centres[-1])) + 1 if self.centres else 0)
        limit = min(limit, self.q0 + self.speech_q.shape[0])
        if limit <= self.emitted:
            return np.zeros((0, 2), np.float32)
        t = np.arange(self.emitted, limit)
        c, g = np.asarray(self.centres), np.asarray(self.gains)
        sp = self.speech_q[self.emitted - self.q0:limit - self.q0]
        out = np.stack([sp * np.interp(t, c, g[:, ch]) for ch in range(2)], axis=1).astype(np.float32)
        self.emitted = limit
        # drop samples no later window needs (windows start at multiples of win)
        keep_from = min(self.emitted, len(self.centres) * win)
        drop = keep_from - self.q0
        if drop > 0:
            self.pair_q, self.speech_q, self.q0 = self.pair_q[drop:], self.speech_q[drop:], self.q0 + drop
        return out


def separate_stream(sep, mix, rate: int, layout: str, work: Path, **kw) -> StreamSeparation:
    """Block-wise separation with whichever backend `sep` is (see load_separator)."""
    from .separate import Dfn3Separator

    if isinstance(sep, Dfn3Separator):
        return separate_dfn3_stream(sep, mix, rate, layout, work, **kw)
    return separate_demucs_stream(sep, mix, rate, layout, work, **kw)
