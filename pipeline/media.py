"""Probe a media file with ffprobe and describe it as frozen dataclasses (streams, layout, rate, frame rate)."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import FfmpegError, MediaError
from .ffmpeg import run_json
from .layout import normalise_layout
from .starttc import SourceTimecode, read_source_timecode

MEDIA_SUFFIXES = {
    ".mov", ".mp4", ".m4v", ".mkv", ".mxf", ".avi", ".webm", ".mts", ".m2ts", ".ts",
    ".wav", ".bwf", ".w64", ".rf64", ".flac", ".aif", ".aiff", ".mp3", ".m4a", ".ac3", ".eac3", ".opus", ".ogg",
}


@dataclass(frozen=True)
class AudioStream:
    index: int                 # absolute stream index in the file
    audio_index: int           # position among the audio streams (ffmpeg's `a:N`)
    codec: str
    channels: int
    layout: str                # normalised: "mono", "stereo", "5.1", or ffmpeg's own name / "unknown"
    sample_rate: int           # Hz
    duration_s: float | None
    language: str | None
    title: str | None
    label: str | None = None   # a one-channel stream's channel name as ffprobe reports it ("FL"), else None
    start_s: float | None = None   # ffprobe's start_time (may be negative), None when it gives none


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    width: int
    height: int
    frame_rate: Fraction | None   # frames per second (r_frame_rate), e.g. 24000/1001
    duration_s: float | None = None   # the stream's own duration (Matroska: its DURATION tag), None if unknown
    start_s: float | None = None      # ffprobe's start_time, None when it gives none


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    container: str             # ffprobe format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_s: float
    size_bytes: int
    audio: tuple[AudioStream, ...]
    video: tuple[VideoStream, ...]
    timecode: SourceTimecode | None = None   # the start timecode the file declares (or why it cannot be read)

    @property
    def has_video(self) -> bool:
        return bool(self.video)

    def audio_stream(self, n: int = 0) -> AudioStream:
        """The n-th audio stream, or MediaError naming what the file has."""
        if not self.audio:
            raise MediaError("no audio stream in the file", self.path)
        if not 0 <= n < len(self.audio):
            raise MediaError(f"audio stream {n} requested but the file has {len(self.audio)}", self.path)
        return self.audio[n]

    def mono_tracks(self) -> tuple[AudioStream, ...]:
        """The audio streams that carry one channel each (a multi-mono master has two or more)."""
        return tuple(s for s in self.audio if s.channels == 1)


def _fraction(text: str | None) -> Fraction | None:
    """A positive rate from ffprobe's "24000/1001"; None for "0/0", "N/A" and anything else."""
    try:
        value = Fraction(text) if isinstance(text, str) and text else None
    except (ValueError, ZeroDivisionError):
        return None
    return value if value and value > 0 else None


def _float(text) -> float | None:
    value = _start(text)
    return value if value is not None and value >= 0 else None


def _start(text) -> float | None:
    """A finite number (a stream's start_time may be negative: an encoder's priming), None when absent or not a
    number; `_float` is the same for quantities that cannot be negative."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _int(value, default: int = 0) -> int:
    number = _float(value)
    return int(number) if number is not None else default


def _clock(text) -> float | None:
    """Seconds from a Matroska stream's DURATION tag ("00:00:01.500000000"); None when absent or malformed."""
    m = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", text.strip()) if isinstance(text, str) else None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def channel_label(layout: str | None, channels: int) -> str | None:
    """The channel name of a one-channel stream whose layout ffprobe spells "1 channels (FL)" (or "FL"); "FC"
    for "mono" (ffmpeg's mono is the centre); None for an unlabelled track and for several channels."""
    if channels != 1 or not layout:
        return None
    if layout.strip() == "mono":
        return "FC"
    m = re.fullmatch(r"1 channels \(([A-Za-z]+)\)|([A-Z]{1,3})", layout.strip())
    return (m.group(1) or m.group(2)) if m else None


def parse_probe(data: dict, path: Path) -> MediaInfo:
    """Turn ffprobe's `-show_streams -show_format` JSON into a MediaInfo (pure: no I/O). Fields of the wrong
    type or without a usable value ("N/A", "0/0") count as absent."""
    data = _mapping(data)
    fmt = _mapping(data.get("format"))
    audio, video = [], []
    streams = data.get("streams") if isinstance(data.get("streams"), list) else []
    for stream in filter(None, map(_mapping, streams)):
        kind = stream.get("codec_type")
        tags = {str(k).lower(): v for k, v in _mapping(stream.get("tags")).items()}
        if kind == "audio":
            channels = _int(stream.get("channels"))
            rate = _int(stream.get("sample_rate"))
            if channels <= 0 or rate <= 0:
                continue  # a stream ffprobe could not decode parameters for is unusable
            audio.append(
                AudioStream(
                    index=_int(stream.get("index"), len(audio)),
                    audio_index=len(audio),
                    codec=str(stream.get("codec_name", "unknown")),
                    channels=channels,
                    layout=normalise_layout(_text(stream.get("channel_layout")), channels),
                    sample_rate=rate,
                    duration_s=_float(stream.get("duration")) or _clock(tags.get("duration")),
                    language=_text(tags.get("language")),
                    title=_text(tags.get("title")) or _text(tags.get("handler_name")),
                    label=channel_label(_text(stream.get("channel_layout")), channels),
                    start_s=_start(stream.get("start_time")),
                )
            )
        elif kind == "video" and not _mapping(stream.get("disposition")).get("attached_pic"):
            video.append(
                VideoStream(
                    index=_int(stream.get("index")),
                    codec=str(stream.get("codec_name", "unknown")),
                    width=_int(stream.get("width")),
                    height=_int(stream.get("height")),
                    frame_rate=_fraction(stream.get("r_frame_rate")) or _fraction(stream.get("avg_frame_rate")),
                    duration_s=_float(stream.get("duration")) or _clock(tags.get("duration")),
                    start_s=_start(stream.get("start_time")),
                )
            )
    duration = _float(fmt.get("duration"))
    if duration is None:
        durations = [s.duration_s for s in audio if s.duration_s]
        duration = max(durations) if durations else 0.0
    return MediaInfo(
        path=path,
        container=str(fmt.get("format_name", "unknown")),
        duration_s=duration,
        size_bytes=_int(fmt.get("size")),
        audio=tuple(audio),
        video=tuple(video),
        timecode=read_source_timecode(streams, fmt, video[0].frame_rate if video else None,
                                      audio[0].sample_rate if audio else None),
    )


def probe(path: Path) -> MediaInfo:
    """Probe `path` with ffprobe. Raises MediaError for a file that is missing, unreadable or not media."""
    path = Path(path)
    if not path.exists():
        raise MediaError("file not found", path)
    if path.is_dir():
        raise MediaError("is a directory, not a media file", path)
    if not os.access(path, os.R_OK):
        raise MediaError("permission denied (not readable)", path)
    if path.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes)", path)
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
           str(path.resolve())]
    try:
        data = run_json(cmd, path=path)
    except FfmpegError as exc:
        raise MediaError(f"not a readable media file ({exc.message})", path) from exc
    return parse_probe(data, path)
