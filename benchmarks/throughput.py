"""Films per hour: N reels of a given length and layout through the whole pipeline (decode to report), as
`reelsplit run` does them but without Prefect (`flows.steps.process_reel` on a thread pool of `--workers`).

    python benchmarks/throughput.py --device cpu --reels 2 --minutes 0.5 --layout stereo --model htdemucs
    python benchmarks/throughput.py --device cuda --reels 4 --minutes 10 --layout 5.1 --model htdemucs \\
        --precision bf16 --workers 4 --source SHORT.ogg          # on a GPU machine (benchmarks/gpu_throughput.sh)

The reels are audio-only 24-bit WAV masters made by looping `--source` (default: a 60 s `reelsplit demo-reel`
of the layout) with ffmpeg to `--minutes`. `--model htdemucs` is the htdemucs architecture with RANDOM weights
(no pretrained weights can be downloaded here; speed does not depend on their values, the separated stems are
meaningless): the table says so. Prints, per run and as the median of `--repeats` runs: films per hour (a film
= 2 hours of audio), × real time end to end, the stages' busy time summed over the reels (the report rows'
stage timings), the GPU's busy share (NVML utilisation sampled every 0.2 s when nvidia-ml-py is installed, else
"n/a") and peak memory (this process's RSS high-water mark incl. threads; the GPU's
torch.cuda.max_memory_allocated). Every run reprocesses (force).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from pipeline.report import STAGES  # noqa: E402  (the report's stage columns, `queue` included)

FILM_S = 7200.0


def htdemucs_arch(folder: Path) -> Path:
    """The htdemucs architecture (demucs's HTDemucs defaults, 7.8 s segment, 4 sources) with random weights,
    saved in demucs's package format so reelsplit loads it as any model file."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum

    found = sorted(folder.glob("htdemucs_arch-*.th"))
    if found:
        return found[0]
    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(39, 5))
    args, kwargs = model._init_args_kwargs
    folder.mkdir(parents=True, exist_ok=True)
    save_with_checksum({"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": model.state_dict(),
                        "training_args": {}}, folder / "htdemucs_arch.th")
    return sorted(folder.glob("htdemucs_arch-*.th"))[0]


def make_reels(source: Path, n: int, seconds: float, layout: str, folder: Path) -> list[Path]:
    """`n` audio-only 24-bit 48 kHz WAV reels of `seconds`, `source` looped (ffmpeg, the pipeline's runner)."""
    from pipeline import ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    first = folder / f"reel_{layout}_{seconds:g}s_0.wav"
    if not first.is_file():
        part = first.with_name(".part.wav")
        ffmpeg.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source),
                    "-t", f"{seconds:g}", "-map", "0:a:0", "-ar", "48000", "-c:a", "pcm_s24le", str(part)],
                   timeout=600 + seconds)
        os.replace(part, first)
    reels = [first]
    for i in range(1, n):      # same audio, its own title (hard links: no copies on disk)
        path = folder / f"reel_{layout}_{seconds:g}s_{i}.wav"
        if not path.exists():
            os.link(first, path)
        reels.append(path)
    return reels


class GpuSampler:
    """The GPU's utilisation (NVML: share of the last sample period a kernel ran), sampled every `interval` s
    in a thread; `share` is their mean, None without NVML or a GPU."""

    def __init__(self, interval: float = 0.2):
        self.samples: list[int] = []
        self.interval, self.stop = interval, threading.Event()
        try:
            import pynvml
            pynvml.nvmlInit()
            self.handle, self.nvml = pynvml.nvmlDeviceGetHandleByIndex(0), pynvml
        except Exception:       # no nvidia-ml-py, no driver, no GPU: "n/a"
            self.handle = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __enter__(self):
        if self.handle is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.handle is not None:
            self.thread.join()

    @property
    def share(self) -> float | None:
        return statistics.fmean(self.samples) / 100 if self.samples else None


def one_run(reels: list[Path], out: Path, spec, settings, profile, workers: int, device: str,
            verbose: bool = False) -> dict:
    """Every reel through process_reel (threads), timed; the row's figures. `verbose` prints the stages' lines."""
    import torch

    from flows.steps import ReelJob, process_reel

    jobs = [ReelJob(path=p, title=f"{p.stem}", out_dir=out / p.stem) for p in reels]
    lines: list[str] = []
    say = (lambda line: print(line, flush=True)) if verbose else lines.append
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            rows = list(pool.map(lambda job: process_reel(job, spec, settings, profile, force=True, say=say),
                                 jobs))
        wall = time.perf_counter() - t0
    failed = [f"{r.title}: {r.stage}: {r.error}" for r in rows if r.status != "ok"]
    if failed:
        raise SystemExit("throughput: a reel failed: " + failed[0])
    audio = sum(r.duration_s for r in rows)
    busy = {s: sum(r.stage_seconds.get(s, 0.0) for r in rows) for s in STAGES}
    return dict(wall_s=wall, audio_s=audio, x_realtime=audio / wall, films_per_hour=audio / FILM_S / wall * 3600,
                stages=busy, gpu_busy=gpu.share,
                gpu_peak_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None)


