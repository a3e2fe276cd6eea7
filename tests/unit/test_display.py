"""The progress display's arithmetic (flows/display.py: percent, speed, ETA of a file and of the batch, the plain
line) and the progress callback the pipeline's stages report through (pipeline/progress.py), with the stages'
reports checked on real work: extract, separate (DFN3 in process and in worker processes, a tiny Demucs on a 5.1
layout), clean-up, VAD, loudness, write and words."""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from flows import display
from flows.display import (STAGE_ORDER, Board, Line, batch_eta, clock, eta, file_fraction, plain_line, speed,
                           stage_fraction)
from pipeline import progress


# ---------------------------------------------------------------------------------------------------- arithmetic

def test_stage_fraction_clamps_and_knows_unknown():
    assert stage_fraction(0, 0) is None                      # total unknown
    assert stage_fraction(25, 100) == 0.25
    assert stage_fraction(120, 100) == 1.0                   # a decoder past the declared length
    assert stage_fraction(-5, 100) == 0.0


def test_file_fraction_weighs_stages_by_cost():
    weights = {s: 0.0 for s in STAGE_ORDER} | {"extract": 1.0, "separate": 8.0, "write": 1.0}
    assert file_fraction(weights, "extract", None) == 0.0
    assert file_fraction(weights, "separate", 0.5) == pytest.approx((1 + 4) / 10)
    assert file_fraction(weights, "write", 1.0) == pytest.approx(1.0)
    assert file_fraction(weights, "qc", None) == pytest.approx(1.0)        # no cost left after write
    assert file_fraction(weights, "lock", 0.5) is None                     # not a stage of the fraction


def test_speed_eta_and_batch_eta():
    assert speed(120.0, 10.0) == pytest.approx(12.0)        # 2 minutes of audio in 10 s: 12x real time
    assert speed(0.0, 10.0) is None and speed(5.0, 0.0) is None and speed(math.nan, 1.0) is None
    assert eta(30.0, 0.25) == pytest.approx(90.0)            # a quarter in 30 s: 90 s to go at that pace
    assert eta(30.0, 0.0) is None and eta(0.0, 0.5) is None and eta(30.0, None) is None
    assert eta(30.0, 1.0) == 0.0
    # 600 s of audio done in 100 s (6x), 3000 s left: 500 s
    assert batch_eta(3000.0, 600.0, 100.0) == pytest.approx(500.0)
    assert batch_eta(3000.0, 0.0, 100.0) is None
    assert clock(3725.4) == "1:02:05" and clock(None) == "--:--:--" and clock(math.inf) == "--:--:--"


@dataclass
class FakeTimer:
    """What the board reads of flows.steps.StageTimer."""

    current: str = "probe"
    started: float = 0.0
    stage_started: float = 0.0
    row: object = None
    stage_seconds: dict = field(default_factory=dict)


def test_board_percent_speed_and_etas_from_reports():
    board = Board(["a", "b"], words=False)
    board.durations.update(a=600.0, b=600.0)
    timer = FakeTimer("separate", started=100.0, stage_started=110.0)
    board.track("a", timer)
    board.reporter("a")("separate", 48000 * 150, 48000 * 600)     # a quarter of the separation
    board.active["a"].reported_at = 130.0
    line = board.line(board.active["a"], now=130.0)
    assert line.stage == "separate" and line.percent == pytest.approx(25.0)
    assert line.speed == pytest.approx(150.0 / 20.0)               # 150 s of audio in the stage's 20 s
    f = file_fraction(board.weights, "separate", 0.25)
    assert line.file_eta == pytest.approx(30.0 * (1 - f) / f)      # the file's 30 s so far, at that pace
    done, left = board.batch(130.0)
    assert done == 0
    assert left == pytest.approx((1200.0 - f * 600.0) / (f * 600.0 / 30.0))   # both files' audio left


def test_board_ignores_reports_of_another_stage_and_never_goes_back():
    board = Board(["a"])
    board.durations["a"] = 60.0
    timer = FakeTimer("write", started=0.0, stage_started=50.0)
    board.track("a", timer)
    report = board.reporter("a")
    report("loudness", 10, 100)          # a measurement pass inside the write stage (the stereo downmix's)
    board.active["a"].reported_at = 51.0
    assert board.line(board.active["a"], 52.0).percent is None
    report("write", 90, 100)
    board.active["a"].reported_at = 53.0
    high = board.line(board.active["a"], 54.0)
    assert high.percent == pytest.approx(90.0)
    timer.current, timer.stage_started = "extract", 55.0       # a fold-down runs the stages again
    again = board.line(board.active["a"], 56.0)
    assert board.active["a"].fraction >= file_fraction(board.weights, "write", 0.9)
    assert again.file_eta is not None


