"""Prefect settings for a local, offline run; must run before `import prefect`.

With no PREFECT_API_URL, Prefect 3 starts a temporary local server on SQLite; we keep its home in a user
folder, turn analytics off and give the server time to start on a slow machine. A configured
PREFECT_API_URL (a real server) is left alone, and the same flow then shows up in its UI.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Prefect's own console lines only for warnings; task logs still reach the API (and its UI) at INFO.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_UI_ENABLED": "false",
}


def configure(home: Path | None = None) -> None:
    """Set Prefect's environment defaults (never overriding what the user set)."""
    if "PREFECT_HOME" not in os.environ:
        base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
        os.environ["PREFECT_HOME"] = str(home or base / "reelsplit" / "prefect")
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
