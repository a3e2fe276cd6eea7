"""pipeline.battery: each signal check finds a fault planted in clean programme, at its time and channel, and
stays quiet on the clean programme itself (the demo's dialogue, music and effects)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipeline import battery, qcevents
from pipeline.errors import ConfigError, MediaError
from pipeline.training.demo import layout_stems, render_sources

RATE = 48000
SECONDS = 12.0
NONE = qcevents.EventSettings()


@pytest.fixture(scope="module")
def sources():
    """Dialogue (2 lines), music and effects from the demo's generator: espeak-ng, fluidsynth, room tone."""
    return render_sources(SECONDS, RATE, seed=3)


def stems(sources, layout: str) -> dict[str, np.ndarray]:
    """MIX, DX, ME as (n, channels) float32. 5.1: the demo's layout, with the effects' room tone under the
    dialogue in C (a real centre is never digital silence between lines)."""
    d, m, e, _ = sources
    dx, mx, fx = layout_stems(d, m, e, layout, RATE)
    if layout == "5.1":
        fx = fx.copy()
        fx[:, 2] = (e[:, 0] + e[:, 1]) / 2
    me = mx + fx
    return {"MIX": dx + me, "DX": dx, "ME": me}


def write(tmp_path, audio: dict[str, np.ndarray]) -> dict:
    paths = {}
    for stem, x in audio.items():
        paths[stem] = tmp_path / f"reel_{stem}.wav"
        sf.write(str(paths[stem]), np.clip(x, -1, 1 - 2 ** -23), RATE, subtype="PCM_24")
    return paths


def found(events, kind, stem="MIX", channel=None):
    return [e for e in events if e.kind == kind and e.stem == stem and (channel is None or e.channel == channel)]


def at(events, t, tol=0.1):
    return [e for e in events if e.start_s - tol <= t <= e.end_s + tol]


@pytest.mark.parametrize("layout", ["stereo", "5.1"])
def test_clean_programme_gives_no_event(tmp_path, sources, layout):
    wavs = write(tmp_path, stems(sources, layout))
    assert battery.run_battery(wavs, layout, NONE, picture_s=SECONDS, fps=24) == []


def test_silent_surround_for_the_whole_reel(tmp_path, sources):
    audio = stems(sources, "5.1")
    audio["MIX"][:, 5] = 0          # Rs
    events = battery.run_battery(write(tmp_path, audio), "5.1", NONE, block_s=3.0)
    (event,) = found(events, "silent_channel")
    assert (event.channel, event.start_s, event.end_s) == ("Rs", 0.0, SECONDS)
    assert "whole reel" in event.detail
    assert not found(events, "silent_channel", "ME")      # the MIX only


def test_silent_stretch_while_the_others_play(tmp_path, sources):
    audio = stems(sources, "stereo")
    audio["MIX"][2 * RATE:int(4.5 * RATE), 0] *= 10 ** (-100 / 20)   # L 100 dB down for 2.5 s
    th = qcevents.EventSettings(thresholds={"silent_channel": {"min_s": 2.0}})
    events = found(battery.run_battery(write(tmp_path, audio), "stereo", th), "silent_channel")
    assert [e.channel for e in events] == ["L"]
    assert events[0].start_s == pytest.approx(2.0, abs=1.0) and events[0].end_s == pytest.approx(4.5, abs=1.0)


@pytest.mark.parametrize("value", [0.0, None])
def test_dropout_of_zeros_and_of_held_samples(tmp_path, sources, value):
    audio = stems(sources, "stereo")
    start, length = int(7.3 * RATE), int(0.02 * RATE)                   # 20 ms
    held = audio["MIX"][start - 1, 1] if value is None else value
    audio["MIX"][start:start + length, 1] = held
    events = battery.run_battery(write(tmp_path, audio), "stereo", NONE, block_s=0.25)
    (event,) = found(events, "dropout", channel="R")
    assert event.start_s == pytest.approx(7.3, abs=0.002) and event.duration_s == pytest.approx(0.02, abs=0.002)
    assert ("zeros" if value == 0 else "held") in event.detail
    assert not found(events, "dropout", "DX") and not found(events, "dropout", "ME")


def test_click(tmp_path, sources):
    audio = stems(sources, "stereo")
    n = int(5.55 * RATE)
    audio["ME"][n:n + 2, 0] += 0.3                                    # a 2-sample spike on the M&E's L
    events = found(battery.run_battery(write(tmp_path, audio), "stereo", NONE, block_s=1.0), "clicks", "ME")
    assert [e.channel for e in events] == ["L"]
    assert events[0].start_s <= 5.55 + 0.002 and events[0].end_s >= 5.55
    assert events[0].level_db >= DEFAULT_CLICK_DB


DEFAULT_CLICK_DB = battery.DEFAULTS["clicks"]["score_db"]


def test_inverted_pair(tmp_path, sources):
    audio = stems(sources, "stereo")
    lo, hi = 4 * RATE, 7 * RATE
    audio["MIX"][lo:hi, 1] *= -1                                      # R's polarity flipped for 3 s
    events = found(battery.run_battery(write(tmp_path, audio), "stereo", NONE), "phase")
    assert events and all(e.channel == "L/R" for e in events)
    assert min(e.start_s for e in events) >= 4.0 - 1 and max(e.end_s for e in events) <= 7.0 + 1
    assert all(e.level_db > 4.7 for e in events)                      # side over mid, corr < -0.5


