"""pipeline.subtitles: events cut and timed by the timed-text rules on a realistic transcript, and the SRT, WebVTT
and TTML (IMSC 1.1) files read back by independent readers (ffmpeg, pycaption's readers, xml.etree)."""
from __future__ import annotations

import math
import random
import re
import subprocess
import warnings
import xml.etree.ElementTree as ET
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.subtitles import (IMSC11_TEXT, RULES, TT, TTP, Event, break_lines, event_rate, subtitle_events,
                                write_srt, write_ttml, write_webvtt)
from pipeline.words import Line, Transcript, Word

PASSAGE = (
    "Well, I told you before that we would never go back to the old house, because the roof was falling in and "
    "the neighbours had all moved away to the city. Yes. No! Do you really think that is what happened on the "
    "night of the storm when the lights went out across the whole valley? I don't know. Maybe. Listen to me: "
    "if we leave now, before the sun comes up, nobody in the village will notice that the car is gone, and by "
    "the time they do we'll be halfway to the coast with the money in the boot. Oh. Right. Okay, okay, okay. "
    "Mr Abernathy-Worthington-Smythe said the extraordinarily-complicated-arrangements were non-negotiable. "
    "Go. Now. I said go! She looked at him for a long time without saying anything at all, then turned away. "
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z. Of course I remember, it was the summer we met."
)


def realistic_transcript(seed: int = 7, repeats: int = 6) -> Transcript:
    """Dialogue with long lines, fast speech (100-150 ms words), one-letter words, short interjections, pauses
    inside lines and 0.1-3 s between them; each sentence (or two) one recognised line."""
    rng = random.Random(seed)
    sentences = re.findall(r"[^.?!]+[.?!]", PASSAGE * repeats)
    lines, t = [], 0.7
    i = 0
    while i < len(sentences):
        text = " ".join(s.strip() for s in sentences[i: i + rng.choice((1, 1, 2))])
        i += len(text.split(". ")) if ". " in text else 1
        fast = rng.random() < 0.3
        words = []
        for w in text.split():
            d = rng.uniform(0.10, 0.15) if fast else rng.uniform(0.18, 0.08 * len(w) + 0.25)
            words.append(Word(round(t, 3), round(t + d, 3), w, rng.uniform(0.5, 1.0)))
            t += d + (rng.choice((0.02, 0.05, 0.3, 0.9)) if not fast else 0.01)
        lines.append(Line(words[0].start, words[-1].end, text, tuple(words),
                          sum(w.probability for w in words) / len(words)))
        t += rng.choice((0.1, 0.25, 0.6, 1.5, 3.0))
    return Transcript("en", 0.98, tuple(lines), "test", "dx")


def _words(tr: Transcript) -> list[Word]:
    return [w for line in tr.lines for w in line.words]


FPS = ["23.976", "25", "29.97", None]


@pytest.mark.parametrize("fps", FPS)
def test_events_follow_the_timed_text_rules(fps):
    tr = realistic_transcript()
    events = subtitle_events(tr, fps)
    rate = event_rate(fps)
    min_f, max_f = math.ceil(Fraction(5, 6) * rate), math.floor(7 * rate)
    words = _words(tr)
    # words never lost, never reordered
    assert " ".join(e.text for e in events) == " ".join(w.text for w in words)
    long_words = {w.text for w in words if len(w.text) > 42}
    at, short = 0, 0
    for i, ev in enumerate(events):
        assert 1 <= len(ev.lines) <= 2 and ev.index == i + 1 and ev.fps == rate
        assert all(len(line) <= 42 or line in long_words for line in ev.lines), ev.lines
        n = len(ev.text.split())
        speech = words[at: at + n]
        at += n
        assert speech[-1].end - speech[0].start <= 7 or n == 1
        assert ev.end_frame - ev.start_frame <= max_f
        # timed to its speech: never more than max_lead_s early
        assert ev.start_frame >= round(speech[0].start * rate) - round(RULES.max_lead_s * rate)
        if i + 1 < len(events):
            assert events[i + 1].start_frame - ev.end_frame >= 2   # 2 frames apart, never overlapping
        if ev.end_frame - ev.start_frame < min_f:                  # short only where the speech leaves no room
            short += 1
            assert i + 1 < len(events) and events[i + 1].start_frame - ev.end_frame == 2
            assert i > 0 and ev.start_frame - events[i - 1].end_frame == 2 or \
                ev.start_frame == max(0, round(speech[0].start * rate) - round(RULES.max_lead_s * rate))
    assert at == len(words)
    assert short <= 0.03 * len(events), f"{short} of {len(events)} events under 5/6 s"


