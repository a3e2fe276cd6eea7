"""Subtitle events from a transcript, cut and timed by the common timed-text rules, and written as SubRip (.srt),
WebVTT (.vtt) and TTML in the IMSC 1.1 Text Profile (.ttml). Times are media seconds (0 = the first sample) on
the frame grid of the master's frame rate.

The rules (`Rules`), from the Netflix Timed Text Style Guide (General Requirements and English template) and the
BBC Subtitle Guidelines: at most 2 lines of 42 characters; an event lasts 5/6 s to 7 s; at least 2 frames between
events; a line is broken after punctuation, else before a conjunction or preposition, never between an article,
auxiliary or subject pronoun and the word it belongs to, else where the two lines are most even.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

from .outputs import write_text_atomic
from .timecode import Rate, timecode_rate
from .words import Transcript

DEFAULT_FPS = Fraction(24)  # a master with no frame rate: 2 frames at 24 fps (83 ms) is the widest 2-frame gap


@dataclass(frozen=True)
class Rules:
    """Timed-text rules. Durations in seconds; `gap_frames` in frames of the event grid."""

    max_chars: int = 42                 # per line (Netflix English template, "Character Limitation")
    max_lines: int = 2
    min_s: Fraction = Fraction(5, 6)    # 20 frames at 24 fps, 25 at 29.97
    max_s: Fraction = Fraction(7)
    gap_frames: int = 2
    max_lead_s: float = 0.5             # how far an event may start before its speech to reach min_s
    max_pause_s: float = 1.5            # a pause this long between two words always ends the event


RULES = Rules()


@dataclass(frozen=True)
class Event:
    """One subtitle: on screen from frame `start_frame` up to (not including) `end_frame` at `fps`, i.e. from
    `start` to `end` seconds of media time, showing `lines` (1 or 2)."""

    index: int                  # 1, 2, ... in time order
    start_frame: int
    end_frame: int
    fps: Fraction
    lines: tuple[str, ...]

    @property
    def start(self) -> float:
        return float(self.start_frame / self.fps)

    @property
    def end(self) -> float:
        return float(self.end_frame / self.fps)

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def event_rate(fps: Fraction | float | str | Rate | None) -> Fraction:
    """Frames per second of the event grid: the master's rate (any timecode.timecode_rate form), else 24."""
    return DEFAULT_FPS if fps is None else timecode_rate(fps).fps


# ----------------------------------------------------------------------------------------- where to break

_SENTENCE_END = ".?!…"
_CLAUSE_END = ",;:–—"
_CLOSERS = "\"'”’)]»"
# Break before these (Netflix: "before conjunctions, before prepositions").
_BREAK_BEFORE = frozenset("""and but or nor so yet because although though while whereas unless until if when
whenever where wherever whether since after before as than that which who whom whose about above across against
along among around at behind below beneath beside between beyond by despite down during except for from in inside
into like near of off on onto out outside over past through throughout to toward towards under underneath upon
with within without""".split())
# Never break after these (Netflix: not between "a noun and its article", "a verb and its subject pronoun", "a verb
# and its auxiliary, reflexive pronoun or negation").
_GLUE_AFTER = frozenset("""a an the my your his her its our their this that these those i you he she we they it
am is are was were be been being have has had do does did will would shall should can could may might must not
don't doesn't didn't won't can't isn't aren't wasn't weren't i'm you're he's she's we're they're it's i've
you've we've they've i'll you'll he'll she'll we'll they'll i'd you'd he'd she'd we'd they'd to very mr mrs ms
dr""".split())


def _bare(word: str) -> str:
    return word.strip(_CLOSERS + "\"'“‘(¿¡[«").lower().replace("’", "'")


def break_cost(before: str, after: str) -> float:
    """The cost (0 best) of breaking a line or an event between the words `before` and `after`."""
    tail = before.rstrip(_CLOSERS)
    if tail and tail[-1] in _SENTENCE_END:
        return 0.0
    if tail and tail[-1] in _CLAUSE_END:
        return 0.2
    cost = 0.6 if _bare(after) in _BREAK_BEFORE else 1.2
    if _bare(before) in _BREAK_BEFORE:   # a line or event ending on a conjunction or preposition
        cost += 1.0
    return cost + (1.5 if _bare(before) in _GLUE_AFTER else 0.0)


class _Chars:
    """Character counts of runs of words: len(" ".join(words[a:b])) in O(1)."""

    def __init__(self, words: Sequence[str]):
        self.prefix = [0]
        for w in words:
            self.prefix.append(self.prefix[-1] + len(w))

    def span(self, a: int, b: int) -> int:
        return self.prefix[b] - self.prefix[a] + (b - a - 1)


