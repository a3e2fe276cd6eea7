"""Hostile and odd inputs (tests/hostile_corpus.py makes them): each one is processed correctly, or fails that file
alone with one line naming the file, the stage and the reason; the report row says `failed` with the same
reason; no input is ever written to; the other files of the batch still complete.

Most cases run as ONE in-process batch under Prefect's test harness (a folder of ~35 tiny files plus a few inputs
named one by one) and are asserted per row. `--stream 1` is a second, small in-process run. Permission cases
need a process that permissions apply to: the tests run as root, who reads anything, so the CLI is run with
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from its bounding set (`setpriv`), which makes root obey file
modes like any user (skipped, with the reason, where that cannot be done).

Each case asserts the behaviour a user relies on; the six that first failed (long unicode names, an empty or
unsearchable folder, truncated and corrupted media) were fixed in pipeline/batch.py, audio.py, ffmpeg.py, outputs.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import hostile_corpus
from conftest import ROOT, ffprobe

# --- what each case should give ------------------------------------------------------------------------------

# processed: (channels, sample rate, has a deliverable (video input), QC verdict)
PROCESSED = {
    "audio_only_wav": (2, 48000, False, "pass"),
    "audio_only_flac": (2, 48000, False, "pass"),
    "mono": (1, 48000, False, "pass"),
    "rate_8k": (2, 8000, False, "pass"),
    "rate_96k": (2, 96000, False, "pass"),
    "rate_192k": (2, 192000, False, "pass"),
    "pcm_s16le": (2, 48000, False, "pass"),
    "pcm_s24le": (2, 48000, False, "pass"),
    "pcm_s32le": (2, 48000, False, "pass"),
    "pcm_f32le": (2, 48000, False, "pass"),
    "aac_m4a": (2, 48000, False, "pass"),
    "ac3": (2, 48000, False, "pass"),
    "flac": (2, 48000, False, "pass"),
    "opus_ogg": (2, 48000, False, "pass"),
    "opus_opus": (2, 48000, False, "pass"),
    "two_streams": (2, 48000, True, "pass"),          # the first stream (stereo), not a:1 (mono); both delivered
    "surround_7_1": (8, 48000, False, "pass"),
    # multi-mono masters, once processed as "mono" from track 1 with the other tracks dropped: assembled now
    "multi_mono_mov": (6, 48000, True, "pass"),       # six unlabelled tracks: 5.1 in SMPTE order
    "multi_mono_mxf": (6, 48000, True, "pass"),
    "dual_mono_labelled": (2, 48000, True, "pass"),   # FL + FR: stereo
    "variable_frame_rate": (2, 48000, True, "pass"),
    "digital_silence": (2, 48000, True, "fail"),      # delivered as silence, QC says -inf LUFS
    "single_sample": (2, 48000, False, "fail"),       # delivered (1 sample), QC says -inf LUFS
    "name_spaces": (2, 48000, True, "pass"),
    "name_quotes": (2, 48000, True, "pass"),
    "name_cmd_subst": (2, 48000, False, "pass"),
    "name_leading_dash": (2, 48000, True, "pass"),
    "name_unicode": (2, 48000, True, "pass"),
    "name_html": (2, 48000, False, "pass"),
    "name_long_ascii": (2, 48000, False, "pass"),
    "name_long_unicode": (2, 48000, False, "pass"),
    "path_cmd_subst": (2, 48000, True, "pass"),
    "symlink": (2, 48000, False, "pass"),
}

# failed: (stage, words the reason must contain)
FAILED = {
    "zero_length": ("probe", "file is empty (0 bytes)"),
    "video_no_audio": ("probe", "no audio stream in the file"),
    "tracks_rates_differ": ("probe", "the tracks to assemble differ in sample rate (a:0 48000 Hz, a:1 44100 Hz)"),
    "tracks_lengths_differ": ("probe", "the tracks to assemble differ in length"),
    "eight_unlabelled": ("probe", "audio is 8 separate mono tracks without channel labels (7.1 or 5.1 + Lt/Rt): "
                                  "name them with --tracks"),
    "vanish_before_probe": ("probe", "file not found"),
    # a start timecode that cannot be read: the stems would land at the wrong time, so the file fails, saying why
    "timecode_broken_rate": ("probe", "of the timecode track at 17 fps: unsupported timecode frame rate 17"),
    "timecode_zero_rate": ("probe", "the timecode track (stream 2) has no readable start (rate 0/1)"),
    "vanish_before_extract": ("extract", "No such file or directory"),
    "directory_as_file": ("input", "no media files"),
}

DAMAGE_WORDS = ("truncated", "damaged", "corrupt", "decod")

ABSENT = {"directory_in_drop"}   # a folder inside the drop folder is not a file: ignored, no row

VANISH = {"vanish_before_probe.wav": "probe", "vanish_before_extract.wav": "extract"}


# --- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return hostile_corpus.build(tmp_path_factory.mktemp("hostile"))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under `root` (links not followed): kind, mode, and mtime plus link target or content hash
    (files, links) or the names inside (folders)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            else:   # a folder: its entries (its mtime moves when the test deletes the vanishing files)
                found[os.fsdecode(p)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), sorted(os.listdir(p)))
                continue
            found[os.fsdecode(p)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns, what)
    return found


def _vanishing(real, stage):
    """Wrap a pipeline step so it deletes the files meant to vanish right before `stage` uses them."""
    def wrapper(path, *args, **kwargs):
        if VANISH.get(Path(path).name) == stage:
            Path(path).unlink(missing_ok=True)
        return real(path, *args, **kwargs)
    return wrapper


def _profile_spec():
    from pipeline.config import Settings
    from pipeline.models import resolve
    from pipeline.profiles import load_profile
    return resolve("dfn3"), Settings.load(), load_profile("ebu-r128")


@pytest.fixture(scope="module")
def batch(harness, corpus, tmp_path_factory):
    """The whole corpus in one in-process run (2 workers); two files vanish at chosen stages."""
    from flows.reel import RunOptions, run
    from pipeline import audio, media

    out = tmp_path_factory.mktemp("hostile-out")
    pwned_before = Path("/tmp/pwned").exists()
    before = snapshot(corpus.root)
    printed = io.StringIO()
    spec, settings, profile = _profile_spec()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setattr(media, "probe", _vanishing(media.probe, "probe"))
        mp.setattr(audio, "extract_to_raw", _vanishing(audio.extract_to_raw, "extract"))
        summary = run(corpus.inputs(), out, spec, settings, profile, RunOptions(workers=2))
    by_file = {r.file: r for r in summary.rows}
    rows = {name: by_file.get(os.fsdecode(path)) for name, path in corpus.cases.items()}
    return dict(corpus=corpus, out=out, summary=summary, rows=rows, before=before, after=snapshot(corpus.root),
                printed=printed.getvalue(), pwned_before=pwned_before,
                csv=pd.read_csv(summary.csv, keep_default_na=False, dtype=str),
                html=summary.html.read_text(encoding="utf-8"))


# --- per case ------------------------------------------------------------------------------------------------

def _param(name):
    return name


@pytest.mark.slow
@pytest.mark.parametrize("case", [_param(c) for c in PROCESSED])
def test_processed(batch, case):
    channels, rate, video, verdict = PROCESSED[case]
    row = batch["rows"][case]
    assert row is not None, f"no report row for {case}"
    assert row.status == "ok", f"{row.stage}: {row.error}"
    assert (row.channels, row.sample_rate, row.qc) == (channels, rate, verdict), row.qc_reasons
    folder = batch["out"] / row.title
    assert not row.title.startswith(("-", ".")) and "/" not in row.title and folder.parent == batch["out"]
    for stem in ("MIX", "DX", "ME"):
        info = sf.info(str(folder / f"{row.title}_{stem}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (rate, channels, "PCM_24")
        assert abs(info.frames / rate - row.duration_s) < 0.05 or row.duration_s < 0.05
    assert bool(row.deliverable) == video
    if video:
        audio = [s for s in ffprobe(Path(row.deliverable))["streams"] if s["codec_type"] == "audio"]
        source = [s for s in ffprobe(Path(row.file))["streams"] if s["codec_type"] == "audio"]
        # the master's own tracks, delivered mix, DX, M&E, then every other track of the source: none is dropped
        assert len(audio) == 3 + len(source)
        delivered = [s for s in audio if _label(s).startswith("Delivered mix")]
        assert len(delivered) == 1 and delivered[0]["channels"] == channels


def _label(stream: dict) -> str:
    """A track's label as MOV (handler_name) or Matroska (title, upper-case tag names) keeps it."""
    tags = {k.lower(): v for k, v in stream.get("tags", {}).items()}
    return tags.get("title") or tags.get("handler_name", "")


