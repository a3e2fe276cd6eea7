"""A corpus of hostile and odd inputs for reelsplit, made with ffmpeg at test time (argument lists, never a shell).

    python tests/hostile_corpus.py DIR        # build it in DIR and print what was made

Every file is tiny (1-2 s, small pictures) so a whole batch of them runs in seconds. `build(root)` returns a
`Corpus`: the drop folder (found by folder discovery) and the inputs that must be named one by one (a nested
path, a symlink, a folder named like a file), each case by name. The cases and what reelsplit should do with
each are in tests/e2e/test_hostile.py; this module only makes the files.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

RATE = 48000
SECONDS = 1.5
PICTURE = "testsrc2=size=64x36:rate=24:duration={d}"


def ffmpeg(*args: str | Path) -> None:
    """Run ffmpeg with an argument list; raise with its last line on failure."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *map(str, args)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def programme(channels: int = 2, rate: int = RATE, seconds: float = SECONDS, seed: int = 0) -> list[str]:
    """lavfi input: a tone per channel (different pitches) with a little noise, -20 dBFS-ish."""
    exprs = [f"0.1*sin(2*PI*{220 + 55 * (c + seed)}*t)+0.01*(random({c})-0.5)" for c in range(channels)]
    return ["-f", "lavfi", "-i", f"aevalsrc={'|'.join(exprs)}:s={rate}:d={seconds}"]


def picture(seconds: float = SECONDS) -> list[str]:
    return ["-f", "lavfi", "-i", PICTURE.format(d=seconds)]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def wav(path: Path, *, channels: int = 2, rate: int = RATE, codec: str = "pcm_s24le", seconds: float = SECONDS,
        layout: str | None = None, seed: int = 0) -> Path:
    lay = ["-channel_layout", layout] if layout else []
    ffmpeg(*programme(channels, rate, seconds, seed), "-c:a", codec, *lay, path)
    return path


def movie(path: Path, *, channels: int = 2, acodec: str = "pcm_s24le", seconds: float = SECONDS,
          extra: tuple[str, ...] = (), seed: int = 0) -> Path:
    """A picture (h264) plus one audio stream."""
    ffmpeg(*picture(seconds), *programme(channels, RATE, seconds, seed), "-map", "0:v", "-map", "1:a", *H264,
           "-c:a", acodec, *extra, "-shortest", path)
    return path


def truncate(path: Path, keep: float) -> Path:
    """Cut the file's tail, keeping the first `keep` share of its bytes."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * keep))
    return path


def truncate_wav(path: Path, keep: float, channels: int = 2, sample_bytes: int = 3) -> Path:
    """Cut a PCM WAV's tail inside a sample frame (as a copy interrupted mid-write leaves it): the RIFF header
    still declares the full length."""
    data = path.read_bytes()
    start = data.index(b"data") + 8
    frame = channels * sample_bytes
    frames = int((len(data) - start) * keep) // frame
    path.write_bytes(data[:start + frames * frame + frame // 2])
    return path


def flip_middle(path: Path, length: int = 4096) -> Path:
    """Invert `length` bytes in the middle of the file (the media data, not the header)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(len(data), mid + length)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def set_tmcd_rate(path: Path, timescale: int, frame_duration: int, frames: int) -> Path:
    """Rewrite the rate of a MOV's timecode track in place: its sample description ('tmcd', 6 reserved bytes,
    data reference 1, reserved, flags, then time scale, frame duration and frames per second; Apple's QuickTime
    File Format, "Timecode sample description"), as a broken camera or converter would write it."""
    data = bytearray(path.read_bytes())
    at = data.index(b"tmcd\0\0\0\0\0\0\0\x01") + 4 + 8 + 8
    struct.pack_into(">II", data, at, timescale, frame_duration)
    data[at + 8] = frames
    path.write_bytes(bytes(data))
    return path


@dataclass
class Corpus:
    root: Path
    drop: Path                                           # found by discovery (`run([drop], …)`)
    cases: dict[str, Path] = field(default_factory=dict)  # case name -> the path reelsplit sees
    named: list[Path] = field(default_factory=list)       # inputs named explicitly, beside the drop folder

    def inputs(self) -> list[Path]:
        return [self.drop, *self.named]


# A file name of 250 bytes (the limit is 255): ASCII, and the same in 3-byte UTF-8 characters.
LONG_ASCII = "long_" + "x" * 241 + ".wav"                 # 250 bytes
LONG_UNICODE = "長" * 82 + ".wav"                          # 246 + 4 = 250 bytes


