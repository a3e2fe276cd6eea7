"""The dashboard's side of a run without a server (flows/dashboard.py): artifact keys Prefect accepts, the throttle of
progress updates, the reel's percent from the same reports the terminal's display gets, the QC table's figures."""
import math
import re
from pathlib import Path

import pytest

from flows import dashboard, display
from pipeline import progress
from pipeline.report import ReportRow

PREFECT_KEY = re.compile(r"^[a-z0-9-]+$")     # prefect/_internal/schemas/validators.py: validate_artifact_key


@pytest.mark.parametrize("title, key", [
    ("reel1", "qc-reel1"),
    ("Reel_1 v2", "qc-reel-1-v2"),
    ("FILM.R3__final--", "qc-film-r3-final"),
    ("épisode 2", "qc-pisode-2"),
    ("___", "qc"),
])
def test_keys_hold_only_lowercase_letters_digits_and_dashes(title, key):
    assert dashboard.artifact_key("qc", title) == key
    assert PREFECT_KEY.match(key)


def test_long_titles_give_bounded_keys():
    key = dashboard.artifact_key("progress", "A" * 300 + "_b")
    assert len(key) <= dashboard.KEY_MAX and PREFECT_KEY.match(key) and not key.endswith("-")


def test_the_prefect_models_accept_the_keys():
    from prefect.client.schemas.actions import ArtifactCreate

    for title in ("Reel_1 v2", "FILM.R3__final--", "x" * 200):
        ArtifactCreate(key=dashboard.artifact_key("qc", title), type="table", data="[]")   # raises on a bad key


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_sends_the_first_each_stage_change_and_then_every_period():
    clock = Clock()
    throttle = dashboard.Throttle(every=2.0, clock=clock)
    sent = []
    for t, stage in [(0.0, "extract"), (0.5, "extract"), (1.9, "extract"), (2.0, "extract"), (2.1, "separate"),
                     (2.2, "separate"), (4.0, "separate"), (4.25, "separate"), (4.3, "cleanup"), (4.4, "cleanup")]:
        clock.now = t
        if throttle.due(stage):
            sent.append((t, stage))
    assert sent == [(0.0, "extract"), (2.0, "extract"), (2.1, "separate"), (4.25, "separate"), (4.3, "cleanup")]
    clock.now = 4.5
    assert throttle.due("cleanup", last=True)      # a stage's end is always sent


def _recorder(clock):
    calls = []
    shown = dashboard.ReelProgress("Reel_1", throttle=dashboard.Throttle(every=2.0, clock=clock),
                                   create=lambda percent, key, description: calls.append(
                                       ("create", percent, key, description)) or "id-1",
                                   update=lambda artifact_id, percent, description: calls.append(
                                       ("update", percent, description)))
    return shown, calls


def test_a_separation_sends_a_few_updates_not_one_per_block():
    """600 reports over 60 s of separation (10 a second) give one update per 2 s, rising, and the reel's percent
    within the separate stage's share of the work."""
    clock = Clock()
    shown, calls = _recorder(clock)
    shown.start()
    assert calls == [("create", 0.0, "progress-reel-1", "Reel_1: started")]
    total = 48000 * 600
    for i in range(1, 601):
        clock.now = i / 10
        shown("separate", i * 48000, total)
    updates = [c for c in calls if c[0] == "update"]
    assert 30 <= len(updates) <= 32
    percents = [c[1] for c in updates]
    assert percents == sorted(percents)
    start = 100 * display.file_fraction(display.STAGE_WEIGHTS, "separate", 0.0)
    end = 100 * display.file_fraction(display.STAGE_WEIGHTS, "separate", 1.0)
    assert start <= percents[0] < percents[-1] <= end + 0.1
    assert updates[-1][2].startswith("Reel_1: separate 100 % (stage 3 of 9)")


def test_finish_reaches_100_or_says_where_it_stopped():
    clock = Clock()
    shown, calls = _recorder(clock)
    shown.start()
    shown("extract", 10, 100)
    shown.finish(ReportRow(file="a.wav", title="Reel_1", status="ok", qc="pass"))
    assert calls[-1] == ("update", 100.0, "Reel_1: ok, QC pass")

    shown, calls = _recorder(clock)
    shown.start()
    shown("vad", 50, 100)
    shown.finish(ReportRow(file="a.wav", title="Reel_1", status="failed", stage="vad", error="disk full"))
    assert calls[-1][1] < 100 and calls[-1][2] == "Reel_1: failed at vad: disk full"


def test_the_terminal_and_the_dashboard_both_get_the_reports():
    """`progress.also` adds the dashboard beside the callback already set (the terminal's display)."""
    terminal = []
    clock = Clock()
    shown, calls = _recorder(clock)
    shown.start()
    with progress.reporting(lambda *r: terminal.append(r)), progress.also(shown):
        progress.report("extract", 5, 10)
    assert terminal == [("extract", 5, 10)]
    assert calls[-1][0] == "update" and "extract 50 %" in calls[-1][2]
    progress.report("extract", 6, 10)          # outside the block: nobody
    assert len(terminal) == 1


def test_a_failing_api_is_logged_once_and_never_stops_the_reel(caplog):
    def broken(*args):
        raise ConnectionError("server gone")

    shown = dashboard.ReelProgress("r", create=lambda *a: "id", update=broken,
                                   throttle=dashboard.Throttle(every=0.0))
    shown.start()
    for i in range(5):
        shown("separate", i, 10)
    shown.finish(ReportRow(file="r.wav", title="r", status="ok"))
    assert sum("no progress for r" in rec.message for rec in caplog.records) == 1


def test_qc_table_holds_the_verdict_and_the_figures():
    row = ReportRow(file="/in/a.wav", title="a", status="ok", qc="fail", qc_reasons="true peak -0.5 > -1.0",
                    output_lufs=-23.04, true_peak_dbtp=-0.5, speech_pct=41.26, qc_events_n=3.0, words=57.0,
                    language="eng", stage_seconds={"separate": 7.084, "qc": 0.5})
    figures = {r["field"]: r["value"] for r in dashboard.qc_table(row)}
    assert figures["qc"] == "fail" and figures["qc_reasons"] == "true peak -0.5 > -1.0"
    assert (figures["output_lufs"], figures["true_peak_dbtp"], figures["speech_pct"]) == (-23.0, -0.5, 41.3)
    assert (figures["qc_events_n"], figures["words"], figures["language"]) == (3, 57, "eng")
    assert figures["separate_s"] == 7.08 and figures["duration_s"] is None     # NaN: shown empty
    failed = {r["field"]: r["value"] for r in dashboard.qc_table(ReportRow(file="b", status="failed", stage="vad",
                                                                         error="bad"))}
    assert (failed["stage"], failed["error"]) == ("vad", "bad")


def test_report_markdown_links_the_reports(tmp_path):
    html, csv = tmp_path / "r.html", tmp_path / "r.csv"
    rows = [ReportRow(file="a", title="a", status="ok", qc="pass", output_lufs=-23.0, true_peak_dbtp=-1.2),
            ReportRow(file="b", title="b", status="failed", output_lufs=math.nan)]
    text = dashboard.report_markdown(rows, html, csv)
    assert text.startswith("# reelsplit run: 1 ok, 0 skipped, 1 failed")
    assert f"]({html.as_uri()})" in text and f"]({csv.as_uri()})" in text
    assert "| a | ok | pass  | -23.0 | -1.2 |" in text and "| b | failed |" in text
    assert Path(html).name in text