def _pcm_md5(path: Path, audio_index: int) -> str:
    """MD5 of the decoded samples of audio stream a:N (ffmpeg's md5 muxer), to compare tracks across files."""
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:a:{audio_index}",
                           "-c:a", "pcm_s32le", "-f", "md5", "-"], capture_output=True, text=True, check=True,
                          stdin=subprocess.DEVNULL)
    return proc.stdout.strip()


@pytest.mark.slow
def test_deliverable_keeps_every_source_track(batch):
    """A two-stream master (stereo a:0 processed, mono a:1 not): the deliverable carries a:1 as its last track,
    sample for sample, labelled as not processed; before the fix it was dropped."""
    row = batch["rows"]["two_streams"]
    deliverable = Path(row.deliverable)
    audio = [s for s in ffprobe(deliverable)["streams"] if s["codec_type"] == "audio"]
    assert [s["channels"] for s in audio] == [2, 2, 2, 2, 1]
    assert audio[-1]["tags"].get("title", audio[-1]["tags"].get("TITLE")) == "Original track a:1 (not processed)"
    assert _pcm_md5(deliverable, 4) == _pcm_md5(Path(row.file), 1)
    assert _pcm_md5(deliverable, 0) == _pcm_md5(Path(row.file), 0)


@pytest.mark.slow
@pytest.mark.parametrize("case", [_param(c) for c in FAILED])
def test_failed_with_one_line_reason(batch, case):
    stage, words = FAILED[case]
    path = batch["corpus"].cases[case]
    row = batch["rows"][case]
    assert row is not None, f"no report row for {case}"
    assert (row.status, row.stage) == ("failed", stage)
    assert words in row.error and "\n" not in row.error and not row.error.startswith("internal error")
    # the terminal names the file, the stage and the same reason, on one line
    line = f"FAILED at {stage}: {path}: {row.error}"
    assert sum(line in printed for printed in batch["printed"].splitlines()) == 1, batch["printed"][-3000:]
    # the CSV row says the same
    csv = batch["csv"].set_index("file").loc[os.fsdecode(path)]
    assert (csv["status"], csv["stage"], csv["error"]) == ("failed", stage, row.error)
    # and nothing was delivered for it
    assert not list((batch["out"] / row.title).glob("*.wav"))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["truncated_mov", "truncated_wav", "corrupted_mov"])
