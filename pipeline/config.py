"""Run settings from YAML (`configs/default.yaml`) as frozen, range-checked dataclasses.

`check_range` / `check_choice` are the one validator every config and profile value goes through, so a bad
value is always one ConfigError that names the file, the key and what is allowed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"

# Which output stem each model stem belongs to. DX is dialogue; everything else ends up in M&E
# (M&E itself is always recomputed as mix - DX so the stems null against the mix); MX/FX are kept as
# separate deliverables only when the model really has music/effects stems.
DEFAULT_STEM_MAP: dict[str, str] = {
    "vocals": "DX", "dialogue": "DX", "speech": "DX",
    "music": "MX", "effects": "FX", "sfx": "FX",
    "drums": "ME", "bass": "ME", "other": "ME", "guitar": "ME", "piano": "ME",
}
STEM_TARGETS = ("DX", "MX", "FX", "ME")
OUTPUT_TRACKS = ("interleaved", "source")   # the deliverable's track structures (pipeline/deliverable.py)


def check_range(value: Any, lo: float, hi: float, key: str, source: str | Path = "config") -> float:
    """`value` as a float in [lo, hi], else ConfigError naming the key and the allowed range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} must be a number in [{lo}, {hi}], got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ConfigError(f"{source}: {key} must be in [{lo}, {hi}], got {value!r}")
    return number


def check_choice(value: Any, choices, key: str, source: str | Path = "config"):
    if value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise ConfigError(f"{source}: {key} must be one of {allowed}; got {value!r}")
    return value


def check_mapping(value: Any, key: str, source: str | Path = "config") -> dict:
    """`value` as a dict (None/absent → empty), else ConfigError: a section written as a scalar or a list."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {key} must be a mapping of keys to values, got {value!r}")
    return dict(value)


def check_keys(data: Mapping, allowed, section: str, source: str | Path) -> None:
    unknown = sorted(map(str, set(data) - set(allowed)))
    if unknown:
        raise ConfigError(f"{source}: unknown key {section}{unknown[0]} (known: {', '.join(sorted(allowed))})")


def load_yaml(path: Path) -> dict:
    """A YAML mapping from `path`, or ConfigError saying why not."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", path) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})", path) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level", path)
    return data


@dataclass(frozen=True)
class SeparationSettings:
    """How the separation model runs. Demucs settings follow `demucs.apply.apply_model`'s arguments."""

    model: str = "auto"              # auto | dfn3 | a demucs name | path to .th/.safetensors | repo folder
    segment: float | None = None     # seconds per demucs forward; None = the model's own
    overlap: float = 0.25            # fraction of overlap between demucs segments
    shifts: int = 0                  # random time-shift averaging passes (demucs: better, slower)
    split: bool = True               # always: separation streams segment by segment (apply_model's split=True)
    device: str = "cpu"              # cpu | cuda | auto
    dfn3_atten_lim_db: float = 100.0  # DeepFilterNet3 max attenuation; lower keeps more ambience in DX
    dfn3_pairs: str = "mid"          # stereo pairs: "mid" (DFN3 of L+R, placed back by pan) or "channels"
    batch_segments: int = 0          # demucs segments per forward pass; 0 = auto (1 on the CPU, fit to GPU memory)
    precision: str = "fp32"          # demucs on CUDA: fp32 | bf16 | fp16 (autocast); the CPU runs fp32 only
    dfn3_workers: int = 0            # processes running a reel's DFN3 streams at once; 0 = one per stream, up to
                                     # the cores
    surround: str = "centre"         # dfn3 on 5.0/5.1/7.1: "centre" (dialogue from the centre first; the other
                                     # channels keep DX only for speech of their own) | "all" (every group alike)
    device_reels: int = 0            # reels separating on a CUDA device at once (the others wait, running their
                                     # CPU stages meanwhile); 0 = auto: 1 on CUDA, no limit on the CPU


def parse_tracks(value: Any, source: str | Path = "config") -> tuple[str, ...] | None:
    """A track map from YAML (a list) or the command line ("L,R,C,LFE,Ls,Rs"); None when absent."""
    from .master import check_track_map

    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{source}: tracks must be a list of track labels, got {value!r}")
    try:
        return check_track_map(items)
    except ValueError as exc:
        raise ConfigError(f"{source}: tracks: {exc}") from None


