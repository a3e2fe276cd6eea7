"""Thread benchmark: files per hour for a batch of short reels at each `--workers` setting, per model.

`reelsplit run` processes `--workers` files at once in a thread pool and gives torch `cores // workers`
intra-op threads (flows/reel.py set_torch_threads), so the product stays at the core count. For each model
(default `dfn3` and `dme-small`) and each worker count (default 1 and 2), one run over the same N seeded
reels (default 4 of 20 s, different seeds) into a fresh output folder: wall time, files per hour (whole
process, start-up included), CPU use (user + system time over wall x cores: 100 % = every core busy), the
kernel's involuntary context switches per second (they climb when more threads want to run than there are
cores) and peak memory.

    .venv/bin/python benchmarks/threads.py [--reels 4] [--seconds 20] [--workers 1 2] [--models dfn3 dme-small]
"""
from __future__ import annotations

import argparse
import sys

from _common import (Column, add_common_args, audio_seconds, main_guard, make_reel, markdown_table, note,
                     print_header, reelsplit_run, write_csv)

COLUMNS: list[Column] = [
    ("model", "model", ""), ("workers", "workers", "d"), ("torch_threads", "torch threads per file", "d"),
    ("wall_s", "wall s", ".1f"), ("files_per_hour", "files/hour", ".0f"), ("speedup", "vs 1st setting", ".2f"),
    ("cpu_pct", "CPU use %", ".0f"), ("switches_per_s", "involuntary switches/s", ".0f"),
    ("peak_tree_mib", "peak RSS, tree (MiB)", ".0f"),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reels", type=int, default=4, help="files per batch (default 4)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each reel (default 20)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare (default 1 2)")
    p.add_argument("--models", nargs="+", default=["dfn3", "dme-small"], help="--model values (default dfn3 dme-small)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per run")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.reels < 1 or args.seconds <= 0 or min(args.workers) < 1:
        p.error("--reels and --workers must be >= 1, --seconds > 0")

    def run() -> int:
        m = print_header(f"Thread benchmark: {args.reels} reels of {args.seconds:g} s, workers "
                         f"{', '.join(map(str, args.workers))}, models {', '.join(args.models)}")
        reels = [make_reel(args.seconds, args.seed + i, folder=args.work / "inputs") for i in range(args.reels)]
        audio = sum(audio_seconds(r) for r in reels)
        print(f"Inputs: {args.reels} seeded stereo 48 kHz demo reels (.mov, seeds {args.seed}.."
              f"{args.seed + args.reels - 1}), {audio:.1f} s of audio in all; one `reelsplit run` per row, fresh "
              f"output folder, profile ebu-r128; {m.cores} cores.\n")
        rows = []
        for model in args.models:
            base = None
            for w in args.workers:
                note(f"{model}, --workers {w} ...")
                r = reelsplit_run(reels, args.work / "threads" / f"out-{model}", model=model, workers=w,
                                  log=args.work / "threads" / "logs" / f"{model}-w{w}.log", timeout=args.timeout)
                s = r.sampled
                fph = len(reels) / s.wall_s * 3600
                base = base or fph
                rows.append({"model": model, "workers": w, "torch_threads": max(1, m.cores // w), "wall_s": s.wall_s,
                             "files_per_hour": fph, "speedup": fph / base, "cpu_pct": 100 * s.cpu_use(m.cores),
                             "switches_per_s": s.involuntary_switches / s.wall_s,
                             "peak_tree_mib": s.peak_tree_mib, "pipeline_s": r.pipeline_s,
                             "separate_s": r.stage_seconds["separate"]})
                note(f"  {s.wall_s:.1f} s, {fph:.0f} files/hour, CPU {100 * s.cpu_use(m.cores):.0f} %")
        print(markdown_table(rows, COLUMNS))
        print()
        for model in args.models:
            best = max((r for r in rows if r["model"] == model), key=lambda r: r["files_per_hour"])
            print(f"- {model}: most files/hour at --workers {best['workers']} ({best['torch_threads']} torch "
                  f"thread(s) per file): {best['files_per_hour']:.0f}")
        if args.csv:
            write_csv(args.csv, rows, m)
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
