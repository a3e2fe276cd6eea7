"""Audio in and out through ffmpeg pipes: decode a stream block by block (resampled with soxr as it arrives),
write broadcast WAV stems block by block (bext with the start's TimeReference, iXML, channel mask, RF64 past
4 GB, atomic).

Arrays are float32 shaped (samples, channels); rates in Hz. Commands are built with typed-ffmpeg and run by
the one runner in `pipeline.ffmpeg`. `extract` and `write_wav` are the same pipes over a whole array.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import ffmpeg as tf  # typed-ffmpeg
import numpy as np

from .errors import MediaError
from .ffmpeg import add_output_options, finish, popen_reader, popen_writer
from .ixml import append_chunk, ixml_document
from .layout import Layout, get_layout
from .master import Master
from .outputs import atomic_output
from .progress import report
from .readers import RawFile, raw_bytes
from .resample import Resampler
from .timecode import StartTimecode

PCM_CODECS = {16: "pcm_s16le", 24: "pcm_s24le", 32: "pcm_s32le"}
BLOCK_FRAMES = 1 << 16
ORIGINATOR = "reelsplit"   # bext Originator (32 characters at most)
_READ_FRAMES = 1 << 16     # frames per pipe read


@dataclass(frozen=True)
class Stamp:
    """What a broadcast WAV says beside its audio: the bext Description, and where it starts on the clock (bext
    TimeReference and iXML SPEED; None writes TimeReference 0 and no timestamp)."""

    description: str = ""
    start: StartTimecode | None = None


def extract(path: Path, master: Master, *, timeout: float | None = None) -> np.ndarray:
    """Decode `master` of `path` to float32 (samples, channels) at its own rate: the pipe of `extract_to_raw`
    into memory (tests, short files)."""
    sink = _Collect(master.channels)
    extract_to_raw(path, master, sink, timeout=timeout)
    return np.concatenate(sink.parts) if sink.parts else np.zeros((0, master.channels), np.float32)


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
    description: str | Stamp = "",
    timeout: float | None = None,
) -> Path:
    """Write (samples, channels) float audio as a broadcast WAV (bext and iXML chunks, WAVE_FORMAT_EXTENSIBLE
    with the channel mask of `layout`, RF64 past 4 GB), atomically: temporary name, fsync, rename. `description`
    is the bext Description, or a Stamp with it and the start (see WavWriter).
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (samples, channels), got shape {audio.shape}")
    with WavWriter(Path(path), rate, layout, audio.shape[1], bit_depth=bit_depth, description=description,
                   timeout=timeout) as writer:
        for start in range(0, audio.shape[0], BLOCK_FRAMES):
            writer.write(audio[start:start + BLOCK_FRAMES])
    return Path(path)


# ------------------------------------------------------------------------------------------------ pipes

def decode_command(path: Path, master: Master) -> list[str]:
    """ffmpeg decoding `master` of `path` to float32 on stdout: one stream as it is, or the tracks joined into
    the layout's channels in order (ffmpeg's join filter, each channel mapped by index: no remix), from the
    file's start (the picture's first frame), silence first where the audio starts later."""
    src = tf.input(str(Path(path).resolve()))
    single = master.single
    if single is not None:
        audio, extra = src.audio_stream(single.audio_index), {"ac": single.channels}
    else:
        streams = master.streams
        where = {s.audio_index: k for k, s in enumerate(streams)}
        mapping = "|".join(f"{where[s.audio_index]}.{c}-{name}"
                           for (s, c), name in zip(master.channels_from, master.layout.ffmpeg_channels))
        audio = tf.filters.join(*(src.audio_stream(s.audio_index) for s in streams), inputs=len(streams),
                                channel_layout=master.layout.ffmpeg, map=mapping)
        extra = {}      # no -ac: it would remix the joined layout into ffmpeg's default one for the count
    # Audio that starts after the picture (a MOV edit list, a track laid in late) starts with that much silence,
    # so the stems keep the picture's time and its timecode: aresample's first_pts=0 "pads the beginning with
    # silence if an audio stream starts after the video stream" (ffmpeg-filters, aresample). A no-op otherwise.
    audio = audio.aresample(extra_options={"first_pts": 0})
    return (tf.output(audio, filename="pipe:1", f="f32le", acodec="pcm_f32le", ar=master.sample_rate, **extra)
            .global_args(hide_banner=True, loglevel="error").compile())


