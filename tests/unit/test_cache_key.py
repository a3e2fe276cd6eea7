"""pipeline.manifest.cache_key: every part of KeyParts changes the key, and the same parts give the same key (the
end-to-end resume / re-process checks are in tests/e2e/test_output_tracks.py and test_timecode.py)."""
from __future__ import annotations

import dataclasses

import pytest

from pipeline.manifest import KeyParts, cache_key

BASE = KeyParts("a" * 64, "profile", "dfn3", "settings", "0.2.0")


def test_the_same_parts_give_the_same_key():
    assert cache_key(BASE) == cache_key(dataclasses.replace(BASE)) and len(cache_key(BASE)) == 64


@pytest.mark.parametrize("change", [
    {"input_sha256": "b" * 64}, {"profile_digest": "other"}, {"model": "dme-small"}, {"settings_digest": "x"},
    {"code_version": "0.2.1"}, {"start_tc": "10:00:00:00"}, {"tc_rate": "25"}, {"output_tracks": "source"},
])
def test_each_part_changes_the_key(change):
    assert cache_key(dataclasses.replace(BASE, **change)) != cache_key(BASE)


def test_parts_do_not_run_into_each_other():
    """A start timecode and a rate are not confused with each other, nor with an empty value."""
    keys = {cache_key(dataclasses.replace(BASE, start_tc=s, tc_rate=r))
            for s, r in ((None, None), ("", None), ("25", None), (None, "25"))}
    assert len(keys) == 3                       # None and "" both mean "not given"
