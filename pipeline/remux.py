"""Deliverable assembly: the picture copied untouched plus labelled audio tracks, muxed by ffmpeg.

Track order: 1 = original mix (stream-copied, untouched), 2 = delivered mix, 3 = DX, 4 = M&E, then MX and
FX when the model made them. MOV drops a per-track `title`, so every track also gets `handler_name`, which
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

# Containers that can hold PCM and that we keep; everything else (MP4 cannot hold PCM; ffmpeg's MXF muxer
# takes only a few picture codecs and mono PCM tracks) is delivered as Matroska.
KEEP_CONTAINER = {".mov": ("mov", ".mov"), ".mkv": ("matroska", ".mkv")}
FALLBACK = ("matroska", ".mkv")


@dataclass(frozen=True)
class Track:
    wav: Path | None     # None = the original audio stream, copied
    title: str
    language: str


@dataclass(frozen=True)
class RemuxResult:
    path: Path
    container: str
    tracks: tuple[str, ...]
    seconds: float


def deliverable_container(source: Path) -> tuple[str, str]:
    """(ffmpeg muxer, suffix) for the deliverable of `source`: the same container where it holds PCM."""
    return KEEP_CONTAINER.get(source.suffix.lower(), FALLBACK)


def remux(info: MediaInfo, audio_index: int, tracks: list[Track], out_path: Path, *,
          bit_depth: int = 24, timeout: float | None = None) -> RemuxResult:
    """Write `out_path`: the first video stream of `info.path` copied, then `tracks` in order."""
    import time

    start = time.perf_counter()
    muxer, _ = deliverable_container(info.path)
    src = tf.input(str(info.path.resolve()))
    streams = [src.video_stream(0)]
    wav_inputs = [tf.input(str(t.wav.resolve())) for t in tracks if t.wav is not None]
    wav_iter = iter(wav_inputs)
    for t in tracks:
        streams.append(src.audio_stream(audio_index) if t.wav is None else next(wav_iter).audio)
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
