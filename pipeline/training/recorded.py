"""Recorded voices from Debian packages, for the training corpus's dialogue (train split only; issue #18).

The corpus's other voices are espeak-ng and one Asterisk voice talent; these are people:
- **Flight of the Amazon Queen** (`flight-of-the-amazon-queen`, the freeware CD version of the 1995 game by John
  Passfield and Steven Stamatiadis; its own licence: free redistribution and modification, no fee for the game
  itself): every line of the game voiced by actors, 6,745 lines, about 4.6 hours, 11,025 Hz mono MP3 at 16 kb/s
  (so band-limited to 5.5 kHz and coloured by the codec). `queen.1c` is ScummVM's rebuilt resource file
  (scummvm-tools `compress_queen`, read by ScummVM's engines/queen/resource.cpp): "QTBL", a 6-byte version, 2
  bytes, a compression byte (1 = MP3), a big-endian uint16 entry count, then per entry a 12-byte NUL-padded name,
  a bundle byte and big-endian uint32 offset and size. The speech lines are the `.SB` entries, less the 118 named
  digits and S's only ("1028SSSS.SB"): those are sound effects (silero-vad hears speech in under 30 % of 108 of
  them, median 0 %, against none of 60 other entries drawn at random).
- **Hedgewars** (`hedgewars-data`, sounds under GFDL-1.3): the hedgehogs' voice packs, one speaker each, short
  shouted or spoken exclamations at 44.1/48 kHz. "Robot" (a processed voice) and "Singer" (sung, kept for the
  songs check in benchmarks/songs.py) are left out.

Nothing here reads the voices the benchmarks test on (HELD_OUT_PACKAGES, benchmarks/real_set.py): they stay out of
training. Which actor speaks which Queen line is not recorded in the file, so these voices are used for train only,
never for the corpus's eval split.
"""
from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import MediaError

QUEEN = Path("/usr/share/scummvm/flight-of-the-amazon-queen/queen.1c")
HEDGEWARS = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
HEDGEWARS_SKIP = {"Robot", "Singer"}
# package -> licence, as its Debian copyright file states it
PACKAGES = {"flight-of-the-amazon-queen": "Flight-of-the-Amazon-Queen-License (free redistribution, modification "
                                          "allowed; /usr/share/doc/flight-of-the-amazon-queen/copyright)",
            "hedgewars-data": "GFDL-1.3 (/usr/share/doc/hedgewars-data/copyright)"}
# the voices benchmarks/real_set.py tests on: never a training source
HELD_OUT_PACKAGES = ("ktuberling-data", "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-it-wav",
                     "asterisk-core-sounds-ru-wav")
MIN_LINE_S = 0.3
QUEEN_EFFECTS = re.compile(r"\d+S+\.SB")  # sound effects among the .SB entries


@dataclass(frozen=True)
class Line:
    """One recorded line: where it comes from ("queen:<entry>" or "hedgewars:<pack>/<file>") and its speaker
    group (a Hedgewars pack; "queen" for the game's cast)."""

    name: str
    speaker: str

    @property
    def package(self) -> str:
        """The Debian package the line comes from."""
        return "flight-of-the-amazon-queen" if self.name.startswith("queen:") else "hedgewars-data"


def require() -> None:
    """Raise MediaError naming the apt packages when the recorded voices are not installed."""
    if not QUEEN.is_file() or not HEDGEWARS.is_dir():
        raise MediaError("the recorded voices are not installed (Debian: apt-get install -y "
                         + " ".join(PACKAGES) + ")", QUEEN if not QUEEN.is_file() else HEDGEWARS)


@lru_cache(maxsize=1)
def queen_table() -> dict[str, tuple[int, int]]:
    """The `.SB` (speech) entries of queen.1c: name -> (offset, size); MediaError if it is not MP3 speech."""
    with open(QUEEN, "rb") as f:
        head = f.read(15)
        if len(head) < 15 or head[:4] != b"QTBL" or head[12] != 1:
            raise MediaError(f"{QUEEN}: not ScummVM's MP3-compressed Queen resource file", QUEEN)
        count = struct.unpack(">H", head[13:15])[0]
        table = f.read(21 * count)
    if len(table) < 21 * count:
        raise MediaError(f"{QUEEN}: its resource table is cut short", QUEEN)
    out = {}
    for i in range(count):
        entry = table[21 * i: 21 * (i + 1)]
        name = entry[:12].split(b"\0")[0].decode("ascii", "replace")
        offset, size = struct.unpack(">II", entry[13:21])
        if name.endswith(".SB") and size > 0 and not QUEEN_EFFECTS.fullmatch(name):
            out[name] = (offset, size)
    return out


def lines() -> list[Line]:
    """Every usable line, sorted by name."""
    require()
    out = [Line(f"queen:{name}", "queen") for name in queen_table()]
    for pack in sorted(p for p in HEDGEWARS.iterdir() if p.is_dir() and p.name not in HEDGEWARS_SKIP):
        out += [Line(f"hedgewars:{pack.name}/{f.name}", pack.name) for f in sorted(pack.glob("*.ogg"))]
    return sorted(out, key=lambda line: line.name)


def read(line: Line, rate: int) -> np.ndarray:
    """The line as mono float32 (samples,) at `rate` (soxr); MediaError if it cannot be decoded."""
    kind, _, rel = line.name.partition(":")
    try:
        if kind == "queen":
            offset, size = queen_table()[rel]
            with open(QUEEN, "rb") as f:
                f.seek(offset)
                x, sr = sf.read(io.BytesIO(f.read(size)), dtype="float32", always_2d=True)
        else:
            x, sr = sf.read(HEDGEWARS / rel, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, KeyError, sf.LibsndfileError) as exc:
        raise MediaError(f"cannot decode the recorded line {line.name}: {exc}") from exc
    mono = x.mean(axis=1)
    return (mono if sr == rate else soxr.resample(mono, sr, rate)).astype(np.float32)
