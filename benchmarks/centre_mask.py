"""Issue #18, stereo: a time-frequency centre mask on the mix before DFN3 (an exploration, not in `reelsplit run`).

Film dialogue is mostly centre-panned while music and ambience are wide. Per STFT bin (2048 points at 48 kHz) the
similarity of the two channels, psi = 2·Re(L·R*) / (|L|² + |R|²) (1 for a centre-panned source), becomes a gain
g = clip((psi − a) / (1 − a), floor, 1) applied to both channels; DFN3 then separates the masked mix as `reelsplit
run` does (mid + pan, block by block, benchmarks/separation.py `_stream`), and DX SI-SDRi is scored against the
unmasked mixture. Mixtures, seeds and the dev (even index) / test (odd) split are benchmarks/separation.py's.

    .venv/bin/python benchmarks/centre_mask.py --corpus benchmarks/.cache/real-fullband --part dev --mask 0.5 0.3
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
from pipeline.models import ModelSpec  # noqa: E402
from pipeline.separate import load_separator  # noqa: E402


def masked(mix: np.ndarray, a: float, floor: float, nper: int = 2048) -> np.ndarray:
    from scipy.signal import istft, stft
    _, _, left = stft(mix[:, 0], S.RATE, nperseg=nper)
    _, _, right = stft(mix[:, 1], S.RATE, nperseg=nper)
    psi = 2 * np.real(left * np.conj(right)) / (np.abs(left) ** 2 + np.abs(right) ** 2 + 1e-12)
    gain = np.clip((psi - a) / (1 - a), floor, 1.0)
    out = [istft(z * gain, S.RATE, nperseg=nper)[1][: mix.shape[0]] for z in (left, right)]
    y = np.stack(out, 1).astype(np.float32)
    return np.pad(y, ((0, mix.shape[0] - y.shape[0]), (0, 0)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--part", choices=("dev", "test"), default="dev")
    p.add_argument("--mask", type=float, nargs=2, action="append", metavar=("A", "FLOOR"), required=True)
    p.add_argument("--mixtures", type=int, default=20)
    args = p.parse_args()
    sep = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), SeparationSettings())
    mixtures = S.make_mixtures(args.corpus, args.mixtures, 10.0, 1234)
    configs = [("dfn3 (shipped)", None)] + [(f"mask a={a:g} floor={fl:g} → dfn3", (a, fl)) for a, fl in args.mask]
    scores: dict[str, list[float]] = {name: [] for name, _ in configs}
    for i, m in enumerate(mixtures):
        if (i % 2 == 0) != (args.part == "dev"):
            continue
        mix = m.dialogue + m.background
        base = S.si_sdr(m.dialogue, mix)
        for name, c in configs:
            dx, _ = S._stream(sep, mix if c is None else masked(mix, *c))
            scores[name].append(S.si_sdr(m.dialogue, dx) - base)
    print(f"{args.corpus.name}, {args.part} part ({len(scores['dfn3 (shipped)'])} mixtures of 10 s)\n")
    print("| method | DX SI-SDRi (mean) | per mixture |\n|---|---|---|")
    for name, v in scores.items():
        print(f"| {name} | {np.mean(v):+.2f} | {' '.join(f'{x:+.1f}' for x in v)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