def _check_split(value: Any, source: str | Path) -> bool:
    """`split: true` only: reelsplit separates segment by segment so memory stays flat however long the reel,
    which is apply_model's split=True; split=False would hold the whole reel in one forward pass."""
    check_choice(value, (True, False), "separation.split", source)
    if value is not True:
        raise ConfigError(f"{source}: separation.split: false is not supported: reelsplit separates segment by "
                          "segment so memory stays flat (apply_model's split=True); set separation.segment to "
                          "choose the segment length")
    return True


SURROUND_MODES = ("centre", "all")
TRANSCRIBE_SOURCES = ("dx", "mix", "blend", "dx+mix")


@dataclass(frozen=True)
class TranscribeSettings:
    """Speech recognition of each reel (pipeline/asr.py, pipeline/asr_model.py)."""

    enabled: bool = True          # --no-transcribe turns it off
    model: str = "bundled"        # bundled (Whisper base, verified) | a faster-whisper model folder | its model name
    language: str = "auto"        # auto: detected on each reel's first speech | ISO 639-1 (en, fr, ...)
    source: str = "blend"         # what is recognised: blend (DX + M&E 6 dB down) | dx | mix | dx+mix (the surer)
    beam_size: int = 1            # 1: greedy


def check_asr_language(value: Any, source: str | Path = "config", key: str = "transcribe.language") -> str:
    """"auto", or an ISO 639-1 code as Whisper takes it ("en"; a few 3-letter ones such as "haw"), else
    ConfigError."""
    from .asr_model import iso639_2

    text = str(value).strip().lower()
    if text == "auto":
        return text
    if not (2 <= len(text) <= 3 and text.isascii() and text.isalpha()) or iso639_2(text) == "und":
        raise ConfigError(f"{source}: {key} must be auto or an ISO 639-1 language code such as en or fr; "
                          f"got {value!r}")
    return text


def _transcribe_settings(data: Any, source: str | Path) -> TranscribeSettings:
    section = check_mapping(data, "transcribe", source)
    check_keys(section, {f.name for f in fields(TranscribeSettings)}, "transcribe.", source)
    base = TranscribeSettings()
    return TranscribeSettings(
        enabled=check_choice(section.get("enabled", base.enabled), (True, False), "transcribe.enabled", source),
        model=str(section.get("model", base.model) or base.model),
        language=check_asr_language(section.get("language", base.language), source),
        source=check_choice(section.get("source", base.source), TRANSCRIBE_SOURCES, "transcribe.source", source),
        beam_size=int(check_range(section.get("beam_size", base.beam_size), 1, 10, "transcribe.beam_size", source)))


def with_transcribe(settings: "Settings", *, off: bool = False, model: str | None = None,
                    language: str | None = None) -> "Settings":
    """The settings with the command line's --no-transcribe, --asr-model and --language on top."""
    t = settings.transcribe
    t = replace(t, enabled=t.enabled and not off, model=model or t.model,
                language=check_asr_language(language, "--language", "--language") if language else t.language)
    return replace(settings, transcribe=t)


