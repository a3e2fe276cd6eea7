"""The iXML chunk of a broadcast WAV: the start timecode, its rate and the channel names that Pro Tools,
Resolve and Avid read, and appending a chunk to a finished WAV or RF64 file with its sizes fixed.

iXML is Gallery's open specification (http://www.gallery.co.uk/ixml/, "Individual Object Details"): one
<BWFXML> document; <SPEED> holds TIMECODE_RATE (a fraction, "24000/1001"), TIMECODE_FLAG (DF or NDF) and the
start as TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI / _LO (the upper and lower 32 bits of the sample count) at
TIMESTAMP_SAMPLE_RATE; <TRACK_LIST> holds TRACK_COUNT and per channel a <TRACK> with CHANNEL_INDEX,
INTERLEAVE_INDEX (1-based position in the file) and NAME. RIFF chunks are word-aligned (a pad byte after an
odd size); an RF64 file keeps its RIFF size in the `ds64` chunk (EBU Tech 3306).
"""
from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import BinaryIO, Sequence

from .errors import OutputError
from .timecode import StartTimecode

IXML_VERSION = "2.10"
_U32 = 0xFFFFFFFF


def ixml_document(names: Sequence[str], sample_rate: int, bit_depth: int, start: StartTimecode | None) -> bytes:
    """The iXML document (UTF-8) of a file whose channels are `names` in order, at `sample_rate` Hz and
    `bit_depth` bits, starting at `start` (SPEED's timestamp; TIMECODE_RATE and _FLAG when it has a rate)."""
    root = ET.Element("BWFXML")
    ET.SubElement(root, "IXML_VERSION").text = IXML_VERSION
    speed = ET.SubElement(root, "SPEED")
    fields = []
    if start is not None and start.rate is not None:
        fps = f"{start.rate.fps.numerator}/{start.rate.fps.denominator}"
        fields += [("MASTER_SPEED", fps), ("CURRENT_SPEED", fps), ("TIMECODE_RATE", fps),
                   ("TIMECODE_FLAG", "DF" if start.rate.drop else "NDF")]
    fields += [("FILE_SAMPLE_RATE", sample_rate), ("AUDIO_BIT_DEPTH", bit_depth)]
    if start is not None:
        samples = start.samples(sample_rate)
        fields += [("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI", samples >> 32),
                   ("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO", samples & _U32), ("TIMESTAMP_SAMPLE_RATE", sample_rate)]
    for tag, value in fields:
        ET.SubElement(speed, tag).text = str(value)
    tracks = ET.SubElement(root, "TRACK_LIST")
    ET.SubElement(tracks, "TRACK_COUNT").text = str(len(names))
    for i, name in enumerate(names, start=1):
        track = ET.SubElement(tracks, "TRACK")
        for tag, value in (("CHANNEL_INDEX", i), ("INTERLEAVE_INDEX", i), ("NAME", name)):
            ET.SubElement(track, tag).text = str(value)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def append_chunk(path: Path, chunk_id: bytes, payload: bytes, *, riff_limit: int = _U32) -> None:
    """Append chunk `chunk_id` holding `payload` to the WAV (RIFF or RF64) file `path`, word-aligned, and fix
    the file's size: the RIFF header's, or the ds64 chunk's in an RF64 file. A RIFF file that would pass 4 GiB
    (`riff_limit`, a parameter for tests) becomes RF64 in the JUNK chunk ffmpeg reserves for it; without that
    chunk it is an OutputError, as is anything that is not a well-formed WAV."""
    path = Path(path)
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise OutputError("cannot add the iXML chunk: not a RIFF/RF64 WAVE file", path)
        end = fh.seek(0, 2)
        declared = struct.unpack("<I", head[4:8])[0]
        if head[:4] == b"RIFF" and declared + 8 + (declared & 1) != end + (end & 1):
            raise OutputError(f"cannot add the iXML chunk: the RIFF header says {declared + 8} bytes, the file "
                              f"has {end}", path)
        chunk = b"\0" * (end & 1) + chunk_id + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
        fh.write(chunk)
        size = end + len(chunk) - 8
        if head[:4] == b"RF64":
            _set_ds64(fh, path, riff_size=size)
        elif size <= riff_limit:
            fh.seek(4)
            fh.write(struct.pack("<I", size))
        else:
            _to_rf64(fh, path, size)


def _chunks(fh: BinaryIO, end: int) -> dict[bytes, tuple[int, int]]:
    """{chunk id: (offset of its data, its size)} of a RIFF file's top-level chunks (the first of each id)."""
    found, pos = {}, 12
    while pos + 8 <= end:
        fh.seek(pos)
        cid, size = struct.unpack("<4sI", fh.read(8))
        found.setdefault(cid, (pos + 8, size))
        pos += 8 + size + (size & 1)
    return found


def _set_ds64(fh: BinaryIO, path: Path, *, riff_size: int) -> None:
    """Write `riff_size` into the ds64 chunk, which EBU Tech 3306 puts first, right after WAVE."""
    fh.seek(12)
    cid, size = struct.unpack("<4sI", fh.read(8))
    if cid != b"ds64" or size < 24:
        raise OutputError("cannot add the iXML chunk: an RF64 file without its ds64 chunk first", path)
    fh.write(struct.pack("<Q", riff_size))


def _to_rf64(fh: BinaryIO, path: Path, riff_size: int) -> None:
    """Turn a RIFF file that has grown past 4 GiB into RF64: its leading JUNK chunk (28 bytes, reserved by
    ffmpeg's `-rf64 auto`) becomes ds64 (RIFF size, data size, sample count, no table) and the 32-bit sizes
    say 0xFFFFFFFF, as EBU Tech 3306 asks."""
    chunks = _chunks(fh, riff_size + 8)
    junk, fmt, data = chunks.get(b"JUNK"), chunks.get(b"fmt "), chunks.get(b"data")
    if junk is None or junk[0] != 20 or junk[1] < 28 or fmt is None or data is None:
        raise OutputError("cannot add the iXML chunk: the file would pass the 4 GiB RIFF limit and has no room "
                          "reserved for an RF64 ds64 chunk", path)
    fh.seek(fmt[0] + 12)
    block_align = struct.unpack("<H", fh.read(2))[0]
    fh.seek(0)
    fh.write(b"RF64" + struct.pack("<I", _U32))
    fh.seek(12)
    fh.write(b"ds64" + struct.pack("<IQQQI", junk[1], riff_size, data[1], data[1] // max(block_align, 1), 0))
    fh.seek(data[0] - 4)
    fh.write(struct.pack("<I", _U32))
