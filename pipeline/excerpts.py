"""What the HTML report lets a mixer hear: a reel's QC events (read back from `<title>_qc_events.csv`), ranked,
and short excerpts of the written MIX / DX / M&E at the worst of them and at a few dialogue lines, each stem
folded to stereo, encoded to Opus in WebM and paired with a DX / M&E spectrogram.

Only the excerpt's seconds are read from each WAV (soundfile seeks); nothing here reads a whole reel.

Size cap of one reel's report section: at most MAX_EVENT_EXCERPTS event excerpts and MAX_LINE_EXCERPTS dialogue
excerpts, each EXCERPT_S seconds of up to three stems at OPUS_KBPS kb/s (8 × 3 × 5 s × 40 kb/s = 600 kB, ≈ 0.8 MB
in base64), one spectrogram PNG per event excerpt (a 48-colour palette, ≈ 35 kB, ≈ 50 kB in base64), the overview
plot and at most MAX_TABLE_ROWS rows of the event table: SECTION_CAP_BYTES (1.5 MB) in all, which `htmlreport`
enforces by dropping the last excerpts should a section still come out larger.
"""
from __future__ import annotations

import csv
import io
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import soundfile as sf
from matplotlib.figure import Figure

from . import ffmpeg
from .downmix import FOLDS, stereo_gains
from .errors import FfmpegError
from .layout import find_layout
from .qcevents import KINDS, EventSettings, QcEvent, read_events_csv

EXCERPT_S = 5.0                # seconds of each excerpt
LEAD_S = 1.0                   # heard before an event longer than the excerpt, and before a dialogue line
MAX_EVENT_EXCERPTS = 6         # excerpts at events, per reel
MAX_LINE_EXCERPTS = 2          # excerpts at dialogue lines, per reel
ENCODERS = 2                   # excerpts encoded at once (ffmpeg processes), while the spectrograms are drawn
OPUS_KBPS = 40                 # Opus bit rate of a stereo excerpt (a mono one gets half)
MAX_TABLE_ROWS = 200           # events listed in the report's table (the worst, shown in time order); the CSV has all
SECTION_CAP_BYTES = 1_500_000  # one reel's report section, excerpts, spectrograms, plot and table together
STEM_KEYS = ("MIX", "DX", "ME")
FIRST_KINDS = ("speech_in_me", "bed_in_dx")   # ranked before other kinds: what the separation itself left behind
_SPEC_SIZE_IN, _SPEC_DPI, _SPEC_COLOURS = (6.4, 2.8), 100, 48   # 640 x 280 px, a 48-colour palette
_SPEC_RANGE_DB = 90.0          # the spectrogram's colour range below its loudest bin
_SPEC_ROWS = 160               # log-spaced frequency rows of a spectrogram


@dataclass(frozen=True)
class Listed:
    """One event as the report lists it: its timecodes as the CSV gives them ("" without a clock) and whether
    it fails the reel."""

    event: QcEvent
    tc_in: str = ""
    tc_out: str = ""
    fails: bool = False


@dataclass(frozen=True)
class Excerpt:
    """EXCERPT_S seconds of the reel, [start_s, end_s) of media time, to listen to: `audio` maps a stem key
    (MIX, DX, ME) to a WebM/Opus file; `spectrogram` is a PNG of DX over M&E (b"" for none); `mark` the span of
    what it is about (the event, the line's start); `listed` the event that chose it (None for a line)."""

    start_s: float
    end_s: float
    title: str
    audio: Mapping[str, bytes]
    spectrogram: bytes = b""
    mark: tuple[float, float] | None = None
    listed: Listed | None = None


@dataclass(frozen=True)
class Listening:
    """A reel's events and excerpts for the report. `events`: at most MAX_TABLE_ROWS of them in time order, the
    worst kept; `total`: how many the CSV has; `downmix`: how the excerpts were folded to stereo; `note`: why
    there are no events or no excerpts, when so."""

    events: tuple[Listed, ...] = ()
    total: int = 0
    excerpts: tuple[Excerpt, ...] = ()
    downmix: str = ""
    note: str = ""
    source: str = ""


# --------------------------------------------------------------------------------------------------
# events


