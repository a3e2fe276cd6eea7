"""Beyond one machine: `drop_flow` on a Prefect server's work pool, and a local Prefect server for `serve`.

Work pool: the deployment is registered on a process work pool; each GPU box runs one worker
(`prefect worker start --pool NAME`, reelsplit installed there) and takes the scheduled runs from the pool.
prefect.yaml in the repository root does the same with `prefect deploy`.
Prefect API used (prefect 3.9.1 source): `Flow.deploy(name, work_pool_name=..., schedules=..., parameters=...,
entrypoint_type=EntrypointType.MODULE_PATH, build=False, push=False)`, which needs no image when the entrypoint
is a module path importable on the workers; `ProcessWorker.get_default_base_job_template()` as
`prefect work-pool create --type process` uses it.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator
from uuid import UUID

from pipeline.errors import ConfigError


def ensure_process_pool(pool: str) -> bool:
    """Create the process work pool `pool` on the Prefect server unless it exists; True if it was created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async def ensure() -> bool:
        async with get_client() as client:
            try:
                await client.read_work_pool(pool)
                return False
            except ObjectNotFound:
                await client.create_work_pool(WorkPoolCreate(
                    name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
                return True
    return asyncio.run(ensure())


def deploy_to_pool(params: dict, cron: str, pool: str, *, name: str, timezone: str | None = None) -> UUID:
    """Register `drop_flow` with these parameters and schedule on the work pool `pool` (created as a process
    pool if missing); the pool's workers run it. Returns the deployment id."""
    from prefect.deployments.runner import EntrypointType

    from .serve import drop_flow, schedule

    ensure_process_pool(pool)
    return drop_flow.deploy(
        name, work_pool_name=pool, schedules=[schedule(cron, timezone)], parameters=params,
        entrypoint_type=EntrypointType.MODULE_PATH, build=False, push=False, print_next_steps=False,
        ignore_warnings=True, tags=["reelsplit"],
        description=f"reelsplit: every new or changed file in {params['drop']} into {params['out']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(timeout: float = 180.0) -> Iterator[str]:
    """A Prefect API whose scheduler creates the cron runs: PREFECT_API_URL when it is set; else a
    `prefect server start` child on 127.0.0.1 (SQLite in PREFECT_HOME, so deployments and run history
    persist), stopped on exit. Prefect's temporary server runs no scheduler service, so a served cron
    schedule needs a real one. Prefect reads its settings once, when imported, so the URL is also set as a
    temporary setting; the environment variable carries it to flow-run subprocesses."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log_path = Path(os.environ["PREFECT_HOME"]) / "server.log"
    with open(log_path, "ab") as log:
        # its own session: Ctrl-C stops the runner (which pauses the schedule through the API), then we stop it
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if proc.poll() is not None:
                raise ConfigError(f"the local Prefect server exited with {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise ConfigError(f"the local Prefect server did not answer in {timeout:.0f} s; see {log_path}")
            time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = url
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
