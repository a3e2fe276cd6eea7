"""Masters as post houses deliver them (issue 14): 5.1 as six mono tracks (labelled MOV, unlabelled MXF), 5.1 +
Lt/Rt as eight mono tracks with a track map, 7.1 interleaved and as eight mono tracks in SMPTE film order.

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
SPLIT_51 = "[0:a]channelsplit=channel_layout=5.1[L][R][C][LFE][Ls][Rs]"
TRACKS_51 = ["[L]", "[R]", "[C]", "[LFE]", "[Ls]", "[Rs]"]


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True,
                   stdin=subprocess.DEVNULL)


def maps(labels) -> list[str]:
    return [a for label in labels for a in ("-map", label)]


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
    ffmpeg("-i", src, "-filter_complex", SPLIT_51, "-map", "0:v", *maps(TRACKS_51), "-c:v", "copy",
           "-c:a", "pcm_s24le", auto / "mono51.mov")                                 # labelled FL FR mono LFE BL BR
    ffmpeg("-i", src, "-filter_complex", SPLIT_51, "-map", "0:v", *maps(TRACKS_51), "-c:v", "mpeg2video",
           "-c:a", "pcm_s24le", auto / "mono51.mxf")                                 # MXF: no channel labels
    ffmpeg("-i", src, "-filter_complex", SPLIT_51 + ";[0:a]pan=stereo|FL=FL+0.707*FC+0.707*BL|"
           "FR=FR+0.707*FC+0.707*BR,channelsplit=channel_layout=stereo[Lt][Rt]", "-map", "0:v",
           *maps(TRACKS_51 + ["[Lt]", "[Rt]"]), "-c:v", "copy", "-c:a", "pcm_s24le", fold / "fold8.mov")
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


@pytest.mark.parametrize("title", ["src51", "mono51", "mono51_mxf", "fold8", "s71", "film71"])
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


def test_track_map_and_what_is_not_separated_are_reported(masters):
    row = masters["rows"]["fold8"]
    assert row.tracks.endswith("→ 5.1 (L R C LFE Ls Rs); not separated: Lt (a:6) Rt (a:7)"), row.tracks
    assert masters["rows"]["mono51"].tracks == "a:0 a:1 a:2 a:3 a:4 a:5 → 5.1 (L R C LFE Ls Rs)"
    assert masters["rows"]["src51"].tracks == "a:0 5.1"


def test_deliverable_keeps_the_masters_tracks_labelled(masters):
    """ffprobe: the six original tracks first (each labelled with its channel), then the delivered mix, DX and
    M&E in 5.1, then the fold-down tracks, copied and marked not processed: nothing of the master dropped."""
    fold = labels(Path(masters["rows"]["fold8"].deliverable))
    assert fold == ([(1, f"Original {c} (a:{i})") for i, c in enumerate(["L", "R", "C", "LFE", "Ls", "Rs"])]
                    + [(6, "Delivered mix (ebu-r128)"), (6, "DX dialogue"), (6, "M&E")]
                    + [(1, "Original track a:6 (not processed)"), (1, "Original track a:7 (not processed)")])
    mxf = labels(Path(masters["rows"]["mono51_mxf"].deliverable))
    assert [n for n, _ in mxf] == [1] * 6 + [6] * 3
