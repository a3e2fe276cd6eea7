"""A held-out evaluation set of *real recordings* for benchmarks/separation.py (`--corpus` this folder).

The training corpus (pipeline.training.corpus) speaks with espeak-ng and Asterisk's US-English voice (Allison) over
music rendered from MIDI; a model that only beats the mixture on voices like those has not shown it works on people.
These sets use recordings of other people and of produced music that no reelsplit model was trained on, all
from Debian packages (so a fresh machine can rebuild them; nothing is downloaded by this script). Two kinds:

`--kind fullband` (44.1/48 kHz):
- dialogue: KTuberling's spoken words (`ktuberling-data`), one speaker per language; the nine languages whose
  recordings are all at 44.1 kHz or more (da, de, el, en, lt, nn, ru, sl, uk), 4 lines each. Isolated words,
  not sentences: consecutive words joined with 0.2-0.6 s pauses into lines of 4-11 s.
- music: the stereo soundtrack of Extreme Tux Racer (`extremetuxracer-data`: four composers, produced tracks, not
  MIDI renders), tracks longer than 20 s cut into 20-s pieces.

`--kind telephone` (8 kHz: speech and music stop at 4 kHz):
- dialogue: Asterisk's prompts recorded by three voice talents never used for training: June (fr-CA, female,
  `asterisk-core-sounds-fr-wav`), Carlo (it-IT, male, `asterisk-core-sounds-it-wav`) and the ru-RU female voice
  (`asterisk-core-sounds-ru-wav`), 8 lines each. (The es-MX prompts are Allison again, the training voice.)
- music: the five recorded tracks of `asterisk-moh-opsound-wav` (opsound.org), cut into 20-s pieces.

Both: effects are the corpus's held-out `eval/effects` clips (real desktop-theme recordings and synthesized
sounds); the mixtures are resampled to 48 kHz like any other input.

    apt-get install -y ktuberling-data extremetuxracer-data        # fullband
    apt-get install -y asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav \
        asterisk-moh-opsound-wav                                    # telephone
    .venv/bin/python benchmarks/real_set.py benchmarks/.cache/real-fullband --kind fullband
    .venv/bin/python benchmarks/separation.py --corpus benchmarks/.cache/real-fullband --mixtures 20
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
KTUBERLING = Path("/usr/share/ktuberling/sounds")
ETR_MUSIC = Path("/usr/share/games/etr/music")
# kind -> (dialogue folders with the apt package that ships them, lines per speaker, music files, music package)
KINDS = {
    "telephone": ({SOUNDS / v: "asterisk-core-sounds-" + v[:2] + "-wav"
                   for v in ("fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU")}, 8, MOH, "*.wav",
                  "asterisk-moh-opsound-wav"),
    "fullband": ({KTUBERLING / lang: "ktuberling-data"
                  for lang in ("da", "de", "el", "en", "lt", "nn", "ru", "sl", "uk")}, 4, ETR_MUSIC, "*.ogg",
                 "extremetuxracer-data"),
}
MUSIC_PIECE_S = 20.0


def _speech_lines(voice_dir: Path, count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """`count` lines of 4-11 s, each made of consecutive prompts (sorted names, over 0.5 s) with pauses."""
    prompts = sorted(p for p in voice_dir.rglob("*")
                     if p.suffix in (".wav", ".ogg", ".opus") and sf.info(str(p)).duration > 0.5)
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
            parts += [x.mean(axis=1, keepdims=True), pause[:, :1]]
            length += x.shape[0] + pause.shape[0]
            if length >= goal * rate:
                break
        lines.append((np.concatenate(parts[:-1]), rate))
    return lines


def build(out: Path, corpus: Path, kind: str = "fullband", seed: int = 0) -> dict[str, int]:
    voices, lines_per_voice, music_dir, music_glob, music_pkg = KINDS[kind]
    missing = sorted({pkg for folder, pkg in voices.items() if not folder.is_dir()})
    if not music_dir.is_dir() or not list(music_dir.glob(music_glob)):
        missing.append(music_pkg)
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
    for folder in voices:
        for i, (line, rate) in enumerate(_speech_lines(folder, lines_per_voice, rng)):
            sf.write(str(tmp / "eval" / "dialogue" / f"{folder.name}-{i:02d}.wav"), line, rate, subtype="PCM_16")
            counts["dialogue"] += 1
    for track in sorted(music_dir.glob(music_glob)):
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
    p.add_argument("--kind", choices=sorted(KINDS), default="fullband")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    counts = build(args.out, args.corpus, args.kind, args.seed)
    print(f"{args.out}: " + ", ".join(f"{n} {s} clips" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
