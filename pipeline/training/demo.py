"""Make a short, seeded demo reel: ffmpeg's testsrc2 picture, espeak-ng dialogue, fluidsynth music and
synthetic effects, all from Debian packages, for `make demo` and as test media with known stems.
"""
from __future__ import annotations

import os
import select
import struct
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .. import ffmpeg
from ..errors import FfmpegError, MediaError, OutputError

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
VIDEO_SIZE, FPS = "320x180", 24
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_PCM = ["-c:a", "pcm_s24le"]
CONTAINERS = {  # suffix -> (video codec args or None for audio-only, audio codec args)
    ".mov": (_H264, _PCM), ".mkv": (_H264, _PCM), ".mp4": (_H264, ["-c:a", "aac", "-b:a", "256k"]),
    ".wav": (None, _PCM), ".mxf": (["-c:v", "mpeg2video", "-pix_fmt", "yuv420p", "-q:v", "4"], _PCM),
}
SENTENCES = (
    "The door was open when I got there.", "I told you not to come back here.",
    "Where were you last night, exactly?", "We have maybe ten minutes before they notice.",
    "Keep your voice down, someone is listening.", "That is not what the letter said.",
    "Give me the keys. I will drive.", "You knew about this all along, didn't you?",
)
VOICES = ("en-us", "en", "en-gb-x-rp", "en-us+f3", "en+m3", "en-gb-scotland+f2")

DEMO_LAYOUTS = ("mono", "stereo", "5.1")   # what layout_stems lays out (5.1: L R C LFE Ls Rs)


@dataclass(frozen=True)
class DemoReel:
    """A generated reel. `dialogue_regions` are (start_s, end_s) of each spoken line; `stems_dir` holds
    dialogue.wav, music.wav and effects.wav (float32, the reel's layout and rate) if stems were asked for."""

    path: Path
    seconds: float
    sample_rate: int
    layout: str
    dialogue_regions: tuple[tuple[float, float], ...]
    stems_dir: Path | None


def db_to_gain(x: float) -> float:
    """The linear amplitude gain of `x` dB."""
    return 10.0 ** (x / 20.0)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1e-12


# ---- music: a tiny standard MIDI file, rendered by fluidsynth ------------------------------------
def _vlq(n: int) -> bytes:
    out = bytearray([n & 0x7F])
    while n := n >> 7:
        out.insert(0, 0x80 | (n & 0x7F))
    return bytes(out)


def midi_bytes(events: list[tuple[int, bytes]], division: int = 480) -> bytes:
    """Format-0 SMF from (absolute tick, message) pairs; at equal ticks note-ons come last."""
    track, last = bytearray(), 0
    for tick, msg in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90)):
        track += _vlq(tick - last) + msg
        last = tick
    track += b"\x00\xff\x2f\x00"
    return struct.pack(">4sIHHH4sI", b"MThd", 6, 0, 1, division, b"MTrk", len(track)) + track


