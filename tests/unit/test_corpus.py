"""Tests of pipeline.training.corpus: layout, clip format and levels, disjoint train/eval material, resumable and
deterministic builds, missing Debian packages, the `reelsplit corpus build` entry."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.errors import ConfigError, MediaError
from pipeline.training import corpus, demo

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("ffmpeg", "espeak-ng", "fluidsynth")) or not demo.SOUNDFONT.is_file()
    or not corpus.ASTERISK_DIR.is_dir() or not all(d.is_dir() for d, _ in corpus.THEME_DIRS.values()),
    reason="needs ffmpeg espeak-ng fluidsynth fluid-soundfont-gm asterisk-core-sounds-en-wav "
           "sound-theme-freedesktop yaru-theme-sound",
)
MINUTES, SEED = 0.3, 3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(root, summary, manifest) of one tiny build of all three sources."""
    root = tmp_path_factory.mktemp("corpus")
    summary = corpus.build_corpus(root, minutes=MINUTES, seed=SEED)
    return root, summary, json.loads((root / "manifest.json").read_text())


def wavs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))


def material(clip: dict) -> set[str]:
    """What a clip was made from, as the units the split keeps apart."""
    if clip["source"] == "dialogue":
        return ({f"prompt:{p}" for p in clip["prompts"]} if clip["generator"] == "asterisk"
                else {f"variant:{clip['variant']}", f"voice:{clip['voice']}+{clip['variant']}"})
    if clip["source"] == "music":
        return {f"work:{clip['work']}", f"file:{clip['file']}"}
    return {f"sound:{s}" for s in clip["sounds"]} | {f"synth:{k}:{clip['seed']}" for k in clip["kinds"]}


def test_layout_counts_and_summary(built):
    root, summary, manifest = built
    assert summary.skipped == 0 and summary.root == root
    for split in corpus.SPLITS:
        for source in corpus.SOURCES:
            files = list((root / split / source).glob("*.wav"))
            assert len(files) == summary.counts[split][source] >= (1 if split == "train" else corpus.MIN_EVAL_CLIPS)
            listed = [c for c in manifest["clips"] if c["split"] == split and c["source"] == source]
            assert sum(c["seconds"] for c in listed) == pytest.approx(summary.seconds[split][source], abs=0.01)
    assert all(summary.seconds["train"][source] >= MINUTES * 60 * 0.9 for source in corpus.SOURCES)
    assert sorted(c["path"] for c in manifest["clips"]) == wavs(root)
    assert not list(root.rglob("*.part"))
    assert manifest["seed"] == SEED and manifest["sample_rate"] == 48000


def test_every_clip_is_48k_stereo_4_to_20_s_not_silent_not_clipping(built):
    root, _, manifest = built
    for clip in manifest["clips"]:
        x, rate = sf.read(root / clip["path"], always_2d=True)
        assert (rate, x.shape[1], sf.info(root / clip["path"]).subtype) == (48000, 2, "PCM_24"), clip["path"]
        assert 4.0 <= len(x) / rate <= 20.0 and clip["seconds"] == pytest.approx(len(x) / rate, abs=1e-3)
        peak = 20 * np.log10(np.abs(x).max())
        assert -6.1 <= peak <= -0.9 and peak == pytest.approx(clip["peak_dbfs"], abs=0.05), clip["path"]
        assert 10 * np.log10(np.mean(x**2)) > -50, clip["path"]
        if clip["source"] == "dialogue":  # speech starts and ends at once: silence trimmed
            edge = int(0.05 * rate)
            assert min(np.abs(x[:edge]).max(), np.abs(x[-edge:]).max()) > 1e-3 * np.abs(x).max(), clip["path"]


def test_train_and_eval_share_no_voice_work_or_sound(built):
    _, _, manifest = built
    used = {split: set().union(*(material(c) for c in manifest["clips"] if c["split"] == split))
            for split in corpus.SPLITS}
    assert used["train"] and used["eval"] and not used["train"] & used["eval"]
    held = manifest["held_out"]
    for clip in manifest["clips"]:  # the held-out lists say which is which
        if clip["source"] == "music":
            assert (clip["work"] in held["music_works"]) == (clip["split"] == "eval")
        elif clip["source"] == "dialogue" and clip["generator"] == "espeak-ng":
            assert (clip["variant"] in held["espeak_variants"]) == (clip["split"] == "eval")
        else:
            for name in clip.get("prompts", []) + clip.get("sounds", []):
                assert (name in held["asterisk_prompts"] + held["sounds"]) == (clip["split"] == "eval")
    generators = {c.get("generator") for c in manifest["clips"] if c["source"] == "dialogue"}
    assert generators == {"asterisk", "espeak-ng"}


def test_rebuild_skips_everything_and_writes_the_same_manifest(built):
    root, summary, _ = built
    before = {p: (root / p).stat().st_mtime_ns for p in wavs(root)}
    text = (root / "manifest.json").read_bytes()
    again = corpus.build_corpus(root, minutes=MINUTES, seed=SEED)
    assert again.skipped == len(before) and again.counts == summary.counts and again.seconds == summary.seconds
    assert (root / "manifest.json").read_bytes() == text
    assert {p: (root / p).stat().st_mtime_ns for p in wavs(root)} == before


