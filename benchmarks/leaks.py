"""Speech left in the M&E: are reelsplit's `speech_in_me` QC events where the true leakage is? Precision and recall.

Reels with known stems: dialogue lines (3–5 per reel, at random times) over music and effects from a benchmark
set's eval split (benchmarks/separation.py's sets: the synthetic corpus, the real full-band recordings of
benchmarks/real_set.py), 48 kHz stereo, dialogue 0 to −10 dB against the bed. Each reel goes through the default
separation as `reelsplit run` makes it (DFN3, benchmarks/separation.py `_stream`), then through what the QC does
(the VAD on the DX and M&E, the loudness meters' momentary blocks, pipeline.leaks.speech_in_me; with --asr the
bundled recogniser over the candidates, as the run does).

The truth: the error of the M&E, e = M&E estimate − true M&E (= true DX − DX estimate), where it is speech: the
same VAD run over e alone (no music over it), its regions merged across 0.5 s and at least 0.5 s long, kept when
e's loudness over them is above --leak-db (−30) against the true dialogue's (BS.1770 momentary blocks): the leak
intervals.
Recall: leak intervals that an event overlaps; precision: events that overlap a leak interval.
The audible truth (printed after, for each OVER_BED_DB threshold x): only the leak intervals whose loudness is also
at least x dB against the true M&E over them, the bed a listener hears them through.

--control runs the detector again with the separation's DX as its reference over the *true* M&E, clean (every event
a false alarm) and with the true dialogue planted in it at −10, −20 and −30 dB against the dialogue (a stretch of
dialogue an event overlaps is a leak found): a detector that fires on stretches whatever they hold scores well on
the truth above, where nearly every line of a DFN3 M&E holds a leak, and fails here. --cache keeps each reel's
DFN3 stems (keyed by set name, seed, length, dialogue level, duck and index: clear it when a set is rebuilt).

Reels are split into a dev part (every threshold is chosen on it) and a test part (reported, never tuned on) by
their index: even = dev, odd = test.

    .venv/bin/python benchmarks/leaks.py --corpus benchmarks/.cache/real-fullband --reels 16 [--asr]
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from separation import RATE, _fit, _load, _rms, _stream  # noqa: E402

from pipeline import leaks, vad  # noqa: E402
from pipeline.config import SeparationSettings  # noqa: E402
from pipeline.meter import LoudnessMeter  # noqa: E402
from pipeline.models import ModelSpec  # noqa: E402
from pipeline.readers import ArrayReader  # noqa: E402
from pipeline.separate import load_separator  # noqa: E402



def make_reel(files: dict[str, list[Path]], seconds: float, rng: np.random.Generator,
              dialogue_db: tuple[float, float] = (-10.0, 0.0), duck_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(true DX, true M&E), (n, 2) float32: 3–5 dialogue lines placed at random, non-overlapping times; with
    `duck_db`, the bed ducked that much under each line (0.3-s ramps, as a mixer rides music under dialogue)."""
    n = int(seconds * RATE)
    dialogue = np.zeros((n, 2), np.float32)
    lines = int(rng.integers(3, 6))
    slots = np.sort(rng.choice(np.arange(int(seconds // 6)), size=min(lines, int(seconds // 6)), replace=False))
    for slot in slots:
        clip = _load(files["dialogue"][int(rng.integers(len(files["dialogue"])))])[: int(5.5 * RATE)]
        at = int(slot * 6 * RATE + rng.integers(0, max(1, int(6 * RATE) - clip.shape[0])))
        dialogue[at: at + clip.shape[0]] += clip[: n - at]
    music = _fit(_load(files["music"][int(rng.integers(len(files["music"])))]), n, rng, pad=False)
    effects = _fit(_load(files["effects"][int(rng.integers(len(files["effects"])))]), n, rng, pad=False)
    bed = music / _rms(music) + effects / _rms(effects) * 10 ** (rng.uniform(-8, 0) / 20)
    active = np.abs(dialogue).max(axis=1) > 0
    if duck_db:
        ramp = int(0.3 * RATE)
        gain = np.convolve(active.astype(np.float64), np.ones(ramp) / ramp, "same")   # 0..1, smoothed
        bed = bed * (1 - (1 - 10 ** (-duck_db / 20)) * np.clip(gain * 2, 0, 1))[:, None]
    level = float(rng.uniform(*dialogue_db))
    dialogue *= _rms(bed) / _rms(dialogue[active]) * 10 ** (level / 20)
    scale = 10 ** (-3 / 20) / max(float(np.abs(dialogue + bed).max()), 1e-9) * 10 ** (rng.uniform(-6, 0) / 20)
    return (dialogue * scale).astype(np.float32), (bed * scale).astype(np.float32)


def true_leaks(d: np.ndarray, e: np.ndarray, leak_db: float, m: np.ndarray | None = None
               ) -> list[tuple[vad.Region, float, float]]:
    """Leak intervals: where the VAD finds speech in the M&E's error `e` alone (no music over it), merged across
    0.5 s, at least 0.5 s long, with the error's loudness against the true dialogue's over them above `leak_db`;
    each with that level and its level against the true M&E `m` there (the bed it has to be heard over; NaN
    without `m`)."""
    speech = vad.merge_regions(vad.speech_regions(ArrayReader(e), RATE), max_gap_s=0.5)
    be, bd = blocks(e), blocks(d)
    bm = blocks(m) if m is not None else None
    out = []
    for r in speech:
        if r.duration_s < 0.5:
            continue
        level = leaks.block_level(be, r.start_s, r.end_s) - leaks.block_level(bd, r.start_s, r.end_s)
        over_bed = (leaks.block_level(be, r.start_s, r.end_s) - leaks.block_level(bm, r.start_s, r.end_s)
                    if bm is not None else float("nan"))
        if level > leak_db:
            out.append((r, level, over_bed))
    return out


def blocks(x: np.ndarray) -> np.ndarray:
    meter = LoudnessMeter(RATE, 2, "stereo")
    meter.add(x)
    return meter.gating_blocks()


def detect(dx: np.ndarray, me: np.ndarray, recogniser=None, sep=None, threshold: float = 0.5,
           scan: bool = False, highpass_hz: float = 0.0, with_pitch: bool = True, pitch_overrides=None) -> list:
    """speech_in_me events as the QC makes them over the written DX and M&E: the VAD's and the pitch finder's
    (`with_pitch` False: the VAD's alone, the QC before 2026-12-05; with `sep`, the VAD runs on the speech that
    separator extracts from the M&E instead of on the M&E)."""
    dx_speech = vad.speech_regions(ArrayReader(dx), RATE)
    heard = me if sep is None else _stream(sep, me)[0]
    if highpass_hz:     # --me-highpass (tried): the M&E's low end, where music's energy is, taken off first
        from scipy.signal import butter, sosfilt
        heard = sosfilt(butter(4, highpass_hz, "highpass", fs=RATE, output="sos"), heard, axis=0)
        heard = heard.astype(np.float32)
    me_speech = vad.speech_regions(ArrayReader(heard), RATE, hysteresis=vad.Hysteresis(threshold=threshold))
    confirm = None
    if recogniser is not None:
        from pipeline import asr

        def confirm(regions):
            return asr.transcribe(ArrayReader(me), RATE, regions, recogniser, layout="stereo", source="me",
                                  options=asr.AsrOptions(fallback=False)).lines   # as the QC runs it
    if scan:      # the recogniser over all the dialogue in the M&E: events where it hears words, or the VAD speech
        heard = [e for e in leaks.speech_in_me(dx_speech, dx_speech, blocks(dx), blocks(me), confirm=confirm)
                 if e.words > 0]
        found = leaks.speech_in_me(dx_speech, me_speech, blocks(dx), blocks(me))
        return heard + [e for e in found if not overlaps(e, heard)]
    pitch = (leaks.pitch_leaks(ArrayReader(dx), ArrayReader(me), RATE, dx_speech, pitch_overrides or {})
             if with_pitch else ())
    return leaks.speech_in_me(dx_speech, me_speech, blocks(dx), blocks(me), confirm=confirm, pitch=pitch)


# --detector envelope (tried, not shipped: benchmarks/RESULTS.md, "Speech left in the M&E"): where the M&E's
# band envelopes move with the DX's. 24 bands 150 Hz–8 kHz (log-spaced), 10-ms frames, each band's log energy
# band-passed 2–10 Hz (syllable rate); per 1-s window (hop 0.25 s) the Pearson correlation of DX and M&E in each
# band, averaged with the DX's band energies as weights; windows above ENVELOPE_R, inside the DX's speech merged
# across ENVELOPE_GAP_S, kept from 1 s. Chosen on the dev part.
ENVELOPE_EDGES = np.geomspace(150, 8000, 25)
ENVELOPE_R, ENVELOPE_GAP_S = 0.2, 0.0


def _bands(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import stft
    f, t, z = stft(x.mean(axis=1), RATE, nperseg=2048, noverlap=2048 - 480, boundary=None, padded=False)
    power, band = np.abs(z) ** 2, np.digitize(f, ENVELOPE_EDGES)
    return np.stack([power[band == k].sum(axis=0) for k in range(1, len(ENVELOPE_EDGES))]), t


def envelope_events(dx: np.ndarray, me: np.ndarray, threshold: float = ENVELOPE_R,
                    gap_s: float = ENVELOPE_GAP_S) -> list:
    from scipy.signal import butter, sosfiltfilt
    sos = butter(2, [2.0, 10.0], btype="band", fs=100.0, output="sos")
    bd, t = _bands(dx)
    bm, _ = _bands(me)
    ed, em = (sosfiltfilt(sos, 10 * np.log10(b + 1e-10), axis=1) for b in (bd, bm))
    spans = []
    for a in range(0, ed.shape[1] - 100, 25):
        x, y = ed[:, a:a + 100], em[:, a:a + 100]
        x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
        r = (x * y).sum(axis=1) / (np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1)) + 1e-12)
        weight = bd[:, a:a + 100].mean(axis=1)
        if float((r * weight).sum() / (weight.sum() + 1e-20)) > threshold:
            spans.append((t[a], t[a] + 1.0))
    return _inside_dialogue(vad.merge_regions(spans, max_gap_s=0.3), dx, gap_s)


def _inside_dialogue(spans, dx: np.ndarray, gap_s: float = ENVELOPE_GAP_S) -> list:
    """`spans` cut to the DX's speech regions (merged across `gap_s`), the pieces of 1 s or more."""
    speech = list(vad.merge_regions(vad.speech_regions(ArrayReader(dx), RATE), max_gap_s=gap_s))
    out = []
    for r in spans:
        for q in speech:
            a, b = max(r.start_s, q.start_s), min(r.end_s, q.end_s)
            if b - a >= 1.0:
                out.append(vad.Region(a, b))
    return out


_STRETCHES: dict = {}


def dialogue_events(dx: np.ndarray, gap_s: float = ENVELOPE_GAP_S) -> list:
    """The baseline a detector must beat: every stretch of the DX's dialogue (1 s or more) is an event."""
    key = (dx.ctypes.data, dx.shape, gap_s)
    if key not in _STRETCHES:
        _STRETCHES.clear()
        _STRETCHES[key] = _inside_dialogue([vad.Region(0.0, dx.shape[0] / RATE)], dx, gap_s)
    return list(_STRETCHES[key])


def _stretches_and_around(dx: np.ndarray, t: np.ndarray, gap_s: float):
    """(stretch, frames inside it, frames in the LIFT_AROUND_S around it away from any dialogue) for each stretch
    of the DX's dialogue with frames inside and at least 20 frames around; `t`: the frames' times (s)."""
    stretches = dialogue_events(dx, gap_s)
    speaking = np.zeros(len(t), bool)
    for r in stretches:
        speaking[(t >= r.start_s) & (t < r.end_s)] = True
    for r in stretches:
        inside = (t >= r.start_s) & (t < r.end_s)
        near = ((t >= r.start_s - LIFT_AROUND_S) & (t < r.end_s + LIFT_AROUND_S)) & ~speaking
        if inside.any() and near.sum() >= 20:
            yield r, inside, near


# --detector lift (tried): the M&E's speech band (300-3400 Hz) louder during a stretch of dialogue than in the
# LIFT_AROUND_S around it (away from other dialogue): leftover speech adds to the bed only while someone speaks.
LIFT_DB, LIFT_AROUND_S = 2.0, 2.0


def _frame_power(x: np.ndarray) -> np.ndarray:
    hop = RATE // 100
    return np.add.reduceat(x.astype(np.float64) ** 2, np.arange(0, len(x), hop)) / hop


def lift_events(dx: np.ndarray, me: np.ndarray, threshold_db: float = LIFT_DB, gap_s: float = 1.0,
                relative: bool = False) -> list:
    """`relative` (--detector band): the speech band against the M&E's other bands (below 300 Hz, above 3.4 kHz)
    during the line against around it, so that a bed ducked as a whole under the line does not count."""
    from scipy.signal import butter, sosfilt
    mono = me.mean(axis=1)
    band = sosfilt(butter(4, (300, 3400), "bandpass", fs=RATE, output="sos"), mono)
    power = _frame_power(band)
    if relative:
        power = power / (_frame_power(mono - band) + 1e-12)
    out = []
    for r, inside, near in _stretches_and_around(dx, np.arange(len(power)) * 0.01, gap_s):
        lift = 10 * np.log10((power[inside].mean() + 1e-20) / (power[near].mean() + 1e-20))
        if lift >= threshold_db:
            out.append(r)
    return out


# --detector guided (tried): the DX tells which time-frequency cells a leak of it would fill. Per stretch of
# dialogue: the M&E's spectrum around it (away from dialogue) is the bed B(f); in each frame of the stretch the
# M&E against B in the cells where the DX is strong, less the same in the cells where the DX is weak (there a leak
# is too weak to show): a duck or a swell of the bed moves both, a leak only the first. `--guided-mode` says how
# the cells are chosen: `bed` (the DX GUIDED_STRONG_DB over B, or under B), `dx` (against the DX's own loudest
# cell in the frame: within GUIDED_STRONG_DB, or GUIDED_WEAK_DB under it), `null` (`dx`, less the same statistic
# with the DX's cells taken from half the stretch away).
GUIDED_STRONG_DB, GUIDED_WEAK_DB, GUIDED_NPERSEG = 10.0, 35.0, 1024


def _spectra(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import stft
    f, t, z = stft(x.mean(axis=1), RATE, nperseg=GUIDED_NPERSEG, noverlap=GUIDED_NPERSEG - RATE // 100,
                   boundary=None, padded=False)
    keep = (f >= 150) & (f <= 8000)
    return np.abs(z[keep]) ** 2 + 1e-14, t + GUIDED_NPERSEG / 2 / RATE


def guided_scores(dx: np.ndarray, me: np.ndarray, gap_s: float = 1.0, mode: str = "bed",
                  strong_db: float = GUIDED_STRONG_DB) -> list[tuple]:
    """(stretch, score dB) per stretch of dialogue with enough bed around it."""
    pd, t = _spectra(dx)
    pm, _ = _spectra(me)
    out = []
    for r, inside, near in _stretches_and_around(dx, t, gap_s):
        bed = pm[:, near].mean(axis=1, keepdims=True)
        ratio = 10 * np.log10(pm[:, inside] / bed)
        if mode == "bed":      # cells chosen by the DX against the bed (biased: they favour a quiet bed)
            dx_over = 10 * np.log10(pd[:, inside] / bed)
            strong, weak = dx_over > strong_db, dx_over < 0
        else:                         # cells chosen by the DX alone, against its own loudest cell in the frame
            level = 10 * np.log10(pd[:, inside])
            level = level - level.max(axis=0, keepdims=True)
            strong, weak = level > -strong_db, level < -GUIDED_WEAK_DB

        def lift_of(strong, weak):
            ok = (strong.sum(axis=0) >= 5) & (weak.sum(axis=0) >= 5)
            lift = ((ratio * strong).sum(axis=0) / np.maximum(strong.sum(axis=0), 1)
                    - (ratio * weak).sum(axis=0) / np.maximum(weak.sum(axis=0), 1))
            return lift, ok

        lift, ok = lift_of(strong, weak)
        if ok.sum() < 20:
            continue
        if mode == "null":     # less the same with the DX's cells taken from another time of the stretch
            k = strong.shape[1] // 2
            null, nok = lift_of(np.roll(strong, k, axis=1), np.roll(weak, k, axis=1))
            out.append((r, float(lift[ok].mean() - null[nok].mean())))
            continue
        out.append((r, float(lift[ok].mean())))
    return out


def guided_events(dx: np.ndarray, me: np.ndarray, threshold_db: float, gap_s: float = 1.0, mode: str = "bed",
                  strong_db: float = GUIDED_STRONG_DB) -> list:
    return [r for r, score in guided_scores(dx, me, gap_s, mode, strong_db) if score >= threshold_db]


# --detector pitch: the QC's second speech_in_me finder alone (pipeline.leaks.pitch_leaks: the M&E's harmonic
# contrast at the DX's pitch per stretch of dialogue), at `threshold_db` (its pitch_contrast_db) and `dominant_db`.
def pitch_events(dx: np.ndarray, me: np.ndarray, threshold_db: float, gap_s: float = 1.0,
                 overrides: dict | None = None) -> list:
    found = leaks.pitch_leaks(ArrayReader(dx), ArrayReader(me), RATE, vad.speech_regions(ArrayReader(dx), RATE),
                              {**(overrides or {}), "pitch_contrast_db": threshold_db, "pitch_gap_s": gap_s})
    return [p.region for p in found]


def separated(cache: Path | None, key: str, sep, mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(DX, M&E) of `mix` through DFN3, kept in `cache` (an .npy pair per key) so a sweep separates once."""
    if cache is None:
        return _stream(sep, mix)
    path = cache / f"{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["dx"], z["me"]
    dx, me = _stream(sep, mix)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".tmp.npz"), dx=dx, me=me)
    path.with_suffix(".tmp.npz").rename(path)
    return dx, me


def overlaps(r, events) -> bool:
    return any(min(r.end_s, e.end_s) > max(r.start_s, e.start_s) for e in events)


OVER_BED_DB = (0.0, -6.0, -10.0)   # the audible truth's thresholds: the leak against the true M&E over it


def over_bed_counts(leaked: list, events: list) -> dict:
    """Per OVER_BED_DB threshold x: the leak intervals at or above x dB against the bed, those an event overlaps,
    and the events that overlap one of them."""
    out = {}
    for x in OVER_BED_DB:
        heard = [r for r, _, over in leaked if over >= x]
        out |= {f"leaks_bed{x:g}": len(heard), f"found_bed{x:g}": sum(overlaps(r, events) for r in heard),
                f"events_bed{x:g}": sum(overlaps(e, heard) for e in events)}
    return out


def score(rows: list[dict]) -> dict:
    tp_events = sum(r["events_true"] for r in rows)
    events = sum(r["events"] for r in rows)
    found = sum(r["leaks_found"] for r in rows)
    total = sum(r["leaks"] for r in rows)
    r10 = sum(r["found_10"] for r in rows) / max(1, sum(r["leaks_10"] for r in rows))
    r20 = sum(r["found_20"] for r in rows) / max(1, sum(r["leaks_20"] for r in rows))
    bed = {x: (sum(r[f"found_bed{x:g}"] for r in rows) / max(1, sum(r[f"leaks_bed{x:g}"] for r in rows)),
               sum(r[f"events_bed{x:g}"] for r in rows) / max(1, events),
               sum(r[f"leaks_bed{x:g}"] for r in rows)) for x in OVER_BED_DB}
    return {"reels": len(rows), "leaks": total, "events": events, "recall_10": r10, "recall_20": r20, "bed": bed,
            "recall": found / total if total else float("nan"),
            "precision": tp_events / events if events else float("nan")}


def _setting(text: str) -> tuple[str, float]:
    key, _, value = text.partition("=")
    return key.strip(), float(value)


def detector_events(args, dx: np.ndarray, me: np.ndarray, recogniser, sep, threshold: float) -> list:
    """The events of --detector over one reel's DX and M&E (`threshold`: the lift, band and guided detectors')."""
    if args.detector == "envelope":
        return envelope_events(dx, me, gap_s=args.gap_s)
    if args.detector in ("lift", "band"):
        return lift_events(dx, me, threshold, args.gap_s, args.detector == "band")
    if args.detector in ("vad+band", "guided", "vad+guided"):    # with vad+: the shipped events too, merged
        events = (guided_events(dx, me, threshold, args.gap_s, args.guided_mode, args.guided_strong_db)
                  if "guided" in args.detector
                  else lift_events(dx, me, threshold, args.gap_s, True))
        if args.detector.startswith("vad+"):
            both = detect(dx, me, recogniser, None, args.me_threshold, highpass_hz=args.me_highpass,
                          with_pitch=False) + events
            events = list(vad.merge_regions([(e.start_s, e.end_s) for e in both]))
        return events
    if args.detector == "dialogue":
        return dialogue_events(dx, args.gap_s)
    if args.detector == "pitch":
        return pitch_events(dx, me, threshold, args.gap_s, dict(_setting(x) for x in args.pitch_setting))
    return detect(dx, me, recogniser, sep if args.detector == "dfn3" else None, args.me_threshold,
                  scan=args.detector == "asr", highpass_hz=args.me_highpass, with_pitch=args.detector == "vad",
                  pitch_overrides=dict(_setting(x) for x in args.pitch_setting))


def row_of(name: str, i: int, detector: str, threshold: float, leaked: list, events: list) -> dict:
    truth = [r for r, _, _ in leaked]
    levels = [lv for _, lv, _ in leaked]
    return {"set": name, "reel": i, "part": "dev" if i % 2 == 0 else "test", "detector": detector,
            "threshold": threshold,
            "leaks": len(truth), "leaks_found": sum(overlaps(r, events) for r in truth),
            "leaks_10": sum(lv > -10 for lv in levels),
            "found_10": sum(overlaps(r, events) for r, lv in zip(truth, levels) if lv > -10),
            "leaks_20": sum(lv > -20 for lv in levels),
            "found_20": sum(overlaps(r, events) for r, lv in zip(truth, levels) if lv > -20),
            "events": len(events), "events_true": sum(overlaps(e, truth) for e in events),
            "event_words": sum(getattr(e, "words", 0) for e in events), **over_bed_counts(leaked, events)}


CONTROL_LEAK_DB = (-10.0, -20.0, -30.0)


def control_row(args, d: np.ndarray, m: np.ndarray, dx: np.ndarray, recogniser, threshold: float) -> dict:
    """--control: the detector with the separation's DX as its reference over the *true* M&E (nothing leaked:
    every event is a false alarm) and over the true M&E with the true dialogue planted in it at each
    CONTROL_LEAK_DB against the dialogue (a stretch of dialogue an event overlaps is a leak found)."""
    stretches = dialogue_events(dx, args.gap_s)
    row = {"stretches": len(stretches),
           "false_events": len(detector_events(args, dx, m, recogniser, None, threshold))}
    for db in CONTROL_LEAK_DB:
        events = detector_events(args, dx, m + d * 10 ** (db / 20), recogniser, None, threshold)
        row[f"found_at{db:g}"] = sum(overlaps(r, events) for r in stretches)
    return row


def print_control(rows: list[dict]) -> None:
    print("\nControl: the true M&E (false events per stretch of dialogue) and the true dialogue planted in it "
          "(stretches found)\n")
    print("| set | part | stretches | false events / stretch | " +
          " | ".join(f"found, leak {db:g} dB" for db in CONTROL_LEAK_DB) + " |")
    print("|---|---|---|---|" + "---|" * len(CONTROL_LEAK_DB))
    for name, part, th, group in _groups(rows):
        n = sum(r["stretches"] for r in group)
        print(f"| {name} | {part}{th} | {n} | {sum(r['false_events'] for r in group) / max(n, 1):.2f} | " +
              " | ".join(f"{sum(r[f'found_at{db:g}'] for r in group) / max(n, 1):.2f}" for db in CONTROL_LEAK_DB)
              + " |")


def _groups(rows: list[dict]):
    """(set, part, threshold label, rows) for each set, part and threshold that has rows."""
    several = len({r["threshold"] for r in rows}) > 1
    for name in sorted({r["set"] for r in rows}):
        for part in ("dev", "test"):
            for th in sorted({r["threshold"] for r in rows}):
                group = [r for r in rows if r["set"] == name and r["part"] == part and r["threshold"] == th]
                if group:
                    yield name, part, f", {th:g} dB" if several else "", group


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, action="append", required=True, help="a set with an eval/ split")
    p.add_argument("--reels", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--leak-db", type=float, default=-30.0)
    p.add_argument("--dialogue-db", type=float, nargs=2, default=(-10.0, 0.0),
                   help="dialogue level against the bed, dB range (separation benchmark: -10 0; film: 5 15)")
    p.add_argument("--asr", action="store_true", help="confirm the events with the bundled recogniser")
    p.add_argument("--lift-db", type=float, nargs="+", default=[LIFT_DB],
                   help="lift, band and guided detectors: their threshold (dB); several: a sweep, a table each")
    p.add_argument("--duck-db", type=float, default=0.0, help="duck the bed this much under each line (dB)")
    p.add_argument("--detector", choices=("vad", "dfn3", "asr", "envelope", "dialogue", "lift", "band", "vad+band",
                                          "guided", "vad+guided", "pitch", "vad-only"), default="vad",
                   help="reelsplit's: the VAD on the M&E and the pitch finder (vad-only: the VAD alone, as before "
                        "2026-12-05; pitch: the pitch finder alone), the VAD on the speech DFN3 extracts from the "
                        "M&E, the recogniser over "
                        "all the M&E during dialogue (with --asr), the M&E's envelopes moving with the DX's "
                        "(envelope), every stretch of dialogue (dialogue: the baseline), the M&E's speech band "
                        "louder during a line than around it (lift; band: against its other bands), the M&E in the "
                        "DX's strong time-frequency cells (guided); vad+…: the shipped events merged with another's")
    p.add_argument("--gap-s", type=float, default=ENVELOPE_GAP_S,
                   help="envelope and dialogue detectors: the DX's speech merged across this many seconds")
    p.add_argument("--csv", type=Path)
    p.add_argument("--guided-mode", choices=("bed", "dx", "null"), default="bed")
    p.add_argument("--guided-strong-db", type=float, default=GUIDED_STRONG_DB)
    p.add_argument("--pitch-setting", action="append", default=[], metavar="KEY=VALUE",
                   help="vad and pitch detectors: a pitch finder threshold other than the shipped one (e.g. "
                        "pitch_max_s=5, dominant_db=10; the pitch detector's contrast is --lift-db)")
    p.add_argument("--me-highpass", type=float, default=0.0,
                   help="vad detector: high-pass the M&E at this many Hz before its VAD (0: off, as shipped)")
    p.add_argument("--control", action="store_true",
                   help="also run the detector over the true M&E, clean and with the dialogue planted in it")
    p.add_argument("--cache", type=Path, help="keep each reel's DFN3 DX and M&E here (a sweep separates once)")
    p.add_argument("--part", choices=("dev", "test"), help="only this part (choices are made on dev)")
    p.add_argument("--me-threshold", type=float, default=leaks.SPEECH_IN_ME["vad_threshold"],
                   help="the VAD's threshold on the M&E (default reelsplit's)")
    args = p.parse_args(argv)
    sep = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), SeparationSettings())
    recogniser = None
    if args.asr:
        from pipeline import asr_model
        recogniser = asr_model.load_recogniser(asr_model.resolve_asr_model("bundled"))
    rows = []
    for corpus in args.corpus:
        split = corpus / "eval" if (corpus / "eval").is_dir() else corpus
        files = {s: sorted((split / s).glob("*.wav")) for s in ("dialogue", "music", "effects")}
        rng = np.random.default_rng(args.seed)
        for i in range(args.reels):
            d, m = make_reel(files, args.seconds, rng, tuple(args.dialogue_db), args.duck_db)
            if args.part and (i % 2 == 0) != (args.part == "dev"):
                continue
            t0 = time.perf_counter()
            key = f"{corpus.name}_s{args.seed}_{args.seconds:g}s_d{args.dialogue_db[0]:g}_{args.dialogue_db[1]:g}" \
                  f"_duck{args.duck_db:g}_{i}"
            dx, me = separated(args.cache, key, sep, d + m)
            leaked = true_leaks(d, me - m, args.leak_db, m)
            for threshold in args.lift_db:
                events = detector_events(args, dx, me, recogniser, sep, threshold)
                rows.append(row_of(corpus.name, i, args.detector, threshold, leaked, events) |
                            (control_row(args, d, m, dx, recogniser, threshold) if args.control else {}) |
                            {"seconds": round(time.perf_counter() - t0, 1)})
                print(rows[-1], flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(f"\nleaks above {args.leak_db:g} dB against the dialogue; detector {args.detector}"
          f"{' + ASR' if args.asr else ''}\n")
    print("| set | part | reels | leak intervals | events | recall | recall > -20 dB | recall > -10 dB | precision |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, part, th, group in _groups(rows):
        s = score(group)
        print(f"| {name} | {part}{th} | {s['reels']} | {s['leaks']} | {s['events']} | {s['recall']:.2f} | "
                  f"{s['recall_20']:.2f} | {s['recall_10']:.2f} | {s['precision']:.2f} |")
    print("\nThe audible truth: leak intervals also at or above x dB against the true M&E over them "
          "(recall / precision, leak intervals)\n")
    print("| set | part | " + " | ".join(f"over the bed ≥ {x:g} dB" for x in OVER_BED_DB) + " |")
    print("|---|---|" + "---|" * len(OVER_BED_DB))
    for name, part, th, group in _groups(rows):
        s = score(group)
        print(f"| {name} | {part}{th} | " + " | ".join(f"{rc:.2f} / {pr:.2f} ({n})" for rc, pr, n in s["bed"].values())
              + " |")
    if args.control:
        print_control(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