@dataclass(frozen=True)
class Settings:
    separation: SeparationSettings = field(default_factory=SeparationSettings)
    stem_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_STEM_MAP))
    cleanup: str = "auto"            # auto | noisereduce | dfn3 | none (auto: see cleanup.resolve_method)
    language: str = "und"            # ISO 639-2 code for the mix and DX tracks; M&E is tagged "zxx"
    stereo_downmix: bool = False     # 5.0/5.1/7.1 sources also get BS.775 stereo stems (OUT/<title>/stereo/)
    me_package: bool = False         # the M&E package: 2.0 M&E, FX = M&E − MX, a dialogue guide (pipeline/package.py)
    tracks: tuple[str, ...] | None = None   # track map: a label per audio channel of the file (pipeline/master.py)
    output_tracks: str = "interleaved"      # the deliverable's track structure: interleaved | source (deliverable.py)
    transcribe: TranscribeSettings = field(default_factory=TranscribeSettings)

    @staticmethod
    def from_dict(data: Mapping, source: str | Path = "config") -> "Settings":
        check_keys(data, {"separation", "stem_map", "cleanup", "language", "stereo_downmix", "tracks", "me_package",
                          "output_tracks", "transcribe"}, "", source)
        sep = check_mapping(data.get("separation"), "separation", source)
        check_keys(sep, {f.name for f in fields(SeparationSettings)}, "separation.", source)
        base = SeparationSettings()
        segment = sep.get("segment", base.segment)
        separation = SeparationSettings(
            model=str(sep.get("model", base.model)),
            segment=None if segment is None else check_range(segment, 1.0, 60.0, "separation.segment", source),
            overlap=check_range(sep.get("overlap", base.overlap), 0.0, 0.9, "separation.overlap", source),
            shifts=int(check_range(sep.get("shifts", base.shifts), 0, 20, "separation.shifts", source)),
            split=_check_split(sep.get("split", base.split), source),
            device=check_choice(sep.get("device", base.device), ("cpu", "cuda", "auto"), "separation.device", source),
            dfn3_atten_lim_db=check_range(sep.get("dfn3_atten_lim_db", base.dfn3_atten_lim_db), 0.0, 100.0,
                                          "separation.dfn3_atten_lim_db", source),
            dfn3_pairs=check_choice(sep.get("dfn3_pairs", base.dfn3_pairs), ("mid", "channels"),
                                    "separation.dfn3_pairs", source),
            batch_segments=int(check_range(sep.get("batch_segments", base.batch_segments), 0, 1024,
                                           "separation.batch_segments", source)),
            precision=check_choice(sep.get("precision", base.precision), ("fp32", "bf16", "fp16"),
                                   "separation.precision", source),
            dfn3_workers=int(check_range(sep.get("dfn3_workers", base.dfn3_workers), 0, 256,
                                         "separation.dfn3_workers", source)),
            surround=check_choice(sep.get("surround", base.surround), SURROUND_MODES, "separation.surround",
                                  source),
            device_reels=int(check_range(sep.get("device_reels", base.device_reels), 0, 64,
                                         "separation.device_reels", source)),
        )
        stem_map = dict(DEFAULT_STEM_MAP)
        for stem, target in check_mapping(data.get("stem_map"), "stem_map", source).items():
            stem_map[str(stem)] = check_choice(target, STEM_TARGETS, f"stem_map.{stem}", source)
        language = str(data.get("language", "und"))
        if not (len(language) == 3 and language.isascii() and language.isalpha() and language.islower()):
            raise ConfigError(f"{source}: language must be a 3-letter ISO 639-2 code such as eng; got {language!r}")
        return Settings(
            separation=separation,
            stem_map=stem_map,
            cleanup=check_choice(data.get("cleanup", "auto"), ("auto", "noisereduce", "dfn3", "none"), "cleanup", source),
            language=language,
            stereo_downmix=check_choice(data.get("stereo_downmix", False), (True, False), "stereo_downmix", source),
            tracks=parse_tracks(data.get("tracks"), source),
            me_package=check_choice(data.get("me_package", False), (True, False), "me_package", source),
            output_tracks=check_choice(data.get("output_tracks", "interleaved"), OUTPUT_TRACKS, "output_tracks",
                                       source),
            transcribe=_transcribe_settings(data.get("transcribe"), source),
        )

    @staticmethod
    def load(path: Path | None = None) -> "Settings":
        path = Path(path) if path else DEFAULT_CONFIG
        return Settings.from_dict(load_yaml(path), source=path)


def with_speed_options(settings: Settings, precision: str | None, batch_segments: int | None) -> Settings:
    """`settings` with --precision / --batch-segments on top (ConfigError for a batch below 0)."""
    changes = {}
    if precision:
        changes["precision"] = precision
    if batch_segments is not None:
        changes["batch_segments"] = int(check_range(batch_segments, 0, 1024, "--batch-segments", "command line"))
    if not changes:
        return settings
    return replace(settings, separation=replace(settings.separation, **changes))