def test_lfe_at_1khz(tmp_path, sources):
    audio = stems(sources, "5.1")
    t = np.arange(2 * RATE) / RATE
    audio["MIX"][8 * RATE:10 * RATE, 3] += 0.05 * np.sin(2 * np.pi * 1000 * t)
    events = battery.run_battery(write(tmp_path, audio), "5.1", NONE)
    (event,) = found(events, "lfe_band")
    assert (event.channel, event.start_s, event.end_s) == ("LFE", 8.0, 10.0)
    assert event.level_db == pytest.approx(20 * np.log10(0.05 / np.sqrt(2)), abs=1.5)


def test_dc_offset_on_every_stem(tmp_path, sources):
    audio = stems(sources, "stereo")
    audio["DX"][:, 0] += 0.01                                         # -40 dBFS on the DX's L
    events = found(battery.run_battery(write(tmp_path, audio), "stereo", NONE), "dc_offset", "DX")
    (event,) = events                                                 # a 10 s window and the 2 s rest, merged
    assert (event.channel, event.start_s, event.end_s) == ("L", 0.0, SECONDS)
    assert event.level_db == pytest.approx(-40, abs=1.0)


def test_clipping_with_counts(tmp_path, sources):
    audio = stems(sources, "stereo")
    n = int(3.2 * RATE)
    audio["MIX"][n:n + 5, 0] = 1.0                                     # 5 samples at full scale
    audio["MIX"][n + 100:n + 101, 0] = 1.0                             # a lone full-scale sample: not counted
    events = battery.run_battery(write(tmp_path, audio), "stereo", NONE, block_s=0.5)
    (event,) = found(events, "clipping", channel="L")
    assert event.start_s == pytest.approx(3.2, abs=1e-3) and event.detail.startswith("5 clipped")


@pytest.mark.parametrize("picture, fps, expected", [(SECONDS - 0.1, 25.0, 2.5), (SECONDS + 0.03, 25.0, None),
                                                    (SECONDS + 0.2, None, 4.8)])
def test_duration_against_the_picture(tmp_path, sources, picture, fps, expected):
    wavs = write(tmp_path, stems(sources, "stereo"))
    events = found(battery.run_battery(wavs, "stereo", NONE, picture_s=picture, fps=fps), "duration_mismatch", "")
    if expected is None:
        assert events == []
    else:
        (event,) = events
        assert event.level_db == pytest.approx(expected, abs=0.01)
        assert ("24 assumed" in event.detail) == (fps is None)


def test_events_capped_per_channel(tmp_path, sources):
    audio = stems(sources, "stereo")
    for k in range(40):
        n = int((0.5 + 0.25 * k) * RATE)
        audio["MIX"][n:n + 3, 0] = 1.0
    th = qcevents.EventSettings(thresholds={"clipping": {"max_events": 5, "gap_s": 0.01}})
    events = found(battery.run_battery(write(tmp_path, audio), "stereo", th), "clipping", channel="L")
    assert len(events) == 6 and "35 more" in events[-1].detail


def test_unknown_threshold_refused(tmp_path, sources):
    wavs = write(tmp_path, stems(sources, "stereo"))
    with pytest.raises(ConfigError, match="no_such"):
        battery.run_battery(wavs, "stereo", qcevents.EventSettings(thresholds={"clicks": {"no_such": 1.0}}))


def test_wrong_channel_count_names_the_file(tmp_path, sources):
    audio = stems(sources, "stereo")
    audio["ME"] = audio["ME"][:, :1]
    wavs = write(tmp_path, audio)
    with pytest.raises(MediaError, match="reel_ME.wav"):
        battery.run_battery(wavs, "stereo", NONE)


def test_block_size_does_not_change_the_events(tmp_path, sources):
    """The checks carry their state across blocks: 0.3 s blocks give the events of one 12 s block."""
    audio = stems(sources, "5.1")
    audio["MIX"][int(2.5 * RATE):int(2.51 * RATE), 0] = 0                # a dropout across no block edge
    audio["MIX"][int(3.0 * RATE) - 150:int(3.0 * RATE) + 150, 4] = 0      # one across a 0.3 s block edge
    audio["MIX"][int(6.0 * RATE) - 1:int(6.0 * RATE) + 2, 1] = -1.0       # clipping across one (a click too)
    audio["ME"][int(8.1 * RATE), 2] += 0.4                                 # a click
    wavs = write(tmp_path, audio)
    small = battery.run_battery(wavs, "5.1", NONE, block_s=0.3)
    assert small == battery.run_battery(wavs, "5.1", NONE, block_s=SECONDS)
    assert {(e.kind, e.stem, e.channel) for e in small} == {
        ("dropout", "MIX", "L"), ("dropout", "MIX", "Ls"), ("clipping", "MIX", "R"), ("clicks", "MIX", "R"),
        ("clicks", "ME", "C")}
