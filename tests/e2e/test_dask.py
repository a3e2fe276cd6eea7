"""One flow run spread over a Dask cluster (prefect-dask's DaskTaskRunner): a LocalCluster of 2 worker processes
on this machine stands in for a real cluster; every file is processed, both workers take files, and each worker
process loads the model once, not once per file."""
import os
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import run_cli
from pipeline.training.demo import make_demo_reel

pytestmark = pytest.mark.slow


def _reels(folder: Path, seeds) -> list[Path]:
    paths = [make_demo_reel(folder / f"d{seed}.wav", seconds=3, layout="stereo", seed=seed).path for seed in seeds]
    for p in paths:
        os.utime(p, (time.time() - 60, time.time() - 60))   # settled: not still being copied in
    return paths


def _count_on_worker():
    """Run on each worker (client.run): count model loads and files from here on, in that worker process."""
    import flows.steps

    counts = {"loads": 0, "files": 0}

    def counted(function, key):
        def wrapper(*args, **kwargs):
            counts[key] += 1
            return function(*args, **kwargs)
        return wrapper
    flows.steps.load_separator = counted(flows.steps.load_separator, "loads")   # what get_separator calls
    # reel_task reaches Dask by value; the process_reel it calls is looked up by name when it is unpickled here
    flows.steps.process_reel = counted(flows.steps.process_reel, "files")
    flows.steps.worker_counts = counts


def _worker_state():
    import flows.steps
    return {**flows.steps.worker_counts, "pid": os.getpid(), "offline": os.environ.get("REELSPLIT_OFFLINE"),
            "prefect_home": os.environ.get("PREFECT_HOME")}


def test_one_run_over_two_dask_workers_loads_the_model_once_per_worker(harness, tmp_path):
    from distributed import Client, LocalCluster

    from flows.reel import DASK_WORKER_CONFIG, RunOptions, run
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile

    inputs = _reels(tmp_path / "in", range(1, 5))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      config=DASK_WORKER_CONFIG) as cluster, Client(cluster) as client:
        client.run(_count_on_worker)
        summary = run(inputs, tmp_path / "out", resolve("dfn3"), Settings.load(), load_profile("ebu-r128"),
                      RunOptions(workers=2, dask=cluster.scheduler_address))
        workers = client.run(_worker_state)

    assert [r.status for r in summary.rows] == ["ok"] * 4
    for row in summary.rows:
        assert sf.info(str(tmp_path / "out" / row.title / f"{row.title}_DX.wav")).frames == 3 * 48000
    assert len(workers) == 2 and len({w["pid"] for w in workers.values()} | {os.getpid()}) == 3
    assert sum(w["files"] for w in workers.values()) == 4
    for w in workers.values():
        assert w["files"] >= 1 and w["loads"] == 1, workers   # spread over both, one model load each
        assert w["offline"] == "1" and w["prefect_home"] == os.environ["PREFECT_HOME"]   # the test's environment


def test_cli_run_on_a_local_dask_cluster(tmp_path):
    _reels(tmp_path / "in", (7, 8))
    proc = run_cli("run", tmp_path / "in", "--out", tmp_path / "out", "--model", "dfn3", "--workers", "2",
                   "--dask", "local")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reelsplit: 2 ok, 0 skipped, 0 failed" in proc.stdout
    for title in ("d7", "d8"):
        assert sf.info(str(tmp_path / "out" / title / f"{title}_MIX.wav")).frames == 3 * 48000
