"""Streaming resampling with soxr (`soxr.ResampleStream`, the same engine as one-shot `soxr.resample`), so a
reel's audio is resampled block by block with the result a whole-array call gives."""
from __future__ import annotations

import numpy as np
import soxr

from .readers import RawFile

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
