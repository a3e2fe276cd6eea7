"""The M&E package (`--me-package`, issue 14): the printmaster, M&E in 5.1 and 2.0, DX, MX and FX that sum to the
printmaster where the model makes them, and a mono dialogue guide, listed by role in the manifest; every file
read back here (soundfile) and checked against the others."""
from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow

LSB = 2.0 ** -23        # one step of a 24-bit file, full scale 1.0


@pytest.fixture(scope="module")
def packages(harness, tmp_path_factory):
    """A 5.1 reel, and a 7.1 and a 5.0 made from it, with the bundled DFN3 (no MX/FX); a stereo reel with a tiny
    Demucs model (MX and FX)."""
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
    folds = root / "in3"
    folds.mkdir()
    for name, pan in (("s71", "7.1|FL=FL|FR=FR|FC=FC|LFE=LFE|BL=BL|BR=BR|SL=0.5*BL|SR=0.5*BR"),
                      ("s50", "5.0|FL=FL|FR=FR|FC=FC|BL=BL|BR=BR")):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(surround), "-map", "0:a", "-af", f"pan={pan}",
                        "-c:a", "pcm_s24le", str(folds / f"{name}.wav")], check=True)
    rows = {r.title: r for r in run([surround, folds], out, resolve("dfn3"), settings, profile).rows}
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


@pytest.mark.parametrize("title,layout", [("s71", "7.1"), ("s50", "5.0"), ("sur", "5.1")])
def test_the_2_0_me_of_every_surround_master(packages, title, layout):
    """5.1, 5.0 and 7.1 masters each get a 2.0 M&E: the master's M&E folded down (pipeline/downmix.py) and taken
    to the profile again with one gain, so it is that fold-down times one number: least-squares residual
    measured at −inf dB here (no limiting at these levels) against a bar of −60 dB."""
    from pipeline.downmix import itu_downmix
    from pipeline.layout import LAYOUTS

    out, rows = packages
    assert rows[title].status == "ok", rows[title].error
    package = manifest(out, title)["package"]
    assert package["me_2.0"] == f"stereo/{title}_ME.wav" and package[f"me_{layout}"] == f"{title}_ME.wav"
    me, me20 = read(out / title / f"{title}_ME.wav"), read(out / title / "stereo" / f"{title}_ME.wav")
    assert me.shape[1] == LAYOUTS[layout].channels and me20.shape == (me.shape[0], 2)
    folded = itu_downmix(me.astype(np.float32), LAYOUTS[layout]).astype(np.float64)
    gain = float(np.sum(folded * me20) / np.sum(folded ** 2))
    residual = me20 - gain * folded
    assert 10 * np.log10(np.sum(residual ** 2) / np.sum(me20 ** 2) + 1e-30) < -60
    assert np.sqrt(np.mean(me20 ** 2)) > 1e-3


def test_dx_mx_fx_sum_to_the_printmaster(packages):
    """FX is M&E − MX, so DX + MX + FX rebuilds the printmaster to the 24-bit quantisation of four files."""
    out, _ = packages
    mix, dx, mx, fx = (read(out / "st" / f"st_{s}.wav") for s in ("MIX", "DX", "MX", "FX"))
    assert np.max(np.abs(mix - (dx + mx + fx))) <= 4 * LSB
    assert np.sqrt(np.mean(mx ** 2)) > 1e-4 and np.sqrt(np.mean(fx ** 2)) > 1e-4


@pytest.mark.parametrize("title,layout", [("sur", "5.1"), ("st", "stereo"), ("s71", "7.1")])
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