def _layout(words: Sequence[str], chars: _Chars, cuts: Sequence[float], a: int, b: int,
            rules: Rules) -> tuple[float, int] | None:
    """The best way to show words[a:b]: (cost, k) with the line break before word k (k == b: one line), or None
    when they do not fit in two lines. `cuts[k]` is break_cost(words[k-1], words[k])."""
    if chars.span(a, b) <= rules.max_chars:
        return 0.0, b
    if rules.max_lines < 2:
        return None
    best = None
    for k in range(a + 1, b):
        top, bottom = chars.span(a, k), chars.span(k, b)
        if top <= rules.max_chars and bottom <= rules.max_chars:
            cost = cuts[k] + abs(top - bottom) / rules.max_chars
            if best is None or cost < best[0]:
                best = (cost, k)
    return best


def break_lines(words: Sequence[str], rules: Rules = RULES) -> tuple[str, ...] | None:
    """`words` as 1 or 2 display lines of at most rules.max_chars, broken at the best phrase boundary; None when
    they do not fit."""
    words = list(words)
    cuts = [0.0] + [break_cost(words[k - 1], words[k]) for k in range(1, len(words))]
    found = _layout(words, _Chars(words), cuts, 0, len(words), rules)
    if found is None:
        return None
    k = found[1]
    return tuple(" ".join(part) for part in (words[:k], words[k:]) if part)


# ---------------------------------------------------------------------------------------- which words go together

@dataclass(frozen=True)
class _Token:
    text: str
    start: float
    end: float
    line_end: bool  # the last word of a recognised line


def _tokens(transcript: Transcript) -> list[_Token]:
    """Every word of the transcript in order. A line the recogniser gave no word times for is split at spaces and
    its duration shared out by characters."""
    out: list[_Token] = []
    for line in transcript.lines:
        words = [(w.text.strip(), w.start, w.end) for w in line.words if w.text.strip()]
        if not words and line.text.strip():
            texts = line.text.split()
            total, at = sum(len(t) + 1 for t in texts), 0
            for t in texts:
                a = line.start + (line.end - line.start) * at / total
                at += len(t) + 1
                words.append((t, a, line.start + (line.end - line.start) * at / total))
        for i, (text, start, end) in enumerate(words):
            out.append(_Token(text, float(start), max(float(start), float(end)), i == len(words) - 1))
    return out


def _cut_cost(toks: Sequence[_Token], k: int) -> float:
    """Cost of ending an event before token k: the phrase boundary, less for a pause, nothing at a line's end."""
    if toks[k - 1].line_end:
        return 0.0
    pause = max(0.0, toks[k].start - toks[k - 1].end)
    return max(0.0, break_cost(toks[k - 1].text, toks[k].text) - min(pause, 0.5) * 2)


def _short_penalty(toks: Sequence[_Token], a: int, b: int, gap_s: float, rules: Rules) -> float:
    """How far short of rules.min_s the event toks[a:b] stays even when stretched into the room after it and half
    the pause before it (at most max_lead_s), as a cost."""
    room_end = toks[b].start - gap_s if b < len(toks) else math.inf
    before = (toks[a - 1].end + toks[a].start) / 2 if a > 0 else 0.0   # the event before may need the other half
    room_start = max(toks[a].start - rules.max_lead_s, before)
    reach = min(room_end, room_start + float(rules.max_s)) - room_start
    return 6.0 * max(0.0, float(rules.min_s) - reach) / float(rules.min_s)


def _scrap(toks: Sequence[_Token], chars: _Chars, a: int, b: int) -> float:
    """A cost for an event of a few characters cut from a longer recognised line ("Well," alone)."""
    whole = (a == 0 or toks[a - 1].line_end) and toks[b - 1].line_end
    return 0.0 if whole or chars.span(a, b) >= 15 else 1.0


