"""Speech recognition of a stem over its speech regions (faster-whisper), words kept, in media time.

The VAD's regions are padded, merged and gathered into windows of at most WINDOW_S of speech; each window is read
from the reader region by region, block by block, downmixed to mono over the layout's dialogue channels, resampled
to 16 kHz (pipeline.resample), the regions joined by JOIN_S of silence, and recognised in one call with word
timestamps; every time is mapped back from the window to the reel. Memory: one window (about 2 MB) per recogniser
call at once, never the reel. The language is the one asked for, else detected once per reel on its first speech
and kept for the rest; the windows are recognised as many at once as the recogniser has workers.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from .layout import find_layout
from .loudness import weighted_level
from .progress import report
from .readers import Reader
from .resample import Resampler
from .vad import RegionLike, merge_regions
from .timecode import StartTimecode
from .words import Line, Transcript, Word

SR = 16_000        # Whisper's rate
PAD_S = 0.2        # added before and after each speech region (the VAD's edges are tight)
JOIN_S = 0.3       # silence between the regions of one window, so the recogniser hears a pause
WINDOW_S = 28.0    # speech per recogniser call: one Whisper window (30 s) with room for the pauses
READ_S = 10.0      # seconds read from the reader at a time
LINE_GAP_S = 1.0   # a recogniser segment is split into lines where its words are this far apart in the reel
MIN_WORD_P = 0.01  # words the recogniser itself gives less than this are dropped (a "Hmm." at p = 0.00 in silence)
# Without the temperature fallback (AsrOptions.fallback False), a segment that faster-whisper's defaults would
# have decoded again at a higher temperature is dropped instead: a compression ratio over this (the greedy
# decoding repeats itself) or a mean log-probability under the next
NO_FALLBACK_MAX_COMPRESSION = 2.4
NO_FALLBACK_MIN_LOGPROB = -1.0


@dataclass(frozen=True)
class AsrOptions:
    """`language`: ISO 639-1 ("en"), None to detect it on the reel's first speech; `beam_size` 1 is greedy.
    `fallback` False: one decoding per window at temperature 0, and a segment that would have been decoded again
    at higher temperatures (NO_FALLBACK_*) is dropped — for the QC's question "are there words in the M&E?",
    where the fallback on a window of music or effects costs up to six decodings (17.1 s against 3.2 s through
    `transcribe` for the 24.6-s candidate window of a DFN3 M&E, Whisper base, 2 cores) to find none."""

    language: str | None = None
    beam_size: int = 1
    pad_s: float = PAD_S
    window_s: float = WINDOW_S
    fallback: bool = True


@dataclass(frozen=True)
class Piece:
    """One padded speech region inside a window: its start `at` in the window's audio, [start, end) in the reel."""

    at: float
    start: float
    end: float


def plan_windows(regions: Iterable[RegionLike], duration_s: float, *, pad_s: float = PAD_S,
                 window_s: float = WINDOW_S) -> list[tuple[Piece, ...]]:
    """The regions padded by `pad_s`, clipped to [0, duration_s], merged where they touch, and gathered in order
    into windows of at most `window_s` of speech (a longer region is a window of its own); each piece placed in
    its window's audio after the previous one and JOIN_S of silence."""
    padded = [(max(0.0, s - pad_s), min(duration_s, e + pad_s)) for s, e in merge_regions(regions)]
    windows: list[tuple[Piece, ...]] = []
    current: list[Piece] = []
    for region in merge_regions(r for r in padded if r[1] > r[0]):
        length = region.end_s - region.start_s
        used = sum(p.end - p.start for p in current)
        if current and used + length > window_s:
            windows.append(tuple(current))
            current = []
        at = current[-1].at + (current[-1].end - current[-1].start) + JOIN_S if current else 0.0
        current.append(Piece(at, region.start_s, region.end_s))
    if current:
        windows.append(tuple(current))
    return windows


def dialogue_weights(channels: int, layout: str | None = None) -> np.ndarray:
    """Mono downmix weights (channels,): the mean of the layout's dialogue channels (5.1: C), of every channel
    for a layout we do not know."""
    lay = find_layout(layout, channels)
    keep = list(lay.dialogue) if lay is not None and lay.dialogue else list(range(channels))
    weights = np.zeros(channels, np.float32)
    weights[keep] = 1.0 / len(keep)
    return weights


