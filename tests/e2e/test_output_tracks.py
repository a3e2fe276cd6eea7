"""`--output-tracks source` (issue 14): the deliverable keeps the master's track structure. Its first tracks are
the source's, copied in the file's order; then each stem (mix, DX, M&E) in the master's own structure: six mono
tracks give each stem as six mono tracks, eight (5.1 + Lt/Rt) as eight whose last two are the Lt/Rt program's,
one 5.1 stream one 6-channel track, one 8-channel stream (5.1 + Lt/Rt by a track map) one 8-channel track.

Read back with ffprobe (count, order, titles, channels, channel layout, language) and decoded by ffmpeg: a stem
track's samples are the broadcast WAV's channel, exactly (the channels are moved by ffmpeg's join filter, never
mixed).
"""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ffprobe, run_cli
from test_masters import FOLD_LTRT, ffmpeg, make_fold8, make_mono51

pytestmark = pytest.mark.slow

SECONDS = 6
L51 = ["L", "R", "C", "LFE", "Ls", "Rs"]
FOLD_MAP = ("L", "R", "C", "LFE", "Ls", "Rs", "Lt", "Rt")
STEM_TITLES = ("Mix", "DX", "M&E")   # languages: MOV keeps no "zxx" (ffmpeg 5.1); tests/unit/test_deliverable.py


@pytest.fixture(scope="module")
def delivered(harness, tmp_path_factory):
    """Through the CLI: a 5.1 MOV (one stream) and the same 5.1 as six mono tracks; in process with the track
    map L R C LFE Ls Rs Lt Rt: eight mono tracks, and one 8-channel stream holding the 5.1 and its Lt/Rt."""
    from flows.reel import run
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile
    from pipeline.training.demo import make_demo_reel

    root = tmp_path_factory.mktemp("outtracks")
    auto, fold, out = root / "auto", root / "fold", root / "out"
    fold.mkdir()
    src = make_demo_reel(auto / "src51.mov", seconds=SECONDS, layout="5.1", seed=4).path
    make_mono51(src, auto / "mono51.mov")
    make_fold8(src, fold / "fold8.mov")
    ffmpeg("-i", src, "-filter_complex", f"{FOLD_LTRT}[st];[0:a][st]amerge=inputs=2[a]", "-map", "0:v", "-map",
           "[a]", "-c:v", "copy", "-c:a", "pcm_s24le", fold / "fold8i.mov")          # one 8-channel stream
    proc = run_cli("run", auto, "--out", out, "--model", "dfn3", "--output-tracks", "source")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    settings = dataclasses.replace(Settings.load(), tracks=FOLD_MAP, output_tracks="source")
    rows = run([fold], out, resolve("dfn3"), settings, load_profile("ebu-r128")).rows
    assert all(r.status == "ok" for r in rows), [r.error for r in rows]
    return out


def tracks(path: Path) -> list[tuple[int, str, str, str]]:
    """(channels, label, language, channel layout) of each audio track of `path`."""
    found = []
    for s in ffprobe(path)["streams"]:
        if s["codec_type"] == "audio":
            tags = {k.lower(): v for k, v in s.get("tags", {}).items()}
            found.append((s["channels"], tags.get("title") or tags.get("handler_name", ""),
                          tags.get("language", "und"), s.get("channel_layout", "")))   # MOV leaves und out
    return found


def decode(path: Path, track: int, tmp: Path) -> np.ndarray:
    """Audio track `track` (a:N) of `path`, decoded by ffmpeg: (samples, channels) int32 (24-bit << 8)."""
    wav = tmp / f"{path.stem}_a{track}.wav"
    ffmpeg("-i", path, "-map", f"0:a:{track}", "-c:a", "pcm_s24le", wav)
    return sf.read(wav, dtype="int32", always_2d=True)[0]


def stem(out: Path, title: str, name: str, sub: str = "") -> np.ndarray:
    return sf.read(out / title / sub / f"{title}_{name}.wav", dtype="int32", always_2d=True)[0]


def test_six_mono_tracks_give_each_stem_as_six_mono_tracks(delivered):
    found = tracks(delivered / "mono51" / "mono51.mov")
    assert len(found) == (1 + 3) * 6
    assert [(n, t) for n, t, _, _ in found] == (
        [(1, f"Original {c} (a:{i})") for i, c in enumerate(L51)]
        + [(1, f"{s} {c}") for s in STEM_TITLES for c in L51])
    layouts = [lay for _, _, _, lay in found]
    assert layouts[6:] == layouts[:6] * 3            # each stem track labelled as the source's track it stands for
    assert layouts[0] == "1 channels (FL)" and layouts[3] == "1 channels (LFE)"


