"""Known words for the recognition tests: Asterisk's recorded English prompts (a voice talent; Debian's
asterisk-core-sounds-en-wav) and their texts, and a word error rate by edit distance over normalised words (an
independent check: not jiwer, which the benchmark uses)."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

PROMPTS = Path("/usr/share/asterisk/sounds/en")
TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def prompt_texts() -> dict[str, str]:
    """Prompt name → what is said in it, from the package's text list."""
    texts = {}
    for line in gzip.open(TEXTS, "rt", encoding="utf-8", errors="replace"):
        m = re.match(r"^([\w/-]+):\s+(.+)$", line.strip())
        if m:
            texts[m[1]] = m[2]
    return texts


def words(text: str) -> list[str]:
    """Lower case, punctuation dropped ("#" read as "pound", as the prompts say it)."""
    return re.sub(r"[^\w' ]+", " ", text.lower().replace("#", " pound ")).split()


def word_error_rate(ref: str, hyp: str) -> float:
    """(substitutions + deletions + insertions) / words of `ref`, by edit distance over `words`."""
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, d[0] = d[:], i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return d[len(h)] / max(1, len(r))
