"""Shared fixtures: an offline, isolated environment for every test; media made at test time."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


# Where Hugging Face and torch look for (and would write) downloaded models. Each is set, as huggingface_hub
# lets HF_HUB_CACHE and the older HUGGINGFACE_HUB_CACHE override HF_HOME.
CACHE_ENV = {
    "HF_HOME": "hf",
    "HF_HUB_CACHE": "hf/hub",
    "HUGGINGFACE_HUB_CACHE": "hf/hub",
    "TORCH_HOME": "torch",
}


@pytest.fixture(autouse=True, scope="session")
def offline_env(tmp_path_factory):
    """No network, an empty model repo (so `auto` means dfn3), empty Hugging Face, torch and ASR caches (so weights
    in the user's caches never change what a test sees) and a private Prefect home for the session; subprocesses
    started by tests inherit all of it."""
    home = tmp_path_factory.mktemp("env")
    saved = dict(os.environ)
    os.environ.update({
        "REELSPLIT_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        **{name: str(home / sub) for name, sub in CACHE_ENV.items()},
        "REELSPLIT_MODEL_REPO": str(home / "models"),
        "REELSPLIT_ASR_CACHE": str(home / "asr"),     # the bundled ASR model is assembled here, once a session
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    })
    os.environ.pop("PREFECT_API_URL", None)
    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def harness(offline_env):
    """One Prefect test server (temporary SQLite) for every in-process flow run of the session."""
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=120):
        yield


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI as a user would: `python -m flows.cli ...`, capturing text output."""
    return subprocess.run([sys.executable, "-m", "flows.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                          str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def ffmpeg_ebur128(path: Path, stream: str = "0:a:0") -> dict:
    """ffmpeg's own BS.1770 meter (an independent check of ours): integrated I (LUFS), LRA (LU),
    true peak (dBTP) of one audio stream, parsed from the ebur128 filter's summary."""
    out = subprocess.run(["ffmpeg", "-nostats", "-hide_banner", "-i", str(path), "-map", stream,
                          "-filter:a", "ebur128=peak=true", "-f", "null", "-"],
                         capture_output=True, text=True, check=True)
    summary = out.stderr[out.stderr.rfind("Summary:"):]
    get = lambda key: float(re.search(rf"{key}:\s+(-?[\d.]+|-inf)", summary).group(1))  # noqa: E731
    return {"I": get("I"), "LRA": get("LRA"), "TP": get("Peak")}


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB of `estimate` against `reference` (both flattened)."""
    s, e = reference.astype(np.float64).ravel(), estimate.astype(np.float64).ravel()
    alpha = np.dot(e, s) / np.dot(s, s)
    target = alpha * s
    return float(10 * np.log10(np.sum(target ** 2) / np.sum((e - target) ** 2)))
