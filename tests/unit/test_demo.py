"""Tests of pipeline.training.demo and `reelsplit demo-reel`: the reels' streams, durations, stems, dialogue regions,
levels and determinism."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from pipeline.errors import FfmpegError, MediaError
from pipeline.ffmpeg import run, run_json
from pipeline.training import demo

TOOLS = ("ffmpeg", "ffprobe", "espeak-ng", "fluidsynth")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in TOOLS) or not demo.SOUNDFONT.is_file(),
    reason="needs ffmpeg, espeak-ng, fluidsynth and fluid-soundfont-gm",
)

FRAME = 1 / 24
QUANT = 2.0 ** -23  # one step of 24-bit PCM in full-scale units
# name: (layout, suffix, seconds, write_stems). Odd lengths check the cut to 1/24 s.
CASES = {
    "stereo-mov": ("stereo", ".mov", 6.0, True),
    "5.1-mkv": ("5.1", ".mkv", 5.5, True),
    "5.1-mov": ("5.1", ".mov", 4.0, False),
    "5.1-wav": ("5.1", ".wav", 4.3, False),
    "5.1-mp4": ("5.1", ".mp4", 4.0, False),
    "stereo-mp4": ("stereo", ".mp4", 4.1, False),
    "5.1-mxf": ("5.1", ".mxf", 4.0, False),
}
CHANNELS = {"stereo": 2, "5.1": 6, "mono": 1}
AUDIO_CODEC = {".mov": "pcm_s24le", ".mkv": "pcm_s24le", ".wav": "pcm_s24le", ".mxf": "pcm_s24le",
               ".mp4": "aac"}
VIDEO_CODEC = {".mov": "h264", ".mkv": "h264", ".mp4": "h264", ".mxf": "mpeg2video", ".wav": None}


@pytest.fixture(scope="module")
def reel(tmp_path_factory):
    """reel(name) -> DemoReel, each case made once per module."""
    made: dict[str, demo.DemoReel] = {}

    def get(name: str) -> demo.DemoReel:
        if name not in made:
            layout, suffix, seconds, stems = CASES[name]
            out = tmp_path_factory.mktemp(name) / f"reel{suffix}"
            made[name] = demo.make_demo_reel(out, seconds=seconds, layout=layout, seed=7, write_stems=stems)
        return made[name]

    return get


def probe(path) -> dict:
    return run_json(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                     str(path)])


def decode(path, channels: int) -> np.ndarray:
    """The first audio stream as (samples, channels) float32."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-c:a", "pcm_f32le", "-f", "f32le", "-"]
    raw = run(cmd).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, channels)


def read_stems(r: demo.DemoReel) -> list[np.ndarray]:
    stems = []
    for name in ("dialogue", "music", "effects"):
        x, rate = sf.read(r.stems_dir / f"{name}.wav", dtype="float32", always_2d=True)
        assert rate == r.sample_rate
        stems.append(x)
    return stems


@pytest.mark.parametrize("name", CASES)
def test_streams_and_duration(reel, name):
    layout, suffix, seconds, _ = CASES[name]
    r = reel(name)
    assert r.path.is_file() and r.path.suffix == suffix
    assert not [p for p in r.path.parent.iterdir() if ".part-" in p.name]  # temporary output renamed away
    info = probe(r.path)
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    (audio,) = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert [s["codec_name"] for s in video] == ([VIDEO_CODEC[suffix]] if VIDEO_CODEC[suffix] else [])
    assert audio["codec_name"] == AUDIO_CODEC[suffix]
    assert audio["channels"] == CHANNELS[layout] and audio["sample_rate"] == "48000"
    if suffix in (".mkv", ".mxf"):  # ffmpeg 5.1 signals no layout for PCM there; never the wrong one
        assert audio.get("channel_layout", "unknown") in ("unknown", layout)
    else:
        assert audio["channel_layout"] == layout  # "5.1", not "5.1(side)"
    decoded = decode(r.path, CHANNELS[layout])
    assert abs(len(decoded) / 48000 - seconds) <= FRAME
    assert abs(float(info["format"]["duration"]) - seconds) <= FRAME
    for s in video + [audio]:
        if "duration" in s:  # mkv keeps stream durations in tags only
            assert abs(float(s["duration"]) - seconds) <= FRAME


