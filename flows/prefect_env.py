"""Prefect settings for a local, offline run (`configure` must run before `import prefect`), and the local
Prefect server a CLI command starts for itself when no API is configured (`LocalServer`), with or without
Prefect's UI (the dashboard).

The server's home (SQLite) is a user folder; analytics are off and the server gets time to start on a slow
machine. A configured PREFECT_API_URL (a real server) is left alone, and the same flow then shows up in its UI
(`dashboard_url`).
"""
from __future__ import annotations

import atexit
import contextlib
import os
from pathlib import Path
from typing import Iterator

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Prefect's own console lines only for warnings; task logs still reach the API (and its UI) at INFO.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_UI_ENABLED": "false",
}
UI_PORT = 4200     # the dashboard's port by default: Prefect's own (`prefect server start`)


def configure(home: Path | None = None) -> None:
    """Set Prefect's environment defaults (never overriding what the user set)."""
    if "PREFECT_HOME" not in os.environ:
        base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
        os.environ["PREFECT_HOME"] = str(home or base / "reelsplit" / "prefect")
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


class LocalServer:
    """A Prefect API server for one CLI process: `prefect server start` (Prefect's documented CLI) on a free
    local port, SQLite in PREFECT_HOME, its log in PREFECT_HOME/server.log, stopped when the CLI ends.

    `reelsplit run` starts one without services (`--no-services --no-ui`: only the API) before the pipeline,
    torch and the model are imported, so it comes up meanwhile. Left to itself, the flow's first API call
    would import Prefect's server module in this process (~3 s on 2 cores) and only then start the same kind
    of temporary server and wait for it (~4.5 s): benchmarks/RESULTS.md. `reelsplit serve` starts one with
    services, in its own session (Ctrl-C stops the runner first), because a cron schedule needs Prefect's
    scheduler service, which a temporary server does not run.

    With `ui_port` (`reelsplit serve`, `run --ui`) it listens on that fixed port with Prefect's UI and services
    (task runs are recorded by a service); `dashboard` is then its URL.

    `connected(server)` waits for it and points this process at it: Prefect reads its settings once, when
    imported, so the URL is set as a temporary setting, and in the environment for child processes (Dask
    workers, flow-run subprocesses)."""

    def __init__(self, timeout: float = 120.0, *, services: bool = False, own_session: bool = False,
                 ui_port: int | None = None):
        import subprocess
        import sys

        self.port = free_port() if ui_port is None else claim_port(ui_port)
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.dashboard = f"http://127.0.0.1:{self.port}" if ui_port is not None else None
        self.timeout = timeout
        self.log = Path(os.environ["PREFECT_HOME"]) / "server.log"
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        # the UI needs the services: Prefect 3 records task runs (the reels) from events, in a service
        cmd += ["--ui"] if ui_port is not None else [] if services else ["--no-services", "--no-ui"]
        # the UI's pages call the API at PREFECT_UI_API_URL, else at Prefect's default port, not at --port
        env = dict(os.environ, PREFECT_UI_API_URL=os.environ.get("PREFECT_UI_API_URL", self.url))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=own_session, env=env)
        atexit.register(self.stop)

    def wait(self) -> None:
        """Block until the server answers /health; a one-line ConfigError if it exits or stays silent."""
        import time
        import urllib.request

        from pipeline.errors import ConfigError

        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise ConfigError(f"the local Prefect server exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:     # not listening yet (URLError is an OSError)
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the local Prefect server did not answer in {self.timeout:.0f} s; "
                                  f"see {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except Exception:   # noqa: BLE001 - still running after SIGTERM
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 now (the system picks it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def claim_port(port: int) -> int:
    """`port`, checked free at 127.0.0.1; a one-line ConfigError naming it when something listens there."""
    import socket

    from pipeline.errors import ConfigError

    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: not a TCP port (1 to 65535)")
    with socket.socket() as sock:
        # as the server binds (uvicorn): a port left in TIME_WAIT by a server just stopped is free; a listener not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} is in use ({exc.strerror or exc}): another Prefect server or program "
                              f"listens there; choose another with --port") from exc
    return port


def dashboard_url(server: LocalServer | None) -> str | None:
    """Where the dashboard is: the started server's UI, else the configured API's UI (Prefect's PREFECT_UI_URL,
    derived from PREFECT_API_URL); None for a server without a UI or no API at all."""
    if server is not None:
        return server.dashboard
    from prefect.settings import PREFECT_UI_URL

    return PREFECT_UI_URL.value() or None


def start_local_server(**kw) -> LocalServer | None:
    """A `LocalServer` when Prefect has no API to use (no URL in the environment, a profile or a settings
    file, and temporary servers allowed); None when one is configured. The server is spawned before Prefect
    is imported (~1 s on 2 cores), then stopped again if Prefect's settings name an API after all; one with
    the UI (`ui_port`) only after that check, as the configured server may be the one on that port."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    kw.setdefault("timeout", float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 120)))
    server = LocalServer(**kw) if kw.get("ui_port") is None else None
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        if server is not None:
            server.stop()
        return None
    return server or LocalServer(**kw)


@contextlib.contextmanager
def connected(server: LocalServer | None) -> Iterator[str | None]:
    """Run the block with Prefect pointed at `server` once it answers, then send Prefect's queued logs and
    events and stop it; yields its API URL. With None, Prefect uses the API it is configured for."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if server is None:
        yield PREFECT_API_URL.value() or None
        return
    try:
        server.wait()
        os.environ["PREFECT_API_URL"] = server.url
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.url}):
                yield server.url
                drain_workers()
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    finally:
        server.stop()


def drain_workers() -> None:
    """Send the log lines and events Prefect still holds to the server, before it stops: what Prefect's own
    test harness does before it stops its server (prefect/testing/utilities.py, `prefect_test_harness`).
    Otherwise they are sent at exit to a server that is gone, and the process waits on retries."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.instance().drain()
    except RuntimeError:        # never started: nothing to send
        pass
    EventsWorker.drain_all()
