"""Process memory-allocator settings for long CPU inference runs (glibc `mallopt(3)`).

glibc gives every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB) fresh pages from
`mmap` and returns them on `free`, so demucs's large per-segment tensors are page-faulted in (and zeroed by the
kernel) again on every forward pass. Measured by benchmarks/allocator.py on 60 s of stereo through the htdemucs
architecture: 6.0 million minor faults, 11 s of kernel time and 28.1 s for the separate stage with glibc's
defaults; 0.3 million faults, 0.9 s and 22.7 s with the settings below (peak RSS 1198 → 1326 MiB). PyTorch's
performance tuning guide ("Switch Memory allocator") makes the same point and suggests preloading jemalloc or
tcmalloc; `mallopt` gets the effect from inside the process, with no extra package and no `LD_PRELOAD`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

ENV = "REELSPLIT_MALLOC"            # "system" leaves the C library's defaults alone
# <malloc.h> parameter numbers (glibc)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TRIM_THRESHOLD = 2**31 - 1          # bytes of free heap top kept before any is returned (the int maximum)


@dataclass(frozen=True)
class MallocTuning:
    applied: bool
    reason: str          # why not, or what was set


_done: MallocTuning | None = None


def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose mallopt parameter numbers these are), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> bool:
    """Give the heap's free memory back to the system (`malloc_trim(0)`) once a run is over, so a long-lived
    process (`reelsplit serve` between scheduled runs) does not hold its high-water mark while idle. True when
    memory was released; a no-op unless `tune_malloc` applied its settings."""
    if _done is None or not _done.applied:
        return False
    libc = glibc()
    return bool(libc is not None and libc.malloc_trim(0))


def tune_malloc() -> MallocTuning:
    """Make glibc keep freed memory for reuse instead of unmapping it: no mmap for large blocks
    (M_MMAP_MAX 0), no trimming of the heap top below 2 GiB (M_TRIM_THRESHOLD), one arena (M_ARENA_MAX 1) so
    worker threads share those blocks. Peak memory is the high-water mark either way; what goes is the cost of
    faulting the same pages in again. Call it early, before threads start. Idempotent; a no-op (with the
    reason) off glibc or when REELSPLIT_MALLOC=system."""
    global _done
    if _done is not None:
        return _done
    if os.environ.get(ENV, "").strip().lower() == "system":
        _done = MallocTuning(False, f"{ENV}=system")
        return _done
    libc = glibc()
    if libc is None:
        _done = MallocTuning(False, "not glibc")
        return _done
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, 1))
    failed = [p for p, v in settings if mallopt(p, v) != 1]       # mallopt returns 1 on success
    _done = (MallocTuning(False, f"mallopt refused parameters {failed}") if failed
             else MallocTuning(True, "glibc: no mmap for large blocks, heap kept, one arena"))
    log.debug("allocator: %s", _done.reason)
    return _done
