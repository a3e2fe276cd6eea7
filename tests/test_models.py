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
