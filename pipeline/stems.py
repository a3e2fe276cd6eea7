"""What a separator hands on: the stems as spill files at the source rate and layout, and the assembly of a
full-layout stem from the groups of channels that were separated apart."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .readers import RawFile, Workspace, spill_path

INTERLEAVE_BLOCK = 1 << 18   # frames per block while interleaving group files


@dataclass(frozen=True)
class Stems:
    """Stems written to spill files at the source rate, each (samples, channels) like the mix: `dx` always,
    `mx`/`fx` when the model has them; M&E is mix − DX, computed when read."""

    dx: RawFile
    mx: RawFile | None
    fx: RawFile | None
    model: str
    seconds: float
    blocks: int


def assemble(workspace: Workspace, name: str, channels: int, frames: int,
             parts: list[tuple[Sequence[int], RawFile]]) -> RawFile:
    """The full-layout spill file `name` from per-group files (channels, file), which are removed. One group
    holding every channel in order (stereo, mono) already is that file: it is renamed, not copied."""
    path = spill_path(workspace.folder, name)
    if len(parts) == 1 and list(parts[0][0]) == list(range(channels)) and parts[0][1].frames == frames:
        only = parts[0][1]
        only.close()
        os.replace(only.path, path)
        return workspace.adopt(RawFile(path, channels, create=False))
    out = workspace.adopt(RawFile(path, channels))
    interleave(out, parts, frames)
    for _, f in parts:
        workspace.remove(f)
    return out


def interleave(out: RawFile, parts: list[tuple[Sequence[int], RawFile]], frames: int,
               block: int = INTERLEAVE_BLOCK) -> None:
    """Write the full-layout file `out` from per-group files (channels not in any group stay zero)."""
    for s in range(0, frames, block):
        n = min(block, frames - s)
        buf = np.zeros((n, out.channels), np.float32)
        for cols, f in parts:
            got = f.read(s, n)
            buf[:got.shape[0], list(cols)] = got
        out.append(buf)
    out.flush()