def read_window(reader: Reader, rate: int, pieces: tuple[Piece, ...], weights: np.ndarray) -> np.ndarray:
    """The window's audio: float32 (n,) at 16 kHz, each piece read READ_S at a time, downmixed by `weights`,
    resampled (soxr, streaming) to exactly its length at 16 kHz, the pieces JOIN_S apart (silence)."""
    out = np.zeros(round((pieces[-1].at + pieces[-1].end - pieces[-1].start) * SR), np.float32)
    block = max(1, round(READ_S * rate))
    for p in pieces:
        a, b = round(p.start * rate), round(p.end * rate)
        n16 = round((p.end - p.start) * SR)
        rs, got = Resampler(rate, SR, 1, length=n16), []
        for start in range(a, b, block):
            got.append(rs.push(reader.read(start, min(block, b - start)) @ weights[:, None]))
        got.append(rs.flush())
        at = round(p.at * SR)
        audio = np.concatenate(got)[:, 0][: out.size - at]
        out[at : at + audio.size] = audio
    return out


def to_media(t: float, pieces: tuple[Piece, ...], *, start: bool = False) -> float:
    """A time in the window's audio (s) as reel time: inside a piece, its start + the offset. A time in the
    silence between two pieces goes to the earlier piece's end, or, for the `start` of a word (the recogniser
    often starts a word where the previous one ended), to the next piece's start."""
    current, following = pieces[0], None
    for p in pieces:
        if t < p.at:
            following = p
            break
        current = p
    inside = t - current.at <= current.end - current.start
    if not inside and start and following is not None:
        return following.start
    return min(current.end, current.start + max(0.0, t - current.at))


def _words(segment, pieces: tuple[Piece, ...]) -> list[Word]:
    words = []
    for w in segment.words or []:
        if w.word.strip() and w.probability >= MIN_WORD_P:
            start = to_media(float(w.start), pieces, start=True)
            words.append(Word(start, max(start, to_media(float(w.end), pieces)), w.word.strip(),
                              float(w.probability)))
    return words


def _split(words: list[Word], texts: list[str]) -> list[Line]:
    """Lines of a segment's words, split where they are LINE_GAP_S apart in the reel; `texts` the recogniser's
    word strings (with their own spacing) joined into each line's text."""
    lines, first = [], 0
    for i in range(1, len(words) + 1):
        if i == len(words) or words[i].start - words[i - 1].end >= LINE_GAP_S:
            group = tuple(words[first:i])
            lines.append(Line(group[0].start, max(w.end for w in group), "".join(texts[first:i]).strip(), group,
                              float(np.mean([w.probability for w in group]))))
            first = i
    return lines


def _segment_lines(segments: Iterable, pieces: tuple[Piece, ...]) -> list[Line]:
    """Lines of one window's recogniser segments, in reel time; segments without words are dropped."""
    lines = []
    for seg in segments:
        words = _words(seg, pieces)
        texts = [w.word for w in (seg.words or []) if w.word.strip() and w.probability >= MIN_WORD_P]
        if words:
            lines += _split(words, texts)
    return lines


def _window(recogniser, audio: np.ndarray, pieces: tuple[Piece, ...], language: str | None,
            options: AsrOptions) -> list[Line]:
    """One window recognised in `language`: its lines in reel time."""
    once = {} if options.fallback else {"temperature": 0.0}
    with recogniser.lock:
        segments, _ = recogniser.model.transcribe(
            audio, language=language, beam_size=options.beam_size, word_timestamps=True, vad_filter=False,
            condition_on_previous_text=False, **once)
        if not options.fallback:
            segments = (seg for seg in segments if _would_stand(seg))
        lines = _segment_lines(segments, pieces)      # the generator runs the decoding
    return lines


def _detect(recogniser, audio: np.ndarray) -> tuple[str, float]:
    """The language of a window and its probability: faster-whisper's own detection (the first 30 s, the
    encoder and one decoder step), what its transcribe does when no language is given."""
    with recogniser.lock:
        language, probability, _ = recogniser.model.detect_language(audio)
    return language, float(probability)


def _would_stand(segment) -> bool:
    """Whether the temperature fallback would have kept this greedy segment (its compression ratio and mean
    log-probability within faster-whisper's default thresholds)."""
    return (getattr(segment, "compression_ratio", 0.0) <= NO_FALLBACK_MAX_COMPRESSION
            and getattr(segment, "avg_logprob", 0.0) >= NO_FALLBACK_MIN_LOGPROB)


def _speech_frames(pieces: tuple[Piece, ...], rate: int) -> int:
    """The reel's frames a window recognises (its pieces, without the joining silence): its progress."""
    return sum(round(p.end * rate) - round(p.start * rate) for p in pieces)


