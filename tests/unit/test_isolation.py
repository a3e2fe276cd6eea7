"""The test session is isolated from the user's machine: the model repo, the Hugging Face and torch caches and the
Prefect home point into the session's temporary folder, with the hub offline, in the pytest process and in the
processes tests start (they inherit the environment)."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import CACHE_ENV, ROOT

NAMES = (*CACHE_ENV, "REELSPLIT_MODEL_REPO", "PREFECT_HOME")


def seen() -> dict:
    """What this process resolves, not only what its environment says: huggingface_hub fixes its folders when it is
    first imported (so an import before the session fixture would keep the user's cache), torch.hub when asked."""
    import huggingface_hub.constants as hub
    import torch.hub
    return {"env": {name: os.environ.get(name) for name in NAMES}, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE"),
            "hub_offline": hub.HF_HUB_OFFLINE, "hub_cache": hub.HF_HUB_CACHE, "hf_home": hub.HF_HOME,
            "torch_hub": torch.hub.get_dir()}


def _seen_in_a_subprocess() -> dict:
    code = "import json, sys; sys.path[:0] = ['tests', 'tests/unit']; from test_isolation import seen; print(json.dumps(seen()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    return json.loads(out.stdout)


def _assert_isolated(found: dict, home: Path) -> None:
    for name, value in found["env"].items():
        assert value and Path(value).resolve().is_relative_to(home), (name, value, home)
    for key in ("hub_cache", "hf_home", "torch_hub"):
        assert Path(found[key]).resolve().is_relative_to(home), (key, found[key], home)
    assert found["HF_HUB_OFFLINE"] == "1" and found["hub_offline"] is True


def test_model_caches_point_into_the_session_folder(offline_env):
    home = Path(offline_env).resolve()
    _assert_isolated(seen(), home)
    _assert_isolated(_seen_in_a_subprocess(), home)
