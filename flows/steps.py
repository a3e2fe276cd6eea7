"""One reel through every stage: probe → extract → separate → cleanup → vad → loudness → write → words → remux → qc.

Plain Python over `pipeline` steps, so the flow (flows/reel.py) stays thin and tests can call it directly.
`process_reel` probes the file into a per-reel context (`Reel`: the job, probe info, layout, cache key, stage
timer and a workspace that owns the spill files), runs the stages in order over it, each leaving its typed
result in the context, and builds the report row from those results in one place (`_fill_row`). A failure of
any stage becomes that file's report row (status failed, the stage, one line of reason); it never stops the
batch. Every stage streams block by block through spill files, so memory does not grow with the reel's length.
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
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline import (__version__, asr, asr_model, audio, battery, cleanup, cuesheets, deliver, deliverable, discrete, downmix,
                      leaks, media, package, qc, qcevents, remux, spotting, starttc, vad, wordfiles)
from pipeline.config import SeparationSettings, Settings
from pipeline.errors import PipelineError, TitleLockedError
from pipeline.layout import LAYOUTS, Layout
from pipeline.malloc import tune_malloc
from pipeline.master import FOLDDOWN, Master, audio_lead_s, select_master
from pipeline.manifest import MANIFEST, KeyParts, Manifest, cache_key, is_complete
from pipeline.media import MediaInfo
from pipeline.models import ModelSpec
from pipeline.naming import NameFields, reel_fields
from pipeline.outputs import discard, remove_partials, removed_on_failure, sha256_file, title_lock, write_text_atomic
from pipeline.profiles import Profile
from pipeline.readers import Difference, Mapped, RawFile, Reader, Sum, WavReader, Workspace
from pipeline.report import ReportRow
from pipeline.separate import Separator, load_separator
from pipeline.stems import Stems
from pipeline.timecode import StartTimecode
from pipeline.words import Transcript

from . import display

log = logging.getLogger("reelsplit")

# silero-vad runs this much audio per batch of ~33 s lanes: about 58 MB whatever the reel's length. Measured on
# 2 cores (5 min of dialogue): 1.0 s per pass at 300 s against 3.2 s at 60 s, the same regions
# (benchmarks/RESULTS.md, overhead).
VAD_CHUNK_S = 300.0
FOLDDOWN_DIR = "LtRt"   # the Lt/Rt fold-down's stems, beside the surround master's
GUIDE_BLOCK = 1 << 16   # frames per block of the dialogue guide
BLEND_DB = -6.0         # transcribe.source "blend": the DX with the M&E put back this far down (dev set)
LEAD_WARN_S = 0.001   # audio this far before the picture or more moves the stems' start back by as much


@dataclass(frozen=True)
class ReelJob:
    path: Path
    title: str
    out_dir: Path        # OUT/<title>/
    audio_stream: int = 0
    start_tc: str | None = None    # --start-tc: the outputs' start timecode instead of the source's
    tc_rate: str | None = None     # --tc-rate: the timecode rate of a source without one (audio only)


def settings_digest(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode()).hexdigest()[:12]


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


_device_gates: dict[str, threading.BoundedSemaphore] = {}


def device_slots(separator: Separator, settings: SeparationSettings) -> int | None:
    """How many reels may separate at once on `separator`'s device: separation.device_reels, or (0, auto) one on
    a CUDA device — its batches already fill the GPU, so a second reel's would only queue inside it while that
    reel could be running its CPU stages — and no limit on the CPU (None), where each file has its share of
    the cores."""
    if settings.device_reels:
        return settings.device_reels
    return 1 if str(getattr(separator, "device", "cpu")).startswith("cuda") else None


@contextlib.contextmanager
def device_turn(separator: Separator, settings: SeparationSettings, timer: "StageTimer"):
    """Hold one of the device's slots (device_slots) for the separation; the wait is recorded as the `queue`
    stage and is not counted in the stage running (the separation starts when the slot is had)."""
    slots = device_slots(separator, settings)
    if slots is None:
        yield
        return
    device = str(getattr(separator, "device", "cpu"))
    with _separators_lock:
        gate = _device_gates.setdefault(f"{device}/{slots}", threading.BoundedSemaphore(slots))
    stage, timer.current, waited = timer.current, "queue", time.perf_counter()
    with gate:
        timer.record("queue", time.perf_counter() - waited)
        timer.current, timer.stage_started = stage, time.perf_counter()
        yield


def ffmpeg_timeout(duration_s: float) -> float:
    """Generous time limit for one ffmpeg pass over a file: a minute plus twice its duration."""
    return 60.0 + 2.0 * max(duration_s, 0.0)


class StageTimer:
    """Times the stages of one file into its report row, prints a line per finished stage, and remembers
    which stage is running so a failure names it."""

    def __init__(self, row: ReportRow, title: str, say: Callable[[str], None]):
        self.row, self.title, self.say = row, title, say
        self.current = "probe"
        self.started = self.stage_started = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.current = name
        self.stage_started = time.perf_counter()     # the progress display's speed is since then; a stage
        yield                                         # that waits (device_turn) moves it to its real start
        self.record(name, time.perf_counter() - self.stage_started)

    def record(self, name: str, seconds: float) -> None:
        """Add `seconds` to stage `name` and print its line (also for a stage timed elsewhere)."""
        self.row.stage_seconds[name] = self.row.stage_seconds.get(name, 0.0) + seconds
        self.say(f"[{self.title}] {name:<9} {self.row.stage_seconds[name]:7.2f} s")


@dataclass(frozen=True)
class Probed:
    """What the probe stage found: the file, the audio processed (one stream or assembled tracks), its layout
    and the cache key."""

    info: MediaInfo
    master: Master
    input_sha: str
    key: str
    timeout: float             # seconds one ffmpeg pass over the file may take

    @property
    def layout(self) -> Layout:
        return self.master.layout


@dataclass(frozen=True)
class Speech:
    regions: tuple             # vad.Region of the cleaned DX, seconds
    blocks: object             # BS.1770 gating blocks that hold speech (vad.block_mask)


@dataclass(frozen=True)
class Words:
    """What the words stage left: the transcript (None when recognition failed: `error` says why), the seconds
    recognition took, the transcript file."""

    transcript: Transcript | None
    seconds: float
    error: str = ""
    path: Path | None = None


@dataclass
class Reel:
    """The per-reel context the stages run over: the job and run settings, the probe's findings, the timer,
    the workspace that owns the spill files, and each stage's typed result."""

    job: ReelJob
    spec: ModelSpec
    settings: Settings
    profile: Profile
    say: Callable[[str], None]
    timer: StageTimer
    probed: Probed
    workspace: Workspace
    start: StartTimecode | None = None    # where the outputs start on the source's clock (None: unknown)
    names: NameFields | None = None       # the reel's values of the profile's naming fields
    mix: RawFile | None = None
    stems: Stems | None = None
    dx: Reader | None = None
    speech: Speech | None = None
    plan: deliver.DeliveryPlan | None = None
    delivered: deliver.StreamDelivery | None = None
    wavs: dict[str, Path] = field(default_factory=dict)
    sub_qc: dict[str, qc.QcResult] = field(default_factory=dict)   # "stereo" downmix, "LtRt" fold-down
    checked: qc.QcResult | None = None
    spots: list = field(default_factory=list)
    remuxed: remux.RemuxResult | None = None
    outputs: list[Path] = field(default_factory=list)
    package: dict[str, Path] = field(default_factory=dict)   # the M&E package's roles, when asked for
    words: Words | None = None           # speech recognition: the transcript, or why there is none
    events: list = field(default_factory=list)   # QC events (pipeline.qcevents.QcEvent), in time order

    @property
    def rate(self) -> int:
        """The spec's rate for every output, else the source's."""
        return _output_rate(self.profile, self.probed.master)

    @property
    def timeout(self) -> float:
        return self.probed.timeout