def extract_to_raw(path: Path, master: Master, raw: RawFile, *, rate_out: int | None = None,
                   timeout: float | None = None) -> RawFile:
    """Decode `master` of `path` through a pipe into `raw` (float32 at the master's rate, or resampled to
    `rate_out` with soxr as it arrives). `raw` is anything with `append(block)` and `flush()`.
    Channels come in the layout's order (5.1: L R C LFE Ls Rs). A damaged stream — no samples, packets ffmpeg
    could not decode, or less audio than the file declares (truncated) — is a MediaError: ffmpeg exits 0 on
    both, and a reel delivered short or out of sync must not look complete."""
    cmd = decode_command(path, master)
    rs = Resampler(master.sample_rate, rate_out or master.sample_rate, master.channels)
    frame = 4 * master.channels
    proc = popen_reader(cmd, timeout=timeout)
    assert proc.stdout is not None
    carry, decoded = b"", 0
    total = round((master.duration_s or 0.0) * master.sample_rate)    # declared: 0 when the file does not say
    try:
        while data := proc.stdout.read(_READ_FRAMES * frame):
            data = carry + data
            usable = len(data) - len(data) % frame
            carry = data[usable:]
            block = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, master.channels)
            decoded += block.shape[0]
            raw.append(rs.push(block))
            report("extract", decoded, total)
        raw.append(rs.flush())
    finally:
        stderr = finish(proc, timeout=timeout, path=path)
    errors = stderr.count("Error while decoding")
    if decoded == 0:
        raise MediaError("the audio stream decoded to no samples", path)
    if errors:
        raise MediaError(f"damaged audio: {errors} packet(s) could not be decoded (corrupt data)", path)
    declared, got = master.duration_s, decoded / master.sample_rate
    if declared and declared - got > max(0.05, 0.01 * declared):
        raise MediaError(f"damaged audio: decoded only {got:.2f} s of the {declared:.2f} s the file declares "
                         "(truncated or corrupt)", path)
    raw.flush()
    return raw


class WavWriter:
    """A broadcast WAV (bext, iXML, channel mask, RF64 past 4 GB) written block by block through an ffmpeg pipe,
    to a temporary name that is renamed only when the file is complete (`close()`); `abort()` removes it.

    `description` is the bext Description, or a Stamp with it and the start: then the bext TimeReference is the
    start in samples since midnight at `rate` (ffmpeg's `time_reference`), and the iXML chunk (which ffmpeg
    cannot write: appended when ffmpeg has finished, before the rename) carries the same timestamp, the
    timecode rate and flag, and the channel names of `layout` (Layout.labels: L R C LFE Ls Rs). `layout` is a
    layout's name or a Layout (layout.one_channel: one channel of a layout in a file of its own)."""

    def __init__(self, path: Path, rate: int, layout: str | Layout, channels: int, *, bit_depth: int = 24,
                 description: str | Stamp = "", timeout: float | None = None):
        self.path, self.channels, self.timeout = Path(path), channels, timeout
        self.frames = 0
        stamp = description if isinstance(description, Stamp) else Stamp(description)
        lay = layout if isinstance(layout, Layout) else get_layout(layout, channels)
        self._ixml = ixml_document(lay.labels, rate, bit_depth, stamp.start)
        self._atomic = atomic_output(self.path)
        self._tmp = tmp = self._atomic.__enter__()
        now = dt.datetime.now()
        src = tf.input("pipe:0", f="f32le", ar=rate, ac=channels, extra_options={"ch_layout": lay.ffmpeg})
        cmd = (
            tf.output(src.audio, filename=str(tmp), f="wav", acodec=PCM_CODECS[bit_depth],
                      extra_options={"write_bext": 1, "rf64": "auto"})
            .global_args(hide_banner=True, loglevel="error", y=True)
            .compile()
        )
        cmd = add_output_options(cmd, [
            ("-metadata", f"description={stamp.description[:256]}"),
            ("-metadata", f"originator={ORIGINATOR}"),
            ("-metadata", f"origination_date={now:%Y-%m-%d}"),
            ("-metadata", f"origination_time={now:%H:%M:%S}"),
            ("-metadata", f"time_reference={stamp.start.samples(rate) if stamp.start else 0}"),
        ])
        self._proc = popen_writer(cmd, timeout=timeout)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype="<f4")
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"{self.path.name}: block of shape {block.shape}, expected (n, {self.channels})")
        try:
            self._proc.stdin.write(raw_bytes(block))
        except BrokenPipeError:
            self._fail()
        self.frames += block.shape[0]

    def _fail(self) -> None:
        try:
            finish(self._proc, timeout=self.timeout, path=self.path)   # raises with ffmpeg's message
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        raise MediaError("ffmpeg stopped reading the audio", self.path)

    def close(self) -> Path:
        try:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
            finish(self._proc, timeout=self.timeout, path=self.path)
            append_chunk(self._tmp, b"iXML", self._ixml)
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._proc.kill()
            self._proc.communicate()
        with contextlib.suppress(Exception):
            err = RuntimeError("aborted")
            self._atomic.__exit__(RuntimeError, err, None)

    def __enter__(self) -> "WavWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Closed (complete, renamed) when the block ends normally; aborted (nothing left) when it raises."""
        if exc_type is None:
            self.close()
        else:
            self.abort()
