"""Shared helpers for the benchmark scripts: the machine they ran on, seeded input reels, a subprocess runner
that samples the memory of the whole process tree, `reelsplit run` and the demucs CLI as subprocesses, and
Markdown/CSV output. Not a test helper: nothing here asserts a timing.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import psutil

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"   # git-ignored: inputs, outputs, logs, the demucs repo
sys.path.insert(0, str(ROOT))

BASE_SECONDS = 300.0   # longer inputs loop a reel of this length (see make_reel)
MIB = 1 << 20


class BenchmarkError(Exception):
    """A step of a benchmark failed; the message is one line naming the command or file and the reason."""


# ---- the machine -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Machine:
    date: str
    host: str
    cores: int             # CPUs this process may run on
    ram_gib: float
    cpu_model: str
    system: str
    python: str
    torch: str

    def describe(self) -> str:
        return (f"{self.date}, {self.host}: {self.cpu_model}, {self.cores} cores, {self.ram_gib:.0f} GiB RAM, "
                f"{self.system}, Python {self.python}, torch {self.torch}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> Machine:
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return Machine(date=dt.datetime.now().strftime("%Y-%m-%d %H:%M"), host=platform.node() or "this machine",
                   cores=len(os.sched_getaffinity(0)), ram_gib=psutil.virtual_memory().total / (1 << 30),
                   cpu_model=cpu_model(), system=platform.platform(terse=True), python=platform.python_version(),
                   torch=torch_version)


def command_line() -> str:
    """How this script was started, as a shell line (the interpreter relative to the working folder)."""
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join([str(exe), *sys.argv])


def print_header(title: str) -> Machine:
    """Print the benchmark's title, date, machine and command line; return the machine."""
    m = machine()
    print(f"## {title}\n\n{m.describe()}\n\n```sh\n{command_line()}\n```\n", flush=True)
    return m


def note(message: str) -> None:
    """Progress on stderr, so stdout stays the report."""
    print(message, file=sys.stderr, flush=True)


