"""Delivery file names (issue 14, "Delivery to spec"): the naming template's fields, the built-in netflix naming,
the template's validation (one line naming the file and the key), and discrete mono WAVs per channel of a stem."""
from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from pipeline import naming
from pipeline.audio import Stamp, write_wav
from pipeline.discrete import split_channels
from pipeline.errors import ConfigError, MediaError
from pipeline.layout import LAYOUTS, one_channel
from pipeline.profiles import Profile, load_profile
from pipeline.timecode import StartTimecode
from tc_reference import read_bwf

NTSC = Fraction(1000, 1001)
BASE = {"name": "x", "target_lufs": -23, "true_peak_dbtp": -1}


@pytest.mark.parametrize("layout,text", [("mono", "mono"), ("stereo", "2ch"), ("5.0", "5ch"), ("5.1", "6ch"),
                                         ("7.1", "8ch")])
def test_layout_field_is_the_channel_count(layout, text):
    assert naming.layout_field(LAYOUTS[layout]) == text


@pytest.mark.parametrize("rate,text", [(48000, "48k"), (44100, "44.1k"), (96000, "96k"), (32000, "32k")])
def test_rate_field_in_khz(rate, text):
    assert naming.rate_field(rate) == text


@pytest.mark.parametrize("fps,text", [(24 * NTSC, "23976"), (Fraction(24), "24"), (Fraction(25), "25"),
                                      (30 * NTSC, "2997"), (Fraction(30), "30"), (Fraction(50), "50"),
                                      (60 * NTSC, "5994"), (12.5, "125")])
def test_fps_field_is_the_rate_without_its_point(fps, text):
    assert naming.fps_field(fps) == text


def test_default_naming_is_unchanged():
    p = Profile.from_dict(BASE, "p.yaml")
    fields = naming.reel_fields("REEL1", LAYOUTS["5.1"], 48000, 24, None)
    assert [p.file_name(fields, s) for s in naming.STEMS] == [f"REEL1_{s}.wav" for s in naming.STEMS]
    assert p.file_name(fields, "DX", "L") == "REEL1_DX.L.wav" and not p.split_channels


def test_every_field_from_the_reel():
    p = Profile.from_dict({**BASE, "naming": "{title}-{stem}-{layout}-{rate}-{bits}-{fps}.wav",
                           "channel_naming": "{title}-{stem}-{channel}-{layout}.wav", "stem_names": {"DX": "DIA"}},
                          "p.yaml")
    fields = naming.reel_fields("R1", LAYOUTS["7.1"], 96000, 32, Fraction(25))
    assert p.file_name(fields, "DX") == "R1-DIA-8ch-96k-32b-25.wav"
    assert p.file_name(fields, "MX") == "R1-MX-8ch-96k-32b-25.wav"        # not in stem_names: our name
    assert p.file_name(fields, "DX", "Lss") == "R1-DIA-Lss-8ch.wav"
    assert p.file_name(fields.with_layout(LAYOUTS["stereo"]), "ME", "R") == "R1-ME-R-2ch.wav"


def test_netflix_naming():
    """Netflix's convention (Asset Naming: Sound Mastering and Music Archival): title, asset type, 6ch, 48k, 24b,
    the time code rate without its point, discrete channels as .L … .Rs before .wav."""
    p = load_profile("netflix")
    fields = naming.reel_fields("chefs_table_s02e02_v04", LAYOUTS["5.1"], 48000, 24, 24 * NTSC)
    assert {s: p.file_name(fields, s) for s in naming.STEMS} == {
        "MIX": "chefs_table_s02e02_v04_PM_Nearfield_6ch_48k_24b_23976.wav",
        "DX": "chefs_table_s02e02_v04_DIAStem_6ch_48k_24b_23976.wav",
        "ME": "chefs_table_s02e02_v04_ME_6ch_48k_24b_23976.wav",
        "MX": "chefs_table_s02e02_v04_MXStem_6ch_48k_24b_23976.wav",
        "FX": "chefs_table_s02e02_v04_FXStem_6ch_48k_24b_23976.wav"}
    assert [p.file_name(fields, "FX", c) for c in LAYOUTS["5.1"].labels] == [
        f"chefs_table_s02e02_v04_FXStem_6ch_48k_24b_23976.{c}.wav" for c in ("L", "R", "C", "LFE", "Ls", "Rs")]
    # the other profile values are as they were
    assert (p.measurement, p.target_lufs, p.true_peak_dbtp, p.me_ceiling_dbtp, p.sample_rate, p.bit_depth,
            p.layouts) == ("dialog-gated", -27.0, -2.0, -1.0, 48000, 24, ("stereo", "5.1"))


def test_fps_without_a_frame_rate_is_one_line_naming_the_file(tmp_path):
    p = Profile.from_dict({**BASE, "naming": "{title}_{stem}_{fps}.wav"}, "p.yaml")
    fields = naming.reel_fields("talk", LAYOUTS["stereo"], 48000, 24, None, tmp_path / "talk.wav")
    with pytest.raises(MediaError) as info:
        p.file_name(fields, "MIX")
    assert "{fps}" in str(info.value) and "--tc-rate" in str(info.value) and "\n" not in str(info.value)
    assert info.value.path == tmp_path / "talk.wav"
    # a naming without {fps} needs no frame rate
    assert Profile.from_dict(BASE, "p.yaml").file_name(fields, "MIX") == "talk_MIX.wav"


