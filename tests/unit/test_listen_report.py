"""The report's listening part (pipeline.excerpts + htmlreport): QC events in a sortable table with their
timecodes, excerpts of MIX / DX / M&E at the worst events and at dialogue lines (Opus in WebM, embedded), the
spectrograms, the per-reel size cap, and the page playing in headless Chromium."""
from __future__ import annotations

import base64
import dataclasses
import csv
import html
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import excerpts, htmlreport, qcevents, report
from pipeline.excerpts import EXCERPT_S, MAX_EVENT_EXCERPTS, MAX_LINE_EXCERPTS, MAX_TABLE_ROWS, SECTION_CAP_BYTES
from pipeline.profiles import load_profile
from pipeline.qcevents import QcEvent
from pipeline.timecode import StartTimecode

RATE = 48000
SECONDS = 40.0
TONE_S = (8.0, 16.0)                 # DX: a 440 Hz tone only here, so an excerpt's timing can be heard back
CLOCK = StartTimecode.from_label("10:00:00:00", 25)
AUDIO_PREFIX = "data:audio/webm;codecs=opus;base64,"
EVIL = "</td><script>alert('x')</script> & <b>"


def _write_stems(folder: Path, channels: int, seconds: float = SECONDS, seed: int = 0) -> dict[str, str]:
    """MIX = DX + ME as 48 kHz 24-bit WAVs: DX a 440 Hz tone in TONE_S on its first channel (the centre of a
    5.1 sits at index 2: the tone goes there too), ME low noise on every channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    tone = np.where((t >= TONE_S[0]) & (t < TONE_S[1]), 0.25 * np.sin(2 * np.pi * 440 * t), 0.0)
    dx = np.zeros((n, channels))
    dx[:, min(2, channels - 1)] = tone
    me = 0.02 * rng.standard_normal((n, channels))
    paths = {}
    for key, audio in (("DX", dx), ("ME", me), ("MIX", dx + me)):
        paths[key] = str(folder / f"reel_{key}.wav")
        sf.write(paths[key], audio.astype(np.float32), RATE, subtype="PCM_24")
    return paths


def _events(n: int = 6, seconds: float = SECONDS, seed: int = 1) -> list[QcEvent]:
    fixed = [QcEvent("speech_in_me", 11.0, 12.5, "ME", "", -28.0, 3, "speech in M&E: " + EVIL),
             QcEvent("clicks", 30.2, 30.21, "MIX", "L", -12.0, 0, "click of 3 samples"),
             QcEvent("silent_channel", 0.0, 3.0, "DX", "Ls", None, 0, "no signal on Ls")]
    rng = np.random.default_rng(seed)
    kinds = [k for k in qcevents.KINDS if k not in ("speech_in_me",)]
    extra = [QcEvent(kinds[i % len(kinds)], float(s), float(s) + 0.2 + i % 3, "DX" if i % 2 else "ME",
                     "", -40.0 + i % 17, 0, f"event {i}") for i, s in enumerate(rng.uniform(0, seconds - 4, n - 3))]
    return fixed + extra[: max(n - 3, 0)]


def _row(tmp_path: Path, channels: int = 6, events: list[QcEvent] | None = None, seconds: float = SECONDS
         ) -> report.ReportRow:
    wavs = _write_stems(tmp_path, channels, seconds)
    events_path = qcevents.write_events_csv(tmp_path / "reel_qc_events.csv", _events() if events is None else events,
                                            CLOCK)
    row = report.ReportRow(file=str(tmp_path / "reel.mov"), status="ok", title="reel", duration_s=seconds,
                           layout="5.1" if channels == 6 else "stereo", qc="fail",
                           qc_reasons="speech_in_me: 1 event(s), first at 11.00 s on ME (speech)",
                           qc_events=str(events_path), qc_events_n=6)
    hop = int(round((seconds - 3.0) / 0.1)) + 1
    row.plots = {"short_term": {"MIX": np.full(hop, -23.0), "DX": np.full(hop, -26.0), "ME": np.full(hop, -30.0)},
                 "speech": [(8.0, 16.0)], "wavs": wavs,
                 "lines": [(CLOCK.label_at(8.2), 8.2, "Where were you last night?"),
                           (CLOCK.label_at(20.0), 20.0, "Out."), (CLOCK.label_at(36.0), 36.0, "Again?")]}
    return row


def _page(rows: list[report.ReportRow], profile=None) -> str:
    return htmlreport.render_report("r", [report.section(r, profile) for r in rows], profile="p", model="m",
                                    created="now")


def _sections(page: str) -> list[str]:
    return re.findall(r'<section class="file.*?</section>', page, re.S)


def _blocks(page: str) -> list[tuple[str, str, str]]:
    """(number, data-seconds, inner HTML) of each excerpt of section 1."""
    return re.findall(r'<div class="ex[^"]*" id="file-1-ex-(\d+)" data-seconds="([\d.]+)">(.*?)'
                      r'(?=<div class="ex[ "]|</div>\n)', page, re.S)


def _n_excerpts(page: str) -> int:
    return len(re.findall(r'<div class="ex[ "]', page))


def _ffprobe(data: bytes, tmp_path: Path, name: str) -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels:format=duration,"
                          "format_name", "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _decode(data: bytes, tmp_path: Path, name: str) -> np.ndarray:
    """An excerpt decoded back to (frames, channels) float32 at 48 kHz by ffmpeg."""
    path = tmp_path / name
    path.write_bytes(data)
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ar", str(RATE), "-"],
                         capture_output=True, check=True)
    return np.frombuffer(out.stdout, "<f4").reshape(-1, 2)


@pytest.fixture(scope="module")
def reel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reel")
    row = _row(folder)
    return row, _page([row])


def test_events_listed_with_their_timecodes(reel):
    row, page = reel
    with open(row.qc_events, newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    got = re.findall(r'<td class="tc" data-v="([\d.]+)">([^<]*)</td><td class="tc" data-v="[\d.]+">([^<]*)</td>',
                     page)
    assert len(got) == len(written) == 6
    # every event's TC in/out as the CSV has them (an independent read), in time order
    assert [(g[1], g[2]) for g in got] == [(w["start_tc"], w["end_tc"]) for w in written]
    assert [float(g[0]) for g in got] == sorted(float(w["start_s"]) for w in written)
    assert CLOCK.label_at(11.0) in page and CLOCK.label_at(11.0).startswith("10:00:11")
    # the failing kind (named by the reasons; no profile given) is highlighted, and only it
    fails = re.findall(r'<tr class="ev-fail">.*?</tr>', page)
    assert len(fails) == 1 and "speech_in_me" in fails[0]
    assert page.count('<tr class="ev">') == 5


def test_self_contained_and_escaped(reel):
    _, page = reel
    low = page.lower()
    assert "http://" not in low and "https://" not in low and "file:" not in low and "url(" not in low
    assert "<link" not in low and "@import" not in low
    srcs = re.findall(r'\ssrc="([^"]*)"', page)
    assert srcs and all(s.startswith(("data:image/png;base64,", AUDIO_PREFIX)) for s in srcs)
    # the page's own script once; the event's detail stayed text
    assert low.count("<script") == 1 and "alert('x')" not in page
    assert html.escape(EVIL, quote=True) in page


def test_excerpts_are_opus_of_the_right_seconds(reel, tmp_path):
    row, page = reel
    blocks = _blocks(page)
    # 6 events in a 40 s reel: the worst of each kind where windows do not overlap, then dialogue lines
    assert 3 <= len(blocks) <= MAX_EVENT_EXCERPTS + MAX_LINE_EXCERPTS
    lines = [b for b in blocks if "“" in b[2]]         # excerpts at dialogue lines: titled with the line
    assert 1 <= len(lines) <= MAX_LINE_EXCERPTS and "spectrogram" not in "".join(b[2] for b in lines)
    for _, seconds, body in blocks:
        assert float(seconds) == pytest.approx(EXCERPT_S)
        players = re.findall(r'<audio data-stem="(\w+)"[^>]*src="' + re.escape(AUDIO_PREFIX) + r'([^"]+)"', body)
        assert [k for k, _ in players] == ["MIX", "DX", "ME"]
        assert body.count("<audio") == 3 and len(re.findall(r"<audio(?![^>]*hidden)", body)) == 1
    # the worst event (failing speech_in_me, 11.0–12.5 s) comes first, starting on its own stem, the M&E
    first = blocks[0][2]
    assert "speech_in_me" in first and re.search(r'<audio data-stem="ME" controls preload="metadata" src', first)
    data = {k: base64.b64decode(b, validate=True) for k, b in
            re.findall(r'<audio data-stem="(\w+)"[^>]*src="' + re.escape(AUDIO_PREFIX) + r'([^"]+)"', first)}
    probe = _ffprobe(data["DX"], tmp_path, "dx.webm")
    assert probe["streams"][0]["codec_name"] == "opus" and probe["streams"][0]["channels"] == 2
    assert "webm" in probe["format"]["format_name"] or "matroska" in probe["format"]["format_name"]
    assert float(probe["format"]["duration"]) == pytest.approx(EXCERPT_S, abs=0.05)
    # 11.0–12.5 s centred in 5 s: 9.25–14.25 s, all inside DX's tone (8–16 s); the 5.1 centre folds at −3 dB
    dx = _decode(data["DX"], tmp_path, "dx2.webm")
    rms = float(np.sqrt(np.mean(dx[RATE: 4 * RATE] ** 2, axis=0)).mean())
    assert rms == pytest.approx(0.25 / np.sqrt(2) * 10 ** (-3 / 20), rel=0.1)
    # a stereo bit rate near OPUS_KBPS: the whole excerpt in under 1.4x its nominal size
    assert len(data["ME"]) < 1.4 * excerpts.OPUS_KBPS * 1000 / 8 * EXCERPT_S


def test_excerpt_timing_heard_back(tmp_path):
    """An excerpt across the tone's onset: silence before 8 s, the tone after, at the right place in the file."""
    wavs = _write_stems(tmp_path, 2)
    item = excerpts.Listed(QcEvent("bed_in_dx", 7.5, 8.5, "DX"))
    ex, how = excerpts.cut(wavs, excerpts.window(7.5, 8.5, SECONDS), "stereo", "t", (7.5, 8.5), item)
    assert (ex.start_s, ex.end_s) == (5.5, 10.5) and how == "stereo as delivered"
    dx = _decode(ex.audio["DX"], tmp_path, "dx.webm")[:, 1]          # the tone is on R
    before, after = dx[int(0.2 * RATE): int(2.3 * RATE)], dx[int(2.7 * RATE): int(4.8 * RATE)]
    assert np.sqrt(np.mean(before ** 2)) < 1e-3
    assert np.sqrt(np.mean(after ** 2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.1)
    assert ex.spectrogram[:8] == b"\x89PNG\r\n\x1a\n"


def test_reads_only_the_excerpts(tmp_path, monkeypatch):
    row = _row(tmp_path)
    frames_read = []
    real = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        frames_read.append(frames)
        return real(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    listening = report.listening(row)
    assert listening.excerpts
    assert all(0 < f <= EXCERPT_S * RATE for f in frames_read)
    assert sum(frames_read) == len(listening.excerpts) * 3 * EXCERPT_S * RATE


def test_ranking_failing_first_then_leaks():
    ev = [QcEvent("clipping", 15.0, 15.1, level_db=0.5), QcEvent("bed_in_dx", 5.0, 6.0, level_db=-40.0),
          QcEvent("clicks", 9.0, 9.01, level_db=-3.0), QcEvent("speech_in_me", 20.0, 21.0, level_db=-50.0),
          QcEvent("clicks", 30.0, 30.01, level_db=-1.0)]
    listed = [excerpts.Listed(e, fails=e.kind == "clicks") for e in ev]
    order = [i.event for i in excerpts.ranked(listed)]
    assert order == [ev[4], ev[2], ev[1], ev[3], ev[0]]
    # one excerpt per kind before a second of any, none overlapping
    spans = excerpts.event_spans(listed, 40.0, most=4)
    assert [i.event.kind for _, i in spans] == ["clicks", "bed_in_dx", "speech_in_me", "clipping"]
    windows = sorted(s for s, _ in spans)
    assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:]))
    assert all(b - a == pytest.approx(EXCERPT_S) for a, b in windows)


