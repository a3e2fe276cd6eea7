"""Prefect's dashboard: `reelsplit serve --once --port P` runs a drop folder with the UI on port P and each reel's
artifacts (progress, QC table, the report's link) reach the API; `reelsplit serve --port P` then shows that run in
the dashboard (the page answers, a headless-Chromium screenshot of the run's page is taken: with
REELSPLIT_DOCS_SHOTS=1 it replaces docs/prefect-dashboard.png, `make dashboard-shot`); `run --ui` serves the
dashboard while it runs; a port in use is one line naming it."""
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from pipeline.training.demo import make_demo_reel

CRON = "0 2 * * *"
CLI = [sys.executable, "-m", "flows.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reel(path: Path, seed: int, seconds: float = 4) -> Path:
    reel = make_demo_reel(path, seconds=seconds, layout="stereo", seed=seed).path
    os.utime(reel, (time.time() - 60, time.time() - 60))   # copied in a while ago: settled
    return reel


def _get(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Accept": "text/html"})    # a browser's navigation
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status, reply.read().decode("utf-8", "replace")


def _post(url: str, body: dict) -> list[dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}: {proc.stdout.read()[-3000:]}"
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def _stop(proc: subprocess.Popen) -> str:
    """Ctrl-C, as a user stops `reelsplit serve` (the runner, then its server); its output."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def _artifacts(api: str, flow_run: str) -> dict[str, dict]:
    """The artifacts of the drop flow's run and of the reel flow it ran, by key."""
    runs = _post(f"{api}/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run]}}})
    ids = [flow_run] + [r["id"] for r in runs]
    found = _post(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": ids}}})
    return {a["key"]: a for a in found}


@pytest.mark.slow
def test_serve_shows_each_reels_progress_and_qc_in_the_dashboard(tmp_path):
    drop, out, port = tmp_path / "drop", tmp_path / "out", _free_port()
    _reel(drop / "Reel 1_v2.wav", 21)
    _reel(drop / "reel2.wav", 22, seconds=3)
    once = run_cli("serve", "--watch", drop, "--out", out, "--cron", CRON, "--model", "dfn3", "--once",
                   "--port", port)
    assert once.returncode == 0, once.stdout[-2000:] + once.stderr[-3000:]
    assert f"reelsplit: dashboard http://127.0.0.1:{port}\n" in once.stdout
    flow_run = re.search(rf"http://127\.0\.0\.1:{port}/runs/flow-run/([0-9a-f-]{{36}})", once.stdout).group(1)
    with open(out / "reports" / "latest.csv", newline="", encoding="utf-8") as f:
        rows = {row["title"]: row for row in csv.DictReader(f)}
    assert {t: r["status"] for t, r in rows.items()} == {"Reel_1_v2": "ok", "reel2": "ok"}

    # the run is in the database: `reelsplit serve` on the same port shows it
    serving = subprocess.Popen(CLI + ["serve", "--watch", str(drop), "--out", str(out), "--cron", CRON, "--model",
                                      "dfn3", "--port", str(port)], cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/health", serving)
        status, page = _get(f"http://127.0.0.1:{port}/")    # redirected to Prefect's default UI
        assert status == 200 and '<div id="root"' in page and "<title>Prefect Server</title>" in page
        api = f"http://127.0.0.1:{port}/api"
        artifacts = _artifacts(api, flow_run)
        for title in rows:
            key = {"Reel_1_v2": "reel-1-v2", "reel2": "reel2"}[title]
            progress, table = artifacts[f"progress-{key}"], artifacts[f"qc-{key}"]
            assert progress["type"] == "progress" and progress["data"] == 100, progress
            assert table["type"] == "table" and table["task_run_id"], table
            figures = {r["field"]: r["value"] for r in json.loads(table["data"])}
            assert figures["status"] == "ok" and figures["qc"] == rows[title]["qc"] in ("pass", "fail")
            assert figures["output_lufs"] == pytest.approx(float(rows[title]["output_lufs"]), abs=0.05)
            assert figures["true_peak_dbtp"] == pytest.approx(float(rows[title]["true_peak_dbtp"]), abs=0.05)
            assert figures["separate_s"] > 0
        report = artifacts["reelsplit-report"]
        assert report["type"] == "markdown" and (out / "reports").as_uri() in report["data"]
        reel_run = progress["flow_run_id"]     # the reel flow, run by the drop flow
        shot = ROOT / "docs" / "prefect-dashboard.png" if os.environ.get("REELSPLIT_DOCS_SHOTS") else \
            tmp_path / "dashboard.png"
        made = subprocess.run([sys.executable, str(ROOT / "docs" / "screenshot_dashboard.py"),
                               f"http://127.0.0.1:{port}/v2/runs/flow-run/{reel_run}?tab=Artifacts", str(shot)],
                              capture_output=True, text=True, timeout=180)
        assert made.returncode == 0, made.stderr[-2000:]
        assert shot.stat().st_size > 20_000     # a drawn page, not a blank one (~2 kB)
    finally:
        said = _stop(serving)
    assert f"reelsplit: dashboard http://127.0.0.1:{port}\n" in said, said[-2000:]


@pytest.mark.slow
def test_run_ui_serves_the_dashboard_while_it_runs(tmp_path):
    port = _free_port()
    reel = _reel(tmp_path / "ui.wav", 23, seconds=4)
    proc = subprocess.Popen(CLI + ["run", str(reel), "--out", str(tmp_path / "out"), "--model", "dfn3",
                                   "--no-transcribe", "--ui", "--port", str(port)], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/health", proc)
        status, page = _get(f"http://127.0.0.1:{port}/")
    finally:
        said, _ = proc.communicate(timeout=600)
    assert status == 200 and '<div id="root"' in page
    assert proc.returncode == 0, said[-3000:]
    assert f"reelsplit: dashboard http://127.0.0.1:{port}\n" in said
    with pytest.raises(OSError):     # stopped with the run
        _get(f"http://127.0.0.1:{port}/api/health")


def test_a_port_in_use_is_one_line_naming_it(tmp_path):
    (tmp_path / "drop").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--watch", tmp_path / "drop", "--out", tmp_path / "out", "--cron", CRON, "--model",
                       "dfn3", "--once", "--port", port, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"port {port} is in use" in proc.stderr and "--port" in proc.stderr
