"""The Prefect server a CLI run starts for itself (flows/prefect_env.py): started, used, drained and stopped;
left alone when an API is configured. And silero-vad's import no longer changes torch's thread count."""
import subprocess
import sys

import pytest

from conftest import ROOT


def test_no_local_server_when_an_api_is_configured():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import prefect_env

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert prefect_env.start_local_server() is None


@pytest.mark.slow
def test_local_server_runs_the_flow_and_is_stopped(tmp_path):
    """A flow run through the started server is recorded there (read back through its API), and the server
    process is gone afterwards. In a child process: Prefect reads its settings when imported."""
    code = """
import asyncio, sys
from flows import prefect_env
prefect_env.configure()
server = prefect_env.start_local_server()
assert server is not None
from prefect import flow, get_client

@flow(name="reelsplit-env-check")
def check():
    return 42

async def count():
    async with get_client() as client:
        return len(await client.read_flow_runs())

with prefect_env.connected(server) as url:
    assert url == server.url, (url, server.url)
    assert check() == 42
    runs = asyncio.run(count())
print(runs, server.proc.poll() is not None)
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "prefect"),
           "DO_NOT_TRACK": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    runs, stopped = out.stdout.split()
    assert int(runs) >= 1 and stopped == "True"
    assert "Error logging to API" not in out.stderr      # logs were sent before the server stopped


def test_loading_silero_keeps_torch_threads():
    """silero_vad's model module calls torch.set_num_threads(1) when imported; without the restore in
    vad._model every separation after the first VAD ran on one thread."""
    code = ("import torch; torch.set_num_threads(2); from pipeline import vad; vad._model(); "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "2"


def test_a_port_with_a_listener_is_one_config_error_naming_it():
    import socket

    from flows import prefect_env
    from pipeline.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"port {port} is in use.*--port"):
            prefect_env.claim_port(port)
    assert prefect_env.claim_port(port) == port      # free again once closed
    with pytest.raises(ConfigError, match="not a TCP port"):
        prefect_env.claim_port(70000)


def test_a_configured_api_names_its_own_dashboard():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import prefect_env

    with temporary_settings(updates={PREFECT_API_URL: "http://prefect.example:4200/api"}):
        assert prefect_env.start_local_server(ui_port=4200) is None
        assert prefect_env.dashboard_url(None) == "http://prefect.example:4200"