def failing_kinds(reasons: Iterable[str]) -> set[str]:
    """The kinds a reel's QC reasons name ("clicks: 3 event(s), first at …", as qcevents.judge words them)."""
    return {r.split(":", 1)[0].strip() for r in reasons if r.split(":", 1)[0].strip() in KINDS}


def read_listed(path: str | Path, fails: Callable[[QcEvent], bool]) -> list[Listed]:
    """The events of a qc_events CSV with the timecodes written beside them, in the file's order."""
    events = read_events_csv(Path(path))
    with open(path, newline="", encoding="utf-8") as f:
        tcs = [(r.get("start_tc") or "", r.get("end_tc") or "") for r in csv.DictReader(f)]
    return [Listed(e, tc_in, tc_out, bool(fails(e))) for e, (tc_in, tc_out) in zip(events, tcs)]


def judge_with(settings: EventSettings | None, reasons: Iterable[str]) -> Callable[[QcEvent], bool]:
    """Whether an event fails the reel: the profile's rule for its kind when there is a profile with rules, else
    every event of a kind the reel's QC reasons name."""
    if settings is not None and settings.rules:
        return lambda e: settings.rule(e.kind).fails(e)
    kinds = failing_kinds(reasons)
    return lambda e: e.kind in kinds


def rank_key(item: Listed) -> tuple:
    """Worst first: failing events, then speech left in the M&E and beds left in the DX, then the loudest
    (level_db), then the longest, then the earliest."""
    e = item.event
    level = e.level_db if e.level_db is not None and math.isfinite(e.level_db) else -math.inf
    return (not item.fails, e.kind not in FIRST_KINDS, -level, -e.duration_s, e.start_s)


def ranked(events: Iterable[Listed]) -> list[Listed]:
    return sorted(events, key=rank_key)


def window(start_s: float, end_s: float, duration_s: float, seconds: float = EXCERPT_S) -> tuple[float, float]:
    """The excerpt around [start_s, end_s): centred on it when it fits, else from LEAD_S before its start; kept
    inside [0, duration_s)."""
    length = min(seconds, duration_s)
    mid = (start_s + end_s) / 2
    begin = mid - length / 2 if end_s - start_s <= length - 2 * LEAD_S else start_s - LEAD_S
    begin = min(max(begin, 0.0), max(duration_s - length, 0.0))
    return begin, begin + length


def _overlaps(span: tuple[float, float], taken: Sequence[tuple[float, float]]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in taken)


def event_spans(events: Sequence[Listed], duration_s: float, most: int = MAX_EVENT_EXCERPTS
                ) -> list[tuple[tuple[float, float], Listed]]:
    """Excerpt windows at the worst events: first the worst event of each kind (in rank order, so one excerpt of
    each problem before a second of any), then the next worst; a window never overlaps one already chosen."""
    order = ranked(events)
    firsts: dict[str, Listed] = {}
    for item in order:
        firsts.setdefault(item.event.kind, item)
    chosen: list[tuple[tuple[float, float], Listed]] = []
    for item in list(firsts.values()) + order:
        if len(chosen) >= most:
            break
        span = window(item.event.start_s, item.event.end_s, duration_s)
        if not _overlaps(span, [s for s, _ in chosen]):
            chosen.append((span, item))
    return chosen


def line_spans(lines: Sequence[tuple[str, float, str]], speech: Sequence[tuple[float, float]], duration_s: float,
               taken: Sequence[tuple[float, float]], most: int = MAX_LINE_EXCERPTS
               ) -> list[tuple[tuple[float, float], str, float]]:
    """Excerpt windows at dialogue lines spread over the reel (from LEAD_S before a line's start), else at the
    longest speech regions; none overlapping `taken`. Each with its title (the line's text or the region) and
    where the line starts."""
    if lines:
        picks = [(start, start + EXCERPT_S - 2 * LEAD_S, f"{tc + ' ' if tc else ''}“{text}”")
                 for tc, start, text in lines]
        # nearest first to the evenly spread places in the list (a third and two thirds in, for two)
        places = [(k + 1) * (len(picks) - 1) / (most + 1) for k in range(most)]
        picks = [picks[i] for i in sorted(range(len(picks)), key=lambda i: min(abs(i - p) for p in places))]
    else:
        regions = sorted(speech, key=lambda r: r[0] - r[1])
        picks = [(s, e, f"dialogue {s:.1f}–{e:.1f} s") for s, e in regions]
    chosen: list[tuple[tuple[float, float], str, float]] = []
    for s, e, title in picks:
        span = window(max(s, 0.0), max(e, s), duration_s)
        if len(chosen) < most and not _overlaps(span, list(taken) + [c[0] for c in chosen]):
            chosen.append((span, title, max(s, 0.0)))
    return sorted(chosen)


