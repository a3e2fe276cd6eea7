"""Profiles and settings: YAML into range-checked dataclasses; a bad value is one error naming the key."""
from pathlib import Path

import pytest

from conftest import run_cli
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.profiles import available, load_profile


def test_bundled_profiles_load():
    names = available()
    assert {"ebu-r128", "atsc-a85"} <= set(names)
    ebu, atsc = load_profile("ebu-r128"), load_profile("atsc-a85")
    assert (ebu.target_lufs, ebu.true_peak_dbtp) == (-23.0, -1.0)
    assert (atsc.target_lufs, atsc.true_peak_dbtp) == (-24.0, -2.0)
    assert ebu.sample_rate is None and ebu.bit_depth == 24   # source rate kept
    assert ebu.digest != atsc.digest


@pytest.mark.parametrize("key,value,fragment", [
    ("target_lufs", 3, "target_lufs must be in [-40.0, -5.0]"),
    ("true_peak_dbtp", 2.0, "true_peak_dbtp must be in [-12.0, 0.0]"),
    ("bit_depth", 20, "bit_depth must be one of 16, 24, 32"),
    ("noise_reduction", "lots", "noise_reduction must be a number"),
    ("loudness", 1, "unknown key loudness"),
])
def test_bad_profile_value_names_key_and_range(tmp_path, key, value, fragment):
    data = {"name": "x", "target_lufs": -23, "true_peak_dbtp": -1, key: value}
    path = tmp_path / "bad.yaml"
    path.write_text("\n".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in data.items()))
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert fragment in str(info.value) and "bad.yaml" in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_profile_lists_known():
    with pytest.raises(ConfigError, match="unknown profile 'nope'.*ebu-r128"):
        load_profile("nope")


def test_settings_defaults_and_ranges(tmp_path):
    s = Settings.load()
    assert s.separation.model == "auto" and s.stem_map["vocals"] == "DX" and s.stem_map["drums"] == "ME"
    assert s.cleanup == "auto"
    with pytest.raises(ConfigError, match="separation.overlap must be in"):
        Settings.from_dict({"separation": {"overlap": 1.5}})
    with pytest.raises(ConfigError, match="stem_map.vocals must be one of DX, MX, FX, ME"):
        Settings.from_dict({"stem_map": {"vocals": "dialog"}})
    with pytest.raises(ConfigError, match="language must be a 3-letter"):
        Settings.from_dict({"language": "english"})


def test_output_tracks_from_the_config_and_the_command_line(tmp_path):
    """`output_tracks:` defaults to interleaved (the deliverable as before); `--output-tracks` overrides it on
    `run`, and `serve` stores it with the deployment's options."""
    from flows.cli import _parser, _run_settings

    assert Settings.load().output_tracks == "interleaved"
    assert Settings.from_dict({"output_tracks": "source"}).output_tracks == "source"
    with pytest.raises(ConfigError, match="output_tracks must be one of interleaved, source; got 'stacked'"):
        Settings.from_dict({"output_tracks": "stacked"})
    args = _parser().parse_args(["run", str(tmp_path), "--out", str(tmp_path), "--output-tracks", "source"])
    assert _run_settings(args).output_tracks == "source"
    args = _parser().parse_args(["serve", "--watch", "d", "--out", "o", "--cron", "0 2 * * *",
                                 "--output-tracks", "source"])
    assert args.output_tracks == "source"


def test_settings_the_streaming_path_cannot_honour_are_refused():
    """`split: false` would need the whole reel in one forward pass: refused when loaded, in one line, rather
    than accepted and ignored; `split: true` (the default) and `shifts` (passed to every segment) load."""
    with pytest.raises(ConfigError, match="separation.split: false is not supported") as info:
        Settings.from_dict({"separation": {"split": False}}, source="cfg.yaml")
    assert "\n" not in str(info.value) and "cfg.yaml" in str(info.value)
    assert Settings.from_dict({"separation": {"split": True, "shifts": 2}}).separation.shifts == 2


def test_cli_bad_profile_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "loud.yaml"
    bad.write_text("name: loud\ntarget_lufs: -50\ntrue_peak_dbtp: -1\n")
    media = tmp_path / "x.wav"
    media.write_bytes(b"")
    proc = run_cli("run", media, "--out", tmp_path / "out", "--profile", bad, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "target_lufs must be in [-40.0, -5.0]" in lines[0] and "loud.yaml" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_profiles_table():
    proc = run_cli("profiles", timeout=60)
    assert proc.returncode == 0
    assert "ebu-r128" in proc.stdout and "-23.0 LUFS" in proc.stdout and "-2.0 dBTP" in proc.stdout


def test_cli_unwritable_out_is_one_line(tmp_path):
    media = tmp_path / "x.wav"
    media.write_bytes(b"")
    proc = run_cli("run", media, "--out", "/proc/1/reelsplit-out", "--model", "dfn3", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "/proc/1/reelsplit-out: cannot write to the output folder" in lines[0]


@pytest.mark.parametrize("setting, kind, applied", [
    ("auto", "dfn3", "none"), ("auto", "demucs", "noisereduce"),       # DFN3 is already a speech denoiser
    ("noisereduce", "dfn3", "noisereduce"), ("dfn3", "demucs", "dfn3"), ("none", "demucs", "none"),
])
def test_cleanup_auto_resolves_by_model(setting, kind, applied):
    from pipeline.cleanup import resolve_method
    assert resolve_method(setting, kind) == applied
    assert Settings.from_dict({"cleanup": setting}).cleanup == setting
