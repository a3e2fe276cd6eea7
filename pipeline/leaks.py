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
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

from .loudness import GATE_BLOCK_S, HOP_S, gated_loudness
from .qcevents import QcEvent, merged
from .readers import Reader
from .vad import Hysteresis, Region, RegionLike, block_mask, merge_regions
from .words import Line

# Defaults, overridable per profile (`qc_events: {speech_in_me: {min_s: …}}`); chosen on the dev part of
# benchmarks/leaks.py (see docs/DESIGN.md, "QC events").
# asr_budget_s: seconds of candidates the recogniser hears per reel, loudest first (one recogniser window of the
# bundled Whisper base costs about 2.5 CPU s on 2 cores; benchmarks/RESULTS.md, "reelsplit against the demucs CLI").
SPEECH_IN_ME = {"merge_gap_s": 0.5, "min_s": 0.5, "min_word_p": 0.5, "vad_threshold": 0.3, "asr_budget_s": 30.0,
                # the pitch finder's (below):
                "pitch_contrast_db": 6.0, "pitch_gap_s": 1.0, "pitch_min_s": 1.0, "pitch_max_s": 30.0,
                "dominant_db": 6.0, "voiced_db": 6.0, "min_frames": 20.0}
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


def _with_pitch(regions: list[Region], levels: list[float], pitch: list[PitchLeak]
                ) -> tuple[list[Region], list[float], list[tuple[PitchLeak | None, float | None]]]:
    """The VAD's candidates (`regions`, `levels`) with the pitch finder's stretches: a stretch takes in the
    candidates it overlaps (its span grows to theirs, its level is the highest of its own and theirs); the
    candidates no stretch overlaps stay as they are. In time order, each with (its stretch or None, the loudest
    level of the VAD's candidates in it or None)."""
    out, used = [], set()
    for p in pitch:
        hits = [i for i, r in enumerate(regions) if r.start_s < p.region.end_s and p.region.start_s < r.end_s]
        used.update(hits)
        span = Region(min([p.region.start_s] + [regions[i].start_s for i in hits]),
                      max([p.region.end_s] + [regions[i].end_s for i in hits]))
        vad = max((levels[i] for i in hits), default=None)
        out.append((span, p.level_db if vad is None else max(p.level_db, vad), (p, vad)))
    out += [(r, level, (None, level)) for i, (r, level) in enumerate(zip(regions, levels)) if i not in used]
    out.sort(key=lambda item: item[0].start_s)
    return [r for r, _, _ in out], [level for _, level, _ in out], [found for _, _, found in out]


def speech_in_me(dx_speech: Iterable[RegionLike], me_speech: Iterable[RegionLike], dx_blocks: np.ndarray,
                 me_blocks: np.ndarray, overrides: Mapping[str, float] = {},
                 confirm: Callable[[list[Region]], Iterable[Line]] | None = None,
                 pitch: Iterable[PitchLeak] = ()) -> list[QcEvent]:
    """`speech_in_me` events. `dx_blocks`/`me_blocks`: momentary loudness (LUFS) of the written DX and M&E per
    HOP_S; `confirm`: the recogniser over regions of the M&E (its lines in reel time), None without one (then
    words are 0 and the detail says so); `pitch`: the stretches `pitch_leaks` found, which take in the VAD's
    events they overlap (`_with_pitch`; level: the leak's estimate against the DX, or the M&E's loudness
    against the DX's where the VAD's event is louder). The
    recogniser hears at most `asr_budget_s` seconds of the events, the loudest first, so its cost is bounded
    whatever the separation left; the others say they were not checked for words (their level still counts)."""
    t = merged(SPEECH_IN_ME, overrides, "speech_in_me")
    regions = leak_candidates(dx_speech, me_speech, t)
    levels = [block_level(me_blocks, r.start_s, r.end_s) - block_level(dx_blocks, r.start_s, r.end_s)
              for r in regions]
    regions, levels, found = _with_pitch(regions, levels, list(pitch))
    budget = t["asr_budget_s"] if confirm is not None else None
    heard_regions = within_budget(regions, levels, budget) if budget is not None else []
    words: list = []
    if heard_regions:
        words = [w for line in confirm(heard_regions) for w in line.words if w.probability >= t["min_word_p"]]
    events = []
    for r, level, (p, vad) in zip(regions, levels, found):
        heard = [w for w in words if r.start_s <= (w.start + w.end) / 2 < r.end_s]
        checked_s = sum(max(0.0, min(h.end_s, r.end_s) - max(h.start_s, r.start_s)) for h in heard_regions)
        if p is not None:
            what = (f"the dialogue's voice in the M&E by its pitch (harmonics {p.contrast_db:+.1f} dB over the bed "
                    "between them); " + (f"leak about {p.level_db:+.1f} dB against DX" if math.isfinite(p.level_db)
                                         else "leak level under the bed's"))
            if vad is not None:
                what += "; the VAD hears speech in it, " + (f"M&E {vad:+.1f} dB against DX" if math.isfinite(vad)
                                                            else "M&E level unknown")
        else:
            what = "speech in M&E during dialogue; " + (f"M&E {level:+.1f} dB against DX" if math.isfinite(level)
                                                        else "M&E level unknown")
        events.append(QcEvent("speech_in_me", r.start_s, r.end_s, "ME", "", level if math.isfinite(level) else None,
                              len(heard), f"{what}; {_heard_text(heard, checked_s, r.duration_s, budget)}"))
    return events


