"""One reel through every stage: probe → extract → separate → cleanup → loudness → write → remux → qc.

Plain Python over `pipeline` steps, so the flow (flows/reel.py) stays thin and tests can call it directly.
A failure of any stage becomes that file's report row (status failed, the stage, one line of reason);
it never stops the batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pipeline import __version__, audio, cleanup, deliver, downmix, media, qc, remux, spotting, timecode, vad
from pipeline.config import Settings
from pipeline.errors import PipelineError, TitleLockedError
from pipeline.manifest import MANIFEST, Manifest, cache_key, is_complete
from pipeline.models import ModelSpec
from pipeline.outputs import discard, remove_partials, removed_on_failure, sha256_file, title_lock
from pipeline.profiles import Profile
from pipeline.report import ReportRow
from pipeline.separate import Separator, load_separator, resample

log = logging.getLogger("reelsplit")


@dataclass(frozen=True)
class ReelJob:
    path: Path
    title: str
    out_dir: Path        # OUT/<title>/
    audio_stream: int = 0


def settings_digest(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode()).hexdigest()[:12]


_separators: dict[tuple, Separator] = {}
_separators_lock = threading.Lock()


def get_separator(spec: ModelSpec, settings: Settings) -> Separator:
    """The separator for `spec`, loaded once per process and shared by every file (and worker thread)."""
    key = (spec, settings_digest(settings))
    with _separators_lock:
        if key not in _separators:
            _separators[key] = load_separator(spec, settings.separation, settings.stem_map)
        return _separators[key]


def write_stems(job: ReelJob, stems: dict, rate: int, layout: str, profile: Profile, model: str,
                timeout: float, subfolder: str = "") -> dict[str, Path]:
    """Write each delivered stem as a broadcast WAV named by the profile; keys are the stem names, prefixed
    with `subfolder/` for stems in a subfolder (the stereo downmix)."""
    folder = job.out_dir / subfolder if subfolder else job.out_dir
    what = f" {subfolder}" if subfolder else ""
    return {f"{subfolder}/{name}" if subfolder else name: audio.write_wav(
                folder / profile.naming.format(title=job.title, stem=name), data, rate, layout,
                bit_depth=profile.bit_depth, description=f"{job.title} {name}{what} ({model}, {profile.name})",
                timeout=timeout)
            for name, data in stems.items()}


def deliverable_tracks(wavs: dict[str, Path], profile: Profile, language: str) -> list[remux.Track]:
    """Audio tracks of the deliverable: original (copied), delivered mix, DX, M&E, then MX and FX if made."""
    tracks = [remux.Track(None, "Original mix", language),
              remux.Track(wavs["MIX"], f"Delivered mix ({profile.name})", language),
              remux.Track(wavs["DX"], "DX dialogue", language),
              remux.Track(wavs["ME"], "M&E", "zxx")]
    return tracks + [remux.Track(wavs[k], title, "zxx") for k, title in (("MX", "MX music"), ("FX", "FX effects"))
                     if k in wavs]


def fill_qc(row: ReportRow, checked: qc.QcResult) -> None:
    """Copy the QC measurements of the written files into the report row (and its plot data)."""
    row.qc, row.qc_reasons = checked.qc, "; ".join(checked.reasons)
    row.measurement, row.delivery_target_lufs = checked.measurement, checked.target_lufs
    row.output_lufs, row.lra_lu = checked.output_lufs, checked.lra_lu
    row.short_term_max_lufs, row.momentary_max_lufs = checked.short_term_max_lufs, checked.momentary_max_lufs
    row.dialog_gated_lufs, row.speech_pct = checked.dialog_gated_lufs, checked.speech_pct
    row.dx_lufs, row.me_lufs = checked.dx_lufs, checked.me_lufs
    row.true_peak_dbtp, row.null_residual_dbfs = checked.true_peak_dbtp, checked.null_residual_dbfs
    row.mix_tp_dbtp = checked.stem_true_peaks.get("MIX", math.nan)
    row.dx_tp_dbtp = checked.stem_true_peaks.get("DX", math.nan)
    row.me_tp_dbtp = checked.stem_true_peaks.get("ME", math.nan)
    row.clipped_samples, row.speech_leak_pct = checked.clipped_samples, checked.speech_leak_pct
    row.me_to_dx_db, row.dx_nonspeech_lu = checked.me_to_dx_db, checked.dx_nonspeech_lu
    row.plots = {"short_term": checked.short_term, "speech": [(r.start_s, r.end_s) for r in checked.speech]}


def _read(path: Path):
    import soundfile as sf
    return sf.read(str(path), dtype="float32", always_2d=True)[0]


def _supported_fps(fps):
    """The video's frame rate if SMPTE timecode exists for it, else None (spotting lists then carry seconds only)."""
    if fps is None:
        return None
    try:
        timecode.timecode_rate(fps)
        return fps
    except ValueError:
        return None


