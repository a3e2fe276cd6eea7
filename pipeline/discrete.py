"""Discrete mono broadcast WAVs: each channel of a written (interleaved) stem in a file of its own, as Netflix asks
for 5.1 elements ("All 5.1 surround (6ch) elements must be delivered as discrete files")."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

from .audio import BLOCK_FRAMES, Stamp, WavWriter
from .layout import Layout, one_channel
from .readers import WavReader


def split_channels(source: Path, layout: Layout, paths: Sequence[Path], stamps: Sequence[Stamp], *,
                   bit_depth: int = 24, timeout: float | None = None) -> tuple[Path, ...]:
    """Write channel i of the WAV `source` (in `layout`'s order) to `paths[i]`, block by block: a mono broadcast
    WAV at the source's rate and `bit_depth`, stamped with `stamps[i]` (bext Description and TimeReference, iXML),
    whose channel mask is the channel's speaker and whose iXML track is named by its label (layout.one_channel).
    Samples are copied exactly: a 24-bit sample read as float32 is written back as the same 24-bit sample. Each
    file is written to a temporary name and renamed when complete: a failure leaves no partial file."""
    if len(paths) != layout.channels or len(stamps) != layout.channels:
        raise ValueError(f"{layout.name} has {layout.channels} channels: got {len(paths)} paths, {len(stamps)} stamps")
    reader = WavReader(source)
    writers: list[WavWriter] = []
    try:
        if reader.channels != layout.channels:
            raise ValueError(f"{source.name}: {reader.channels} channels, expected {layout.name}")
        for i, (path, stamp) in enumerate(zip(paths, stamps)):
            writers.append(WavWriter(path, reader.rate, one_channel(layout, i), 1, bit_depth=bit_depth,
                                     description=stamp, timeout=timeout))
        for block in reader.blocks(BLOCK_FRAMES):
            for i, writer in enumerate(writers):
                writer.write(block[:, i:i + 1])
        return tuple(writer.close() for writer in writers)
    except BaseException:
        for writer in writers:
            with contextlib.suppress(Exception):
                writer.abort()
        raise
    finally:
        reader.close()
