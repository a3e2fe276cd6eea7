"""Whisper base on 2 cores: one call at a time on 2 threads, against 2 calls at once on 1 thread each.

The recogniser windows of a reel's `blend` (pipeline.asr, as `reelsplit run` plans them), read from a delivered
title's DX and MIX stems, recognised in English both ways, alternating rounds; prints the seconds and whether the
texts are the same (benchmarks/RESULTS.md, "Two windows at once"):

    .venv/bin/reelsplit run benchmarks/.cache/inputs/reel_stereo_120s_seed0.mov --out /tmp/w --model dfn3
    .venv/bin/python benchmarks/asr_workers.py /tmp/w/reel_stereo_120s_seed0 2
"""
import glob
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from faster_whisper import WhisperModel  # noqa: E402

from pipeline import asr, asr_model, vad  # noqa: E402
from pipeline.readers import ArrayReader, Difference, Sum  # noqa: E402

reel = sys.argv[1]
dx, _ = sf.read(glob.glob(reel + "/*_DX.wav")[0], dtype="float32")
mix, _ = sf.read(glob.glob(reel + "/*_MIX.wav")[0], dtype="float32")
DX, MIX = ArrayReader(dx), ArrayReader(mix)
blend = Sum(DX, Difference(MIX, DX), 0.5)
regions = vad.speech_regions(DX, 48000)
windows = asr.plan_windows(regions, dx.shape[0] / 48000)
w = asr.dialogue_weights(2, "stereo")
audios = [asr.read_window(blend, 48000, p, w) for p in windows]
print(len(audios), "windows,", sum(a.size for a in audios) / 16000, "s")
path = asr_model.model_path(asr_model.resolve_asr_model(None))
models = {"2x1": WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2, num_workers=1),
          "1x2": WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1, num_workers=2)}

def one(model, audio):
    segs, info = model.transcribe(audio, language="en", beam_size=1, word_timestamps=True, vad_filter=False,
                                  condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segs)

got = {}
for rnd in range(int(sys.argv[2]) if len(sys.argv) > 2 else 2):
    for name, model in models.items():
        t0 = time.perf_counter()
        if name == "2x1":
            texts = [one(model, a) for a in audios]
        else:
            with ThreadPoolExecutor(2) as pool:
                texts = list(pool.map(lambda a: one(model, a), audios))
        print(rnd, name, round(time.perf_counter() - t0, 2), "s", len(" ".join(texts).split()), "words", flush=True)
        if rnd == 0:
            got[name] = texts
print("same text:", got["2x1"] == got["1x2"])
for a, b in zip(got["2x1"], got["1x2"]):
    if a != b:
        print("2x1:", a[:200]); print("1x2:", b[:200])