def settings_for(args):
    from pipeline.config import Settings, with_speed_options

    settings = Settings.load(None)
    sep = dataclasses.replace(settings.separation, device=args.device, device_reels=args.device_reels)
    settings = dataclasses.replace(settings, separation=sep)
    if args.cleanup:
        settings = dataclasses.replace(settings, cleanup=args.cleanup)
    # speech recognition is its own measurement (benchmarks/asr.py): off unless --transcribe
    settings = dataclasses.replace(settings, transcribe=dataclasses.replace(settings.transcribe,
                                                                            enabled=args.transcribe))
    return with_speed_options(settings, args.precision, args.batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--model", default="htdemucs", help="htdemucs (random weights), dfn3, dme-small or a model file")
    ap.add_argument("--reels", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=0.5)
    ap.add_argument("--layout", default="stereo", choices=("mono", "stereo", "5.1"))
    ap.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    ap.add_argument("--batch", type=int, default=None, help="demucs segments per forward (default: auto)")
    ap.add_argument("--workers", type=int, default=None, help="reels in flight (default: min(reels, 4))")
    ap.add_argument("--device-reels", type=int, default=0,
                    help="reels separating on the device at once (0: auto, 1 on CUDA; the others wait in `queue`)")
    ap.add_argument("--cleanup", default=None, help="override the clean-up (auto, none, noisereduce, dfn3)")
    ap.add_argument("--transcribe", action="store_true",
                    help="speech recognition too (the words stage; off by default: benchmarks/asr.py measures it)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", type=Path, default=None, help="media looped into the reels (default: a demo reel)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".cache" / "throughput")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--verbose", action="store_true", help="print each reel's stage lines as they finish")
    args = ap.parse_args()
    import torch

    from _common import make_reel, print_header
    from flows.steps import get_separator
    from pipeline.models import resolve
    from pipeline.profiles import load_profile

    m = print_header("Throughput: reels through every stage (benchmarks/throughput.py)")
    workers = args.workers or min(args.reels, 4)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))    # as `reelsplit run` (flows/reel.py)
    source = args.source or make_reel(60.0, layout=args.layout)
    reels = make_reels(source, args.reels, args.minutes * 60, args.layout, args.work / "reels")
    spec = resolve(str(htdemucs_arch(args.work / "models")) if args.model == "htdemucs" else args.model)
    settings, profile = settings_for(args), load_profile("ebu-r128")
    t0 = time.perf_counter()
    get_separator(spec, settings)                         # loaded once, as a worker does, before the clock
    load_s = time.perf_counter() - t0
    runs = []
    for i in range(args.repeats):
        runs.append(one_run(reels, args.work / "out", spec, settings, profile, workers, args.device, args.verbose))
        r = runs[-1]
        print(f"run {i + 1}: {r['wall_s']:.1f} s wall, {r['x_realtime']:.1f}x real time, "
              f"{r['films_per_hour']:.2f} films/h, gpu busy {r['gpu_busy']}", flush=True)
    print_table(args, runs, spec, workers, load_s, rss_peak_gib())
    if args.json:
        args.json.write_text(json.dumps(dict(machine=m.describe(), args={k: str(v) for k, v in vars(args).items()},
                                             runs=runs, load_s=load_s, rss_peak_gib=rss_peak_gib()), indent=1))


def rss_peak_gib() -> float:
    """This process's peak resident memory (all its threads; ffmpeg children not included), GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def print_table(args, runs: list[dict], spec, workers: int, load_s: float, rss: float) -> None:
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    best = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]        # the median run's stage timings
    model = "htdemucs architecture, RANDOM weights (timing only)" if args.model == "htdemucs" else spec.label
    gpu = best["gpu_busy"]
    print(f"\n{args.reels} reels × {args.minutes:g} min {args.layout}, {workers} in flight, model {model}, "
          f"device {args.device} ({args.device_reels or 'auto'} reel(s) on it at once), precision {args.precision}, "
          f"batch {args.batch or 'auto'}, "
          f"median of {len(runs)} (model load {load_s:.1f} s, not counted)\n")
    print("| films per hour | × real time | wall s | audio s | GPU busy | peak RAM (GiB) | peak GPU mem (GiB) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {med('films_per_hour'):.2f} | {med('x_realtime'):.1f} | {med('wall_s'):.1f} | {best['audio_s']:.0f} | "
          f"{'n/a' if gpu is None else f'{gpu:.0%}'} | {rss:.2f} | "
          f"{'n/a' if best['gpu_peak_gib'] is None else round(best['gpu_peak_gib'], 2)} |")
    print("\nStage busy time, summed over the reels (s; the median run; reels overlap, so the sum can pass the wall; "
          "queue: waiting for the device's turn):\n")
    print("| " + " | ".join(STAGES) + " |\n|" + "---|" * len(STAGES))
    print("| " + " | ".join(f"{best['stages'][s]:.1f}" for s in STAGES) + " |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
