"""The M&E package (`--me-package`, issue 14): the printmaster, M&E in 5.1 and 2.0, DX, MX and FX that sum to the
printmaster where the model makes them, and a mono dialogue guide, listed by role in the manifest; every file
read back here (soundfile) and checked against the others."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow

LSB = 2.0 ** -23        # one step of a 24-bit file, full scale 1.0


@pytest.fixture(scope="module")
def packages(harness, tmp_path_factory):
    """A 5.1 reel with the bundled DFN3 (no MX/FX) and a stereo reel with a tiny Demucs model (MX and FX)."""
    from flows.reel import run
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile
    from pipeline.training.demo import make_demo_reel
    from tiny_demucs import write_tiny_model

    root = tmp_path_factory.mktemp("package")
    surround = make_demo_reel(root / "in" / "sur.mov", seconds=8, layout="5.1", seed=21).path
    stereo = make_demo_reel(root / "in2" / "st.wav", seconds=8, layout="stereo", seed=22).path
    settings = dataclasses.replace(Settings.load(), me_package=True)
    profile = load_profile("ebu-r128")
    out = root / "out"
    rows = {r.title: r for r in run([surround], out, resolve("dfn3"), settings, profile).rows}
    tiny = resolve(str(write_tiny_model(root / "tiny")))
    rows.update({r.title: r for r in run([stereo], out, tiny, settings, profile).rows})
    return out, rows


def manifest(out, title) -> dict:
    return json.loads((out / title / "manifest.json").read_text())


def read(path):
    return sf.read(path, dtype="float64", always_2d=True)[0]


def test_the_package_is_listed_by_role(packages):
    out, rows = packages
    assert all(r.status == "ok" for r in rows.values()), {t: r.error for t, r in rows.items()}
    sur = manifest(out, "sur")["package"]
    assert sur == {"printmaster": "sur_MIX.wav", "dx": "sur_DX.wav", "me_5.1": "sur_ME.wav",
                   "me_2.0": "stereo/sur_ME.wav", "dialogue_guide": "sur_DX_guide.wav"}
    st = manifest(out, "st")["package"]
    assert st == {"printmaster": "st_MIX.wav", "dx": "st_DX.wav", "me_stereo": "st_ME.wav", "me_2.0": "st_ME.wav",
                  "mx": "st_MX.wav", "fx": "st_FX.wav", "dialogue_guide": "st_DX_guide.wav"}
    for title, package in (("sur", sur), ("st", st)):       # every file of the package is in the manifest's list
        assert set(package.values()) <= set(manifest(out, title)["outputs"])


def test_the_5_1_and_2_0_me(packages):
    out, _ = packages
    me51, me20 = read(out / "sur" / "sur_ME.wav"), read(out / "sur" / "stereo" / "sur_ME.wav")
    assert me51.shape[1] == 6 and me20.shape == (me51.shape[0], 2)
    assert np.sqrt(np.mean(me20 ** 2)) > 1e-3                                   # not silence


def test_dx_mx_fx_sum_to_the_printmaster(packages):
    """FX is M&E − MX, so DX + MX + FX rebuilds the printmaster to the 24-bit quantisation of four files."""
    out, _ = packages
    mix, dx, mx, fx = (read(out / "st" / f"st_{s}.wav") for s in ("MIX", "DX", "MX", "FX"))
    assert np.max(np.abs(mix - (dx + mx + fx))) <= 4 * LSB
    assert np.sqrt(np.mean(mx ** 2)) > 1e-4 and np.sqrt(np.mean(fx ** 2)) > 1e-4


@pytest.mark.parametrize("title,layout", [("sur", "5.1"), ("st", "stereo")])
def test_the_dialogue_guide_is_the_mono_fold_down_of_dx(packages, title, layout):
    """Mono, 24-bit, as long as DX: C at −3 dB, L and R at −6 dB, surrounds at −9 dB, no LFE — scaled down only
    if it would peak over −1 dBFS."""
    from pipeline.layout import LAYOUTS
    from pipeline.package import guide_gains

    out, _ = packages
    guide_path = out / title / f"{title}_DX_guide.wav"
    info = sf.info(str(guide_path))
    assert (info.channels, info.samplerate, info.subtype) == (1, 48000, "PCM_24")
    dx, guide = read(out / title / f"{title}_DX.wav"), read(guide_path)[:, 0]
    folded = dx @ guide_gains(LAYOUTS[layout]).astype(np.float64)
    scale = min(1.0, 10 ** (-1 / 20) / np.max(np.abs(folded)))
    assert guide.shape == folded.shape and np.max(np.abs(guide - scale * folded)) <= 2 * LSB
    if layout == "5.1":
        minus3 = 10 ** (-3 / 20)              # as pipeline/downmix.py's BS.775 gains
        assert list(guide_gains(LAYOUTS[layout])) == pytest.approx([0.5, 0.5, minus3, 0.0, minus3 / 2, minus3 / 2])