def test_damaged_media_is_not_delivered_silently_short(batch, case):
    """Either the file fails at extract saying it is damaged, or it is delivered at its full length (audio kept
    in sync with the picture) with the damage named in the QC reasons."""
    row = batch["rows"][case]
    if row.status == "failed":
        assert row.stage == "extract" and any(w in row.error.lower() for w in DAMAGE_WORDS), row.error
    else:
        decoded = sf.info(str(batch["out"] / row.title / f"{row.title}_MIX.wav")).duration
        assert abs(row.duration_s - decoded) < 0.03, (row.duration_s, decoded)
        assert row.qc == "fail" and any(w in row.qc_reasons.lower() for w in DAMAGE_WORDS), row.qc_reasons


@pytest.mark.slow
def test_folder_inside_the_drop_folder_is_ignored(batch):
    assert all(batch["rows"][case] is None for case in ABSENT)


@pytest.mark.slow
def test_batch_counts_and_every_row_is_one_line(batch):
    """One row per input (folders contribute their files), every reason one line, no traceback printed."""
    summary, cases = batch["summary"], batch["corpus"].cases
    known = {os.fsdecode(p) for c, p in cases.items() if c not in ABSENT}
    files = [r.file for r in summary.rows]
    assert len(files) == len(set(files)) == len(batch["csv"])
    assert known - {os.fsdecode(cases["directory_as_file"])} <= set(files) <= known
    assert summary.failed == sum(r.status == "failed" for r in summary.rows)
    for r in summary.rows:
        assert "\n" not in r.error and "Traceback" not in r.error and not r.error.startswith("internal error")
    assert "Traceback" not in batch["printed"]
    titles = [r.title for r in summary.rows]
    assert len(set(titles)) == len(titles)


