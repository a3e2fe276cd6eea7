"""Turn what the user named (files, drop folders) into a de-duplicated list of inputs with unique titles."""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import TransientInputError
from .media import MEDIA_SUFFIXES


@dataclass(frozen=True)
class BatchItem:
    path: Path          # as the user named it (absolute)
    title: str          # output folder and file prefix, unique in the batch
    problem: str = ""   # non-empty: fails without processing (the reason)


def safe_title(stem: str) -> str:
    """A file-system-safe title from a file stem: keeps letters, digits, unicode, `-_.`; no leading dash/dot."""
    title = re.sub(r"[^\w.\-]+", "_", stem, flags=re.UNICODE).strip("._-")
    title = title.encode("utf-8")[:120].decode("utf-8", "ignore").rstrip("._-")   # bytes: NAME_MAX is 255 bytes
    return title or "reel"


def discover(named: list[Path]) -> list[BatchItem]:
    """Files named directly are taken whatever their suffix; folders contribute their media files (by
    suffix, sorted, not recursive, hidden files skipped). The same file named twice is processed once."""
    files: list[tuple[Path, str]] = []
    for raw in named:
        p = Path(raw).expanduser().absolute()
        try:
            if p.is_dir():
                found = []
                for c in sorted(p.iterdir()):
                    if c.suffix.lower() not in MEDIA_SUFFIXES or c.name.startswith("."):
                        continue
                    try:
                        if c.is_file():
                            found.append((c, ""))
                    except OSError as exc:
                        found.append((c, f"cannot be read: {exc.strerror.lower()} (folder not searchable)"))
                files += found or [(p, "folder has no media files")]
            elif p.exists():
                files.append((p, ""))
            else:
                files.append((p, "file not found"))
        except OSError as exc:
            files.append((p, f"cannot be read: {(exc.strerror or str(exc)).lower()}"))
    seen: set[Path] = set()
    unique = []
    for p, problem in files:
        try:
            key = p.resolve() if p.exists() else p
        except OSError:
            key = p
        if key not in seen:
            seen.add(key)
            unique.append((p, problem))
    titles: dict[str, int] = {}
    items = []
    for p, problem in unique:
        title = safe_title(p.stem)
        if title.lower() in titles:   # REEL1.mov and REEL1.mxf: keep both, apart
            title = f"{title}_{p.suffix.lstrip('.').lower() or 'file'}"
            n = titles.get(title.lower(), 0)
            if n:
                title = f"{title}_{n + 1}"
        titles[title.lower()] = titles.get(title.lower(), 0) + 1
        items.append(BatchItem(p, title, problem))
    return items


def check_settled(path: Path, *, quiet_s: float = 2.0, interval_s: float = 0.5) -> None:
    """Raise TransientInputError while `path` is still being written (copied into the drop folder): a file
    modified less than `quiet_s` seconds ago is looked at again `interval_s` later, and a change of size or
    modification time means it is still growing. A file that is missing or unreadable is left to the probe."""
    try:
        first = os.stat(path)
        if time.time() - first.st_mtime >= quiet_s:
            return
        time.sleep(interval_s)
        second = os.stat(path)
    except OSError:
        return
    if (second.st_size, second.st_mtime_ns) != (first.st_size, first.st_mtime_ns):
        raise TransientInputError(f"still being written: {first.st_size} then {second.st_size} bytes "
                                  f"{interval_s:g} s later", path)