def test_eight_mono_tracks_end_with_the_lt_rt_programs_stem(delivered):
    labels8 = L51 + ["Lt", "Rt"]
    found = tracks(delivered / "fold8" / "fold8.mov")
    assert len(found) == (1 + 3) * 8
    assert [(n, t) for n, t, _, _ in found] == (
        [(1, f"Original {c} (a:{i})") for i, c in enumerate(labels8)]
        + [(1, f"{s} {c}") for s in STEM_TITLES for c in labels8])
    assert [lay for _, _, _, lay in found[14:16]] == ["1 channels (DL)", "1 channels (DR)"]   # Mix Lt, Mix Rt


def test_one_stream_gives_one_track_per_stem(delivered):
    found = tracks(delivered / "src51" / "src51.mov")
    assert [(n, t, lang, lay) for n, t, lang, lay in found] == (
        [(6, "Original mix", "und", "5.1")]
        # the mix and DX carry the language recognised in the dialogue (the source's is undetermined)
        + [(6, f"{s} {' '.join(L51)}", lang, "5.1") for s, lang in zip(STEM_TITLES, ("eng", "eng", "und"))])
    mixed = tracks(delivered / "fold8i" / "fold8i.mov")
    assert [(n, t) for n, t, _, _ in mixed] == (
        [(8, "Original L R C LFE Ls Rs Lt Rt (a:0)")] + [(8, f"{s} {' '.join(FOLD_MAP)}") for s in STEM_TITLES])
    assert [lay for _, _, _, lay in mixed[1:]] == ["8 channels (FL+FR+FC+LFE+BL+BR+DL+DR)"] * 3


@pytest.mark.parametrize("title", ["mono51", "fold8"])
def test_a_stem_track_is_the_broadcast_wavs_channel(delivered, title, tmp_path):
    """DX C (track 6 + 2 of the DX block) is channel C of the DX broadcast WAV, sample for sample; for the
    eight-track master DX Lt is channel 0 of the fold-down's DX."""
    n = 6 if title == "mono51" else 8
    deliverable = delivered / title / f"{title}.mov"
    dx, centre = stem(delivered, title, "DX"), decode(deliverable, n + n + 2, tmp_path)
    assert centre.shape == (dx.shape[0], 1) and np.array_equal(centre[:, 0], dx[:, 2])
    assert np.abs(dx[:, 2]).max() > 2 ** 24                     # dialogue is there: not two silences compared
    if title == "fold8":
        lt = decode(deliverable, n + n + 6, tmp_path)
        assert np.array_equal(lt[:, 0], stem(delivered, title, "DX", "LtRt")[:, 0])


def test_an_eight_channel_stream_takes_channels_from_both_programs(delivered, tmp_path):
    deliverable = delivered / "fold8i" / "fold8i.mov"
    for track, name in ((1, "MIX"), (3, "ME")):
        got = decode(deliverable, track, tmp_path)
        assert np.array_equal(got[:, :6], stem(delivered, "fold8i", name))
        assert np.array_equal(got[:, 6:], stem(delivered, "fold8i", name, "LtRt"))


def test_the_same_options_resume_and_other_ones_reprocess(delivered):
    """The cache key holds --output-tracks and --start-tc (pipeline.manifest.KeyParts): the CLI's run made mono51
    with --output-tracks source, so the same options skip it; --output-tracks interleaved makes it again (the
    deliverable now one track per stem), and so does a --start-tc, which a second run with it then skips.
    Last in this module: it rewrites mono51's outputs."""
    from flows.steps import ReelJob, process_reel
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile

    job = ReelJob(delivered.parent / "auto" / "mono51.mov", "mono51", delivered / "mono51")
    spec, profile, settings = resolve("dfn3"), load_profile("ebu-r128"), Settings.load()
    source = dataclasses.replace(settings, output_tracks="source")
    say = lambda message: None  # noqa: E731

    assert process_reel(job, spec, source, profile, say=say).status == "skipped"
    row = process_reel(job, spec, settings, profile, say=say)
    assert row.status == "ok", row.error
    assert [(n, t) for n, t, _, _ in tracks(Path(row.deliverable))][6:] == [
        (6, "Delivered mix (ebu-r128)"), (6, "DX dialogue"), (6, "M&E")]
    assert process_reel(job, spec, settings, profile, say=say).status == "skipped"
    moved = dataclasses.replace(job, start_tc="10:00:00:00", tc_rate="25")
    assert process_reel(moved, spec, settings, profile, say=say).status == "ok"
    assert process_reel(moved, spec, settings, profile, say=say).status == "skipped"
    assert process_reel(job, spec, settings, profile, say=say).status == "ok"     # back to the source's start
