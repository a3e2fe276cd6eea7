"""Word error rate of reelsplit's speech recognition on real recordings with known words, and its time.

Speech: Asterisk's US-English prompts (`asterisk-core-sounds-en`, a recorded voice talent; the G.722 files of
`asterisk-core-sounds-en-g722` are 16 kHz wideband and used when installed, else the 8 kHz WAVs), with their texts
from the package's `core-sounds-en.txt` (prompts of three words or more, none with bracketed notes). Each clip lays
prompts end to end with 0.4-1.5 s pauses, over the project's music and effects beds (pipeline.training.demo's
render_sources: fluidsynth-rendered music and synthesized effects, seeded), the dialogue at -3..+6 dB against the
bed. The prompts are split by a hash of their names into dev (about a quarter: used to choose the input) and test
(reported); no prompt is in both.

Ways, each recognised by pipeline.asr.transcribe with the bundled Whisper base (greedy, int8, all cores):
- clean: the speech alone (its own VAD regions) — the floor;
- mix: the mixture, over the speech regions of reelsplit's DX;
- dx: reelsplit's DX (bundled DFN3, the default model, block by block as `reelsplit run` makes it);
- blend: the DX with the M&E estimate put back 6 dB down (the mix with M&E subtracted less aggressively);
- dx+mix: each window recognised in both, the more confident one kept (asr.transcribe with two readers).
WER is corpus-level (errors / reference words) after normalising case, punctuation and number words (jiwer).
ASR seconds are per minute of audio (the whole clip, speech and pauses), median over clips, after a warm-up.

    apt-get install -y asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722
    .venv/bin/python benchmarks/asr.py --split dev --clips 4           # choose the input
    .venv/bin/python benchmarks/asr.py --split test --clips 8          # report
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BenchmarkError, add_common_args, main_guard, markdown_table, note, print_header, write_csv  # noqa: E402

RATE = 48_000
PROMPTS = Path("/usr/share/asterisk/sounds/en")
TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
WAYS = ("clean", "mix", "dx", "blend", "dx+mix")
BLEND_DB = -6.0     # "blend": the DX with the M&E estimate (mix − DX) put back this far down


@dataclass(frozen=True)
class Prompt:
    name: str
    path: Path
    text: str


@dataclass(frozen=True)
class Clip:
    speech: np.ndarray    # (n, 2) float32 at RATE
    bed: np.ndarray       # (n, 2)
    text: str             # the prompts' texts in order

    @property
    def mix(self) -> np.ndarray:
        return self.speech + self.bed


def split_of(name: str) -> str:
    return "dev" if hashlib.sha256(name.encode()).hexdigest()[0] in "0123" else "test"


def prompts(split: str) -> list[Prompt]:
    """The prompts of `split` that have a text of 3+ words (no bracketed notes) and a recording."""
    if not TEXTS.is_file():
        raise BenchmarkError(f"{TEXTS} not found (apt-get install -y asterisk-core-sounds-en)")
    found = []
    for line in gzip.open(TEXTS, "rt", encoding="utf-8", errors="replace"):
        m = re.match(r"^([\w/-]+):\s+(.+)$", line.strip())
        if not m or "[" in m[2] or len(m[2].split()) < 3 or split_of(m[1]) != split:
            continue
        for suffix in (".g722", ".wav"):
            if (PROMPTS / f"{m[1]}{suffix}").is_file():
                found.append(Prompt(m[1], PROMPTS / f"{m[1]}{suffix}", m[2]))
                break
    if not found:
        raise BenchmarkError(f"no recorded prompts under {PROMPTS} (apt-get install -y asterisk-core-sounds-en-wav)")
    return found


def decode(path: Path) -> np.ndarray:
    """A recording as float32 mono at RATE (ffmpeg: G.722 and WAV alike)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-ac", "1", "-ar", str(RATE),
                          "-f", "f32le", "-"], capture_output=True, check=True, timeout=60)
    return np.frombuffer(out.stdout, np.float32).copy()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def make_clip(pool: list[Prompt], seconds: float, seed: int) -> Clip:
    """Prompts from `pool` (in a seeded order) end to end with pauses over a seeded music + effects bed."""
    from pipeline.training.demo import render_sources

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    speech, texts, t = np.zeros(n, np.float32), [], int(rng.uniform(0.5, 1.5) * RATE)
    for k in rng.permutation(len(pool)):
        if t > n - 2 * RATE:
            break
        x = decode(pool[k].path)
        if t + x.size > n - RATE // 2:    # does not fit in what is left: another may
            continue
        speech[t:t + x.size] = x / _rms(x)
        texts.append(pool[k].text)
        t += x.size + int(rng.uniform(0.4, 1.5) * RATE)
    _, music, effects, _ = render_sources(seconds, RATE, seed=seed)
    bed = music[:n] + effects[:n, :2] + 0.7 * effects[:n, 2:4]
    active = np.abs(speech) > 0
    level = 10 ** (rng.uniform(-3.0, 6.0) / 20) * _rms(bed) / _rms(speech[active])
    stereo = np.repeat((speech * level)[:, None], 2, axis=1)
    scale = 10 ** (-3 / 20) / max(float(np.abs(stereo + bed).max()), 1e-9)
    return Clip((stereo * scale).astype(np.float32), (bed * scale).astype(np.float32), " ".join(texts))