def _compose(rng: np.random.Generator, seconds: float, division: int = 480) -> bytes:
    """A few bars of chords + bass + melody (~100 bpm, seeded GM programs), repeated to last `seconds`."""
    bpm = int(rng.integers(92, 109))
    root = int(rng.integers(48, 56))
    prog = [[0, 9, 5, 7], [0, 7, 9, 5], [9, 5, 0, 7], [0, 5, 7, 5]][int(rng.integers(4))]
    scale = [0, 2, 4, 5, 7, 9, 11]
    ev = [(0, b"\xff\x51\x03" + (60_000_000 // bpm).to_bytes(3, "big"))]
    for ch, programs in enumerate(([48, 49, 89, 88, 4, 0], [73, 71, 68, 40, 11, 0], [32, 33])):
        ev.append((0, bytes([0xC0 | ch, int(rng.choice(programs))])))
    melody = [None if rng.random() < 0.25 else int(rng.integers(0, 10)) for _ in range(32)]  # eighths
    bar, n_bars = 4 * division, int(np.ceil(seconds * bpm / 240.0)) + 2
    for b in range(n_bars):
        t0, deg = b * bar, prog[b % 4]
        third = 3 if deg in (2, 4, 9) else 4
        for ch, notes, vel in ((0, [0, third, 7, 12], 58), (2, [-12], 80)):
            for n in notes:
                key = root + deg + n
                ev += [(t0, bytes([0x90 | ch, key, vel])), (t0 + bar - 10, bytes([0x80 | ch, key, 0]))]
        for i, step in enumerate(melody[(b % 4) * 8:(b % 4) * 8 + 8]):
            if step is not None:
                note = root + 12 + scale[step % 7] + 12 * (step // 7)
                t = t0 + i * division // 2
                ev += [(t, bytes([0x91, note, 72])), (t + division // 2 - 20, bytes([0x81, note, 0]))]
    return midi_bytes(ev, division)


def _read_capped(cmd: list[str], nbytes: int, timeout: float) -> bytes:
    """Run `cmd`, read at most `nbytes` of its stdout within `timeout` seconds, then kill it."""
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise MediaError(f"cannot run {cmd[0]}: {exc.strerror} (apt-get install -y {cmd[0]})") from exc
    buf, deadline, fd = bytearray(), time.monotonic() + timeout, proc.stdout.fileno()
    try:
        while len(buf) < nbytes:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise MediaError(f"{cmd[0]} gave {len(buf)} of {nbytes} bytes in {timeout:.0f} s")
            chunk = os.read(fd, min(1 << 20, nbytes - len(buf)))
            if not chunk:
                break
            buf += chunk
    finally:
        proc.kill()
        _, err = proc.communicate()
    if len(buf) < nbytes and proc.returncode not in (0, -9):
        raise MediaError(f"{cmd[0]} failed: {ffmpeg.last_error_line(err.decode(errors='replace'))}")
    return bytes(buf)


def render_music(midi: Path, n: int, sr: int) -> np.ndarray:
    """(n, 2) float32 music: fluidsynth's raw output piped, capped at n frames, zero-padded if short."""
    if not SOUNDFONT.is_file():
        raise MediaError(f"SoundFont {SOUNDFONT} missing (Debian: apt-get install -y fluid-soundfont-gm)")
    # dynamic sample loading skips reading the whole 148 MB SoundFont (saves ~1 s); raw float32 LR to stdout
    cmd = ["fluidsynth", "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-o", "synth.lock-memory=0",
           "-g", "0.6", "-r", str(sr), "-O", "float", "-E", "little", "-T", "raw", "-F", "-",
           str(SOUNDFONT), str(midi)]
    raw = _read_capped(cmd, n * 8, timeout=30 + n / sr)
    out = np.zeros((n, 2), np.float32)
    got = np.frombuffer(raw[: len(raw) // 8 * 8], "<f4").reshape(-1, 2)
    out[: len(got)] = got
    return out


# ---- dialogue and effects --------------------------------------------------------------------------
def speak(text: str, voice: str, pitch: int, speed: int, sr: int, tmp: Path) -> np.ndarray:
    """One espeak-ng line as mono float32 (samples,) at `sr`, trimmed to its audible extent."""
    wav = tmp / "line.wav"
    cmd = ["espeak-ng", "-w", str(wav), "-v", voice, "-p", str(pitch), "-s", str(speed), text]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"espeak-ng failed: {exc} (Debian: apt-get install -y espeak-ng)") from exc
    if proc.returncode != 0:
        reason = ffmpeg.last_error_line(proc.stderr.decode(errors="replace"))
        raise MediaError(f"espeak-ng exited with {proc.returncode}: {reason}")
    x, rate = sf.read(wav, dtype="float32", always_2d=True)
    x = soxr.resample(x[:, 0], rate, sr)
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return x[loud[0]: loud[-1] + 1].astype(np.float32)


def pan(x: np.ndarray, lr: float, front: float = 1.0) -> np.ndarray:
    """Mono (samples,) -> (samples, 4) L R Ls Rs with equal-power pans; lr in [-1, 1], front in [0, 1]."""
    a, b = (np.asarray(lr) + 1) * np.pi / 4, np.asarray(front) * np.pi / 2
    g = [np.cos(a) * np.sin(b), np.sin(a) * np.sin(b), np.cos(a) * np.cos(b), np.sin(a) * np.cos(b)]
    return np.stack([x * gi for gi in g], axis=1)


def render_effects(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """(n, 4) float32 L R Ls Rs: room tone at -60 dBFS RMS, door-slam impacts, whooshes."""
    from scipy import signal  # imported here (0.8 s) so that it overlaps fluidsynth's rendering
    fx = np.zeros((n, 4))
    white = rng.standard_normal((n, 4))
    pink = signal.lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                          [1, -2.494956002, 2.017265875, -0.522189400], white, axis=0)
    fx += pink * (db_to_gain(-60) / np.sqrt(np.mean(pink ** 2, axis=0)))
    seconds = n / sr
    for _ in range(1 + int(seconds // 12)):  # impacts: decaying low thump with a falling pitch + noise burst
        t = np.arange(int(0.7 * sr)) / sr
        f = rng.uniform(50, 75) * (1 + 0.5 * np.exp(-t / 0.03))
        thump = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)
        hp = signal.butter(2, 800, "highpass", fs=sr, output="sos")
        burst = signal.sosfilt(hp, rng.standard_normal(t.size))
        hit = thump + 0.6 * burst * np.exp(-t / 0.025)
        hit *= db_to_gain(rng.uniform(-9, -6)) / np.abs(hit).max()
        at = int(rng.uniform(0.5, max(seconds - 1.0, 0.6)) * sr)
        seg = pan(hit, rng.uniform(-0.8, 0.8), front=0.8)[: n - at]
        fx[at: at + len(seg)] += seg
    for _ in range(1 + int(seconds // 20)):  # whoosh: noise through band-pass filters swept low -> high
        m = int(rng.uniform(0.8, 1.4) * sr)
        noise = rng.standard_normal(m)
        centres = np.geomspace(rng.uniform(250, 400), rng.uniform(3000, 5000), 8)
        pos = np.linspace(0, len(centres) - 1, m)
        y = sum(np.clip(1 - np.abs(pos - k), 0, None)
                * signal.sosfilt(signal.butter(2, [c / 1.4, c * 1.4], "bandpass", fs=sr, output="sos"), noise)
                for k, c in enumerate(centres))
        y *= np.sin(np.linspace(0, np.pi, m)) ** 2
        y *= db_to_gain(rng.uniform(-15, -12)) / np.abs(y).max()
        at = int(rng.uniform(0, max(seconds - 1.5, 0.1)) * sr)
        seg = pan(y, np.linspace(-0.9, 0.9, m), front=np.linspace(1.0, 0.2, m))[: n - at]
        fx[at: at + len(seg)] += seg
    return fx.astype(np.float32)


def render_sources(seconds: float, sample_rate: int = 48000, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """The reel's sources, float32 (samples, channels) in full-scale units, samples = round(seconds * rate):

    dialogue (n, 1) mono, lines at -23.5..-20.5 dBFS RMS, covering about half the reel (reels under ~4 s may
    have no line); music (n, 2) L R, 9 dB under the dialogue as heard in stereo; effects (n, 4) L R Ls Rs;
    and the (start_s, end_s) of each spoken line. Seeded and deterministic.
    """
    rng = np.random.default_rng(seed)
    n, sr = int(round(seconds * sample_rate)), sample_rate
    level = rng.uniform(-23, -21)  # dialogue dBFS RMS in its own (centre) channel
    dialogue, regions = np.zeros((n, 1), np.float32), []
    with tempfile.TemporaryDirectory(prefix="reelsplit-demo-") as tmp, ThreadPoolExecutor(1) as pool:
        midi = Path(tmp) / "music.mid"
        midi.write_bytes(_compose(rng, seconds))
        music_job = pool.submit(render_music, midi, n, sr)  # fluidsynth renders while espeak-ng speaks
        order, t, i = rng.permutation(len(SENTENCES)), rng.uniform(0.3, 1.0), 0
        while True:
            line = speak(SENTENCES[order[i % len(order)]], VOICES[int(rng.integers(len(VOICES)))],
                         int(rng.integers(30, 71)), int(rng.integers(140, 181)), sr, Path(tmp))
            start = int(t * sr)
            if start + len(line) > n - int(0.2 * sr):
                break
            dialogue[start: start + len(line), 0] = line * (db_to_gain(level + rng.uniform(-0.5, 0.5)) / _rms(line))
            regions.append((start / sr, (start + len(line)) / sr))
            t, i = regions[-1][1] + len(line) / sr * rng.uniform(0.5, 1.1), i + 1
        effects = render_effects(rng, n, sr)
        music = music_job.result()
    music *= db_to_gain(level - 3 - 9) / _rms(music)
    return dialogue, music, effects, regions


def layout_stems(dialogue: np.ndarray, music: np.ndarray, effects: np.ndarray, layout: str,
                 sample_rate: int = 48000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three sources laid out as (n, channels) float32 for `layout`; their sum is the mix.

    stereo: dialogue at -3 dB in L and R, rear effects folded in at -3 dB. 5.1 (L R C LFE Ls Rs): dialogue
    in C, music in L R and at -6 dB in Ls Rs, effects in L R Ls Rs, LFE = effects low-passed at 120 Hz at
    -6 dB (the impacts' thumps: room tone and whooshes have next to nothing there). mono: dialogue as is,
    music and effects as their stereo pair averaged.
    """
    from scipy import signal

    d, m, e, z = dialogue[:, 0], music, effects, np.zeros(len(dialogue), np.float32)
    g = np.float32(db_to_gain(-3))
    stereo = (np.stack([d * g, d * g], 1), m, e[:, :2] + g * e[:, 2:])
    if layout == "stereo":
        out = stereo
    elif layout == "mono":
        out = (dialogue, m.mean(axis=1, keepdims=True), stereo[2].mean(axis=1, keepdims=True))
    elif layout == "5.1":
        lp = signal.butter(4, 120, "lowpass", fs=sample_rate, output="sos")
        lfe = 0.5 * signal.sosfilt(lp, e.sum(axis=1))
        out = (np.stack([z, z, d, z, z, z], 1),
               np.stack([m[:, 0], m[:, 1], z, z, m[:, 0] / 2, m[:, 1] / 2], 1),
               np.stack([e[:, 0], e[:, 1], z, lfe, e[:, 2], e[:, 3]], 1))
    else:
        raise MediaError(f"unknown layout {layout!r}: use one of {', '.join(DEMO_LAYOUTS)}")
    return tuple(np.ascontiguousarray(s, dtype=np.float32) for s in out)


# ---- the reel ---------------------------------------------------------------------------------------
def _encode(audio: np.ndarray, path: Path, tmp_out: Path, seconds: float, sample_rate: int, layout: str):
    """Write (n, channels) float32 audio, fed to ffmpeg as raw f32le through stdin, and testsrc2 video if the
    container has video, to `tmp_out`; errors name `path`."""
    video, acodec = CONTAINERS[tmp_out.suffix.lower()]
    cmd = ["ffmpeg", "-y", "-hide_banner", "-nostats", "-loglevel", "error"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={VIDEO_SIZE}:rate={FPS}:duration={seconds}"]
    cmd += ["-f", "f32le", "-ar", str(sample_rate), "-ac", str(audio.shape[1]), "-ch_layout", layout,
            "-i", "pipe:0", *(["-map", "0:v", "-map", "1:a", *video] if video else []), *acodec,
            # bitexact: no random Matroska UIDs or encoder version tags, so the same seed gives the same bytes
            # and a re-made demo reel is recognised as already processed (its content hash is unchanged)
            "-fflags", "+bitexact", "-t", str(seconds), str(tmp_out)]
    proc, broken = ffmpeg.popen_writer(cmd), False
    try:
        proc.stdin.write(audio.astype("<f4").tobytes())
    except BrokenPipeError:
        broken = True  # ffmpeg stopped reading: `finish` says why if it failed
    ffmpeg.finish(proc, timeout=60 + 4 * seconds, path=path)
    if broken:
        raise FfmpegError("ffmpeg stopped reading the demo audio early", path)


def make_demo_reel(path: Path, *, seconds: float = 30.0, layout: str = "stereo", sample_rate: int = 48000,
                   seed: int = 0, write_stems: bool = False) -> DemoReel:
    """Write a `seconds`-long reel to `path` (container by suffix: .mov .mkv .mp4 .wav .mxf; missing folders
    are created) and return it.

    .mov/.mkv: H.264 + PCM 24-bit; .mp4: H.264 + AAC 256k; .wav: PCM 24-bit; .mxf: MPEG-2 + PCM 24-bit.
    ffmpeg 5.1 signals the 5.1 layout in .mov/.mp4/.wav only: PCM in .mkv and .mxf carries 6 channels but no
    layout (ffprobe: none / "unknown"; ffmpeg decodes them as 5.1 by default). ffmpeg's MXF (OP1a) muxer
    accepts 1-, 2- and 6-channel PCM but only at 48 kHz, and cuts the audio to whole video frames.
    The mix is peak-limited to -3 dBFS by one gain applied to all stems. With `write_stems`, float32
    dialogue.wav, music.wav and effects.wav whose sum is the mix go to `<path stem>.stems/`.
    """
    path = Path(path)
    if path.suffix.lower() not in CONTAINERS:
        raise MediaError(f"unsupported demo container {path.suffix!r}: use {', '.join(CONTAINERS)}", path)
    if layout not in DEMO_LAYOUTS:
        raise MediaError(f"unknown layout {layout!r}: use one of {', '.join(DEMO_LAYOUTS)}", path)
    if path.suffix.lower() == ".mxf" and sample_rate != 48000:
        raise MediaError(f"MXF takes 48000 Hz audio only, not {sample_rate} Hz", path)
    if not 0 < seconds <= 3600:
        raise MediaError(f"demo length {seconds} s is out of range (0, 3600]", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {path.parent}: {exc.strerror}", path) from exc
    dialogue, music, effects, regions = render_sources(seconds, sample_rate, seed)
    stems = layout_stems(dialogue, music, effects, layout, sample_rate)
    mix = stems[0] + stems[1] + stems[2]
    gain = min(1.0, db_to_gain(-3) / max(float(np.abs(mix).max()), 1e-12))
    stems = tuple(s * np.float32(gain) for s in stems)
    mix = stems[0] + stems[1] + stems[2]
    tmp_out = path.with_name(f".{path.stem}.part-{os.getpid()}{path.suffix}")
    try:
        _encode(mix, path, tmp_out, seconds, sample_rate, layout)
        os.replace(tmp_out, path)
    finally:
        tmp_out.unlink(missing_ok=True)
    stems_dir = None
    if write_stems:
        stems_dir = path.with_name(path.stem + ".stems")
        stems_dir.mkdir(exist_ok=True)
        for name, stem in zip(("dialogue", "music", "effects"), stems):
            sf.write(stems_dir / f"{name}.wav", stem, sample_rate, subtype="FLOAT")
    return DemoReel(path, float(seconds), sample_rate, layout, tuple(regions), stems_dir)
