"""Quality control of what was actually written: every stem read back and measured against the profile.

Checks: the profile's loudness measurement within target ± tolerance, true peak of each stem under its
ceiling, the null test (peak of MIX − (DX + M&E) after 24-bit quantisation), no clipped samples, the layout
and rate the spec accepts. Also the leakage figures a localisation QC looks at first: speech the VAD still
finds in M&E while dialogue is active, and what DX carries where there is no dialogue.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from . import vad
from .deliver import choose_measurement, measured_stem, read_measurement
from .loudness import gated_loudness
from .meter import LoudnessMeter, TruePeakMeter
from .profiles import Profile

NULL_LIMIT_DBFS = -100.0      # DX + M&E must rebuild the mix to this (24-bit quantisation is about −138 dBFS)
FULL_SCALE = 1.0 - 2.0 ** -23  # a 24-bit sample at or above this has clipped


@dataclass(frozen=True)
class QcResult:
    """Levels in LUFS, peaks in dBTP/dBFS, shares in %, times in seconds."""

    qc: str                          # pass | fail
    reasons: tuple[str, ...]         # each failed check: measured vs allowed
    measurement: str                 # the profile's measurement actually used (after any fallback)
    target_lufs: float
    measured_lufs: float             # that measurement on the delivered files
    output_lufs: float               # delivered mix, programme integrated
    dialog_gated_lufs: float         # delivered mix over the speech blocks
    lra_lu: float
    short_term_max_lufs: float       # delivered mix, EBU Tech 3341 short-term (3 s) maximum
    momentary_max_lufs: float        # delivered mix, momentary (400 ms) maximum
    dx_lufs: float
    me_lufs: float
    true_peak_dbtp: float            # max over every written stem
    stem_true_peaks: dict[str, float]
    null_residual_dbfs: float
    clipped_samples: int
    speech_pct: float                # share of the programme with dialogue (VAD on DX)
    speech_leak_pct: float           # share of dialogue-active time in which the VAD finds speech in M&E
    me_to_dx_db: float               # M&E level against DX during dialogue, dB
    dx_nonspeech_lu: float           # DX level where there is no dialogue, relative to DX during dialogue, LU
    samples: int
    rate: int
    speech: tuple[vad.Region, ...] = ()
    short_term: dict[str, np.ndarray] = field(default_factory=dict)   # MIX/DX/ME short-term LUFS per 0.1 s
    me_speech: tuple[vad.Region, ...] = ()                            # the VAD's regions of the written M&E
    me_candidates: tuple[vad.Region, ...] = ()   # ... at the speech_in_me events' own (lower) VAD threshold
    momentary: dict[str, np.ndarray] = field(default_factory=dict)    # MIX/DX/ME 400-ms block LUFS per 0.1 s


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else float("-inf")


def _overlap_s(a, b) -> float:
    return sum(max(0.0, min(x.end_s, y.end_s) - max(x.start_s, y.start_s)) for x in a for y in b)


def _as_regions(regions) -> tuple[vad.Region, ...]:
    return tuple(r if isinstance(r, vad.Region) else vad.Region(*map(float, r)) for r in regions)


@dataclass(frozen=True)
class _ReadBack:
    """What one pass over the written stems measured."""

    samples: int
    rate: int
    meters: dict[str, LoudnessMeter]   # MIX, DX, ME
    peaks: dict[str, TruePeakMeter]    # every stem, clipped samples counted at FULL_SCALE
    residual: float                    # max |MIX - (DX + M&E)|, in float64 from the 24-bit samples
    e_dx: float                        # energy of DX inside the speech regions
    e_me: float                        # energy of M&E inside the speech regions


def check_stems_stream(wavs: dict[str, Path], layout: str, profile: Profile, speech, me_speech,
                       block_s: float = 10.0, me_candidates=()) -> QcResult:
    """Read the written WAVs (at least MIX, DX, ME) back block by block (`block_s` seconds at a time), in memory
    that does not grow with their length, measure them and give the verdict. The VAD regions of DX (`speech`)
    and of M&E (`me_speech`), vad.Region or (start_s, end_s), are computed elsewhere (a streaming VAD) and
    passed in; `me_candidates`, the M&E's regions at the speech_in_me events' threshold, are kept for them.
    """
    speech, me_speech = _as_regions(speech), _as_regions(me_speech)
    read = _read_back(wavs, layout, speech, block_s)
    duration = read.samples / read.rate if read.rate else 0.0
    speech_s = sum(r.duration_s for r in speech)
    m = dict(
        _loudness_figures(read.meters, speech, profile),
        stem_true_peaks={name: p.dbtp for name, p in read.peaks.items()},
        null_residual_dbfs=_db(read.residual),
        clipped_samples=int(sum(p.clipped for p in read.peaks.values())),
        speech_pct=100.0 * vad.speech_fraction(speech, duration) if duration else 0.0,
        speech_leak_pct=100.0 * _overlap_s(speech, me_speech) / speech_s if speech_s else 0.0,
        me_to_dx_db=10 * math.log10(read.e_me / read.e_dx) if read.e_dx > 0 and read.e_me > 0 else float("-inf"),
        samples=read.samples, rate=read.rate, speech=speech, me_speech=me_speech,
        me_candidates=_as_regions(me_candidates),
        momentary={name: meter.gating_blocks() for name, meter in read.meters.items()},
    )
    m["true_peak_dbtp"] = max(m["stem_true_peaks"].values())
    reasons = verdict(profile, layout, m)
    return QcResult(qc="fail" if reasons else "pass", reasons=tuple(reasons), **m)


def _read_back(wavs: dict[str, Path], layout: str, speech: tuple[vad.Region, ...], block_s: float) -> _ReadBack:
    """One pass over the WAVs, `block_s` seconds at a time, feeding the meters; ValueError if they differ in
    length or could not be read to the end."""
    with contextlib.ExitStack() as stack:
        files = {name: stack.enter_context(sf.SoundFile(str(path))) for name, path in wavs.items()}
        lengths = {f.frames for f in files.values()}
        if len(lengths) != 1:
            raise ValueError(f"written stems differ in length: {sorted(lengths)} samples")
        samples = lengths.pop()
        rate = next(reversed(files.values())).samplerate if files else 0
        peaks = {name: TruePeakMeter(rate, f.channels, clip_level=FULL_SCALE) for name, f in files.items()}
        meters = {name: LoudnessMeter(rate, files[name].channels, layout) for name in ("MIX", "DX", "ME")}
        # speech regions as sample ranges [a, b)
        cuts = np.array([(int(r.start_s * rate), int(r.end_s * rate)) for r in speech], dtype=np.int64).reshape(-1, 2)
        residual, e_dx, e_me, pos = 0.0, 0.0, 0.0, 0
        frames = max(1, int(round(block_s * rate)))
        while pos < samples:
            data = {name: f.read(frames, dtype="float32", always_2d=True) for name, f in files.items()}
            n = data["MIX"].shape[0]
            if n == 0 or any(a.shape[0] != n for a in data.values()):
                raise ValueError(f"written stems could not be read to the end: {samples - pos} samples short")
            for name, a in data.items():
                peaks[name].add(a)
            for name, m in meters.items():
                m.add(data[name])
            mix, dx, me = data["MIX"], data["DX"], data["ME"]
            diff = np.abs(mix.astype(np.float64) - (dx.astype(np.float64) + me.astype(np.float64)))
            residual = max(residual, float(diff.max()))
            for a, b in cuts[(cuts[:, 0] < pos + n) & (cuts[:, 1] > pos)]:
                a, b = max(int(a), pos) - pos, min(int(b), pos + n) - pos
                e_dx += float(np.sum(np.square(dx[a:b], dtype=np.float64)))
                e_me += float(np.sum(np.square(me[a:b], dtype=np.float64)))
            pos += n
    return _ReadBack(samples, rate, meters, peaks, residual, e_dx, e_me)


def _loudness_figures(meters: dict[str, LoudnessMeter], speech: tuple[vad.Region, ...], profile: Profile) -> dict:
    """The loudness figures of QcResult from the meters of MIX, DX and ME: the profile's measurement (after any
    fallback, on the share of gating blocks with speech), programme, dialog-gated and stem loudness, LRA, the
    short-term and momentary maxima, DX outside dialogue."""
    mix = meters["MIX"]
    blocks_mix, blocks_dx = mix.gating_blocks(), meters["DX"].gating_blocks()
    mask = vad.block_mask(speech, blocks_mix.size)
    measurement, target = choose_measurement(profile, 100.0 * float(mask.mean()) if mask.size else 0.0)
    short_term = {n: m.short_term() for n, m in meters.items()}
    dx_speech = gated_loudness(blocks_dx, mask)
    dx_quiet = gated_loudness(blocks_dx, ~mask)
    return dict(
        measurement=measurement, target_lufs=target,
        measured_lufs=read_measurement(measurement, meters[measured_stem(measurement)], mask),
        output_lufs=mix.integrated(), dialog_gated_lufs=gated_loudness(blocks_mix, mask), lra_lu=mix.lra(),
        dx_lufs=meters["DX"].integrated(), me_lufs=meters["ME"].integrated(), short_term=short_term,
        short_term_max_lufs=float(short_term["MIX"].max()) if short_term["MIX"].size else float("-inf"),
        momentary_max_lufs=float(blocks_mix.max()) if blocks_mix.size else float("-inf"),
        dx_nonspeech_lu=dx_quiet - dx_speech if math.isfinite(dx_speech) else float("nan"),
    )


def verdict(profile: Profile, layout: str, m: dict) -> list[str]:
    """Each failed check as "what: measured vs allowed"; empty when the file meets the spec."""
    reasons = []
    label = {"programme": "integrated", "dialog-gated": "dialog-gated", "dialogue-stem": "DX integrated"}
    low, high = m["target_lufs"] - profile.tolerance_lu, m["target_lufs"] + profile.tolerance_lu
    if not low <= m["measured_lufs"] <= high:
        reasons.append(f"{label[m['measurement']]} {m['measured_lufs']:.1f} LUFS outside "
                       f"{m['target_lufs']:.1f} ±{profile.tolerance_lu:g}")
    for stem, peak in m["stem_true_peaks"].items():
        ceiling = profile.me_ceiling_dbtp if stem == "ME" else profile.true_peak_dbtp
        if peak > ceiling:
            reasons.append(f"{stem} true peak {peak:.2f} dBTP above {ceiling:.1f}")
    if m["null_residual_dbfs"] > NULL_LIMIT_DBFS:
        reasons.append(f"null test residual {m['null_residual_dbfs']:.1f} dBFS above {NULL_LIMIT_DBFS:.0f}")
    if m["clipped_samples"]:
        reasons.append(f"{m['clipped_samples']} clipped samples, 0 allowed")
    if layout not in profile.layouts:
        reasons.append(f"layout {layout} not among the spec's {', '.join(profile.layouts)}")
    if profile.sample_rate and m["rate"] != profile.sample_rate:
        reasons.append(f"sample rate {m['rate']} Hz, spec {profile.sample_rate} Hz")
    return reasons
