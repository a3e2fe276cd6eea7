"""Scheduled processing of a drop folder: the deployment `reelsplit serve` registers, run by a Prefect Runner
started for one poll (`Runner.start(run_once=True)`) in Prefect's test harness; the same flow on a process work
pool taken by a worker; prefect.yaml through `prefect deploy`; the command's one-line errors."""
import asyncio
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from conftest import ROOT, run_cli
from pipeline.training.demo import make_demo_reel

CRON = "0 2 * * *"


def _reel(path: Path, seed: int, seconds: float = 3) -> Path:
    reel = make_demo_reel(path, seconds=seconds, layout="stereo", seed=seed).path
    os.utime(reel, (time.time() - 60, time.time() - 60))   # copied in a while ago: settled
    return reel


def _report(out: Path) -> dict[str, str]:
    """The last run's report: file name -> status."""
    with open(out / "reports" / "latest.csv", newline="", encoding="utf-8") as f:
        return {Path(row["file"]).name: row["status"] for row in csv.DictReader(f)}


def _read_deployment(name: str):
    from prefect import get_client

    async def read():
        async with get_client() as client:
            return await client.read_deployment_by_name(name)
    return asyncio.run(read())


@pytest.mark.slow
def test_served_deployment_takes_new_and_changed_files_and_skips_finished(harness, tmp_path):
    from flows import serve

    drop, out = tmp_path / "drop", tmp_path / "out"
    _reel(drop / "a.wav", 1)
    _reel(drop / "b.wav", 2)
    deployment = serve.deployment(serve.parameters(drop, out, model="dfn3"), CRON, name="nightly",
                                  timezone="Europe/Paris")
    first = serve.run_once(deployment)
    assert first.state.is_completed(), first.state.message
    assert _report(out) == {"a.wav": "ok", "b.wav": "ok"}
    frames = {t: sf.info(str(out / t / f"{t}_DX.wav")).frames for t in ("a", "b")}
    assert frames == {"a": 3 * 48000, "b": 3 * 48000}

    stored = _read_deployment("reelsplit-drop-folder/nightly")
    (sched,) = stored.schedules
    assert (sched.schedule.cron, sched.schedule.timezone) == (CRON, "Europe/Paris")
    assert stored.parameters["drop"] == str(drop) and stored.parameters["model"] == "dfn3"
    assert stored.entrypoint == "flows.serve.drop_flow"

    # the next run: b replaced by other material (4 s now), c new, a untouched, and a damaged file
    before_b = (out / "b" / "manifest.json").read_text()
    _reel(drop / "b.wav", 5, seconds=4)
    _reel(drop / "c.wav", 3)
    (drop / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 64)
    os.utime(drop / "broken.wav", (time.time() - 60, time.time() - 60))
    second = serve.run_once(deployment)
    assert second.state.is_failed() and "1 of 4 file(s) failed" in second.state.message
    assert _report(out) == {"a.wav": "skipped", "b.wav": "ok", "broken.wav": "failed", "c.wav": "ok"}
    assert (out / "b" / "manifest.json").read_text() != before_b
    assert sf.info(str(out / "b" / "b_DX.wav")).frames == 4 * 48000
    assert sf.info(str(out / "c" / "c_MIX.wav")).frames == 3 * 48000
    assert len(list((out / "reports").glob("2*.csv"))) == 2   # one report per run, besides latest.csv


@pytest.mark.slow
def test_cli_serve_once(tmp_path):
    drop, out = tmp_path / "drop", tmp_path / "out"
    _reel(drop / "reel one.wav", 7)
    proc = run_cli("serve", "--watch", drop, "--out", out, "--cron", CRON, "--model", "dfn3", "--once")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Completed" in proc.stdout and "files: 1 ok;" in proc.stdout
    assert sf.info(str(out / "reel_one" / "reel_one_ME.wav")).frames == 3 * 48000


@pytest.mark.parametrize("args, message", [
    (["--cron", "0 25 * * *"], 'schedule: Invalid cron string: "0 25 * * *"'),
    (["--cron", CRON, "--timezone", "Mars/Olympus"], 'schedule: Invalid timezone: "Mars/Olympus"'),
    (["--cron", CRON, "--profile", "no-such-profile"], "no-such-profile"),
    (["--cron", CRON, "--pool", "gpus"], "--pool registers on a Prefect server: set PREFECT_API_URL"),
])
def test_cli_serve_rejects_bad_settings_in_one_line(tmp_path, args, message):
    (tmp_path / "drop").mkdir()
    proc = run_cli("serve", "--watch", tmp_path / "drop", "--out", tmp_path / "out", "--model", "dfn3", *args,
                   timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


def test_cli_serve_needs_an_existing_drop_folder(tmp_path):
    proc = run_cli("serve", "--watch", tmp_path / "missing", "--out", tmp_path / "out", "--cron", CRON, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("missing: drop folder: not found")


@pytest.mark.slow
def test_work_pool_deployment_runs_on_a_process_worker(harness, tmp_path):
    """`reelsplit serve --pool` (flows/deploy.py): the deployment lands on a process work pool (created if
    missing) with its schedule, and a worker polling that pool runs it."""
    from prefect.deployments import run_deployment
    from prefect.workers.process import ProcessWorker

    from flows import deploy, serve

    drop, out = tmp_path / "drop", tmp_path / "out"
    _reel(drop / "p.wav", 11)
    deployment_id = deploy.deploy_to_pool(serve.parameters(drop, out, model="dfn3"), CRON, "reelsplit-test",
                                          name="pool-test", timezone="UTC")
    stored = _read_deployment("reelsplit-drop-folder/pool-test")
    assert stored.id == deployment_id and stored.work_pool_name == "reelsplit-test"
    assert stored.schedules[0].schedule.cron == CRON
    assert deploy.ensure_process_pool("reelsplit-test") is False   # it exists now

    flow_run = run_deployment(deployment_id, timeout=0)

    async def one_poll():
        async with ProcessWorker(work_pool_name="reelsplit-test") as worker:
            await worker.start(run_once=True)
    asyncio.run(one_poll())

    from prefect import get_client

    async def state():
        async with get_client() as client:
            return (await client.read_flow_run(flow_run.id)).state
    deadline = time.monotonic() + 300
    while not (final := asyncio.run(state())).is_final() and time.monotonic() < deadline:
        time.sleep(1)
    assert final.is_completed(), final.message
    assert _report(out) == {"p.wav": "ok"}
    assert sf.info(str(out / "p" / "p_DX.wav")).frames == 3 * 48000


@pytest.mark.slow
def test_prefect_yaml_deploys_through_prefects_cli(harness, tmp_path):
    """`prefect deploy` reads prefect.yaml: the deployment it registers runs drop_flow on the work pool at 2:00
    with parameters drop_flow accepts."""
    from prefect.settings import PREFECT_API_URL

    from flows import deploy
    from flows.serve import drop_flow

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (spec,) = config["deployments"]
    drop_flow.validate_parameters(spec["parameters"])   # raises on a parameter the flow does not take
    deploy.ensure_process_pool(spec["work_pool"]["name"])
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value())
    proc = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    stored = _read_deployment(f"reelsplit-drop-folder/{spec['name']}")
    assert stored.work_pool_name == spec["work_pool"]["name"] and stored.entrypoint == spec["entrypoint"]
    assert stored.schedules[0].schedule.cron == CRON
    assert stored.parameters["drop"] == spec["parameters"]["drop"]
    assert stored.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"]