def test_board_batch_leaves_out_skipped_and_failed_files_and_learns_stage_costs():
    board = Board(["ok", "skip", "bad", "next"])
    board.durations.update(ok=100.0, skip=100.0, bad=100.0, next=100.0)
    board.track("ok", FakeTimer("qc", started=0.0, stage_started=0.0))
    board.finish("ok", "ok", {"extract": 1.0, "separate": 20.0, "write": 4.0, "qc": 5.0})
    board.finish("skip", "skipped", {})
    board.finish("bad", "failed", {"probe": 0.1})
    assert board.weights["separate"] == pytest.approx(0.2) and board.weights["words"] == 0.0
    done, left = board.batch(30.0)        # 100 s of audio done in the batch's 30 s: 100 s left take 30 s
    assert done == 3 and left == pytest.approx(30.0)


def test_a_file_not_yet_probed_counts_as_the_mean_duration():
    board = Board(["a", "b", "c"])
    board.durations.update(a=100.0, b=300.0)
    assert board.duration("c") == pytest.approx(200.0)
    assert Board(["x"]).duration("x") == 0.0


def test_plain_line_is_ascii_without_control_characters():
    text = plain_line(Line("REEL 1", "separate", 42.25, 3.14, 75.0), 1, 3, 3600.0)
    assert text == ("[REEL 1] separate   42.2 %     3.1x real time  ETA file 0:01:15, batch 1:00:00 "
                    "(1 of 3 files done)")
    assert text.isascii() and not re.search(r"[\x00-\x1f\x7f]", text)
    unknown = plain_line(Line("r", "qc", None, None, None), 0, 1, None)
    assert "--:--:--" in unknown and unknown.isascii()


def test_quiet_echo_keeps_errors_only(capsys):
    try:
        display.set_quiet(True)
        for message in ("[r] separate     7.08 s", "[r] skipped: outputs are complete and current (x)",
                        "[r] FAILED at probe: x: not a readable media file",
                        "[r] speech recognition failed (stems delivered): boom"):
            display.echo(message)
    finally:
        display.set_quiet(False)
    assert capsys.readouterr().out.splitlines() == ["[r] FAILED at probe: x: not a readable media file",
                                                    "[r] speech recognition failed (stems delivered): boom"]


# ---------------------------------------------------------------------------------------------------- the callback

def test_progress_callback_is_per_context_and_nests():
    progress.report("separate", 1, 2)               # nothing set: a no-op
    seen: list[tuple] = []
    with progress.reporting(lambda *a: seen.append(a)):
        with progress.share(1, 4), progress.relabel("cleanup"):
            progress.report("separate", 5, 10)
        other: list[tuple] = []

        def elsewhere():
            progress.report("extract", 1, 1)         # another thread: its own (empty) context
            other.append(progress.current())
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
    assert seen == [("cleanup", 15, 40)]
    assert other == [progress.no_progress]
    progress.report("separate", 1, 2)               # reset after the block


class Collect:
    def __init__(self):
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))

    def of(self, stage: str) -> list[tuple[int, int]]:
        return [(d, t) for s, d, t in self.calls if s == stage]


def assert_advances(points: list[tuple[int, int]], total: int, at_least: int) -> None:
    """Several reports, done never going back, all of `total`, the last complete."""
    assert len(points) >= at_least, points
    assert all(t == total for _, t in points), points
    dones = [d for d, _ in points]
    assert dones == sorted(dones) and dones[-1] == total and dones[0] < total, dones