# The second finder of speech_in_me: the DX's own voice, by its pitch, in the M&E. A leak of the dialogue carries
# the voice's harmonics at the voice's pitch at each instant, which the bed has nothing to do with; silero-vad
# does not call DFN3's residue of a line speech, this finds it (benchmarks/leaks.py --detector pitch; RESULTS,
# "Speech left in the M&E"). Per 10-ms frame (85-ms window) the DX's f0 (70–400 Hz, harmonic summation); frames
# count where the DX's harmonics stand `voiced_db` over the bins half-way between them and the DX stands
# `dominant_db` over the M&E (100 Hz–4 kHz: the voice dominates, so the pitch is the voice's, not that of music
# the DX carries); per stretch of dialogue (the DX's speech merged across `pitch_gap_s`, in pieces of at most
# `pitch_max_s`, those from `pitch_min_s`) the M&E's harmonic contrast over those frames — its power at k·f0
# against the bins half-way between, up to 4 kHz, dB, averaged with the DX's power at each harmonic as its
# weight — at or above `pitch_contrast_db` makes an event. Its
# level: the M&E's excess power at the harmonics against the DX's there, dB (a copy of the line g dB down reads
# about g: −10.0 to −10.6 dB for −10, −18.5 to −20.8 for −20 on the dev reels; at −30 the bed's own fluctuation
# sets it, −24 to −33).
PITCH_WINDOW_S, PITCH_HARMONICS, PITCH_TOP_HZ = 4096 / 48000, 12, 4000.0
PITCH_CANDIDATES_HZ = np.arange(70.0, 401.0, 2.0)


@dataclass(frozen=True)
class PitchLeak:
    """A stretch of dialogue whose voice the M&E carries: the M&E's harmonic contrast at the DX's pitch, weighted
    by the DX's harmonics (`contrast_db`), and the leak's estimated level against the DX (`level_db`)."""

    region: Region
    contrast_db: float
    level_db: float


