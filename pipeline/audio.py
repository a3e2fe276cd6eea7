"""Audio in and out through ffmpeg: decode a stream to float32 at its own rate, write broadcast WAV stems.

Arrays are float32 shaped (samples, channels); rates in Hz. Commands are built with typed-ffmpeg and run by
the one runner in `pipeline.ffmpeg`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MediaError
from .layout import get_layout
from .media import AudioStream, MediaInfo

PCM_CODECS = {16: "pcm_s16le", 24: "pcm_s24le", 32: "pcm_s32le"}
BLOCK_FRAMES = 1 << 16


def check_layout(stream: AudioStream, path: Path) -> str:
    """The stream's layout name if reelsplit can separate it, else MediaError with the reason."""
    try:
        return get_layout(stream.layout, stream.channels).name
    except MediaError as exc:
        raise MediaError(exc.message, path) from None


def select_stream(info: MediaInfo, n: int = 0) -> AudioStream:
    """Audio stream `n` of the file, refusing a multi-mono master (two or more one-channel tracks, as 5.1 as
    six tracks or stereo as two): separating one of its tracks alone would drop the others from every output.
    MediaError names the track count and the reason."""
    stream = info.audio_stream(n)
    mono = info.mono_tracks()
    if len(mono) >= 2:
        raise MediaError(
            f"audio is {len(mono)} separate mono tracks of {len(info.audio)} (a multi-mono master, e.g. 5.1 as "
            "six tracks): reelsplit does not assemble tracks into one layout yet, and processing one track "
            f"alone would drop the other {len(mono) - 1}; deliver the audio as one interleaved stream", info.path)
    return stream


def extract(path: Path, stream: AudioStream, *, timeout: float | None = None) -> np.ndarray:
    """Decode audio stream `stream` of `path` to float32 (samples, channels) at the stream's own rate.

    All channels are kept in ffmpeg's order for the layout (5.1: L R C LFE Ls Rs). A damaged stream — packets
    ffmpeg could not decode, or less audio than the file declares (truncated) — is a MediaError: ffmpeg exits
    0 on both, and a reel delivered short or out of sync must not look complete.
    """
    from .stream import extract_to_raw   # the one decoder: ffmpeg → pipe → blocks

    sink = _Collect(stream.channels)
    extract_to_raw(path, stream, sink, timeout=timeout)
    return np.concatenate(sink.parts) if sink.parts else np.zeros((0, stream.channels), np.float32)


class _Collect:
    """An in-memory sink with RawFile's `append`/`flush` (for `extract`)."""

    def __init__(self, channels: int):
        self.channels, self.parts = channels, []

    def append(self, block: np.ndarray) -> None:
        if block.shape[0]:
            self.parts.append(np.array(block, dtype=np.float32))

    def flush(self) -> None:
        pass


def write_wav(
    path: Path,
    audio: np.ndarray,
    rate: int,
    layout: str,
    *,
    bit_depth: int = 24,
    description: str = "",
    originator: str = "reelsplit",
    timeout: float | None = None,
) -> Path:
    """Write (samples, channels) float audio as a broadcast WAV (bext chunk, WAVE_FORMAT_EXTENSIBLE with the
    channel mask of `layout`, RF64 past 4 GB), atomically: temporary name, fsync, rename.
    """
    from .stream import WavWriter   # the one BWF writer (block by block, through ffmpeg, atomic)

    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (samples, channels), got shape {audio.shape}")
    writer = WavWriter(Path(path), rate, layout, audio.shape[1], bit_depth=bit_depth, description=description,
                       originator=originator, timeout=timeout)
    try:
        for start in range(0, audio.shape[0], BLOCK_FRAMES):
            writer.write(audio[start:start + BLOCK_FRAMES])
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return Path(path)