# ---- inputs ----------------------------------------------------------------------------------------
def _run_quiet(cmd: list[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchmarkError(f"{what}: {shlex.join(cmd)}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchmarkError(f"{what}: {cmd[0]} exited with {proc.returncode}: {tail}")


def make_reel(seconds: float, seed: int = 0, *, folder: Path = CACHE / "inputs", layout: str = "stereo",
              base_seconds: float = BASE_SECONDS) -> Path:
    """A seeded stereo 48 kHz demo reel (.mov: H.264 picture + 24-bit PCM) of `seconds`, made once and cached.

    Up to `base_seconds` it is `reelsplit demo-reel` itself. Longer reels loop a `base_seconds` reel with
    ffmpeg's `-stream_loop` (stream copy, seconds to make): the demo renders every source in memory (effects as
    float64 (samples, 4) arrays; measured 296, 489 and 874 MiB peak for 0.5, 1 and 2 minutes, i.e. ~6.4 MiB per
    second, ~11 GiB for 30 minutes), which a 30-minute run would spend before reelsplit even starts.
    """
    looped = f"_loop{base_seconds:g}s" if seconds > base_seconds else ""
    path = folder / f"reel_{layout}_{seconds:g}s_seed{seed}{looped}.mov"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    if seconds <= base_seconds:
        note(f"making {path} ({seconds:g} s) ...")
        _run_quiet([sys.executable, "-m", "flows.cli", "demo-reel", str(path), "--seconds", f"{seconds:g}",
                    "--layout", layout, "--seed", str(seed)], f"making {path}", timeout=600 + 4 * seconds)
        return path
    base = make_reel(base_seconds, seed, folder=folder, layout=layout)
    note(f"making {path} ({seconds:g} s, {base.name} looped) ...")
    part = path.with_name(f".{path.stem}.part{path.suffix}")
    try:
        _run_quiet(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(base),
                    "-t", f"{seconds:g}", "-map", "0", "-c", "copy", str(part)], f"making {path}",
                   timeout=600 + seconds / 10)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def audio_seconds(path: Path) -> float:
    """Duration of the first audio stream of `path`, seconds (ffprobe through pipeline.media)."""
    from pipeline.media import probe
    info = probe(path)
    stream = info.audio_stream(0)
    return float(stream.duration_s or info.duration_s)


# ---- running a command -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sampled:
    """One finished command. `peak_tree_bytes`: the largest sum of resident memory over the process and all
    its descendants, sampled every `interval` s (and never below `peak_process_bytes`); `peak_process_bytes`:
    the kernel's maximum resident set of the largest single process among them (wait4's ru_maxrss, what
    `/usr/bin/time -v` prints); `cpu_s`: user + system time of the process and its waited-for descendants;
    `involuntary_switches`: times the kernel took the CPU away from them (high when more threads want to run
    than there are cores)."""

    command: tuple[str, ...]
    wall_s: float
    peak_tree_bytes: int
    peak_process_bytes: int
    cpu_s: float
    involuntary_switches: int
    returncode: int
    log: Path

    @property
    def peak_tree_mib(self) -> float:
        return self.peak_tree_bytes / MIB

    @property
    def peak_process_mib(self) -> float:
        return self.peak_process_bytes / MIB

    def cpu_use(self, cores: int) -> float:
        """Share of the `cores` kept busy over the wall time, 0..1."""
        return self.cpu_s / (self.wall_s * cores) if self.wall_s > 0 and cores else float("nan")


def _tree_rss(root: psutil.Process) -> int:
    """The resident memory of `root` and its descendants, summed; a child that is still its parent's copy (forked,
    not yet exec'd: the same command line as its parent) is left out. Python starts a subprocess with vfork, and
    until the exec the child's RSS is its parent's pages: a sample that fell there counted reelsplit twice (a
    30-minute run's tree at 2367 MiB = 2 x 1049 + Prefect's server, 2026-12-05)."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            if p is not root and p.cmdline() == p.parent().cmdline():
                continue
            total += p.memory_info().rss
        except (psutil.Error, AttributeError):   # exited, zombie or not ours between listing and reading
            continue
    return total


def run_sampled(cmd: Sequence[str], *, log: Path, env: dict | None = None, interval: float = 0.1,
                timeout: float | None = None, check: bool = True) -> Sampled:
    """Run `cmd` (an argument list; stdin closed, stdout and stderr to `log`), sampling the resident memory of
    its whole process tree every `interval` seconds until it exits. Raises BenchmarkError on a non-zero exit
    (with `check`) or after `timeout` seconds (the process group is then killed)."""
    cmd = tuple(str(c) for c in cmd)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        out.write(f"$ {shlex.join(cmd)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=ROOT, start_new_session=True)
        except OSError as exc:
            raise BenchmarkError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from exc
        root, peak = psutil.Process(proc.pid), 0
        try:
            while True:
                peak = max(peak, _tree_rss(root))
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)   # reaps it: Popen.wait is not used
                if pid:
                    break
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    raise BenchmarkError(f"{_name(cmd)} ran over {timeout:g} s and was killed (log: {log})")
                time.sleep(interval)
        except BaseException:   # the timeout, Ctrl-C (which its own session does not receive), a bug here
            _end_group(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        wall = time.perf_counter() - t0
    rc = proc.returncode = os.waitstatus_to_exitcode(status)
    _end_group(proc.pid, signal.SIGTERM)   # anything it started and left behind (its own session)
    largest = usage.ru_maxrss * 1024
    # a peak shorter than the sampling interval can be missed; the tree's peak is at least its largest process's
    result = Sampled(cmd, wall, max(peak, largest), largest, usage.ru_utime + usage.ru_stime, usage.ru_nivcsw,
                     rc, log)
    if check and rc != 0:
        raise BenchmarkError(f"{_name(cmd)} exited with {rc}: {last_line(log)} (log: {log})")
    return result


def _name(cmd: Sequence[str]) -> str:
    """The first words of a command, for messages: `reelsplit run`, `python -m demucs`."""
    return " ".join([Path(cmd[0]).name, *cmd[1:3 if cmd[1:2] == ("-m",) else 2]])


def _end_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


# ---- reelsplit and the demucs CLI ------------------------------------------------------------------
def reelsplit_exe() -> list[str]:
    exe = Path(sys.executable).with_name("reelsplit")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "flows.cli"]


def bench_env(**extra: str) -> dict:
    """The environment for benchmark subprocesses: offline, a private Prefect home and an empty model repo
    (so model names resolve to the bundled files, whatever this user has installed)."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    (CACHE / "empty-model-repo").mkdir(parents=True, exist_ok=True)
    env.update({"REELSPLIT_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PREFECT_HOME": str(CACHE / "prefect"),
                "REELSPLIT_MODEL_REPO": str(CACHE / "empty-model-repo"), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@dataclass(frozen=True)
class ReelsplitRun:
    sampled: Sampled
    rows: list[dict] = field(default_factory=list)   # OUT/reports/latest.csv, one dict per input

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Stage → seconds summed over the run's files (STAGES of pipeline/report.py, in order)."""
        from pipeline.report import STAGES
        return {s: sum(_num(r.get(f"{s}_s")) for r in self.rows) for s in STAGES}

    @property
    def pipeline_s(self) -> float:
        """Seconds inside process_reel, summed over the files (the report's total_s)."""
        return sum(_num(r.get("total_s")) for r in self.rows)


def _num(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if v == v else 0.0


def reelsplit_run(inputs: Iterable[Path], out: Path, *, model: str, workers: int = 1, log: Path,
                  extra: Sequence[str] = (), timeout: float | None = None, exe: Sequence[str] | None = None,
                  env: dict | None = None) -> ReelsplitRun:
    """`reelsplit run INPUTS --out OUT --model MODEL --workers N` into a fresh OUT; every file must come out ok.
    `exe`/`env`: another reelsplit (benchmarks/then_now.py runs an earlier commit's code)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*(exe or reelsplit_exe()), "run", *map(str, inputs), "--out", str(out), "--model", model,
           "--workers", str(workers), *extra]
    sampled = run_sampled(cmd, log=log, env=env or bench_env(), timeout=timeout, check=False)
    try:
        with open(out / "reports" / "latest.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        rows = []
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        raise BenchmarkError(f"reelsplit: {bad[0]['file']}: {bad[0]['status']} at {bad[0]['stage']}: "
                             f"{bad[0]['error']} (log: {log})")
    if sampled.returncode != 0 or not rows:
        raise BenchmarkError(f"reelsplit run exited with {sampled.returncode}: {last_line(log)} (log: {log})")
    return ReelsplitRun(sampled, rows)


def demucs_repo(name: str = "dme-small", folder: Path = CACHE / "demucs-repo") -> Path:
    """A demucs repo folder holding the bundled safetensors model `name` as demucs's own `.th` package
    (`<name>-<sha256[:8]>.th`, via pipeline.training.train.write_package), for `python -m demucs --repo DIR -n NAME`."""
    if any(p.stem.rsplit("-", 1)[0] == name for p in folder.glob(f"{name}-*.th")):
        return folder
    from demucs.hf import load_safetensors_model

    from pipeline.models import BUNDLED_REPO, repo_entries
    from pipeline.training.train import write_package

    source = repo_entries(BUNDLED_REPO).get(name)
    if source is None or source.suffix != ".safetensors":
        raise BenchmarkError(f"{BUNDLED_REPO}: no bundled safetensors model named {name}")
    model = load_safetensors_model(source)
    args, kwargs = model._init_args_kwargs   # recorded by demucs's capture_init
    folder.mkdir(parents=True, exist_ok=True)
    write_package(folder, name, type(model), args, kwargs, model.state_dict(), {"converted_from": source.name})
    return folder


def demucs_cli(track: Path, out: Path, *, repo: Path, name: str, threads: int, log: Path,
               timeout: float | None = None) -> tuple[Sampled, Path]:
    """`python -m demucs` on `track` with reelsplit's separation settings (configs/default.yaml: segment,
    overlap, shifts, split), on the CPU with `threads` torch threads, 24-bit WAV stems; returns the run and
    the folder of its stems (`OUT/<name>/<track stem>/`)."""
    from pipeline.config import Settings

    sep = Settings.load(None).separation
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "demucs", "--repo", str(repo), "-n", name, "-d", "cpu", "-o", str(out),
           "--shifts", str(sep.shifts), "--overlap", str(sep.overlap), "--int24"]
    if not sep.split:
        cmd.append("--no-split")
    elif sep.segment is not None:
        cmd += ["--segment", str(int(sep.segment))]
    # demucs sets no thread count of its own: torch takes OMP_NUM_THREADS
    env = bench_env(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    sampled = run_sampled([*cmd, str(track)], log=log, env=env, timeout=timeout)
    return sampled, out / name / track.stem


def loudnorm_two_pass(src: Path, dst: Path, *, log: Path, target_lufs: float, true_peak_dbtp: float,
                      lra: float = 20.0, rate: int = 48000) -> tuple[Sampled, Sampled]:
    """ffmpeg `loudnorm` in two passes (measure, then linear normalisation with the measured values) from
    `src` to a 24-bit WAV `dst` at `rate`: the loudness step a user would script after demucs."""
    spec = f"I={target_lufs}:TP={true_peak_dbtp}:LRA={lra}"
    first = run_sampled(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(src),
                         "-af", f"loudnorm={spec}:print_format=json", "-f", "null", "-"],
                        log=log.with_suffix(".pass1.log"))
    text = first.log.read_text(errors="replace")
    try:
        measured = json.loads(text[text.rindex("{"):text.rindex("}") + 1])
    except ValueError as exc:
        raise BenchmarkError(f"loudnorm gave no measurement for {src} (log: {first.log})") from exc
    chain = (f"loudnorm={spec}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}:"
             f"measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}:"
             f"offset={measured['target_offset']}:linear=true:print_format=summary")
    second = run_sampled(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-y", "-i", str(src), "-af", chain,
                          "-ar", str(rate), "-c:a", "pcm_s24le", str(dst)], log=log.with_suffix(".pass2.log"))
    return first, second


# ---- output ----------------------------------------------------------------------------------------
Column = tuple[str, str, str]   # (key, header, format spec)


def fmt(value, spec: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value != value:
        return "–"
    return format(value, spec) if spec else str(value)


def markdown_table(rows: list[dict], columns: Sequence[Column]) -> str:
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def write_csv(path: Path, rows: list[dict], m: Machine) -> None:
    """Rows as CSV, each with the date and machine it was measured on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"date": m.date, "host": m.host, "cores": m.cores, "cpu": m.cpu_model}
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*keys, *extra])
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, **extra})
    note(f"wrote {path}")


def add_common_args(parser) -> None:
    parser.add_argument("--csv", type=Path, default=None, help="also write the table's rows to this CSV file")
    parser.add_argument("--work", type=Path, default=CACHE, help=f"inputs, outputs and logs (default {CACHE})")
    parser.add_argument("--seed", type=int, default=0, help="demo reel seed (default 0)")


def main_guard(fn) -> int:
    """Run a benchmark's main; a BenchmarkError (or a pipeline error) is one line and exit 1."""
    from pipeline.errors import PipelineError
    try:
        return fn()
    except (BenchmarkError, PipelineError) as exc:
        where = f"{exc.path}: " if getattr(exc, "path", None) else ""
        print(f"benchmark: error: {where}{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark: interrupted", file=sys.stderr)
        return 130
