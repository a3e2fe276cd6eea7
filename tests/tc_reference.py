"""Independent references for the timecode tests, written from the specifications, not from reelsplit's code:
SMPTE ST 12-1 labels of a frame count (drop frame the textbook way) and a reader of broadcast WAV metadata:
the RIFF/RF64 chunk walk (EBU Tech 3306: an RF64 file's real sizes are in its ds64 chunk),
the bext chunk (EBU Tech 3285: Description 256, Originator 32, OriginatorReference 32, OriginationDate 10,
OriginationTime 8 bytes, then TimeReferenceLow and TimeReferenceHigh, 32-bit little-endian each) and the iXML
chunk (Gallery's iXML: one <BWFXML> document).
"""
from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


def smpte_label(frame: int, nominal: int, drop: int) -> str:
    """The label of frame number `frame` at `nominal` frames per timecode second, `drop` labels skipped at each
    minute but every tenth (2 at 29.97 DF, 4 at 59.94 DF, 0 for non-drop)."""
    if drop:
        per_10min, per_min = nominal * 600 - 9 * drop, nominal * 60 - drop
        tens, rest = divmod(frame, per_10min)
        frame += 9 * drop * tens + (drop * ((rest - drop) // per_min) if rest > drop else 0)
    ff, secs = frame % nominal, frame // nominal
    sep = ";" if drop else ":"
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}{sep}{ff:02d}"


@dataclass(frozen=True)
class Bwf:
    form: str                        # "RIFF" or "RF64"
    riff_size: int                   # as the header (or ds64) declares it
    file_size: int
    chunks: dict[str, bytes]         # chunk id -> its data (the data chunk: only its length in `data_size`)
    data_size: int

    @property
    def time_reference(self) -> int:
        low, high = struct.unpack_from("<II", self.chunks["bext"], 256 + 32 + 32 + 10 + 8)
        return low + (high << 32)

    @property
    def description(self) -> str:
        return self.chunks["bext"][:256].split(b"\0")[0].decode("ascii")

    @property
    def ixml(self) -> ET.Element:
        return ET.fromstring(self.chunks["iXML"].rstrip(b"\0"))

    def speed(self, tag: str) -> str | None:
        node = self.ixml.find(f"SPEED/{tag}")
        return None if node is None else node.text

    @property
    def ixml_samples(self) -> int:
        return (int(self.speed("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI")) << 32) + int(
            self.speed("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO"))

    @property
    def track_names(self) -> list[tuple[int, int, str]]:
        """(CHANNEL_INDEX, INTERLEAVE_INDEX, NAME) per TRACK, in document order."""
        return [(int(t.findtext("CHANNEL_INDEX")), int(t.findtext("INTERLEAVE_INDEX")), t.findtext("NAME"))
                for t in self.ixml.findall("TRACK_LIST/TRACK")]


def read_bwf(path: Path) -> Bwf:
    """Walk every top-level chunk of a RIFF or RF64 WAVE file; AssertionError if the walk does not end exactly
    at the end of the file the header declares."""
    raw = Path(path).read_bytes()
    form, size, wave = struct.unpack_from("<4sI4s", raw, 0)
    assert form in (b"RIFF", b"RF64") and wave == b"WAVE", (form, wave)
    ds64 = None
    if form == b"RF64":
        cid, _ = struct.unpack_from("<4sI", raw, 12)
        assert cid == b"ds64" and size == 0xFFFFFFFF
        ds64 = struct.unpack_from("<QQQ", raw, 20)      # riffSize, dataSize, sampleCount
        size = ds64[0]
    chunks, data_size, pos = {}, 0, 12
    while pos < size + 8:
        cid, n = struct.unpack_from("<4sI", raw, pos)
        if cid == b"data":
            data_size = ds64[1] if ds64 and n == 0xFFFFFFFF else n
            n = data_size
        else:
            chunks[cid.decode("ascii")] = raw[pos + 8: pos + 8 + n]
        pos += 8 + n + (n & 1)
    assert pos == size + 8, f"chunks end at {pos}, the header says {size + 8}"
    return Bwf(form.decode(), size, len(raw), chunks, data_size)