def test_short_lines_are_stretched_or_joined():
    # "Yes." alone with 2 s of silence after it is stretched to 5/6 s; "Oh." "No!" 0.2 s apart are one event
    w = [Word(1.0, 1.3, "Yes.", 0.9), Word(3.3, 3.5, "Oh.", 0.9), Word(3.7, 3.9, "No!", 0.9),
         Word(4.0, 4.5, "Right", 0.9), Word(4.55, 5.0, "then.", 0.9)]
    tr = Transcript("en", 1.0, (Line(1.0, 1.3, "Yes.", w[:1], 0.9), Line(3.3, 3.5, "Oh.", w[1:2], 0.9),
                                Line(3.7, 5.0, "No! Right then.", w[2:], 0.9)), "t", "dx")
    events = subtitle_events(tr, 25)
    assert events[0].text == "Yes." and events[0].start_frame == 25 and events[0].end_frame == 25 + 21
    assert len(events) == 2 and events[1].text == "Oh. No! Right then."


@pytest.mark.parametrize("words, lines", [
    ("I went to the market on Saturday, and then I bought apples for the party",
     ("I went to the market on Saturday,", "and then I bought apples for the party")),
    ("She said that she would come back to the house before the end of the week",
     ("She said that she would come back", "to the house before the end of the week")),
    ("Short line.", ("Short line.",)),
])
def test_lines_break_at_phrase_boundaries(words, lines):
    assert break_lines(words.split()) == lines


def test_a_line_never_ends_on_an_article_when_it_can_be_avoided():
    for text in ("we walked all the way down to the river and sat on the bank for hours",
                 "he is the man who owns a boat in the harbour and a house on the hill",
                 "I think that the people who live in this town are the kindest I have met"):
        top, bottom = break_lines(text.split())
        assert top.split()[-1] not in {"the", "a", "an", "is", "to"} and len(top) <= 42 and len(bottom) <= 42


def test_no_word_times_are_shared_out():
    tr = Transcript("en", 1.0, (Line(2.0, 6.0, "a line the recogniser gave no word times for at all", (), 0.5),),
                    "t", "mix")
    (ev,) = subtitle_events(tr, 24)
    assert ev.text == "a line the recogniser gave no word times for at all"
    assert ev.start_frame == 48 and ev.end_frame == 144


# ------------------------------------------------------------------------------------------- files read back

def _events(fps="23.976") -> tuple[Event, ...]:
    return subtitle_events(realistic_transcript(repeats=2), fps)


def _ms(ev: Event) -> tuple[int, int]:
    return round(ev.start_frame * 1000 / ev.fps), round(ev.end_frame * 1000 / ev.fps)


