"""The whole pipeline through the CLI, as a user runs it: a stereo .mov, a 5.1 .mkv, a hot audio-only file
and two bad files in one batch; results checked with ffprobe and ffmpeg's own ebur128 meter."""
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import ffmpeg_ebur128, ffprobe, run_cli, si_sdr
from pipeline.audio import write_wav
from pipeline.training.demo import make_demo_reel

pytestmark = pytest.mark.slow
FRAME = 1 / 24
LSB_24 = 2.0 ** -23           # one step of 24-bit PCM read as float (full scale 1.0)


def _hot_transients(path):
    """Quiet programme with loud clicks: reaching -23 LUFS needs gain that would push peaks over -1 dBTP."""
    rate, n = 48000, 48000 * 6
    t = np.arange(n) / rate
    x = 0.02 * np.sin(2 * np.pi * 300 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    for k in range(1, 6):
        x[k * rate: k * rate + 40] += 0.6 * np.hanning(40)
    stereo = np.stack([x, 0.9 * x], axis=1).astype(np.float32)
    return write_wav(path, stereo, rate, "stereo")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    drop = root / "drop"
    stereo = make_demo_reel(drop / "reel 1.mov", seconds=8, layout="stereo", seed=11, write_stems=True)
    surround = make_demo_reel(drop / "reel2.mkv", seconds=6, layout="5.1", seed=12)
    hot = _hot_transients(drop / "hot.wav")
    (drop / "broken.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + bytes(range(256)) * 4)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=24:duration=2",
                    "-c:v", "libx264", "-preset", "ultrafast", str(drop / "silent_picture.mp4")], check=True)
    inputs = [stereo.path, surround.path, hot, drop / "broken.mov", drop / "silent_picture.mp4"]
    before = {p: p.read_bytes() for p in inputs}
    out = root / "out"
    proc = run_cli("run", *inputs, "--out", out, "--profile", "ebu-r128")
    return dict(root=root, out=out, proc=proc, stereo=stereo, surround=surround, inputs=inputs, before=before,
                html=(out / "reports" / "latest.html").read_text(encoding="utf-8"),
                report=pd.read_csv(out / "reports" / "latest.csv").set_index("title"))


def test_batch_exit_code_and_report_rows(batch):
    proc, report = batch["proc"], batch["report"]
    assert proc.returncode == 1, proc.stdout + proc.stderr      # some files failed
    assert "model dfn3" in proc.stdout                           # the model used is announced
    assert "dialogue clean-up none (auto: DFN3 is itself a speech denoiser)" in proc.stdout   # and the clean-up
    ok = report.loc[["reel_1", "reel2", "hot"]]
    assert list(ok["status"]) == ["ok", "ok", "ok"]
    assert ok["error"].isna().all() and ok["stage"].isna().all()     # no error, no failed stage
    # a failed file's row: status, the stage and one line naming the cause, and no QC verdict
    for title, cause in (("broken", "not a readable media file"), ("silent_picture", "no audio stream in the file")):
        row = report.loc[title]
        assert (row["status"], row["stage"]) == ("failed", "probe"), row.to_dict()
        assert row["error"].startswith(cause) and "\n" not in row["error"], row["error"]
    assert (report["model"] == "dfn3").all() and (report["profile"] == "ebu-r128").all()
    assert (report.loc[["reel_1", "reel2", "hot"], "cleanup"] == "none").all()   # cleanup: auto after DFN3
    for col in ("input_lufs", "output_lufs", "dx_lufs", "me_lufs", "true_peak_dbtp", "lra_lu",
                "null_residual_dbfs", "gain_db", "separate_s", "total_s", "rtf"):
        assert report.loc[["reel_1", "reel2", "hot"], col].notna().all(), col
    assert "FAILED" in proc.stdout and "broken.mov" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert "report (HTML)" in proc.stdout and (batch["out"] / "reports" / "latest.html").is_file()


def test_inputs_never_modified(batch):
    for path, content in batch["before"].items():
        assert path.read_bytes() == content


def _audio_streams(path):
    return [s for s in ffprobe(path)["streams"] if s["codec_type"] == "audio"]


