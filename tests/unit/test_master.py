"""Which audio of a file is processed (pipeline/master.py): one stream, or tracks assembled into one layout by
their labels, their count or a track map; ambiguous masters are one line naming the choices, never track 1 alone.
Pure: MediaInfo from ffprobe-shaped dictionaries (tests/e2e/test_masters.py runs real files)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError, MediaError
from pipeline.master import check_track_map, select_master
from pipeline.media import parse_probe


def info(*tracks, rate=48000, seconds=10.0):
    """A file whose audio streams are `tracks`: an int (channels, unlabelled), or a layout string for ffprobe's
    channel_layout ("1 channels (FL)", "mono", "5.1"), or a (layout-or-channels, rate, seconds) tuple."""
    streams = []
    for i, t in enumerate(tracks):
        t = t if isinstance(t, tuple) else (t, rate, seconds)
        what, r, s = t
        channels = what if isinstance(what, int) else {"5.1": 6, "7.1": 8, "stereo": 2}.get(what, 1)
        stream = {"index": i + 1, "codec_type": "audio", "codec_name": "pcm_s24le", "channels": channels,
                  "sample_rate": str(r), "duration": str(s)}
        if not isinstance(what, int):
            stream["channel_layout"] = what
        streams.append(stream)
    return parse_probe({"format": {"duration": "10"}, "streams": streams}, Path("reel.mov"))


def placed(master):
    """(audio index, channel) per layout position."""
    return [(s.audio_index, c) for s, c in master.channels_from]


def test_one_stream_is_processed_as_it_is():
    m = select_master(info("5.1"))
    assert (m.layout.name, m.single.audio_index, m.describe()) == ("5.1", 0, "a:0 5.1")


@pytest.mark.parametrize("count,layout", [(2, "stereo"), (6, "5.1")])
def test_unlabelled_mono_tracks_by_count(count, layout):
    m = select_master(info(*[1] * count))
    assert m.layout.name == layout and placed(m) == [(i, 0) for i in range(count)] and m.single is None
    assert m.describe().startswith("a:0 a:1") and m.layout.name in m.describe()


def test_mono_tracks_by_their_labels_in_any_order():
    labels = ["1 channels (BR)", "1 channels (FR)", "mono", "1 channels (FL)", "1 channels (LFE)",
              "1 channels (BL)"]                                   # Rs R C L LFE Ls: "mono" is the centre
    m = select_master(info(*labels))
    assert m.layout.name == "5.1" and placed(m) == [(3, 0), (1, 0), (2, 0), (4, 0), (5, 0), (0, 0)]
    side = select_master(info("1 channels (FL)", "1 channels (FR)", "1 channels (FC)", "1 channels (LFE)",
                              "1 channels (SL)", "1 channels (SR)"))
    assert side.layout.name == "5.1" and placed(side) == [(i, 0) for i in range(6)]


@pytest.mark.parametrize("tracks,words", [
    ([1] * 8, "8 separate mono tracks without channel labels (7.1 or 5.1 + Lt/Rt): name them with --tracks"),
    ([1] * 5, "5 separate mono tracks without channel labels (in no order reelsplit can assume)"),
    (["stereo", 1, 1], "2 separate mono tracks beside 1 multichannel stream(s)"),
    (["1 channels (FL)", "1 channels (FR)", 1], "labelled FL FR ?"),
    (["1 channels (FL)", "1 channels (FC)"], "labelled FL FC, which is no layout reelsplit separates"),
    ([(1, 48000, 10.0), (1, 44100, 10.0)], "differ in sample rate (a:0 48000 Hz, a:1 44100 Hz)"),
    ([(1, 48000, 10.0), (1, 48000, 9.5)], "differ in length (a:0 10.000 s, a:1 9.500 s)"),
])
def test_masters_that_cannot_be_placed_are_one_line(tracks, words):
    with pytest.raises(MediaError) as err:
        select_master(info(*tracks))
    assert words in str(err.value) and "\n" not in str(err.value) and err.value.path == Path("reel.mov")


@pytest.mark.parametrize("tracks", [
    ["1 channels (FL)", "1 channels (FR)", "1 channels (FL)", "1 channels (FR)"],   # a stereo pair twice
    [1] * 5, [1] * 7, [1] * 8, ["stereo", 1, 1],
])
def test_the_error_suggests_track_maps_that_fit_the_file(tracks):
    """The hint's maps name every audio channel of the file (a shorter map is refused) and, passed back as
    --tracks, place the master."""
    import re

    with pytest.raises(MediaError) as err:
        select_master(info(*tracks))
    maps = re.findall(r"--tracks (\S+) for", str(err.value))
    channels = sum(s.channels for s in info(*tracks).audio)
    assert maps and all(len(m.split(",")) == channels for m in maps)
    for m in maps:
        assert select_master(info(*tracks), tracks=check_track_map(m.split(","))).layout.name in ("stereo", "5.1",
                                                                                                   "7.1")


@pytest.mark.parametrize("audio_starts,lead", [(0.5, 0.0), (0.0, 0.0), (-0.021, 0.021), (None, 0.0)])
def test_audio_lead_over_the_picture(audio_starts, lead):
    """Only audio that starts before the picture leads it (audio that starts later is padded at extraction)."""
    from pipeline.master import audio_lead_s

    audio = {"index": 1, "codec_type": "audio", "codec_name": "pcm_s24le", "channels": 2, "sample_rate": "48000"}
    if audio_starts is not None:
        audio["start_time"] = str(audio_starts)
    video = {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 64, "height": 36,
             "r_frame_rate": "24/1", "start_time": "0.000000"}
    probed = parse_probe({"format": {"duration": "10"}, "streams": [video, audio]}, Path("reel.mov"))
    assert audio_lead_s(probed, select_master(probed)) == pytest.approx(lead)
    assert probed.audio[0].start_s == (None if audio_starts is None else pytest.approx(audio_starts))


def test_track_map_5_1_plus_foldown_over_eight_mono_tracks():
    m = select_master(info(*[1] * 8), tracks=("L", "R", "C", "LFE", "Ls", "Rs", "Lt", "Rt"))
    assert m.layout.name == "5.1" and placed(m) == [(i, 0) for i in range(6)] and m.unused == ""
    assert m.folddown.layout.name == "stereo" and placed(m.folddown) == [(6, 0), (7, 0)]
    assert m.describe().endswith("; Lt/Rt: a:6 a:7")
    with pytest.raises(MediaError, match="names Lt without its pair"):
        select_master(info(*[1] * 8), tracks=("L", "R", "C", "LFE", "Ls", "Rs", "Lt", "-"))


def test_track_map_7_1_in_film_order():
    """SMPTE film order L R C LFE Lss Rss Lrs Rrs onto 7.1 in the WAVE mask order (… BL BR SL SR)."""
    m = select_master(info(*[1] * 8), tracks=("L", "R", "C", "LFE", "Lss", "Rss", "Lrs", "Rrs"))
    assert m.layout.name == "7.1" and placed(m) == [(0, 0), (1, 0), (2, 0), (3, 0), (6, 0), (7, 0), (4, 0), (5, 0)]


def test_track_map_reorders_an_interleaved_stream_in_film_order():
    m = select_master(info(6), tracks=("L", "C", "R", "Ls", "Rs", "LFE"))
    assert m.layout.name == "5.1" and m.single is None
    assert placed(m) == [(0, 0), (0, 2), (0, 1), (0, 5), (0, 3), (0, 4)]


def test_track_map_with_unused_tracks_of_a_16_track_master():
    tracks = ("L", "R", "C", "LFE", "Ls", "Rs", "Lt", "Rt") + ("-",) * 8
    m = select_master(info(*[1] * 16), tracks=tracks)
    assert m.layout.name == "5.1" and m.unused.count("-") == 8


@pytest.mark.parametrize("tracks,words", [
    (("L", "R", "C", "LFE", "Ls", "Rs"), "names 6 tracks (L R C LFE Ls Rs) but the file has 8 audio channels"),
    (("L", "R", "C", "LFE", "Ls", "Rs", "L", "-"), "names a channel twice"),
    (("L", "C", "-", "-", "-", "-", "-", "-"), "gives no layout reelsplit separates"),
])
def test_track_maps_that_do_not_fit_are_one_line(tracks, words):
    with pytest.raises(MediaError) as err:
        select_master(info(*[1] * 8), tracks=tracks)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_track_map_labels_are_checked_when_loaded():
    assert check_track_map(["L", " R "]) == ("L", "R")
    with pytest.raises(ValueError, match="unknown track label 'Left'"):
        check_track_map(["Left", "R"])
    s = Settings.from_dict({"tracks": ["L", "R", "C", "LFE", "Ls", "Rs", "-", "-"]})
    assert s.tracks == ("L", "R", "C", "LFE", "Ls", "Rs", "-", "-")
    with pytest.raises(ConfigError, match="cfg.yaml: tracks: unknown track label 'X'"):
        Settings.from_dict({"tracks": "L,X"}, source="cfg.yaml")


@pytest.mark.parametrize("tracks", [("5.1", "stereo"), ("stereo", "5.1"), (6, 2), ("7.1", "stereo")])
def test_a_surround_and_a_stereo_stream_are_the_program_and_its_folddown(tracks):
    """5.1 (or 7.1) + 2.0 streams, in either order: the surround program and its Lt/Rt fold-down, both separated."""
    m = select_master(info(*tracks))
    surround = 0 if tracks[0] in ("5.1", "7.1", 6) else 1
    assert m.layout.name == ("7.1" if "7.1" in tracks else "5.1") and m.single.audio_index == surround
    assert m.folddown.layout.name == "stereo" and placed(m.folddown) == [(1 - surround, 0), (1 - surround, 1)]
    assert m.describe() == f"a:{surround} {m.layout.name}; Lt/Rt: a:{1 - surround} stereo"


def test_the_other_readings_of_a_surround_and_a_stereo_stream():
    """The track map reads the 2.0 as unused (copied only) or processes it alone; --stream 1 takes it alone too;
    two stereo streams or a third stream keep the first stream alone, as before."""
    both = info("5.1", "stereo")
    alone = select_master(both, tracks=("L", "R", "C", "LFE", "Ls", "Rs", "-", "-"))
    assert alone.folddown is None and alone.layout.name == "5.1" and alone.unused == "- (a:1.0) - (a:1.1)"
    stereo = select_master(both, tracks=("-",) * 6 + ("L", "R"))
    assert stereo.layout.name == "stereo" and placed(stereo) == [(1, 0), (1, 1)]
    assert select_master(both, 1).describe() == "a:1 stereo"
    assert select_master(info("5.1", "stereo", "stereo")).describe() == "a:0 5.1"
    assert select_master(info("stereo", "stereo")).describe() == "a:0 stereo"


def test_a_stereo_stream_of_another_rate_or_length_is_no_folddown():
    """Not a fold-down of the surround: the surround alone, as before (the 2.0 is copied into the deliverable)."""
    assert select_master(info("5.1", ("stereo", 44100, 10.0))).describe() == "a:0 5.1"
    assert select_master(info("5.1", ("stereo", 48000, 9.0))).describe() == "a:0 5.1"
