"""Audio in and out through ffmpeg: decode a stream to float32 at its own rate, write broadcast WAV stems.

Arrays are float32 shaped (samples, channels); rates in Hz. Commands are built with typed-ffmpeg and run by
the one runner in `pipeline.ffmpeg`.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import ffmpeg as tf  # typed-ffmpeg
import numpy as np

from .errors import FfmpegError, MediaError
from .ffmpeg import add_output_options, finish, popen_reader, popen_writer
from .media import AudioStream, KNOWN_LAYOUTS
from .outputs import atomic_output

PCM_CODECS = {16: "pcm_s16le", 24: "pcm_s24le", 32: "pcm_s32le"}
BLOCK_FRAMES = 1 << 16


def ffmpeg_layout(layout: str) -> str:
    """Our layout name as ffmpeg spells it for `-ch_layout`/`-channel_layout`."""
    return {"mono": "mono", "stereo": "stereo", "5.1": "5.1"}.get(layout, layout)


def check_layout(stream: AudioStream, path: Path) -> str:
    """The stream's layout if reelsplit can separate it, else MediaError with the reason."""
    if stream.layout in KNOWN_LAYOUTS and len(KNOWN_LAYOUTS[stream.layout]) == stream.channels:
        return stream.layout
    raise MediaError(
        f"channel layout {stream.layout} ({stream.channels} channels) is not supported: "
        "reelsplit separates mono, stereo and 5.1 (L R C LFE Ls Rs)", path)


def extract(path: Path, stream: AudioStream, *, timeout: float | None = None) -> np.ndarray:
    """Decode audio stream `stream` of `path` to float32 (samples, channels) at the stream's own rate.

    All channels are kept in ffmpeg's order for the layout (5.1: L R C LFE Ls Rs). A damaged stream — packets
    ffmpeg could not decode, or less audio than the file declares (truncated) — is a MediaError: ffmpeg exits
    0 on both, and a reel delivered short or out of sync must not look complete.
    """
    src = tf.input(str(Path(path).resolve()))
    cmd = (
        tf.output(src.audio_stream(stream.audio_index), filename="pipe:1", f="f32le", acodec="pcm_f32le",
                  ac=stream.channels, ar=stream.sample_rate)
        .global_args(hide_banner=True, loglevel="error")
        .compile()
    )
    proc = popen_reader(cmd, timeout=timeout)
    chunks = []
    assert proc.stdout is not None
    while block := proc.stdout.read(BLOCK_FRAMES * 4 * stream.channels):
        chunks.append(block)
    errors = finish(proc, timeout=timeout, path=path).count("Error while decoding")
    raw = b"".join(chunks)
    audio = np.frombuffer(raw, dtype="<f4")
    usable = audio.size - audio.size % stream.channels
    audio = audio[:usable].reshape(-1, stream.channels)
    if audio.shape[0] == 0:
        raise MediaError("the audio stream decoded to no samples", path)
    if errors:
        raise MediaError(f"damaged audio: {errors} packet(s) could not be decoded (corrupt data)", path)
    declared, got = stream.duration_s, audio.shape[0] / stream.sample_rate
    if declared and declared - got > max(0.05, 0.01 * declared):
        raise MediaError(f"damaged audio: decoded only {got:.2f} s of the {declared:.2f} s the file declares "
                         "(truncated or corrupt)", path)
    return audio


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
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (samples, channels), got shape {audio.shape}")
    channels = audio.shape[1]
    now = dt.datetime.now()
    with atomic_output(Path(path)) as tmp:
        src = tf.input("pipe:0", f="f32le", ar=rate, ac=channels,
                       extra_options={"ch_layout": ffmpeg_layout(layout)})
        cmd = (
            tf.output(src.audio, filename=str(tmp), f="wav", acodec=PCM_CODECS[bit_depth],
                      extra_options={"write_bext": 1, "rf64": "auto"})
            .global_args(hide_banner=True, loglevel="error", y=True)
            .compile()
        )
        # bext chunk fields (EBU Tech 3285), written by ffmpeg's wav muxer with -write_bext 1
        cmd = add_output_options(cmd, [
            ("-metadata", f"description={description[:256]}"),
            ("-metadata", f"originator={originator[:32]}"),
            ("-metadata", f"origination_date={now:%Y-%m-%d}"),
            ("-metadata", f"origination_time={now:%H:%M:%S}"),
        ])
        proc = popen_writer(cmd, timeout=timeout)
        assert proc.stdin is not None
        try:
            for start in range(0, audio.shape[0], BLOCK_FRAMES):
                proc.stdin.write(audio[start:start + BLOCK_FRAMES].tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg died; finish() raises with its message
        finish(proc, timeout=timeout, path=Path(path))
    return Path(path)
