"""The reel flow: every input file is one Prefect task run (probe → … → qc); the report is written last. Each
reel's progress, QC verdict and the report's link also go to Prefect's dashboard as artifacts (flows/dashboard.py).

Tasks run in a thread pool of `workers`; the model is loaded once per process and shared. Task caching is
off: skipping finished work is decided by each title's manifest (content hash + profile + model + settings
+ code version), which survives across Prefect databases and machines.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from pipeline.batch import check_settled, discover
from pipeline.config import Settings
from pipeline.errors import TransientInputError
from pipeline.malloc import release_free_memory
from pipeline.models import ModelSpec
from pipeline.profiles import Profile
from pipeline.report import ReportRow, write_reports

from pipeline import progress

from . import dashboard, display
from .steps import ReelJob, process_reel


@dataclass(frozen=True)
class RunOptions:
    """How a run goes: `workers` concurrent files (None: `auto_workers`), `force` reprocesses current titles,
    `audio_stream` picks each file's audio stream (a:N), `dask` sends the files to Dask workers, `start_tc`
    (a label) replaces each file's start timecode and `tc_rate` gives the timecode rate where a file has none."""

    workers: int | None = 1
    force: bool = False
    audio_stream: int = 0
    dask: str | None = None
    start_tc: str | None = None
    tc_rate: str | None = None


@dataclass(frozen=True)
class RunSummary:
    rows: list[ReportRow]
    csv: Path
    html: Path
    out: Path

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.rows)


def auto_workers(inputs: list[Path]) -> int:
    """The default number of concurrent files: one per core, at most 4 and at most the number of files.
    Measured on 2 cores (benchmarks/RESULTS.md, threads): 4 short reels at 2 workers × 1 torch thread gave 18 %
    more files per hour than 1 worker × 2 threads with dme-small, and the same (0.97×) with DFN3; a single file
    keeps every core for its own torch threads."""
    files = sum(1 for item in discover(inputs) if not item.problem)
    return max(1, min(os.cpu_count() or 1, 4, files))


def set_torch_threads(workers: int) -> None:
    """Split the cores between concurrent files so torch does not oversubscribe them."""
    import torch
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, workers)))


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect's retry condition: only a TransientInputError (an input still being copied) is worth another
    try; anything else is permanent and is never retried."""
    try:
        state.result()
    except TransientInputError:
        return True
    except BaseException:
        return False
    return False


# An input still being copied into the drop folder is looked at again after 3, 6, 12, 24 and 48 s.
@task(name="process-reel", cache_policy=NO_CACHE, task_run_name="{job.title}", retries=5,
      retry_delay_seconds=exponential_backoff(backoff_factor=3), retry_condition_fn=retry_if_transient)
def reel_task(job: ReelJob, spec: ModelSpec, settings: Settings, profile: Profile, force: bool) -> ReportRow:
    logger = get_run_logger()

    def say(message: str) -> None:
        display.echo(message)
        logger.info(message)

    try:
        check_settled(job.path)
    except TransientInputError as exc:
        attempt, retries = task_run.run_count, reel_task.retries
        if attempt <= retries:   # raise: Prefect tries again after its back-off
            say(f"[{job.title}] {exc}; trying again later ({attempt} of {retries + 1} tries)")
            raise
        row = ReportRow(file=str(job.path), title=job.title, stage=exc.stage, model=spec.name, profile=profile.name,
                        error=f"{exc} (still changing after {attempt} tries)")
        say(f"[{job.title}] FAILED at {row.stage}: {job.path}: {row.error}")
        display.finish(job.title, row.status, row.stage_seconds)
        return row
    shown = dashboard.ReelProgress(job.title, words=settings.transcribe.enabled).start()
    # the stages' progress in samples, to the terminal's display and to the dashboard's progress artifact
    with display.reporting(job.title), progress.also(shown):
        row = process_reel(job, spec, settings, profile, force=force, say=say)
    display.finish(job.title, row.status, row.stage_seconds)
    shown.finish(row)
    dashboard.publish_qc(row)
    return row


@task(name="write-report", cache_policy=NO_CACHE)
def report_task(rows: list[ReportRow], out: Path, run_id: str, profile: Profile, model: str) -> tuple[Path, Path]:
    return write_reports(rows, out / "reports", run_id, profile=profile, model=model)


@flow(name="reelsplit-run")
def reel_flow(inputs: list[Path], out: Path, spec: ModelSpec, settings: Settings, profile: Profile,
              options: RunOptions = RunOptions()) -> RunSummary:
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    items = discover(inputs)
    display.echo(f"reelsplit: {len(items)} file(s), model {spec.label}, profile {profile.name}, out {out}")
    jobs = [ReelJob(i.path, i.title, out / i.title, options.audio_stream, options.start_tc, options.tc_rate)
            for i in items if not i.problem]
    rows = [ReportRow(file=str(i.path), title=i.title, error=i.problem, stage="input", model=spec.name,
                      profile=profile.name) for i in items if i.problem]
    for row in rows:
        display.echo(f"[{row.title}] FAILED at input: {row.file}: {row.error}")
    set_torch_threads(min(options.workers or 1, max(1, len(jobs))))   # fewer files than workers: more threads each
    futures = reel_task.map(jobs, spec=spec, settings=settings, profile=profile, force=options.force)
    rows += [f.result() for f in futures]
    csv, html = report_task(rows, out, run_id, profile, spec.label)
    dashboard.publish_report(rows, html, csv)
    return RunSummary(rows, csv, html, out)


def task_runner(workers: int = 1, dask: str | None = None):
    """Where the file tasks run: a thread pool of `workers` in this process; with `dask="local"` a temporary
    `distributed.LocalCluster` of `workers` single-threaded worker processes; with `dask=ADDRESS` an existing
    Dask cluster's scheduler (`tcp://host:8786`). Each Dask worker process loads the model once
    (flows/steps.py's per-process cache). prefect-dask's documented arguments: `DaskTaskRunner(address=...)`
    or `DaskTaskRunner(cluster_class=..., cluster_kwargs=...)` (prefect_dask/task_runners.py)."""
    if not dask:
        return ThreadPoolTaskRunner(max_workers=max(1, workers))
    from prefect_dask import DaskTaskRunner
    if dask == "local":
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": max(1, workers), "threads_per_worker": 1, "processes": True, "dashboard_address": None,
            "config": DASK_WORKER_CONFIG})
    return DaskTaskRunner(address=dask)


# Dask's sampling profiler keeps references to worker frames, so DFN3's runtime object (which must be freed on
# the thread that made it) was freed on another thread and leaked with an error; we do not use the profile.
DASK_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}   # dotted: merged into the workers' config


def run(inputs: list[Path], out: Path, spec: ModelSpec, settings: Settings, profile: Profile,
        options: RunOptions = RunOptions()) -> RunSummary:
    """Run the flow with `options.workers` concurrent files (None: `auto_workers`): threads here, or Dask
    workers (see `task_runner`)."""
    if options.workers is None:
        options = dataclasses.replace(options, workers=auto_workers(inputs))
    runner = task_runner(options.workers, options.dask)
    try:
        return reel_flow.with_options(task_runner=runner)(inputs, out, spec, settings, profile, options)
    finally:
        release_free_memory()     # the tuned allocator keeps freed blocks for the next segment, not when idle