def _ffmpeg_cues(path, fmt: str) -> list[tuple[int, int, str]]:
    """The cues ffmpeg's own demuxer reads from `path`, re-muxed as WebVTT: (start ms, end ms, text)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-c:s", "webvtt" if fmt == "srt" else "copy",
                          "-f", "webvtt", "-"], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    cues = []
    for block in out.stdout.split("\n\n")[1:]:
        m = re.match(r"(?:(\d+):)?(\d+):(\d+)\.(\d+) --> (?:(\d+):)?(\d+):(\d+)\.(\d+)[^\n]*\n(.*)", block, re.S)
        if m:
            h1, m1, s1, f1, h2, m2, s2, f2, text = m.groups()
            cues.append(((int(h1 or 0) * 3600 + int(m1) * 60 + int(s1)) * 1000 + int(f1),
                         (int(h2 or 0) * 3600 + int(m2) * 60 + int(s2)) * 1000 + int(f2), text.strip()))
    return cues


@pytest.mark.parametrize("fmt, writer", [("srt", write_srt), ("vtt", write_webvtt)])
def test_srt_and_webvtt_read_back_by_ffmpeg_and_pycaption(tmp_path, fmt, writer):
    from pycaption import SRTReader, WebVTTReader

    events = _events()
    path = tmp_path / f"x.{fmt}"
    writer(path, events, "en")
    assert not list(tmp_path.glob(".*partial*"))
    cues = _ffmpeg_cues(path, fmt)
    assert [(a, b) for a, b, _ in cues] == [_ms(e) for e in events]
    assert [text.split("\n") for _, _, text in cues] == [list(e.lines) for e in events]
    reader = SRTReader() if fmt == "srt" else WebVTTReader()
    caps = reader.read(path.read_text(encoding="utf-8")).get_captions("en-US")
    assert [(c.start // 1000, c.end // 1000, c.get_text().split("\n")) for c in caps] == \
        [(*_ms(e), list(e.lines)) for e in events]


def _clock_ms(text: str) -> int:
    h, m, s = text.split(":")
    return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)


@pytest.mark.parametrize("fps, rate, multiplier", [("23.976", "24", "1000 1001"), ("25", "25", None),
                                                   ("29.97", "30", "1000 1001")])
def test_ttml_is_imsc_1_1_text_and_reads_back(tmp_path, fps, rate, multiplier):
    events = _events(fps)
    path = tmp_path / "x.ttml"
    write_ttml(path, events, "en", event_rate(fps), "Reel 1")
    root = ET.parse(path).getroot()
    assert root.tag == f"{{{TT}}}tt"
    assert IMSC11_TEXT in root.get(f"{{{TTP}}}contentProfiles").split()
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert root.get(f"{{{TTP}}}timeBase") == "media" and root.get(f"{{{TTP}}}frameRate") == rate
    assert root.get(f"{{{TTP}}}frameRateMultiplier") == multiplier
    ps = root.findall(f"{{{TT}}}body/{{{TT}}}div/{{{TT}}}p")
    assert [(_clock_ms(p.get("begin")), _clock_ms(p.get("end"))) for p in ps] == [_ms(e) for e in events]
    texts = [[p.text] + [br.tail for br in p.findall(f"{{{TT}}}br")] for p in ps]
    assert texts == [list(e.lines) for e in events]
    regions = {r.get("{http://www.w3.org/XML/1998/namespace}id")
               for r in root.iter(f"{{{TT}}}region")}
    assert all(p.get("region") in regions for p in ps)
    # pycaption's DFXP reader agrees
    from pycaption import DFXPReader
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        caps = DFXPReader().read(path.read_text(encoding="utf-8")).get_captions("en")
    assert [(c.start // 1000, c.end // 1000) for c in caps] == [_ms(e) for e in events]


def test_empty_transcript_writes_empty_files(tmp_path):
    events = subtitle_events(Transcript("en", 1.0, (), "t", "dx"), 25)
    assert events == ()
    write_srt(tmp_path / "e.srt", events)
    write_webvtt(tmp_path / "e.vtt", events)
    write_ttml(tmp_path / "e.ttml", events, "en", Fraction(25))
    assert (tmp_path / "e.srt").read_text() == "" and (tmp_path / "e.vtt").read_text().startswith("WEBVTT")
    assert ET.parse(tmp_path / "e.ttml").getroot().findall(f".//{{{TT}}}p") == []


VOCAB = ["a", "I", "the", "and", "of", "go.", "Yes.", "No!", "well,", "night", "overwhelmingly",
         "extraordinarily-complicated-arrangements-that-no-one-wanted", "what?", "to", "she's"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(VOCAB), st.floats(0, 2.0), st.floats(0, 1.5), st.booleans()),
                min_size=1, max_size=60),
       st.sampled_from(["23.976", "25", "29.97", "60"]))
def test_any_word_stream_keeps_the_hard_rules(spec, fps):
    """Overlapping words, zero-length words, bursts and long silences: words are kept in order, events never
    overlap and are 2 frames apart, never over 7 s, lines within 42 characters (a longer word alone)."""
    t, words, lines = 0.0, [], []
    for text, pause, dur, line_end in spec:
        t += pause - 0.3      # words may overlap the one before
        t = max(t, 0.0)
        words.append(Word(t, t + dur, text, 0.8))
        if line_end:
            lines.append(Line(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words), 0.8))
            words = []
    if words:
        lines.append(Line(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words), 0.8))
    events = subtitle_events(Transcript("en", 1.0, tuple(lines), "t", "dx"), fps)
    assert " ".join(e.text for e in events) == " ".join(text for text, *_ in spec)
    max_f = math.floor(7 * event_rate(fps))
    for a, b in zip(events, events[1:]):
        assert b.start_frame - a.end_frame >= 2
    for e in events:
        assert 0 <= e.start_frame < e.end_frame <= e.start_frame + max_f
        assert all(len(line) <= 42 or " " not in line for line in e.lines) and 1 <= len(e.lines) <= 2
