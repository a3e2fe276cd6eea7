"""What the separation left on the wrong side, as timecoded QC events: speech in the M&E, bed in the DX.

`speech_in_me`: where the VAD finds speech in the M&E while the DX has dialogue (the VAD's regions of both, from
the QC), merged and kept when long enough; each event's level is the M&E's loudness against the DX's over it
(BS.1770 momentary blocks, dB), and the words a recogniser hears in the M&E there (`confirm`, the ASR stage's
recogniser over the events) are counted and quoted — a line left in the M&E is the fault that gets a
localization delivery rejected (Netflix's "Extraneous Dialogue").

`bed_in_dx`: stretches without dialogue where the DX still carries sound (music or effects the separation put in
the dialogue), in LU against the DX's own level in dialogue.

Both read the 400-ms momentary loudness blocks (every 100 ms) the QC's meters already computed; nothing is read
again except the M&E over the events, for the recogniser.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import numpy as np

from .loudness import GATE_BLOCK_S, HOP_S, gated_loudness
from .qcevents import QcEvent, merged
from .vad import Hysteresis, Region, RegionLike, block_mask, merge_regions
from .words import Line

# Defaults, overridable per profile (`qc_events: {speech_in_me: {min_s: …}}`); chosen on the dev part of
# benchmarks/leaks.py (see docs/DESIGN.md, "QC events").
# asr_budget_s: seconds of candidates the recogniser hears per reel, loudest first (one recogniser window of the
# bundled Whisper base costs about 2.5 CPU s on 2 cores; benchmarks/RESULTS.md, "reelsplit against the demucs CLI").
SPEECH_IN_ME = {"merge_gap_s": 0.5, "min_s": 0.5, "min_word_p": 0.5, "vad_threshold": 0.3, "asr_budget_s": 30.0}
BED_IN_DX = {"above_lu": -20.0, "min_s": 2.0, "merge_gap_s": 1.0, "guard_s": 0.5}
QUOTE_WORDS = 12     # words quoted in an event's detail


def intersect(a: Iterable[RegionLike], b: Iterable[RegionLike]) -> list[Region]:
    """The time both sets of regions cover, in order."""
    a, b = list(merge_regions(a)), list(merge_regions(b))
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i].start_s, b[j].start_s), min(a[i].end_s, b[j].end_s)
        if end > start:
            out.append(Region(start, end))
        if a[i].end_s < b[j].end_s:
            i += 1
        else:
            j += 1
    return out


def block_level(blocks: np.ndarray, start_s: float, end_s: float) -> float:
    """Energy mean, in LUFS, of the momentary blocks that lie inside [start_s, end_s) (the one nearest the
    middle when none fits)."""
    first = int(math.ceil(start_s / HOP_S))
    last = int(math.floor((end_s - GATE_BLOCK_S) / HOP_S))
    if last < first:
        first = last = int(round(((start_s + end_s) / 2 - GATE_BLOCK_S / 2) / HOP_S))
    chosen = blocks[max(0, first): max(0, min(blocks.size, last + 1))]
    if chosen.size == 0:
        return float("-inf")
    return gated_loudness(chosen, None) if np.isfinite(chosen).any() else float("-inf")


def candidate_hysteresis(profile) -> Hysteresis:
    """The VAD's hysteresis for speech_in_me candidates in the M&E: silero-vad's, at the events' threshold
    (`vad_threshold`, 0.3 by default: on the dev part of benchmarks/leaks.py the lowest that kept precision at
    or above 0.8 on both sets; 0.5, the VAD's own, found a third as many leaks)."""
    t = merged(SPEECH_IN_ME, profile.qc_events.of("speech_in_me"), "speech_in_me")
    return Hysteresis(threshold=t["vad_threshold"])


def leak_candidates(dx_speech: Iterable[RegionLike], me_speech: Iterable[RegionLike],
                    thresholds: Mapping[str, float]) -> list[Region]:
    """Speech in the M&E during dialogue: the regions' intersection, merged across gaps up to merge_gap_s,
    kept from min_s."""
    both = merge_regions(intersect(dx_speech, me_speech), max_gap_s=thresholds["merge_gap_s"])
    return [r for r in both if r.duration_s >= thresholds["min_s"]]


def within_budget(regions: list[Region], levels: list[float], budget_s: float) -> list[Region]:
    """The regions the recogniser hears: loudest first (unknown levels last) while their seconds fit in
    `budget_s`, the last one cut to what is left; returned in time order."""
    chosen, left = [], budget_s
    for i in sorted(range(len(regions)), key=lambda i: -levels[i] if math.isfinite(levels[i]) else math.inf):
        if left <= 0:
            break
        r = regions[i]
        chosen.append(Region(r.start_s, min(r.end_s, r.start_s + left)))
        left -= chosen[-1].duration_s
    return sorted(chosen, key=lambda r: r.start_s)


def _heard_text(heard: list, checked_s: float, duration_s: float, budget_s: float | None) -> str:
    """An event's words part: the words heard, else how much of it the recogniser checked (`checked_s` of its
    `duration_s`: all, part — the budget ran out inside it — or none); `budget_s` None: no recogniser at all."""
    said = " ".join(w.text for w in heard[:QUOTE_WORDS]) + (" …" if len(heard) > QUOTE_WORDS else "")
    if heard:
        return f'words heard in the M&E: "{said}"'
    if budget_s is None:
        return "not checked for words"
    why = f"the recogniser's {budget_s:g} s went to louder events"
    if checked_s >= duration_s - 0.01:
        return "no words recognised"
    if checked_s > 0:
        return f"no words recognised in the {checked_s:.1f} s of {duration_s:.1f} s checked ({why})"
    return f"not checked for words ({why})"


def speech_in_me(dx_speech: Iterable[RegionLike], me_speech: Iterable[RegionLike], dx_blocks: np.ndarray,
                 me_blocks: np.ndarray, overrides: Mapping[str, float] = {},
                 confirm: Callable[[list[Region]], Iterable[Line]] | None = None) -> list[QcEvent]:
    """`speech_in_me` events. `dx_blocks`/`me_blocks`: momentary loudness (LUFS) of the written DX and M&E per
    HOP_S; `confirm`: the recogniser over regions of the M&E (its lines in reel time), None without one (then
    words are 0 and the detail says so). The recogniser hears at most `asr_budget_s` seconds of the events,
    the loudest first, so its cost is bounded whatever the separation left; the others say they were not
    checked for words (their level still counts)."""
    t = merged(SPEECH_IN_ME, overrides, "speech_in_me")
    regions = leak_candidates(dx_speech, me_speech, t)
    levels = [block_level(me_blocks, r.start_s, r.end_s) - block_level(dx_blocks, r.start_s, r.end_s)
              for r in regions]
    budget = t["asr_budget_s"] if confirm is not None else None
    heard_regions = within_budget(regions, levels, budget) if budget is not None else []
    words: list = []
    if heard_regions:
        words = [w for line in confirm(heard_regions) for w in line.words if w.probability >= t["min_word_p"]]
    events = []
    for r, level in zip(regions, levels):
        heard = [w for w in words if r.start_s <= (w.start + w.end) / 2 < r.end_s]
        checked_s = sum(max(0.0, min(h.end_s, r.end_s) - max(h.start_s, r.start_s)) for h in heard_regions)
        level_text = f"M&E {level:+.1f} dB against DX" if math.isfinite(level) else "M&E level unknown"
        events.append(QcEvent("speech_in_me", r.start_s, r.end_s, "ME", "", level if math.isfinite(level) else None,
                              len(heard), f"speech in M&E during dialogue; {level_text}; "
                                          f"{_heard_text(heard, checked_s, r.duration_s, budget)}"))
    return events


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where `mask` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def bed_in_dx(dx_speech: Iterable[RegionLike], dx_blocks: np.ndarray,
              overrides: Mapping[str, float] = {}) -> list[QcEvent]:
    """`bed_in_dx` events: runs of momentary blocks away from dialogue (guard_s from any speech region) where
    the DX is louder than its own dialogue level + above_lu (LU; e.g. −20), merged across merge_gap_s, kept
    from min_s. level_db: the run's DX loudness against the DX in dialogue, LU."""
    t = merged(BED_IN_DX, overrides, "bed_in_dx")
    speech = list(merge_regions(dx_speech))
    if dx_blocks.size == 0 or not speech:
        return []
    in_dialogue = block_mask(speech, dx_blocks.size)
    reference = gated_loudness(dx_blocks, in_dialogue)
    if not math.isfinite(reference):
        return []
    guarded = block_mask([(max(0.0, r.start_s - t["guard_s"]), r.end_s + t["guard_s"]) for r in speech],
                         dx_blocks.size)
    loud = (~guarded) & np.isfinite(dx_blocks) & (dx_blocks > reference + t["above_lu"])
    centre = (GATE_BLOCK_S - HOP_S) / 2      # a run of blocks spans their centres, HOP_S / 2 either side
    spans = merge_regions([(a * HOP_S + centre, b * HOP_S + centre) for a, b in _runs(loud)],
                          max_gap_s=t["merge_gap_s"])
    events = []
    for r in spans:
        if r.duration_s < t["min_s"]:
            continue
        level = block_level(dx_blocks, r.start_s, r.end_s) - reference
        events.append(QcEvent("bed_in_dx", r.start_s, r.end_s, "DX", "", level,
                              detail=f"DX without dialogue at {level:+.1f} LU against its dialogue "
                                     f"({t['above_lu']:+.0f} LU allowed)"))
    return events