def ffmpeg_timeout(duration_s: float) -> float:
    """Generous time limit for one ffmpeg pass over a file: a minute plus twice its duration."""
    return 60.0 + 2.0 * max(duration_s, 0.0)


class StageTimer:
    """Times the stages of one file into its report row, prints a line per finished stage, and remembers
    which stage is running so a failure names it."""

    def __init__(self, row: ReportRow, title: str, say: Callable[[str], None]):
        self.row, self.title, self.say = row, title, say
        self.current = "probe"
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.current = name
        t0 = time.perf_counter()
        yield
        self.row.stage_seconds[name] = self.row.stage_seconds.get(name, 0.0) + time.perf_counter() - t0
        self.say(f"[{self.title}] {name:<9} {self.row.stage_seconds[name]:7.2f} s")


def process_reel(job: ReelJob, spec: ModelSpec, settings: Settings, profile: Profile, *,
                 force: bool = False, say: Callable[[str], None] = print) -> ReportRow:
    """Run every stage for one file; return its report row (ok, skipped or failed). Never raises
    PipelineError: a failure is recorded in the row with the stage and a one-line reason. Everything after
    probing runs under the title's lock, so two runs on one OUT never work on the same title at once."""
    row = ReportRow(file=str(job.path), title=job.title, model=spec.name, cleanup=settings.cleanup, profile=profile.name,
                    target_lufs=profile.target_lufs, ceiling_dbtp=profile.true_peak_dbtp)
    timed = StageTimer(row, job.title, say)
    try:
        with timed("probe"):
            info = media.probe(job.path)
            stream = info.audio_stream(job.audio_stream)
            layout = audio.check_layout(stream, job.path)
            row.duration_s, row.sample_rate = info.duration_s, stream.sample_rate
            row.channels, row.layout = stream.channels, layout
            input_sha = sha256_file(job.path)
            key = cache_key(input_sha, profile.digest, spec.label, settings_digest(settings), __version__)
        timed.current = "lock"
        # a failure removes what this attempt wrote, while we still hold the title: never another run's files
        with title_lock(job.out_dir), removed_on_failure(job.out_dir):
            return _stages(job, spec, settings, profile, force, say, row, timed, info, stream, layout, key,
                           input_sha)
    except TitleLockedError as exc:
        row.status, row.stage, row.error = "skipped", "lock", str(exc)
        say(f"[{job.title}] skipped: {exc}")
        return row
    except PipelineError as exc:
        row.status, row.stage, row.error = "failed", timed.current, str(exc)
    except OSError as exc:   # e.g. the file vanished or the disk filled between stages
        row.status, row.stage, row.error = "failed", timed.current, f"{exc.strerror or exc}"
    except Exception as exc:  # a bug: keep the batch going, keep the traceback in the log
        log.exception("unexpected error in stage %s for %s", timed.current, job.path)
        row.status, row.stage, row.error = "failed", timed.current, f"internal error: {type(exc).__name__}: {exc}"
    row.error = " ".join(row.error.split())
    row.total_s = time.perf_counter() - timed.started
    say(f"[{job.title}] FAILED at {row.stage}: {job.path}: {row.error}")
    return row


