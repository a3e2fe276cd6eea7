"""Then and now: `reelsplit run` as it was at an earlier commit against the current code, same host, same reel.

The peer benchmark's ratio (reelsplit against the demucs CLI) moves with the host: the CLI's median on the same
command moved 7 % between two sessions here, more than a change under test. This benchmark answers the narrower
question "is the pipeline slower than it was at COMMIT?": the code of COMMIT (extracted with `git archive` into
the cache, run with this venv through `python -P -m flows.cli`: -P, so that the working directory (this checkout)
does not come first on the import path; its own configs) and the current code, in alternating
rounds, on the same seeded reel and model, each a whole process as the peer benchmark measures it.

    .venv/bin/python benchmarks/then_now.py --at 6bbb7d7 --untrained htdemucs --repeat 3 \
        --now-variant=--no-transcribe --csv benchmarks/results/then_now.csv

`--now-variant ARGS` adds a third run per round: the current code with extra arguments (e.g. without the stages
added since COMMIT, to compare like with like). Per round and as medians: wall time of the whole process, seconds
inside the flow (the report's total_s), peak RSS (tree and largest process) and the current code's stages.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from _common import (CACHE, ROOT, Column, add_common_args, audio_seconds, bench_env, main_guard, make_reel,
                     markdown_table, note, print_header, reelsplit_run, write_csv)
from peer import untrained_package

COLUMNS: list[Column] = [
    ("run", "run", ""), ("what", "what", ""), ("wall_s", "wall s", ".1f"), ("flow_s", "inside the flow s", ".1f"),
    ("peak_tree_mib", "peak RSS, tree (MiB)", ".0f"), ("peak_process_mib", "peak RSS, largest process (MiB)", ".0f"),
]


def checkout(commit: str) -> Path:
    """The tree of `commit` (`git archive`), once, under the cache."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", f"{commit}^{{commit}}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    folder = CACHE / f"then-{sha}"
    if not (folder / "flows" / "cli.py").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def one_run(i: int, what: str, exe: list[str], extra: list[str], reel: Path, args, env: dict) -> dict:
    slug = "".join(c if c.isalnum() else "-" for c in what)
    out = args.work / "then-now" / slug
    ran = reelsplit_run([reel], out, model=args.reelsplit_model, log=args.work / "then-now" / "logs" /
                        f"{slug}-{i}.log", extra=extra, timeout=args.timeout, exe=exe, env=env)
    note(f"round {i}: {what} {ran.sampled.wall_s:.1f} s")
    row = {"run": i, "what": what, "wall_s": ran.sampled.wall_s, "flow_s": ran.pipeline_s,
           "peak_tree_mib": ran.sampled.peak_tree_bytes / 2**20,
           "peak_process_mib": ran.sampled.peak_process_bytes / 2**20}
    row.update({f"{k}_s": v for k, v in ran.stage_seconds.items()})
    return row


def medians(rows: list[dict], names: list[str]) -> list[dict]:
    table = []
    for what in names:
        mine = [r for r in rows if r["what"] == what]
        table.append({"what": what, **{k: statistics.median(r[k] for r in mine)
                                       for k in ("wall_s", "flow_s", "peak_tree_mib", "peak_process_mib")}})
    base = table[0]["wall_s"]
    for row in table:
        row["vs_then"] = row["wall_s"] / base
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--at", default="6bbb7d7", help="the earlier commit (default 6bbb7d7, the round's start)")
    p.add_argument("--minutes", type=float, default=5.0, help="length of the reel (default 5)")
    p.add_argument("--model", default="dme-small", help="a bundled model name (default dme-small)")
    p.add_argument("--untrained", metavar="ARCH", default=None,
                   help="instead of --model: ARCH (htdemucs) with seeded random weights, for timing only")
    p.add_argument("--now-variant", default="", metavar="ARGS",
                   help="a third run per round: the current code with these extra arguments")
    p.add_argument("--repeat", type=int, default=3, help="rounds (default 3); the table uses medians")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per command")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.repeat < 1:
        p.error("--minutes must be > 0 and --repeat >= 1")

    def run() -> int:
        if args.untrained:
            args.model, package = untrained_package(args.untrained, args.work / "demucs-repo-untrained")
            args.reelsplit_model = str(package)
        else:
            args.reelsplit_model = args.model
        then = checkout(args.at)
        m = print_header(f"Then and now: reelsplit run at {args.at} against the current code, {args.minutes:g} min, "
                         f"model {args.model}" + (" (random weights: timing only)" if args.untrained else ""))
        reel = make_reel(args.minutes * 60, args.seed, folder=args.work / "inputs")
        print(f"Input: {reel.name}, {audio_seconds(reel):.1f} s stereo 48 kHz (seed {args.seed}); the code at "
              f"{args.at} runs from {then} with this venv.\n")
        runs = [(f"then ({args.at})", [sys.executable, "-P", "-m", "flows.cli"], [], bench_env(PYTHONPATH=str(then))),
                ("now", [sys.executable, "-P", "-m", "flows.cli"], [], bench_env(PYTHONPATH=str(ROOT)))]
        if args.now_variant:
            runs.append((f"now {args.now_variant}", [sys.executable, "-P", "-m", "flows.cli"],
                         shlex.split(args.now_variant), bench_env(PYTHONPATH=str(ROOT))))
        rows = []
        for i in range(1, args.repeat + 1):
            for what, exe, extra, env in runs:
                rows.append(one_run(i, what, exe, extra, reel, args, env))
        print(markdown_table(rows, COLUMNS))
        print()
        table = medians(rows, [r[0] for r in runs])
        print(markdown_table(table, [("what", "medians", ""), ("wall_s", "wall s", ".1f"),
                                     ("flow_s", "inside the flow s", ".1f"), ("vs_then", "wall vs then", ".3f"),
                                     ("peak_tree_mib", "peak RSS, tree (MiB)", ".0f"),
                                     ("peak_process_mib", "peak RSS, largest process (MiB)", ".0f")]))
        if args.csv:
            write_csv(args.csv, rows, m)
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
