"""The signal QC battery: a reel's written WAV stems read block by block into timecoded QcEvents.

Checks (pipeline.qcevents.KINDS): silent_channel, dropout, clicks, phase, lfe_band, dc_offset, clipping and
duration_mismatch. Each is a small object fed (frames, channels) float32 blocks in file order and closed at the
end, so memory is one block (plus a window of context) however long the reel. Thresholds: DEFAULTS per kind,
overridden by a profile's `qc_events:` (qcevents.merged refuses unknown names). The basis of every default, measured
on the project's own material, is in docs/DESIGN.md ("QC battery thresholds").
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import soundfile as sf

from . import qcevents
from .errors import MediaError
from .layout import Layout, get_layout

# Every kind: `max_events` events per stem and channel, then one summarising event (the rest's count and span);
# `gap_s`: findings closer than this are one event. The other names are each check's own (see its class).
DEFAULTS: dict[str, dict[str, float]] = {
    "silent_channel": {"level_dbfs": -90.0, "window_s": 1.0, "min_s": 10.0, "include_lfe": 0.0, "gap_s": 0.0,
                       "max_events": 20.0},
    "dropout": {"min_ms": 5.0, "max_ms": 500.0, "flank_ms": 5.0, "flank_dbfs": -50.0, "gap_s": 0.5, "max_events": 20.0},
    "clicks": {"score_db": 30.0, "frame_ms": 1.0, "context_ms": 10.0, "min_dbfs": -60.0, "gap_s": 0.5,
               "max_events": 20.0},
    "phase": {"corr": -0.5, "window_s": 1.0, "min_dbfs": -50.0, "gap_s": 0.0, "max_events": 20.0},
    "lfe_band": {"cutoff_hz": 120.0, "ratio_db": -15.0, "min_dbfs": -60.0, "window_s": 1.0, "gap_s": 0.0,
                 "max_events": 20.0},
    "dc_offset": {"level_dbfs": -50.0, "window_s": 10.0, "gap_s": 0.0, "max_events": 20.0},
    "clipping": {"level_dbfs": -0.01, "min_run": 2.0, "gap_s": 0.5, "max_events": 20.0},
    "duration_mismatch": {"frames": 1.0},
}
DEFAULT_FPS = 24.0      # a reel without a known frame rate is timed against 24 fps (said in the event's detail)
STEMS = ("MIX", "DX", "ME")


def db(x: float | np.ndarray, floor: float = 1e-12) -> float | np.ndarray:
    """20·log10 of an amplitude, floored at -240 dB."""
    return 20.0 * np.log10(np.maximum(np.abs(x), floor))


# ---- findings → merged, capped events ---------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """One finding before merging: [start, end) in frames, the check's measure (higher is worse, except
    silent_channel's loudest window), how many faults it holds, its longest run in frames and a note."""

    start: int
    end: int
    level: float
    count: int = 1
    longest: int = 0
    note: str = ""
    extra: float = -math.inf    # a second measure, maxed when merging (phase: -correlation, lfe_band: ratio dB)

    def join(self, other: "Hit") -> "Hit":
        notes = self.note if other.note in self.note.split("+") else f"{self.note}+{other.note}".strip("+")
        return Hit(self.start, max(self.end, other.end), max(self.level, other.level), self.count + other.count,
                   max(self.longest, other.longest), notes, max(self.extra, other.extra))


class Track:
    """The events of one kind on one stem channel: hits closer than `gap` frames merged, merged intervals
    shorter than `min_len` frames dropped, the first `cap` kept and the rest only counted (flat memory)."""

    def __init__(self, gap: int, min_len: int, cap: int):
        self.gap, self.min_len, self.cap = gap, min_len, cap
        self.current: Hit | None = None
        self.kept: list[Hit] = []
        self.over: Hit | None = None    # every event past the cap, joined
        self.dropped = 0                # how many

    def add(self, hit: Hit) -> None:
        if self.current is not None and hit.start - self.current.end <= self.gap:
            self.current = self.current.join(hit)
            return
        self._close()
        self.current = hit

    def _close(self) -> None:
        hit, self.current = self.current, None
        if hit is None or hit.end - hit.start < self.min_len:
            return
        if len(self.kept) < self.cap:
            self.kept.append(hit)
        else:
            self.over, self.dropped = hit if self.over is None else self.over.join(hit), self.dropped + 1

    def close(self) -> tuple[list[Hit], Hit | None, int]:
        self._close()
        return self.kept, self.over, self.dropped


