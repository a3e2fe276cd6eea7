"""Masters as post houses deliver them (issue 14): 5.1 as six mono tracks (labelled MOV, unlabelled MXF), 5.1 +
Lt/Rt as eight mono tracks with a track map, a 5.1 stream + its 2.0 Lt/Rt stream (auto-detected), 7.1 interleaved
and as eight mono tracks in SMPTE film order.

Each is made from one interleaved master with ffmpeg (the same samples, split into tracks), so the assembled
master must give the interleaved one's stems sample for sample; the deliverable's track count, order and labels
are read back with ffprobe, and the dialogue (in C in the source) is found in C.
"""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ffprobe

pytestmark = pytest.mark.slow

SECONDS = 8
CORR_FOLDDOWN_DX = 0.9    # the fold-down's DX against the 5.1 DX's centre: measured 0.932 on both sides
SPLIT_51 = "[0:a]channelsplit=channel_layout=5.1[L][R][C][LFE][Ls][Rs]"
TRACKS_51 = ["[L]", "[R]", "[C]", "[LFE]", "[Ls]", "[Rs]"]
FOLD_LTRT = "[0:a]pan=stereo|FL=FL+0.707*FC+0.707*BL|FR=FR+0.707*FC+0.707*BR"    # BS.775 Lo/Ro as the Lt/Rt


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True,
                   stdin=subprocess.DEVNULL)


def maps(labels) -> list[str]:
    return [a for label in labels for a in ("-map", label)]


def make_mono51(src: Path, path: Path) -> Path:
    """The 5.1 of `src` as six mono tracks (L R C LFE Ls Rs), the picture copied (MPEG-2 in an MXF)."""
    video = ["-c:v", "mpeg2video"] if path.suffix == ".mxf" else ["-c:v", "copy"]
    ffmpeg("-i", src, "-filter_complex", SPLIT_51, "-map", "0:v", *maps(TRACKS_51), *video, "-c:a", "pcm_s24le",
           path)
    return path


def make_fold8(src: Path, path: Path) -> Path:
    """The 5.1 of `src` as six mono tracks and its BS.775 Lt/Rt fold-down as two more: eight mono tracks."""
    ffmpeg("-i", src, "-filter_complex", SPLIT_51 + ";" + FOLD_LTRT + ",channelsplit=channel_layout=stereo[Lt][Rt]",
           "-map", "0:v", *maps(TRACKS_51 + ["[Lt]", "[Rt]"]), "-c:v", "copy", "-c:a", "pcm_s24le", path)
    return path


@pytest.fixture(scope="module")
def masters(harness, tmp_path_factory):
    """The masters, and three runs over them: auto-detected, 5.1 + Lt/Rt by map, 7.1 in film order by map."""
    from flows.reel import run
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile
    from pipeline.training.demo import make_demo_reel

    root = tmp_path_factory.mktemp("masters")
    auto, fold, film = root / "auto", root / "fold", root / "film"
    for d in (auto, fold, film):
        d.mkdir()
    src = make_demo_reel(auto / "src51.mov", seconds=SECONDS, layout="5.1", seed=4).path
    make_mono51(src, auto / "mono51.mov")                                             # labelled FL FR mono LFE BL BR
    make_mono51(src, auto / "mono51.mxf")                                             # MXF: no channel labels
    make_fold8(src, fold / "fold8.mov")
    ffmpeg("-i", src, "-filter_complex", FOLD_LTRT + "[st]", "-map", "0:v", "-map", "0:a", "-map", "[st]",
           "-c:v", "copy", "-c:a", "pcm_s24le", auto / "sur_st.mov")                 # a:0 5.1, a:1 its Lt/Rt
    ffmpeg("-i", src, "-af", "pan=7.1|FL=FL|FR=FR|FC=FC|LFE=LFE|BL=BL|BR=BR|SL=0.5*BL|SR=0.5*BR",
           "-map", "0:a", "-c:a", "pcm_s24le", auto / "s71.wav")                     # 7.1: FL FR FC LFE BL BR SL SR
    ffmpeg("-i", auto / "s71.wav", "-filter_complex",
           "[0:a]channelsplit=channel_layout=7.1[L][R][C][LFE][Lrs][Rrs][Lss][Rss]",
           *maps(["[L]", "[R]", "[C]", "[LFE]", "[Lss]", "[Rss]", "[Lrs]", "[Rrs]"]),  # SMPTE film order
           "-c:a", "pcm_s24le", film / "film71.mkv")
    spec, profile, settings = resolve("dfn3"), load_profile("ebu-r128"), Settings.load()
    out = root / "out"
    rows = {}
    for folder, tracks in ((auto, None), (fold, ("L", "R", "C", "LFE", "Ls", "Rs", "Lt", "Rt")),
                           (film, ("L", "R", "C", "LFE", "Lss", "Rss", "Lrs", "Rrs"))):
        summary = run([folder], out, spec, dataclasses.replace(settings, tracks=tracks), profile)
        rows.update({r.title: r for r in summary.rows})
    return {"out": out, "rows": rows, "src": src}


