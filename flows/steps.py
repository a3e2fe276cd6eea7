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
from concurrent.futures import Future, ThreadPoolExecutor
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
from pipeline import stream as stream_io
from pipeline.malloc import tune_malloc
from pipeline.separate import Separator, load_separator

log = logging.getLogger("reelsplit")


@dataclass(frozen=True)
class ReelJob:
    path: Path
    title: str
    out_dir: Path        # OUT/<title>/
    audio_stream: int = 0


def settings_digest(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode()).hexdigest()[:12]


# silero-vad runs this much audio per batch of ~33 s lanes: about 58 MB whatever the reel's length. Measured on
# 2 cores (5 min of dialogue): 1.0 s per pass at 300 s against 3.2 s at 60 s, the same regions
# (benchmarks/RESULTS.md, overhead).
VAD_CHUNK_S = 300.0

_separators: dict[tuple, Separator] = {}
_separators_lock = threading.Lock()


def get_separator(spec: ModelSpec, settings: Settings) -> Separator:
    """The separator for `spec`, loaded once per process and shared by every file (and worker thread)."""
    key = (spec, settings_digest(settings))
    tune_malloc()     # a Dask worker process does not come through the CLI
    with _separators_lock:
        if key not in _separators:
            _separators[key] = load_separator(spec, settings.separation, settings.stem_map)
        return _separators[key]


def deliverable_tracks(wavs: dict[str, Path], profile: Profile, language: str, info: media.MediaInfo,
                       stream: media.AudioStream) -> list[remux.Track]:
    """Audio tracks of the deliverable: original (copied), delivered mix, DX, M&E, then MX and FX if made, then
    every other audio track of the source, copied untouched (a deliverable never drops a track of the master)."""
    tracks = [remux.Track(None, "Original mix", language, stream.audio_index),
              remux.Track(wavs["MIX"], f"Delivered mix ({profile.name})", language),
              remux.Track(wavs["DX"], "DX dialogue", language),
              remux.Track(wavs["ME"], "M&E", "zxx")]
    tracks += [remux.Track(wavs[k], title, "zxx") for k, title in (("MX", "MX music"), ("FX", "FX effects"))
               if k in wavs]
    return tracks + [remux.Track(None, f"Original track a:{s.audio_index} (not processed)",
                                 s.language or language, s.audio_index)
                     for s in info.audio if s.audio_index != stream.audio_index]


def _wav_writers(job: ReelJob, rate: int, layout: str, profile: Profile, model: str, timeout: float,
                 subfolder: str = ""):
    """open_writer(name, channels) for deliver_stream: a broadcast WAV named by the profile, written to a
    temporary name and renamed when complete; `subfolder` for the stereo downmix."""
    folder = job.out_dir / subfolder if subfolder else job.out_dir
    what = f" {subfolder}" if subfolder else ""

    def open_writer(name: str, channels: int) -> stream_io.WavWriter:
        return stream_io.WavWriter(folder / profile.naming.format(title=job.title, stem=name), rate, layout, channels,
                                   bit_depth=profile.bit_depth, timeout=timeout,
                                   description=f"{job.title} {name}{what} ({model}, {profile.name})")
    return open_writer


def _clean_stream(dx: stream_io.RawFile, rate: int, layout: str, method: str, profile: Profile, spill,
                  work: Path):
    """The dialogue clean-up block by block (`method` as cleanup.resolve_method gives it): noisereduce on its
    own block grid, DFN3 per channel, or none."""
    strength = profile.noise_reduction
    if method == "none" or strength <= 0:
        return dx
    if method == "dfn3":
        from pipeline.config import SeparationSettings
        from pipeline.separate import Dfn3Separator

        per_channel = Dfn3Separator(dataclasses.replace(SeparationSettings(), dfn3_pairs="channels"))
        cleaned = stream_io.separate_dfn3_stream(per_channel, dx, rate, layout, work, name="dx-clean")
        return cleaned.dx
    out = spill("dx-clean", dx.channels)
    import torch    # the file's share of the cores (reel.set_torch_threads): as many blocks filtered at once
    for block in cleanup.clean_stream(dx, rate, method=method, strength=strength, threads=torch.get_num_threads()):
        out.append(block)
    out.flush()
    return out