class Sink:
    """Where one check on one stem puts its hits: a Track per channel label, turned into QcEvents at the end
    by the check's `describe(hit) -> (level_db, detail)`."""

    def __init__(self, kind: str, stem: str, rate: int, th: Mapping[str, float], min_s: float = 0.0):
        self.kind, self.stem, self.rate, self.th = kind, stem, rate, th
        self.min_len = int(round(min_s * rate))
        self.tracks: dict[str, Track] = {}
        self.worst: float | None = None     # the check's worst measure seen anywhere (flagged or not)

    def hit(self, channel: str, hit: Hit) -> None:
        if channel not in self.tracks:
            self.tracks[channel] = Track(int(round(self.th.get("gap_s", 0.0) * self.rate)), self.min_len,
                                         max(1, int(self.th.get("max_events", 20))))
        self.tracks[channel].add(hit)

    def see(self, value: float, higher_is_worse: bool = True) -> None:
        if math.isfinite(value) and (self.worst is None or (value > self.worst) == higher_is_worse):
            self.worst = float(value)

    def events(self, describe) -> list[qcevents.QcEvent]:
        out = []
        for channel, track in self.tracks.items():
            kept, over, dropped = track.close()
            for hit in kept:
                level, detail = describe(hit)
                out.append(qcevents.QcEvent(self.kind, hit.start / self.rate, hit.end / self.rate, self.stem,
                                            channel, level, 0, detail))
            if over is not None:
                level, detail = describe(over)
                out.append(qcevents.QcEvent(
                    self.kind, over.start / self.rate, over.end / self.rate, self.stem, channel, level, 0,
                    f"{dropped} more {self.kind} event(s) after the first {len(kept)} (cap: max_events "
                    f"{len(kept)} per stem and channel), summarised: {detail}"))
        return out


# ---- block helpers -----------------------------------------------------------------------------------
class Windows:
    """Cuts a stream of (frames, channels) blocks into whole windows of `size` frames, carrying the remainder."""

    def __init__(self, size: int):
        self.size, self.pos = max(1, int(size)), 0
        self.carry: np.ndarray | None = None

    def push(self, block: np.ndarray) -> tuple[int, np.ndarray]:
        """(first frame of the windows, array (windows, size, channels)); possibly no windows."""
        buf = block if self.carry is None or not len(self.carry) else np.concatenate([self.carry, block])
        n = len(buf) // self.size * self.size
        start, self.pos, self.carry = self.pos, self.pos + n, buf[n:]
        return start, buf[:n].reshape(-1, self.size, buf.shape[1])

    def rest(self, min_frames: int) -> tuple[int, np.ndarray]:
        """The last partial window as (start, (1, length, channels)) when at least `min_frames` long."""
        if self.carry is None or len(self.carry) < max(1, min_frames):
            return self.pos, np.zeros((0, 1, 1), np.float32)
        return self.pos, self.carry[None]


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def group(starts: np.ndarray, ends: np.ndarray, gap: int) -> list[tuple[int, int, int, int, int]]:
    """Runs closer than `gap` frames grouped: (first, last + 1 run index, start, end, longest run)."""
    if not len(starts):
        return []
    cut = np.flatnonzero(starts[1:] - ends[:-1] > gap) + 1
    firsts, lasts = np.concatenate([[0], cut]), np.concatenate([cut, [len(starts)]])
    longest = np.maximum.reduceat(ends - starts, firsts)
    return [(int(f), int(la), int(starts[f]), int(ends[la - 1]), int(m)) for f, la, m in zip(firsts, lasts, longest)]


