"""A held-out evaluation set of *real recordings* for benchmarks/separation.py (`--corpus` this folder).

The training corpus (pipeline.corpus) speaks with espeak-ng and Asterisk's US-English voice (Allison) over music
rendered from MIDI; a model that only beats the mixture on voices like those has not shown it works on people.
This set uses recordings of other people and of real music that no reelsplit model was trained on, all from
Debian packages (so a fresh machine can rebuild it; nothing is downloaded by this script):

- dialogue: Asterisk's prompts recorded by three voice talents never used for training: June (fr-CA, female,
  `asterisk-core-sounds-fr-wav`), Carlo (it-IT, male, `asterisk-core-sounds-it-wav`) and the ru-RU female voice
  (`asterisk-core-sounds-ru-wav`); consecutive prompts joined with 0.2-0.6 s pauses into lines of 4-11 s.
  (The es-MX prompts are Allison again, the training voice, so they are left out.)
- music: the five recorded tracks of `asterisk-moh-opsound-wav` (opsound.org, CC BY-SA), cut into 20 s pieces.
- effects: the corpus's held-out `eval/effects` clips (real desktop-theme recordings and synthesized sounds).

Limitation, stated with every result: Asterisk ships these as 8 kHz telephone recordings, so speech and music
here stop at 4 kHz; the mixtures are resampled to 48 kHz like any other input.

    apt-get install -y asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav \
        asterisk-moh-opsound-wav
    .venv/bin/python benchmarks/real_set.py benchmarks/.cache/real [--corpus benchmarks/.cache/corpus]
    .venv/bin/python benchmarks/separation.py --corpus benchmarks/.cache/real --mixtures 20
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
SOUNDS = Path("/usr/share/asterisk/sounds")
MOH = Path("/usr/share/asterisk/moh")
VOICES = {"fr_CA_f_June": "asterisk-core-sounds-fr-wav", "it_IT_m_Carlo": "asterisk-core-sounds-it-wav",
          "ru_RU_f_IvrvoiceRU": "asterisk-core-sounds-ru-wav"}
LINES_PER_VOICE = 8
MUSIC_PIECE_S = 20.0


def _speech_lines(voice_dir: Path, count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """`count` lines of 4-10 s, each made of consecutive prompts (sorted names) with short pauses."""
    prompts = sorted(p for p in voice_dir.rglob("*.wav") if p.stat().st_size > 8000)   # > 0.5 s at 8 kHz
    lines = []
    for _ in range(count):
        start = int(rng.integers(len(prompts)))
        parts, length, rate = [], 0, None
        goal = rng.uniform(4.0, 10.0)
        for path in prompts[start:] + prompts[:start]:
            x, r = sf.read(str(path), dtype="float32", always_2d=True)
            rate = rate or r
            if r != rate:
                continue
            pause = np.zeros((int(rng.uniform(0.2, 0.6) * rate), x.shape[1]), np.float32)
            parts += [x[:, :1], pause[:, :1]]
            length += x.shape[0] + pause.shape[0]
            if length >= goal * rate:
                break
        lines.append((np.concatenate(parts[:-1]), rate))
    return lines


def build(out: Path, corpus: Path, seed: int = 0) -> dict[str, int]:
    missing = [pkg for voice, pkg in VOICES.items() if not (SOUNDS / voice).is_dir()]
    if not MOH.is_dir() or not list(MOH.glob("*.wav")):
        missing.append("asterisk-moh-opsound-wav")
    if missing:
        raise SystemExit(f"real_set: missing recordings (Debian: apt-get install -y {' '.join(missing)})")
    effects = sorted((corpus / "eval" / "effects").glob("*.wav"))
    if not effects:
        raise SystemExit(f"real_set: no held-out effects under {corpus / 'eval' / 'effects'} "
                         f"(build the corpus: reelsplit corpus build {corpus} --minutes 10 --seed 0)")
    rng = np.random.default_rng(seed)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for source in ("dialogue", "music", "effects"):
        (tmp / "eval" / source).mkdir(parents=True)
    counts = {"dialogue": 0, "music": 0, "effects": 0}
    for voice in VOICES:
        for i, (line, rate) in enumerate(_speech_lines(SOUNDS / voice, LINES_PER_VOICE, rng)):
            sf.write(str(tmp / "eval" / "dialogue" / f"{voice}-{i:02d}.wav"), line, rate, subtype="PCM_16")
            counts["dialogue"] += 1
    for track in sorted(MOH.glob("*.wav")):
        x, rate = sf.read(str(track), dtype="float32", always_2d=True)
        piece = int(MUSIC_PIECE_S * rate)
        for i in range(x.shape[0] // piece):
            sf.write(str(tmp / "eval" / "music" / f"{track.stem}-{i:02d}.wav"), x[i * piece:(i + 1) * piece],
                     rate, subtype="PCM_16")
            counts["music"] += 1
    for path in effects:
        shutil.copyfile(path, tmp / "eval" / "effects" / path.name)
        counts["effects"] += 1
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder to write (eval/{dialogue,music,effects}/*.wav)")
    p.add_argument("--corpus", type=Path, default=ROOT / "benchmarks" / ".cache" / "corpus",
                   help="training corpus whose held-out eval/effects are reused")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    counts = build(args.out, args.corpus, args.seed)
    print(f"{args.out}: " + ", ".join(f"{n} {s} clips" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