def test_profile_rules_decide_which_events_fail(tmp_path):
    profile = load_profile("ebu-r128")
    settings = qcevents.EventSettings({"clicks": qcevents.Rule("level", -15.0)})
    profile = dataclasses.replace(profile, qc_events=settings)
    row = _row(tmp_path)
    row.qc_reasons = ""
    page = _page([row], profile)
    fails = re.findall(r'<tr class="ev-fail">.*?</tr>', page)
    assert len(fails) == 1 and "click of 3 samples" in fails[0]


def test_five_hundred_events_stay_under_the_cap(tmp_path):
    """500 events over 90 s (room for every excerpt), noise on every stem (what costs Opus and PNG the most)."""
    row = _row(tmp_path, channels=2, events=_events(500, seconds=90.0), seconds=90.0)
    page = _page([row])
    (section,) = _sections(page)
    size = len(section.encode("utf-8"))
    print(f"section with 500 events: {size} bytes (cap {SECTION_CAP_BYTES})")
    assert size <= SECTION_CAP_BYTES
    assert page.count('<tr class="ev') == MAX_TABLE_ROWS
    assert f"the worst {MAX_TABLE_ROWS} of 500" in page
    n = _n_excerpts(page)
    assert MAX_EVENT_EXCERPTS <= n <= MAX_EVENT_EXCERPTS + MAX_LINE_EXCERPTS
    assert page.count("<audio") == 3 * n
    # the overview marks the events: one lane per kind under the 350 px plot
    png = base64.b64decode(re.search(r'<img class="plot"[^>]*src="data:image/png;base64,([^"]+)"', page).group(1))
    width, height = struct.unpack(">II", png[16:24])
    assert width == 1000 and height == 350 + len(qcevents.KINDS) * htmlreport.EVENT_LANE_PX