def test_stereo_mov_deliverable(batch):
    mov = batch["out"] / "reel_1" / "reel_1.mov"
    probe = ffprobe(mov)
    video = [s for s in probe["streams"] if s["codec_type"] == "video"]
    audio = _audio_streams(mov)
    assert len(video) == 1 and video[0]["codec_name"] == "h264"
    assert len(audio) == 4
    assert [s["tags"]["handler_name"] for s in audio] == [
        "Original mix", "Delivered mix (ebu-r128)", "DX dialogue", "M&E"]
    assert [s["codec_name"] for s in audio] == ["pcm_s24le"] * 4
    assert {s["sample_rate"] for s in audio} == {"48000"} and {s["channels"] for s in audio} == {2}
    # ffmpeg 5.1's MOV muxer drops the ISO 639-2 code "zxx" (no linguistic content): M&E reads "und" there
    assert audio[3]["tags"].get("language", "und") in ("zxx", "und")
    for s in audio:
        assert abs(float(s["duration"]) - batch["stereo"].seconds) <= FRAME
    # the picture is copied untouched: same packets
    src = subprocess.run(["ffmpeg", "-v", "error", "-i", str(batch["stereo"].path), "-map", "0:v", "-c", "copy",
                          "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout
    dst = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mov), "-map", "0:v", "-c", "copy",
                          "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout
    assert src == dst


def test_5_1_mkv_source_is_delivered_as_mov_with_its_layout(batch):
    """Matroska's PCM codec has no channel mask (ffprobe reads 6-channel PCM in .mkv as "unknown"), so a 5.1
    Matroska source is delivered in MOV, where ffprobe reports 5.1 on every track."""
    assert not (batch["out"] / "reel2" / "reel2.mkv").exists()
    mov = batch["out"] / "reel2" / "reel2.mov"
    audio = _audio_streams(mov)
    assert len(audio) == 4 and {s["channels"] for s in audio} == {6}
    assert {s["channel_layout"] for s in audio} == {"5.1"}
    assert [s["tags"]["handler_name"] for s in audio] == [
        "Original mix", "Delivered mix (ebu-r128)", "DX dialogue", "M&E"]
    for s in audio:
        assert abs(float(s["duration"]) - batch["surround"].seconds) <= FRAME
    for stem in ("MIX", "DX", "ME"):
        (s,) = _audio_streams(batch["out"] / "reel2" / f"reel2_{stem}.wav")
        assert (s["codec_name"], s["sample_rate"], s["channels"], s["channel_layout"]) == ("pcm_s24le", "48000", 6, "5.1")
        assert int(s["duration_ts"]) == 6 * 48000
    dx, _ = sf.read(str(batch["out"] / "reel2" / "reel2_DX.wav"), always_2d=True)
    assert np.all(dx[:, 3] == 0)        # LFE stays in M&E


def _decode_s32(path, stream):
    """Audio stream `stream` (an ffprobe stream dict of `path`) decoded by ffmpeg to 32-bit integers,
    (samples, channels): 24-bit PCM lands in the top 24 bits, as soundfile reads a 24-bit WAV with dtype int32."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:{stream['index']}",
                          "-c:a", "pcm_s32le", "-f", "s32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<i4").reshape(-1, stream["channels"])


def _packets_md5(path, stream):
    """MD5 of one stream's packets, stream-copied (what a copy keeps byte for byte)."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", stream, "-c", "copy", "-f", "md5", "-"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("title, source", [("reel_1", "stereo"), ("reel2", "surround")])
def test_deliverable_tracks_carry_the_stems(batch, title, source):
    """Each audio track of the deliverable holds what its label says: track 1 the source's audio copied untouched,
    tracks 2-4 the written MIX, DX and M&E stems sample for sample (so swapped or stale tracks fail)."""
    folder = batch["out"] / title
    mov, src = folder / f"{title}.mov", batch[source].path
    audio = _audio_streams(mov)
    labels = ["Original mix", "Delivered mix (ebu-r128)", "DX dialogue", "M&E"]
    assert [s["tags"]["handler_name"] for s in audio] == labels           # MOV keeps handler_name, not title
    (src_audio,) = _audio_streams(src)
    assert _packets_md5(mov, "0:a:0") == _packets_md5(src, "0:a:0")       # the original: same bytes
    assert np.array_equal(_decode_s32(mov, audio[0]), _decode_s32(src, src_audio))
    stems = {}
    for track, stem in zip(audio[1:], ("MIX", "DX", "ME")):
        stems[stem], _ = sf.read(str(folder / f"{title}_{stem}.wav"), dtype="int32", always_2d=True)
        delivered = _decode_s32(mov, track)
        assert delivered.shape == stems[stem].shape, (track["tags"]["handler_name"], stem)
        assert np.array_equal(delivered, stems[stem]), (track["tags"]["handler_name"], stem)
    # the stems differ from one another, so the comparison above tells the tracks apart
    assert not np.array_equal(stems["MIX"], stems["DX"]) and not np.array_equal(stems["DX"], stems["ME"])
    assert not np.array_equal(stems["MIX"], stems["ME"])


def test_stereo_mkv_stays_mkv(tmp_path):
    from pipeline.media import probe
    from pipeline.remux import deliverable_container
    reel = make_demo_reel(tmp_path / "s.mkv", seconds=1, layout="stereo", seed=1)
    assert deliverable_container(probe(reel.path)) == ("matroska", ".mkv")
    mp4 = make_demo_reel(tmp_path / "s.mp4", seconds=1, layout="stereo", seed=1)
    assert deliverable_container(probe(mp4.path)) == ("mov", ".mov")      # MP4 cannot hold PCM


@pytest.mark.parametrize("title", ["reel_1", "reel2", "hot"])
def test_delivered_loudness_and_true_peak_by_ffmpeg(batch, title):
    """ffmpeg's ebur128 (independent of our meter): mix at -23 +-0.2 LUFS, every output under -1 dBTP."""
    folder = batch["out"] / title
    mix = ffmpeg_ebur128(folder / f"{title}_MIX.wav")
    # the profile allows +-0.5 LU; one gain lands on the target: ffmpeg measured -23.0 (0.1 LU steps) on all three
    assert abs(mix["I"] - (-23.0)) <= 0.2, mix
    for stem in ("MIX", "DX", "ME"):
        assert ffmpeg_ebur128(folder / f"{title}_{stem}.wav")["TP"] <= -1.0, stem
    row = batch["report"].loc[title]
    assert abs(row["output_lufs"] - mix["I"]) <= 0.1


def test_limiter_engaged_on_hot_input(batch):
    """The hot file needs +10 dB to reach -23 LUFS; the limiter holds its clicks at the ceiling, and the static
    gain is raised to make up the loudness the limiter takes (measured: gain 11.5 dB, limiter 8.3 dB, true peak
    -1.05 dBTP, output -23.009 LUFS)."""
    row = batch["report"].loc["hot"]
    assert row["gain_db"] > row["target_lufs"] - row["input_lufs"] + 1     # made up: 11.5 > 10.0 + 1
    assert row["limiter_db"] > 6
    assert -1.2 <= row["true_peak_dbtp"] <= -1.0           # at the ceiling, not far under it
    assert abs(row["output_lufs"] - row["target_lufs"]) <= 0.05   # the limiter's loop stops within 0.05 LU


@pytest.mark.parametrize("title", ["reel_1", "reel2", "hot"])
def test_null_test_dx_plus_me_is_the_mix(batch, title):
    folder = batch["out"] / title
    mix, _ = sf.read(str(folder / f"{title}_MIX.wav"), always_2d=True)
    dx, _ = sf.read(str(folder / f"{title}_DX.wav"), always_2d=True)
    me, _ = sf.read(str(folder / f"{title}_ME.wav"), always_2d=True)
    residual = np.abs(mix - (dx + me)).max()
    # Each file is quantised to 24 bits on its own (ffmpeg's float -> s24 truncates: up to 1 LSB = 2**-23 each),
    # so MIX - (DX + M&E) read back is off by under 2 LSB plus float32 rounding of the sum: measured 2 LSB
    # (-132.5 dBFS) on all three titles; allowed 3 LSB (-128.9 dBFS). A stem 4 LSB off, or any real leak, fails.
    assert residual <= 3 * LSB_24, f"{residual / LSB_24:.1f} LSB"
    # the report states the residual of the written files, not of the float signal before quantisation
    assert abs(batch["report"].loc[title, "null_residual_dbfs"] - 20 * np.log10(residual)) < 0.01


def test_delivered_dx_is_dialogue(batch):
    """The DX stem is closer to the true dialogue than the mix is: separation really happened."""
    truth, _ = sf.read(str(batch["stereo"].stems_dir / "dialogue.wav"), always_2d=True)
    mix, _ = sf.read(str(batch["out"] / "reel_1" / "reel_1_MIX.wav"), always_2d=True)
    dx, _ = sf.read(str(batch["out"] / "reel_1" / "reel_1_DX.wav"), always_2d=True)
    # measured: DX 18.3 dB SI-SDR against the true dialogue, the mix 5.0 dB (+13.4 dB)
    assert si_sdr(truth, dx) > si_sdr(truth, mix) + 12, (si_sdr(truth, dx), si_sdr(truth, mix))


def test_audio_only_input_gets_wav_stems_only(batch):
    assert sorted(p.name for p in (batch["out"] / "hot").iterdir() if not p.name.startswith(".")) == [
        "hot_DX.wav", "hot_ME.wav", "hot_MIX.wav", "hot_adr.csv", "hot_dialogue.csv", "hot_dialogue.srt",
        "hot_markers.edl", "hot_qc_events.csv", "hot_subtitles.srt", "hot_subtitles.ttml", "hot_subtitles.vtt",
        "hot_transcript.json",
        "manifest.json"]


def test_rerun_skips_finished_files(batch):
    out = batch["out"]
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*")   # outputs, not reports or the lock files
              if p.is_file() and p.parent.name != "reports" and not p.name.startswith(".")}
    proc = run_cli("run", *batch["inputs"], "--out", out)
    assert proc.returncode == 1
    report = pd.read_csv(out / "reports" / "latest.csv").set_index("title")
    assert list(report.loc[["reel_1", "reel2", "hot"], "status"]) == ["skipped"] * 3
    assert proc.stdout.count("skipped: outputs are complete and current") == 3
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert not list(out.glob("*/.*partial*"))