def _check(wavs: dict[str, Path], layout: str, profile: Profile) -> qc.QcResult:
    """QC of the written stems, block by block: VAD of DX and M&E read from the files, then the measurements."""
    regions = []
    for name in ("DX", "ME"):
        reader = stream_io.WavReader(wavs[name])
        try:
            regions.append(vad.speech_regions_stream(reader, reader.rate, chunk_s=VAD_CHUNK_S))
        finally:
            reader.close()
    return qc.check_stems_stream(wavs, layout, profile, *regions)


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
        self.record(name, time.perf_counter() - t0)

    def record(self, name: str, seconds: float) -> None:
        """Add `seconds` to stage `name` and print its line (also for a stage timed elsewhere)."""
        self.row.stage_seconds[name] = self.row.stage_seconds.get(name, 0.0) + seconds
        self.say(f"[{self.title}] {name:<9} {self.row.stage_seconds[name]:7.2f} s")


def process_reel(job: ReelJob, spec: ModelSpec, settings: Settings, profile: Profile, *,
                 force: bool = False, say: Callable[[str], None] = print) -> ReportRow:
    """Run every stage for one file; return its report row (ok, skipped or failed). Never raises
    PipelineError: a failure is recorded in the row with the stage and a one-line reason. Everything after
    probing runs under the title's lock, so two runs on one OUT never work on the same title at once."""
    row = ReportRow(file=str(job.path), title=job.title, model=spec.name,
                    cleanup=cleanup.resolve_method(settings.cleanup, spec.kind), profile=profile.name,
                    target_lufs=profile.target_lufs, ceiling_dbtp=profile.true_peak_dbtp)
    timed = StageTimer(row, job.title, say)
    try:
        with timed("probe"):
            info = media.probe(job.path)
            stream = audio.select_stream(info, job.audio_stream)
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
    spills: list[stream_io.RawFile] = []
    try:
        return _stream_stages(job, spec, settings, profile, say, row, timed, info, stream, layout, key, input_sha,
                              timeout, spills)
    finally:
        for f in spills:              # the spill files go whatever happens (a kill leaves partials: next run)
            f.remove()


def _start_remux(job, info, stream, wavs, profile, settings, timeout) -> Future:
    """The remux (an ffmpeg process: picture copied, the stems as labelled tracks) started in a thread, so it
    runs on another core while the QC reads the stems; `_finish_remux` waits for it."""
    def remux_now() -> tuple[remux.RemuxResult, float]:
        t0 = time.perf_counter()
        _, suffix = remux.deliverable_container(info, stream.audio_index)
        tracks = deliverable_tracks(wavs, profile, stream.language or settings.language, info, stream)
        result = remux.remux(info, stream.audio_index, tracks, job.out_dir / f"{job.title}{suffix}",
                             bit_depth=profile.bit_depth, timeout=timeout)
        return result, time.perf_counter() - t0

    pool = ThreadPoolExecutor(1, thread_name_prefix=f"remux-{job.title}")
    try:
        return pool.submit(remux_now)
    finally:
        pool.shutdown(wait=False)


def _finish_remux(remuxing: Future, row: ReportRow, timed: "StageTimer"):
    """Wait for the remux; its time is recorded as its own stage, and a failure is reported as the remux's."""
    try:
        result, seconds = remuxing.result()
    except BaseException:
        timed.current = "remux"
        raise
    timed.record("remux", seconds)
    return result