@pytest.mark.slow
def test_inputs_never_modified(batch):
    """Bytes, mode and mtime of every input (and the symlink itself) are as before; nothing was written beside
    them; only the two files the test deleted are gone."""
    before, after = dict(batch["before"]), batch["after"]
    for name in VANISH:
        gone = os.fsdecode(batch["corpus"].drop / name)
        assert gone not in after
        del before[gone]
    drop = os.fsdecode(batch["corpus"].drop)
    before[drop] = before[drop][:2] + (sorted(set(before[drop][2]) - set(VANISH)),)
    assert after == before


@pytest.mark.slow
def test_no_shell_ever_sees_a_file_name(batch):
    corpus = batch["corpus"]
    assert batch["rows"]["name_cmd_subst"].status == batch["rows"]["path_cmd_subst"].status == "ok"
    made = [p for where in (corpus.root, batch["out"]) for p in where.rglob("pwned") if not p.is_dir()]
    assert not made and not (ROOT / "pwned").exists() and not Path("pwned").exists()
    if not batch["pwned_before"]:
        assert not Path("/tmp/pwned").exists()


@pytest.mark.slow
def test_html_report_escapes_file_names(batch):
    html = batch["html"]
    assert "<img src=x onerror" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.slow
def test_variable_frame_rate_picture_copied_packet_for_packet(batch):
    row = batch["rows"]["variable_frame_rate"]

    def packets(path):
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy",
                              "-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
        return [line for line in out.splitlines() if not line.startswith("#")]

    source = packets(batch["corpus"].cases["variable_frame_rate"])
    assert len(source) > 50 and packets(row.deliverable) == source   # timestamps, sizes and data
    # 120 fps has no SMPTE timecode: the words files are counted without a picture rate instead of failing
    assert not row.asr_error, row.asr_error
    assert (batch["out"] / row.title / f"{row.title}_subtitles.srt").is_file()


@pytest.mark.slow
def test_silence_and_a_single_sample_are_delivered_and_flagged(batch):
    """Nothing to measure: no gain (never +30 dB of noise, never NaN), the outputs written as they are, and QC
    says why it fails."""
    for case, frames in (("digital_silence", int(hostile_corpus.SECONDS * hostile_corpus.RATE)),
                         ("single_sample", 1)):
        row = batch["rows"][case]
        assert row.gain_db == 0.0 and "integrated -inf LUFS" in row.qc_reasons, (row.gain_db, row.qc_reasons)
        mix, _ = sf.read(str(batch["out"] / row.title / f"{row.title}_MIX.wav"), always_2d=True)
        assert mix.shape == (frames, 2)
    mix, _ = sf.read(str(batch["out"] / "silence" / "silence_MIX.wav"), always_2d=True)
    assert not mix.any()