# --------------------------------------------------------------------------------------------------
# audio


def read_span(path: str | Path, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 of [start_s, end_s) of a WAV, and its rate: a seek and one read."""
    with sf.SoundFile(str(path)) as f:
        first = min(max(int(round(start_s * f.samplerate)), 0), f.frames)
        f.seek(first)
        count = max(min(int(round((end_s - start_s) * f.samplerate)), f.frames - first), 0)
        return f.read(count, dtype="float32", always_2d=True), f.samplerate


def fold(audio: np.ndarray, layout_name: str = "") -> tuple[np.ndarray, str]:
    """(frames, channels) → what the excerpt plays and how it got there: mono and stereo as they are, 5.0 / 5.1 /
    7.1 by downmix.stereo_gains (ITU-R BS.775-3, LFE left out), anything else as the mean of its channels."""
    channels = audio.shape[1]
    if channels <= 2:
        return audio, "mono" if channels == 1 else "stereo as delivered"
    layout = find_layout(layout_name or None, channels) or find_layout(None, channels)
    if layout is not None and layout.name in FOLDS:
        return audio @ stereo_gains(layout), (f"stereo fold-down of {layout.name} by ITU-R BS.775-3 "
                                              "(C and surrounds −3 dB, LFE left out)")
    return audio.mean(axis=1, keepdims=True), f"mono: the mean of {channels} channels"


def encode_opus(stems: Mapping[str, np.ndarray], rate: int, kbps: int = OPUS_KBPS) -> dict[str, bytes]:
    """Each (frames, channels) float32 of `stems` (same frames and channels) → an Opus stream in WebM (what
    Chromium, Firefox and Safari play), at `kbps` kb/s (constrained VBR) for stereo and half that for mono. One
    ffmpeg call: the stems go in side by side on stdin and `pan` takes each one's channels to its own output,
    written to a temporary file so the container carries its duration."""
    keys = list(stems)
    channels = stems[keys[0]].shape[1]
    if any(a.shape != stems[keys[0]].shape for a in stems.values()):
        raise ValueError(f"excerpts differ in shape: {', '.join(f'{k} {a.shape}' for k, a in stems.items())}")
    bitrate = kbps if channels > 1 else max(kbps // 2, 16)
    pans = [f"[s{i}]pan={'stereo' if channels == 2 else 'mono'}|"
            + "|".join(f"c{c}=c{i * channels + c}" for c in range(channels)) + f"[o{i}]" for i in range(len(keys))]
    graph = f"[0:a]asplit={len(keys)}" + "".join(f"[s{i}]" for i in range(len(keys))) + ";" + ";".join(pans)
    with tempfile.TemporaryDirectory(prefix="reelsplit-excerpt-") as tmp:
        outs = [Path(tmp) / f"{i}.webm" for i in range(len(keys))]
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "f32le", "-ar", str(rate),
               "-ac", str(channels * len(keys)), "-i", "pipe:0", "-filter_complex", graph]
        for i, out in enumerate(outs):
            cmd += ["-map", f"[o{i}]", "-c:a", "libopus", "-b:a", f"{bitrate}k", "-vbr", "constrained",
                    "-application", "audio", "-map_metadata", "-1", "-fflags", "+bitexact", "-f", "webm", str(out)]
        side_by_side = np.concatenate([stems[k] for k in keys], axis=1)
        ffmpeg.run(cmd, input=np.ascontiguousarray(side_by_side, dtype="<f4").tobytes(), timeout=120)
        return {key: out.read_bytes() for key, out in zip(keys, outs)}


def _power_db(mono: np.ndarray, rate: int, n: int = 2048, hop: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequencies Hz, frame times s, power dB (freq, frames)) of a Hann-windowed STFT."""
    if mono.size < n:
        mono = np.pad(mono, (0, n - mono.size))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)).T ** 2
    return (np.fft.rfftfreq(n, 1 / rate), (np.arange(frames.shape[0]) * hop + n / 2) / rate,
            10 * np.log10(power + 1e-20))