def process_reel(job: ReelJob, spec: ModelSpec, settings: Settings, profile: Profile, *,
                 force: bool = False, say: Callable[[str], None] = print) -> ReportRow:
    """Run every stage for one file; return its report row (ok, skipped or failed). Never raises
    PipelineError: a failure is recorded in the row with the stage and a one-line reason. Everything after
    probing runs under the title's lock, so two runs on one OUT never work on the same title at once."""
    row = ReportRow(file=str(job.path), title=job.title, model=spec.name,
                    cleanup=cleanup.resolve_method(settings.cleanup, spec.kind), profile=profile.name,
                    target_lufs=profile.target_lufs, ceiling_dbtp=profile.true_peak_dbtp)
    timed = StageTimer(row, job.title, say)
    display.track(job.title, timed)     # the terminal's progress display (flows/display.py), when there is one
    try:
        with timed("probe"):
            probed = _probe(job, spec, settings, profile, row)
            start = _start_timecode(job, probed, row)
            names = _name_fields(job, settings, profile, probed, start)
        timed.current = "lock"
        # a failure removes what this attempt wrote, while we still hold the title: never another run's files
        with title_lock(job.out_dir), removed_on_failure(job.out_dir):
            return _resume_or_run(Reel(job, spec, settings, profile, say, timed, probed, Workspace(job.out_dir),
                                       start, names), force)
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


def _probe(job: ReelJob, spec: ModelSpec, settings: Settings, profile: Profile, row: ReportRow) -> Probed:
    """Probe the file, pick and check its audio, hash it for the cache key; the row gets what was found."""
    info = media.probe(job.path)
    master = select_master(info, job.audio_stream, settings.tracks)
    row.duration_s, row.sample_rate = info.duration_s, master.sample_rate
    row.channels, row.layout, row.tracks = master.channels, master.layout.name, master.describe()
    input_sha = sha256_file(job.path)
    key = cache_key(KeyParts(input_sha, profile.digest, spec.label, settings_digest(settings), __version__,
                             start_tc=job.start_tc, tc_rate=job.tc_rate, output_tracks=settings.output_tracks))
    return Probed(info, master, input_sha, key, ffmpeg_timeout(info.duration_s))


