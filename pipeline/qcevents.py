"""QC events: where in a reel something is wrong, timecoded, so a mixer can find it, hear it and fix it.

Each check (pipeline.battery for the signal checks, pipeline.leaks for speech left in the M&E and music/effects
left in the DX) gives QcEvent values; the profile's rules (`qc_events:` in its YAML) say which of them fail a
reel; `<title>_qc_events.csv` lists them all with timecodes on the source's clock.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .errors import ConfigError
from .outputs import write_text_atomic
from .timecode import StartTimecode

KINDS = ("speech_in_me", "bed_in_dx", "silent_channel", "dropout", "clicks", "phase", "lfe_band", "dc_offset",
         "clipping", "duration_mismatch")
COLUMNS = ("kind", "start_tc", "end_tc", "start_s", "end_s", "stem", "channel", "level_db", "words", "detail")
FAILS = ("never", "any", "level", "words", "level_or_words")


@dataclass(frozen=True)
class QcEvent:
    """One finding: `kind` (KINDS) over [start_s, end_s) of media time (seconds from the reel's first sample),
    on `stem` (MIX, DX, ME; "" for the reel) and `channel` (its label: L, C, LFE, a pair "L/R"; "" for every
    channel), `level_db` (the check's own measure, its unit named in `detail`), `words` recognised in it (the
    ASR on the M&E for speech_in_me, else 0) and a one-line `detail` a person reads."""

    kind: str
    start_s: float
    end_s: float
    stem: str = ""
    channel: str = ""
    level_db: float | None = None
    words: int = 0
    detail: str = ""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Rule:
    """When events of one kind fail a reel: `fail` one of FAILS — never; any event; those at or above
    `level_db`; those with recognised words; either of the last two. Events shorter than `min_s` never fail."""

    fail: str = "never"
    level_db: float | None = None
    min_s: float = 0.0

    def fails(self, event: QcEvent) -> bool:
        if self.fail == "never" or event.duration_s < self.min_s:
            return False
        loud = (self.level_db is not None and event.level_db is not None and math.isfinite(event.level_db)
                and event.level_db >= self.level_db)
        return {"any": True, "level": loud, "words": event.words > 0,
                "level_or_words": loud or event.words > 0}[self.fail]


@dataclass(frozen=True)
class EventSettings:
    """A profile's `qc_events:`: per kind, the Rule that fails a reel and the detection thresholds its check
    reads (names and defaults belong to the check; unknown names are refused by it)."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def rule(self, kind: str) -> Rule:
        return self.rules.get(kind, Rule())

    def of(self, kind: str) -> Mapping[str, float]:
        return self.thresholds.get(kind, {})


def settings_from_dict(data: Mapping | None, source: str | Path) -> EventSettings:
    """`qc_events:` of a profile: {kind: {fail: …, fail_level_db: …, fail_min_s: …, <threshold>: number}}."""
    rules, thresholds = {}, {}
    for kind, entry in (data or {}).items():
        if kind not in KINDS:
            raise ConfigError(f"{source}: qc_events: unknown kind {kind!r} (known: {', '.join(KINDS)})", source)
        entry = dict(entry or {})
        fail = entry.pop("fail", "never")
        if fail not in FAILS:
            raise ConfigError(f"{source}: qc_events.{kind}.fail must be one of {', '.join(FAILS)}; got {fail!r}",
                              source)
        level = entry.pop("fail_level_db", None)
        if fail in ("level", "level_or_words") and level is None:
            raise ConfigError(f"{source}: qc_events.{kind}: fail {fail} needs fail_level_db", source)
        rules[kind] = Rule(fail, None if level is None else float(level), float(entry.pop("fail_min_s", 0.0)))
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: qc_events.{kind}.{key} must be a number; got {value!r}", source)
        thresholds[kind] = {k: float(v) for k, v in entry.items()}
    return EventSettings(rules, thresholds)


def merged(defaults: Mapping[str, float], overrides: Mapping[str, float], kind: str) -> dict[str, float]:
    """A check's thresholds: its `defaults` with the profile's `overrides`; ConfigError for a name the check
    does not have."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(f"qc_events.{kind}: unknown threshold {unknown[0]!r} (known: {', '.join(defaults)})")
    return {**defaults, **overrides}


def judge(events: Iterable[QcEvent], settings: EventSettings) -> list[str]:
    """One reason per kind whose rule fails the reel: how many events, the first one's time and detail."""
    failing: dict[str, list[QcEvent]] = {}
    for event in events:
        if settings.rule(event.kind).fails(event):
            failing.setdefault(event.kind, []).append(event)
    reasons = []
    for kind in KINDS:
        if kind in failing:
            first = failing[kind][0]
            where = f"{first.stem} {first.channel}".strip()
            reasons.append(f"{kind}: {len(failing[kind])} event(s), first at {first.start_s:.2f} s"
                           f"{' on ' + where if where else ''} ({first.detail})")
    return reasons


def _tc(clock: StartTimecode | None, seconds: float) -> str:
    return clock.label_at(seconds) if clock is not None else ""


def events_csv(events: Iterable[QcEvent], clock: StartTimecode | None = None) -> str:
    """The events as CSV text (COLUMNS), in time order; timecodes on the source's clock, empty without one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in sorted(events, key=lambda e: (e.start_s, KINDS.index(e.kind) if e.kind in KINDS else 99)):
        level = "" if e.level_db is None or not math.isfinite(e.level_db) else f"{e.level_db:.1f}"
        writer.writerow([e.kind, _tc(clock, e.start_s), _tc(clock, e.end_s), f"{e.start_s:.3f}", f"{e.end_s:.3f}",
                         e.stem, e.channel, level, e.words, e.detail])
    return out.getvalue()


def write_events_csv(path: Path, events: Iterable[QcEvent], clock: StartTimecode | None = None) -> Path:
    """`<title>_qc_events.csv`, written to a temporary name and renamed."""
    write_text_atomic(Path(path), events_csv(events, clock))
    return Path(path)


def read_events_csv(path: Path) -> list[QcEvent]:
    """The events of a file written by write_events_csv (for the report and for a resumed reel)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [QcEvent(r["kind"], float(r["start_s"]), float(r["end_s"]), r["stem"], r["channel"],
                    float(r["level_db"]) if r["level_db"] else None, int(r["words"] or 0), r["detail"])
            for r in rows]
