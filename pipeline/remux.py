"""Deliverable assembly: the picture copied untouched plus labelled audio tracks, muxed by ffmpeg.

Which tracks, in which order, is pipeline/deliverable.py's. A track is a source audio stream (stream-copied,
untouched), a delivered broadcast WAV, or channels picked from delivered WAVs (ffmpeg's `join` filter: the
channels are moved, not mixed, so the samples are the WAVs' own). MOV drops a per-track `title`, so every track
also gets `handler_name`, which MOV keeps (and Matroska keeps `title`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg as tf  # typed-ffmpeg

from .audio import PCM_CODECS
from .ffmpeg import add_output_options, run
from .media import MediaInfo
from .outputs import atomic_output

MOV = ("mov", ".mov")
MKV = ("matroska", ".mkv")
# What ffmpeg's MOV muxer takes as a stream copy (picture) and beside our PCM tracks (the original audio).
MOV_VIDEO = {"h264", "hevc", "prores", "dnxhd", "mpeg2video", "mpeg4", "mjpeg", "av1", "png", "qtrle", "rawvideo",
             "dvvideo", "vp9"}
MOV_AUDIO = {"aac", "alac", "mp3", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le",
             "pcm_s32be", "pcm_f32le", "pcm_f32be", "pcm_u8"}


@dataclass(frozen=True)
class Track:
    wav: Path | None     # a delivered WAV, whole; None = a source stream copied (or picked channels)
    title: str
    language: str
    source: int = 0      # which source audio stream (`a:N`) a copied track is
    picks: tuple[tuple[Path, int], ...] = ()   # (delivered WAV, channel) per channel of the track, in order
    layout: str = ""     # ffmpeg channel layout of picked channels: their names joined by "+", e.g. "FC", "FL+DL"

    @property
    def copied(self) -> bool:
        """A source stream, stream-copied."""
        return self.wav is None and not self.picks


@dataclass(frozen=True)
class RemuxResult:
    path: Path
    container: str
    tracks: tuple[str, ...]
    seconds: float


def deliverable_container(info: MediaInfo, audio_index: int = 0) -> tuple[str, str]:
    """(ffmpeg muxer, suffix) of the deliverable: the input's own container where it holds 24-bit PCM with its
    channel layout — MOV always, Matroska for mono and stereo (its PCM codec has no channel-mask field, so
    6 channels read back as layout "unknown") — else MOV when the picture and original audio can go in it,
    else Matroska. MP4 cannot hold PCM, and ffmpeg's MXF muxer takes few picture codecs."""
    suffix = info.path.suffix.lower()
    stream = info.audio_stream(audio_index)
    mov_ok = (bool(info.video) and info.video[0].codec in MOV_VIDEO
              and all(s.codec in MOV_AUDIO for s in info.audio))   # every source track is copied into it
    if suffix == ".mov":
        return MOV
    if suffix == ".mkv" and (stream.channels <= 2 or not mov_ok):
        return MKV
    return MOV if mov_ok else MKV


def _audio_streams(src, tracks: list[Track]) -> list:
    """typed-ffmpeg streams of `tracks`: a source stream, a WAV's audio (each WAV one input, however many tracks
    read it), or picked channels joined: `join=inputs=N:channel_layout=FL+FR:map=0.0-FL|1.1-FR`."""
    inputs: dict[Path, object] = {}

    def audio(path: Path):
        return inputs.setdefault(path, tf.input(str(path.resolve()))).audio

    streams = []
    for t in tracks:
        if t.copied:
            streams.append(src.audio_stream(t.source))
        elif not t.picks:
            streams.append(audio(t.wav))
        else:
            wavs = list(dict.fromkeys(path for path, _ in t.picks))
            names = t.layout.split("+")
            mapping = "|".join(f"{wavs.index(path)}.{c}-{name}" for (path, c), name in zip(t.picks, names))
            streams.append(tf.filters.join(*(audio(w) for w in wavs), inputs=len(wavs), channel_layout=t.layout,
                                           map=mapping))
    return streams


def remux(info: MediaInfo, audio_index: int, tracks: list[Track], out_path: Path, *,
          bit_depth: int = 24, timeout: float | None = None, timecode: str | None = None) -> RemuxResult:
    """Write `out_path`: the first video stream of `info.path` copied, then `tracks` in order (`audio_index`
    picks the container, as deliverable_container). `timecode` ("10:00:00:00", "10:00:00;00" for drop frame)
    replaces the source's start timecode: ffmpeg's `-timecode` sets the file's `timecode` metadata, which the
    MOV muxer writes as the tmcd track (counted at the picture's rate, taken before the picture stream's own
    tag) and the Matroska muxer as its TIMECODE tag; None keeps the source's (ffmpeg copies it)."""
    import time

    start = time.perf_counter()
    muxer, _ = deliverable_container(info, audio_index)
    src = tf.input(str(info.path.resolve()))
    streams = [src.video_stream(0)] + _audio_streams(src, tracks)
    options: dict[str, object] = {"c:v": "copy"}
    if timecode:
        options["timecode"] = timecode
    for i, t in enumerate(tracks):
        options[f"c:a:{i}"] = "copy" if t.copied else PCM_CODECS[bit_depth]
    metadata: list[tuple[str, str]] = []
    for i, t in enumerate(tracks):
        metadata += [(f"-metadata:s:a:{i}", f"title={t.title}"),
                     (f"-metadata:s:a:{i}", f"handler_name={t.title}"),
                     (f"-metadata:s:a:{i}", f"language={t.language}"),
                     (f"-disposition:a:{i}", "default" if i == 0 else "0")]
    with atomic_output(out_path) as tmp:
        cmd = (tf.output(*streams, filename=str(tmp), f=muxer, extra_options=options)
               .global_args(hide_banner=True, loglevel="error", y=True).compile())
        run(add_output_options(cmd, metadata), timeout=timeout, path=info.path)
    return RemuxResult(out_path, muxer, tuple(t.title for t in tracks), time.perf_counter() - start)