def normalise(text: str) -> str:
    text = text.lower().replace("#", " pound ").replace("*", " star ").replace("-", " ")
    words = re.sub(r"[^\w' ]+", " ", text).split()
    return " ".join(NUMBERS.get(w, w) for w in words)


def dfn3_dx(mix: np.ndarray) -> np.ndarray:
    """reelsplit's DX of a stereo mix: the bundled DFN3, block by block through spill files (no clean-up)."""
    from pipeline.config import SeparationSettings
    from pipeline.layout import LAYOUTS
    from pipeline.models import ModelSpec
    from pipeline.readers import ArrayReader, Workspace
    from pipeline.separate import load_separator

    sep = load_separator(ModelSpec("dfn3", "dfn3", "bundled"), SeparationSettings())
    with tempfile.TemporaryDirectory() as folder, Workspace(Path(folder)) as workspace:
        dx = sep.separate(ArrayReader(mix), RATE, LAYOUTS["stereo"], workspace).dx
        return dx.read(0, dx.frames)


def recognise(ways: dict, recogniser, regions, options) -> tuple[str, float]:
    from pipeline import asr
    from pipeline.readers import ArrayReader

    readers = {k: ArrayReader(v) for k, v in ways.items()}
    t0 = time.perf_counter()
    got = asr.transcribe(readers, RATE, regions, recogniser, layout="stereo", options=options)
    return " ".join(line.text for line in got.lines), time.perf_counter() - t0


def measure(clips: list[Clip], recogniser, options, ways=WAYS, blend_db: float = BLEND_DB
            ) -> tuple[dict, dict, list[dict]]:
    """Per way: hypotheses and ASR seconds per clip; separation seconds per clip; per-clip rows."""
    from pipeline import vad

    hyps = {w: [] for w in ways}
    secs = {w: [] for w in (*ways, "separate")}
    rows = []
    for i, clip in enumerate(clips):
        t0 = time.perf_counter()
        dx = dfn3_dx(clip.mix)
        secs["separate"].append(time.perf_counter() - t0)
        dx_regions = vad.speech_regions(dx, RATE)
        blend = dx + np.float32(10 ** (blend_db / 20)) * (clip.mix - dx)
        inputs = {"clean": ({"clean": clip.speech}, vad.speech_regions(clip.speech, RATE)),
                  "mix": ({"mix": clip.mix}, dx_regions), "dx": ({"dx": dx}, dx_regions),
                  "blend": ({"blend": blend}, dx_regions), "dx+mix": ({"dx": dx, "mix": clip.mix}, dx_regions)}
        for way, (audio, regions) in ((w, inputs[w]) for w in ways):
            text, s = recognise(audio, recogniser, regions, options)
            hyps[way].append(text)
            secs[way].append(s)
            rows.append({"clip": i, "way": way, "wer": wer([clip.text], [text]), "asr_s": s})
        note(f"clip {i}: " + ", ".join(f"{w} {r['wer'] * 100:.0f}%" for w, r in zip(ways, rows[-len(ways):])))
    return hyps, secs, rows


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    return jiwer.wer([normalise(r) for r in refs], [normalise(h) or "<empty>" for h in hyps])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default=None, help="--asr-model (default the bundled whisper-base)")
    parser.add_argument("--beam", type=int, default=1, help="beam size (default 1: greedy, as reelsplit runs)")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS), help="inputs to measure (all)")
    parser.add_argument("--blend-db", type=float, default=BLEND_DB, help=f"blend: M&E level (default {BLEND_DB})")
    add_common_args(parser)
    args = parser.parse_args()
    from pipeline.asr_model import load_recogniser, resolve_asr_model

    m = print_header(f"Speech recognition: WER on the {args.split} split (`benchmarks/asr.py`)")
    pool = prompts(args.split)
    clips = [make_clip(pool, args.seconds, seed=args.seed * 1000 + i + (500 if args.split == "test" else 0))
             for i in range(args.clips)]
    recogniser = load_recogniser(resolve_asr_model(args.model))
    from pipeline import asr
    from pipeline.readers import ArrayReader
    asr.transcribe(ArrayReader(clips[0].speech[:5 * RATE]), RATE, [(0.5, 4.5)], recogniser)   # warm-up
    hyps, secs, rows = measure(clips, recogniser, asr.AsrOptions(beam_size=args.beam), args.ways, args.blend_db)
    refs = [c.text for c in clips]
    minutes = [c.speech.shape[0] / RATE / 60 for c in clips]
    table = [{"way": w, "wer": wer(refs, hyps[w]) * 100, "words": sum(len(normalise(r).split()) for r in refs),
              "s_per_min": statistics.median(s / mn for s, mn in zip(secs[w], minutes))} for w in args.ways]
    sep = statistics.median(s / mn for s, mn in zip(secs["separate"], minutes))
    print(f"{len(clips)} clips of {args.seconds:.0f} s, {len(pool)} prompts in the {args.split} split; recogniser "
          f"{recogniser.label}, {recogniser.threads} threads, beam {args.beam}, blend: M&E at {args.blend_db:g} dB; DFN3 separation {sep:.1f} s per minute of audio\n")
    print(markdown_table(table, [("way", "input", ""), ("wer", "WER %", ".1f"), ("words", "reference words", "d"),
                                 ("s_per_min", "ASR s per min of audio", ".1f")]))
    if args.csv:
        write_csv(args.csv, rows, m)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
