"""Separation benchmark: dialogue/M&E quality and speed of every usable method on held-out mixtures.

Mixtures are drawn (fixed seed) from the corpus's `eval/` split — voices, pieces and effects never used for
training — as N clips of S seconds, 48 kHz stereo, dialogue set 0 to −10 dB against music+effects. For each
method it reports, per stem (DX, M&E), the mean SI-SDR and the Sound Demixing Challenge global SDR
(10·log10(Σs² / Σ(s−ŝ)²), per mixture, then averaged), their improvement over the unprocessed mixture, and
seconds of processing per minute of audio. Prints a Markdown table over all mixtures, then one per part: dev (even
mixture index; every choice is made on it) and test (odd; reported, never tuned on). `--csv` writes per-mixture rows.

    .venv/bin/python benchmarks/separation.py [--corpus DIR] [--mixtures 20] [--seconds 10] [--model SPEC ...]
"""
from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.cleanup import make_cleaner  # noqa: E402
from pipeline.config import SeparationSettings  # noqa: E402
from pipeline.layout import LAYOUTS  # noqa: E402
from pipeline.models import BUNDLED_REPO, ModelSpec, repo_entries, resolve, user_model_repo  # noqa: E402
from pipeline.readers import ArrayReader, Workspace  # noqa: E402
from pipeline.separate import load_separator  # noqa: E402

RATE = 48000


@dataclass(frozen=True)
class Mixture:
    dialogue: np.ndarray   # (samples, 2) float32 at 48 kHz
    background: np.ndarray  # music + effects, same shape
    dialogue_db: float     # dialogue level against music+effects, dB (RMS over the clip)

    @property
    def mix(self) -> np.ndarray:
        return self.dialogue + self.background


def _load(path: Path) -> np.ndarray:
    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != RATE:
        import soxr
        x = soxr.resample(x, rate, RATE).astype(np.float32)
    return x if x.shape[1] == 2 else np.repeat(x[:, :1], 2, axis=1)


