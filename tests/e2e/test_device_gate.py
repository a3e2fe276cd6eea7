"""One reel at a time on the GPU, the others' CPU stages meanwhile (flows.steps.device_turn, issue #19).

With several reels in flight (`--workers N`), each reel's separation takes the device's turn: on a CUDA device one
reel separates at once by default (its batches fill the GPU) while the reels that wait for it, or that are done
with it, run their CPU stages. The wait is the reel's `queue` stage, not part of its separation time. No GPU is
needed here: a separator that says its device is "cuda" is enough for the gate, and the real DFN3 does the work.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf

from flows import steps
from pipeline.config import SeparationSettings, Settings
from pipeline.report import ReportRow

RATE = 48_000


class Device:
    def __init__(self, device: str):
        self.device = device


def test_slots_one_on_cuda_unlimited_on_the_cpu_unless_set():
    auto, two = SeparationSettings(), SeparationSettings(device_reels=2)
    assert steps.device_slots(Device("cuda"), auto) == 1
    assert steps.device_slots(Device("cuda:1"), auto) == 1
    assert steps.device_slots(Device("cpu"), auto) is None
    assert steps.device_slots(object(), auto) is None         # DFN3: no torch device, CPU processes
    assert steps.device_slots(Device("cpu"), two) == 2 and steps.device_slots(Device("cuda"), two) == 2


def test_config_refuses_a_negative_count(tmp_path):
    import pytest

    from pipeline.errors import ConfigError
    path = tmp_path / "c.yaml"
    path.write_text("separation:\n  device_reels: -1\n")
    with pytest.raises(ConfigError, match="device_reels"):
        Settings.load(path)


def run_reel(name: str, gpu: Device, log: dict, start: threading.Barrier) -> ReportRow:
    """A reel's separation (0.4 s, gated) then its CPU stages (0.4 s), intervals logged by name."""
    row = ReportRow(file=name, title=name)
    timer = steps.StageTimer(row, name, lambda message: None)
    start.wait()
    with timer("separate"):
        with steps.device_turn(gpu, SeparationSettings(), timer):
            a = time.perf_counter()
            time.sleep(0.4)
            log[name, "separate"] = (a, time.perf_counter())
    a = time.perf_counter()
    time.sleep(0.4)
    log[name, "cpu"] = (a, time.perf_counter())
    return row


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_the_gpu_separates_one_reel_while_the_other_runs_its_cpu_stages():
    log: dict = {}
    start = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(lambda n: run_reel(n, Device("cuda"), log, start), ["a", "b"]))
    first, second = sorted("ab", key=lambda n: log[n, "separate"][0])
    assert overlap(log[first, "separate"], log[second, "separate"]) == 0.0
    # the second reel separates while the first runs its CPU stages: nearly all of them overlap
    assert overlap(log[second, "separate"], log[first, "cpu"]) > 0.3
    by = {r.title: r.stage_seconds for r in rows}
    assert by[second]["queue"] > 0.3 and by[first]["queue"] < 0.1
    # the wait is the queue's, not the separation's
    assert 0.38 < by[second]["separate"] < 0.6 and 0.38 < by[first]["separate"] < 0.6


def test_on_the_cpu_reels_separate_together():
    log: dict = {}
    start = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(lambda n: run_reel(n, Device("cpu"), log, start), ["a", "b"]))
    assert overlap(log["a", "separate"], log["b", "separate"]) > 0.3
    assert all("queue" not in r.stage_seconds for r in rows)


class Gated:
    """The real separator, saying its device is CUDA, logging when each reel separates."""

    def __init__(self, real, log: dict):
        self.real, self.log, self.device = real, log, "cuda"
        self.name, self.sample_rate = real.name, real.sample_rate

    def separate(self, mix, rate, layout, workspace):
        a = time.perf_counter()
        stems = self.real.separate(mix, rate, layout, workspace)
        self.log[workspace.folder.name] = (a, time.perf_counter())
        return stems


def test_process_reel_takes_the_device_turn(tmp_path, monkeypatch):
    """Two reels through every stage at once with a 'CUDA' separator: their separations never overlap, both
    reels are delivered, and the one that waited says how long in its `queue` stage."""
    from pipeline.models import resolve
    from pipeline.profiles import load_profile

    rng = np.random.default_rng(3)
    jobs = []
    for name in ("r1", "r2"):
        t = np.arange(4 * RATE) / RATE
        x = 0.1 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.02 * rng.standard_normal((t.size, 2))
        path = tmp_path / f"{name}.wav"
        sf.write(path, x.astype(np.float32), RATE, subtype="PCM_24")
        jobs.append(steps.ReelJob(path, name, tmp_path / "out" / name))
    spec, profile = resolve("dfn3"), load_profile("ebu-r128")
    settings = dataclasses.replace(Settings.load(), transcribe=dataclasses.replace(Settings.load().transcribe,
                                                                                    enabled=False))
    log: dict = {}
    gated = Gated(steps.get_separator(spec, settings), log)
    monkeypatch.setattr(steps, "get_separator", lambda spec, settings: gated)
    # both reels reach the gate together, whatever their earlier stages took (CI machines are uneven): then one
    # of them must wait the other's whole separation
    arrive, real_turn = threading.Barrier(2, timeout=120), steps.device_turn

    @contextlib.contextmanager
    def turn_together(separator, separation, timer):
        arrive.wait()
        with real_turn(separator, separation, timer):
            yield

    monkeypatch.setattr(steps, "device_turn", turn_together)
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(lambda job: steps.process_reel(job, spec, settings, profile, say=lambda m: None),
                             jobs))
    assert [r.status for r in rows] == ["ok", "ok"], [r.error for r in rows]
    assert overlap(log["r1"], log["r2"]) == 0.0
    waited, first = sorted(rows, key=lambda r: r.stage_seconds.get("queue", 0.0), reverse=True)
    # it waited for the other's separation (measured 0.8 of the other's stage time: DFN3's native call holds
    # the GIL for a block, so the waiting thread starts its clock late), and that wait is not in its own stage
    assert waited.stage_seconds["queue"] > 0.5 * first.stage_seconds["separate"]
    assert first.stage_seconds.get("queue", 0.0) < 0.1 * waited.stage_seconds["queue"]
    # and the report's CSV has it as its own column
    assert waited.as_flat()["queue_s"] == round(waited.stage_seconds["queue"], 3) > 0
