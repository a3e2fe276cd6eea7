"""Batched Demucs (pipeline/demucs_batch.py) on a device: is it the same, how far is each precision from fp32,
and how fast is the separation at each batch size and precision?

    python benchmarks/gpu_batch.py --seconds 120 --batches 1 16 64 --json OUT.json     # on a GPU machine
    python benchmarks/gpu_batch.py --device cpu --seconds 20 --batches 1 2 4             # the CPU's choice of batch

(a) Equality: the htdemucs architecture (random weights: speed and arithmetic do not depend on their values)
and the bundled dme-small, batch 16 against batch 1 in fp32 (energy of the difference re the batch-1 result, dB),
and bf16/fp16 autocast against fp32, set beside dme-small's own error (its DX SDR on the separation benchmark,
2.7 dB: an error only 2.7 dB below the dialogue). (b) Speed: `stream_apply` (the network and the overlap-add,
no resampling) over `--seconds` of stereo at 44.1 kHz, × real time per batch size and precision, best of
`--repeats` after a warm-up, with the device's peak memory; then the whole separation stage
(`DemucsSeparator.separate`: 48 ↔ 44.1 kHz soxr resampling on the CPU included) at the auto batch.
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
sys.path[:0] = [str(ROOT)]
DME_SMALL_DX_SDR_DB = 2.73     # benchmarks/RESULTS.md, separation quality: dme-small's DX SDR


def error_db(got: np.ndarray, ref: np.ndarray) -> float:
    diff = float(np.sum((got.astype(np.float64) - ref) ** 2))
    return 10 * math.log10(diff / float(np.sum(ref.astype(np.float64) ** 2))) if diff > 0 else -math.inf


def signal(seconds: float, rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    cols = [0.3 * np.sin(2 * np.pi * (180 + 70 * c) * t) * (np.sin(2 * np.pi * (0.4 + 0.1 * c) * t) > 0)
            + 0.05 * rng.standard_normal(n) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def sync(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def separate(model, x: np.ndarray, device: str, **kw) -> tuple[float, np.ndarray]:
    """stream_apply of `x` (seconds, (sources, channels, n))."""
    from pipeline.config import SeparationSettings
    from pipeline.demucs_batch import stream_apply
    from pipeline.readers import ArrayReader

    sync(device)
    t0 = time.perf_counter()
    out = np.concatenate([e for _, e in stream_apply(model, ArrayReader(x), 0.0, 1.0, SeparationSettings(**kw),
                                                     device)], axis=-1)
    sync(device)
    return time.perf_counter() - t0, out


def models():
    from demucs.htdemucs import HTDemucs

    from pipeline.models import load_demucs, resolve
    import torch

    torch.manual_seed(0)
    return [("htdemucs architecture (random weights)",
             HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(39, 5))),
            ("dme-small", load_demucs(resolve("dme-small")))]


def equality(device: str, seconds: float) -> list[dict]:
    rows = []
    for label, model in models():
        x = signal(seconds, int(model.samplerate), seed=1) / 0.2
        _, ref = separate(model, x, device, batch_segments=1)
        row = dict(model=label, batch16_vs_batch1_db=round(error_db(separate(model, x, device,
                                                                             batch_segments=16)[1], ref), 1))
        for precision in ("bf16", "fp16"):
            if device == "cuda":
                row[f"{precision}_vs_fp32_db"] = round(error_db(separate(model, x, device, batch_segments=16,
                                                                         precision=precision)[1], ref), 1)
        rows.append(row)
        print(row, flush=True)
        model.to("cpu")
    return rows


def speed(device: str, seconds: float, batches: list[int], repeats: int) -> list[dict]:
    import torch

    label, model = models()[0]
    x = signal(seconds, 44100, seed=2) / 0.2
    rows = []
    for precision in (("fp32", "bf16") if device == "cuda" else ("fp32",)):
        for batch in batches:
            separate(model, x[:44100 * 10], device, batch_segments=batch, precision=precision)   # warm-up
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            best = min(separate(model, x, device, batch_segments=batch, precision=precision)[0]
                       for _ in range(repeats))
            rows.append(dict(model=label, precision=precision, batch=batch, seconds=seconds, s=round(best, 3),
                             x_realtime=round(seconds / best, 1),
                             peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None))
            print(rows[-1], flush=True)
    return rows


def stage(device: str, seconds: float) -> list[dict]:
    """DemucsSeparator.separate over a 48 kHz stereo spill file (resampling included), auto batch."""
    from pipeline.config import SeparationSettings
    from pipeline.layout import LAYOUTS
    from pipeline.models import ModelSpec
    from pipeline.readers import RawFile, Workspace
    from pipeline.separate_demucs import DemucsSeparator

    label, model = models()[0]
    work = Path(tempfile.mkdtemp())
    raw = RawFile(work / "mix.f32", 2)
    raw.append(signal(seconds, 48000, seed=3))
    rows = []
    for precision in (("fp32", "bf16") if device == "cuda" else ("fp32",)):
        sep = DemucsSeparator(model, ModelSpec("demucs", "htdemucs-arch", "file"),
                              SeparationSettings(device=device, precision=precision))
        sync(device)
        t0 = time.perf_counter()
        stems = sep.separate(raw, 48000, LAYOUTS["stereo"], Workspace(work))
        sync(device)
        s = time.perf_counter() - t0
        stems.dx.remove()
        rows.append(dict(model=label, precision=precision, seconds=seconds, s=round(s, 2),
                         x_realtime=round(seconds / s, 1)))
        print(rows[-1], flush=True)
    raw.remove()
    return rows


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--check-seconds", type=float, default=30.0)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}", flush=True)
    eq = equality(args.device, args.check_seconds)
    sp = speed(args.device, args.seconds, args.batches, args.repeats)
    st = stage(args.device, args.seconds)
    print(f"\n{name}, torch {torch.__version__}\n")
    print("| model | batch 16 vs batch 1, fp32 (dB) | bf16 vs fp32 (dB) | fp16 vs fp32 (dB) |\n|---|---|---|---|")
    for r in eq:
        print(f"| {r['model']} | {r['batch16_vs_batch1_db']} | {r.get('bf16_vs_fp32_db', 'n/a')} | "
              f"{r.get('fp16_vs_fp32_db', 'n/a')} |")
    print(f"\n(dme-small's own DX error for scale: SDR {DME_SMALL_DX_SDR_DB} dB, i.e. −{DME_SMALL_DX_SDR_DB} dB)\n")
    print("| precision | batch | audio s | s | × real time | peak GPU mem (GiB) |\n|---|---|---|---|---|---|")
    for r in sp:
        print(f"| {r['precision']} | {r['batch']} | {r['seconds']:g} | {r['s']} | {r['x_realtime']} | "
              f"{r['peak_gib'] if r['peak_gib'] is not None else 'n/a'} |")
    print("\nWhole separation stage (resampling included, auto batch):\n")
    print("| precision | audio s | s | × real time |\n|---|---|---|---|")
    for r in st:
        print(f"| {r['precision']} | {r['seconds']:g} | {r['s']} | {r['x_realtime']} |")
    if args.json:
        args.json.write_text(json.dumps(dict(device=name, torch=torch.__version__, equality=eq, speed=sp, stage=st),
                                        indent=1))


if __name__ == "__main__":
    main()