def test_qc_columns_and_verdicts(batch):
    report = batch["report"]
    ok = report.loc[["reel_1", "reel2", "hot"]]
    assert set(ok["qc"]) == {"pass"}, ok["qc_reasons"].tolist()
    assert (ok["measurement"] == "programme").all() and (ok["clipped_samples"] == 0).all()
    truth_pct = 100 * sum(e - s for s, e in batch["stereo"].dialogue_regions) / batch["stereo"].seconds
    # the demo reel talks 54.6 % of the time; the VAD on DX measured 57.9 % (its hangover lengthens each line)
    assert abs(report.loc["reel_1", "speech_pct"] - truth_pct) < 8, (report.loc["reel_1", "speech_pct"], truth_pct)
    assert report.loc["hot", "speech_pct"] <= 1                  # tones and clicks are not dialogue: measured 0.0 %
    for col in ("dialog_gated_lufs", "mix_tp_dbtp", "dx_tp_dbtp", "me_tp_dbtp", "speech_leak_pct", "me_to_dx_db"):
        assert np.isfinite(report.loc["reel_1", col]), col
    assert report.loc["reel_1", "me_to_dx_db"] < -7              # in dialogue, M&E sits under DX: measured -10.0 dB
    failed = report.loc[["broken", "silent_picture"]]
    assert (failed["status"] == "failed").all() and failed["qc"].isna().all()   # no verdict on what was not delivered


