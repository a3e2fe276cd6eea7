"""Memory benchmark: peak resident memory of `reelsplit run` against input length, per model.

For each model (default: the offline default `dfn3` and the demucs-format `dme-small`) and each length (default
2, 10 and 30 minutes of seeded stereo 48 kHz reel; lengths over 5 minutes loop a 5-minute reel), one
`reelsplit run` in a fresh output folder, as a whole process: peak RSS of the process tree (sampled every
0.1 s) and of its largest process (the kernel's maximum, as `/usr/bin/time -v`), wall time and real-time
factor. The goal (issue #5): the longest input's peak within 1.2x the shortest's, for each model.

    .venv/bin/python benchmarks/memory.py [--minutes 2 10 30] [--models dfn3 dme-small] [--csv FILE]
"""
from __future__ import annotations

import argparse
import sys

from _common import (Column, add_common_args, audio_seconds, main_guard, make_reel, markdown_table, note,
                     print_header, reelsplit_run, write_csv)

GROWTH_GOAL = 1.2   # peak of the longest input / peak of the shortest

COLUMNS: list[Column] = [
    ("model", "model", ""), ("minutes", "minutes", ".2f"), ("wall_s", "wall s", ".1f"), ("rtf", "RTF", ".3f"),
    ("peak_tree_mib", "peak RSS, tree (MiB)", ".0f"), ("tree_vs_shortest", "tree vs shortest", ".2f"),
    ("peak_process_mib", "peak RSS, largest process (MiB)", ".0f"),
    ("process_vs_shortest", "largest process vs shortest", ".2f"),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0, 30.0], help="input lengths")
    p.add_argument("--models", nargs="+", default=["dfn3", "dme-small"], help="--model values for reelsplit")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per run")
    add_common_args(p)
    args = p.parse_args(argv)
    if min(args.minutes) <= 0:
        p.error("--minutes must be > 0")
    minutes = sorted(set(args.minutes))

    def run() -> int:
        m = print_header(f"Memory benchmark: reelsplit run, {', '.join(f'{x:g}' for x in minutes)} min, "
                         f"models {', '.join(args.models)}")
        reels = {x: make_reel(x * 60, args.seed, folder=args.work / "inputs") for x in minutes}
        print(f"Inputs: seeded stereo 48 kHz demo reels (.mov, seed {args.seed}); over 5 minutes a 5-minute reel "
              f"looped. One `reelsplit run --workers 1` per row, fresh output folder, profile ebu-r128.\n")
        rows, goals = [], []
        for model in args.models:
            first = None
            for x in minutes:
                note(f"{model}, {x:g} min ...")
                r = reelsplit_run([reels[x]], args.work / "memory" / f"out-{model}",
                                  model=model, log=args.work / "memory" / "logs" / f"{model}-{x:g}min.log",
                                  timeout=args.timeout)
                s = r.sampled
                first = first or s
                rows.append({"model": model, "minutes": audio_seconds(reels[x]) / 60, "wall_s": s.wall_s,
                             "rtf": s.wall_s / audio_seconds(reels[x]), "peak_tree_mib": s.peak_tree_mib,
                             "tree_vs_shortest": s.peak_tree_bytes / first.peak_tree_bytes,
                             "peak_process_mib": s.peak_process_mib,
                             "process_vs_shortest": s.peak_process_bytes / first.peak_process_bytes,
                             "pipeline_s": r.pipeline_s, "separate_s": r.stage_seconds["separate"]})
                note(f"  {s.wall_s:.1f} s, peak {s.peak_tree_mib:.0f} MiB (tree), {s.peak_process_mib:.0f} MiB")
            if len(minutes) > 1:
                last = rows[-1]
                worst = max(last["tree_vs_shortest"], last["process_vs_shortest"])
                goals.append(f"- {model}: {minutes[-1]:g} min vs {minutes[0]:g} min: tree "
                             f"x{last['tree_vs_shortest']:.2f}, largest process x{last['process_vs_shortest']:.2f}: "
                             f"goal <= {GROWTH_GOAL} {'met' if worst <= GROWTH_GOAL else 'NOT met'}")
        print(markdown_table(rows, COLUMNS))
        if goals:
            print("\n" + "\n".join(goals))
        if args.csv:
            write_csv(args.csv, rows, m)
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
