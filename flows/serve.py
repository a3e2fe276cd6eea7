"""Scheduled runs of a drop folder: `drop_flow` as a Prefect deployment with a cron schedule, served from this
machine (`reelsplit serve`) or run once now (`reelsplit serve --once`).

Each run takes the folder as it is then: titles whose manifest matches the input's content hash (with the
profile, model, settings and code version) are skipped, new or changed files are processed, and the run's
report is written. flows/deploy.py puts the same flow on a work pool for a Prefect server's workers.
Prefect API used (prefect 3.9.1 source): `Flow.to_deployment(name, schedules=[Cron(...)], parameters=...,
entrypoint_type=...)`, `prefect.serve(*deployments)`, `Runner.add_deployment`, `Runner.start(run_once=True)`
("one query loop", waiting for the runs it started), `run_deployment(..., timeout=0)`.
"""
from __future__ import annotations

import asyncio
import csv
import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron, Schedule

from pipeline.config import OUTPUT_TRACKS, Settings, check_choice, with_speed_options, with_transcribe
from pipeline.errors import ConfigError
from pipeline.models import resolve
from pipeline.profiles import load_profile
from pipeline.starttc import check_options

from .logs import OUR_LOGGERS, add_file_log
from .reel import RunOptions, run

DEPLOYMENT = "drop-folder"


class FilesFailed(RuntimeError):
    """Some files of a scheduled run failed (the others were delivered): the flow run ends Failed."""


@dataclass(frozen=True)
class DropOptions:
    """How each scheduled run goes: `workers` files at once, `dask` a Dask scheduler address (or "local"),
    `stream` which audio stream of each file, `stereo_downmix` stereo stems of 5.1 sources too, `start_tc` a
    start timecode for every file instead of its own, `tc_rate` the timecode rate of files without one,
    `output_tracks` the deliverable's track structure (None: the config's); `transcribe`, `asr_model` and
    `language` the speech recognition's options over the config's `transcribe:`."""

    workers: int = 1
    dask: str | None = None
    stream: int = 0
    stereo_downmix: bool = False
    start_tc: str | None = None
    tc_rate: str | None = None
    output_tracks: str | None = None
    transcribe: bool = True          # False: --no-transcribe
    asr_model: str | None = None     # --asr-model
    language: str | None = None      # --language (ISO 639-1)
    precision: str | None = None          # --precision: demucs on CUDA in fp32, bf16 or fp16
    batch_segments: int | None = None     # --batch-segments: demucs segments per forward pass


@flow(name="reelsplit-drop-folder")
def drop_flow(drop: str, out: str, profile: str = "ebu-r128", model: str | None = None, config: str | None = None,
              options: DropOptions = DropOptions()) -> dict:
    """Process every media file in `drop` into `out` (finished titles are skipped), then write the report.
    Parameters are names and paths only, as a deployment stores them; the settings, profile and model are
    resolved here, in the run. Ends Failed when a file failed."""
    settings = with_transcribe(Settings.load(Path(config) if config else None), off=not options.transcribe,
                               model=options.asr_model, language=options.language)
    check_options(options.start_tc, options.tc_rate)
    if options.stereo_downmix:
        settings = dataclasses.replace(settings, stereo_downmix=True)
    if options.output_tracks:
        settings = dataclasses.replace(settings, output_tracks=check_choice(
            options.output_tracks, OUTPUT_TRACKS, "output_tracks", "reelsplit serve"))
    settings = with_speed_options(settings, options.precision, options.batch_segments)
    spec, delivery = resolve(model or settings.separation.model), load_profile(profile)
    out_dir = Path(out)
    log = add_file_log(out_dir / "reports" / "reelsplit.log")
    try:
        summary = run([Path(drop)], out_dir, spec, settings, delivery,
                      RunOptions(workers=options.workers, dask=options.dask, audio_stream=options.stream,
                                 start_tc=options.start_tc, tc_rate=options.tc_rate))
    finally:
        for name in OUR_LOGGERS:   # a served process runs many flows: one log handler per run
            logging.getLogger(name).removeHandler(log)
        log.close()
    counts = Counter(r.status for r in summary.rows)
    if summary.failed:
        raise FilesFailed(f"{summary.failed} of {len(summary.rows)} file(s) failed; report: {summary.html}")
    return {"ok": counts["ok"], "skipped": counts["skipped"], "failed": 0, "csv": str(summary.csv),
            "html": str(summary.html)}


