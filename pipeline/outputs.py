"""Outputs that are never half-written: temporary name in the same directory, fsync, rename, and checksums."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import threading
from pathlib import Path
from typing import Iterator

from .errors import OutputError, TitleLockedError

PARTIAL_MARK = ".partial-"


def partial_name(final: Path) -> Path:
    """The temporary sibling of `final` (same directory, so the rename is atomic); keeps the suffix."""
    return final.with_name(f".{final.stem}{PARTIAL_MARK}{os.getpid()}{final.suffix}")


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it and rename it to `final`, else remove it."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {final.parent}: {exc.strerror}", final) from exc
    tmp = partial_name(final)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError("the writer produced no file", final)
        fsync_path(tmp)
        os.replace(tmp, final)
        _record(final)
        fsync_path(final.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {final.name}: {exc.strerror or exc}", final) from exc
    finally:
        with contextlib.suppress(OSError):   # never hide the real error behind the cleanup's
            tmp.unlink()


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_output(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def remove_partials(folder: Path) -> int:
    """Delete temporary files left in `folder` (and its subfolders) by an interrupted run; returns how many."""
    count = 0
    if folder.is_dir():
        for p in folder.rglob(f".*{PARTIAL_MARK}*"):
            with contextlib.suppress(OSError):
                p.unlink()
                count += 1
    return count


def discard(path: Path) -> None:
    """Remove `path` if it is there, durably (the directory is fsynced): used for a manifest that must stop
    vouching for a folder before any output in it is rewritten."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot remove {Path(path).name}: {exc.strerror or exc}", path) from exc
    fsync_path(Path(path).parent)


# Outputs renamed into place under a folder while `removed_on_failure` watches it: {folder: [paths]}.
_attempts: dict[str, list[Path]] = {}
_attempts_lock = threading.Lock()


def _record(final: Path) -> None:
    where = os.path.abspath(final)
    with _attempts_lock:
        for folder, written in _attempts.items():
            if where.startswith(folder + os.sep):
                written.append(Path(where))


@contextlib.contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """If the block raises, remove every output it renamed into place under `folder` (from any thread of this
    process) and every temporary file left there: a title that fails half-way (a full disk, a remux error)
    leaves nothing that looks delivered, and gives back the space it took. Hold the title's lock around it."""
    key = os.path.abspath(folder)
    written: list[Path] = []
    with _attempts_lock:
        _attempts[key] = written
    try:
        yield
    except BaseException:
        for p in reversed(written):
            with contextlib.suppress(OSError):
                p.unlink()
        remove_partials(Path(folder))
        raise
    finally:
        with _attempts_lock:
            _attempts.pop(key, None)


LOCK_NAME = ".reelsplit.lock"


@contextlib.contextmanager
def title_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of one output title (OUT/<title>/.reelsplit.lock) for this process.

    An advisory `flock`: the kernel drops it when the process dies (kill -9 included), so a crashed run never
    leaves a stale lock. Raises OutputError naming the holder when another run has it.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror}", folder) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise TitleLockedError(f"being processed by another reelsplit run ({holder})", folder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)   # closing releases the flock
