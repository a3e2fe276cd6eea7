"""Model specs: resolve `--model` (auto, dfn3, a demucs name, a weights file, a repo folder) to a loaded model.

Demucs's own loaders do the loading (`demucs.pretrained.get_model`, `demucs.states.load_model`,
`demucs.hf.load_safetensors_model`); this module decides where to look, keeps it offline-first, and turns
every failure into one ModelError line that says how to supply the model.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

log = logging.getLogger(__name__)

DFN3 = "dfn3"
AUTO = "auto"
AUTO_PREFERRED = "htdemucs"
OFFLINE_ENV = "REELSPLIT_OFFLINE"
REPO_ENV = "REELSPLIT_MODEL_REPO"
HF_NAMESPACE = "adefossez"  # where demucs.hf looks for pretrained bags


def user_model_repo() -> Path:
    """The user's local demucs repo folder (`<sig>-<sha256[:8]>.th` files and bag `.yaml` files)."""
    env = os.environ.get(REPO_ENV)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "reelsplit" / "models"


@dataclass(frozen=True)
class ModelSpec:
    """What `--model` resolved to. `kind` is "dfn3" or "demucs"; `source` says where the weights come from."""

    kind: str
    name: str                  # as recorded in reports: dfn3, htdemucs, or the file/sig name
    source: str                # "bundled" | "file" | "repo" | "pretrained"
    path: Path | None = None   # the weights file or repo folder

    @property
    def label(self) -> str:
        return self.name if self.path is None else f"{self.name} ({self.path})"


def is_offline() -> bool:
    """True when the user said so (REELSPLIT_OFFLINE=1 or HF_HUB_OFFLINE=1)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in (OFFLINE_ENV, "HF_HUB_OFFLINE"))


def network_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 2.0) -> bool:
    """One quick TCP connect, so a machine without network fails in seconds instead of after retries."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _repo_names(repo: Path) -> set[str]:
    if not repo.is_dir():
        return set()
    names = set()
    for f in repo.iterdir():
        if f.suffix == ".yaml":
            names.add(f.stem)
        elif f.suffix == ".th":
            names.add(f.stem.rsplit("-", 1)[0] if "-" in f.stem else f.stem)
    return names


def _hf_cached(name: str) -> bool:
    """Whether demucs's Hugging Face bag `name` is fully in the local HF cache (no network used)."""
    from demucs.hf import hf_repo_name
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    repo_id = f"{HF_NAMESPACE}/{hf_repo_name(name)}"
    found = try_to_load_from_cache(repo_id, f"{name}.yaml")
    return isinstance(found, str)


def locally_available(name: str) -> bool:
    return name in _repo_names(user_model_repo()) or _hf_cached(name)


def missing_model_error(name: str, why: str) -> ModelError:
    return ModelError(
        f"model {name!r} is not available {why}: install its weights with "
        f"`reelsplit models install FILE` (or put them in {user_model_repo()}), pass a local .th/.safetensors "
        "file or repo folder to --model, or use --model dfn3 (bundled, works offline)")


def resolve(spec: str) -> ModelSpec:
    """Decide which model `spec` means, without loading it. Raises ModelError when it cannot be had.

    Order for a bare name: the user's repo folder, then the Hugging Face cache, then (only with network)
    demucs's own download. `auto` is htdemucs when it is local, else the bundled dfn3 — and the caller
    prints which, so there is never a silent downgrade.
    """
    spec = str(spec).strip()
    if spec == DFN3:
        return ModelSpec(DFN3, DFN3, "bundled")
    if spec == AUTO:
        return resolve(AUTO_PREFERRED) if locally_available(AUTO_PREFERRED) else ModelSpec(DFN3, DFN3, "bundled")
    path = Path(spec).expanduser()
    looks_like_path = os.sep in spec or path.suffix in (".th", ".safetensors") or path.exists()
    if looks_like_path:
        if not path.exists():
            raise ModelError(f"model file or folder not found: {path}")
        if path.is_dir():
            names = sorted(_repo_names(path))
            if len(names) != 1:
                listed = ", ".join(names) or "no .th or .yaml files"
                raise ModelError(f"model repo {path} must hold exactly one model or bag to be used by path "
                                 f"(found: {listed}); set REELSPLIT_MODEL_REPO={path} and pass --model NAME")
            return ModelSpec("demucs", names[0], "repo", path)
        if path.suffix not in (".th", ".safetensors"):
            raise ModelError(f"model file {path} must be a demucs .th or .safetensors file")
        return ModelSpec("demucs", path.stem, "file", path)
    repo = user_model_repo()
    if spec in _repo_names(repo):
        return ModelSpec("demucs", spec, "repo", repo)
    if _hf_cached(spec):
        return ModelSpec("demucs", spec, "pretrained")
    if is_offline():
        raise missing_model_error(spec, "locally and this machine is offline (REELSPLIT_OFFLINE/HF_HUB_OFFLINE)")
    if not network_reachable():
        raise missing_model_error(spec, "locally and the network is unreachable")
    return ModelSpec("demucs", spec, "pretrained")


@contextlib.contextmanager
def _hf_offline(enabled: bool):
    old = os.environ.get("HF_HUB_OFFLINE")
    if enabled:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if enabled:
            if old is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = old


def load_demucs(spec: ModelSpec):
    """Load a demucs model or bag for `spec` (kind "demucs") in eval mode, on the CPU."""
    from demucs.pretrained import get_model
    from demucs.repo import ModelLoadingError

    try:
        if spec.source == "file" and spec.path is not None and spec.path.suffix == ".safetensors":
            from demucs.hf import load_safetensors_model
            model = load_safetensors_model(spec.path)
        elif spec.source == "file" and spec.path is not None:
            # .th files are pickles: only ever loaded from a path the user gave us explicitly.
            from demucs.states import load_model
            model = load_model(spec.path)
        elif spec.source == "repo":
            model = get_model(spec.name, repo=spec.path)
        else:
            # A pretrained name: the HF cache first with HF_HUB_OFFLINE=1 (no network), then demucs's own
            # download path (Hugging Face hub, then the legacy remote repo) when we have network.
            with _hf_offline(_hf_cached(spec.name)):
                model = get_model(spec.name)
    except ModelError:
        raise
    except (ModelLoadingError, OSError, RuntimeError, KeyError, ValueError, ImportError) as exc:
        raise ModelError(f"cannot load model {spec.label}: {exc}") from exc
    except SystemExit as exc:  # demucs.utils.fatal() exits on some errors
        raise ModelError(f"cannot load model {spec.label}: demucs refused it ({exc})") from exc
    model.eval()
    return model