class OpenRuns:
    """Runs of True across the blocks of one channel: the completed runs in file frames; the run reaching a
    block's end is carried (`open`, its first frame) into the next block."""

    def __init__(self):
        self.open: int | None = None

    def push(self, mask: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        starts, ends = runs(mask)
        starts, ends = starts + offset, ends + offset
        if self.open is not None:
            if len(starts) and starts[0] == offset:
                starts[0] = self.open
            else:
                starts, ends = np.concatenate([[self.open], starts]), np.concatenate([[offset], ends])
        self.open = None
        if len(ends) and ends[-1] == offset + len(mask):
            self.open, starts, ends = int(starts[-1]), starts[:-1], ends[:-1]
        return starts, ends


def power_db(w: np.ndarray) -> np.ndarray:
    """Mean square of each window of (windows, frames, channels) in dBFS (10·log10, floored at -240)."""
    return 10.0 * np.log10(np.maximum(np.mean(np.square(w, dtype=np.float64), axis=1), 1e-24))


# ---- the checks: feed(block, offset) per block, finish(frames) at the end, events() -----------------
class WindowCheck:
    """The plumbing of a check over fixed `window_s` windows: blocks are cut into whole windows (`_windows`
    gets their first sample and a (windows, samples, channels) array), and at the end the remainder is checked
    when at least `rest_min()` samples long."""

    def __init__(self, sink: Sink, layout: Layout):
        self.sink, self.layout = sink, layout
        self.win = Windows(round(sink.th["window_s"] * sink.rate))

    def feed(self, block: np.ndarray, offset: int) -> None:
        self._windows(*self.win.push(block))

    def finish(self, frames: int) -> None:
        self._windows(*self.win.rest(self.rest_min()))

    def rest_min(self) -> int:
        return self.win.size // 2

    def _windows(self, start: int, w: np.ndarray) -> None:
        raise NotImplementedError


class SilentChannel(WindowCheck):
    """MIX only (a DX surround or an M&E centre may rightly be empty; the delivered programme's may not): a
    channel whose RMS over `window_s` windows is below `level_dbfs` while another full-band channel of the
    programme plays, for `min_s` or longer; or below it over the whole reel (one event, whatever the others
    do). The LFE is left out unless `include_lfe` (many mixes have none). level_db: the loudest window, dBFS."""

    kind = "silent_channel"

    def __init__(self, sink: Sink, layout: Layout):
        super().__init__(sink, layout)
        self.limit = sink.th["level_dbfs"]
        lfe = () if sink.th["include_lfe"] else layout.lfe
        self.checked = [i for i in range(layout.channels) if i not in lfe]
        self.loudest = np.full(layout.channels, -240.0)

    def rest_min(self) -> int:
        return 1

    def _windows(self, start: int, w: np.ndarray) -> None:
        if not len(w):
            return
        level = power_db(w)
        self.loudest = np.maximum(self.loudest, level.max(axis=0))
        silent = level < self.limit
        for i in self.checked:
            others = [j for j in self.layout.full_band if j != i]
            playing = ~silent[:, others].all(axis=1) if others else np.zeros(len(w), bool)
            for k in np.flatnonzero(silent[:, i] & playing):
                first = start + k * w.shape[1]
                self.sink.hit(self.layout.labels[i], Hit(first, first + w.shape[1], float(level[k, i])))

    def finish(self, frames: int) -> None:
        super().finish(frames)
        for i in self.checked:
            self.sink.see(float(self.loudest[i]), higher_is_worse=False)
            if self.loudest[i] < self.limit and frames:
                label = self.layout.labels[i]
                self.sink.tracks[label] = Track(0, 0, 1)
                self.sink.tracks[label].add(Hit(0, frames, float(self.loudest[i]), note="reel"))

    def events(self) -> list[qcevents.QcEvent]:
        def describe(hit: Hit) -> tuple[float, str]:
            what = ("silent for the whole reel" if hit.note == "reel" else
                    f"silent for {(hit.end - hit.start) / self.sink.rate:.1f} s while other channels play")
            return hit.level, (f"{what}: below {self.limit:g} dBFS RMS in every {self.sink.th['window_s']:g} s "
                               f"window (level_db: the loudest window, dBFS RMS)")
        return self.sink.events(describe)


class Phase(WindowCheck):
    """MIX only (DX and M&E are the MIX split: a pair out of phase in one of them alone is a separation residual,
    measured down to −0.92 on clean reels, which the leak checks judge). Each pair of the layout (L/R, Ls/Rs,
    7.1's Lrs/Rrs and Lss/Rss): `window_s` windows where both channels
    are at or above `min_dbfs` RMS and their correlation is below `corr`. level_db: side over mid (S = L − R,
    M = L + R) in dB, 0 dB for uncorrelated equal channels and rising as the pair cancels in a mono fold-down
    (capped at 60 dB)."""

    kind = "phase"

    def __init__(self, sink: Sink, layout: Layout):
        super().__init__(sink, layout)
        self.pairs = [g for g in layout.groups if len(g) == 2]

    def _windows(self, start: int, w: np.ndarray) -> None:
        th = self.sink.th
        if not len(w):
            return
        for a, b in self.pairs:
            x, y = w[:, :, a].astype(np.float64), w[:, :, b].astype(np.float64)
            xx, yy, xy = (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)
            n = max(1, w.shape[1])
            active = (10 * np.log10(np.maximum(xx / n, 1e-24)) >= th["min_dbfs"]) & \
                     (10 * np.log10(np.maximum(yy / n, 1e-24)) >= th["min_dbfs"])
            corr = np.where(active, xy / np.sqrt(np.maximum(xx * yy, 1e-300)), 1.0)
            if active.any():
                self.sink.see(float(corr[active].min()), higher_is_worse=False)
            side_mid = 10 * np.log10(np.maximum(xx + yy - 2 * xy, 1e-300) / np.maximum(xx + yy + 2 * xy,
                                                                                        (xx + yy) * 1e-6 + 1e-300))
            label = f"{self.layout.labels[a]}/{self.layout.labels[b]}"
            for k in np.flatnonzero(active & (corr < th["corr"])):
                first = start + k * w.shape[1]
                self.sink.hit(label, Hit(first, first + w.shape[1], float(side_mid[k]), extra=float(-corr[k])))

    def events(self) -> list[qcevents.QcEvent]:
        def describe(hit: Hit) -> tuple[float, str]:
            return hit.level, (f"pair out of phase: correlation down to {-hit.extra:.2f} (below "
                               f"{self.sink.th['corr']:g} in {self.sink.th['window_s']:g} s windows; level_db: "
                               f"side over mid, dB)")
        return self.sink.events(describe)


class LfeBand(WindowCheck):
    """The LFE channel(s): `window_s` windows (Hann-weighted spectrum) whose content above `cutoff_hz` is at
    or above `ratio_db` relative to the window's whole level and at or above `min_dbfs` RMS. level_db: the
    level of the content above the cutoff, dBFS RMS."""

    kind = "lfe_band"

    def _windows(self, start: int, w: np.ndarray) -> None:
        th, n = self.sink.th, w.shape[1]
        if not len(w) or n < 2:
            return
        high = np.fft.rfftfreq(n, 1.0 / self.sink.rate) > th["cutoff_hz"]
        for i in self.layout.lfe:
            x = w[:, :, i].astype(np.float64)
            power = np.abs(np.fft.rfft(x * np.hanning(n), axis=1)) ** 2
            ratio = 10 * np.log10(np.maximum(power[:, high].sum(1), 1e-300) / np.maximum(power.sum(1), 1e-300))
            band = power_db(w[:, :, i:i + 1])[:, 0] + ratio
            audible = band >= th["min_dbfs"]
            if audible.any():
                self.sink.see(float(ratio[audible].max()))
            for k in np.flatnonzero(audible & (ratio >= th["ratio_db"])):
                first = start + k * n
                self.sink.hit(self.layout.labels[i], Hit(first, first + n, float(band[k]), extra=float(ratio[k])))

    def events(self) -> list[qcevents.QcEvent]:
        def describe(hit: Hit) -> tuple[float, str]:
            return hit.level, (f"LFE content above {self.sink.th['cutoff_hz']:g} Hz, up to {hit.extra:.1f} dB "
                               f"re the LFE's level (level_db: that band's level, dBFS RMS)")
        return self.sink.events(describe)


class DcOffset(WindowCheck):
    """Every channel: the mean over `window_s` windows (the last, shorter one when at least 1 s) at or above
    `level_dbfs`. level_db: |mean|, dBFS."""

    kind = "dc_offset"

    def _windows(self, start: int, w: np.ndarray) -> None:
        if not len(w):
            return
        level = db(w.mean(axis=1, dtype=np.float64))
        self.sink.see(float(level.max()))
        for k, i in zip(*np.nonzero(level >= self.sink.th["level_dbfs"])):
            first = start + k * w.shape[1]
            self.sink.hit(self.layout.labels[i], Hit(first, first + w.shape[1], float(level[k, i])))

    def rest_min(self) -> int:
        return min(self.win.size, self.sink.rate)

    def events(self) -> list[qcevents.QcEvent]:
        def describe(hit: Hit) -> tuple[float, str]:
            return hit.level, (f"DC offset: mean at or above {self.sink.th['level_dbfs']:g} dBFS over "
                               f"{self.sink.th['window_s']:g} s windows (level_db: the largest |mean|, dBFS)")
        return self.sink.events(describe)


class Clipping:
    """Every channel: runs of at least `min_run` samples at or above `level_dbfs` (|x|; a lone sample at full
    scale can be a legitimate peak, two or more in a row are a flat top). level_db: the peak, dBFS."""

    kind = "clipping"

    def __init__(self, sink: Sink, layout: Layout):
        self.sink, self.layout = sink, layout
        self.limit = 10 ** (sink.th["level_dbfs"] / 20)
        self.min_run = max(1, int(sink.th["min_run"]))
        self.open = [OpenRuns() for _ in range(layout.channels)]

    def feed(self, block: np.ndarray, offset: int) -> None:
        mag = np.abs(block)
        for i, carry in enumerate(self.open):
            starts, ends = carry.push(mag[:, i] >= self.limit, offset)
            self._runs(i, starts, ends, mag[:, i], offset)

    def _runs(self, i: int, starts: np.ndarray, ends: np.ndarray, mag: np.ndarray, offset: int) -> None:
        keep = ends - starts >= self.min_run
        starts, ends = starts[keep], ends[keep]
        gap = int(round(self.sink.th["gap_s"] * self.sink.rate))
        for first, last, start, end, longest in group(starts, ends, gap):
            part = mag[max(0, start - offset):max(0, end - offset)]
            peak = float(db(part.max())) if len(part) else float(db(self.limit))
            count = int((ends[first:last] - starts[first:last]).sum())
            self.sink.hit(self.layout.labels[i], Hit(start, end, peak, count, longest))
        if len(starts):
            self.sink.see(float((ends - starts).max()))

    def finish(self, frames: int) -> None:
        for i, carry in enumerate(self.open):
            if carry.open is not None:
                self._runs(i, np.array([carry.open]), np.array([frames]), np.zeros(0, np.float32), frames)

    def events(self) -> list[qcevents.QcEvent]:
        def describe(hit: Hit) -> tuple[float, str]:
            return hit.level, (f"{hit.count} clipped sample(s) (runs of >= {self.min_run} at or above "
                               f"{self.sink.th['level_dbfs']:g} dBFS, longest {hit.longest}; level_db: peak, dBFS)")
        return self.sink.events(describe)


class HeldRuns:
    """One channel's runs of identical consecutive samples (exact zeros or a held value), with the peak of the
    `flank` samples before and after each run: a dropout is a run inside programme, not digital silence."""

    def __init__(self, flank: int):
        self.flank, self.prev = flank, None
        self.tail = np.zeros(flank + 1, np.float32)
        self.open, self.open_pre = OpenRuns(), 0.0
        self.waiting: list[list] = []    # [start, end, value, pre, post so far, samples still needed]

    def push(self, x: np.ndarray, offset: int, done: list) -> None:
        """Runs of `x` (1-D, file frames from `offset`) completed and flanked appended to `done` as
        (start, end, value, pre peak, post peak)."""
        f, p, n = self.flank, self.flank + 1, len(x)
        self._settle(x, done)
        ext = np.concatenate([self.tail, x])          # x[j] is ext[j + p]; runs are rare, so peaks on demand

        def peak(a: int, b: int) -> float:
            a = max(0, a)
            return float(np.abs(ext[a:b]).max()) if b > a else 0.0
        pre_at = lambda j: peak(j + 1, j + p)                          # noqa: E731  peak of the f before x[j]
        eq = np.empty(n, bool)
        eq[0] = self.prev is not None and x[0] == self.prev
        eq[1:] = x[1:] == x[:-1]
        old_open, old_pre = self.open.open, self.open_pre
        starts, ends = self.open.push(eq, offset)
        if self.open.open is not None and self.open.open != old_open:
            self.open_pre = pre_at(self.open.open - 1 - offset)
        for a, b in zip(starts.tolist(), ends.tolist()):
            if b - a < 3:
                continue
            pre = old_pre if a == old_open else pre_at(a - 1 - offset)
            value = float(x[b - 1 - offset]) if b - 1 >= offset else float(self.prev)
            e = b - offset
            if e + f <= n:
                done.append((a - 1, b, value, pre, peak(e + p, e + p + f)))
            else:
                post = float(np.abs(x[e:]).max()) if e < n else 0.0
                self.waiting.append([a - 1, b, value, pre, post, e + f - n])
        self.prev, self.tail = x[-1], ext[-p:].copy()

    def _settle(self, x: np.ndarray, done: list) -> None:
        still = []
        for item in self.waiting:
            need = item[5]
            item[4] = max(item[4], float(np.abs(x[:need]).max()))
            item[5] = need - min(need, len(x))
            (still if item[5] else done).append(item if item[5] else tuple(item[:5]))
        self.waiting = still

    def finish(self, done: list) -> None:
        done.extend(tuple(item[:5]) for item in self.waiting)
        self.waiting = []


class Dropout:
    """Every channel: runs of exact zeros or of one held value, `min_ms` to `max_ms` long (a longer gap is a
    pause, or silent_channel's), with programme on both
    sides (the peak of the `flank_ms` before and after at or above `flank_dbfs`), so head/tail digital silence,
    a silent channel and quiet passages quantised to zero are not dropouts; held full-scale values are clipping's.
    level_db: the quieter flank's peak, dBFS (how loud the programme around the gap is)."""

    kind = "dropout"

    def __init__(self, sink: Sink, layout: Layout):
        self.sink, self.layout = sink, layout
        th = sink.th
        self.min_len = max(2, int(round(th["min_ms"] * sink.rate / 1000)))
        self.max_len = int(round(th["max_ms"] * sink.rate / 1000))
        self.flank_lin = 10 ** (th["flank_dbfs"] / 20)
        flank = max(2, int(round(th["flank_ms"] * sink.rate / 1000)))
        self.held = [HeldRuns(flank) for _ in range(layout.channels)]

    def feed(self, block: np.ndarray, offset: int) -> None:
        for i, held in enumerate(self.held):
            done: list = []
            held.push(block[:, i], offset, done)
            self._decide(i, done)

    def _decide(self, i: int, done: list) -> None:
        for start, end, value, pre, post in done:
            if min(pre, post) < self.flank_lin or abs(value) >= 0.999 or end - start > self.max_len:
                continue
            self.sink.see((end - start) * 1000.0 / self.sink.rate)
            if end - start >= self.min_len:
                self.sink.hit(self.layout.labels[i], Hit(start, end, float(db(min(pre, post))), 1, end - start,
                                                         "zeros" if value == 0 else "held samples"))

    def finish(self, frames: int) -> None:
        for i, held in enumerate(self.held):
            done: list = []
            held.finish(done)
            self._decide(i, done)

    def events(self) -> list[qcevents.QcEvent]:
        def describe(hit: Hit) -> tuple[float, str]:
            return hit.level, (f"{hit.count} dropout(s) ({hit.note.replace('+', ', ')}), longest "
                               f"{hit.longest * 1000 / self.sink.rate:.1f} ms inside programme (level_db: the "
                               f"programme's peak around it, dBFS)")
        return self.sink.events(describe)


class Clicks:
    """Every channel: impulsive discontinuities. The second difference x[n] − 2x[n−1] + x[n−2] (a high-pass
    that a step or a spike turns into one large sample) is cut into `frame_ms` frames; a frame's score is its
    peak over the largest peak of the frames within `context_ms` before and after it (its two neighbours left
    out, so a click across a frame edge still stands alone). An onset (loud after), an ending (loud before) and
    periodic pulses (a buzzy voice) score low; a lone click high. Clicks: score at or above `score_db` and peak
    at or above `min_dbfs`. level_db: the score, dB over the local background."""

    kind = "clicks"

    def __init__(self, sink: Sink, layout: Layout):
        self.sink, self.layout, th = sink, layout, sink.th
        self.frame = max(4, int(round(th["frame_ms"] * sink.rate / 1000)))
        self.context = max(3, int(round(th["context_ms"] / th["frame_ms"])))
        self.win = Windows(self.frame)
        self.prev: np.ndarray | None = None
        self.peaks = np.full((self.context, layout.channels), np.nan)   # frames kept for context
        self.first = 0                                                   # the first frame not yet decided

    def feed(self, block: np.ndarray, offset: int) -> None:
        if self.prev is None:
            self.prev = np.repeat(block[:1], 2, axis=0)
        ext = np.concatenate([self.prev, block])
        self.prev = ext[-2:]
        d2 = ext[2:] - 2 * ext[1:-1] + ext[:-2]
        _, w = self.win.push(d2)
        if len(w):     # |w| max per frame, channel by channel on a contiguous copy (4x faster than on (f, n, ch))
            by_channel = np.abs(np.ascontiguousarray(w.transpose(2, 0, 1)))
            self._frames(by_channel.max(axis=2).T)

    def _frames(self, peaks: np.ndarray) -> None:
        k = self.context
        peaks = np.concatenate([self.peaks, peaks])
        decide = len(peaks) - 2 * k
        if decide > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                near = np.nanmax(np.lib.stride_tricks.sliding_window_view(peaks, k - 1, axis=0), axis=-1)
                background = np.fmax(near[:decide], near[k + 2:k + 2 + decide])
                peak = peaks[k:k + decide]
                score = db(peak) - db(np.maximum(background, 1e-9))
            self._score(score, peak)
            self.first += decide
            peaks = peaks[decide:]
        self.peaks = peaks

    def _score(self, score: np.ndarray, peak: np.ndarray) -> None:
        loud = peak >= 10 ** (self.sink.th["min_dbfs"] / 20)
        if loud.any() and np.isfinite(score[loud]).any():
            self.sink.see(float(np.nanmax(np.where(loud, score, np.nan))))
        flagged = loud & (score >= self.sink.th["score_db"])
        gap = int(round(self.sink.th["gap_s"] * self.sink.rate / self.frame))
        for i in np.flatnonzero(flagged.any(axis=0)):
            starts, ends = runs(flagged[:, i])
            for first, last, start, end, _ in group(starts, ends, gap):
                hits = flagged[start:end, i]
                level = float(np.nanmax(np.where(hits, score[start:end, i], np.nan)))
                s, e = (self.first + start) * self.frame, (self.first + end) * self.frame
                self.sink.hit(self.layout.labels[i], Hit(s, e, level, last - first))

    def finish(self, frames: int) -> None:
        self._frames(np.full((self.context, self.layout.channels), np.nan))

    def events(self) -> list[qcevents.QcEvent]:
        def describe(hit: Hit) -> tuple[float, str]:
            return hit.level, (f"{hit.count} click(s): a {self.sink.th['frame_ms']:g} ms burst at or above "
                               f"{self.sink.th['score_db']:g} dB over its surroundings (level_db: the highest "
                               f"score, dB)")
        return self.sink.events(describe)


# ---- the battery -------------------------------------------------------------------------------------
CHECKS = (SilentChannel, Dropout, Clicks, Phase, LfeBand, DcOffset, Clipping)


def thresholds(settings: qcevents.EventSettings) -> dict[str, dict[str, float]]:
    """Every kind's thresholds: DEFAULTS with the profile's overrides (ConfigError for an unknown name)."""
    return {kind: qcevents.merged(defaults, settings.of(kind), kind) for kind, defaults in DEFAULTS.items()}


def _checks(stem: str, layout: Layout, rate: int, th: Mapping[str, Mapping[str, float]]) -> list:
    """The checks that apply to `stem`: silent_channel and phase on the MIX only, lfe_band with an LFE."""
    out = []
    for check in CHECKS:
        if (check in (SilentChannel, Phase) and stem != "MIX") or (check is LfeBand and not layout.lfe):
            continue
        kind_th = th[check.kind]
        out.append(check(Sink(check.kind, stem, rate, kind_th, kind_th.get("min_s", 0.0)), layout))
    return out


def scan_stem(path: Path, stem: str, layout: Layout, th: Mapping[str, Mapping[str, float]],
              block_s: float = 10.0) -> list:
    """Read one stem block by block through every check that applies to it; the checks, finished."""
    try:
        with sf.SoundFile(str(path)) as f:
            checks = _checks(stem, layout, f.samplerate, th)
            block, offset = max(1, int(round(block_s * f.samplerate))), 0
            for data in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                for check in checks:
                    check.feed(data, offset)
                offset += len(data)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise MediaError(f"{path}: cannot read the {stem} stem for QC: {e}", path) from e
    for check in checks:
        check.finish(offset)
    return checks


def _open(wavs: Mapping[str, Path], layout: str) -> tuple[Layout, dict[str, object]]:
    """The Layout and every stem's soundfile info; MediaError naming the file when one is unreadable, has
    another channel count than the layout or another sample rate than the MIX."""
    infos = {}
    for stem, path in wavs.items():
        try:
            infos[stem] = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as e:
            raise MediaError(f"{path}: cannot read the {stem} stem for QC: {e}", path) from e
    if "MIX" not in infos:
        raise MediaError(f"QC battery: no MIX stem among {', '.join(wavs) or 'no files'}")
    lay = get_layout(layout, infos["MIX"].channels)
    for stem, info in infos.items():
        if info.channels != lay.channels or info.samplerate != infos["MIX"].samplerate:
            raise MediaError(f"{wavs[stem]}: {stem} has {info.channels} channels at {info.samplerate} Hz; the MIX "
                             f"is {lay.name} ({lay.channels} channels) at {infos['MIX'].samplerate} Hz", wavs[stem])
    return lay, infos


def duration_events(infos: Mapping[str, object], picture_s: float | None, fps: float | None,
                    th: Mapping[str, float]) -> list[qcevents.QcEvent]:
    """The MIX against the picture (more than `frames` frames apart; `fps` 24 when unknown, said in the detail),
    and any stem whose length in samples differs from the MIX's. level_db: the difference in frames."""
    mix, out = infos["MIX"], []
    rate = fps if fps else DEFAULT_FPS
    basis = f"at {rate:g} fps" + ("" if fps else " (frame rate unknown, 24 assumed)")
    audio = mix.frames / mix.samplerate
    if picture_s is not None and abs(audio - picture_s) * rate > th["frames"] + 1e-6:
        diff = (audio - picture_s) * rate
        out.append(qcevents.QcEvent(
            "duration_mismatch", min(audio, picture_s), max(audio, picture_s), "", "", abs(diff), 0,
            f"audio {audio:.3f} s is {abs(diff):.1f} frame(s) {'longer' if diff > 0 else 'shorter'} than the "
            f"picture {picture_s:.3f} s {basis}, more than {th['frames']:g} (level_db: frames)"))
    for stem, info in infos.items():
        if info.frames != mix.frames:
            diff = (info.frames - mix.frames) / mix.samplerate
            out.append(qcevents.QcEvent(
                "duration_mismatch", min(audio, audio + diff), max(audio, audio + diff), stem, "",
                abs(diff) * rate, 0, f"{stem} is {info.frames - mix.frames:+d} samples against the MIX "
                                     f"({abs(diff) * rate:.2f} frame(s) {basis}; level_db: frames)"))
    return out


def run_battery(wavs: Mapping[str, Path], layout: str, settings: qcevents.EventSettings, *,
                picture_s: float | None = None, fps: float | None = None, block_s: float = 10.0
                ) -> list[qcevents.QcEvent]:
    """Every signal check over a reel's written stems. `wavs`: stem name → WAV (MIX, DX, ME, …; the same
    layout, `layout`'s channel order), read block by block (`block_s` seconds); `picture_s`: the picture's
    duration (None: audio-only, no duration check); `fps`: its frame rate (None: 24). The events, in time order."""
    th = thresholds(settings)
    lay, infos = _open(wavs, layout)
    events = duration_events(infos, picture_s, fps, th["duration_mismatch"])
    for stem, path in wavs.items():
        for check in scan_stem(Path(path), stem, lay, th, block_s):
            events.extend(check.events())
    return sorted(events, key=lambda e: (e.start_s, qcevents.KINDS.index(e.kind), e.stem, e.channel))


def measure_battery(wavs: Mapping[str, Path], layout: str, block_s: float = 10.0
                    ) -> dict[tuple[str, str], float | None]:
    """(kind, stem) → the worst value each check measured anywhere on the stem, flagged or not (the basis of
    DEFAULTS): silent_channel the quietest channel's loudest window (dBFS), dropout the longest flanked run (ms),
    clicks the highest score (dB), phase the lowest correlation, lfe_band the highest band ratio (dB), dc_offset
    the largest |mean| (dBFS), clipping the longest run at full scale (samples)."""
    th = thresholds(qcevents.EventSettings())
    lay, _ = _open(wavs, layout)
    return {(check.kind, stem): check.sink.worst for stem, path in wavs.items()
            for check in scan_stem(Path(path), stem, lay, th, block_s)}
