"""Property-based tests (hypothesis) of the parsers that take outside input: settings and delivery profiles (YAML a
person writes), SMPTE timecode, and ffprobe's JSON.

The contracts: a config or profile either loads into values inside their documented ranges or fails with ONE
ConfigError line (never a traceback); every timecode label maps back to its frame and labels run in order; any
ffprobe-like JSON becomes a MediaInfo whose streams are usable (channels and rate > 0, finite durations) or a
MediaError. Examples are derandomized (the same on every run, so CI cannot flake) and no database is written;
what the fuzzing found is listed in docs/RELIABILITY.md.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pipeline import timecode
from pipeline.config import DEFAULT_CONFIG, STEM_TARGETS, SeparationSettings, Settings, load_yaml
from pipeline.errors import ConfigError, MediaError
from pipeline.layout import LAYOUTS
from pipeline.media import parse_probe
from pipeline.naming import STEMS, NameFields, layout_field
from pipeline.profiles import MEASUREMENTS, PROFILE_DIR, Profile, available

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# --- values a YAML file can hold -----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", "stereo", "5.1", "source", "48000", "-23", "nan", "{title}",
                                           "{title}_{stem}.wav", "cpu", "mid", "eng"]))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=8)


def one_line(exc: Exception) -> bool:
    return "\n" not in str(exc) and str(exc).strip() != ""


# --- settings (configs/default.yaml) -------------------------------------------------------------------------

SETTINGS_KEYS = ["separation", "stem_map", "cleanup", "language", "stereo_downmix"]
SEPARATION_KEYS = list(SeparationSettings.__dataclass_fields__)


def _mutated(base: dict, keys: list[str], values) -> st.SearchStrategy[dict]:
    """`base` with some keys replaced by (or added as) arbitrary values, and sometimes an unknown key."""
    return st.builds(lambda changes, extra: {**base, **changes, **extra},
                     st.dictionaries(st.sampled_from(keys), values, max_size=3),
                     st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), values, max_size=1))


def settings_dicts():
    default = load_yaml(DEFAULT_CONFIG)
    separation = st.one_of(_mutated(dict(default.get("separation", {})), SEPARATION_KEYS, yaml_values), yaml_values)
    stem_maps = st.one_of(st.dictionaries(st.text(max_size=8), st.one_of(st.sampled_from(STEM_TARGETS), yaml_values),
                                          max_size=4), yaml_values)
    return st.fixed_dictionaries({}, optional={"separation": separation, "stem_map": stem_maps,
                                               "cleanup": yaml_values, "language": yaml_values,
                                               "stereo_downmix": yaml_values}).flatmap(
        lambda d: _mutated(d, SETTINGS_KEYS, yaml_values))


@FUZZ
@given(settings_dicts())
def test_settings_load_in_range_or_fail_in_one_line(data):
    try:
        s = Settings.from_dict(data, source="fuzz.yaml")
    except ConfigError as exc:
        assert one_line(exc) and "fuzz.yaml" in str(exc), str(exc)
        return
    sep = s.separation
    assert sep.segment is None or 1.0 <= sep.segment <= 60.0
    assert 0.0 <= sep.overlap <= 0.9 and 0 <= sep.shifts <= 20 and isinstance(sep.shifts, int)
    assert isinstance(sep.split, bool) and isinstance(sep.model, str)
    assert sep.device in ("cpu", "cuda", "auto") and sep.dfn3_pairs in ("mid", "channels")
    assert 0.0 <= sep.dfn3_atten_lim_db <= 100.0
    assert set(s.stem_map.values()) <= set(STEM_TARGETS) and all(isinstance(k, str) for k in s.stem_map)
    assert s.cleanup in ("auto", "noisereduce", "dfn3", "none")
    assert len(s.language) == 3 and s.language.isascii() and s.language.isalpha() and s.language.islower()
    assert s.stereo_downmix in (True, False)


def test_the_shipped_default_config_loads():
    assert Settings.load().separation == SeparationSettings()


# --- delivery profiles -----------------------------------------------------------------------------------------

PROFILE_KEYS = ["name", "description", "measurement", "target_lufs", "tolerance_lu", "true_peak_dbtp", "sample_rate",
                "bit_depth", "noise_reduction", "me_true_peak_dbtp", "fallback_min_speech_pct",
                "fallback_target_lufs", "layouts", "naming", "channel_naming", "stem_names", "split_channels"]
namings = st.one_of(yaml_values, st.builds("".join, st.lists(st.sampled_from(
    ["{title}", "{stem}", "{layout}", "{rate}", "{bits}", "{fps}", "{channel}", "_", "-", ".", ".wav", "{", "}",
     "{0}", "{other}", "{title!r}", "{stem:>4}", "/", "\\", "x", "L", "\x00"]), max_size=8)))
stem_names = st.dictionaries(st.sampled_from([*STEMS, "DIA", 1]),
                             st.sampled_from(["PM", "DIA", "DX", "ME", "MX", "FX", "D", "X", "a b", "", "x/y", 5]),
                             max_size=5)


def profile_dicts():
    shipped = [load_yaml(p) for p in available().values()]
    values = st.one_of(yaml_values, namings, stem_names)
    return st.sampled_from(shipped).flatmap(lambda base: _mutated(base, PROFILE_KEYS, values))


def _names(p: Profile, fields: NameFields, labels) -> tuple[list[str], list[str]]:
    """The file names a profile gives one reel's stems, and every channel of them."""
    return ([p.file_name(fields, stem) for stem in STEMS],
            [p.file_name(fields, stem, label) for stem in STEMS for label in labels])