def test_dialogue_spotting_list_has_timecode(batch):
    import csv
    folder = batch["out"] / "reel_1"
    with open(folder / "reel_1_dialogue.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    truth = batch["stereo"].dialogue_regions
    assert len(rows) == batch["report"].loc["reel_1", "dialogue_lines"] == len(truth)    # one line per spoken line
    for r, (true_start, true_end) in zip(rows, truth):
        start, end = float(r["start_s"]), float(r["end_s"])
        # measured against the spoken lines: starts within 0.02 s, ends 0.11-0.15 s late (the VAD's hangover)
        assert abs(start - true_start) <= 0.1 and abs(end - true_end) <= 0.25, (start, end, true_start, true_end)
        for tc, seconds in ((r["start_tc"], start), (r["end_tc"], end)):
            hh, mm, ss, ff = map(int, tc.split(":"))        # 24 fps: non-drop HH:MM:SS:FF
            assert ff < 24 and abs(hh * 3600 + mm * 60 + ss + ff / 24 - seconds) < 1 / 24 + 1e-6
    srt = (folder / "reel_1_dialogue.srt").read_text()
    assert srt.count(" --> ") == len(rows) and srt.startswith("1\n")


def test_html_report_has_a_section_per_file(batch):
    page = batch["html"]
    # one loudness plot per delivered file (spectrograms of QC events' excerpts are images too)
    assert len(re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,', page)) == 3
    for title in ("reel 1.mov", "reel2.mkv", "hot.wav", "broken.mov", "silent_picture.mp4"):
        assert title in page
    assert "not a readable media file" in page and "no audio stream in the file" in page   # why each failed


def test_mkv_deliverable_titles_and_languages(tmp_path):
    """Matroska keeps `title` and the ISO 639-2 code zxx on the M&E track (MOV keeps handler_name only)."""
    from pipeline.audio import write_wav
    from pipeline.media import probe
    from pipeline.remux import Track, remux

    reel = make_demo_reel(tmp_path / "s.mkv", seconds=2, layout="stereo", seed=2)
    x = np.zeros((2 * 48000, 2), np.float32)
    wav = write_wav(tmp_path / "z.wav", x, 48000, "stereo")
    tracks = [Track(None, "Original mix", "fra"), Track(wav, "Delivered mix", "fra"), Track(wav, "DX dialogue", "fra"),
              Track(wav, "M&E", "zxx")]
    out = remux(probe(reel.path), 0, tracks, tmp_path / "out.mkv").path
    audio = _audio_streams(out)
    assert [s["tags"]["title"] for s in audio] == ["Original mix", "Delivered mix", "DX dialogue", "M&E"]
    assert [s["tags"]["language"] for s in audio] == ["fra", "fra", "fra", "zxx"]
    assert [s["disposition"]["default"] for s in audio] == [1, 0, 0, 0]
