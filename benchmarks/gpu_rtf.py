"""Real-time factor of the HTDemucs architecture on a GPU (fp32 and bf16/fp16 autocast), through demucs's own
`apply_model`, the call reelsplit's DemucsSeparator makes.

No pretrained weights can be downloaded where this project is built, so the network is htdemucs's architecture
with random weights: speed does not depend on the weights' values. "Quality holds" under autocast is judged by
how far the autocast output strays from the fp32 output of the same network on the same input (signal-to-
deviation ratio, dB); above ~40 dB the difference is far below what separation quality itself varies by.

    python benchmarks/gpu_rtf.py --seconds 60 --json OUT.json       # on a machine with CUDA

Prints a markdown table. Without CUDA it runs on the CPU (for a dry run: `--seconds 5 --device cpu`).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from fractions import Fraction


def build(variant: str):
    from demucs.htdemucs import HTDemucs

    sources = ["drums", "bass", "other", "vocals"]
    if variant == "htdemucs":            # demucs's default HTDemucs arguments, 7.8 s segment as htdemucs uses
        return HTDemucs(sources=sources, segment=Fraction(39, 5))
    if variant == "htdemucs-bottom512":  # with the 512-channel bottom transformer width
        return HTDemucs(sources=sources, segment=Fraction(39, 5), bottom_channels=512)
    raise ValueError(variant)


def run(model, mix, device: str, dtype, overlap: float) -> tuple[float, "object"]:
    import torch
    from demucs.apply import apply_model

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu",
                                                dtype=dtype or torch.float32, enabled=dtype is not None):
        out = apply_model(model, mix, shifts=0, split=True, overlap=overlap, device=device, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out.float()


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length per timed call")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", default="htdemucs,htdemucs-bottom512")
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    torch.manual_seed(0)
    rate = 44100
    n = int(args.seconds * rate)
    t = torch.arange(n) / rate
    # A test signal with structure (tones, a pulse train, noise) rather than pure noise.
    mix = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.1 * torch.randn(n)
           + 0.2 * (torch.sin(2 * torch.pi * 2 * t) > 0.95).float()).expand(2, n).clone()[None]
    dev_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()
    rows = []
    for variant in args.variants.split(","):
        model = build(variant).to(args.device).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        ref = None
        for label, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16), ("fp16 autocast", torch.float16)):
            if dtype is not None and not args.device.startswith("cuda"):
                continue
            try:
                run(model, mix[..., : rate * 8], args.device, dtype, args.overlap)   # warm-up
                times = []
                for _ in range(args.repeats):
                    sec, out = run(model, mix, args.device, dtype, args.overlap)
                    times.append(sec)
                best = min(times)
                if ref is None:
                    ref, sdr = out, float("inf")
                else:
                    err = (out - ref).pow(2).sum()
                    sdr = float(10 * torch.log10(ref.pow(2).sum() / err.clamp_min(1e-20)))
                rows.append(dict(variant=variant, params_m=round(params, 2), precision=label,
                                 seconds=round(best, 3), rtf=round(best / args.seconds, 5),
                                 x_realtime=round(args.seconds / best, 1), sdr_vs_fp32_db=round(sdr, 1),
                                 peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2)
                                 if args.device.startswith("cuda") else None))
            except Exception as exc:  # one failing precision must not lose the other rows
                rows.append(dict(variant=variant, params_m=round(params, 2), precision=label, error=repr(exc)))
            print(rows[-1], flush=True)
        del model
    info = dict(device=dev_name, torch=torch.__version__, seconds=args.seconds, overlap=args.overlap,
                repeats=args.repeats, rows=rows)
    print(f"\n{dev_name}, torch {torch.__version__}, {args.seconds:g} s stereo 44.1 kHz per call, overlap "
          f"{args.overlap}, best of {args.repeats}")
    print("| model | params (M) | precision | s per call | RTF | × real time | SDR vs fp32 (dB) | peak GPU mem (GB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | {r['params_m']} | {r['precision']} | error: {r['error']} |||||")
        else:
            print(f"| {r['variant']} | {r['params_m']} | {r['precision']} | {r['seconds']} | {r['rtf']} | "
                  f"{r['x_realtime']} | {r['sdr_vs_fp32_db']} | {r['peak_mem_gb']} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(info, fh, indent=1)


if __name__ == "__main__":
    main()
