"""reelsplit's block-by-block Demucs path on a GPU: is it correct there (equal to the CPU result), and how fast is
it against the whole-file `apply_model` call on the same device?

    python benchmarks/gpu_stream.py --minutes 5 --json OUT.json        # on a machine with CUDA
    python benchmarks/gpu_stream.py --minutes 0.2 --device cpu         # dry run

Models: the htdemucs architecture with random weights (no pretrained weights can be downloaded here; speed does
not depend on their values), the bundled dme-small, and a tiny test model for the CPU-vs-GPU equality check.
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def error_db(got: np.ndarray, ref: np.ndarray) -> float:
    diff = float(np.sum((got.astype(np.float64) - ref) ** 2))
    return 10 * math.log10(diff / float(np.sum(ref.astype(np.float64) ** 2))) if diff > 0 else -math.inf


def signal(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    cols = [0.3 * np.sin(2 * np.pi * (180 + 70 * c) * t) * (np.sin(2 * np.pi * (0.4 + 0.1 * c) * t) > 0)
            + 0.05 * rng.standard_normal(n) for c in range(2)]
    return np.stack(cols, axis=1).astype(np.float32)


def sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    import torch
    from demucs.htdemucs import HTDemucs

    from pipeline.config import SeparationSettings
    from pipeline.layout import LAYOUTS
    from pipeline.models import ModelSpec, load_demucs, resolve
    from pipeline.readers import ArrayReader, RawFile, Workspace
    from pipeline.separate_demucs import DemucsSeparator
    from reference.separate import demucs_whole
    from tiny_demucs import write_tiny_model

    stereo = LAYOUTS["stereo"]

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rate = 48000
    work = Path(tempfile.mkdtemp())
    rows, checks = [], []

    # 1. correctness on the device: tiny and dme-small, streamed on the device vs whole-file on the CPU
    tiny = resolve(str(write_tiny_model(work / "tiny")))
    mix = signal(20.0, rate, seed=1)
    for spec in (tiny, resolve("dme-small")):
        cpu = DemucsSeparator(load_demucs(spec), spec, SeparationSettings(device="cpu"))
        dev = DemucsSeparator(load_demucs(spec), spec, SeparationSettings(device=args.device))
        ref = demucs_whole(cpu, mix, rate, "stereo").dx
        got = dev.separate(ArrayReader(mix), rate, stereo, Workspace(work))
        checks.append(dict(model=spec.name, device=args.device,
                           stream_vs_cpu_whole_db=round(error_db(got.dx.read(0, got.dx.frames), ref), 1)))
        got.dx.remove()
        print(checks[-1], flush=True)

    # 2. speed: a reel of `minutes` in a spill file, streamed vs whole-file, after a warm-up
    raw = RawFile(work / "reel.f32", 2)
    for i in range(int(args.minutes * 60 / 10) or 1):
        raw.append(signal(min(10.0, args.minutes * 60), rate, seed=i))
    seconds = raw.frames / rate
    whole_mix = raw.read(0, raw.frames)
    arch = HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(39, 5))
    models = [("htdemucs architecture", arch, ModelSpec("demucs", "htdemucs-arch", "file")),
              ("dme-small", load_demucs(resolve("dme-small")), resolve("dme-small"))]
    for label, model, spec in models:
        sep = DemucsSeparator(model, spec, SeparationSettings(device=args.device))
        demucs_whole(sep, whole_mix[: rate * 10], rate, "stereo")                  # warm-up
        sync(args.device)
        t0 = time.perf_counter()
        whole = demucs_whole(sep, whole_mix, rate, "stereo").dx
        sync(args.device)
        t1 = time.perf_counter()
        got = sep.separate(raw, rate, stereo, Workspace(work))
        sync(args.device)
        t2 = time.perf_counter()
        rows.append(dict(model=label, params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                         device=args.device, audio_s=round(seconds, 1),
                         whole_s=round(t1 - t0, 2), stream_s=round(t2 - t1, 2),
                         whole_x_realtime=round(seconds / (t1 - t0), 1),
                         stream_x_realtime=round(seconds / (t2 - t1), 1),
                         stream_vs_whole_db=round(error_db(got.dx.read(0, got.dx.frames), whole), 1)))
        got.dx.remove()
        print(rows[-1], flush=True)

    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"\n{name}, torch {torch.__version__}")
    print("| check | device | streamed on device vs whole-file on CPU (dB) |\n|---|---|---|")
    for c in checks:
        print(f"| {c['model']} | {c['device']} | {c['stream_vs_cpu_whole_db']} |")
    print("\n| model | params (M) | device | audio (s) | whole-file s | streamed s | whole × real time | "
          "streamed × real time | streamed vs whole (dB) |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_m']} | {r['device']} | {r['audio_s']} | {r['whole_s']} | "
              f"{r['stream_s']} | {r['whole_x_realtime']} | {r['stream_x_realtime']} | {r['stream_vs_whole_db']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(device=name, torch=torch.__version__, checks=checks, rows=rows),
                                              indent=1))


if __name__ == "__main__":
    main()
