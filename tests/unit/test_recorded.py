"""Tests of pipeline.training.recorded and the corpus's --recorded-voices: people's recorded voices from Debian
packages in train only, decoded at the right length, sound effects and the benchmarks' test voices kept out."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from pipeline.errors import MediaError
from pipeline.training import corpus, recorded

pytestmark = pytest.mark.skipif(
    not recorded.QUEEN.is_file() or not recorded.HEDGEWARS.is_dir() or not shutil.which("ffprobe"),
    reason="needs flight-of-the-amazon-queen hedgewars-data ffmpeg")


def test_queen_table_lists_the_speech_lines_inside_the_file():
    table = recorded.queen_table()
    size = recorded.QUEEN.stat().st_size
    assert len(table) > 6000  # 6,627 speech lines in Debian's 1.0.0 package
    assert all(name.endswith(".SB") and 0 < n and off + n <= size for name, (off, n) in table.items())
    assert "1028SSSS.SB" not in table and "03SSSSJ1.SB" in table  # an effect out, a line of Joe's in


def test_a_queen_line_decodes_to_its_length_as_ffprobe_reads_it(tmp_path):
    line = recorded.Line("queen:020001P2.SB", "queen")
    offset, size = recorded.queen_table()["020001P2.SB"]
    with open(recorded.QUEEN, "rb") as f:
        f.seek(offset)
        (tmp_path / "line.mp3").write_bytes(f.read(size))
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                            str(tmp_path / "line.mp3")], capture_output=True, text=True, timeout=30, check=True)
    x = recorded.read(line, 48000)
    assert x.dtype == np.float32 and x.ndim == 1 and np.abs(x).max() > 0.05
    assert abs(len(x) / 48000 - float(probe.stdout)) < 0.06  # MP3 padding: a frame or two


def test_lines_leave_out_the_processed_and_sung_packs_and_the_test_voices():
    lines = recorded.lines()
    packs = {line.speaker for line in lines} - {"queen"}
    assert len(packs) >= 10 and not packs & recorded.HEDGEWARS_SKIP
    assert sum(line.speaker == "queen" for line in lines) == len(recorded.queen_table())
    held = set()
    for package in recorded.HELD_OUT_PACKAGES:  # whatever of them is installed: none of its files is a source
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=30)
        held |= set(listing.stdout.split()) if listing.returncode == 0 else set()
    sources = {str(recorded.HEDGEWARS / line.name.split(":", 1)[1]) for line in lines if line.speaker != "queen"}
    assert not sources & held


def test_missing_packages_name_them(monkeypatch, tmp_path):
    monkeypatch.setattr(recorded, "QUEEN", tmp_path / "none.1c")
    with pytest.raises(MediaError, match="flight-of-the-amazon-queen hedgewars-data"):
        corpus.build_corpus(tmp_path / "c", minutes=0.1, sources=("dialogue",), recorded_voices=True)
    assert not (tmp_path / "c").exists()


@pytest.mark.skipif(not shutil.which("espeak-ng") or not corpus.ASTERISK_DIR.is_dir(),
                    reason="needs espeak-ng asterisk-core-sounds-en-wav")
def test_recorded_voices_speak_every_other_train_clip_and_never_in_eval(tmp_path):
    root = tmp_path / "c"
    corpus.build_corpus(root, minutes=0.5, seed=3, sources=("dialogue",), recorded_voices=True)
    manifest = json.loads((root / "manifest.json").read_text())
    clips = manifest["clips"]
    train = [c for c in clips if c["split"] == "train"]
    assert len(train) >= 4
    for c in clips:
        is_recorded = c["split"] == "train" and int(c["path"][-8:-4]) % 2 == 1
        assert (c["generator"] == "recorded") == is_recorded, c["path"]
        x, rate = sf.read(root / c["path"], always_2d=True)
        assert (rate, x.shape[1]) == (48000, 2) and 4.0 <= len(x) / rate <= 20.0
        if is_recorded:
            assert c["lines"] and set(c["packages"]) <= set(recorded.PACKAGES)
    assert set(manifest["recorded_voices"]["packages"]) == set(recorded.PACKAGES)
    assert manifest["recorded_voices"]["never_used"] == list(recorded.HELD_OUT_PACKAGES)
    # the same folder rebuilt without recorded voices remakes those clips: no silent mix of the two
    summary = corpus.build_corpus(root, minutes=0.5, seed=3, sources=("dialogue",))
    again = json.loads((root / "manifest.json").read_text())
    assert summary.skipped == len(clips) - sum(c["generator"] == "recorded" for c in clips)
    assert "recorded" not in {c["generator"] for c in again["clips"]} and "recorded_voices" not in again

