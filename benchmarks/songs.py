"""Do songs stay in the M&E? How much of a *sung* voice the default separation moves into the DX (issue #18).

In a film, a song (source music with vocals) belongs to the music; a localization M&E keeps it unless it is to be
dubbed. A speech model such as DFN3 may take a singer for dialogue. Sung material, from Debian packages and in no
training set of reelsplit's:
- `singer`: Hedgewars' "Singer" voice pack (`hedgewars-data`, GFDL-1.3): one singer's sung exclamations, joined
  into phrases with 0.1–0.4 s pauses (pipeline/training/recorded.py leaves this pack out of training);
- `choir`: Sonic Pi's choir sample (`sonic-pi-samples`, ambi_choir.flac, CC0, freesound.org/people/Exsomniel),
  repeated with pauses;
- `speech` (the comparison): KTuberling's spoken words, the real full-band benchmark set's dialogue
  (benchmarks/real_set.py), joined the same way.
Each mixture: 10 s of a produced music piece (Extreme Tux Racer, the real full-band set's `eval/music`) with the
voice over it at 0 to −6 dB against the music, through DFN3 as `reelsplit run` makes the DX
(benchmarks/separation.py `_stream`). Per mixture, with v the voice as mixed in and d the DX estimate:
- **voice in DX**: 20·log10(<d, v> / <v, v>), the part of the voice that comes out in the DX (0 dB: all of it;
  very negative: it stayed in the M&E);
- **DX level**: 10·log10(Σd² / Σv²), everything the DX holds against the voice, and 10·log10(Σd² / Σm²) against
  the music m; `none` (the music alone, no voice) gives what DFN3 takes from the music by itself.
No dev/test split: nothing is chosen here, it is a measurement of the shipped default.

    apt-get install -y hedgewars-data sonic-pi-samples ktuberling-data extremetuxracer-data
    .venv/bin/python benchmarks/songs.py --mixtures 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from separation import RATE, _stream  # noqa: E402

from pipeline.config import SeparationSettings  # noqa: E402
from pipeline.models import ModelSpec  # noqa: E402
from pipeline.separate import load_separator  # noqa: E402

SINGER = Path("/usr/share/games/hedgewars/Data/Sounds/voices/Singer")
CHOIR = Path("/usr/share/sonic-pi/samples/ambi_choir.flac")
REAL = ROOT / "benchmarks" / ".cache" / "real-fullband" / "eval"
SECONDS = 10.0
KINDS = ("singer", "choir", "speech", "none")


def _mono(path: Path) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    m = x.mean(axis=1)
    return (m if sr == RATE else soxr.resample(m, sr, RATE)).astype(np.float32)


def _voice(files: list[Path], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) mono: files drawn at random, joined with 0.1–0.4 s pauses, from 0.5 s in until 0.5 s before the end
    (the last one cut there if at least 1 s of it fits)."""
    out = np.zeros(n, np.float32)
    at, end = int(0.5 * RATE), n - int(0.5 * RATE)
    while True:
        clip = _mono(files[int(rng.integers(len(files)))])
        if at + clip.shape[0] > end:
            if end - at >= RATE:
                out[at:end] = clip[: end - at]
            return out
        out[at: at + clip.shape[0]] = clip
        at += clip.shape[0] + int(rng.uniform(0.1, 0.4) * RATE)


def make_mixture(kind: str, index: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(voice, music), (n, 2) float32: the voice centred, at 0 to −6 dB against the music."""
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    n = int(SECONDS * RATE)
    pieces = sorted((REAL / "music").glob("*.wav"))
    music, sr = sf.read(pieces[int(rng.integers(len(pieces)))], dtype="float32", always_2d=True)
    music = soxr.resample(music, sr, RATE) if sr != RATE else music
    start = int(rng.integers(max(1, music.shape[0] - n)))
    music = music[start: start + n, :2]
    files = {"singer": sorted(SINGER.glob("*.ogg")), "choir": [CHOIR],
             "speech": sorted((REAL / "dialogue").glob("*.wav")), "none": []}[kind]
    v = _voice(files, n, rng) if files else np.zeros(n, np.float32)
    active = np.abs(v) > 0
    level = float(rng.uniform(-6.0, 0.0))
    if active.any():
        v *= np.sqrt(np.mean(music[active] ** 2) / max(np.mean(v[active] ** 2), 1e-12)) * 10 ** (level / 20)
    voice = np.stack([v, v], 1)
    peak = max(float(np.abs(voice + music).max()), 1e-9)
    scale = 10 ** (-3 / 20) / peak
    return (voice * scale).astype(np.float32), (music * scale).astype(np.float32)


def measure(sep, voice: np.ndarray, music: np.ndarray) -> tuple[float, float, float]:
    """(voice in DX, DX against the voice, DX against the music), dB; the first two NaN without a voice."""
    dx, _ = _stream(sep, voice + music)
    v, d, m = (a.astype(np.float64).ravel() for a in (voice, dx, music))
    ev, ed = float(np.dot(v, v)), max(float(np.dot(d, d)), 1e-20)
    if ev == 0:
        return float("nan"), float("nan"), 10 * np.log10(ed / float(np.dot(m, m)))
    gain = float(np.dot(d, v)) / ev
    return 20 * np.log10(max(gain, 1e-6)), 10 * np.log10(ed / ev), 10 * np.log10(ed / float(np.dot(m, m)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mixtures", type=int, default=8, help="per kind")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    for need in (SINGER, CHOIR, REAL / "music", REAL / "dialogue"):
        if not need.exists():
            raise SystemExit(f"songs: {need} is missing (see the install line in this script's docstring)")
    sep = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), SeparationSettings())
    print("| voice over music | mixtures | voice in DX, median (range) | DX against the voice, median | "
          "DX against the music, median |\n|---|---|---|---|---|")
    for kind in KINDS:
        rows = np.array([measure(sep, *make_mixture(kind, i, args.seed)) for i in range(args.mixtures)])
        g = rows[:, 0]
        gain = "—" if kind == "none" else f"{np.median(g):+.1f} dB ({g.min():+.1f} to {g.max():+.1f})"
        level = "—" if kind == "none" else f"{np.median(rows[:, 1]):+.1f} dB"
        print(f"| {kind} | {len(rows)} | {gain} | {level} | {np.median(rows[:, 2]):+.1f} dB |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