def _stages(job, spec, settings, profile, force, say, row, timed, info, stream, layout, key, input_sha) -> ReportRow:
    """Skip check, then extract → separate → cleanup → vad → loudness → write → remux → qc → manifest."""
    done = None if force else is_complete(job.out_dir, key)
    if done is not None:
        say(f"[{job.title}] skipped: outputs are complete and current ({job.out_dir})")
        skipped = ReportRow.from_flat(done.row)
        skipped.status, skipped.file = "skipped", str(job.path)
        return skipped
    remove_partials(job.out_dir)
    discard(job.out_dir / MANIFEST)   # from here on the folder is unfinished until the new manifest is written
    timeout = ffmpeg_timeout(info.duration_s)
    with timed("extract"):
        mix = audio.extract(job.path, stream, timeout=timeout)
        rate = stream.sample_rate
        if profile.sample_rate and profile.sample_rate != rate:   # the spec's rate for every output
            mix, rate = resample(mix, rate, profile.sample_rate), profile.sample_rate
    with timed("separate"):
        separation = get_separator(spec, settings).separate(mix, rate, layout)
    with timed("cleanup"):
        cleaned = cleanup.clean_dialogue(mix, separation, rate, method=settings.cleanup,
                                         strength=profile.noise_reduction)
    with timed("vad"):
        speech = vad.speech_regions(cleaned.dx, rate)
        n_blocks = max(0, mix.shape[0] // int(round(0.1 * rate)) - 3)   # BS.1770 gating blocks
        speech_blocks = vad.block_mask(speech, n_blocks)
    with timed("loudness"):
        stems = {"DX": cleaned.dx, "ME": cleaned.me}
        stems.update({k: v for k, v in (("MX", separation.mx), ("FX", separation.fx)) if v is not None})
        delivered = deliver.deliver(mix, stems, rate, layout, profile, speech_blocks)
        row.input_lufs, row.gain_db = delivered.input.integrated_lufs, delivered.gain_db
        row.limiter_db = delivered.limiter_db
    del mix, separation, cleaned, stems
    with timed("write"):
        wavs = write_stems(job, delivered.stems, rate, layout, profile, spec.name, timeout)
        if settings.stereo_downmix and layout == "5.1":
            # Stereo deliverables on request: the delivered 5.1 stems downmixed (ITU-R BS.775), then taken to
            # the same spec again (one gain and limiter for all), in OUT/<title>/stereo/.
            stereo = {name: downmix.itu_downmix(data) for name, data in delivered.stems.items()}
            again = deliver.deliver(stereo.pop("MIX"), stereo, rate, "stereo", profile, speech_blocks)
            wavs.update(write_stems(job, again.stems, rate, "stereo", profile, spec.name, timeout, "stereo"))
    del delivered
    outputs = list(wavs.values())
    if info.has_video:
        with timed("remux"):
            _, suffix = remux.deliverable_container(info, stream.audio_index)
            result = remux.remux(info, stream.audio_index,
                                 deliverable_tracks(wavs, profile, stream.language or settings.language),
                                 job.out_dir / f"{job.title}{suffix}", bit_depth=profile.bit_depth,
                                 timeout=timeout)
            row.deliverable = str(result.path)
            outputs.append(result.path)
    with timed("qc"):
        checked = qc.check_stems({k: v for k, v in wavs.items() if "/" not in k}, layout, profile)
        if "stereo/MIX" in wavs:
            stereo = qc.check_stems({k.split("/")[1]: v for k, v in wavs.items() if "/" in k}, "stereo", profile)
            row.stereo_lufs, row.stereo_tp_dbtp = stereo.output_lufs, stereo.true_peak_dbtp
            reasons = checked.reasons + tuple(f"stereo downmix: {r}" for r in stereo.reasons)
            checked = dataclasses.replace(checked, reasons=reasons, qc="fail" if reasons else "pass")
        fill_qc(row, checked)
        fps = info.video[0].frame_rate if info.has_video else None
        spots = spotting.spotting_list(checked.speech, _read(wavs["DX"]), rate, _supported_fps(fps),
                                       layout=layout)
        for path, writer in ((job.out_dir / f"{job.title}_dialogue.csv", spotting.write_spotting_csv),
                             (job.out_dir / f"{job.title}_dialogue.srt", spotting.write_srt)):
            writer(path, spots)
            outputs.append(path)
        row.dialogue_lines = len(spots)
    if checked.qc == "fail":
        say(f"[{job.title}] QC fail: " + "; ".join(checked.reasons))
    row.status, row.stage = "ok", ""
    row.total_s = time.perf_counter() - timed.started
    row.rtf = row.total_s / row.duration_s if row.duration_s and row.duration_s > 0 else math.nan
    Manifest.build(key, job.path, input_sha, job.out_dir, outputs, row.as_flat()).write(job.out_dir)
    return row
