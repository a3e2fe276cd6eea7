"""Block readers: the one contract every streaming stage reads audio through, and the spill files that hold a
reel's audio on disk so memory stays flat however long the reel.

A reader has `frames`, `channels`, `read(start, count)` (float32 (n, channels), clipped to the end) and
consecutive `blocks(size)`. `RawFile` is a float32 spill file; `WavReader` reads a written stem; `ArrayReader`
wraps an in-memory array (tests, small inputs); `Mapped`, `Difference`, `Sum`, `Columns` and `Repeat` are views over
another reader. A `Workspace` owns a reel's spill files and removes them when the reel is done.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .outputs import PARTIAL_MARK

def raw_bytes(block: np.ndarray) -> memoryview | bytes:
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
        self._fh.write(raw_bytes(block))
        self.frames += block.shape[0]

    def write_at(self, start: int, block: np.ndarray) -> None:
        """Overwrite (or extend) samples from `start`; `start` must be <= frames."""
        block = np.ascontiguousarray(block, dtype="<f4")
        if start > self.frames or block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"{self.path.name}: cannot write {block.shape} at {start} of {self.frames}")
        self._fh.seek(start * self._frame_bytes)
        self._fh.write(raw_bytes(block))
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


class Sum(Reader):
    """A reader of `a + gain·b` over two aligned readers (the DX with the M&E put back a little: a blend)."""

    def __init__(self, a, b, gain: float):
        self.a, self.b, self.gain, self.channels, self.frames = a, b, np.float32(gain), a.channels, a.frames

    def read(self, start: int, count: int) -> np.ndarray:
        return (self.a.read(start, count) + self.gain * self.b.read(start, count)).astype(np.float32)


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


class Repeat(Reader):
    """A mono reader seen as `n` identical channels."""

    def __init__(self, reader, n: int):
        self.reader, self.channels, self.frames = reader, n, reader.frames

    def read(self, start: int, count: int) -> np.ndarray:
        return np.repeat(self.reader.read(start, count), self.channels, axis=1)


class Columns(Reader):
    """A reader of some channels of another reader."""

    def __init__(self, reader, columns: Sequence[int]):
        self.reader, self.columns = reader, list(columns)
        self.frames, self.channels = reader.frames, len(self.columns)

    def read(self, start: int, count: int) -> np.ndarray:
        return np.ascontiguousarray(self.reader.read(start, count)[:, self.columns])


class Workspace:
    """The spill files of one reel, in its output folder: `spill(name, channels)` makes one, `adopt(f)` takes
    one a stage made, `remove(f)` frees one early (disk space), `close()` removes every one left — also
    after a failure (a killed run leaves partials, which the next run clears: outputs.remove_partials)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files: list[RawFile] = []

    def spill(self, name: str, channels: int) -> RawFile:
        return self.adopt(RawFile(spill_path(self.folder, name), channels))

    def adopt(self, f: RawFile) -> RawFile:
        if all(f is not g for g in self._files):
            self._files.append(f)
        return f

    def remove(self, f: RawFile) -> None:
        f.remove()
        self._files = [g for g in self._files if g is not f]

    def close(self) -> None:
        for f in self._files:
            f.remove()
        self._files = []

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
