"""Model specs: names, files and repo folders resolve offline; a missing model fails fast with how to fix it."""
import time

import pytest

from conftest import run_cli
from pipeline.errors import ModelError
from pipeline.models import resolve
from tiny_demucs import write_tiny_model


def test_auto_is_dfn3_when_htdemucs_is_not_installed():
    spec = resolve("auto")
    assert (spec.kind, spec.name, spec.source) == ("dfn3", "dfn3", "bundled")


def test_auto_prefers_htdemucs_from_the_user_repo(offline_env):
    repo = offline_env / "models"
    path = write_tiny_model(repo, name="htdemucs")
    try:
        spec = resolve("auto")
        assert (spec.kind, spec.name, spec.source, spec.path) == ("demucs", "htdemucs", "repo", repo)
    finally:
        path.unlink()


def test_missing_pretrained_name_offline_fails_in_seconds():
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        resolve("htdemucs_ft")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "reelsplit models install" in message and "--model dfn3" in message and "offline" in message


def test_missing_file_and_ambiguous_repo(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve(str(tmp_path / "nope.th"))
    write_tiny_model(tmp_path / "two", name="a")
    write_tiny_model(tmp_path / "two", name="b")
    with pytest.raises(ModelError, match="exactly one model"):
        resolve(str(tmp_path / "two"))


def test_cli_explicit_missing_model_is_one_line(tmp_path):
    start = time.monotonic()
    proc = run_cli("run", tmp_path, "--out", tmp_path / "out", "--model", "htdemucs", timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "htdemucs" in lines[0] and "--model dfn3" in lines[0]


def test_install_list_info_round_trip(tmp_path, offline_env):
    """`models install` copies a weights file into the repo under its checksum name; `list` verifies it;
    a tampered copy is reported, and `--model NAME` then resolves from the repo."""
    from pipeline.models import install, list_local, repo_entries, user_model_repo

    repo = tmp_path / "repo"
    src = write_tiny_model(tmp_path / "src", name="studio_dx")
    target = install(src, repo=repo)
    assert target.parent == repo and target.name == src.name   # same content, same checksum name
    assert src.read_bytes() == target.read_bytes()
    (entry,) = [m for m in list_local(repo) if m.name == "studio_dx"]
    assert entry.checksum_ok is True and entry.stems == ("dialogue", "music", "effects") and entry.parameters > 0
    with pytest.raises(ModelError, match="already installed"):
        install(write_tiny_model(tmp_path / "other", name="studio_dx", seed=1), repo=repo)
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    (entry,) = [m for m in list_local(repo) if m.name == "studio_dx"]
    assert entry.checksum_ok is False
    assert set(repo_entries(repo)) == {"studio_dx"} and user_model_repo() != repo


def test_cli_models_install_then_run_by_name(tmp_path, offline_env):
    src = write_tiny_model(tmp_path / "src", name="cli_dme")
    proc = run_cli("models", "install", src, "--name", "cli_dme", timeout=120)
    assert proc.returncode == 0, proc.stderr
    installed = offline_env / "models" / src.name
    try:
        assert installed.is_file()
        listing = run_cli("models", "list", timeout=120)
        assert listing.returncode == 0
        line = next(l for l in listing.stdout.splitlines() if l.startswith("cli_dme"))
        assert "dialogue,music,effects" in line and " ok " in line
        assert any(l.startswith("dfn3") for l in listing.stdout.splitlines())
        info = run_cli("models", "info", "cli_dme", timeout=120)
        assert info.returncode == 0 and "44100" in info.stdout
    finally:
        installed.unlink(missing_ok=True)


def test_checksum_mismatch_in_a_named_file_is_refused(tmp_path):
    from pipeline.models import load_demucs

    path = write_tiny_model(tmp_path, name="tampered")
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch"):
        load_demucs(resolve(str(path)))


def test_safetensors_install_and_resolve_by_name(tmp_path, offline_env, monkeypatch):
    """What the project writes is safetensors: installed under its checksum name, found by name, loaded by
    demucs.hf.load_safetensors_model, and identical in output to the .th package of the same weights."""
    import numpy as np
    import torch
    from demucs.htdemucs import HTDemucs

    from pipeline.config import SeparationSettings
    from pipeline.models import install, load_demucs
    from pipeline.separate import load_separator
    from pipeline.training.train import float32_state, write_safetensors
    from tiny_demucs import TINY_KWARGS

    torch.manual_seed(0)
    model = HTDemucs(sources=["dialogue", "music", "effects"], **TINY_KWARGS)
    args, kwargs = model._init_args_kwargs
    st = write_safetensors(tmp_path / "studio.safetensors", HTDemucs, args, kwargs, float32_state(model))
    repo = tmp_path / "repo"
    monkeypatch.setenv("REELSPLIT_MODEL_REPO", str(repo))
    target = install(st)
    assert target.suffix == ".safetensors" and target.stem.startswith("studio-")
    spec = resolve("studio")
    assert (spec.source, spec.path) == ("file", target)
    assert load_demucs(spec).sources == ["dialogue", "music", "effects"]
    mix = (0.1 * np.random.default_rng(0).standard_normal((48000, 2))).astype(np.float32)
    from pipeline.layout import LAYOUTS
    from pipeline.readers import ArrayReader, Workspace

    def dx(sep, folder):
        f = sep.separate(ArrayReader(mix), 48000, LAYOUTS["stereo"], Workspace(folder)).dx
        return f.read(0, f.frames)

    a = dx(load_separator(spec, SeparationSettings()), tmp_path / "a")
    th = write_tiny_model(tmp_path / "th", name="studio_th", seed=0)
    b = dx(load_separator(resolve(str(th)), SeparationSettings()), tmp_path / "b")
    assert np.allclose(a, b, atol=1e-6)