@FUZZ
@given(profile_dicts())
@example({"name": "x", "target_lufs": -23, "true_peak_dbtp": -1, "naming": "{title}_{stem}_{take}.wav"})
@example({"name": "x", "target_lufs": -23, "true_peak_dbtp": -1, "naming": "{title}_{stem}L.wav",
          "channel_naming": "{title}_{stem}{channel}.wav"})
@example({"name": "x", "target_lufs": -23, "true_peak_dbtp": -1, "stem_names": {"DX": "D", "ME": "D"}})
@example({"name": "x", "target_lufs": -23, "true_peak_dbtp": -1, "layouts": "stereo"})
@example({"name": "x", "target_lufs": -23, "true_peak_dbtp": -1, "layouts": 5})
def test_profiles_load_in_range_or_fail_in_one_line(data):
    try:
        p = Profile.from_dict(data, source="fuzz.yaml")
    except ConfigError as exc:
        assert one_line(exc) and "fuzz.yaml" in str(exc), str(exc)
        return
    assert p.measurement in MEASUREMENTS
    assert -40.0 <= p.target_lufs <= -5.0 and 0.1 <= p.tolerance_lu <= 5.0 and -12.0 <= p.true_peak_dbtp <= 0.0
    assert -12.0 <= p.me_ceiling_dbtp <= 0.0
    assert p.sample_rate in (None, 44100, 48000, 96000) and p.bit_depth in (16, 24, 32)
    assert 0.0 <= p.noise_reduction <= 1.0
    assert p.layouts and set(p.layouts) <= set(LAYOUTS)
    # every accepted naming makes one plain file name per stem and per channel of a stem, all distinct
    for lay in LAYOUTS.values():
        fields = NameFields("reel_1", layout_field(lay), "48k", "24b", "2997")
        stems, channels = _names(p, fields, lay.labels if lay.channels > 1 else ())   # a mono stem is not split
        assert len(set(stems)) == 5 and len(set(channels)) == len(channels) and not set(stems) & set(channels)
        assert all(n.endswith(".wav") and not n.startswith(".") and not set("/\\\x00") & set(n)
                   for n in stems + channels), (stems, channels)
    assert p.split_channels in (True, False)
    assert isinstance(p.digest, str) and len(p.digest) == 12


_TOKENS = st.lists(st.sampled_from(["{layout}", "{rate}", "{bits}", "{fps}", "_", "-", ".", "_", "L", "DX"]),
                   max_size=5)


def plain_templates(required: list[str]):
    """`required` fields and some others or separators, in any order, ending (mostly) in .wav."""
    return st.builds(lambda parts, end: "".join(parts) + end,
                     _TOKENS.flatmap(lambda extra: st.permutations([*required, *extra])),
                     st.sampled_from([".wav", ".wav", ".wav", ".aif"]))