def _groups(toks: Sequence[_Token], fps: Fraction, rules: Rules) -> list[tuple[int, int, int]]:
    """Events as (a, k, b): tokens [a, b), the line break before k (k == b: one line). Dynamic programming over
    where events end: each event fits its lines and lasts at most max_s of speech (a lone word always fits);
    the cost counts events, bad breaks, recognised lines joined into one event, events too short to last
    min_s and scraps of a line."""
    words = [t.text for t in toks]
    chars = _Chars(words)
    cuts = [0.0] + [break_cost(words[k - 1], words[k]) for k in range(1, len(words))]
    gap_s = rules.gap_frames / float(fps)
    n, best, back = len(toks), [0.0] + [math.inf] * len(toks), [(0, 0)] * (len(toks) + 1)
    for b in range(1, n + 1):
        joined = 0  # recognised lines that end inside toks[a:b]: each costs as much as an event of its own
        for a in range(b - 1, -1, -1):
            joined += a < b - 1 and toks[a].line_end
            if a < b - 1 and (chars.span(a, b) > rules.max_lines * (rules.max_chars + 1)
                              or toks[b - 1].end - toks[a].start > rules.max_s
                              or toks[a + 1].start - toks[a].end >= rules.max_pause_s):
                break
            lay = _layout(words, chars, cuts, a, b, rules) if a < b - 1 else (0.0, b)
            if lay is None:
                continue
            cost = (best[a] + 2.0 + 2 * joined + lay[0] + (_cut_cost(toks, a) if a else 0.0)
                    + _short_penalty(toks, a, b, gap_s, rules) + _scrap(toks, chars, a, b))
            if cost < best[b]:
                best[b], back[b] = cost, (a, lay[1])
    groups, b = [], n
    while b > 0:
        a, k = back[b]
        groups.append((a, k, b))
        b = a
    return groups[::-1]


# ---------------------------------------------------------------------------------------------------- timing

def _frames(spans: Sequence[tuple[float, float]], fps: Fraction, rules: Rules) -> list[tuple[int, int]]:
    """(start, end) frames of events whose speech spans `spans` (seconds, in order): speech rounded to the grid;
    starts at least 1 + gap frames apart; each end at most gap frames before the next start. A short event is
    stretched to min_s into the room after it, then (up to max_lead_s) before it, taking back what the event
    before it was stretched by, never below that one's own speech or min_s. None lasts over max_s."""
    gap = rules.gap_frames
    min_f, max_f = math.ceil(rules.min_s * fps), math.floor(rules.max_s * fps)
    lead_f = round(rules.max_lead_s * fps)
    starts = [round(a * fps) for a, _ in spans]
    for i in range(1, len(starts)):
        starts[i] = max(starts[i], starts[i - 1] + 1 + gap)
    out: list[list[int]] = []   # [start, end, end of its own speech]
    for i, (s, (_, end_s)) in enumerate(zip(starts, spans)):
        limit = starts[i + 1] - gap if i + 1 < len(starts) else math.inf
        own = int(min(max(round(end_s * fps), s + 1), limit))
        e = int(max(own, min(s + min_f, limit)))
        if e - s < min_f:   # no room after it: start earlier
            want = max(e - min_f, s - lead_f, 0)
            if out:
                prev = out[-1]
                prev[1] = min(prev[1], max(prev[2], prev[0] + min_f, want - gap))
                want = max(want, prev[1] + gap)
            s = min(s, want)
        out.append([s, e, own])
    return [(s, min(e, s + max_f)) for s, e, _ in out]


def subtitle_events(transcript: Transcript, fps: Fraction | float | str | Rate | None = None,
                    rules: Rules = RULES) -> tuple[Event, ...]:
    """The transcript's words as subtitle events on the frame grid of `fps` (see `event_rate`).

    Every word is in exactly one event, in order (" ".join of the events' text is the transcript's words joined
    by spaces); an event never holds words more than rules.max_pause_s apart, nor more than rules.max_s of
    speech; its lines are at most rules.max_chars (a single word longer than that stands alone on its line).
    Events never overlap and are at least rules.gap_frames apart; each lasts rules.min_s to rules.max_s, except
    where the speech around it leaves no room (then it fills the room there is)."""
    rate = event_rate(fps)
    toks = _tokens(transcript)
    groups = _groups(toks, rate, rules)
    frames = _frames([(toks[a].start, toks[b - 1].end) for a, _, b in groups], rate, rules)
    events = []
    for i, ((a, k, b), (s, e)) in enumerate(zip(groups, frames), start=1):
        lines = tuple(" ".join(t.text for t in toks[x:y]) for x, y in ((a, k), (k, b)) if y > x)
        events.append(Event(i, s, e, rate, lines))
    return tuple(events)


# ---------------------------------------------------------------------------------------------------- writers

def _captions(events: Iterable[Event], language: str):
    """A pycaption CaptionSet of the events, times in whole milliseconds (pycaption truncates microseconds)."""
    from pycaption import Caption, CaptionList, CaptionNode, CaptionSet

    def us(frame: int, fps: Fraction) -> int:
        return round(Fraction(frame * 1000) / fps) * 1000

    captions = CaptionList()
    for ev in events:
        nodes = []
        for i, line in enumerate(ev.lines):
            if i:
                nodes.append(CaptionNode.create_break())
            nodes.append(CaptionNode.create_text(line))
        captions.append(Caption(us(ev.start_frame, ev.fps), us(ev.end_frame, ev.fps), nodes))
    return CaptionSet({language or "und": captions})