def stems(masters, title: str) -> dict[str, np.ndarray]:
    folder = masters["out"] / title
    return {s: sf.read(folder / f"{title}_{s}.wav", dtype="int32", always_2d=True)[0] for s in ("MIX", "DX", "ME")}


def labels(path: Path) -> list[tuple[int, str]]:
    """(channels, label) of each audio track, as MOV (handler_name) or Matroska (title) keeps it."""
    out = []
    for s in ffprobe(path)["streams"]:
        if s["codec_type"] == "audio":
            tags = {k.lower(): v for k, v in s.get("tags", {}).items()}
            out.append((s["channels"], tags.get("title") or tags.get("handler_name", "")))
    return out


@pytest.mark.parametrize("title", ["src51", "mono51", "mono51_mxf", "fold8", "sur_st", "s71", "film71"])
def test_every_master_is_processed(masters, title):
    row = masters["rows"][title]
    assert row.status == "ok", row.error
    assert row.layout == ("7.1" if "71" in title else "5.1") and row.channels == (8 if "71" in title else 6)


@pytest.mark.parametrize("title", ["mono51", "mono51_mxf", "fold8"])
def test_assembled_5_1_gives_the_interleaved_masters_stems(masters, title):
    """Six mono tracks (labelled MOV, unlabelled MXF, or six of eight by a track map): the stems are the
    interleaved master's, sample for sample."""
    got, ref = stems(masters, title), stems(masters, "src51")
    for name in ref:
        assert got[name].shape == ref[name].shape and np.array_equal(got[name], ref[name]), name


def test_7_1_in_film_order_gives_the_interleaved_stems(masters):
    got, ref = stems(masters, "film71"), stems(masters, "s71")
    for name in ref:
        assert np.array_equal(got[name], ref[name]), name


@pytest.mark.parametrize("title,centre", [("src51", 2), ("s71", 2)])
def test_dialogue_is_found_in_the_centre(masters, title, centre):
    """The demo master's dialogue is in C only: DX's centre carries far more than any other channel (measured
    27.4 dB over the loudest other, R, on the 5.1 master); the LFE is never in DX."""
    dx = stems(masters, title)["DX"].astype(np.float64)
    level = 10 * np.log10(np.mean(dx ** 2, axis=0) + 1e-9)
    others = [c for c in range(dx.shape[1]) if c not in (centre, 3)]
    assert level[centre] > max(level[others]) + 20, level
    assert not dx[:, 3].any()


def test_track_map_and_the_folddown_are_reported(masters):
    row = masters["rows"]["fold8"]
    assert row.tracks == "a:0 a:1 a:2 a:3 a:4 a:5 → 5.1 (L R C LFE Ls Rs); Lt/Rt: a:6 a:7", row.tracks
    assert masters["rows"]["mono51"].tracks == "a:0 a:1 a:2 a:3 a:4 a:5 → 5.1 (L R C LFE Ls Rs)"
    assert masters["rows"]["src51"].tracks == "a:0 5.1"
    assert abs(row.ltrt_lufs - (-23.0)) <= 0.5 and row.ltrt_tp_dbtp <= -1.0      # delivered to the same profile


