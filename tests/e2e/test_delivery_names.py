"""Delivery to spec end to end (issue 14): a 5.1 reel at 01:00:00:00 (23.976, MOV tmcd) through the flow with the
netflix profile, its stereo downmix and discrete mono WAVs per channel; an audio-only file without a frame rate
under a naming with {fps} (one line at the probe, nothing written; --tc-rate mends it, through the CLI).

The files are read back with soundfile and tests/tc_reference.py (a BWF reader written from EBU Tech 3285).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

import hostile_corpus
from conftest import run_cli
from pipeline.config import Settings
from pipeline.qcevents import EventSettings
from pipeline.manifest import verify
from pipeline.models import resolve
from pipeline.profiles import load_profile
from pipeline.training.demo import make_demo_reel
from tc_reference import read_bwf

pytestmark = pytest.mark.slow
TITLE = "chefs_table_r01_v02"
START = 86400 * 2002            # 01:00:00:00 at 23.976 in samples at 48 kHz (wall-clock: 86400 frames x 1001/24000 s)
SPEC = {"MIX": "PM_Nearfield", "DX": "DIAStem", "ME": "ME"}     # dfn3 makes no MX/FX
SURROUND = ("L", "R", "C", "LFE", "Ls", "Rs")


def _stem(stem: str, layout: str = "6ch", channel: str = "") -> str:
    return f"{TITLE}_{SPEC[stem]}_{layout}_48k_24b_23976{'.' + channel if channel else ''}.wav"


def _expected() -> dict[str, tuple[str, ...]]:
    """Interleaved file (relative to the title folder) -> the channel labels it is split into."""
    files = {_stem(s): SURROUND for s in SPEC}
    files.update({f"stereo/{_stem(s, '2ch')}": ("L", "R") for s in SPEC})
    return files


@pytest.fixture(scope="module")
def delivered(harness, tmp_path_factory):
    from flows.reel import run

    root = tmp_path_factory.mktemp("naming")
    audio = make_demo_reel(root / "src.wav", seconds=6, layout="5.1", seed=52).path
    reel = root / f"{TITLE}.mov"
    hostile_corpus.ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x36:rate=24000/1001:duration=6", "-i", audio,
                          "-map", "0:v", "-map", "1:a", *hostile_corpus.H264, "-c:a", "pcm_s24le",
                          "-timecode", "01:00:00:00", "-shortest", reel)
    # names here; QC events (netflix fails on words left in the M&E) are tested in tests/e2e/test_qc_events.py
    profile = dataclasses.replace(load_profile("netflix"), split_channels=True, qc_events=EventSettings())
    settings = dataclasses.replace(Settings.load(), stereo_downmix=True)
    (row,) = run([reel], root / "out", resolve("dfn3"), settings, profile).rows
    return root / "out" / TITLE, row


def test_netflix_names(delivered):
    folder, row = delivered
    assert row.status == "ok" and row.qc == "pass", (row.error, row.qc_reasons)
    wavs = {p.relative_to(folder).as_posix() for p in folder.rglob("*.wav")}
    split = {f"{name[:-4]}.{c}.wav" for name, labels in _expected().items() for c in labels}
    assert wavs == set(_expected()) | split
    assert (folder / f"{TITLE}.mov").is_file() and row.deliverable.endswith(f"{TITLE}.mov")


def test_each_channel_file_is_its_channel_at_the_source_timecode(delivered):
    """Mono, 24-bit, 48 kHz, the source's TimeReference and an iXML track named by its channel, and equal to
    that channel of the interleaved stem sample for sample (the null test of the split)."""
    folder, _ = delivered
    for name, labels in _expected().items():
        interleaved = sf.read(folder / name, dtype="int32")[0]
        assert interleaved.shape[1] == len(labels) and read_bwf(folder / name).time_reference == START
        for i, label in enumerate(labels):
            path = folder / f"{name[:-4]}.{label}.wav"
            info = sf.info(str(path))
            assert (info.channels, info.samplerate, info.subtype) == (1, 48000, "PCM_24"), path.name
            assert np.array_equal(sf.read(path, dtype="int32")[0], interleaved[:, i]), path.name
            bwf = read_bwf(path)
            assert bwf.time_reference == START and bwf.ixml_samples == START
            assert bwf.track_names == [(1, 1, label)] and bwf.speed("TIMECODE_RATE") == "24000/1001"


def test_the_manifest_lists_every_file(delivered):
    folder, _ = delivered
    listed = set(json.loads((folder / "manifest.json").read_text())["outputs"])
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*.wav")} <= listed
    assert verify(folder) == []


def test_fps_without_a_frame_rate_fails_at_the_probe_and_tc_rate_mends_it(tmp_path):
    """An audio-only WAV has no frame rate: the netflix naming's {fps} is one line naming the file and the
    remedy, before any work; with --tc-rate (and --split-channels) the CLI delivers it."""
    (tmp_path / "in").mkdir()
    src = hostile_corpus.wav(tmp_path / "in" / "talk.wav", channels=2, seconds=3.0)
    out = tmp_path / "out"
    proc = run_cli("run", src, "--out", out, "--profile", "netflix", "--split-channels")
    assert proc.returncode == 1
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("[talk] FAILED"))
    assert "at probe" in line and "talk.wav" in line and "{fps}" in line and "--tc-rate" in line, line
    assert not list(out.glob("talk/*.wav"))
    proc = run_cli("run", src, "--out", out, "--profile", "netflix", "--split-channels", "--tc-rate", "25")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    names = {p.name for p in (out / "talk").glob("*.wav")}
    stems = [f"talk_{s}_2ch_48k_24b_25" for s in ("PM_Nearfield", "DIAStem", "ME")]
    assert names == {f"{s}{c}.wav" for s in stems for c in ("", ".L", ".R")}
