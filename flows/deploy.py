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
from typing import Iterator
from uuid import UUID


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


@contextlib.contextmanager
def local_server(timeout: float = 180.0, ui_port: int | None = None) -> Iterator[tuple[str, str | None]]:
    """A Prefect API whose scheduler creates the cron runs: the configured one (PREFECT_API_URL, a profile),
    else a `prefect server start` child with its services (`prefect_env.LocalServer`), stopped on exit; with
    `ui_port`, the child listens there with Prefect's UI. Yields (API URL, dashboard URL or None).
    Prefect's temporary server runs no scheduler service, so a served cron schedule needs a real one."""
    from . import prefect_env

    server = prefect_env.start_local_server(timeout=timeout, services=True, own_session=True, ui_port=ui_port)
    with prefect_env.connected(server) as url:
        yield url, prefect_env.dashboard_url(server)