def parameters(drop: Path, out: Path, *, profile: str = "ebu-r128", model: str | None = None,
               config: Path | None = None, options: DropOptions = DropOptions()) -> dict:
    """`drop_flow`'s parameters as the deployment stores them (JSON: absolute paths as strings)."""
    absolute = lambda p: str(Path(p).expanduser().absolute())  # noqa: E731
    return {"drop": absolute(drop), "out": absolute(out), "profile": profile, "model": model,
            "config": absolute(config) if config else None, "options": dataclasses.asdict(options)}


def local_timezone() -> str:
    """This machine's IANA time zone (a cron of "0 2 * * *" means 2 am here), UTC if unknown."""
    try:
        import tzlocal   # a dependency of Prefect's (through dateparser)
        return tzlocal.get_localzone_name() or "UTC"
    except Exception:   # no zone configured, or tzlocal missing
        return "UTC"


def schedule(cron: str, timezone: str | None = None) -> Schedule:
    """A cron schedule in `timezone` (default: this machine's); a bad cron or zone is one ConfigError."""
    from prefect.client.schemas.schedules import CronSchedule
    zone = timezone or local_timezone()
    try:
        CronSchedule(cron=cron, timezone=zone)   # the server's own validation, here rather than at registration
    except ValueError as exc:   # pydantic's ValidationError: "Value error, Invalid cron string: ... [type=..."
        reason = next((line.strip().removeprefix("Value error, ").split(" [type=")[0]
                       for line in str(exc).splitlines() if "Value error" in line), "not a valid schedule")
        raise ConfigError(f"schedule: {reason}") from exc
    return Cron(cron, timezone=zone)


def deployment(params: dict, cron: str, *, name: str = DEPLOYMENT, timezone: str | None = None) -> RunnerDeployment:
    """The deployment `reelsplit-drop-folder/<name>`: `drop_flow` with these parameters on a cron schedule. Its
    entrypoint is the module path `flows.serve.drop_flow`, importable wherever reelsplit is installed."""
    return drop_flow.to_deployment(
        name, schedules=[schedule(cron, timezone)], parameters=params, entrypoint_type=EntrypointType.MODULE_PATH,
        description=f"reelsplit: every new or changed file in {params['drop']} into {params['out']}",
        tags=["reelsplit"])


def serve(deploy: RunnerDeployment) -> None:
    """Serve the deployment until interrupted: Prefect's Runner polls the API for its scheduled runs and runs
    each in a subprocess; the schedule is paused when serving stops (Prefect's `pause_on_shutdown`)."""
    from prefect import serve as prefect_serve
    prefect_serve(deploy, print_starting_message=False)


def run_once(deploy: RunnerDeployment) -> FlowRun:
    """Register the deployment, start one run of it now and wait for it (a Runner started for one poll);
    returns the finished flow run (its state is Completed, or Failed when a file failed)."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.runner import Runner

    runner = Runner(name=f"reelsplit-{deploy.name}")
    deployment_id = runner.add_deployment(deploy)
    flow_run = run_deployment(deployment_id, timeout=0)   # scheduled now; the runner's one poll picks it up
    asyncio.run(runner.start(run_once=True))

    async def read() -> FlowRun:
        async with get_client() as client:
            return await client.read_flow_run(flow_run.id)
    return asyncio.run(read())


def report_counts(out: Path) -> dict[str, int]:
    """Files by status in OUT/reports/latest.csv (what the last run did)."""
    with open(out / "reports" / "latest.csv", newline="", encoding="utf-8") as f:
        return dict(Counter(row["status"] for row in csv.DictReader(f)))