@pytest.mark.parametrize("name", ["stereo-mov", "5.1-mkv"])
def test_stems_sum_to_the_reels_audio(reel, name):
    layout, _, seconds, _ = CASES[name]
    r = reel(name)
    stems = read_stems(r)
    decoded = decode(r.path, CHANNELS[layout])
    for x in stems:
        assert x.shape == (round(seconds * 48000), CHANNELS[layout])
    mix = stems[0] + stems[1] + stems[2]
    assert decoded.shape == mix.shape
    assert np.abs(decoded - mix).max() <= QUANT + 1e-6
    assert 0.3 < np.abs(mix).max() <= 10 ** (-3 / 20) + 1e-6  # peak-normalised to at most -3 dBFS


@pytest.mark.parametrize("name", ["stereo-mov", "5.1-mkv"])
def test_dialogue_regions_hold_the_dialogue(reel, name):
    r = reel(name)
    dialogue = read_stems(r)[0]
    assert r.dialogue_regions
    inside = np.zeros(len(dialogue), bool)
    previous_end = 0.0
    for start, end in r.dialogue_regions:
        assert previous_end <= start < end <= r.seconds
        inside[round(start * r.sample_rate): round(end * r.sample_rate)] = True
        previous_end = end
    energy = np.square(dialogue, dtype=np.float64).sum(axis=1)
    assert energy[inside].sum() >= 0.999 * energy.sum()
    assert 0.25 <= inside.mean() <= 0.75


def test_levels_like_a_film_mix(reel):
    r = reel("stereo-mov")
    dialogue, music, effects = read_stems(r)
    inside = np.zeros(len(dialogue), bool)
    for start, end in r.dialogue_regions:
        inside[round(start * r.sample_rate): round(end * r.sample_rate)] = True

    def db(x):
        return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))

    speech = db(dialogue[inside, 0])
    assert -27 <= speech <= -20
    assert 7 <= speech - db(music[:, 0]) <= 11
    assert np.allclose(dialogue[:, 0], dialogue[:, 1])  # centred
    assert np.abs(effects).max() > 10 ** (-20 / 20)  # at least one impact or whoosh


def test_5_1_routing(reel):
    dialogue, music, effects = read_stems(reel("5.1-mkv"))  # L R C LFE Ls Rs
    assert not dialogue[:, [0, 1, 3, 4, 5]].any() and dialogue[:, 2].any()
    assert not music[:, 2:4].any() and np.allclose(music[:, 4:], music[:, :2] / 2, atol=1e-7)
    assert not effects[:, 2].any() and np.abs(effects[:, 3]).max() > 1e-3
    spectrum = np.abs(np.fft.rfft(effects[:, 3].astype(np.float64)))
    freqs = np.fft.rfftfreq(len(effects), 1 / 48000)
    assert spectrum[freqs > 300].sum() < 0.01 * spectrum[freqs < 120].sum()  # LFE is low-passed


def test_same_seed_same_audio(tmp_path):
    a = demo.make_demo_reel(tmp_path / "a.wav", seconds=4.0, layout="stereo", seed=3)
    b = demo.make_demo_reel(tmp_path / "b.wav", seconds=4.0, layout="stereo", seed=3)
    assert a.dialogue_regions == b.dialogue_regions
    assert np.array_equal(decode(a.path, 2), decode(b.path, 2))
    other = demo.render_sources(4.0, 48000, seed=4)
    assert not np.array_equal(demo.render_sources(4.0, 48000, seed=3)[1], other[1])


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_same_seed_same_file(tmp_path, suffix):
    """`make demo` makes its reels again on every call: byte-identical files keep their content hash, so the
    run skips the finished ones (Matroska's random segment UID made the .mkv reel new every time)."""
    import hashlib

    digests = {hashlib.sha256(demo.make_demo_reel(tmp_path / f"{name}{suffix}", seconds=2.0, layout="5.1",
                                                  seed=2).path.read_bytes()).hexdigest() for name in "ab"}
    assert len(digests) == 1