def test_interrupted_build_resumes_with_identical_files(built, tmp_path):
    root, summary, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    lost = ["train/music/music-0000.wav", "eval/effects/effects-0001.wav", "eval/dialogue/dialogue-0002.wav"]
    originals = {p: (copy / p).read_bytes() for p in lost}
    for p in lost:
        (copy / p).unlink()
    (copy / "train/effects/.effects-0000.wav.part").write_bytes(b"half a file")  # as a killed build leaves
    resumed = corpus.build_corpus(copy, minutes=MINUTES, seed=SEED)
    assert resumed.skipped == sum(sum(c.values()) for c in summary.counts.values()) - len(lost)
    assert {p: (copy / p).read_bytes() for p in lost} == originals  # byte for byte: seeded, no timestamps
    assert (copy / "manifest.json").read_bytes() == (root / "manifest.json").read_bytes()
    assert not list(copy.rglob("*.part"))


def test_same_seed_same_files_other_seed_other_material(built, tmp_path):
    root, _, manifest = built
    same = corpus.build_corpus(tmp_path / "same", minutes=MINUTES, seed=SEED, sources=("effects",))
    assert wavs(tmp_path / "same") == [p for p in wavs(root) if "/effects/" in p]
    assert all((tmp_path / "same" / p).read_bytes() == (root / p).read_bytes() for p in wavs(tmp_path / "same"))
    assert same.counts["train"] == {"effects": built[1].counts["train"]["effects"]}
    other = corpus.build_corpus(tmp_path / "other", minutes=MINUTES, seed=SEED + 1, sources=("effects",))
    other_manifest = json.loads((tmp_path / "other" / "manifest.json").read_text())
    assert other_manifest["held_out"]["sounds"] != manifest["held_out"]["sounds"]
    assert other.skipped == 0


@pytest.mark.parametrize("kind", sorted(set(corpus.EFFECT_KINDS + corpus.BED_KINDS)))
def test_each_effect_kind_renders_stereo_sound(kind):
    used: list[str] = []
    x = corpus._effect(kind, np.random.default_rng(0), 3 * 48000, ["freedesktop/bell.oga"], used)
    assert x.shape == (3 * 48000, 2) and np.isfinite(x).all() and np.abs(x).max() > 1e-3
    assert used == (["freedesktop/bell.oga"] * len(used) if kind == "theme" else []) and (kind != "theme" or used)


@pytest.mark.parametrize("attr, value, package, sources", [
    ("ASTERISK_DIR", Path("/nonexistent/asterisk"), "asterisk-core-sounds-en-wav", ("dialogue",)),
    ("THEME_DIRS", {"Yaru": (Path("/nonexistent/Yaru"), "yaru-theme-sound")}, "yaru-theme-sound", ("effects",)),
])
def test_missing_debian_material_names_the_package(monkeypatch, tmp_path, attr, value, package, sources):
    monkeypatch.setattr(corpus, attr, value)
    with pytest.raises(MediaError, match=package):
        corpus.build_corpus(tmp_path / "c", minutes=0.1, sources=sources)
    assert not (tmp_path / "c").exists()


def test_missing_soundfont_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "SOUNDFONT", tmp_path / "none.sf2")
    with pytest.raises(MediaError, match="fluid-soundfont-gm"):
        corpus.build_corpus(tmp_path / "c", minutes=0.1, sources=("music",))


@pytest.mark.parametrize("kwargs", [{"minutes": 0}, {"eval_fraction": 1.0}, {"sources": ("speech",)}])
def test_bad_settings_raise_config_error(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        corpus.build_corpus(tmp_path, **kwargs)


def test_cli_prints_the_table_and_fails_cleanly(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "flows.cli", "corpus", "build", *map(str, a)],  # noqa: E731
                                    cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    ok = run(tmp_path / "c", "--minutes", "0.05", "--seed", "1", "--sources", "effects")
    assert ok.returncode == 0, ok.stderr
    assert "eval   effects" in ok.stdout and "manifest.json" in ok.stdout and "[1/" in ok.stderr
    bad = run(tmp_path / "d", "--minutes", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("reelsplit: error: ") and len(bad.stderr.splitlines()) == 1


@pytest.mark.parametrize("rel, key", [
    ("bach/bwv244.3.mxl", "bach/bwv244"), ("bach/bwv145-a.mxl", "bach/bwv145"),
    ("mozart/k155/movement2.mxl", "mozart/k155"), ("palestrina/Agnus_II_03_a.krn", "palestrina/mass_03"),
    ("monteverdi/madrigal.3.1_old.mxl", "monteverdi/madrigal.3.1"),
    ("trecento/PMFC_06-Jacopo-03b-Di_Novo.xml", "trecento/PMFC_06-Jacopo-03-Di_Novo"),
])
def test_work_keys_group_movements_and_versions(rel, key):
    assert corpus._work_key(rel) == key


def test_music_split_holds_out_whole_works_and_their_copies():
    works = corpus._pools(("music",), SEED, 0.2)["works"]
    root = corpus._music_root()
    digests = {split: {hashlib.sha1((root / f).read_bytes()).hexdigest() for _, files in works[split] for f in files}
               for split in corpus.SPLITS}
    assert not digests["train"] & digests["eval"]
    assert len(works["eval"]) >= 0.15 * (len(works["train"]) + len(works["eval"])) > 50
