"""Issue #18, stereo: DFN3's dialogue combined with the bundled Demucs model's music & effects (an exploration, not
in `reelsplit run`).

The issue suggests "a Wiener-style combination of DFN3's speech estimate with a Demucs model's music/effects
estimates". Both separators run as `reelsplit run` runs them (benchmarks/separation.py `_stream`: DFN3 mid + pan,
dme-small raw, no clean-up), then per STFT bin (2048 points at 48 kHz, each channel) the mix is split again with
the gain g = |DX|^p / (|DX|^p + |M&E|^p), from the power estimates of the variants below; DX SI-SDRi (and SDRi) are
scored as benchmarks/separation.py does, with its mixtures, seeds and dev (even index) / test (odd) split.

Variants: `dfn3` (shipped); `dme-small`; `mean` (the two DX estimates averaged); `wiener p=…` (DX power from
DFN3, M&E power from dme-small); `wiener both p=…` (DX power the mean of both models' DX powers, M&E power the
mean of both models' M&E powers); `wiener p=…: DFN3 DX, …` with DFN3's own M&E (the mix less its DX), the
geometric or the arithmetic mean of the two models' M&E powers.

    .venv/bin/python benchmarks/wiener.py --corpus benchmarks/.cache/real-fullband --part dev
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import separation as S  # noqa: E402
from pipeline.config import SeparationSettings  # noqa: E402
from pipeline.models import ModelSpec, resolve  # noqa: E402
from pipeline.separate import load_separator  # noqa: E402

NPER = 2048


def _spec(x: np.ndarray) -> np.ndarray:
    from scipy.signal import stft
    return np.stack([stft(x[:, c], S.RATE, nperseg=NPER)[2] for c in range(x.shape[1])])


def _back(z: np.ndarray, n: int) -> np.ndarray:
    from scipy.signal import istft
    y = np.stack([istft(z[c], S.RATE, nperseg=NPER)[1][:n] for c in range(z.shape[0])], 1)
    return np.pad(y, ((0, n - y.shape[0]), (0, 0))).astype(np.float32)


def variants(mix: np.ndarray, dfn3: tuple, dme: tuple, powers: list[float]) -> dict[str, np.ndarray]:
    """DX estimate per variant."""
    out = {"dfn3 (shipped)": dfn3[0], "dme-small": dme[0], "mean of the two DX": (dfn3[0] + dme[0]) / 2}
    zm = _spec(mix)
    d1, m1, d2, m2 = (np.abs(_spec(x)) ** 2 for x in (*dfn3, *dme))
    for p in powers:
        h = p / 2
        g = d1 ** h / (d1 ** h + m2 ** h + 1e-20)
        out[f"wiener p={p:g}: DFN3 DX, dme M&E"] = _back(zm * g, mix.shape[0])
        dx, me = (d1 + d2) / 2, (m1 + m2) / 2
        g = dx ** h / (dx ** h + me ** h + 1e-20)
        out[f"wiener both p={p:g}"] = _back(zm * g, mix.shape[0])
        for name, me in (("DFN3's own M&E", m1), ("geometric mean of the M&E", np.sqrt(m1 * m2)),
                         ("mean of the M&E", (m1 + m2) / 2)):
            g = d1 ** h / (d1 ** h + me ** h + 1e-20)
            out[f"wiener p={p:g}: DFN3 DX, {name}"] = _back(zm * g, mix.shape[0])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--part", choices=("dev", "test"), default="dev")
    p.add_argument("--mixtures", type=int, default=20)
    p.add_argument("--power", type=float, nargs="+", default=[1.0, 2.0])
    args = p.parse_args()
    settings = SeparationSettings()
    dfn3 = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), settings)
    dme = load_separator(resolve("dme-small"), settings)
    scores: dict[str, list[tuple[float, float]]] = {}
    for i, m in enumerate(S.make_mixtures(args.corpus, args.mixtures, 10.0, 1234)):
        if (i % 2 == 0) != (args.part == "dev"):
            continue
        mix = m.dialogue + m.background
        base = (S.si_sdr(m.dialogue, mix), S.global_sdr(m.dialogue, mix))
        for name, dx in variants(mix, S._stream(dfn3, mix), S._stream(dme, mix), args.power).items():
            scores.setdefault(name, []).append((S.si_sdr(m.dialogue, dx) - base[0],
                                                S.global_sdr(m.dialogue, dx) - base[1]))
    print(f"{args.corpus.name}, {args.part} part ({len(scores['dfn3 (shipped)'])} mixtures of 10 s)\n")
    print("| method | DX SI-SDRi (mean) | DX SDRi (mean) | SI-SDRi per mixture |\n|---|---|---|---|")
    for name, v in scores.items():
        a = np.array(v)
        print(f"| {name} | {a[:, 0].mean():+.2f} | {a[:, 1].mean():+.2f} | "
              f"{' '.join(f'{x:+.1f}' for x in a[:, 0])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
