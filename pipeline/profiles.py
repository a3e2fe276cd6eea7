"""Delivery profiles: `configs/profiles/*.yaml` loaded into frozen, range-checked dataclasses."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from . import naming as names
from . import qcevents
from .config import CONFIG_DIR, check_choice, check_keys, check_range, load_yaml
from .errors import ConfigError
from .layout import LAYOUTS

PROFILE_DIR = CONFIG_DIR / "profiles"
# programme: BS.1770-4 integrated loudness of the full mix; dialog-gated: the same over the gating blocks where
# the VAD finds speech in DX (an approximation of Dolby Dialogue Intelligence); dialogue-stem: the DX stem's own
# integrated loudness (ADR / subtitling references). One gain, from that measurement, goes to every stem.
MEASUREMENTS = ("programme", "dialog-gated", "dialogue-stem")


@dataclass(frozen=True)
class Profile:
    """A distributor's loudness spec. Levels in LUFS/LU, peaks in dBTP."""

    name: str
    description: str
    measurement: str            # what the target applies to (MEASUREMENTS)
    target_lufs: float
    tolerance_lu: float
    true_peak_dbtp: float       # ceiling of the delivered mix and DX (4x oversampled)
    sample_rate: int | None     # None keeps the source rate (48 kHz film audio stays 48 kHz)
    bit_depth: int              # of the WAV stems and the PCM tracks in deliverables
    noise_reduction: float      # noisereduce prop_decrease on DX, 0 (off) .. 1 (full)
    me_true_peak_dbtp: float | None = None      # M&E ceiling when it differs (Netflix: -1 vs -2 dBTP)
    fallback_min_speech_pct: float | None = None  # dialog-gated: below this speech share, measure the programme
    fallback_target_lufs: float | None = None     # ... against this target instead
    layouts: tuple[str, ...] = tuple(LAYOUTS)   # channel layouts the spec accepts (pipeline.layout)
    naming: str = names.DEFAULT_NAMING          # stem file names: {title} {stem} {layout} {rate} {bits} {fps}
    normalize: bool = True      # False: no gain (the mix keeps its level), measured and verified; limited only
                                # where a ceiling is passed
    channel_naming: str = ""    # one channel's file name (+ {channel}); "": naming with .{channel} before .wav
    stem_names: Mapping[str, str] = field(default_factory=dict)   # MIX/DX/ME/MX/FX -> the spec's {stem}
    split_channels: bool = False    # each multichannel stem also as discrete mono WAVs, one per channel
    qc_events: qcevents.EventSettings = field(default_factory=qcevents.EventSettings)  # which events fail a reel

    @property
    def me_ceiling_dbtp(self) -> float:
        return self.true_peak_dbtp if self.me_true_peak_dbtp is None else self.me_true_peak_dbtp

    @property
    def digest(self) -> str:
        """A short hash of every field: part of the cache key, so a changed profile re-runs files."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def file_name(self, fields: names.NameFields, stem: str, channel: str | None = None) -> str:
        """The file name of stem `stem` (MIX, DX, ME, MX, FX) of a reel with `fields`, or of its channel
        `channel` (L, R, C, LFE, …). MediaError when the naming has {fps} and the reel has no frame rate."""
        template = self.naming if channel is None else names.channel_template(self.naming, self.channel_naming)
        return names.render(template, fields, self.stem_names.get(stem, stem), channel)

    def check_names(self, cases, source: str | Path = "profile") -> None:
        """ConfigError unless every stem, and every channel of a split stem, gets its own file name in each of
        `cases` ((NameFields, Layout) pairs; MediaError for {fps} without a frame rate)."""
        names.check_distinct(self.naming, names.channel_template(self.naming, self.channel_naming),
                             self.stem_names, source, cases)

    @staticmethod
    def from_dict(data: dict, source: str | Path) -> "Profile":
        allowed = {"name", "description", "measurement", "target_lufs", "tolerance_lu", "true_peak_dbtp",
                   "sample_rate", "bit_depth", "noise_reduction", "me_true_peak_dbtp", "fallback_min_speech_pct",
                   "fallback_target_lufs", "layouts", "naming", "normalize", "channel_naming", "stem_names",
                   "split_channels", "qc_events"}
        check_keys(data, allowed, "", source)
        missing = [k for k in ("name", "target_lufs", "true_peak_dbtp") if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing key {missing[0]}", source)
        rate = data.get("sample_rate")
        optional = {k: (None if data.get(k) is None else check_range(data[k], lo, hi, k, source))
                    for k, lo, hi in (("me_true_peak_dbtp", -12.0, 0.0), ("fallback_min_speech_pct", 0.0, 100.0),
                                      ("fallback_target_lufs", -40.0, -5.0))}
        if (optional["fallback_min_speech_pct"] is None) != (optional["fallback_target_lufs"] is None):
            raise ConfigError(f"{source}: fallback_min_speech_pct and fallback_target_lufs go together", source)
        layouts = data.get("layouts", tuple(LAYOUTS))
        if not isinstance(layouts, (list, tuple)) or not layouts:
            raise ConfigError(f"{source}: layouts must be a list of {', '.join(LAYOUTS)}; got {layouts!r}", source)
        layouts = tuple(layouts)
        for layout in layouts:
            check_choice(layout, tuple(LAYOUTS), "layouts", source)
        profile = Profile(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            measurement=check_choice(data.get("measurement", "programme"), MEASUREMENTS, "measurement", source),
            target_lufs=check_range(data["target_lufs"], -40.0, -5.0, "target_lufs", source),
            tolerance_lu=check_range(data.get("tolerance_lu", 1.0), 0.1, 5.0, "tolerance_lu", source),
            true_peak_dbtp=check_range(data["true_peak_dbtp"], -12.0, 0.0, "true_peak_dbtp", source),
            sample_rate=None if rate in (None, "source") else int(
                check_choice(rate, (44100, 48000, 96000), "sample_rate", source)),
            bit_depth=int(check_choice(data.get("bit_depth", 24), (16, 24, 32), "bit_depth", source)),
            noise_reduction=check_range(data.get("noise_reduction", 0.5), 0.0, 1.0, "noise_reduction", source),
            layouts=layouts,
            normalize=check_choice(data.get("normalize", True), (True, False), "normalize", source),
            split_channels=check_choice(data.get("split_channels", False), (True, False), "split_channels",
                                        source),
            qc_events=qcevents.settings_from_dict(data.get("qc_events"), source),
            **_naming(data, source),
            **optional,
        )
        profile.check_names(names.sample_cases(), source)
        return profile


def _naming(data: dict, source: str | Path) -> dict:
    """The naming keys of a profile, each template checked on its own (`Profile.check_names` checks that they
    give every file its own name)."""
    naming = names.check_template(data.get("naming", names.DEFAULT_NAMING), "naming", source, channel=False)
    channel_naming = data.get("channel_naming")
    if channel_naming is not None:
        names.check_template(channel_naming, "channel_naming", source, channel=True)
    return dict(naming=naming, channel_naming=channel_naming or "",
                stem_names=names.check_stem_names(data.get("stem_names"), source))


def available(profile_dir: Path = PROFILE_DIR) -> dict[str, Path]:
    """Profile names → their YAML files."""
    return {p.stem: p for p in sorted(Path(profile_dir).glob("*.yaml"))}


def load_profile(name_or_path: str | Path, profile_dir: Path = PROFILE_DIR) -> Profile:
    """A profile by name (from `profile_dir`) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        known = available(profile_dir)
        if str(name_or_path) not in known:
            raise ConfigError(f"unknown profile {name_or_path!r} (known: {', '.join(known) or 'none'})")
        path = known[str(name_or_path)]
    return Profile.from_dict(load_yaml(path), source=path)