def test_cap_drops_the_last_excerpts(tmp_path, monkeypatch):
    row = _row(tmp_path)
    full = _sections(_page([row]))[0]
    n = _n_excerpts(full)
    monkeypatch.setattr(htmlreport, "SECTION_CAP_BYTES", len(full.encode()) - 1000)
    smaller = _sections(_page([row]))[0]
    assert len(smaller.encode()) <= len(full.encode()) - 1000
    assert _n_excerpts(smaller) < n and "left out to keep this section under" in smaller


def test_no_audio_or_no_events_said_so(tmp_path):
    row = _row(tmp_path)
    del row.plots["wavs"]
    page = _page([row])
    assert "no audio excerpts" in page and "<audio" not in page
    assert page.count('<tr class="ev') == 6                      # the events are still listed
    row = _row(tmp_path)
    row.qc_events = str(tmp_path / "gone_qc_events.csv")
    page = _page([row])
    assert "no events file at" in page and 'class="events' not in page
    assert _n_excerpts(page) == MAX_LINE_EXCERPTS     # the dialogue lines are still heard
    Path(row.qc_events).write_text("kind,start_s\nclicks,zero\n", encoding="utf-8")
    assert "unreadable" in _page([row])
    row.qc_events = ""
    assert "no events file" not in _page([row])