def _log_spectra(x: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Power (dB) of a mono signal's STFT, PITCH_WINDOW_S Hann windows every 10 ms; (bins × frames, Hz per bin)."""
    from scipy.signal import stft
    n = int(round(PITCH_WINDOW_S * rate))
    hop = rate // 100
    if x.shape[0] < n:
        return np.zeros((n // 2 + 1, 0)), rate / n
    f, _, z = stft(x.astype(np.float32), rate, nperseg=n, noverlap=n - hop, boundary=None, padded=False)
    power = np.abs(z) ** 2       # float32 throughout: a 30-s piece is 3000 frames × 2049 bins, 25 MB
    del z
    return 10 * np.log10(power + np.float32(1e-14), out=power), float(f[1] - f[0])


def _at_harmonics(logp: np.ndarray, df: float, f0: np.ndarray, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """logp at (k + offset)·f0 per harmonic k and frame, and which k·f0 lie at or under PITCH_TOP_HZ."""
    k = np.arange(1, PITCH_HARMONICS + 1)[:, None]
    freq = (k + offset) * f0[None, :]
    cols = np.broadcast_to(np.arange(logp.shape[1])[None, :], freq.shape)
    rows = np.clip(np.rint(freq / df).astype(int), 0, logp.shape[0] - 1)
    return logp[rows, cols], k * f0[None, :] <= PITCH_TOP_HZ


def _comb(logp: np.ndarray, df: float, f0: np.ndarray) -> tuple[np.ndarray, ...]:
    """logp at k·f0, at (k − ½)·f0 and at (k + ½)·f0 per harmonic and frame, and which harmonics count."""
    on, valid = _at_harmonics(logp, df, f0, 0.0)
    return on, _at_harmonics(logp, df, f0, -0.5)[0], _at_harmonics(logp, df, f0, 0.5)[0], valid


def harmonic_contrast(logp: np.ndarray, df: float, f0: np.ndarray) -> np.ndarray:
    """Per frame, the mean over harmonics of logp at k·f0 less the mean of logp at (k ± ½)·f0, dB."""
    on, below, above, valid = _comb(logp, df, f0)
    return ((on - (below + above) / 2) * valid).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)


def voice_pitch(dx_logp: np.ndarray, me_logp: np.ndarray, df: float, t: Mapping[str, float]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(f0 per frame, frames where it is the voice's): harmonic summation over PITCH_CANDIDATES_HZ on the DX, in
    the frames where the DX dominates."""
    band = slice(int(math.ceil(100 / df)), int(PITCH_TOP_HZ / df) + 1)
    over = 10 * np.log10((10 ** (dx_logp[band] / 10)).sum(axis=0) / (10 ** (me_logp[band] / 10)).sum(axis=0))
    dominant = np.flatnonzero(over >= t["dominant_db"])
    f0, voiced = np.zeros(dx_logp.shape[1]), np.zeros(dx_logp.shape[1], bool)
    if dominant.size:
        logp = dx_logp[:, dominant]
        best = np.stack([harmonic_contrast(logp, df, np.full(dominant.size, c)) for c in PITCH_CANDIDATES_HZ])
        f0[dominant] = PITCH_CANDIDATES_HZ[best.argmax(axis=0)]
        voiced[dominant] = best.max(axis=0) >= t["voiced_db"]
    return f0, voiced


def _pitch_leak(dx: np.ndarray, me: np.ndarray, rate: int, t: Mapping[str, float]) -> tuple[float, float] | None:
    """(contrast, level) dB of one piece of dialogue (mono DX and M&E), None with too few voiced frames."""
    pd, df = _log_spectra(dx, rate)
    pm, _ = _log_spectra(me, rate)
    f0, voiced = voice_pitch(pd, pm, df, t)
    if voiced.sum() < t["min_frames"]:
        return None
    pd, pm, f0 = pd[:, voiced], pm[:, voiced], f0[voiced]
    on, below, above, valid = _comb(pm, df, f0)
    voice = 10 ** (_at_harmonics(pd, df, f0, 0.0)[0] / 10) * valid     # the DX's power at each harmonic
    # the contrast of each harmonic in each frame, weighted by the DX's power there: a leak follows the voice's
    # spectrum, so it stands out where the voice is strong, and the harmonics the voice barely has add only noise
    contrast = float(((on - (below + above) / 2) * voice).sum() / max(voice.sum(), 1e-20))
    excess = ((10 ** (on / 10) - (10 ** (below / 10) + 10 ** (above / 10)) / 2) * valid).sum()   # the bed's ≈ 0
    return contrast, float(10 * np.log10(excess / (voice.sum() + 1e-20))) if excess > 0 else float("-inf")


def _dialogue_channels(dx: np.ndarray, keep: list[int], within_db: float = 10.0) -> list[int]:
    """Of the channels `keep`, those where the DX is within `within_db` of its loudest: both of a stereo pair for
    centred dialogue, the centre alone for a 5.1's, so that the other channels' bed does not bury the voice."""
    energy = np.square(dx[:, keep], dtype=np.float64).sum(axis=0)
    return [c for c, e in zip(keep, energy) if e >= energy.max() * 10 ** (-within_db / 10)]


def pitch_leaks(dx: Reader, me: Reader, rate: int, dx_speech: Iterable[RegionLike],
                overrides: Mapping[str, float] = {}, labels: tuple[str, ...] = ()) -> list[PitchLeak]:
    """The stretches of dialogue whose voice the M&E carries (above). Reads the DX and the M&E over each stretch
    only, a piece of at most pitch_max_s at a time, averaging the channels (not the LFE) where the DX's dialogue
    is (`_dialogue_channels`)."""
    t = merged(SPEECH_IN_ME, overrides, "speech_in_me")
    keep = [i for i in range(dx.channels) if i >= len(labels) or labels[i] != "LFE"] or [0]
    pad = int(round(PITCH_WINDOW_S * rate / 2))
    out = []
    for stretch in merge_regions(dx_speech, max_gap_s=t["pitch_gap_s"]):
        start = stretch.start_s
        while start < stretch.end_s - 1e-9:
            end = min(stretch.end_s, start + t["pitch_max_s"])
            a, b = max(0, int(round(start * rate)) - pad), min(dx.frames, int(round(end * rate)) + pad)
            found = None
            if end - start >= t["pitch_min_s"]:
                d = dx.read(a, b - a)
                cols = _dialogue_channels(d, keep)
                found = _pitch_leak(d[:, cols].mean(axis=1), me.read(a, b - a)[:, cols].mean(axis=1), rate, t)
            if found is not None and found[0] >= t["pitch_contrast_db"]:
                out.append(PitchLeak(Region(start, end), *found))
            start = end
    return out


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