def write_srt(path: Path, events: Sequence[Event], language: str = "") -> None:
    """SubRip subtitles (pycaption's SRTWriter), media time to the millisecond. No events: an empty file."""
    from pycaption import SRTWriter

    text = SRTWriter().write(_captions(events, language)) if events else ""
    write_text_atomic(Path(path), text)


def write_webvtt(path: Path, events: Sequence[Event], language: str = "") -> None:
    """WebVTT subtitles (pycaption's WebVTTWriter), media time to the millisecond."""
    from pycaption import WebVTTWriter

    text = WebVTTWriter().write(_captions(events, language)) if events else "WEBVTT\n"
    write_text_atomic(Path(path), text)


TT = "http://www.w3.org/ns/ttml"
TTP = "http://www.w3.org/ns/ttml#parameter"
TTS = "http://www.w3.org/ns/ttml#styling"
TTM = "http://www.w3.org/ns/ttml#metadata"
XML = "http://www.w3.org/XML/1998/namespace"
IMSC11_TEXT = "http://www.w3.org/ns/ttml/profile/imsc1.1/text"


def _clock(frame: int, fps: Fraction) -> str:
    """TTML clock-time HH:MM:SS.mmm of frame `frame` (its first instant), rounded to the millisecond."""
    ms = round(Fraction(frame * 1000) / fps)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def ttml_document(events: Sequence[Event], language: str, fps: Fraction, title: str = "") -> ET.ElementTree:
    """A TTML2 document in the IMSC 1.1 Text Profile (signalled by ttp:contentProfiles): media time base,
    clock-time begin/end to the millisecond, the frame rate declared, one bottom-centred region."""
    for prefix, uri in (("", TT), ("ttp", TTP), ("tts", TTS), ("ttm", TTM)):
        ET.register_namespace(prefix, uri)
    base = fps.numerator if fps.denominator == 1 else round(fps)
    tt = ET.Element(f"{{{TT}}}tt", {
        f"{{{XML}}}lang": language or "", f"{{{TTP}}}contentProfiles": IMSC11_TEXT, f"{{{TTP}}}timeBase": "media",
        f"{{{TTP}}}frameRate": str(base)})
    if fps != base:
        multiplier = fps / base
        tt.set(f"{{{TTP}}}frameRateMultiplier", f"{multiplier.numerator} {multiplier.denominator}")
    head = ET.SubElement(tt, f"{{{TT}}}head")
    if title:
        ET.SubElement(ET.SubElement(head, f"{{{TT}}}metadata"), f"{{{TTM}}}title").text = title
    ET.SubElement(ET.SubElement(head, f"{{{TT}}}styling"), f"{{{TT}}}style", {
        f"{{{XML}}}id": "s1", f"{{{TTS}}}textAlign": "center", f"{{{TTS}}}color": "white",
        f"{{{TTS}}}backgroundColor": "transparent"})
    ET.SubElement(ET.SubElement(head, f"{{{TT}}}layout"), f"{{{TT}}}region", {
        f"{{{XML}}}id": "bottom", f"{{{TTS}}}origin": "10% 10%", f"{{{TTS}}}extent": "80% 80%",
        f"{{{TTS}}}displayAlign": "after"})
    div = ET.SubElement(ET.SubElement(tt, f"{{{TT}}}body"), f"{{{TT}}}div")
    for ev in events:
        p = ET.SubElement(div, f"{{{TT}}}p", {
            f"{{{XML}}}id": f"e{ev.index}", "begin": _clock(ev.start_frame, ev.fps),
            "end": _clock(ev.end_frame, ev.fps), "region": "bottom", "style": "s1"})
        p.text = ev.lines[0] if ev.lines else ""
        for line in ev.lines[1:]:
            ET.SubElement(p, f"{{{TT}}}br").tail = line
    ET.indent(tt, space=" ")
    return ET.ElementTree(tt)


def write_ttml(path: Path, events: Sequence[Event], language: str, fps: Fraction, title: str = "") -> None:
    """The `ttml_document` of the events, UTF-8 with an XML declaration."""
    doc = ttml_document(events, language, fps, title)
    write_text_atomic(Path(path), ET.tostring(doc.getroot(), encoding="unicode", xml_declaration=True) + "\n")