def build(root: Path) -> Corpus:
    """Make every case under `root`; returns the corpus. Takes a few seconds."""
    root = Path(root)
    drop = root / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    c = Corpus(root, drop)
    cases = c.cases

    # --- damaged files
    # faststart: the header (moov) first, so cutting the tail keeps it and loses media data
    cases["truncated_mov"] = truncate(movie(drop / "truncated.mov", extra=("-movflags", "+faststart")), 0.6)
    cases["truncated_wav"] = truncate_wav(wav(drop / "truncated.wav"), 0.6)   # header says 1.5 s, data 0.9 s
    cases["corrupted_mov"] = flip_middle(movie(drop / "corrupted.mov", acodec="aac", extra=("-b:a", "96k")))
    cases["zero_length"] = drop / "zero.mov"
    cases["zero_length"].write_bytes(b"")
    # a timecode track (01:00:00:00) whose rate is broken: 17 fps (no SMPTE timecode), or 0 (ffprobe gives no label)
    timecode = ("-timecode", "01:00:00:00")
    cases["timecode_broken_rate"] = set_tmcd_rate(movie(drop / "tc_17fps.mov", extra=timecode, seed=13), 17, 1, 17)
    cases["timecode_zero_rate"] = set_tmcd_rate(movie(drop / "tc_0fps.mov", extra=timecode, seed=14), 0, 1, 24)

    # --- streams present or not
    no_audio = drop / "no_audio.mp4"
    ffmpeg(*picture(), *H264, no_audio)
    cases["video_no_audio"] = no_audio
    cases["audio_only_wav"] = wav(drop / "audio_only.wav")
    cases["audio_only_flac"] = wav(drop / "audio_only.flac", codec="flac", seed=1)
    silence = drop / "silence.mov"
    ffmpeg(*picture(), "-f", "lavfi", "-i", f"anullsrc=channel_layout=stereo:sample_rate={RATE}",
           "-map", "0:v", "-map", "1:a", *H264, "-c:a", "pcm_s24le", "-t", str(SECONDS), silence)
    cases["digital_silence"] = silence
    one = drop / "one_sample.wav"
    ffmpeg(*programme(2, RATE, 1.0), "-af", "atrim=end_sample=1", "-c:a", "pcm_s24le", one)   # 1 sample frame
    cases["single_sample"] = one

    # --- channel layouts
    cases["mono"] = wav(drop / "mono.wav", channels=1, layout="mono")
    cases["surround_7_1"] = wav(drop / "surround_71.wav", channels=8, layout="7.1")

    # --- sample rates and PCM formats
    for rate in (8000, 96000, 192000):
        cases[f"rate_{rate // 1000}k"] = wav(drop / f"rate_{rate // 1000}k.wav", rate=rate)
    for codec in ("pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le"):
        cases[codec] = wav(drop / f"{codec}.wav", codec=codec)

    # --- codecs
    cases["aac_m4a"] = wav(drop / "aac.m4a", codec="aac", seed=2)
    cases["ac3"] = wav(drop / "ac3.ac3", codec="ac3", seed=3)
    cases["flac"] = wav(drop / "flac.flac", codec="flac", seed=4)
    cases["opus_ogg"] = wav(drop / "opus_ogg.ogg", codec="libopus", seed=5)
    cases["opus_opus"] = wav(drop / "opus.opus", codec="libopus", seed=6)

    # --- two audio streams: a:0 stereo, a:1 mono (so the report's channel count tells which was used)
    two = drop / "two_streams.mkv"
    ffmpeg(*picture(), *programme(2, RATE, SECONDS, 0), *programme(1, RATE, SECONDS, 7),
           "-map", "0:v", "-map", "1:a", "-map", "2:a", *H264, "-c:a", "pcm_s24le", "-shortest", two)
    cases["two_streams"] = two

    # --- multi-mono masters: one channel per track, unlabelled (MOV, MXF) or labelled FL/FR: assembled into one
    # layout by their count or labels (pipeline/master.py), never processed as track 1 alone.
    tracks = [a for i in range(6) for a in programme(1, RATE, SECONDS, 20 + i)]
    maps = [a for i in range(1, 7) for a in ("-map", f"{i}:a")]
    cases["multi_mono_mov"] = drop / "multi_mono_51.mov"
    ffmpeg(*picture(), *tracks, "-map", "0:v", *maps, *H264, "-c:a", "pcm_s24le", "-shortest",
           cases["multi_mono_mov"])
    cases["multi_mono_mxf"] = drop / "multi_mono_51.mxf"
    ffmpeg(*picture(), *tracks, "-map", "0:v", *maps, "-c:v", "mpeg2video", "-c:a", "pcm_s24le", "-shortest",
           cases["multi_mono_mxf"])
    cases["dual_mono_labelled"] = drop / "dual_mono_labelled.mov"
    ffmpeg(*picture(), *programme(1, RATE, SECONDS, 30), *programme(1, RATE, SECONDS, 31),
           "-filter_complex", "[1:a]aformat=channel_layouts=FL[l];[2:a]aformat=channel_layouts=FR[r]",
           "-map", "0:v", "-map", "[l]", "-map", "[r]", *H264, "-c:a", "pcm_s24le", "-shortest",
           cases["dual_mono_labelled"])

    # --- multi-track masters that cannot be assembled: each one line, the batch goes on
    cases["tracks_rates_differ"] = drop / "tracks_rates_differ.mov"
    ffmpeg(*picture(), *programme(1, RATE, SECONDS, 40), *programme(1, 44100, SECONDS, 41),
           "-map", "0:v", "-map", "1:a", "-map", "2:a", *H264, "-c:a", "pcm_s24le", "-shortest",
           cases["tracks_rates_differ"])
    cases["tracks_lengths_differ"] = drop / "tracks_lengths_differ.mkv"
    ffmpeg(*programme(1, RATE, SECONDS, 42), *programme(1, RATE, SECONDS - 0.5, 43),
           "-map", "0:a", "-map", "1:a", "-c:a", "pcm_s24le", cases["tracks_lengths_differ"])
    eight = [a for i in range(8) for a in programme(1, RATE, SECONDS, 50 + i)]
    cases["eight_unlabelled"] = drop / "eight_unlabelled.mxf"
    ffmpeg(*picture(), *eight, "-map", "0:v", *[a for i in range(1, 9) for a in ("-map", f"{i}:a")],
           "-c:v", "mpeg2video", "-c:a", "pcm_s24le", "-shortest", cases["eight_unlabelled"])

    # --- audio laid in late: the picture from 0, the audio (1 s) from 0.5 s (a MOV edit list, a track placed late)
    cases["audio_starts_late"] = drop / "audio_starts_late.mov"
    ffmpeg(*picture(), "-itsoffset", "0.5", *programme(2, RATE, 1.0, 15), "-map", "0:v", "-map", "1:a", *H264,
           "-c:a", "pcm_s24le", cases["audio_starts_late"])
    # --- the picture starts 0.5 s after the audio (an MKV keeps both starts), timecode 01:00:00:00 on the picture
    cases["audio_starts_early"] = drop / "audio_starts_early.mkv"
    ffmpeg("-itsoffset", "0.5", *picture(1.0), *programme(2, RATE, 1.5, 16), "-map", "0:v", "-map", "1:a", *H264,
           "-c:a", "pcm_s24le", "-timecode", "01:00:00:00", cases["audio_starts_early"])

    # --- variable frame rate: the first second at 24 fps, then 60 fps (timestamps kept as they are)
    vfr = drop / "vfr.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x36:rate=120:duration=2",
           *programme(2, RATE, 2.0),
           "-filter_complex", "[0:v]select='if(lt(t,1),not(mod(n,5)),not(mod(n,2)))',setpts=PTS-STARTPTS[v]",
           "-map", "[v]", "-map", "1:a", "-fps_mode", "vfr", *H264, "-c:a", "pcm_s24le", vfr)
    cases["variable_frame_rate"] = vfr

    # --- hostile names
    cases["name_spaces"] = movie(drop / "reel one  two.mov", seed=1)
    cases["name_quotes"] = movie(drop / """it's "the" reel`s.mov""", seed=2)
    cases["name_cmd_subst"] = wav(drop / "$(touch pwned) && rm -rf ~ ;.wav", seed=3)
    cases["name_leading_dash"] = movie(drop / "-rf.mov", seed=4)
    cases["name_unicode"] = movie(drop / "映画 リール.mov", seed=5)
    cases["name_html"] = wav(drop / "<img src=x onerror=alert(1)>.wav", seed=6)
    cases["name_long_ascii"] = wav(drop / LONG_ASCII, seed=7)
    cases["name_long_unicode"] = wav(drop / LONG_UNICODE, seed=8)

    # named one by one (not in the drop folder)
    pwned = root / "$(touch " / "tmp" / "pwned).mov"    # the path is literally `$(touch /tmp/pwned).mov`
    pwned.parent.mkdir(parents=True, exist_ok=True)
    cases["path_cmd_subst"] = movie(pwned, seed=9)
    (root / "elsewhere").mkdir()
    target = wav(root / "elsewhere" / "link_target.wav", seed=10)
    link = root / "links" / "linked reel.wav"
    link.parent.mkdir()
    link.symlink_to(target)
    cases["symlink"] = link
    folder = root / "not_a_file.mov"                     # a folder named like a media file
    folder.mkdir()
    (folder / "readme.txt").write_text("not media\n")
    cases["directory_as_file"] = folder
    inner = drop / "folder.mov"                          # the same inside the drop folder: not a file, ignored
    inner.mkdir()
    cases["directory_in_drop"] = inner
    c.named += [cases["path_cmd_subst"], link, folder]

    # files that disappear between discovery and processing (the test deletes them at the right moment)
    cases["vanish_before_probe"] = wav(drop / "vanish_before_probe.wav", seed=11)
    cases["vanish_before_extract"] = wav(drop / "vanish_before_extract.wav", seed=12)
    return c


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/hostile_corpus.py DIR", file=sys.stderr)
        return 2
    corpus = build(Path(argv[0]))
    for name, path in corpus.cases.items():
        kind = "dir" if path.is_dir() else "link" if path.is_symlink() else f"{path.stat().st_size} B"
        print(f"{name:<22} {kind:>10}  {os.fsdecode(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
