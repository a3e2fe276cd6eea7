"""Peer benchmark: `reelsplit run` against what a user would otherwise script, on the same file and model.

The same seeded stereo 48 kHz reel (default 5 minutes), the same demucs-format model (default the bundled
`dme-small`, given to the demucs CLI as a `.th` package in a repo folder) and the same separation settings
(configs/default.yaml: segment, overlap, shifts, split; CPU; the same torch thread count), side by side:

  (a) the peer: `python -m demucs --repo DIR -n NAME` (separation alone), then ffmpeg `loudnorm` in two passes on
      its dialogue stem to the profile's target (separation + loudness);
  (b) `reelsplit run FILE --out OUT --model NAME`: extract, separate, cleanup, VAD, loudness, BWF stems, remux,
      QC and report.

Each is a whole process (tree): wall time, real-time factor (wall / audio duration), peak resident memory (the
tree's sum, sampled every 0.1 s, and the largest single process, as `/usr/bin/time -v`), CPU use; then the
ratios and the issue's goals (reelsplit at most 1.1x the demucs CLI's separation wall time, lower peak memory).

    .venv/bin/python benchmarks/peer.py [--minutes 5] [--model dme-small] [--repeat 1] [--csv FILE]
    .venv/bin/python benchmarks/peer.py --untrained htdemucs     # timing only, see below

`--untrained htdemucs`: the htdemucs architecture (demucs's default HTDemucs arguments, 7.8 s segment, 4 music
sources, as benchmarks/gpu_rtf.py builds it) with seeded random weights, written as a `.th` package for both tools.
No htdemucs weights can be downloaded here, and the point is the cost of a model whose forward pass dominates, as
the production model's does: its stems are not separations, and its rows are labelled so.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from fractions import Fraction
from pathlib import Path

from _common import (BenchmarkError, Column, add_common_args, audio_seconds, demucs_cli, demucs_repo,
                     loudnorm_two_pass, main_guard, make_reel, markdown_table, note, print_header,
                     reelsplit_run, write_csv)

WALL_GOAL = 1.1   # reelsplit's whole run at most this many times the demucs CLI's separation alone

COLUMNS: list[Column] = [
    ("run", "run", ""), ("what", "what", ""), ("wall_s", "wall s", ".1f"), ("rtf", "RTF", ".3f"),
    ("peak_tree_mib", "peak RSS, tree (MiB)", ".0f"), ("peak_process_mib", "peak RSS, largest process (MiB)", ".0f"),
    ("cpu_pct", "CPU use %", ".0f"),
]


def dialogue_stem(folder: Path, stem_map) -> Path:
    """The demucs CLI's output stem that reelsplit's stem map sends to DX (dialogue or vocals)."""
    for name, target in stem_map.items():
        path = folder / f"{name}.wav"
        if target == "DX" and path.is_file():
            return path
    raise BenchmarkError(f"{folder}: the demucs CLI wrote no stem that the stem map sends to DX")


def one_round(i: int, reel, seconds: float, args, repo, profile, stem_map, cores: int) -> list[dict]:
    work = args.work / "peer"
    demucs, stems = demucs_cli(reel, work / "demucs", repo=repo, name=args.model, threads=args.threads,
                               log=work / "logs" / f"demucs-{i}.log", timeout=args.timeout)
    dx = dialogue_stem(stems, stem_map)
    note(f"round {i}: demucs CLI {demucs.wall_s:.1f} s; loudnorm on {dx.name} ...")
    first, second = loudnorm_two_pass(dx, work / "demucs" / "dialogue_loudnorm.wav",
                                      log=work / "logs" / f"loudnorm-{i}.log", target_lufs=profile.target_lufs,
                                      true_peak_dbtp=profile.true_peak_dbtp)
    note(f"round {i}: loudnorm {first.wall_s + second.wall_s:.1f} s; reelsplit run ...")
    ours = reelsplit_run([reel], work / "reelsplit", model=args.reelsplit_model, log=work / "logs" / f"reelsplit-{i}.log",
                         extra=["--profile", args.profile], timeout=args.timeout)
    note(f"round {i}: reelsplit {ours.sampled.wall_s:.1f} s")

    def row(what, wall, tree, process, cpu_s):
        return {"run": i, "what": what, "wall_s": wall, "rtf": wall / seconds, "peak_tree_mib": tree / 2**20,
                "peak_process_mib": process / 2**20, "cpu_pct": 100 * cpu_s / (wall * cores)}

    loud = (first, second)
    peer_wall = demucs.wall_s + sum(s.wall_s for s in loud)
    rows = [
        row("demucs CLI: separation", demucs.wall_s, demucs.peak_tree_bytes, demucs.peak_process_bytes,
            demucs.cpu_s),
        row("ffmpeg loudnorm, 2 passes", sum(s.wall_s for s in loud), max(s.peak_tree_bytes for s in loud),
            max(s.peak_process_bytes for s in loud), sum(s.cpu_s for s in loud)),
        row("peer: separation + loudness", peer_wall, max(s.peak_tree_bytes for s in (demucs, *loud)),
            max(s.peak_process_bytes for s in (demucs, *loud)), demucs.cpu_s + sum(s.cpu_s for s in loud)),
        row("reelsplit run (whole process)", ours.sampled.wall_s, ours.sampled.peak_tree_bytes,
            ours.sampled.peak_process_bytes, ours.sampled.cpu_s),
    ]
    rows.append({"run": i, "what": "reelsplit: inside the flow (report total_s)", "wall_s": ours.pipeline_s,
                 "rtf": ours.pipeline_s / seconds, "separate_s": ours.stage_seconds["separate"]})
    return rows


def untrained_package(arch: str, folder: Path) -> tuple[str, Path]:
    """A demucs repo folder with a seeded, untrained `arch` package (`<name>-<sha[:8]>.th`); returns the
    name for `python -m demucs -n` and the file for `reelsplit run --model`."""
    import torch
    from demucs.htdemucs import HTDemucs

    from pipeline.training.train import write_package

    if arch != "htdemucs":
        raise BenchmarkError(f"--untrained: only htdemucs is known, not {arch}")
    name = f"{arch}-untrained"
    folder.mkdir(parents=True, exist_ok=True)
    existing = [p for p in folder.glob(f"{name}-*.th") if p.stem.rsplit("-", 1)[0] == name]
    if existing:
        return name, existing[0]
    torch.manual_seed(0)
    args, kwargs = (), {"sources": ["drums", "bass", "other", "vocals"], "segment": Fraction(39, 5)}
    model = HTDemucs(*args, **kwargs)
    return name, write_package(folder, name, HTDemucs, args, kwargs, model.state_dict(),
                               {"untrained": "seeded random weights: for timing only"})


def ratios(rows: list[dict]) -> list[dict]:
    def median(what, key):
        return statistics.median(r[key] for r in rows if r["what"] == what)

    sep, peer, ours = ("demucs CLI: separation", "peer: separation + loudness", "reelsplit run (whole process)")
    wall = median(ours, "wall_s") / median(sep, "wall_s")
    tree = median(ours, "peak_tree_mib") / median(sep, "peak_tree_mib")
    process = median(ours, "peak_process_mib") / median(sep, "peak_process_mib")
    return [
        {"ratio": "wall: reelsplit run / demucs CLI separation", "value": wall,
         "goal": f"<= {WALL_GOAL}", "met": "yes" if wall <= WALL_GOAL else "no"},
        {"ratio": "wall: reelsplit run / peer (separation + loudness)",
         "value": median(ours, "wall_s") / median(peer, "wall_s"), "goal": "", "met": ""},
        {"ratio": "wall: inside reelsplit's flow / demucs CLI separation",
         "value": median("reelsplit: inside the flow (report total_s)", "wall_s") / median(sep, "wall_s"),
         "goal": "", "met": ""},
        {"ratio": "peak RSS (tree): reelsplit / demucs CLI", "value": tree, "goal": "< 1",
         "met": "yes" if tree < 1 else "no"},
        {"ratio": "peak RSS (largest process): reelsplit / demucs CLI", "value": process, "goal": "< 1",
         "met": "yes" if process < 1 else "no"},
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="length of the reel (default 5)")
    p.add_argument("--model", default="dme-small", help="a bundled demucs-format model name (default dme-small)")
    p.add_argument("--profile", default="ebu-r128", help="reelsplit profile; loudnorm takes its target and "
                   "true-peak ceiling (default ebu-r128)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the demucs CLI (default: all cores, as `reelsplit run --workers 1`)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of (peer, reelsplit); ratios use medians")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per command")
    p.add_argument("--untrained", metavar="ARCH", default=None,
                   help="instead of --model: ARCH (htdemucs) with seeded random weights, for timing only")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.repeat < 1:
        p.error("--minutes must be > 0 and --repeat >= 1")

    def run() -> int:
        from pipeline.config import Settings
        from pipeline.profiles import load_profile

        if args.untrained:
            args.model, package = untrained_package(args.untrained, args.work / "demucs-repo-untrained")
            args.reelsplit_model, repo = str(package), package.parent
        else:
            args.reelsplit_model = args.model
        m = print_header(f"Peer benchmark: demucs CLI (+ loudnorm) vs reelsplit run, {args.minutes:g} min, "
                         f"model {args.model}" + (" (random weights: timing only)" if args.untrained else ""))
        args.threads = args.threads or m.cores
        profile = load_profile(args.profile)
        settings = Settings.load(None)
        reel = make_reel(args.minutes * 60, args.seed, folder=args.work / "inputs")
        seconds = audio_seconds(reel)
        if not args.untrained:
            repo = demucs_repo(args.model, folder=args.work / "demucs-repo")
        sep = settings.separation
        print(f"Input: {reel.name}, {seconds:.1f} s stereo 48 kHz (seed {args.seed}). Model {args.model}; "
              f"segment {sep.segment or 'model default'}, overlap {sep.overlap}, shifts {sep.shifts}, "
              f"split {sep.split}, CPU, {args.threads} torch threads for the demucs CLI (reelsplit: cores // "
              f"workers = {m.cores}). Loudness: ffmpeg loudnorm two-pass, I={profile.target_lufs} "
              f"TP={profile.true_peak_dbtp}, on the dialogue stem. Profile {profile.name}.\n")
        rows = []
        for i in range(1, args.repeat + 1):
            rows += one_round(i, reel, seconds, args, repo, profile, settings.stem_map, m.cores)
        print(markdown_table(rows, COLUMNS))
        print()
        table = ratios(rows)
        print(markdown_table(table, [("ratio", "ratio", ""), ("value", "value", ".2f"), ("goal", "goal", ""),
                                     ("met", "met", "")]))
        if args.csv:
            write_csv(args.csv, rows + [{"what": r["ratio"], "ratio": r["value"]} for r in table], m)
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