def _score(lines: list[Line]) -> float:
    """The recogniser's confidence in a window's lines: the mean probability of their words (0 for none)."""
    probs = [w.probability for line in lines for w in line.words]
    return float(np.mean(probs)) if probs else 0.0


def transcribe(readers: Reader | dict[str, Reader], rate: int, regions: Iterable[RegionLike], recogniser, *,
               options: AsrOptions = AsrOptions(), layout: str | None = None, source: str = "dx") -> Transcript:
    """What is said over the speech `regions` (seconds): a Transcript of lines and words in reel time.

    `readers`: one reader ((samples, channels) float at `rate` Hz, of `layout`), or several of the same length
    by name ({"dx": …, "mix": …}): then each window is recognised in each and the lines of the one the
    recogniser is most confident in (mean word probability) are kept, and `source` names them ("dx+mix").
    `recogniser`: asr_model.load_recogniser's. The language is options.language, else the one detected on the
    first window (in the first reader; faster-whisper's detection alone, so that no window waits for another's
    recognition), kept for the rest of the reel. The windows are recognised `recogniser.workers` at a time (each
    read under one lock: a reader is one file handle), their lines kept in reel order."""
    readers = readers if isinstance(readers, dict) else {source: readers}
    first = next(iter(readers.values()))
    weights = dialogue_weights(first.channels, layout)
    reading = threading.Lock()
    detected: dict = {}      # the first reader's first window, read once for the detection and kept for its turn

    def recognise(pieces: tuple[Piece, ...], language: str | None) -> list[Line]:
        best = None
        for reader in readers.values():
            with reading:
                audio = detected.pop((id(reader), pieces), None)
                if audio is None:
                    audio = read_window(reader, rate, pieces, weights)
            got = _window(recogniser, audio, pieces, language, options)
            best = got if best is None or _score(got) > _score(best) else best
        return best

    language, probability, lines = options.language, 1.0 if options.language else 0.0, []
    windows = plan_windows(regions, first.frames / rate, pad_s=options.pad_s, window_s=options.window_s)
    total, done = sum(_speech_frames(pieces, rate) for pieces in windows) * len(readers), 0

    def finished(pieces: tuple[Piece, ...], got: list[Line]) -> None:
        nonlocal done
        lines.extend(got)
        done += _speech_frames(pieces, rate) * len(readers)
        report("words", done, total)

    if language is None and windows:    # detected on the first speech (in the first reader), kept for the reel
        detected[(id(first), windows[0])] = read_window(first, rate, windows[0], weights)
        language, probability = _detect(recogniser, detected[(id(first), windows[0])])
    workers = min(getattr(recogniser, "workers", 1), len(windows))
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="asr") as pool:
            for pieces, got in zip(windows, pool.map(lambda w: recognise(w, language), windows)):
                finished(pieces, got)
    else:
        for pieces in windows:
            finished(pieces, recognise(pieces, language))
    return Transcript(language or "", probability, tuple(lines), recogniser.label,
                      source if len(readers) == 1 else "+".join(readers))


def with_levels(transcript: Transcript, reader: Reader, rate: int, layout: str | None = None) -> Transcript:
    """The transcript with each line's level_db: the BS.1770 K-weighted level (loudness.weighted_level) of
    `reader` (the written DX stem) over the line, read line by line."""
    lines = []
    for line in transcript.lines:
        a = round(line.start * rate)
        level = weighted_level(reader.read(a, max(1, round(line.end * rate) - a)), rate, layout)
        lines.append(replace(line, level_db=round(level, 2) if math.isfinite(level) else None))
    return replace(transcript, lines=tuple(lines))


def word_count(transcript: Transcript) -> int:
    return sum(len(line.words) for line in transcript.lines)


def transcript_record(transcript: Transcript, clock: StartTimecode | None = None) -> dict:
    """The transcript as JSON-ready data: language (ISO 639-1 and the 639-2 tag), model, source, and each line
    with its times (media seconds), timecodes on the source's clock (`clock`; empty without one), text,
    confidence, level and words."""
    from dataclasses import asdict

    from .asr_model import iso639_2

    def tc(t: float) -> str:
        return clock.label_at(t) if clock is not None else ""

    lines = [{**{k: v for k, v in asdict(line).items() if k != "words"}, "start_tc": tc(line.start),
              "end_tc": tc(line.end), "words": [asdict(w) for w in line.words]} for line in transcript.lines]
    return {"language": transcript.language, "language_iso639_2": iso639_2(transcript.language),
            "language_probability": round(transcript.language_probability, 4), "model": transcript.model,
            "source": transcript.source, "words": word_count(transcript), "lines": lines}
