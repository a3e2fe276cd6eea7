"""The allocator setting: large blocks come from the heap and stay there for reuse after they are freed,
instead of being mapped and unmapped (and page-faulted in) again on every demucs segment, and are handed
back to the system when a run is over."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import malloc

ROOT = Path(__file__).resolve().parents[2]
PROBE = r"""
import ctypes, json, sys
import numpy as np
sys.path.insert(0, {root!r})
from pipeline import malloc
if {tune}:
    assert malloc.tune_malloc().applied
class Info(ctypes.Structure):      # struct mallinfo2 (glibc >= 2.33), all size_t
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = malloc.glibc()
libc.mallinfo2.restype = Info
before = libc.mallinfo2()
a = np.ones(64 << 18, np.float32)                  # 64 MiB
alive = libc.mallinfo2()
del a
freed = libc.mallinfo2()
released = malloc.release_free_memory()
after = libc.mallinfo2()
print(json.dumps({{"mapped_alive": alive.hblkhd - before.hblkhd, "heap_alive": alive.arena, "heap_freed": freed.arena,
                  "released": released, "heap_released": after.arena}}))
"""
MIB = 1 << 20


def _probe(tune: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), tune=tune)], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin", malloc.ENV: ""})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(malloc.glibc() is None or not hasattr(malloc.glibc(), "mallinfo2"), reason="glibc >= 2.33 only")
def test_tuned_allocator_keeps_large_blocks_on_the_heap():
    default, tuned = _probe(False), _probe(True)
    assert default["mapped_alive"] >= 64 * MIB, default      # glibc's default: a 64 MiB block is mmapped ...
    assert default["heap_freed"] < 64 * MIB, default          # ... and handed back when freed
    assert tuned["mapped_alive"] == 0, tuned                  # tuned: from the heap ...
    assert tuned["heap_alive"] >= 64 * MIB, tuned
    assert tuned["heap_freed"] >= 64 * MIB, tuned             # ... and kept there for the next segment
    assert tuned["released"] and tuned["heap_released"] < 64 * MIB, tuned   # until the run is over
    assert not default["released"], default


def test_system_setting_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(malloc, "_done", None)
    monkeypatch.setenv(malloc.ENV, "system")
    result = malloc.tune_malloc()
    assert not result.applied and malloc.ENV in result.reason