def _fit(x: np.ndarray, n: int, rng: np.random.Generator, pad: bool) -> np.ndarray:
    """Crop `x` to n samples at a random offset; shorter clips are placed at a random offset in silence
    (dialogue: speech with pauses) or looped (music and effects beds)."""
    if x.shape[0] >= n:
        start = int(rng.integers(0, x.shape[0] - n + 1))
        return x[start:start + n]
    if pad:
        out = np.zeros((n, 2), np.float32)
        start = int(rng.integers(0, n - x.shape[0] + 1))
        out[start:start + x.shape[0]] = x
        return out
    return np.tile(x, (n // x.shape[0] + 1, 1))[:n]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def make_mixtures(corpus: Path, count: int, seconds: float, seed: int) -> list[Mixture]:
    split = corpus / "eval" if (corpus / "eval").is_dir() else corpus
    files = {s: sorted((split / s).glob("*.wav")) for s in ("dialogue", "music", "effects")}
    for source, found in files.items():
        if not found:
            raise SystemExit(f"benchmark: no {source} clips under {split / source}")
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    mixtures = []
    for _ in range(count):
        pick = {s: _load(files[s][int(rng.integers(len(files[s])))]) for s in files}
        dialogue = _fit(pick["dialogue"], n, rng, pad=True)
        music = _fit(pick["music"], n, rng, pad=False)
        effects = _fit(pick["effects"], n, rng, pad=False)
        background = music / _rms(music) + effects / _rms(effects) * 10 ** (rng.uniform(-8, 0) / 20)
        level_db = float(rng.uniform(-10.0, 0.0))
        dialogue = dialogue / _rms(dialogue) * _rms(background) * 10 ** (level_db / 20)
        peak = max(np.abs(dialogue + background).max(), 1e-9)
        scale = 10 ** (-3 / 20) / peak * 10 ** (rng.uniform(-6, 0) / 20)
        mixtures.append(Mixture((dialogue * scale).astype(np.float32), (background * scale).astype(np.float32),
                                level_db))
    return mixtures


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    s, e = ref.astype(np.float64).ravel(), est.astype(np.float64).ravel()
    alpha = np.dot(e, s) / (np.dot(s, s) + 1e-12)
    target = alpha * s
    return float(10 * np.log10((np.sum(target ** 2) + 1e-12) / (np.sum((e - target) ** 2) + 1e-12)))


def global_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Sound Demixing Challenge SDR: 10·log10(Σs² / Σ(s−ŝ)²) over the whole clip."""
    s, e = ref.astype(np.float64), est.astype(np.float64)
    return float(10 * np.log10((np.sum(s ** 2) + 1e-12) / (np.sum((s - e) ** 2) + 1e-12)))


def methods(model_specs: list[str]) -> dict[str, callable]:
    """Method name → function(mix) → (dx, me)."""
    settings = SeparationSettings()
    out: dict[str, callable] = {"mixture (no processing)": lambda mix: (mix, mix)}

    def noisereduce_only(mix):
        import noisereduce as nr
        dx = nr.reduce_noise(y=mix.T, sr=RATE, prop_decrease=1.0, stationary=False, n_jobs=1).T.astype(np.float32)
        return dx, mix - dx
    out["noisereduce alone"] = noisereduce_only
    dfn3 = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), settings)
    out["dfn3 (default: mid + pan)"] = lambda mix: _stream(dfn3, mix)
    out["dfn3 → noisereduce"] = lambda mix: _stream(dfn3, mix, "noisereduce")   # `cleanup: noisereduce` after it
    per_channel = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), replace(settings, dfn3_pairs="channels"))
    out["dfn3 per channel"] = lambda mix: _stream(per_channel, mix)
    specs = [resolve(s) for s in model_specs]
    installed = {**repo_entries(BUNDLED_REPO), **repo_entries(user_model_repo())}
    specs += [resolve(name) for name in installed if name not in {s.name for s in specs}]
    for spec in specs:
        sep = load_separator(spec, settings)
        out[f"demucs {spec.name}"] = lambda mix, sep=sep: _stream(sep, mix)
        out[f"demucs {spec.name} → noisereduce"] = lambda mix, sep=sep: _stream(sep, mix, "noisereduce")
        out[f"demucs {spec.name} → dfn3"] = lambda mix, sep=sep: _stream(sep, mix, "dfn3")
    return out


def _stream(sep, mix: np.ndarray, cleanup: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """(DX, M&E) of a stereo mix as `reelsplit run` makes them: the separator block by block, then the clean-up
    (`cleanup: noisereduce` at ebu-r128's strength, or `dfn3`), through spill files in a temporary folder."""
    import tempfile

    from pipeline.profiles import load_profile

    with tempfile.TemporaryDirectory() as folder, Workspace(Path(folder)) as workspace:
        stems = sep.separate(ArrayReader(mix), RATE, LAYOUTS["stereo"], workspace)
        cleaner = make_cleaner(cleanup, load_profile("ebu-r128").noise_reduction, SeparationSettings())
        dx = cleaner.clean(stems.dx, RATE, LAYOUTS["stereo"], workspace)
        dx = dx.read(0, dx.frames)
    return dx, mix - dx


def run(mixtures: list[Mixture], funcs: dict[str, callable]) -> tuple[list[dict], list[dict]]:
    rows, per_mix = [], []
    base = [(si_sdr(m.dialogue, m.mix), si_sdr(m.background, m.mix),
             global_sdr(m.dialogue, m.mix), global_sdr(m.background, m.mix)) for m in mixtures]
    minutes = sum(m.mix.shape[0] for m in mixtures) / RATE / 60
    for name, fn in funcs.items():
        fn(mixtures[0].mix[:RATE])  # warm-up (first-call costs are not separation speed)
        scores, seconds = [], 0.0
        for i, m in enumerate(mixtures):
            t0 = time.perf_counter()
            dx, me = fn(m.mix)
            seconds += time.perf_counter() - t0
            s = (si_sdr(m.dialogue, dx), si_sdr(m.background, me), global_sdr(m.dialogue, dx),
                 global_sdr(m.background, me))
            scores.append(s)
            per_mix.append({"method": name, "mixture": i, "dialogue_db": round(m.dialogue_db, 2),
                            "dx_si_sdr": s[0], "me_si_sdr": s[1], "dx_sdr": s[2], "me_sdr": s[3]})
        rows.append(summary(name, np.array(scores), np.array(base), seconds / minutes))
        print(f"  {name}: DX SI-SDRi {rows[-1]['dx_si_sdri']:+.2f} dB, {rows[-1]['s_per_min']:.1f} s/min",
              file=sys.stderr, flush=True)
    return rows, per_mix


def summary(name: str, sc: np.ndarray, b: np.ndarray, s_per_min: float) -> dict:
    """A method's table row from its per-mixture scores `sc` and the unprocessed mixtures' `b` (columns: DX SI-SDR,
    M&E SI-SDR, DX SDR, M&E SDR)."""
    return {"method": name, "dx_si_sdr": sc[:, 0].mean(), "dx_si_sdri": (sc[:, 0] - b[:, 0]).mean(),
            "dx_sdr": sc[:, 2].mean(), "dx_sdri": (sc[:, 2] - b[:, 2]).mean(),
            "me_si_sdr": sc[:, 1].mean(), "me_si_sdri": (sc[:, 1] - b[:, 1]).mean(),
            "me_sdr": sc[:, 3].mean(), "me_sdri": (sc[:, 3] - b[:, 3]).mean(), "s_per_min": s_per_min}


def part_rows(rows: list[dict], per_mix: list[dict], part: str) -> list[dict]:
    """The table's rows over one part of the mixtures: dev = even index (every choice is made on it), test = odd
    (reported, never tuned on). Speed is the whole run's."""
    keep = 0 if part == "dev" else 1
    cols = ("dx_si_sdr", "me_si_sdr", "dx_sdr", "me_sdr")
    score = lambda name: np.array([[r[c] for c in cols] for r in per_mix      # noqa: E731
                                   if r["method"] == name and r["mixture"] % 2 == keep])
    base = score(rows[0]["method"])      # the first method is the unprocessed mixture
    return [summary(r["method"], score(r["method"]), base, r["s_per_min"]) for r in rows]


def table(rows: list[dict]) -> str:
    head = ("| method | DX SI-SDR | DX SI-SDRi | DX SDR | DX SDRi | M&E SI-SDR | M&E SI-SDRi | M&E SDR | M&E SDRi "
            "| s per min of audio |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['method']} | {r['dx_si_sdr']:.2f} | {r['dx_si_sdri']:+.2f} | {r['dx_sdr']:.2f} | "
                     f"{r['dx_sdri']:+.2f} | {r['me_si_sdr']:.2f} | {r['me_si_sdri']:+.2f} | {r['me_sdr']:.2f} | "
                     f"{r['me_sdri']:+.2f} | {r['s_per_min']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=ROOT / "benchmarks" / ".cache" / "corpus",
                   help="corpus folder with an eval/ split (built with `reelsplit corpus build` if missing)")
    p.add_argument("--mixtures", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--model", action="append", default=[], help="extra demucs model spec (name, file, folder)")
    p.add_argument("--csv", type=Path, default=None, help="write per-mixture scores here")
    p.add_argument("--methods", nargs="+", default=None,
                   help="only the methods whose names contain one of these (the unprocessed mixture always)")
    args = p.parse_args(argv)
    if not (args.corpus / "eval").is_dir():
        from pipeline.training.corpus import build_corpus
        print(f"building the corpus in {args.corpus} ...", file=sys.stderr, flush=True)
        build_corpus(args.corpus, minutes=3.0, seed=0)
    mixtures = make_mixtures(args.corpus, args.mixtures, args.seconds, args.seed)
    funcs = methods(args.model)
    if args.methods:
        funcs = {k: f for i, (k, f) in enumerate(funcs.items()) if i == 0 or any(m in k for m in args.methods)}
    rows, per_mix = run(mixtures, funcs)
    print(f"\nSeparation benchmark, {platform.node() or 'this machine'} ({platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} cores), {time.strftime('%Y-%m-%d')}: {len(mixtures)} held-out mixtures of "
          f"{args.seconds:g} s, 48 kHz stereo, dialogue 0 to -10 dB against music+effects, seed {args.seed}\n")
    print(table(rows))
    for part in ("dev", "test"):
        print(f"\n{part} part ({'even' if part == 'dev' else 'odd'} mixtures: "
              f"{'every choice is made on it' if part == 'dev' else 'reported, never tuned on'})\n")
        print(table(part_rows(rows, per_mix, part)))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(per_mix[0]))
            writer.writeheader()
            writer.writerows(per_mix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