def test_render_sources_shapes():
    dialogue, music, effects, regions = demo.render_sources(4.0, 48000, seed=1)
    assert dialogue.shape == (192000, 1) and music.shape == (192000, 2) and effects.shape == (192000, 4)
    assert dialogue.dtype == music.dtype == effects.dtype == np.float32
    assert isinstance(regions, list)


def test_mono_and_cli(tmp_path):
    out = tmp_path / "mono.wav"
    made = run_cli("demo-reel", out, "--seconds", "3", "--layout", "mono", "--seed", "2", "--stems", timeout=120)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(out)
    (audio,) = probe(out)["streams"]
    assert audio["channels"] == 1
    assert (tmp_path / "mono.stems" / "dialogue.wav").is_file()


@pytest.mark.parametrize("kwargs, message", [
    ({"path": "x.avi"}, "unsupported demo container"),
    ({"path": "x.mov", "layout": "7.1"}, "unknown layout"),
    ({"path": "x.mxf", "sample_rate": 44100}, "48000 Hz"),
    ({"path": "x.wav", "seconds": 0}, "out of range"),
])
def test_bad_requests_raise_media_error(tmp_path, kwargs, message):
    path = tmp_path / kwargs.pop("path")
    with pytest.raises(MediaError, match=message):
        demo.make_demo_reel(path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_cli_reports_errors(tmp_path):
    """A bad value exits non-zero with one line that names it, and leaves nothing behind."""
    bad = run_cli("demo-reel", tmp_path / "x.avi", "--seconds", "2", timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("reelsplit: error: ") and len(bad.stderr.splitlines()) == 1
    assert "unsupported demo container" in bad.stderr
    short = run_cli("demo-reel", tmp_path / "x.mov", "--seconds", "-1", timeout=60)
    assert short.returncode == 2 and len(short.stderr.splitlines()) == 1 and "out of range" in short.stderr
    layout = run_cli("demo-reel", tmp_path / "x.mov", "--layout", "7.1", timeout=60)  # refused by argparse
    assert layout.returncode == 2 and "invalid choice: '7.1'" in layout.stderr.splitlines()[-1]
    assert not list(tmp_path.iterdir())


def test_cli_makes_the_library_reel(tmp_path):
    """`reelsplit demo-reel OUT --seconds S --layout L --seed N` writes the bytes make_demo_reel writes."""
    import hashlib

    made = run_cli("demo-reel", tmp_path / "cli.mkv", "--seconds", "2", "--layout", "5.1", "--seed", "5", timeout=120)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(tmp_path / "cli.mkv")
    lib = demo.make_demo_reel(tmp_path / "lib.mkv", seconds=2.0, layout="5.1", seed=5)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "cli.mkv") == digest(lib.path)


def test_failed_ffmpeg_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setitem(demo.CONTAINERS, ".wav", (None, ["-c:a", "no_such_codec"]))
    with pytest.raises(FfmpegError):
        demo.make_demo_reel(tmp_path / "new" / "x.wav", seconds=2.0)
    assert list((tmp_path / "new").iterdir()) == []  # the folder was made, the partial output removed


def test_subprocess_output_is_capped():
    assert demo._read_capped(["yes"], 100_000, timeout=10) == b"y\n" * 50_000  # endless writer, stopped
    with pytest.raises(MediaError, match="gave 0 of 10 bytes"):
        demo._read_capped(["tail", "-f", "/dev/null"], 10, timeout=0.2)  # silent and endless: timed out
