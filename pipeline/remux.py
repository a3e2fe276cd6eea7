"""Deliverable assembly: the picture copied untouched plus labelled audio tracks, muxed by ffmpeg.

Track order: 1 = original mix (stream-copied, untouched), 2 = delivered mix, 3 = DX, 4 = M&E, then MX and
FX when the model made them, then the source's other audio tracks, stream-copied (none is ever dropped). MOV drops a per-track `title`, so every track also gets `handler_name`, which
MOV keeps (and Matroska keeps `title`). M&E carries ISO 639-2 `zxx` ("no linguistic content").
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
    wav: Path | None     # None = an audio stream of the source, copied untouched
    title: str
    language: str
    source: int = 0      # which source audio stream (`a:N`) a copied track is


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


def remux(info: MediaInfo, audio_index: int, tracks: list[Track], out_path: Path, *,
          bit_depth: int = 24, timeout: float | None = None) -> RemuxResult:
    """Write `out_path`: the first video stream of `info.path` copied, then `tracks` in order (`audio_index`
    picks the container, as deliverable_container)."""
    import time

    start = time.perf_counter()
    muxer, _ = deliverable_container(info, audio_index)
    src = tf.input(str(info.path.resolve()))
    streams = [src.video_stream(0)]
    wav_inputs = [tf.input(str(t.wav.resolve())) for t in tracks if t.wav is not None]
    wav_iter = iter(wav_inputs)
    for t in tracks:
        streams.append(src.audio_stream(t.source) if t.wav is None else next(wav_iter).audio)
    options: dict[str, object] = {"c:v": "copy"}
    for i, t in enumerate(tracks):
        options[f"c:a:{i}"] = "copy" if t.wav is None else PCM_CODECS[bit_depth]
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
