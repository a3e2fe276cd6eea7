"""Overhead benchmark: where one reel's time goes, and how much of it is not the models' forward passes.

For each model (default `dfn3` and `dme-small`) on one seeded stereo 48 kHz reel (default 1 minute):

  1. `reelsplit run` as a user runs it: per-stage seconds from its report (OUT/reports/latest.csv) and the
     whole process's wall time (the rest is start-up: imports, Prefect's server start, the report);
  2. the same reel in-process through `flows.steps.process_reel` (what the flow runs per file), with the model
     loaded beforehand and its forward passes timed: the separation model's (demucs `forward`, DFN3's
     `process_chunk`/`finalize`) and silero-vad's (VAD and QC), attributed to the stage they ran in; optionally
     under pyinstrument, whose samples outside any forward pass name the top non-model hotspots (by the
     innermost `pipeline/` or `flows/` function).

The goal (issue #5): everything but the models' forward passes under 10 % of the total.

    .venv/bin/python benchmarks/overhead.py [--minutes 1] [--models dfn3 dme-small] [--hotspots 10] [--csv FILE]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from _common import (ROOT, BenchmarkError, add_common_args, audio_seconds, bench_env, main_guard,
                     make_reel, markdown_table, note, print_header, reelsplit_run, write_csv)

SHARE_GOAL = 10.0   # % of the total that may be anything but model forward passes
FORWARD = "_model_forward"   # the name of the timing wrapper: pyinstrument frames under it are model time
STAGE_LINE = re.compile(r"^\[.*\] (\w+)\s+[\d.]+ s$")   # StageTimer's line at the end of each stage


class ForwardClock:
    """Seconds inside model forward passes, by model ("separation", "vad") and by the stage they ran in."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.by_stage: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._mark: dict[str, float] = {}
        self._restore: list = []

    def wrap(self, fn, kind: str):
        def _model_forward(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[kind] += time.perf_counter() - t0
                self.calls[kind] += 1
        assert _model_forward.__name__ == FORWARD
        return _model_forward

    def stage_ended(self, stage: str) -> None:
        """Give the forward time since the previous stage's end to `stage`."""
        for kind, total in self.seconds.items():
            self.by_stage[stage][kind] += total - self._mark.get(kind, 0.0)
        self._mark = dict(self.seconds)

    def attach(self, separator) -> None:
        """Time `separator`'s model and silero-vad's (pipeline.vad._model_probs) until `detach`."""
        model = getattr(separator, "model", None)
        if model is not None:                                   # DemucsSeparator: a model or a bag of them
            for m in list(getattr(model, "models", None) or [model]):
                m.forward = self.wrap(m.forward, "separation")   # nn.Module.__call__ calls self.forward
                self._restore.append(lambda m=m: m.__dict__.pop("forward", None))
        elif hasattr(separator, "new_runtime"):                  # Dfn3Separator: a runtime per channel
            factory, clock = separator.new_runtime, self

            class TimedDfn3:
                def __init__(self):
                    self._inner = factory()
                    self.process_chunk = clock.wrap(self._inner.process_chunk, "separation")
                    self.finalize = clock.wrap(self._inner.finalize, "separation")

                def __getattr__(self, name):
                    return getattr(self._inner, name)

            separator.new_runtime = TimedDfn3                    # an instance attribute over the method
            self._restore.append(lambda: separator.__dict__.pop("new_runtime", None))
        else:
            raise BenchmarkError(f"do not know how to time the forward passes of {type(separator).__name__}")
        from pipeline import vad
        if hasattr(vad, "_model_probs"):
            original = vad._model_probs
            vad._model_probs = self.wrap(original, "vad")
            self._restore.append(lambda: setattr(vad, "_model_probs", original))
        else:
            note("pipeline.vad has no _model_probs: silero-vad time is counted as non-forward")

    def detach(self) -> None:
        while self._restore:
            self._restore.pop()()


def hotspots(root_frame, total: float, top: int) -> list[dict]:
    """Top `top` non-model hotspots of a pyinstrument frame tree: time outside any forward pass, given to the
    innermost pipeline/ or flows/ function on the stack (library code below it counts as its time)."""
    project = (str(ROOT / "pipeline") + os.sep, str(ROOT / "flows") + os.sep)
    spent: dict[tuple, float] = defaultdict(float)
    stack = [(root_frame, None)]
    while stack:
        frame, owner = stack.pop()
        if frame.function == FORWARD:
            continue
        path = frame.file_path or ""
        if path.startswith(project) and not frame.is_synthetic:
            owner = (frame.function, f"{os.path.relpath(path, ROOT)}:{frame.line_no}")
        spent[owner or ("(outside pipeline/flows)", "")] += frame.total_self_time
        stack += [(child, owner) for child in frame.children if not child.is_synthetic]
    ranked = sorted(spent.items(), key=lambda kv: -kv[1])[:top]
    return [{"function": f, "where": w, "seconds": s, "pct": 100 * s / total} for (f, w), s in ranked]


def in_process(reel: Path, model: str, profile_name: str, work: Path, cores: int, top: int) -> dict:
    """process_reel on `reel` with the model loaded first and its forward passes timed."""
    os.environ.update({k: v for k, v in bench_env().items() if k.startswith(("REELSPLIT_", "HF_"))})
    import torch
    torch.set_num_threads(cores)   # as flows.reel.set_torch_threads(workers=1)

    from flows.steps import ReelJob, get_separator, process_reel
    from pipeline import vad
    from pipeline.batch import safe_title
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile

    settings, spec, profile = Settings.load(None), resolve(model), load_profile(profile_name)
    t0 = time.perf_counter()
    separator = get_separator(spec, settings)
    if hasattr(vad, "_model"):
        vad._model()
    load_s = time.perf_counter() - t0
    clock = ForwardClock()
    clock.attach(separator)
    out = work / "overhead" / f"inproc-{model}"
    shutil.rmtree(out, ignore_errors=True)
    title = safe_title(reel.stem)

    def say(message: str) -> None:
        note(message)
        m = STAGE_LINE.match(message)
        if m:
            clock.stage_ended(m.group(1))

    profiler = None
    if top:
        try:
            from pyinstrument import Profiler
        except ImportError as exc:
            raise BenchmarkError("--hotspots needs pyinstrument (pip install pyinstrument), or pass --hotspots 0") \
                from exc
        profiler = Profiler(interval=0.005)
        profiler.start()
    try:
        row = process_reel(ReelJob(reel, title, out / title), spec, settings, profile, force=True, say=say)
    finally:
        session = profiler.stop() if profiler else None
        clock.detach()
    if row.status != "ok":
        raise BenchmarkError(f"{reel}: {row.status} at {row.stage}: {row.error}")
    found = hotspots(session.root_frame(), row.total_s, top) if session and session.root_frame() else []
    return {"row": row, "load_s": load_s, "clock": clock, "hotspots": found}


def model_tables(model: str, reel: Path, seconds: float, args, cores: int) -> tuple[list[dict], list[dict], list]:
    from pipeline.report import STAGES

    cli = None
    if not args.no_cli:
        note(f"{model}: reelsplit run ...")
        cli = reelsplit_run([reel], args.work / "overhead" / f"cli-{model}", model=model,
                            log=args.work / "overhead" / "logs" / f"{model}.log",
                            extra=["--profile", args.profile], timeout=args.timeout)
    note(f"{model}: in-process ...")
    ip = in_process(reel, model, args.profile, args.work, cores, args.hotspots)
    row, clock = ip["row"], ip["clock"]
    total = row.total_s
    forward_total = sum(clock.seconds.values())
    stages = []
    for s in STAGES:
        if s not in row.stage_seconds and (cli is None or not cli.stage_seconds.get(s)):
            continue
        own = row.stage_seconds.get(s, 0.0)
        fwd = sum(clock.by_stage.get(s, {}).values())
        stages.append({"model": model, "stage": s, "cli_s": cli.stage_seconds[s] if cli else None,
                       "inproc_s": own, "forward_s": fwd, "other_s": own - fwd,
                       "other_pct": 100 * (own - fwd) / total})
    other = total - forward_total
    summary = [
        {"model": model, "what": "audio", "value": seconds, "unit": "s"},
        {"model": model, "what": "model load (before the reel, in-process)", "value": ip["load_s"], "unit": "s"},
        {"model": model, "what": "in-process total (process_reel)", "value": total, "unit": "s"},
        *({"model": model, "what": f"{kind} model forward ({clock.calls[kind]} calls)", "value": sec, "unit": "s"}
          for kind, sec in clock.seconds.items()),
        {"model": model, "what": "everything else, in-process", "value": other, "unit": "s"},
        {"model": model, "what": f"everything else, share of in-process total (goal < {SHARE_GOAL:g} %)",
         "value": 100 * other / total, "unit": "%", "met": "yes" if 100 * other / total < SHARE_GOAL else "no"},
    ]
    if cli:
        wall = cli.sampled.wall_s
        summary += [
            {"model": model, "what": "CLI: whole process wall", "value": wall, "unit": "s"},
            {"model": model, "what": "CLI: inside the flow (report total_s)", "value": cli.pipeline_s, "unit": "s"},
            {"model": model, "what": "CLI: outside the flow (start-up, Prefect, report)",
             "value": wall - cli.pipeline_s, "unit": "s"},
            {"model": model, "what": "CLI: everything but forward passes, share of wall (forward from in-process)",
             "value": 100 * (wall - forward_total) / wall, "unit": "%",
             "met": "yes" if 100 * (wall - forward_total) / wall < SHARE_GOAL else "no"},
        ]
    return stages, summary, ip["hotspots"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.0, help="length of the reel (default 1)")
    p.add_argument("--models", nargs="+", default=["dfn3", "dme-small"], help="--model values (default dfn3 dme-small)")
    p.add_argument("--profile", default="ebu-r128", help="delivery profile (default ebu-r128)")
    p.add_argument("--hotspots", type=int, default=10,
                   help="profile the in-process run with pyinstrument and list this many hotspots (0: no profiler)")
    p.add_argument("--no-cli", action="store_true", help="skip the `reelsplit run` subprocess")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed for the CLI run")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.hotspots < 0:
        p.error("--minutes must be > 0 and --hotspots >= 0")

    def run() -> int:
        m = print_header(f"Overhead benchmark: one {args.minutes:g}-minute reel, models {', '.join(args.models)}")
        reel = make_reel(args.minutes * 60, args.seed, folder=args.work / "inputs")
        seconds = audio_seconds(reel)
        profiled = "profiled with pyinstrument (5 ms samples)" if args.hotspots else "not profiled"
        print(f"Input: {reel.name}, {seconds:.1f} s stereo 48 kHz (seed {args.seed}), profile {args.profile}, "
              f"{m.cores} torch threads. Forward time is attributed to the stage it ran in; the in-process run "
              f"was {profiled}.\n")
        all_stages, all_summary = [], []
        for model in args.models:
            stages, summary, spots = model_tables(model, reel, seconds, args, m.cores)
            print(f"### {model}\n")
            print(markdown_table(stages, [("stage", "stage", ""), ("cli_s", "CLI run s", ".2f"),
                                          ("inproc_s", "in-process s", ".2f"), ("forward_s", "model forward s", ".2f"),
                                          ("other_s", "other s", ".2f"), ("other_pct", "other % of total", ".1f")]))
            print()
            print(markdown_table(summary, [("what", "", ""), ("value", "value", ".2f"), ("unit", "", ""),
                                           ("met", "goal met", "")]))
            if spots:
                print("\nTop non-model hotspots (in-process, innermost pipeline/flows function):\n")
                for i, h in enumerate(spots, 1):
                    print(f"{i}. `{h['function']}` {h['where']}: {h['seconds']:.2f} s ({h['pct']:.1f} %)")
            print()
            all_stages += stages
            all_summary += summary
        if args.csv:
            write_csv(args.csv, all_stages + [{"model": r["model"], "stage": r["what"], "value": r["value"],
                                               "unit": r["unit"]} for r in all_summary], m)
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
