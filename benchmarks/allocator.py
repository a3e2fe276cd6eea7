"""Allocator benchmark: reelsplit's streamed demucs separation with glibc's default malloc and with
`pipeline.malloc.tune_malloc` (large blocks kept on the heap for reuse), each in a fresh process.

The child process does what a `reelsplit run` task does for the separate stage: loads the model on a worker
thread and runs its `separate` (block by block) there on a WAV of a seeded demo reel. It reports the stage's wall
time, the process's user and kernel CPU seconds, minor page faults and peak RSS. Settings alternate within each
round, so a drift of the machine's speed hits both alike.

    .venv/bin/python benchmarks/allocator.py [--seconds 60] [--models htdemucs-untrained dme-small] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import (CACHE, BenchmarkError, Column, add_common_args, main_guard, make_reel, markdown_table, note,
                     print_header, write_csv)

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"glibc default": "system", "tuned (reelsplit)": ""}     # REELSPLIT_MALLOC value for the child

COLUMNS: list[Column] = [
    ("model", "model", ""), ("allocator", "allocator", ""), ("round", "round", ""),
    ("separate_s", "separate s", ".1f"), ("user_s", "user CPU s", ".0f"), ("sys_s", "kernel CPU s", ".1f"),
    ("minflt_k", "minor faults (k)", ".0f"), ("maxrss_mib", "peak RSS (MiB)", ".0f"),
]


def child(model: str, wav: Path) -> None:
    """Runs in the measured process; prints one JSON line."""
    sys.path.insert(0, str(ROOT))
    from pipeline.malloc import tune_malloc
    tuned = tune_malloc()
    import torch

    from pipeline.layout import LAYOUTS
    from pipeline.readers import WavReader, Workspace
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.separate import load_separator

    torch.set_num_threads(os.cpu_count() or 1)
    out: dict = {"tuned": tuned.applied}

    def stage() -> None:      # on a worker thread, as Prefect's task runner runs it
        settings = Settings.load(None)
        sep = load_separator(resolve(model), settings.separation, settings.stem_map)
        reader = WavReader(wav)
        work = wav.parent / f"work-{os.getpid()}"
        work.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        with Workspace(work) as workspace:       # the stems' spill files are removed when it closes
            sep.separate(reader, reader.rate, LAYOUTS["stereo"], workspace)
            out["separate_s"] = time.perf_counter() - t0
        reader.close()
        work.rmdir()

    thread = threading.Thread(target=stage)
    thread.start()
    thread.join()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.update(user_s=ru.ru_utime, sys_s=ru.ru_stime, minflt_k=ru.ru_minflt / 1000, maxrss_mib=ru.ru_maxrss / 1024)
    print(json.dumps(out))


def measure(model: str, wav: Path, setting: str, timeout: float) -> dict:
    env = {**os.environ, "REELSPLIT_MALLOC": setting}
    proc = subprocess.run([sys.executable, __file__, "--child", model, str(wav)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if proc.returncode != 0:
        raise BenchmarkError(f"{model}: child failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def model_spec(name: str) -> str:
    if name == "htdemucs-untrained":
        from peer import untrained_package
        return str(untrained_package("htdemucs", CACHE / "demucs-repo-untrained")[1])
    return name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="reel length (default 60)")
    p.add_argument("--models", nargs="+", default=["htdemucs-untrained", "dme-small"],
                   help="htdemucs-untrained (the htdemucs architecture, random weights) and/or model specs")
    p.add_argument("--repeat", type=int, default=2, help="rounds (default 2)")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--child", nargs=2, metavar=("MODEL", "WAV"), help=argparse.SUPPRESS)
    add_common_args(p)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    m = print_header(f"Allocator: streamed demucs separation, {args.seconds:g} s stereo 48 kHz, glibc default "
                     "malloc vs tune_malloc")
    reel = make_reel(args.seconds, args.seed, folder=args.work / "inputs")
    wav = args.work / "allocator" / f"{reel.stem}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    if not wav.is_file():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(reel), "-vn", "-c:a", "pcm_f32le",
                        str(wav)], check=True)
    rows = []
    for model in args.models:
        spec = model_spec(model)
        for r in range(1, args.repeat + 1):
            order = list(SETTINGS.items()) if r % 2 else list(SETTINGS.items())[::-1]
            for label, setting in order:
                res = measure(spec, wav, setting, args.timeout)
                if res["tuned"] != (setting == ""):
                    raise BenchmarkError(f"{label}: the child's allocator setting did not take effect")
                note(f"{model} {label} round {r}: {res['separate_s']:.1f} s")
                rows.append({"model": model, "allocator": label, "round": r, **res})
    print(markdown_table(rows, COLUMNS))
    print()
    for model in args.models:
        med = {label: statistics.median(x["separate_s"] for x in rows
                                        if x["model"] == model and x["allocator"] == label) for label in SETTINGS}
        default, tuned = med["glibc default"], med["tuned (reelsplit)"]
        print(f"{model}: separate stage {default:.1f} s → {tuned:.1f} s with the tuned allocator "
              f"({(tuned / default - 1) * 100:+.0f} %, medians)")
    if args.csv:
        write_csv(args.csv, rows, m)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
