"""DFN3 streams in worker processes (pipeline/separate_dfn3.py): a 5.1 reel's three streams (the L/R mid, C, the
Ls/Rs mid) run in a process pool give the same samples as one after another in this process."""
from __future__ import annotations

import numpy as np

from pipeline.config import SeparationSettings
from pipeline.layout import LAYOUTS
from pipeline.readers import ArrayReader, RawFile, Workspace
from pipeline.separate_dfn3 import Dfn3Separator
from test_stream import signal


def test_dfn3_streams_in_processes_equal_one_after_another(tmp_path):
    mix = RawFile(tmp_path / "mix.f32", 6)
    mix.append(signal(12.3, 48000, 6, seed=11))
    dx = {}
    for workers in (1, 3):
        sep = Dfn3Separator(SeparationSettings(dfn3_workers=workers))
        assert sep.processes(len(sep.tracks(LAYOUTS["5.1"])), mix) == workers
        stems = sep.separate(mix, 48000, LAYOUTS["5.1"], Workspace(tmp_path), block_s=2.0)
        assert stems.dx.frames == mix.frames
        dx[workers] = stems.dx.read(0, stems.dx.frames)
        stems.dx.remove()
    assert np.array_equal(dx[1], dx[3])
    assert np.any(dx[3][:, 2]) and not np.any(dx[3][:, 3])           # the centre separated, the LFE never in DX
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.f32"]   # the per-stream spill files are gone


def test_one_stream_or_an_in_memory_mix_stays_in_this_process(tmp_path):
    sep = Dfn3Separator(SeparationSettings(dfn3_workers=4))
    stereo = RawFile(tmp_path / "mix.f32", 2)
    assert sep.processes(len(sep.tracks(LAYOUTS["stereo"])), stereo) == 1          # one stream: the pair's mid
    assert sep.processes(3, ArrayReader(np.zeros((10, 6), np.float32))) == 1      # no spill file to share
    assert Dfn3Separator(SeparationSettings(dfn3_workers=0)).processes(3, stereo) >= 1
