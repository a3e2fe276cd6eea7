"""Probe, extract, batch discovery: what reelsplit sees in a file and how a batch is formed."""
import numpy as np
import pytest
import soundfile as sf

from pipeline import audio
from pipeline.batch import discover, safe_title
from pipeline.errors import MediaError
from pipeline.master import check_layout, select_master
from pipeline.media import parse_probe, probe
from pipeline.training.demo import make_demo_reel


def test_probe_and_extract_stereo_mov(tmp_path):
    reel = make_demo_reel(tmp_path / "r.mov", seconds=3, layout="stereo", seed=3)
    info = probe(reel.path)
    (a,) = info.audio
    assert (a.codec, a.channels, a.layout, a.sample_rate) == ("pcm_s24le", 2, "stereo", 48000)
    assert info.has_video and float(info.video[0].frame_rate) == 24.0
    mix = audio.extract(reel.path, select_master(info))
    assert mix.dtype == np.float32 and mix.shape == (3 * 48000, 2)


def test_extract_keeps_5_1_channel_order(tmp_path):
    """A tone only in C and a different one only in LFE come back in channels 2 and 3."""
    t = np.arange(48000) / 48000
    x = np.zeros((48000, 6), np.float32)
    x[:, 2] = 0.5 * np.sin(2 * np.pi * 440 * t)
    x[:, 3] = 0.25 * np.sin(2 * np.pi * 50 * t)
    path = audio.write_wav(tmp_path / "c.wav", x, 48000, "5.1")
    info = probe(path)
    assert info.audio[0].layout == "5.1"
    y = audio.extract(path, select_master(info))
    assert np.abs(y - x).max() < 1e-6   # 24-bit round trip, same order


def test_write_wav_is_bwf_24_bit(tmp_path):
    x = np.zeros((4800, 2), np.float32)
    path = audio.write_wav(tmp_path / "s.wav", x, 48000, "stereo", description="reel DX")
    with sf.SoundFile(str(path)) as f:
        assert (f.samplerate, f.channels, f.subtype, f.frames) == (48000, 2, "PCM_24", 4800)
    raw = path.read_bytes()[:2000]
    assert b"bext" in raw and b"reel DX" in raw
    assert not list(tmp_path.glob(".*partial*"))


def test_no_audio_stream_is_a_file_error(tmp_path):
    info = parse_probe({"format": {"duration": "5"}, "streams": [
        {"index": 0, "codec_type": "video", "codec_name": "h264", "r_frame_rate": "24/1"}]}, tmp_path / "v.mp4")
    with pytest.raises(MediaError, match="no audio stream"):
        info.audio_stream(0)


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"not media at all" * 10, "not a readable media")])
def test_probe_rejects_bad_files(tmp_path, content, reason):
    p = tmp_path / "bad.mov"
    p.write_bytes(content)
    with pytest.raises(MediaError, match=reason):
        probe(p)
    assert p.read_bytes() == content   # never written to


def test_unsupported_layout_is_rejected_with_reason(tmp_path):
    info = parse_probe({"format": {}, "streams": [{"index": 0, "codec_type": "audio", "codec_name": "pcm_s24le",
                        "channels": 7, "channel_layout": "6.1", "sample_rate": "48000"}]}, tmp_path / "a.wav")
    with pytest.raises(MediaError, match=r"6.1 \(7 channels\) is not supported: reelsplit separates mono, stereo, "
                                         r"5.0 \(L R C Ls Rs\), 5.1 \(L R C LFE Ls Rs\) and 7.1"):
        check_layout(info.audio[0], info.path)


def test_discover_dedupes_and_keeps_titles_unique(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("REEL1.mov", "REEL1.mxf", "notes.txt", ".hidden.mov", "R 2 $(x).mkv"):
        (drop / name).write_bytes(b"x")
    items = discover([drop, drop / "REEL1.mov", tmp_path / "missing.mov"])
    paths = [i.path.name for i in items]
    assert paths == ["R 2 $(x).mkv", "REEL1.mov", "REEL1.mxf", "missing.mov"]
    titles = [i.title for i in items]
    assert len(set(titles)) == len(titles) and titles[2] == "REEL1_mxf"
    assert items[-1].problem == "file not found"
    assert safe_title("-rf --x") == "rf_--x" and not safe_title("-rf").startswith("-")
