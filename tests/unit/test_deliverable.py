"""pipeline/deliverable.py: the deliverable's track lists for each master shape and structure, without ffmpeg
(the muxed files are checked with ffprobe in tests/e2e/test_output_tracks.py and test_masters.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.deliverable import FOLDDOWN_NAMES, Languages, Program, deliverable_tracks
from pipeline.layout import LAYOUTS
from pipeline.master import select_master
from pipeline.media import AudioStream, MediaInfo

L51 = ("L", "R", "C", "LFE", "Ls", "Rs")


def info(*channels: int) -> MediaInfo:
    streams = tuple(AudioStream(i + 1, i, "pcm_s24le", n, "mono" if n == 1 else "unknown", 48000, 6.0, None, None)
                    for i, n in enumerate(channels))
    return MediaInfo(Path("m.mov"), "mov", 6.0, 1, streams, ())


def programs(master, stems=("MIX", "DX", "ME")) -> list[Program]:
    found = [Program(master, master.layout.labels, master.layout.ffmpeg_channels,
                     {s: Path(f"{s}.wav") for s in stems})]
    if master.folddown is not None:
        found.append(Program(master.folddown, ("Lt", "Rt"), FOLDDOWN_NAMES,
                             {s: Path(f"LtRt/{s}.wav") for s in stems}, "Lt/Rt "))
    return found


def test_source_structure_of_eight_mono_tracks_with_one_unused():
    """L R C LFE Ls Rs - Lt Rt over nine mono tracks: the unused track is copied in its place and has no stem
    tracks; each stem is eight mono tracks, the last two picked from the fold-down's WAVs."""
    media = info(*[1] * 9)
    master = select_master(media, tracks=L51 + ("-", "Lt", "Rt"))
    tracks = deliverable_tracks("source", programs(master), media, "ebu-r128", Languages("eng"))
    originals, stems = tracks[:9], tracks[9:]
    assert [t.source for t in originals] == list(range(9)) and all(t.copied for t in originals)
    assert originals[6].title == "Original track a:6 (not processed)" and originals[7].title == "Original Lt (a:7)"
    assert len(stems) == 3 * 8
    assert [t.title for t in stems[:8]] == [f"Mix {c}" for c in L51 + ("Lt", "Rt")]
    assert [t.language for t in stems] == ["eng"] * 16 + ["zxx"] * 8
    assert stems[10].picks == ((Path("DX.wav"), 2),) and stems[10].layout == "FC"        # DX C
    assert stems[22].picks == ((Path("LtRt/ME.wav"), 0),) and stems[22].layout == "DL"   # M&E Lt
    assert not any(t.wav for t in stems)


def test_source_structure_of_one_stream_is_the_whole_wav():
    media = info(6)
    tracks = deliverable_tracks("source", programs(select_master(media), ("MIX", "DX", "ME", "MX", "FX")), media,
                                "ebu-r128", Languages("und"))
    assert [(t.title, t.wav, t.copied) for t in tracks] == (
        [("Original mix", None, True)]
        + [(f"{s} {' '.join(L51)}", Path(f"{k}.wav"), False)
           for s, k in (("Mix", "MIX"), ("DX", "DX"), ("M&E", "ME"), ("MX", "MX"), ("FX", "FX"))])
    assert [t.language for t in tracks] == ["und", "und", "und", "zxx", "zxx", "zxx"]


def test_source_structure_keeps_the_files_channel_order():
    """7.1 as eight mono tracks in film order (L R C LFE Lss Rss Lrs Rrs): each stem track picks the channel of
    the 7.1 WAV (WAVE order, rear before side) its source track carries."""
    media = info(*[1] * 8)
    master = select_master(media, tracks=("L", "R", "C", "LFE", "Lss", "Rss", "Lrs", "Rrs"))
    assert master.layout == LAYOUTS["7.1"]
    dx = deliverable_tracks("source", programs(master), media, "x", Languages("und"))[8 + 8:8 + 16]
    assert [t.title for t in dx] == [f"DX {c}" for c in ("L", "R", "C", "LFE", "Lss", "Rss", "Lrs", "Rrs")]
    assert [t.picks[0][1] for t in dx] == [0, 1, 2, 3, 6, 7, 4, 5]
    assert [t.layout for t in dx] == ["FL", "FR", "FC", "LFE", "SL", "SR", "BL", "BR"]


def test_one_stream_holding_two_programs_is_joined_from_both():
    media = info(8)
    master = select_master(media, tracks=L51 + ("Lt", "Rt"))
    tracks = deliverable_tracks("source", programs(master), media, "x", Languages("und"))
    assert len(tracks) == 4 and tracks[0].title == "Original L R C LFE Ls Rs Lt Rt (a:0)"
    assert tracks[2].picks == tuple((Path("DX.wav"), j) for j in range(6)) + ((Path("LtRt/DX.wav"), 0),
                                                                              (Path("LtRt/DX.wav"), 1))
    assert tracks[2].layout == "FL+FR+FC+LFE+BL+BR+DL+DR"
    inter = deliverable_tracks("interleaved", programs(master), media, "x", Languages("und"))
    assert [t.title for t in inter].count("Original L R C LFE Ls Rs Lt Rt (a:0)") == 1   # copied once


def test_interleaved_structure_is_unchanged():
    media = info(*[1] * 8)
    master = select_master(media, tracks=L51 + ("Lt", "Rt"))
    tracks = deliverable_tracks("interleaved", programs(master), media, "ebu-r128", Languages("und"))
    assert [t.title for t in tracks] == (
        [f"Original {c} (a:{i})" for i, c in enumerate(L51 + ("Lt", "Rt"))]
        + ["Delivered mix (ebu-r128)", "DX dialogue", "M&E",
           "Lt/Rt Delivered mix (ebu-r128)", "Lt/Rt DX dialogue", "Lt/Rt M&E"])
    assert [t.wav for t in tracks[8:]] == [Path(p) for p in ("MIX.wav", "DX.wav", "ME.wav", "LtRt/MIX.wav",
                                                             "LtRt/DX.wav", "LtRt/ME.wav")]


def test_unknown_structure_is_an_error():
    media = info(2)
    with pytest.raises(ValueError, match="interleaved, source"):
        deliverable_tracks("stacked", programs(select_master(media)), media, "x", Languages("und"))


@pytest.mark.parametrize("structure", ["interleaved", "source"])
def test_recognised_language_tags_dx_and_an_undetermined_mix(structure):
    """The language the recogniser found tags every DX track, the delivered mix where the source's language is
    undetermined, never the M&E; a source language that is known stays on the mix."""
    media = info(*[1] * 6)
    master = select_master(media, tracks=L51)
    for base, mix in (("und", "fra"), ("eng", "eng")):
        tracks = deliverable_tracks(structure, programs(master), media, "x", Languages(base, "fra"))
        made = [t for t in tracks if not t.copied]
        by_kind = {kind: {t.language for t in made if t.title.startswith(prefix)}
                   for kind, prefix in (("mix", ("Mix", "Delivered")), ("dx", "DX"), ("me", "M&E"))}
        assert by_kind == {"mix": {mix}, "dx": {"fra"}, "me": {"zxx"}}
        assert {t.language for t in tracks if t.copied} == {base}