def _start_timecode(job: ReelJob, probed: Probed, row: ReportRow) -> StartTimecode | None:
    """Where the reel's outputs start (the clock at the audio's first sample): --start-tc, else the source's
    start timecode (MediaError when it cannot be read), else 00:00:00:00 at the picture's rate; recorded in the
    row. A source's timecode labels its picture's first frame, so audio that starts before the picture starts
    that much earlier on the clock: its stems are stamped there, and land under the picture in a DAW."""
    info = probed.info
    start = starttc.reel_start(info.timecode, info.video[0].frame_rate if info.video else None, job.path,
                               start_tc=job.start_tc, tc_rate=job.tc_rate)
    lead = _lead(probed)
    if lead and start is not None and not job.start_tc and start.seconds >= lead:
        log.info("%s: the audio starts %.3f s before the picture; its stems are stamped %.3f s before the "
                 "picture's start timecode %s", job.path, lead, lead, start.text)
        start = StartTimecode(start.seconds - lead, start.rate)
    elif lead and job.start_tc:     # the stems start at the label given; the deliverable's picture after them
        log.info("%s: the audio starts %.3f s before the picture; the deliverable's picture is stamped that much "
                 "after --start-tc", job.path, lead)
    elif lead:
        log.warning("%s: the audio starts %.3f s before the picture, which starts at %s: the clock has no earlier "
                    "time, so the stems keep the audio from its first sample, are stamped there and sit %.3f s late "
                    "against the picture", job.path, lead, start.text if start is not None else "0", lead)
    row.start_tc = start.text if start is not None else ""
    return start


def _lead(probed: Probed) -> Fraction:
    """How long the audio starts before the picture (master.audio_lead_s), in whole samples; 0 under
    LEAD_WARN_S."""
    lead = audio_lead_s(probed.info, probed.master)
    rate = probed.master.sample_rate
    return Fraction(round(lead * rate), rate) if lead > LEAD_WARN_S else Fraction(0)


def _output_rate(profile: Profile, master: Master) -> int:
    """The spec's rate for every output, else the source's."""
    return profile.sample_rate or master.sample_rate


def _makes_stereo(settings: Settings, layout: Layout) -> bool:
    """Whether a reel also gets BS.775 stereo stems: asked for, or the M&E package's 2.0 M&E; from 5.0, 5.1 and
    7.1 (downmix.FOLDS)."""
    return (settings.stereo_downmix or settings.me_package) and layout.name in downmix.FOLDS


def _name_fields(job: ReelJob, settings: Settings, profile: Profile, probed: Probed,
                 start: StartTimecode | None) -> NameFields:
    """The reel's values of the naming fields ({fps}: the start timecode's rate, else the picture's), checked
    before any work: MediaError when the naming has {fps} and the reel has no frame rate, ConfigError when two
    of its files would get one name."""
    info, layout = probed.info, probed.layout
    fps = start.rate.fps if start is not None and start.rate is not None else (
        info.video[0].frame_rate if info.video else None)
    fields = reel_fields(job.title, layout, _output_rate(profile, probed.master), profile.bit_depth, fps, job.path)
    cases = [(fields, layout)]
    if _makes_stereo(settings, layout):
        cases.append((fields.with_layout(LAYOUTS["stereo"]), LAYOUTS["stereo"]))
    profile.check_names(cases, f"profile {profile.name}")
    return fields


def _resume_or_run(reel: Reel, force: bool) -> ReportRow:
    """The manifest's row when the title's outputs are complete and current, else every stage."""
    job = reel.job
    done = None if force else is_complete(job.out_dir, reel.probed.key)
    if done is not None:
        reel.say(f"[{job.title}] skipped: outputs are complete and current ({job.out_dir})")
        skipped = ReportRow.from_flat(done.row)
        skipped.status, skipped.file = "skipped", str(job.path)
        return skipped
    reel.say(f"[{job.title}] audio: {reel.probed.master.describe()}")
    remove_partials(job.out_dir)
    discard(job.out_dir / MANIFEST)   # from here on the folder is unfinished until the new manifest is written
    with reel.workspace:              # the spill files go whatever happens (a kill leaves partials: next run)
        _run_stages(reel)
    row = _fill_row(reel)
    Manifest.build(reel.probed.key, job.path, reel.probed.input_sha, job.out_dir, reel.outputs,
                   row.as_flat(), reel.package).write(job.out_dir)
    return row


# ---------------------------------------------------------------------------------------------------- stages

def _extract(reel: Reel) -> None:
    """The master decoded (and resampled to the spec's rate) into a spill file, in its layout's order."""
    master = reel.probed.master
    reel.mix = audio.extract_to_raw(reel.job.path, master, reel.workspace.spill("mix", master.channels),
                                    rate_out=reel.rate, timeout=reel.timeout)