spec_stem_names = st.dictionaries(st.sampled_from(STEMS), st.sampled_from(["PM", "DIA", "DX", "D", "X", "ME", "M"]),
                                  max_size=5)


@FUZZ
@given(plain_templates(["{title}", "{stem}"]), st.one_of(st.none(), plain_templates(["{title}", "{stem}", "{channel}"])),
       spec_stem_names)
def test_naming_templates_give_every_file_its_own_name_or_fail_in_one_line(naming, channel_naming, names):
    """Templates made of fields and separators only (most of them load): an accepted set gives every stem, and
    every channel of a split stem, a name of its own in every layout, whatever the reel's values."""
    data = {"name": "x", "target_lufs": -23, "true_peak_dbtp": -1, "naming": naming, "stem_names": names}
    if channel_naming is not None:
        data["channel_naming"] = channel_naming
    try:
        p = Profile.from_dict(data, source="fuzz.yaml")
    except ConfigError as exc:
        assert one_line(exc) and "fuzz.yaml" in str(exc), str(exc)
        return
    for lay in LAYOUTS.values():
        for title, fps in (("A", "25"), ("reel_1.v2", "23976")):
            fields = NameFields(title, layout_field(lay), "44.1k", "16b", fps)
            stems, channels = _names(p, fields, lay.labels if lay.channels > 1 else ())
            assert len(set(stems + channels)) == len(stems + channels), (stems, channels)


def test_the_shipped_profiles_load():
    assert {Profile.from_dict(load_yaml(path), path).name for path in available().values()} == set(available())
    assert PROFILE_DIR.is_dir()


# --- SMPTE timecode --------------------------------------------------------------------------------------------

RATES = ["23.976", "24", "25", "29.97", "29.97 NDF", "30", "50", "59.94", "59.94 NDF", "60"]
THIRTY_DAYS = 30 * 24 * 3600 * 60


@FUZZ
@given(st.sampled_from(RATES), st.integers(0, THIRTY_DAYS))
@example("29.97", 1799)   # the last frame of minute 0; the next label, 00:01:00;02, skips ;00 and ;01
@example("59.94", 35964)  # ten minutes at 59.94 DF: 00:10:00;00 exists
def test_timecode_label_round_trips_and_runs_in_order(rate, frame):
    label, following = timecode.frame_label(frame, rate), timecode.frame_label(frame + 1, rate)
    assert timecode.parse_timecode(label, rate) == frame
    fields = lambda text: tuple(int(x) for x in text.replace(";", ":").split(":"))  # noqa: E731
    assert fields(following) > fields(label)
    r = timecode.timecode_rate(rate)
    assert (";" in label) == bool(r.drop)
    hh, mm, ss, ff = fields(label)
    assert mm < 60 and ss < 60 and ff < r.nominal
    if r.drop and ss == 0 and mm % 10:
        assert ff >= r.drop   # drop frame skips ;00-;01 (;00-;03 at 59.94) at each minute but every tenth


@FUZZ
@given(st.sampled_from(RATES), st.floats(0, 30 * 24 * 3600, allow_nan=False), st.floats(0, 3600, allow_nan=False))
def test_timecode_of_seconds_is_the_frame_holding_them(rate, seconds, later):
    fps = timecode.timecode_rate(rate).fps
    n = timecode.frames(seconds, rate)
    assert Fraction(n) / fps <= Fraction(seconds) + Fraction(1, 10**5) and Fraction(seconds) < Fraction(n + 1) / fps
    assert timecode.frames(seconds + later, rate) >= n
    assert timecode.parse_timecode(timecode.format_timecode(seconds, rate), rate) == n


@FUZZ
@given(st.one_of(st.text(max_size=12), st.floats(), st.fractions(), st.integers(-1000, 1000),
                 st.from_regex(r"\s*[\d./]{1,8}\s*(N?DF)?\s*", fullmatch=True)))