@pytest.mark.parametrize("extra,fragment", [
    ({"naming": "{title}_{stem}_{take}.wav"}, "naming has an unknown field {take}"),
    ({"naming": "{title}_{stem}_{0}.wav"}, "naming has an unknown field {0}"),
    ({"naming": "{title}.wav"}, "naming must contain {stem}"),
    ({"naming": "{stem}.wav"}, "naming must contain {title}"),
    ({"naming": "{title}_{stem}.{channel}.wav"}, "naming has {channel}, which is only for per-channel names"),
    ({"naming": "{title}/{stem}.wav"}, "naming must be a file name (no '/'"),
    ({"naming": "{title}_{stem}.aif"}, "naming must end in .wav"),
    ({"naming": ".{title}_{stem}.wav"}, "not start with '.'"),
    ({"naming": "{title}_{stem:>4}.wav"}, "naming has {stem:>4}: fields take no conversion or format"),
    ({"naming": "{title}_{stem!r}.wav"}, "naming has {stem!r}"),
    ({"naming": "{title}_{stem"}, "naming does not parse"),
    ({"naming": 5}, "naming must be a text"),
    ({"channel_naming": "{title}_{stem}.wav"}, "channel_naming must contain {channel}"),
    ({"channel_naming": "{title}_{channel}.wav"}, "channel_naming must contain {stem}"),
    ({"naming": "{title}_{layout}.wav"}, "naming must contain {stem}"),
    ({"stem_names": {"DX": "ME"}}, "naming gives DX and ME the same file name 'REEL_1_ME.wav'"),
    ({"stem_names": {"DIA": "DX"}}, "stem_names must be one of MIX, DX, ME, MX, FX; got 'DIA'"),
    ({"stem_names": {"DX": "DIA Stem"}}, "stem_names.DX must be letters, digits"),
    ({"stem_names": ["DIA"]}, "stem_names must be a mapping"),
    ({"naming": "{title}_{stem}L.wav", "channel_naming": "{title}_{stem}{channel}.wav"},
     "channel_naming gives MIX and MIX L the same file name 'REEL_1_MIXL.wav'"),
    ({"channel_naming": "{title}_{stem}_{channel}{layout}.wav", "naming": "{title}_{stem}_L{layout}.wav"},
     "gives MIX and MIX L the same file name"),
    ({"split_channels": "yes"}, "split_channels must be one of True, False"),
])
def test_bad_naming_is_one_line_naming_the_file_and_key(tmp_path, extra, fragment):
    path = tmp_path / "bad.yaml"
    with pytest.raises(ConfigError) as info:
        Profile.from_dict({**BASE, **extra}, path)
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message, message


def test_one_channel_of_a_layout():
    lfe, left = one_channel(LAYOUTS["5.1"], 3), one_channel(LAYOUTS["5.1"], 0)
    assert (lfe.labels, lfe.ffmpeg, lfe.mask, lfe.channels) == (("LFE",), "LFE", 0x8, 1)
    assert (left.labels, left.mask) == (("L",), 0x1)
    assert one_channel(LAYOUTS["7.1"], 7).labels == ("Rss",) and one_channel(LAYOUTS["7.1"], 7).mask == 0x400


def _mask(path) -> int:
    fmt = read_bwf(path).chunks["fmt "]
    tag, channels = struct.unpack_from("<HH", fmt, 0)
    assert tag == 0xFFFE and channels == 1      # WAVE_FORMAT_EXTENSIBLE
    return struct.unpack_from("<I", fmt, 20)[0]


def test_split_channels_writes_each_channel_exactly(tmp_path):
    """A 5.1 stem (24-bit, odd length, several blocks) split into six mono broadcast WAVs: each equal to its
    channel sample for sample, with the stem's TimeReference, an iXML track named by the channel and the
    channel's own speaker in the channel mask."""
    rng = np.random.default_rng(5)
    audio = (0.5 * rng.standard_normal((150_001, 6))).clip(-1, 1).astype(np.float32)
    start = StartTimecode.from_label("01:00:00:00", "23.976")
    stem = write_wav(tmp_path / "R_DX.wav", audio, 48000, "5.1", description=Stamp("R DX", start))
    lay = LAYOUTS["5.1"]
    paths = [tmp_path / f"R_DX.{c}.wav" for c in lay.labels]
    written = split_channels(stem, lay, paths, [Stamp(f"R DX {c}", start) for c in lay.labels])
    assert written == tuple(paths)
    interleaved = sf.read(stem, dtype="int32")[0]
    for i, (path, label) in enumerate(zip(paths, lay.labels)):
        info = sf.info(str(path))
        assert (info.channels, info.samplerate, info.subtype) == (1, 48000, "PCM_24")
        assert np.array_equal(sf.read(path, dtype="int32")[0], interleaved[:, i])
        bwf = read_bwf(path)
        assert bwf.time_reference == read_bwf(stem).time_reference == 86400 * 2002
        assert bwf.track_names == [(1, 1, label)] and bwf.description == f"R DX {label}"
        assert bwf.speed("TIMECODE_RATE") == "24000/1001"
        assert _mask(path) == one_channel(lay, i).mask
    assert not list(tmp_path.glob(".*partial*"))


def test_split_channels_refuses_a_stem_of_another_layout(tmp_path):
    stem = write_wav(tmp_path / "st.wav", np.zeros((100, 2), np.float32), 48000, "stereo")
    lay = LAYOUTS["5.1"]
    with pytest.raises(ValueError, match="2 channels, expected 5.1"):
        split_channels(stem, lay, [tmp_path / f"{c}.wav" for c in lay.labels], [Stamp()] * 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st.wav"]