def _noise(seconds: float, channels: int, rate: int = 48000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    return (tone[:, None] + 0.02 * rng.standard_normal((t.size, channels))).astype(np.float32)


def test_extract_reports_decoded_samples(tmp_path):
    from pipeline import audio
    from pipeline.master import select_master
    from pipeline.media import probe

    path = audio.write_wav(tmp_path / "in.wav", _noise(4.0, 2), 48000, "stereo")
    master = select_master(probe(path), 0, None)
    seen = Collect()
    with progress.reporting(seen):
        audio.extract(path, master)
    assert_advances(seen.of("extract"), 4 * 48000, at_least=2)


def test_dfn3_separate_reports_in_process_and_from_worker_processes(tmp_path):
    from pipeline.config import SeparationSettings
    from pipeline.layout import LAYOUTS
    from pipeline.readers import ArrayReader, Workspace
    from pipeline.separate_dfn3 import Dfn3Separator

    mix = _noise(3.0, 2)
    seen = Collect()
    with progress.reporting(seen), Workspace(tmp_path) as ws:
        Dfn3Separator(SeparationSettings()).separate(ArrayReader(mix), 48000, LAYOUTS["stereo"], ws, block_s=0.5)
    assert_advances(seen.of("separate"), mix.shape[0], at_least=5)

    surround = _noise(3.0, 6, seed=1)           # 5.1: three DFN3 streams, in worker processes
    seen = Collect()
    with progress.reporting(seen), Workspace(tmp_path) as ws:
        raw = ws.spill("mix", 6)
        raw.append(surround)
        raw.flush()
        sep = Dfn3Separator(SeparationSettings(dfn3_workers=2))
        assert sep.processes(3, raw) == 2
        sep.separate(raw, 48000, LAYOUTS["5.1"], ws)
    points = seen.of("separate")
    assert points and points[-1] == (3 * surround.shape[0], 3 * surround.shape[0]), points


def test_demucs_separate_reports_every_group(tmp_path):
    from pipeline.config import SeparationSettings
    from pipeline.layout import LAYOUTS
    from pipeline.models import resolve
    from pipeline.readers import ArrayReader, Workspace
    from pipeline.separate import load_separator
    from tiny_demucs import write_tiny_model

    sep = load_separator(resolve(str(write_tiny_model(tmp_path / "m"))), SeparationSettings(segment=1.0))
    mix = _noise(3.0, 6, rate=44100)
    seen = Collect()
    with progress.reporting(seen), Workspace(tmp_path) as ws:
        sep.separate(ArrayReader(mix), 44100, LAYOUTS["5.1"], ws)
    points = seen.of("separate")
    total = points[0][1]
    assert_advances(points, total, at_least=9)           # three groups, several segments each
    assert {d * 3 // total for d, _ in points[:-1]} == {0, 1, 2}   # each group's third of the work


def test_cleanup_vad_loudness_and_write_report(tmp_path):
    from pipeline import cleanup, deliver, vad
    from pipeline.profiles import load_profile
    from pipeline.readers import ArrayReader, Workspace

    rate, mix = 48000, _noise(6.0, 2)
    seen = Collect()
    with progress.reporting(seen), Workspace(tmp_path) as ws:
        cleaned = cleanup.NoiseReduce(strength=0.5, block_s=1.0, margin_s=0.1).clean(ArrayReader(mix), rate, None,
                                                                                     ws)
        vad.speech_regions(cleaned, rate, block_s=1.0)
        sources = {"MIX": ArrayReader(mix), "DX": cleaned}
        settings = deliver.DeliverySettings(rate, "stereo", load_profile("ebu-r128"), block=rate)
        plan = deliver.plan_delivery(sources, settings)
        written: dict[str, list] = {}

        class Sink:
            def __init__(self, name):
                self.name = name
                written[name] = []

            def write(self, block):
                written[self.name].append(block.shape[0])

            def close(self):
                return self.name

            def abort(self):
                pass
        deliver.deliver_stream(sources, settings, lambda name, channels: Sink(name), plan=plan)
    for stage in ("cleanup", "vad", "loudness", "write"):
        assert_advances(seen.of(stage), mix.shape[0], at_least=5)


def test_words_reports_speech_recognised(tmp_path):
    from pipeline import asr
    from pipeline.readers import ArrayReader

    rate = 16000
    reader = ArrayReader(np.zeros((rate * 90, 1), np.float32))
    regions = [(5.0, 20.0), (30.0, 50.0), (60.0, 85.0)]

    class Recogniser:        # a stand-in: the progress is about windows read, not about Whisper
        lock, label = threading.Lock(), "stub"

        class model:
            @staticmethod
            def transcribe(audio, **_):
                return [], type("Info", (), {"language": "en", "language_probability": 1.0})()

    seen = Collect()
    with progress.reporting(seen):
        asr.transcribe(reader, rate, regions, Recogniser(), options=asr.AsrOptions(language="en", window_s=20.0))
    windows = asr.plan_windows(regions, 90.0, window_s=20.0)
    total = sum(round(p.end * rate) - round(p.start * rate) for w in windows for p in w)
    assert_advances(seen.of("words"), total, at_least=len(windows))
