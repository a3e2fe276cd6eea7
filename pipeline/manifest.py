"""Per-title manifests: written last, they say an output folder is complete and what made it.

A re-run skips a file whose manifest has the same cache key (input content hash + profile + model +
settings + code version + the run's output options: `KeyParts`) and whose listed outputs are all present with
their recorded sizes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .outputs import sha256_file, write_text_atomic

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class KeyParts:
    """Everything a title's outputs depend on: the input's content, the profile (every field), the model, the
    settings, the code version, and the run's options that change what is written: the start timecode and its
    rate (--start-tc, --tc-rate: every stem's bext, the lists, the deliverable's timecode) and the deliverable's
    track structure (--output-tracks)."""

    input_sha256: str
    profile_digest: str
    model: str
    settings_digest: str
    code_version: str
    start_tc: str | None = None
    tc_rate: str | None = None
    output_tracks: str = "interleaved"


def cache_key(parts: KeyParts) -> str:
    """The SHA-256 of `parts`: a title whose manifest has it is current; any part changed, it is made again."""
    text = "|".join(f"{name}={'' if value is None else value}" for name, value in asdict(parts).items())
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    key: str
    input: str
    input_sha256: str
    outputs: dict[str, dict]      # path relative to the title folder → {"sha256": ..., "bytes": ...}
    row: dict                     # the report row of the run that made it
    package: dict[str, str] = field(default_factory=dict)   # M&E package: role → path relative to the title folder

    @staticmethod
    def build(key: str, input_path: Path, input_sha256: str, folder: Path, outputs: list[Path], row: dict,
              package: dict[str, Path] | None = None) -> "Manifest":
        files = {p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                 for p in outputs}
        roles = {role: p.relative_to(folder).as_posix() for role, p in (package or {}).items()}
        return Manifest(key, str(input_path), input_sha256, files, row, roles)

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST
        write_text_atomic(path, json.dumps(asdict(self), indent=2, default=str))
        return path


def read_manifest(folder: Path) -> Manifest | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None


def is_complete(folder: Path, key: str) -> Manifest | None:
    """The manifest in `folder` if it matches `key` and every output it lists is there at its size."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.key != key:
        return None
    for name, meta in manifest.outputs.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != meta.get("bytes"):
            return None
    return manifest


def verify(folder: Path) -> list[str]:
    """Problems with one title folder: its manifest missing or unreadable, an output missing, or an output whose
    size or SHA-256 differs from what the manifest recorded. Empty when everything checks out."""
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"{MANIFEST} missing or unreadable (the title never completed)"]
    problems = []
    for name, meta in sorted(manifest.outputs.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != meta.get("bytes"):
            problems.append(f"{name}: {path.stat().st_size} bytes, manifest says {meta.get('bytes')}")
        elif sha256_file(path) != meta.get("sha256"):
            problems.append(f"{name}: checksum differs from the manifest")
    return problems


def verify_tree(out: Path) -> dict[str, list[str]]:
    """`verify` for every title folder under `out` (folders other than reports/)."""
    return {d.name: verify(d) for d in sorted(Path(out).iterdir()) if d.is_dir() and d.name != "reports"}
