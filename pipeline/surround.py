"""Centre-aware surround (`separation.surround: centre`): a 5.0/5.1/7.1's dialogue is taken from the centre first;
the other full-band channels keep DX only where speech is found in them that the centre's dialogue does not explain.

Input: the mix and DFN3's per-group DX (the centre alone, each other pair's mid placed back by pan). On a fixed grid
of one-second windows from the start, each non-centre channel ch gets, from the mix x_ch, the centre's DX d_C and
DFN3's own estimate d_ch (window sums):

- rho = <x_ch, d_C> / (|x_ch| |d_C|), how much of the channel is coherent at lag 0 with the centre's dialogue
  (amplitude panning, the way films place dialogue between speakers, has no delay; music and effects are not
  coherent with it);
- speech = 10·log10(|d_ch|² / |x_ch|²), the share of the channel DFN3 keeps as speech.

rho ≥ COHERENT: the centre's dialogue panned into ch, taken as its projection g·d_C (g = <x_ch, d_C> / |d_C|², the
pan gain, clipped to [0, 4]), free of what DFN3 kept of the channel's music and effects; else speech ≥ SPEECH_DB:
dialogue of its own (off-screen), DFN3's estimate kept; else nothing (DFN3's leftovers of music and effects go to
M&E). Between windows the choice is crossfaded over RAMP_S. The thresholds were chosen on the dev half of
benchmarks/surround.py (benchmarks/RESULTS.md). The LFE is never DX. Each window depends on its own samples and the
previous window's choice only, so the result does not depend on the read blocks; memory is a chunk of windows.
"""
from __future__ import annotations

import numpy as np

from .layout import Layout
from .readers import RawFile, Reader, Workspace

WINDOW_S = 1.0          # decision window, seconds
RAMP_S = 0.02           # crossfade between two windows' choices, seconds
CHUNK_WINDOWS = 10      # windows read at a time
COHERENT = 0.05         # rho at or above: the centre's dialogue in this channel
SPEECH_DB = -20.0       # DFN3's estimate at or above this share of the channel: speech of its own
ABOVE_CENTRE_DB = 6.0   # ... and at or above this level relative to the centre's DX (louder than a spill)
PROJECT = True          # the centre's dialogue in a channel: its projection on the centre's DX (else DFN3's own)

DEFAULTS = (COHERENT, SPEECH_DB, PROJECT, ABOVE_CENTRE_DB)

def applies(layout: Layout) -> bool:
    """Whether `layout` has one dialogue channel (the centre) and other full-band channels to gate."""
    return len(layout.dialogue) == 1 and len(side_channels(layout)) > 0


def side_channels(layout: Layout) -> tuple[int, ...]:
    """The full-band channels that are not dialogue channels (L, R, the surrounds of a 5.x/7.1)."""
    return tuple(c for c in layout.full_band if c not in layout.dialogue)


def window_keep(x: np.ndarray, d: np.ndarray, centre: int, sides: tuple[int, ...],
                thresholds: tuple = DEFAULTS) -> np.ndarray:
    """Per side channel, the window's (a, b) of DX_ch = a·d_ch + b·d_C: (1, 0) where its DFN3 estimate is kept,
    (0, g) where it is the centre's dialogue taken by projection, (0, 0) for none. `x`, `d`: the window's mix and
    DFN3 DX, (samples, channels) float32; `thresholds`: (COHERENT, SPEECH_DB, PROJECT, ABOVE_CENTRE_DB)."""
    coherent, speech_db, project, above_db = thresholds
    dc = d[:, centre].astype(np.float64)
    ec = float(np.dot(dc, dc))
    out = np.zeros((len(sides), 2))
    for k, ch in enumerate(sides):
        dk, xk = d[:, ch].astype(np.float64), x[:, ch].astype(np.float64)
        ed, ex = float(np.dot(dk, dk)), float(np.dot(xk, xk))
        if ex <= 1e-12:
            continue
        ref = xk if project else dk
        er = ex if project else ed
        rho = float(np.dot(ref, dc)) / np.sqrt(er * ec) if ec > 1e-12 and er > 1e-12 else 0.0
        if rho >= coherent:
            out[k] = (0.0, float(np.clip(np.dot(xk, dc) / ec, 0.0, 4.0))) if project else (1.0, 0.0)
        elif ed > 1e-12 and 10 * np.log10(ed / ex) >= speech_db and ed >= ec * 10 ** (above_db / 10):
            out[k] = (1.0, 0.0)
    return out


class CentreGate:
    """Streams the centre-aware DX of one reel: `push(x, d)` takes the mix and DFN3's DX of the next samples (any
    length) and returns the gated DX of every whole window received so far; `flush()` the rest."""

    def __init__(self, layout: Layout, rate: int, thresholds: tuple = DEFAULTS):
        self.centre, self.sides = layout.dialogue[0], side_channels(layout)
        self.lfe = layout.lfe
        self.win = max(1, int(round(WINDOW_S * rate)))
        self.ramp = np.linspace(0.0, 1.0, max(1, int(round(RAMP_S * rate))) + 1)[1:, None]
        self.thresholds = thresholds
        self.prev: np.ndarray | None = None
        self.x = np.zeros((0, layout.channels), np.float32)
        self.d = np.zeros((0, layout.channels), np.float32)

    def push(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        self.x, self.d = np.concatenate([self.x, x]), np.concatenate([self.d, d])
        whole = (self.x.shape[0] // self.win) * self.win
        out = [self._window(self.x[i:i + self.win], self.d[i:i + self.win]) for i in range(0, whole, self.win)]
        self.x, self.d = self.x[whole:], self.d[whole:]
        return np.concatenate(out) if out else np.zeros((0, self.x.shape[1]), np.float32)

    def flush(self) -> np.ndarray:
        out = self._window(self.x, self.d) if self.x.shape[0] else self.x
        self.x, self.d = self.x[:0], self.d[:0]
        return out

    def _window(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        coef = window_keep(x, d, self.centre, self.sides, self.thresholds)
        prev = coef if self.prev is None else self.prev
        n = min(self.ramp.shape[0], x.shape[0])
        out = d.copy()
        for k, ch in enumerate(self.sides):
            a, b = np.full(x.shape[0], coef[k, 0]), np.full(x.shape[0], coef[k, 1])
            a[:n] = prev[k, 0] + (coef[k, 0] - prev[k, 0]) * self.ramp[:n, 0]
            b[:n] = prev[k, 1] + (coef[k, 1] - prev[k, 1]) * self.ramp[:n, 0]
            out[:, ch] = (a * d[:, ch] + b * d[:, self.centre]).astype(np.float32)
        out[:, list(self.lfe)] = 0.0
        self.prev = coef
        return out


def centre_gate(mix: Reader, dx: Reader, rate: int, layout: Layout, workspace: Workspace, *,
                name: str = "stem-DX", thresholds: tuple = DEFAULTS) -> RawFile:
    """The centre-aware DX of `mix` (spill file `name`) from DFN3's DX `dx`, both (samples, channels) at `rate`,
    read CHUNK_WINDOWS windows at a time; M&E stays mix − DX, so the null test holds exactly."""
    gate = CentreGate(layout, rate, thresholds)
    out = workspace.spill(name, mix.channels)
    step = gate.win * CHUNK_WINDOWS
    for s in range(0, mix.frames, step):
        out.append(gate.push(mix.read(s, step), dx.read(s, step)))
    out.append(gate.flush())
    out.flush()
    return out