def _separate(reel: Reel) -> None:
    """The stems, with the device's turn held (device_turn: one reel at a time on a GPU by default)."""
    separator = get_separator(reel.spec, reel.settings)
    with device_turn(separator, reel.settings.separation, reel.timer):
        reel.stems = separator.separate(reel.mix, reel.rate, reel.probed.layout, reel.workspace)


def _cleanup(reel: Reel) -> None:
    """The dialogue clean-up the row names (auto resolved); the raw DX's disk space is given back."""
    import torch    # the file's share of the cores (reel.set_torch_threads): as many blocks filtered at once

    cleaner = cleanup.make_cleaner(reel.timer.row.cleanup, reel.profile.noise_reduction,
                                   reel.settings.separation, threads=torch.get_num_threads())
    reel.dx = cleaner.clean(reel.stems.dx, reel.rate, reel.probed.layout, reel.workspace)
    if reel.dx is not reel.stems.dx:
        reel.workspace.remove(reel.stems.dx)


def _vad(reel: Reel) -> None:
    regions = vad.speech_regions(reel.dx, reel.rate, chunk_s=VAD_CHUNK_S)
    n_blocks = max(0, reel.mix.frames // int(round(0.1 * reel.rate)) - 3)   # BS.1770 gating blocks
    reel.speech = Speech(regions, vad.block_mask(regions, n_blocks))


def _sources(reel: Reel) -> dict[str, Reader]:
    """The stems to deliver, as readers: MIX, DX, M&E = MIX − DX, and MX/FX when the model made them; for an
    M&E package FX is M&E − MX, so that DX + MX + FX is the printmaster."""
    sources = {"MIX": reel.mix, "DX": reel.dx, "ME": Difference(reel.mix, reel.dx)}
    sources.update({k: f for k, f in (("MX", reel.stems.mx), ("FX", reel.stems.fx)) if f is not None})
    if reel.settings.me_package and "MX" in sources:
        sources["FX"] = Difference(sources["ME"], sources["MX"])
    return sources


def _delivery(reel: Reel, layout: str) -> deliver.DeliverySettings:
    """The delivery of this reel's stems in `layout`: its rate, the profile, the gating blocks with speech."""
    return deliver.DeliverySettings(reel.rate, layout, reel.profile, reel.speech.blocks)


def _loudness(reel: Reel) -> None:
    reel.plan = deliver.plan_delivery(_sources(reel), _delivery(reel, reel.probed.layout.name))


def _stamp(reel: Reel, what: str) -> audio.Stamp:
    """A written file's bext Description ("REEL1 DX (dfn3, netflix)") and start on the source's clock."""
    return audio.Stamp(f"{reel.job.title} {what} ({reel.spec.name}, {reel.profile.name})", reel.start)


def _wav_writers(reel: Reel, layout: str, subfolder: str = ""):
    """open_writer(name, channels) for deliver_stream: a broadcast WAV named by the profile (its naming fields
    from the reel, {layout} from `layout`), written to a temporary name and renamed when complete; `subfolder`
    for the stereo downmix."""
    job, profile = reel.job, reel.profile
    folder = job.out_dir / subfolder if subfolder else job.out_dir
    what = f" {subfolder}" if subfolder else ""
    fields = reel.names.with_layout(LAYOUTS[layout])

    def open_writer(name: str, channels: int) -> audio.WavWriter:
        return audio.WavWriter(folder / profile.file_name(fields, name), reel.rate, layout, channels,
                               bit_depth=profile.bit_depth, timeout=reel.timeout,
                               description=_stamp(reel, f"{name}{what}"))
    return open_writer


def _write(reel: Reel) -> None:
    """The stems to spec (one gain and limiter for all) as broadcast WAVs; the spill files are freed."""
    layout = reel.probed.layout.name
    reel.delivered = deliver.deliver_stream(_sources(reel), _delivery(reel, layout), _wav_writers(reel, layout),
                                            plan=reel.plan)
    reel.wavs = dict(reel.delivered.paths)
    reel.workspace.close()          # the stems are written: free the disk before remux and QC
    if _makes_stereo(reel.settings, reel.probed.layout):
        _write_stereo(reel)
    reel.outputs += list(reel.wavs.values())
    if reel.profile.split_channels:
        _write_channels(reel)
    if reel.settings.me_package:
        _write_guide(reel)


def _write_guide(reel: Reel) -> None:
    """The package's dialogue guide: DX folded down to mono (package.guide_gains), scaled down only if its peak
    would pass GUIDE_PEAK_DBFS, at the stems' timecode; the package's roles for the manifest."""
    gains = package.guide_gains(reel.probed.layout)
    reader = WavReader(reel.wavs["DX"])
    try:
        folded = Mapped(reader, lambda block: block @ gains[:, None], 1)
        peak = max((float(np.max(np.abs(b))) for b in folded.blocks(GUIDE_BLOCK) if b.size), default=0.0)
        scale = min(1.0, 10 ** (package.GUIDE_PEAK_DBFS / 20) / peak) if peak > 0 else 1.0
        path = reel.job.out_dir / f"{reel.job.title}_DX_guide.wav"
        stamp = audio.Stamp(f"{reel.job.title} dialogue guide (mono DX fold-down)", reel.start)
        with audio.WavWriter(path, reel.rate, "mono", 1, bit_depth=reel.profile.bit_depth,
                             timeout=reel.timeout, description=stamp) as writer:
            for block in folded.blocks(GUIDE_BLOCK):
                writer.write(block * np.float32(scale))
    finally:
        reader.close()
    reel.outputs.append(path)
    reel.package = package.roles(reel.wavs, path, reel.probed.layout)


def _write_stereo(reel: Reel) -> None:
    """Stereo deliverables on request: the delivered 5.0 / 5.1 / 7.1 stems downmixed (ITU-R BS.775,
    pipeline/downmix.py), then taken to the same spec again (one gain and limiter for all), in OUT/<title>/stereo/."""
    readers = {name: WavReader(path) for name, path in reel.wavs.items()}
    try:
        gains = downmix.stereo_gains(reel.probed.layout)
        stereo = {name: Mapped(r, lambda block: block @ gains, 2) for name, r in readers.items()}
        again = deliver.deliver_stream(stereo, _delivery(reel, "stereo"), _wav_writers(reel, "stereo", "stereo"))
    finally:
        for r in readers.values():
            r.close()
    reel.wavs.update({f"stereo/{name}": path for name, path in again.paths.items()})


def _write_channels(reel: Reel) -> None:
    """Each multichannel stem written (the stereo downmix's too) also as discrete mono WAVs, one per channel,
    named by the profile's channel naming ({channel}: L R C LFE Ls Rs …) beside it, with the same start; they
    are outputs (the manifest lists them), not stems (`reel.wavs`: QC, remux and spotting read the stems)."""
    for key, path in reel.wavs.items():
        subfolder, _, stem = key.rpartition("/")
        layout = LAYOUTS[subfolder] if subfolder else reel.probed.layout   # "stereo/DX": the downmix's
        if layout.channels == 1:
            continue
        fields = reel.names.with_layout(layout)
        what = f"{stem} {subfolder} " if subfolder else f"{stem} "
        written = discrete.split_channels(
            path, layout, [path.parent / reel.profile.file_name(fields, stem, label) for label in layout.labels],
            [_stamp(reel, what + label) for label in layout.labels],
            bit_depth=reel.profile.bit_depth, timeout=reel.timeout)
        reel.outputs += list(written)


def _check(wavs: dict[str, Path], layout: str, profile: Profile) -> qc.QcResult:
    """QC of the written stems, block by block: VAD of DX and M&E read from the files (the M&E's also at the
    speech_in_me events' threshold, from the same pass), then the measurements."""
    hystereses = {"DX": (vad.Hysteresis(),), "ME": (vad.Hysteresis(), leaks.candidate_hysteresis(profile))}
    regions = {}
    for name in ("DX", "ME"):
        reader = WavReader(wavs[name])
        try:
            regions[name] = vad.speech_regions_at(reader, reader.rate, hystereses[name], chunk_s=VAD_CHUNK_S)
        finally:
            reader.close()
    return qc.check_stems_stream(wavs, layout, profile, regions["DX"][0], regions["ME"][0],
                                 me_candidates=regions["ME"][1])


# Stereo stems in subfolders of the title: what they are, for QC reasons.
SUBFOLDERS = {"stereo": "stereo downmix", FOLDDOWN_DIR: "Lt/Rt fold-down"}


def _qc(reel: Reel) -> None:
    """QC of the written stems (and of the stereo downmix and the Lt/Rt fold-down's stems when made). The
    battery (numpy over the written stems, needing nothing else) runs in a thread beside the VAD and the
    measurements (benchmarks/RESULTS.md, "Then and now")."""
    with ThreadPoolExecutor(1, thread_name_prefix=f"battery-{reel.job.title}") as pool:
        battery_events = pool.submit(_battery, reel)
        reel.checked = _check(reel.wavs, reel.probed.layout.name, reel.profile)
        reasons = list(reel.checked.reasons)
        for folder, what in SUBFOLDERS.items():
            wavs = {k.split("/")[1]: v for k, v in reel.wavs.items() if k.startswith(f"{folder}/")}
            if wavs:
                reel.sub_qc[folder] = _check(wavs, "stereo", reel.profile)
                reasons += [f"{what}: {r}" for r in reel.sub_qc[folder].reasons]
        reel.events = sorted(_events(reel) + battery_events.result(), key=lambda e: e.start_s)
    reasons += qcevents.judge(reel.events, reel.profile.qc_events)
    if reasons != list(reel.checked.reasons):
        reel.checked = dataclasses.replace(reel.checked, reasons=tuple(reasons), qc="fail" if reasons else "pass")
    path = reel.job.out_dir / f"{reel.job.title}_qc_events.csv"
    reel.outputs.append(qcevents.write_events_csv(path, reel.events, reel.start))


def _events(reel: Reel) -> list[qcevents.QcEvent]:
    """The reel's separation events (pipeline.leaks over the QC's VAD regions and loudness blocks, and the pitch
    finder over the written DX and M&E)."""
    checked, settings = reel.checked, reel.profile.qc_events
    events = leaks.speech_in_me(checked.speech, checked.me_candidates, checked.momentary["DX"],
                                checked.momentary["ME"], settings.of("speech_in_me"), confirm=_me_words(reel),
                                pitch=_pitch_leaks(reel))
    return events + leaks.bed_in_dx(checked.speech, checked.momentary["DX"], settings.of("bed_in_dx"))


def _pitch_leaks(reel: Reel) -> list[leaks.PitchLeak]:
    """The stretches of dialogue whose voice the written M&E carries (pipeline.leaks.pitch_leaks)."""
    dx, me = WavReader(reel.wavs["DX"]), WavReader(reel.wavs["ME"])
    try:
        return leaks.pitch_leaks(dx, me, dx.rate, reel.checked.speech, reel.profile.qc_events.of("speech_in_me"),
                                 labels=reel.probed.layout.labels)
    finally:
        dx.close()
        me.close()


def _battery(reel: Reel) -> list[qcevents.QcEvent]:
    """The QC battery's events over the written MIX, DX and M&E (pipeline.battery)."""
    video = reel.probed.info.video[0] if reel.probed.info.video else None
    fps = float(video.frame_rate) if video is not None and video.frame_rate else None
    stems = {name: path for name, path in reel.wavs.items() if "/" not in name and name in ("MIX", "DX", "ME")}
    return battery.run_battery(stems, reel.probed.layout.name, reel.profile.qc_events,
                               picture_s=video.duration_s if video is not None else None, fps=fps)


def _me_words(reel: Reel) -> Callable[[list], list] | None:
    """The recogniser over regions of the written M&E (the ASR stage's model and language), None when the reel
    is not transcribed or recognition failed; a failure here costs the events their words, never the reel."""
    if reel.words is None or reel.words.transcript is None:
        return None
    t, layout = reel.settings.transcribe, reel.probed.layout.name

    def recognise(regions: list) -> list:
        reader = WavReader(reel.wavs["ME"])
        try:
            recogniser = asr_model.load_recogniser(asr_model.resolve_asr_model(t.model))
            options = asr.AsrOptions(language=reel.words.transcript.language or None, beam_size=t.beam_size,
                                     fallback=False)    # a yes/no on words: one decoding per window
            return list(asr.transcribe(reader, reel.rate, regions, recogniser, options=options, layout=layout,
                                       source="me").lines)
        except Exception as exc:    # noqa: BLE001 - the events keep their levels, the reel goes on
            log.warning("speech recognition of the M&E failed for %s: %s", reel.job.path, exc)
            return []
        finally:
            reader.close()
    return recognise


def _spotting(reel: Reel) -> None:
    """The dialogue spotting list (CSV and SRT) from the QC's speech regions of the written DX, timecodes on the
    source's clock (the reel's start + each line's offset), times in media seconds; with a transcript the CSV is
    the dialogue list, each line with the words recognised in it."""
    job = reel.job
    reel.spots = spotting.spotting_list_from_wav(reel.checked.speech, reel.wavs["DX"], reel.rate, reel.start,
                                                 layout=reel.probed.layout.name)
    transcript = reel.words.transcript if reel.words is not None else None
    listing = (spotting.write_spotting_csv if transcript is None else
               lambda path, spots: cuesheets.write_dialogue_csv(path, spots, transcript))
    for path, writer in ((job.out_dir / f"{job.title}_dialogue.csv", listing),
                         (job.out_dir / f"{job.title}_dialogue.srt", spotting.write_srt)):
        writer(path, reel.spots)
        reel.outputs.append(path)


def programs(wavs: dict[str, Path], master: Master) -> list[deliverable.Program]:
    """The separated programs of a master with their delivered stems: the master, and its Lt/Rt fold-down (its
    stems under FOLDDOWN_DIR/ in `wavs`)."""
    found = [deliverable.Program(master, master.layout.labels, master.layout.ffmpeg_channels,
                                 {k: v for k, v in wavs.items() if "/" not in k})]
    if master.folddown is not None:
        prefix = f"{FOLDDOWN_DIR}/"
        found.append(deliverable.Program(master.folddown, FOLDDOWN, deliverable.FOLDDOWN_NAMES,
                                         {k[len(prefix):]: v for k, v in wavs.items() if k.startswith(prefix)},
                                         "Lt/Rt "))
    return found


# ---------------------------------------------------------------------------------------------------- words

def _asr_inputs(source: str, dx: Reader, mix: Reader) -> dict[str, Reader]:
    """What the recogniser hears (transcribe.source), over the written stems: DX, the mix, the DX with the M&E
    put back BLEND_DB down, or DX and the mix (per window, the one it is surer of)."""
    return {"dx": {"dx": dx}, "mix": {"mix": mix}, "dx+mix": {"dx": dx, "mix": mix},
            "blend": {"blend": Sum(dx, Difference(mix, dx), 10 ** (BLEND_DB / 20))}}[source]


def _recognise(reel: Reel) -> Transcript:
    """The reel's words: the configured model over the DX's speech regions, read from the written stems; each
    line's level from the written DX."""
    t, layout = reel.settings.transcribe, reel.probed.layout.name
    readers = {name: WavReader(reel.wavs[name]) for name in ("DX", "MIX")}
    try:
        recogniser = asr_model.load_recogniser(asr_model.resolve_asr_model(t.model))
        options = asr.AsrOptions(language=None if t.language == "auto" else t.language, beam_size=t.beam_size)
        transcript = asr.transcribe(_asr_inputs(t.source, readers["DX"], readers["MIX"]), reel.rate,
                                    reel.speech.regions, recogniser, options=options, layout=layout,
                                    source=t.source)
        return asr.with_levels(transcript, readers["DX"], reel.rate, layout)
    finally:
        for reader in readers.values():
            reader.close()


def _words(reel: Reel) -> None:
    """Speech recognition (unless --no-transcribe). A failure never holds the reel hostage: it is recorded
    (the row's asr_error) and the stems are delivered as always."""
    if not reel.settings.transcribe.enabled:
        return
    t0 = time.perf_counter()
    try:
        transcript = _recognise(reel)
        path = _write_words(reel, transcript)
    except Exception as exc:     # a model that will not load, a recogniser bug: the reel goes on without words
        if not isinstance(exc, PipelineError):
            log.exception("speech recognition failed for %s", reel.job.path)
        error = " ".join(f"{exc}".split()) or type(exc).__name__
        reel.words = Words(None, time.perf_counter() - t0, error)
        reel.say(f"[{reel.job.title}] speech recognition failed (stems delivered): {error}")
        return
    reel.words = Words(transcript, time.perf_counter() - t0, path=path)


def _write_words(reel: Reel, transcript: Transcript) -> Path:
    """`<title>_transcript.json` (pipeline.asr.transcript_record: lines, words, times, timecodes, levels), the
    subtitles (SRT, WebVTT, TTML), the ADR cue sheet and the marker EDL (pipeline.wordfiles), in source timecode
    on the picture's frame grid. The dialogue list (the spotting list with the words) is written with the
    spotting list, after the QC."""
    job, info = reel.job, reel.probed.info
    path = job.out_dir / f"{job.title}_transcript.json"
    write_text_atomic(path, json.dumps(asr.transcript_record(transcript, reel.start), indent=1,
                                       ensure_ascii=False) + "\n")
    # a picture whose rate has no SMPTE timecode (a 120-fps or variable-rate phone clip) is counted as one without
    # a rate: subtitles on the 24-fps grid, timecodes from the reel's start at its own rate, else at 24
    fps = starttc.smpte_rate(info.video[0].frame_rate) if info.video else None
    reel.outputs += [path, *wordfiles.write_words(transcript, job.out_dir, job.title, reel.start, fps).values()]
    return path


def _language_tag(words: Words | None) -> str | None:
    """The ISO 639-2 tag of the language recognised in a reel's dialogue, None when there is none."""
    if words is None or words.transcript is None or not words.transcript.language:
        return None
    return asr_model.iso639_2(words.transcript.language)


def _start_remux(reel: Reel) -> Future:
    """The remux (an ffmpeg process: picture copied, the stems as labelled tracks) started in a thread, so it
    runs on another core while the QC reads the stems; `_finish_remux` waits for it."""
    info, master, job = reel.probed.info, reel.probed.master, reel.job

    def remux_now() -> tuple[remux.RemuxResult, float]:
        t0 = time.perf_counter()
        first = master.first.audio_index
        _, suffix = remux.deliverable_container(info, first)
        languages = deliverable.Languages(master.language or reel.settings.language, _language_tag(reel.words))
        tracks = deliverable.deliverable_tracks(reel.settings.output_tracks, programs(reel.wavs, master), info,
                                                reel.profile.name, languages)
        result = remux.remux(info, first, tracks, job.out_dir / f"{job.title}{suffix}",
                             bit_depth=reel.profile.bit_depth, timeout=reel.timeout, timecode=_picture_tc(reel))
        return result, time.perf_counter() - t0

    pool = ThreadPoolExecutor(1, thread_name_prefix=f"remux-{job.title}")
    try:
        return pool.submit(remux_now)
    finally:
        pool.shutdown(wait=False)


def _picture_tc(reel: Reel) -> str | None:
    """The deliverable's start timecode when --start-tc or --tc-rate moved the outputs' start: the stems' start
    at the picture's rate (starttc.picture_label); None keeps the source's own."""
    info, job = reel.probed.info, reel.job
    if not (job.start_tc or job.tc_rate) or not info.video:
        return None
    start = reel.start
    if start is not None and (lead := _lead(reel.probed)):     # the picture starts that much after the stems
        start = StartTimecode(start.seconds + lead, start.rate)
    return starttc.picture_label(start, info.video[0].frame_rate)


def _finish_remux(reel: Reel, remuxing: Future) -> None:
    """Wait for the remux; its time is recorded as its own stage, and a failure is reported as the remux's."""
    try:
        reel.remuxed, seconds = remuxing.result()
    except BaseException:
        reel.timer.current = "remux"
        raise
    reel.timer.record("remux", seconds)
    reel.outputs.append(reel.remuxed.path)


def _folddown(reel: Reel) -> None:
    """A surround master's Lt/Rt fold-down (named by the track map) separated as a program of its own: the same
    stages, to the same profile, its stems in OUT/<title>/LtRt/ (timed into the same stages)."""
    fold = reel.probed.master.folddown
    if fold is None:
        return
    job = dataclasses.replace(reel.job, out_dir=reel.job.out_dir / FOLDDOWN_DIR)
    names = reel.names.with_layout(fold.layout) if reel.names is not None else None
    sub = Reel(job, reel.spec, reel.settings, reel.profile, reel.say, reel.timer,
               dataclasses.replace(reel.probed, master=fold), Workspace(job.out_dir), reel.start, names)
    with sub.workspace:
        for name, stage in STAGES:
            with reel.timer(name):
                stage(sub)
    reel.wavs.update({f"{FOLDDOWN_DIR}/{name}": path for name, path in sub.wavs.items()})
    reel.outputs += sub.outputs


STAGES: tuple[tuple[str, Callable[[Reel], None]], ...] = (
    ("extract", _extract), ("separate", _separate), ("cleanup", _cleanup), ("vad", _vad),
    ("loudness", _loudness), ("write", _write))


def _run_stages(reel: Reel) -> None:
    """STAGES in order (for a fold-down too), then the QC and spotting list while ffmpeg remuxes on another
    core."""
    for name, stage in STAGES:
        with reel.timer(name):
            stage(reel)
    _folddown(reel)
    with reel.timer("words"):     # not one of STAGES: a fold-down's dialogue is the same and is not recognised
        _words(reel)              # again; before the remux, which tags the DX track with the language found
    remuxing = _start_remux(reel) if reel.probed.info.has_video else None
    try:
        with reel.timer("qc"):
            _qc(reel)
            _spotting(reel)
    finally:
        if remuxing is not None:    # always waited for: a failure must not clean up under a running remux
            _finish_remux(reel, remuxing)


# ---------------------------------------------------------------------------------------------------- the row

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


def fill_words(row: ReportRow, words: Words | None, clock: StartTimecode | None = None) -> None:
    """The speech recognition's columns: the language's ISO 639-2 tag, words, seconds, the error, the file; each
    line's timecode (on `clock`), media seconds and text for the HTML report."""
    if words is None:
        return
    row.asr_seconds, row.asr_error = words.seconds, words.error
    if words.transcript is not None:
        row.language = _language_tag(words) or ""
        row.words = asr.word_count(words.transcript)
        row.transcript = str(words.path or "")
        row.plots["lines"] = [(clock.label_at(line.start) if clock is not None else "", line.start, line.text)
                              for line in words.transcript.lines]


def _fill_row(reel: Reel) -> ReportRow:
    """The report row of a processed reel, from the stages' results (the probe filled its part)."""
    row = reel.timer.row
    row.input_lufs, row.gain_db = reel.delivered.input.integrated_lufs, reel.delivered.gain_db
    row.limiter_db = reel.delivered.limiter_db
    fill_qc(row, reel.checked)
    if "stereo" in reel.sub_qc:
        row.stereo_lufs, row.stereo_tp_dbtp = reel.sub_qc["stereo"].output_lufs, reel.sub_qc["stereo"].true_peak_dbtp
    if FOLDDOWN_DIR in reel.sub_qc:
        fold = reel.sub_qc[FOLDDOWN_DIR]
        row.ltrt_lufs, row.ltrt_dx_lufs, row.ltrt_tp_dbtp = fold.output_lufs, fold.dx_lufs, fold.true_peak_dbtp
    row.dialogue_lines = len(reel.spots)
    row.qc_events_n = len(reel.events)
    row.qc_events = str(reel.job.out_dir / f"{reel.job.title}_qc_events.csv")
    row.plots["wavs"] = {name: str(path) for name, path in reel.wavs.items()}   # MIX/DX/ME: the report's excerpts
    fill_words(row, reel.words, reel.start)
    if reel.remuxed is not None:
        row.deliverable = str(reel.remuxed.path)
    if reel.checked.qc == "fail":
        reel.say(f"[{reel.job.title}] QC fail: " + "; ".join(reel.checked.reasons))
    row.status, row.stage = "ok", ""
    row.total_s = time.perf_counter() - reel.timer.started
    row.rtf = row.total_s / row.duration_s if row.duration_s and row.duration_s > 0 else math.nan
    return row
