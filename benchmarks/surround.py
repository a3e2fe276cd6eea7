"""Surround benchmark: DFN3's dialogue in 5.1 with every channel group alike (`surround: all`) against centre-aware
(`surround: centre`), on 5.1 mixtures with true stems, split into a dev part (even mixture index: every threshold is
chosen there) and a test part (odd index: reported, never tuned on).

Two sets of held-out sources (benchmarks/separation.py's): the synthetic corpus (`benchmarks/.cache/corpus`, its
`eval/` split) and the real full-band recordings (`benchmarks/.cache/real-fullband`, benchmarks/real_set.py). Each
mixture (seeded): dialogue lines (mono) one after another with pauses, 0 to −10 dB against the mean full-band
channel of music and effects; music in L/R (a stereo piece), another piece at −6 dB in Ls/Rs, a third crop at
−12 dB (mono) in C; effects crops at −6 to 0 dB in L, R, Ls, Rs and at −12 dB in C, each its own crop (decorrelated);
the LFE is music and effects low-passed at 120 Hz. Three kinds: dialogue in C only (centred), panned between C and
L or R (constant power, 25 to 75 % toward the side: panned), in L or R only (off-screen).

Per kind × part × method: DX SI-SDR and its improvement over the mixture, SDR (10·log10(Σs²/Σ(s−ŝ)²)) and its
improvement, all over the six channels; and the DX content of the channels whose true dialogue is silent (L/R,
surrounds), in dB relative to the whole true dialogue. DFN3's per-group DX is computed once per mixture (cached in
`benchmarks/.cache/surround/`); the centre-aware DX is `pipeline.surround.centre_gate` over it, the very call
`Dfn3Separator.separate` makes with `surround: centre` (tests/unit/test_surround.py checks they agree).

    .venv/bin/python benchmarks/surround.py [--mixtures 8] [--seconds 20] [--sweep]
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.separation import global_sdr, si_sdr  # noqa: E402
from pipeline import surround  # noqa: E402
from pipeline.config import SeparationSettings  # noqa: E402
from pipeline.layout import LAYOUTS  # noqa: E402
from pipeline.readers import ArrayReader, Workspace  # noqa: E402
from pipeline.separate_dfn3 import Dfn3Separator  # noqa: E402

RATE = 48000
LAYOUT = LAYOUTS["5.1"]
L, R, C, LFE, LS, RS = range(6)
KINDS = ("centred", "panned", "off-screen")
SETS = {"synthetic": ROOT / "benchmarks" / ".cache" / "corpus",
        "real": ROOT / "benchmarks" / ".cache" / "real-fullband"}
CACHE = ROOT / "benchmarks" / ".cache" / "surround"


def _db(x: float) -> float:
    return 10 * np.log10(max(x, 1e-20))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def _load(path: Path, stereo: bool) -> np.ndarray:
    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != RATE:
        import soxr
        x = soxr.resample(x, rate, RATE).astype(np.float32)
    if stereo:
        return x[:, :2] if x.shape[1] >= 2 else np.repeat(x, 2, axis=1)
    return x.mean(axis=1)


def _crop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of `x` from a random offset, looped when shorter."""
    x = np.concatenate([x] * (n // x.shape[0] + 2))
    start = int(rng.integers(0, x.shape[0] - n))
    return x[start:start + n]


def _speech(files: list[Path], n: int, rng: np.random.Generator) -> np.ndarray:
    """Dialogue lines one after another, 0.5-2 s apart (the first after 0-1 s), cut at n samples."""
    out, pos = np.zeros(n, np.float32), int(rng.uniform(0, 1) * RATE)
    while pos < n:
        line = _load(files[int(rng.integers(len(files)))], stereo=False)
        line = line / _rms(line) * 0.1
        take = min(line.size, n - pos)
        out[pos:pos + take] = line[:take]
        pos += take + int(rng.uniform(0.5, 2.0) * RATE)
    return out


def _background(folder: Path, n: int, rng: np.random.Generator) -> np.ndarray:
    """Music and effects over the 5.1 channels (n, 6), decorrelated crops, the LFE low-passed at 120 Hz."""
    from scipy.signal import butter, sosfilt

    music = sorted((folder / "music").glob("*.wav"))
    effects = sorted((folder / "effects").glob("*.wav"))
    pick = lambda files: files[int(rng.integers(len(files)))]   # noqa: E731
    out = np.zeros((n, 6), np.float32)
    front = _crop(_load(pick(music), True), n, rng)
    out[:, [L, R]] = front / _rms(front)
    rear = _crop(_load(pick(music), True), n, rng)
    out[:, [LS, RS]] = rear / _rms(rear) * 10 ** (-6 / 20)
    centre = _crop(_load(pick(music), False), n, rng)
    out[:, C] = centre / _rms(centre) * 10 ** (-12 / 20)
    fx_level = 10 ** (rng.uniform(-8, 0) / 20)
    for ch, gain_db in ((L, 0), (R, 0), (LS, 0), (RS, 0), (C, -12)):
        e = _crop(_load(pick(effects), False), n, rng)
        out[:, ch] += e / _rms(e) * fx_level * 10 ** ((gain_db + rng.uniform(-6, 0)) / 20)
    sos = butter(4, 120, fs=RATE, output="sos")
    out[:, LFE] = 0.5 * sosfilt(sos, out[:, [L, R, C, LS, RS]].sum(axis=1)).astype(np.float32)
    return out


def make_mixture(folder: Path, kind: str, index: int, seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mix, true dialogue), each (samples, 6) float32 at 48 kHz, for mixture `index` of `kind`."""
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    n = int(seconds * RATE)
    split = folder / "eval"
    d = _speech(sorted((split / "dialogue").glob("*.wav")), n, rng)
    bed = _background(split, n, rng)
    side = (L, R)[int(rng.integers(2))]
    gains = {"centred": {C: 1.0}, "off-screen": {side: 1.0}}.get(kind)
    if gains is None:
        p = rng.uniform(0.25, 0.75) * np.pi / 2
        gains = {C: np.cos(p), side: np.sin(p)}
    level = 10 ** (rng.uniform(-10, 0) / 20) * _rms(bed[:, [L, R, C, LS, RS]])
    dialogue = np.zeros((n, 6), np.float32)
    for ch, g in gains.items():
        dialogue[:, ch] = d / _rms(d) * level * g
    mix = dialogue + bed
    scale = 10 ** (-3 / 20) / max(np.abs(mix).max(), 1e-9) * 10 ** (rng.uniform(-6, 0) / 20)
    return (mix * scale).astype(np.float32), (dialogue * scale).astype(np.float32)


def dfn3_groups(mix: np.ndarray, cache: Path | None) -> np.ndarray:
    """DFN3's DX with every group alike (`surround: all`), cached in `cache` when given."""
    if cache is not None and cache.exists():
        return np.load(cache)
    sep = Dfn3Separator(SeparationSettings(surround="all"))
    with tempfile.TemporaryDirectory() as folder, Workspace(Path(folder)) as ws:
        stems = sep.separate(ArrayReader(mix), RATE, LAYOUT, ws)
        dx = stems.dx.read(0, stems.dx.frames)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, dx)
    return dx


def centre(mix: np.ndarray, groups: np.ndarray,
           thresholds=surround.DEFAULTS) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder, Workspace(Path(folder)) as ws:
        dx = surround.centre_gate(ArrayReader(mix), ArrayReader(groups), RATE, LAYOUT, ws, thresholds=thresholds)
        return dx.read(0, dx.frames)


def scores(mix: np.ndarray, truth: np.ndarray, dx: np.ndarray) -> dict[str, float]:
    """DX SI-SDR(i), SDR(i) over all channels; DX in the channels whose truth is silent, dB re the dialogue."""
    total = float(np.sum(truth.astype(np.float64) ** 2))
    silent = [c for c in (L, R, LS, RS) if not truth[:, c].any()]
    leak = lambda chans: _db(float(np.sum(dx[:, chans].astype(np.float64) ** 2)) / total)   # noqa: E731
    front, rear = [c for c in silent if c in (L, R)], [c for c in silent if c in (LS, RS)]
    return {"si_sdr": si_sdr(truth, dx), "si_sdri": si_sdr(truth, dx) - si_sdr(truth, mix),
            "sdr": global_sdr(truth, dx), "sdri": global_sdr(truth, dx) - global_sdr(truth, mix),
            "leak_lr": leak(front) if front else float("nan"), "leak_surr": leak(rear)}


def collect(args) -> list[dict]:
    """Per mixture: set, kind, index, part, and the per-mixture arrays' scores for both methods (and the sweep's)."""
    rows = []
    for set_name, folder in SETS.items():
        if not (folder / "eval").is_dir():
            raise SystemExit(f"surround: no {folder / 'eval'} (see benchmarks/separation.py, benchmarks/real_set.py)")
        for kind in KINDS:
            for i in range(args.mixtures):
                if args.part and (i % 2 == 0) != (args.part == "dev"):
                    continue
                mix, truth = make_mixture(folder, kind, i, args.seconds, args.seed)
                key = CACHE / f"{set_name}-{kind}-{i}-{args.seconds:g}s-{args.seed}.npy"
                groups = dfn3_groups(mix, None if args.no_cache else key)
                row = {"set": set_name, "kind": kind, "index": i, "part": "dev" if i % 2 == 0 else "test",
                       "all": scores(mix, truth, groups)}
                if args.sweep and i % 2 == 0:
                    row["sweep"] = {t: scores(mix, truth, centre(mix, groups, t))["si_sdri"] for t in GRID}
                row["centre"] = scores(mix, truth, centre(mix, groups))
                rows.append(row)
                print(f"  {set_name} {kind} {i}: all {row['all']['si_sdri']:+.2f}, centre "
                      f"{row['centre']['si_sdri']:+.2f} dB", file=sys.stderr, flush=True)
    return rows


GRID = [(c, s, True, a) for c in (0.05, 0.1)
        for s, a in ((-20.0, -100.0), (-25.0, 0.0), (-20.0, 0.0), (-20.0, 6.0), (-30.0, 0.0), (-25.0, 6.0))]


def table(rows: list[dict]) -> str:
    head = ("| set | kind | part | method | DX SI-SDR | DX SI-SDRi | DX SDR | DX SDRi | DX in silent L/R | "
            "DX in silent surrounds |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for set_name in SETS:
        for kind in KINDS:
            for part in ("dev", "test"):
                sel = [r for r in rows if (r["set"], r["kind"], r["part"]) == (set_name, kind, part)]
                for method in ("all", "centre") if sel else ():
                    m = {k: np.nanmean([r[method][k] for r in sel]) for k in sel[0][method]}
                    lr = "—" if np.isnan(m["leak_lr"]) else f"{m['leak_lr']:.1f}"
                    lines.append(f"| {set_name} | {kind} | {part} | {method} | {m['si_sdr']:.2f} | "
                                 f"{m['si_sdri']:+.2f} | {m['sdr']:.2f} | {m['sdri']:+.2f} | {lr} | "
                                 f"{m['leak_surr']:.1f} |")
    return "\n".join(lines)


def sweep_table(rows: list[dict]) -> str:
    """Dev only: centre-aware minus all, DX SI-SDRi, per (COHERENT, SPEECH_DB) and set × kind."""
    cols = [(s, k) for s in SETS for k in KINDS]
    lines = ["| COHERENT | SPEECH_DB | PROJECT | ABOVE_CENTRE_DB | " + " | ".join(f"{s} {k}" for s, k in cols)
             + " | mean |",
             "|---|---|---|---|" + "---|" * (len(cols) + 1)]
    for t in GRID:
        gains = [np.mean([r["sweep"][t] - r["all"]["si_sdri"] for r in rows
                          if "sweep" in r and (r["set"], r["kind"]) == c]) for c in cols]
        lines.append(f"| {t[0]} | {t[1]} | {t[2]} | {t[3]} | " + " | ".join(f"{g:+.2f}" for g in gains)
                     + f" | {np.mean(gains):+.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mixtures", type=int, default=8, help="per set and kind (even index: dev, odd: test)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=51)
    p.add_argument("--sweep", action="store_true", help="also print the dev-only threshold grid")
    p.add_argument("--no-cache", action="store_true", help="recompute DFN3's per-group DX")
    p.add_argument("--part", choices=("dev", "test"), help="only this part (choices are made on dev)")
    args = p.parse_args(argv)
    rows = collect(args)
    print(f"\nSurround benchmark, {platform.node() or 'this machine'} ({platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} cores), {time.strftime('%Y-%m-%d')}: per set and kind {args.mixtures} "
          f"5.1 mixtures of {args.seconds:g} s (dev: even index, test: odd), seed {args.seed}, thresholds "
          f"(COHERENT, SPEECH_DB, PROJECT, ABOVE_CENTRE_DB) = {surround.DEFAULTS}\n")
    print(table(rows))
    if args.sweep:
        print("\nDev only, centre − all DX SI-SDRi (dB) per threshold pair:\n")
        print(sweep_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
