"""The iXML chunk and the broadcast WAV's start: the document's fields, appending a chunk to RIFF and RF64 files
(sizes fixed, word-aligned, RIFF past 4 GiB turned into RF64), and WavWriter's bext TimeReference and iXML —
each read back by tests/tc_reference.py (written from EBU Tech 3285/3306 and the iXML spec), soundfile and
ffprobe, never by the writer's own code."""
from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio
from pipeline.errors import OutputError
from pipeline.ixml import append_chunk, ixml_document
from pipeline.timecode import StartTimecode
from tc_reference import read_bwf

RATE = 48000


def _doc(names, rate, bits, start) -> ET.Element:
    return ET.fromstring(ixml_document(names, rate, bits, start))


def test_document_speed_and_track_list():
    doc = _doc(("L", "R", "C", "LFE", "Ls", "Rs"), RATE, 24, StartTimecode.from_label("01:00:00:00", "23.976"))
    assert doc.tag == "BWFXML" and doc.findtext("IXML_VERSION")
    speed = {e.tag: e.text for e in doc.find("SPEED")}
    assert speed["TIMECODE_RATE"] == "24000/1001" and speed["TIMECODE_FLAG"] == "NDF"
    assert speed["MASTER_SPEED"] == speed["CURRENT_SPEED"] == "24000/1001"
    assert (speed["FILE_SAMPLE_RATE"], speed["AUDIO_BIT_DEPTH"], speed["TIMESTAMP_SAMPLE_RATE"]) == ("48000", "24", "48000")
    assert (int(speed["TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI"]), int(speed["TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO"])) == (
        0, 172_972_800)
    assert doc.findtext("TRACK_LIST/TRACK_COUNT") == "6"
    tracks = [(t.findtext("CHANNEL_INDEX"), t.findtext("INTERLEAVE_INDEX"), t.findtext("NAME"))
              for t in doc.findall("TRACK_LIST/TRACK")]
    assert tracks == [(str(i), str(i), n) for i, n in enumerate(("L", "R", "C", "LFE", "Ls", "Rs"), start=1)]


def test_document_drop_frame_and_large_counts():
    doc = _doc(("C",), 192000, 24, StartTimecode.from_label("23:59:59;29", "29.97"))
    speed = {e.tag: e.text for e in doc.find("SPEED")}
    assert speed["TIMECODE_RATE"] == "30000/1001" and speed["TIMECODE_FLAG"] == "DF"
    samples = (int(speed["TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI"]) << 32) + int(speed["TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO"])
    assert int(speed["TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI"]) >= 1       # past 2**32 samples: the HI word is used
    assert samples == StartTimecode.from_label("23:59:59;29", "29.97").samples(192000)


def test_document_without_rate_or_start():
    doc = _doc(("L", "R"), RATE, 24, StartTimecode.from_samples(172_972_800, RATE))   # a BWF with no frame rate
    assert doc.find("SPEED/TIMECODE_RATE") is None and doc.find("SPEED/TIMECODE_FLAG") is None
    assert doc.findtext("SPEED/TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO") == "172972800"
    doc = _doc(("L", "R"), RATE, 24, None)
    assert doc.find("SPEED/TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO") is None and doc.findtext("TRACK_LIST/TRACK_COUNT") == "2"


def _ffmpeg_wav(path, channels, frames, *args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc={'|'.join(['0.1*sin(2*PI*440*t)'] * channels)}:s={RATE}",
                    "-af", f"atrim=end_sample={frames}", "-c:a", "pcm_s24le", "-write_bext", "1", *args, str(path)],
                   check=True)
    return path


