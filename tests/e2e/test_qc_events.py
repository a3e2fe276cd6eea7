"""QC events end to end: a 5.1 master with faults planted in it (a dead Rs, a 1 kHz tone in the LFE, a dropout and a
click in L) through the flow under the netflix profile: the events file finds each at its time and channel, the QC
verdict fails for the kinds the profile fails on and not for the others, the report row and the manifest agree with
the file, and --strict turns it into the exit code."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import run_cli
from pipeline.training.demo import layout_stems, render_sources

pytestmark = pytest.mark.slow

RATE = 48_000
SECONDS = 16.0
DROPOUT_S, CLICK_S = 9.5, 12.25


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A .mov (H.264 + 24-bit PCM 5.1) of the demo's dialogue, music and effects with the planted faults."""
    d, m, e, _ = render_sources(SECONDS, RATE, seed=5)
    dx, mx, fx = layout_stems(d, m, e, "5.1", RATE)
    fx = fx.copy()
    fx[:, 2] = (e[:, 0] + e[:, 1]) / 2                  # room tone under the centre, as in a real mix
    mix = (dx + mx + fx).astype(np.float32)
    n = mix.shape[0]
    mix[:, 5] = 0.0                                                      # Rs dead for the whole reel
    mix[:, 3] = 0.05 * np.sin(2 * np.pi * 1000 * np.arange(n) / RATE)   # LFE carrying a 1 kHz tone
    a = int(DROPOUT_S * RATE)
    mix[a: a + int(0.03 * RATE), 0] = 0.0                                # 30 ms of zeros in L
    mix[int(CLICK_S * RATE), 0] += 0.6                                   # a one-sample click in L
    mix *= 0.5 / np.abs(mix).max()
    folder = tmp_path_factory.mktemp("faults")
    wav, mov = folder / "audio.wav", folder / "in" / "faulty.mov"
    mov.parent.mkdir()
    sf.write(wav, mix, RATE, subtype="FLOAT")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x180:rate=25:duration={SECONDS}", "-i", str(wav), "-map", "0:v", "-map", "1:a",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s24le", "-channel_layout", "5.1",
                    "-t", str(SECONDS), str(mov)], check=True)
    out = folder / "out"
    result = run_cli("run", str(mov), "--out", str(out), "--profile", "netflix", "--model", "dfn3",
                     "--no-transcribe", "--strict")
    return result, out


def test_planted_faults_are_events_at_their_times_and_channels(faulty):
    result, out = faulty
    with open(out / "faulty" / "faulty_qc_events.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def on_mix(kind, channel):
        return [r for r in rows if r["kind"] == kind and r["stem"] == "MIX" and r["channel"] == channel]

    (dead,) = on_mix("silent_channel", "Rs")
    assert float(dead["start_s"]) == 0.0 and float(dead["end_s"]) == pytest.approx(SECONDS, abs=0.05)
    assert on_mix("lfe_band", "LFE")
    assert any(float(r["start_s"]) - 0.05 <= DROPOUT_S <= float(r["end_s"]) + 0.05 for r in on_mix("dropout", "L"))
    assert any(abs(float(r["start_s"]) - CLICK_S) <= 0.05 for r in on_mix("clicks", "L"))
    assert [r["channel"] for r in rows if r["kind"] == "silent_channel"] == ["Rs"]      # only the dead one
    for r in rows:          # timecodes on the picture's clock (the .mov has none: from 00:00:00:00, 25 fps)
        assert len(r["start_tc"].split(":")) == 4


def test_the_verdict_the_row_and_the_exit_code_agree_with_the_events(faulty):
    result, out = faulty
    assert result.returncode == 1, result.stdout + result.stderr           # --strict: a QC fail exits 1
    report = pd.read_csv(out / "reports" / "latest.csv")
    row = report.iloc[0]
    assert row["status"] == "ok" and row["qc"] == "fail"
    reasons = row["qc_reasons"]
    assert "silent_channel: 1 event(s)" in reasons and "lfe_band:" in reasons     # netflix fails on these
    assert "clicks:" not in reasons and "dropout:" not in reasons                 # reported, not failing
    events_path = Path(row["qc_events"])
    with open(events_path, newline="") as f:
        assert int(row["qc_events_n"]) == len(list(csv.DictReader(f)))
    manifest = json.loads((out / "faulty" / "manifest.json").read_text())
    assert events_path.name in json.dumps(manifest["outputs"])
    assert "QC fail" in result.stdout and "silent_channel" in result.stdout


def test_the_report_shows_every_event_and_marks_the_failing_ones(faulty):
    """The HTML report's event table holds a row per event of the file (kind, TC in, TC out) and the rows of the
    kinds that fail the reel are marked failing; excerpts of the worst events are embedded."""
    import re

    result, out = faulty
    page = (out / "reports" / "latest.html").read_text()
    with open(out / "faulty" / "faulty_qc_events.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    table = re.findall(r'<tr class="(ev[^"]*)">(.*?)</tr>', page, flags=re.S)
    assert len(table) == len(rows)
    cells = [(cls, re.sub(r"<[^>]+>", " ", html)) for cls, html in table]
    for r in rows:
        assert any(r["kind"] in text and r["start_tc"] in text and r["end_tc"] in text for _, text in cells), r
    failing = {cls != "ev" for cls, text in cells if "silent_channel" in text or "lfe_band" in text}
    passing = {cls != "ev" for cls, text in cells if "clicks" in text}
    assert failing == {True} and passing == {False}
    assert page.count("data:audio/webm") >= 3            # at least one excerpt: MIX, DX and M&E