@example("1/0")
@example("24 DF")
def test_frame_rate_is_read_or_refused_with_a_value_error(fps):
    try:
        rate = timecode.timecode_rate(fps)
    except ValueError as exc:
        assert one_line(exc)
        return
    value = float(Fraction(fps.split()[0]) if isinstance(fps, str) and "/" in fps else
                  float(fps.split()[0]) if isinstance(fps, str) else fps)
    assert abs(value - float(rate.fps)) < 0.01 and rate.nominal in (24, 25, 30, 50, 60)


# --- ffprobe JSON ----------------------------------------------------------------------------------------------

# What ffprobe prints for a field, including its "N/A", "0/0" and missing values; `odd` adds wrong types.
numbers = st.one_of(st.integers(-10, 200_000), st.floats(allow_nan=True, allow_infinity=True))
numeric_text = st.one_of(numbers.map(str), st.sampled_from(["N/A", "", "nan", "inf", "-inf", "1e308", "48000",
                                                            "44100.5", "0", "-1", "0x10"]))
rates = st.sampled_from(["24000/1001", "25/1", "30000/1001", "0/0", "1/0", "N/A", "-25/1", "90000/1", "abc", ""])
layouts = st.sampled_from(["mono", "stereo", "5.1", "5.1(side)", "7.1", "unknown", "2.0", "1.0", "quad", "", "hexagonal"])
tag_maps = st.dictionaries(st.sampled_from(["language", "LANGUAGE", "title", "handler_name", "Title", "encoder"]),
                           st.text(max_size=10), max_size=3)


def streams(odd: bool):
    def maybe(strategy):
        return st.one_of(strategy, yaml_values) if odd else strategy
    return st.fixed_dictionaries(
        {"index": maybe(st.integers(0, 40)),
         "codec_type": maybe(st.sampled_from(["audio", "video", "subtitle", "data", "attachment"]))},
        optional={"codec_name": maybe(st.sampled_from(["pcm_s24le", "aac", "h264", "prores", "unknown"])),
                  "channels": maybe(st.one_of(st.integers(-2, 64), st.just(None))),
                  "sample_rate": maybe(numeric_text), "channel_layout": maybe(layouts),
                  "duration": maybe(numeric_text), "width": maybe(st.integers(0, 8192)),
                  "height": maybe(st.integers(0, 4320)), "r_frame_rate": maybe(rates),
                  "avg_frame_rate": maybe(rates), "tags": maybe(tag_maps),
                  "disposition": maybe(st.fixed_dictionaries({"attached_pic": st.sampled_from([0, 1])}))})


def probe_json(odd: bool):
    maybe = (lambda s: st.one_of(s, yaml_values)) if odd else (lambda s: s)
    fmt = st.fixed_dictionaries({}, optional={"duration": maybe(numeric_text), "size": maybe(numeric_text),
                                              "format_name": maybe(st.sampled_from(["mov,mp4,m4a", "wav", "matroska"]))})
    return st.fixed_dictionaries({}, optional={"streams": maybe(st.lists(streams(odd), max_size=5)),
                                               "format": maybe(fmt)})


def check_media_info(info) -> None:
    assert math.isfinite(info.duration_s) and info.duration_s >= 0 and info.size_bytes >= 0
    assert [a.audio_index for a in info.audio] == list(range(len(info.audio)))
    for a in info.audio:
        assert a.channels > 0 and a.sample_rate > 0 and isinstance(a.layout, str)
        assert a.duration_s is None or (math.isfinite(a.duration_s) and a.duration_s >= 0)
        assert a.language is None or isinstance(a.language, str)
        assert a.title is None or isinstance(a.title, str)
    for v in info.video:
        assert v.frame_rate is None or v.frame_rate > 0
        assert v.width >= 0 and v.height >= 0


@FUZZ
@given(probe_json(odd=False))
def test_probe_parser_takes_any_ffprobe_output(data):
    check_media_info(parse_probe(data, Path("fuzz.mov")))


@FUZZ
@given(probe_json(odd=True))
def test_probe_parser_on_malformed_json_gives_media_info_or_media_error(data):
    try:
        info = parse_probe(data, Path("fuzz.mov"))
    except MediaError as exc:
        assert one_line(exc) and exc.path == Path("fuzz.mov")
        return
    check_media_info(info)