def spectrogram_png(stems: Mapping[str, np.ndarray], rate: int, start_s: float,
                    mark: tuple[float, float] | None = None) -> bytes:
    """PNG (640 × 280 px, 48 colours) of DX over M&E on a log-frequency axis (40 Hz to 20 kHz), one shared dB
    scale so their levels compare; x in seconds of media time, `mark` (the event) between dashed lines.
    `stems` maps "DX"/"ME" to (frames, channels)."""
    rows = [(key, label) for key, label in (("DX", "DX"), ("ME", "M&E")) if key in stems]
    top_hz = min(20000.0, rate / 2)
    grid = np.geomspace(40.0, top_hz, _SPEC_ROWS)        # image rows: log-spaced frequencies
    images = {}
    for key, _ in rows:
        freqs, times, power = _power_db(stems[key].mean(axis=1), rate)
        images[key] = power[np.minimum(np.searchsorted(freqs, grid), freqs.size - 1)]
    top = max(float(image.max()) for image in images.values())
    extent = (start_s + times[0], start_s + times[-1], math.log10(40.0), math.log10(top_hz))
    fig = Figure(figsize=_SPEC_SIZE_IN, dpi=_SPEC_DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(rows), 1, sharex=True))
    for ax, (key, label) in zip(axes, rows):
        ax.imshow(images[key], origin="lower", aspect="auto", extent=extent, cmap="magma",
                  vmin=top - _SPEC_RANGE_DB, vmax=top, interpolation="nearest")
        ticks = [t for t in (100, 1000, 10000) if 40 <= t <= top_hz]
        ax.set_yticks([math.log10(t) for t in ticks], [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
        ax.set_ylabel(f"{label}\nHz", fontsize=8)
        ax.tick_params(labelsize=7)
        if mark is not None:
            for x in mark:
                ax.axvline(x, color="#7fffd4", lw=1.0, ls="--")
    axes[-1].set_xlabel("media time (s)", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_SPEC_DPI)
    return _palette_png(buf.getvalue())


def _palette_png(png: bytes) -> bytes:
    """The PNG re-encoded with a _SPEC_COLOURS-colour palette (a spectrogram's noise makes full-colour PNGs big)."""
    from PIL import Image  # matplotlib's own dependency
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=_SPEC_COLOURS).save(out, format="PNG", optimize=True)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# one reel


def _read_folded(wavs: Mapping[str, str | Path], span: tuple[float, float], layout: str
                 ) -> tuple[dict[str, np.ndarray], int, str]:
    """The span of each stem in `wavs` (MIX, DX, ME), folded to stereo or mono and cut to one length; the rate;
    how it was folded."""
    folded, how, rate = {}, "", 0
    for key in STEM_KEYS:
        if key in wavs:
            samples, rate = read_span(wavs[key], *span)
            folded[key], how = fold(samples, layout)
    frames = min(a.shape[0] for a in folded.values())
    return {k: a[:frames] for k, a in folded.items()}, rate, how


def _spectrogram(folded: Mapping[str, np.ndarray], rate: int, span: tuple[float, float],
                 mark: tuple[float, float] | None, listed: Listed | None) -> bytes:
    """An event's spectrogram (b"" for a dialogue line, or without DX and M&E)."""
    return spectrogram_png(folded, rate, span[0], mark) if listed is not None and {"DX", "ME"} & set(folded) else b""


def cut(wavs: Mapping[str, str | Path], span: tuple[float, float], layout: str, title: str,
        mark: tuple[float, float] | None = None, listed: Listed | None = None) -> tuple[Excerpt, str]:
    """The excerpt `span` of each stem in `wavs` (MIX, DX, ME), folded and encoded, with a spectrogram when it is
    an event's; and how it was folded."""
    made, how = _cut_all(wavs, [(span, title, mark, listed)], layout)
    return made[0], how


def reel_seconds(wavs: Mapping[str, str | Path]) -> float:
    """The written stems' duration (the shortest of MIX, DX, ME), from their headers."""
    return min(sf.info(str(wavs[k])).duration for k in STEM_KEYS if k in wavs)


def event_title(item: Listed) -> str:
    e = item.event
    where = " ".join(p for p in (e.stem, e.channel) if p)
    at = item.tc_in or f"{e.start_s:.2f} s"
    return f"{e.kind} at {at}{' on ' + where if where else ''}{' (fails)' if item.fails else ''}"


def listen(events_csv: str | Path | None, wavs: Mapping[str, str | Path] | None, *, layout: str = "",
           lines: Sequence[tuple[str, float, str]] = (), speech: Sequence[tuple[float, float]] = (),
           fails: Callable[[QcEvent], bool] | None = None) -> Listening:
    """A reel's Listening: its events (from `events_csv`, which may be "" or missing: then none) and excerpts of
    the stems in `wavs` (None or empty: none, and the note says so) at the worst events and a few dialogue
    lines. A file that cannot be read gives a note, not an exception: the report of a run never fails on it."""
    fails = fails or (lambda e: False)
    notes, listed = [], []
    if events_csv and Path(events_csv).is_file():
        try:
            listed = read_listed(events_csv, fails)
        except (OSError, ValueError, KeyError, csv.Error) as exc:
            notes.append(f"events file {events_csv} unreadable: {exc}")
    elif events_csv:
        notes.append(f"no events file at {events_csv}")
    shown = tuple(sorted(ranked(listed)[:MAX_TABLE_ROWS], key=lambda i: (i.event.start_s, i.event.kind)))
    stems = {k: v for k, v in (wavs or {}).items() if k in STEM_KEYS}
    if not stems:
        notes.append("no audio excerpts: this run did not write the stems (a resumed or skipped reel)")
        return Listening(shown, len(listed), note="; ".join(notes), source=str(events_csv or ""))
    try:
        excerpts, how = _excerpts(stems, listed, layout, lines, speech)
    except (OSError, RuntimeError, ValueError, FfmpegError) as exc:
        notes.append(f"no audio excerpts: {exc}")
        excerpts, how = (), ""
    return Listening(shown, len(listed), tuple(excerpts), how, "; ".join(notes), str(events_csv or ""))


def _excerpts(stems: Mapping[str, str | Path], listed: Sequence[Listed], layout: str,
              lines: Sequence[tuple[str, float, str]], speech: Sequence[tuple[float, float]]
              ) -> tuple[list[Excerpt], str]:
    """The excerpts at the worst events and a few lines, as `cut` makes them, with the encoding (ffmpeg
    processes, ENCODERS at once) running while the spectrograms are drawn here: 3.0 → 1.8 s for the seven of
    a 60-s reel on 2 cores (median of 5), the same bytes. Matplotlib draws in this thread only (it is not thread-safe)."""
    duration = reel_seconds(stems)
    picks = event_spans(listed, duration)
    jobs = [(span, event_title(item), (item.event.start_s, item.event.end_s), item) for span, item in picks]
    jobs += [(span, title, (start, start), None)
             for span, title, start in line_spans(lines, speech, duration, [s for s, _ in picks])]
    return _cut_all(stems, jobs, layout)


def _cut_all(stems: Mapping[str, str | Path], jobs: Sequence[tuple], layout: str) -> tuple[list[Excerpt], str]:
    """`cut` for each job (span, title, mark, listed), in order: the encoding (ffmpeg processes, ENCODERS at once)
    runs while the spectrograms are drawn in this thread."""
    out, how = [], ""
    with ThreadPoolExecutor(ENCODERS, thread_name_prefix="reelsplit-excerpt") as encoder:
        parts = []
        for span, title, mark, item in jobs:
            folded, rate, how = _read_folded(stems, span, layout)
            parts.append((span, title, mark, item, folded, rate, encoder.submit(encode_opus, folded, rate)))
        for span, title, mark, item, folded, rate, audio in parts:
            spectrogram = _spectrogram(folded, rate, span, mark, item)
            out.append(Excerpt(span[0], span[1], title, audio.result(), spectrogram, mark, item))
    return out, how