def test_the_folddown_is_separated_too(masters):
    """The Lt/Rt fold-down (L + 0.707 C + 0.707 Ls, and so on) gets its own DX and M&E in LtRt/; its DX follows
    the centre's dialogue of the 5.1 DX (correlation measured 0.932 on both channels; bar 0.9)."""
    folder = masters["out"] / "fold8" / "LtRt"
    dx = sf.read(folder / "fold8_DX.wav", dtype="float64", always_2d=True)[0]
    mix = sf.read(folder / "fold8_MIX.wav", dtype="float64", always_2d=True)[0]
    me = sf.read(folder / "fold8_ME.wav", dtype="float64", always_2d=True)[0]
    assert dx.shape == mix.shape == me.shape and dx.shape[1] == 2
    assert np.max(np.abs(mix - dx - me)) < 4 * 2.0 ** -23                     # the null, read back (3 LSB + 1)
    centre = stems(masters, "fold8")["DX"][:, 2].astype(np.float64)
    corr = [float(np.corrcoef(dx[:, c], centre)[0, 1]) for c in range(2)]
    assert min(corr) > CORR_FOLDDOWN_DX, corr


def test_deliverable_keeps_the_masters_tracks_labelled(masters):
    """ffprobe: the six original tracks first (each labelled with its channel), then the Lt/Rt originals, then the
    delivered mix, DX and M&E in 5.1, then the fold-down's in stereo: nothing of the master dropped."""
    fold = labels(Path(masters["rows"]["fold8"].deliverable))
    assert fold == ([(1, f"Original {c} (a:{i})") for i, c in enumerate(["L", "R", "C", "LFE", "Ls", "Rs"])]
                    + [(1, "Original Lt (a:6)"), (1, "Original Rt (a:7)")]
                    + [(6, "Delivered mix (ebu-r128)"), (6, "DX dialogue"), (6, "M&E")]
                    + [(2, "Lt/Rt Delivered mix (ebu-r128)"), (2, "Lt/Rt DX dialogue"), (2, "Lt/Rt M&E")])
    mxf = labels(Path(masters["rows"]["mono51_mxf"].deliverable))
    assert [n for n, _ in mxf] == [1] * 6 + [6] * 3


def test_a_5_1_stream_and_a_2_0_stream_are_the_program_and_its_folddown(masters):
    """Auto-detected (no track map): the 5.1 stream gives the interleaved master's stems and the 2.0 stream the
    same Lt/Rt stems as the eight-track master's fold-down, sample for sample; the deliverable (ffprobe) has both
    originals, then the 5.1 stems, then the fold-down's."""
    row = masters["rows"]["sur_st"]
    assert row.tracks == "a:0 5.1; Lt/Rt: a:1 stereo", row.tracks
    assert abs(row.ltrt_lufs - (-23.0)) <= 0.5
    got, ref = stems(masters, "sur_st"), stems(masters, "src51")
    assert all(np.array_equal(got[name], ref[name]) for name in ref)
    for name in ("MIX", "DX", "ME"):
        fold = [sf.read(masters["out"] / t / "LtRt" / f"{t}_{name}.wav", dtype="int32")[0] for t in ("sur_st", "fold8")]
        assert fold[0].shape[1] == 2 and np.array_equal(*fold), name
    assert labels(Path(row.deliverable)) == (
        [(6, "Original L R C LFE Ls Rs (a:0)"), (2, "Original Lt Rt (a:1)")]
        + [(6, "Delivered mix (ebu-r128)"), (6, "DX dialogue"), (6, "M&E")]
        + [(2, "Lt/Rt Delivered mix (ebu-r128)"), (2, "Lt/Rt DX dialogue"), (2, "Lt/Rt M&E")])


def test_the_track_map_reads_the_2_0_stream_as_no_folddown(masters, tmp_path):
    """--tracks L,R,C,LFE,Ls,Rs,-,- : the 5.1 alone; the 2.0 stream is copied, last, marked not processed."""
    from flows.steps import ReelJob, process_reel
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile

    settings = dataclasses.replace(Settings.load(), tracks=("L", "R", "C", "LFE", "Ls", "Rs", "-", "-"))
    job = ReelJob(masters["src"].parent / "sur_st.mov", "sur_st", tmp_path / "sur_st")
    row = process_reel(job, resolve("dfn3"), settings, load_profile("ebu-r128"), say=lambda message: None)
    assert row.status == "ok", row.error
    assert row.tracks == "a:0 5.1; not used: - (a:1.0) - (a:1.1)" and not (tmp_path / "sur_st" / "LtRt").exists()
    assert labels(Path(row.deliverable)) == [(6, "Original mix"), (6, "Delivered mix (ebu-r128)"), (6, "DX dialogue"),
                                             (6, "M&E"), (2, "Original track a:1 (not processed)")]