def test_surround_folds_by_bs775():
    audio = np.zeros((10, 6), np.float32)
    audio[:, 2] = 1.0                                    # C
    audio[:, 3] = 1.0                                    # LFE: left out
    folded, how = excerpts.fold(audio, "5.1")
    assert folded.shape == (10, 2) and np.allclose(folded, 10 ** (-3 / 20))
    assert "BS.775" in how and "LFE left out" in how


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(not CHROMIUM, reason="chromium not installed (Debian package `chromium`)")
def test_plays_in_headless_chromium(reel, tmp_path):
    """Offline, every excerpt's three players load their media and report its duration; the events are there."""
    _, page = reel
    path = tmp_path / "run.html"
    # test-only: once the media are loaded, move the first excerpt's shown player to 2.5 s, click another stem's
    # button and record which player shows and where it stands
    probe = ("<script>setTimeout(function(){var ex=document.querySelector('.ex'),a=ex.querySelector("
             "'audio:not([hidden])');a.currentTime=2.5;ex.querySelector('.abc button:not(.on)').click();"
             "var b=ex.querySelector('audio:not([hidden])');document.body.setAttribute('data-switched',"
             "b.dataset.stem+' '+b.currentTime.toFixed(2)+' '+ex.querySelectorAll('audio:not([hidden])').length+' '"
             "+a.dataset.stem);},3000);</script></body>")
    path.write_text(page.replace("</body>", probe), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=15000", "--dump-dom", path.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    blocks = [(seconds, body) for _, seconds, body in _blocks(dom)]
    assert blocks and len(blocks) == _n_excerpts(page)
    for seconds, body in blocks:
        tags = re.findall(r"<audio[^>]*>", body)
        assert len(tags) == 3
        durations = [re.search(r'data-duration="([\d.]+)"', t) for t in tags]
        assert all(durations), f"a player did not load its media: {[t[:80] for t in tags]}"
        assert all(float(d.group(1)) == pytest.approx(float(seconds), abs=0.05) for d in durations)
    assert dom.count('<tr class="ev') == 6 and CLOCK.label_at(11.0) in dom
    # the switch: another stem shows, alone, at the position the first one was at
    switched = re.search(r'<body data-switched="(\w+) ([\d.]+) (\d) (\w+)"', dom)
    assert switched, "the switch did not run"
    stem, at, shown, before = switched.groups()
    assert stem != before and float(at) == pytest.approx(2.5, abs=0.05) and shown == "1"


def test_dialogue_excerpts_spread_over_the_reel():
    lines = [("", float(t), f"line {t}") for t in range(0, 300, 10)]       # 30 lines over 5 minutes
    spans = excerpts.line_spans(lines, (), 300.0, taken=[(95.0, 100.0)])
    assert [title for _, title, _ in spans] == ["“line 90”", "“line 190”"]   # a third and two thirds in
    assert [span for span, _, _ in spans] == [(89.0, 94.0), (189.0, 194.0)]  # from 1 s before the line
    regions = [(5.0, 6.0), (40.0, 52.0), (100.0, 104.0)]
    spans = excerpts.line_spans((), regions, 120.0, taken=[])
    assert [title for _, title, _ in spans] == ["dialogue 40.0–52.0 s", "dialogue 100.0–104.0 s"]