def _ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                          str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("rf64", ["auto", "always"])
@pytest.mark.parametrize("payload", [b"<BWFXML/>", b"<BWFXML>odd</BWFXML>"])
def test_append_chunk_keeps_the_file_readable(tmp_path, rf64, payload):
    path = _ffmpeg_wav(tmp_path / "m.wav", 1, 4801, "-rf64", rf64)    # mono 24-bit, odd frames: odd data size
    before, _ = sf.read(str(path), dtype="int32")
    append_chunk(path, b"iXML", payload)
    bwf = read_bwf(path)
    assert bwf.form == ("RF64" if rf64 == "always" else "RIFF") and bwf.riff_size + 8 == bwf.file_size
    assert bwf.chunks["iXML"] == payload                  # an odd payload's pad byte is walked over, not read
    assert bwf.data_size - 4801 * 3 in ((0, 1) if rf64 == "always" else (0,))   # ffmpeg 5.1's ds64 counts the pad
    after, _ = sf.read(str(path), dtype="int32")
    assert np.array_equal(before, after)
    assert int(_ffprobe(path)["streams"][0]["duration_ts"]) == 4801


def test_riff_past_the_limit_becomes_rf64(tmp_path):
    """A RIFF that the chunk would take past 4 GiB (the limit lowered for the test) is rewritten as RF64 in the
    JUNK chunk ffmpeg's `-rf64 auto` reserves; soundfile and ffprobe read the same samples."""
    path = _ffmpeg_wav(tmp_path / "s.wav", 2, 4800, "-rf64", "auto")
    before, _ = sf.read(str(path), dtype="int32")
    append_chunk(path, b"iXML", b"<BWFXML/>", riff_limit=path.stat().st_size)
    bwf = read_bwf(path)
    assert bwf.form == "RF64" and bwf.riff_size + 8 == bwf.file_size and bwf.data_size == 4800 * 6
    assert bwf.chunks["iXML"] == b"<BWFXML/>"
    after, _ = sf.read(str(path), dtype="int32")
    assert np.array_equal(before, after)
    assert int(_ffprobe(path)["streams"][0]["duration_ts"]) == 4800
    bare = _ffmpeg_wav(tmp_path / "bare.wav", 2, 480, "-rf64", "never")     # no JUNK reserved: refused clearly
    with pytest.raises(OutputError, match="4 GiB RIFF limit"):
        append_chunk(bare, b"iXML", b"<BWFXML/>", riff_limit=bare.stat().st_size)


def test_append_chunk_refuses_what_is_not_a_wav(tmp_path):
    other = tmp_path / "x.wav"
    other.write_bytes(b"\0" * 64)
    with pytest.raises(OutputError, match="not a RIFF/RF64 WAVE file"):
        append_chunk(other, b"iXML", b"<BWFXML/>")


@pytest.mark.parametrize("layout, channels, names", [("stereo", 2, ["L", "R"]), ("5.1", 6, ["L", "R", "C", "LFE", "Ls", "Rs"]),
                                                     ("mono", 1, ["C"])])
def test_wav_writer_stamps_time_reference_and_ixml(tmp_path, layout, channels, names):
    start = StartTimecode.from_label("00:59:59;28", "29.97")
    x = (0.1 * np.random.default_rng(1).standard_normal((4801, channels))).astype(np.float32)
    path = audio.write_wav(tmp_path / "s.wav", x, RATE, layout, description=audio.Stamp("reel DX", start))
    bwf = read_bwf(path)
    assert bwf.time_reference == bwf.ixml_samples == 172_796_624
    assert bwf.description == "reel DX" and bwf.speed("TIMECODE_FLAG") == "DF"
    assert bwf.track_names == [(i, i, n) for i, n in enumerate(names, start=1)]
    assert _ffprobe(path)["format"]["tags"]["time_reference"] == "172796624"     # ffmpeg's reading of bext
    y, _ = sf.read(str(path), dtype="float32", always_2d=True)
    assert np.abs(y - x).max() < 2 ** -22


def test_wav_writer_without_start_writes_zero_and_the_track_names(tmp_path):
    path = audio.write_wav(tmp_path / "s.wav", np.zeros((100, 2), np.float32), RATE, "stereo", description="d")
    bwf = read_bwf(path)
    assert bwf.time_reference == 0 and bwf.speed("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO") is None
    assert [n for _, _, n in bwf.track_names] == ["L", "R"]