def _stream_stages(job, spec, settings, profile, say, row, timed, info, stream, layout, key, input_sha, timeout,
                   spills) -> ReportRow:
    """Every stage block by block through spill files in the title's folder, so memory does not grow with the
    reel's length (issue #5): extract → separate → cleanup → vad → loudness + write → remux → qc."""
    work = job.out_dir
    work.mkdir(parents=True, exist_ok=True)

    def spill(name: str, channels: int) -> stream_io.RawFile:
        """A new spill file, removed when the title is done."""
        f = stream_io.RawFile(stream_io.spill_path(work, name), channels)
        spills.append(f)
        return f

    with timed("extract"):
        rate = profile.sample_rate or stream.sample_rate     # the spec's rate for every output
        mix = stream_io.extract_to_raw(job.path, stream, spill("mix", stream.channels), rate_out=rate,
                                       timeout=timeout)
    with timed("separate"):
        separation = stream_io.separate_stream(get_separator(spec, settings), mix, rate, layout, work)
        spills.extend(f for f in (separation.dx, separation.mx, separation.fx) if f is not None)
    with timed("cleanup"):
        dx = _clean_stream(separation.dx, rate, layout, row.cleanup, profile, spill, work)   # resolved: auto → method
        if dx is not separation.dx:       # the raw DX is not needed any more: give its disk space back
            if dx not in spills:
                spills.append(dx)
            separation.dx.remove()
            spills.remove(separation.dx)
    with timed("vad"):
        speech = vad.speech_regions_stream(dx, rate, chunk_s=VAD_CHUNK_S)
        n_blocks = max(0, mix.frames // int(round(0.1 * rate)) - 3)   # BS.1770 gating blocks
        speech_blocks = vad.block_mask(speech, n_blocks)
    sources = {"MIX": mix, "DX": dx, "ME": stream_io.Difference(mix, dx)}
    sources.update({k: f for k, f in (("MX", separation.mx), ("FX", separation.fx)) if f is not None})
    with timed("loudness"):
        plan = deliver.plan_delivery(sources, deliver.DeliverySettings(rate, layout, profile, speech_blocks))
    with timed("write"):
        delivered = deliver.deliver_stream(sources, deliver.DeliverySettings(rate, layout, profile, speech_blocks),
                                           _wav_writers(job, rate, layout, profile, spec.name, timeout), plan=plan)
        wavs = dict(delivered.paths)
        row.input_lufs, row.gain_db = delivered.input.integrated_lufs, delivered.gain_db
        row.limiter_db = delivered.limiter_db
        for f in list(spills):          # the stems are written: free the disk before remux and QC
            f.remove()
            spills.remove(f)
        if settings.stereo_downmix and layout == "5.1":
            # Stereo deliverables on request: the delivered 5.1 stems downmixed (ITU-R BS.775), then taken to
            # the same spec again (one gain and limiter for all), in OUT/<title>/stereo/.
            readers = {name: stream_io.WavReader(path) for name, path in wavs.items()}
            try:
                stereo = {name: stream_io.Mapped(r, downmix.itu_downmix, 2) for name, r in readers.items()}
                again = deliver.deliver_stream(stereo, deliver.DeliverySettings(rate, "stereo", profile, speech_blocks),
                                               _wav_writers(job, rate, "stereo", profile, spec.name, timeout,
                                                            "stereo"))
            finally:
                for r in readers.values():
                    r.close()
            wavs.update({f"stereo/{name}": path for name, path in again.paths.items()})
    outputs = list(wavs.values())
    remuxing = _start_remux(job, info, stream, wavs, profile, settings, timeout) if info.has_video else None
    try:
        with timed("qc"):       # while ffmpeg remuxes on another core
            checked = _check(wavs, layout, profile)
            if "stereo/MIX" in wavs:
                stereo_qc = _check({k.split("/")[1]: v for k, v in wavs.items() if "/" in k}, "stereo", profile)
                row.stereo_lufs, row.stereo_tp_dbtp = stereo_qc.output_lufs, stereo_qc.true_peak_dbtp
                reasons = checked.reasons + tuple(f"stereo downmix: {r}" for r in stereo_qc.reasons)
                checked = dataclasses.replace(checked, reasons=reasons, qc="fail" if reasons else "pass")
            fill_qc(row, checked)
            fps = info.video[0].frame_rate if info.has_video else None
            spots = spotting.spotting_list_from_wav(checked.speech, wavs["DX"], rate, _supported_fps(fps),
                                                    layout=layout)
            for path, writer in ((job.out_dir / f"{job.title}_dialogue.csv", spotting.write_spotting_csv),
                                 (job.out_dir / f"{job.title}_dialogue.srt", spotting.write_srt)):
                writer(path, spots)
                outputs.append(path)
            row.dialogue_lines = len(spots)
    finally:
        if remuxing is not None:    # always waited for: a failure must not clean up under a running remux
            result = _finish_remux(remuxing, row, timed)
    if remuxing is not None:
        row.deliverable = str(result.path)
        outputs.append(result.path)
    if checked.qc == "fail":
        say(f"[{job.title}] QC fail: " + "; ".join(checked.reasons))
    row.status, row.stage = "ok", ""
    row.total_s = time.perf_counter() - timed.started
    row.rtf = row.total_s / row.duration_s if row.duration_s and row.duration_s > 0 else math.nan
    Manifest.build(key, job.path, input_sha, job.out_dir, outputs, row.as_flat()).write(job.out_dir)
    return row