@pytest.mark.slow
def test_audio_that_starts_after_the_picture_keeps_its_place(batch):
    """The source's audio starts 0.5 s into the picture: the stems start at the picture's first frame (where
    the start timecode is) with 0.5 s of digital silence, so the dialogue lands where the source plays it,
    not 0.5 s early; in the deliverable the delivered tracks start with the picture, the original keeps its
    own start."""
    row = batch["rows"]["audio_starts_late"]
    assert row is not None and row.status == "ok", row and row.error
    mix, rate = sf.read(str(batch["out"] / row.title / f"{row.title}_MIX.wav"), always_2d=True)
    lead = int(0.5 * rate)
    assert not mix[: lead - rate // 1000].any()                      # silent to 1 ms before the audio's start
    assert np.abs(mix[lead + rate // 100: lead + rate // 10]).max() > 0.01
    assert abs(mix.shape[0] - int(1.5 * rate)) <= rate // 100        # 0.5 s of silence + the 1 s of audio
    streams = {_label(s): s for s in ffprobe(Path(row.deliverable))["streams"] if s["codec_type"] == "audio"}
    delivered = next(s for label, s in streams.items() if label.startswith("Delivered mix"))
    original = next(s for label, s in streams.items() if label.startswith("Original"))
    assert abs(float(delivered["start_time"])) < 0.01 and abs(float(original["start_time"]) - 0.5) < 0.01


@pytest.mark.slow
def test_audio_that_starts_before_the_picture_is_stamped_before_its_timecode(batch):
    """The source's picture starts 0.5 s after its audio, with timecode 01:00:00:00 on the picture: the stems
    keep the audio from its first sample and are stamped 0.5 s before 01:00:00:00 (BWF TimeReference read by
    ffprobe: 172 800 000 − 24 000 samples at 48 kHz), so they land under the picture in a DAW; the deliverable
    keeps the picture's timecode and the 0.5 s between picture and audio."""
    row = batch["rows"]["audio_starts_early"]
    assert row is not None and row.status == "ok", row and row.error
    assert row.start_tc == "00:59:59:12", row.start_tc
    mix = batch["out"] / row.title / f"{row.title}_MIX.wav"
    tags = ffprobe(mix)["format"]["tags"]
    assert int(tags["time_reference"]) == 3600 * 48000 - 24000, tags
    assert sf.info(str(mix)).frames == int(1.5 * 48000)
    probe = ffprobe(Path(row.deliverable))
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    delivered = next(s for s in probe["streams"] if _label(s).startswith("Delivered mix"))
    assert abs(float(video["start_time"]) - 0.5) < 0.01 and abs(float(delivered["start_time"])) < 0.01
    assert {k.lower(): v for k, v in probe["format"].get("tags", {}).items()}.get("timecode") == "01:00:00:00"


@pytest.mark.slow
def test_symlink_processed_under_its_own_name(batch):
    row = batch["rows"]["symlink"]
    assert row.title == "linked_reel" and Path(row.file).is_symlink()


@pytest.mark.slow
def test_audio_stream_1_picks_the_second_stream(harness, corpus, tmp_path_factory):
    """`--stream 1`: the mono a:1 of the two-stream file is separated and copied as the original track; a
    file with one audio stream fails with the count."""
    from flows.reel import RunOptions, run

    two, mono = corpus.cases["two_streams"], corpus.cases["mono"]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (two, mono)}
    out = tmp_path_factory.mktemp("hostile-stream1")
    spec, settings, profile = _profile_spec()
    summary = run([two, mono], out, spec, settings, profile, RunOptions(audio_stream=1))
    rows = {Path(r.file).name: r for r in summary.rows}
    picked, single = rows[two.name], rows[mono.name]
    assert picked.status == "ok" and picked.channels == 1 and picked.layout == "mono", picked.error
    audio = [s for s in ffprobe(Path(picked.deliverable))["streams"] if s["codec_type"] == "audio"]
    assert [s["channels"] for s in audio] == [1, 1, 1, 1, 2]     # a:0 (stereo, not processed) kept last
    assert (single.status, single.stage) == ("failed", "probe")
    assert single.error == "audio stream 1 requested but the file has 1"
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (two, mono)} == before


# --- permissions, through the CLI ----------------------------------------------------------------------------

DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _as_a_user(probe_file: Path) -> list[str]:
    """Command prefix under which file modes apply. Root bypasses them, so root drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (still uid 0, so the venv under /root stays usable); skip where that is impossible."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root, which reads unreadable files, and setpriv is missing to drop that power")
    check = subprocess.run([*DROP_DAC, "cat", str(probe_file)], capture_output=True)
    if check.returncode == 0 or b"Permission denied" not in check.stderr:
        pytest.skip("running as root and dropping CAP_DAC_OVERRIDE did not make file modes apply "
                    f"({check.stderr.decode(errors='replace').strip()})")
    return DROP_DAC


def _cli(prefix: list[str], cwd: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "flows.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def _restore_modes(*paths: Path) -> None:
    for p in paths:
        p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.slow
def test_cli_unreadable_file_and_leading_dash(corpus, tmp_path):
    """chmod 000 fails that file at probe with 'permission denied'; `-- -rf.wav` (relative, after `--`) is
    processed; without `--` the dash name is a usage error (exit 2), one line, no traceback."""
    work = tmp_path / "in"
    work.mkdir()
    shutil.copy(corpus.cases["mono"], work / "-rf.wav")
    locked = work / "locked.wav"
    shutil.copy(corpus.cases["mono"], locked)
    locked.chmod(0)
    try:
        prefix = _as_a_user(locked)
        before = snapshot(work)
        usage = _cli(prefix, work, "run", "-rf.wav", "--out", tmp_path / "out0")
        assert usage.returncode == 2 and "usage:" in usage.stderr and "Traceback" not in usage.stderr
        assert not (tmp_path / "out0").exists()

        proc = _cli(prefix, work, "run", "--out", tmp_path / "out", "--", "-rf.wav", "locked.wav")
        text = proc.stdout + proc.stderr
        assert proc.returncode == 1, text
        assert "Traceback" not in text
        assert f"[locked] FAILED at probe: {locked}: permission denied (not readable)" in proc.stdout
        report = pd.read_csv(tmp_path / "out" / "reports" / "latest.csv", keep_default_na=False).set_index("title")
        assert report.loc["rf", "status"] == "ok" and report.loc["rf", "file"] == str(work / "-rf.wav")
        assert (report.loc["locked", "status"], report.loc["locked", "stage"]) == ("failed", "probe")
        assert report.loc["locked", "error"] == "permission denied (not readable)"
        assert snapshot(work) == before
    finally:
        _restore_modes(locked)


@pytest.mark.slow
def test_cli_unsearchable_folder_fails_only_its_files(corpus, tmp_path):
    work = tmp_path / "in"
    work.mkdir()
    shutil.copy(corpus.cases["mono"], work / "fine.wav")
    hidden_in, locked_drop = tmp_path / "noexec_a", tmp_path / "noexec_b"
    for folder in (hidden_in, locked_drop):
        folder.mkdir()
        shutil.copy(corpus.cases["mono"], folder / "inside.wav")
        folder.chmod(0o600)   # readable (names can be listed) but not searchable (no stat, no open)
    try:
        prefix = _as_a_user(hidden_in / "inside.wav")
        proc = _cli(prefix, work, "run", "--out", tmp_path / "out", "fine.wav", hidden_in / "inside.wav",
                    locked_drop)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "Traceback" not in text, text[-3000:]
        report = pd.read_csv(tmp_path / "out" / "reports" / "latest.csv", keep_default_na=False)
        assert list(report.loc[report["title"] == "fine", "status"]) == ["ok"]
        for folder in (hidden_in, locked_drop):
            mine = report[report["file"].str.startswith(str(folder))]
            assert len(mine) >= 1 and set(mine["status"]) == {"failed"}
            assert mine["error"].str.contains("permission denied", case=False).all()
    finally:
        _restore_modes(hidden_in, locked_drop)
