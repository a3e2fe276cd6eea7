"""Build a seeded Demucs training corpus of separate dialogue / music / effects clips (48 kHz stereo 24-bit
WAVs, 4-20 s) from Debian-installable material only, plus an eval split whose voices, works and sounds never
occur in train. `reelsplit corpus build DIR [--minutes 10] [--seed 0]`."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile as sf
import soxr

from .. import ffmpeg
from ..errors import ConfigError, MediaError, OutputError
from . import demo, recorded
from .demo import db_to_gain

SR = 48000
SOURCES = ("dialogue", "music", "effects")
SPLITS = ("train", "eval")
VERSION = 1  # bump when rendering changes: files written by another version are rebuilt, not kept
MIN_S, MAX_S = 4.0, 20.0
LENGTHS = {"dialogue": (4.0, 14.0), "music": (6.0, 18.0), "effects": (5.0, 18.0)}  # target seconds per clip
MIN_EVAL_CLIPS = 3
PARSE_TIMEOUT = 30.0  # seconds for music21 to parse one work (in a child process, so it can be killed)
ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en")
THEME_DIRS = {"freedesktop": (Path("/usr/share/sounds/freedesktop/stereo"), "sound-theme-freedesktop"),
              "Yaru": (Path("/usr/share/sounds/Yaru/stereo"), "yaru-theme-sound")}
ASTERISK_EVERY = 4  # every 4th dialogue clip is made of Asterisk prompts, the others of espeak-ng lines
# language -> espeak-ng voices speaking it (those missing from the installed espeak-ng are dropped)
LANGS = {"en": ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                "en-gb-x-gbcwmd"), "fr": ("fr-fr", "fr-be", "fr-ch"), "de": ("de",), "es": ("es", "es-419"),
         "it": ("it",), "pt": ("pt", "pt-br"), "nl": ("nl",), "sv": ("sv",), "pl": ("pl",)}
SKIP_VARIANTS = {"fast", "Demonic", "UniRobot", "anikaRobot", "announcer", "Tweaky"}  # + robosoft*, see _variants
SENTENCES = {
    "en": demo.SENTENCES + (
        "Nobody leaves this room until I get an answer.", "It's late. We should have called it a night.",
        "Did you hear that? Something moved outside.", "I'm not asking you again.",
        "Put the gun down and step away from the car.", "She said she'd be here by nine.",
        "How long have you been standing there?", "Get in, we're leaving right now.",
        "I don't remember signing anything like that.", "Look at me. Look at me! It's going to be fine.",
        "The train leaves at six, with or without us.", "Well, that went better than expected.",
        "You have no idea what they're capable of.", "Turn left at the bridge, then keep going.",
        "Are you sure this is the right address?", "Tell him I said thank you.",
        "We found the boat, but there was nobody on it.", "Hold on. Say that again, slowly.",
        "I've waited twenty years for this moment.", "Why is the light still on upstairs?"),
    "fr": ("Je ne sais pas où il est allé.", "Tu aurais dû me le dire plus tôt.", "On n'a plus beaucoup de temps.",
           "Fermez la porte, s'il vous plaît.", "Qu'est-ce que tu fais ici à cette heure?"),
    "de": ("Ich habe dich überall gesucht.", "Das war nicht meine Idee.", "Mach bitte das Licht aus.",
           "Wir müssen sofort hier weg.", "Wo warst du gestern Abend?"),
    "es": ("No me mires así, yo no fui.", "Tenemos que irnos antes de que llegue.", "¿Dónde dejaste las llaves?",
           "Te lo dije mil veces.", "Esta noche no duerme nadie."),
    "it": ("Non è colpa mia, te lo giuro.", "Dove hai messo la lettera?", "Andiamo, prima che sia tardi.",
           "Non ho mai visto quell'uomo.", "Aspetta, c'è qualcuno alla porta."),
    "pt": ("Eu não acredito no que estou vendo.", "Precisamos sair daqui agora.", "Quem te contou isso?",
           "Ele prometeu que voltaria amanhã.", "Fique quieto e escute."),
    "nl": ("Ik weet niet waar hij is.", "Doe de deur dicht, alsjeblieft.", "We hebben geen tijd meer.",
           "Waarom heb je niets gezegd?", "Kom, we gaan naar huis."),
    "sv": ("Jag vet inte vart han tog vägen.", "Stäng dörren efter dig.", "Vi har inte mycket tid kvar.",
           "Varför sa du ingenting?", "Det var inte mitt fel."),
    "pl": ("Nie wiem, gdzie on poszedł.", "Zamknij drzwi, proszę.", "Nie mamy już czasu.",
           "Dlaczego nic nie powiedziałeś?", "Chodźmy, zanim będzie za późno."),
}
_WHO = ("The captain", "My brother", "Your friend", "The old man", "Nobody", "She", "He", "The doctor")
_DID = ("saw the car", "took the money", "found the letter", "left the lights on", "lost the keys",
        "called the police", "opened the window", "missed the train")
_WHEN = ("last night", "this morning", "an hour ago", "on Sunday", "before the storm", "at the station")
# General MIDI: melodic programs only (no orchestra hit 55, no FX 96-103, percussive 112-119, sound effects 120-127)
MELODIC = tuple(p for p in range(96) if p != 55) + tuple(range(104, 112))
ENSEMBLES = ((40, 41, 42, 43, 48, 49), (56, 57, 58, 60, 61, 65), (68, 69, 70, 71, 73, 74),
             (0, 1, 2, 4, 6, 7), (24, 25, 26, 27, 46), (16, 19, 20, 21, 52, 53))
MUSIC_SKIP = {"demos", "theoryExercises", "leadSheet"}  # music21 test files and chord-symbol sheets
EFFECT_KINDS = ("impacts", "rain", "wind", "footsteps", "car", "theme")  # primary kind, cycled per clip
BED_KINDS = ("roomtone", "rain", "wind")  # the second layer, under every primary
# Runs in a child process: a music21 score -> its notes as JSON (quarter-note onsets, lengths, MIDI keys).
_NOTES_PY = r"""
import json, sys
from music21 import converter, tempo
s = converter.parse(sys.argv[1])
if "Opus" in s.classes: s = s.scores[0]
bpm = [m.getQuarterBPM() for m in s.recurse().getElementsByClass(tempo.MetronomeMark)]
parts = []
for part in (s.parts or [s]):
    notes = [(float(n.offset), float(n.quarterLength), int(p.midi)) for n in part.stripTies().flatten().notes
             if n.quarterLength > 0 and "ChordSymbol" not in n.classes for p in n.pitches]
    if notes: parts.append(notes)
print(json.dumps({"bpm": next((b for b in bpm if b), None), "parts": parts}))
"""


@dataclass(frozen=True)
class CorpusSummary:
    """What a build left in `root`: clips and seconds per split ("train", "eval") and source."""

    root: Path
    counts: dict[str, dict[str, int]]
    seconds: dict[str, dict[str, float]]
    skipped: int  # clips that already existed (same seed and version) and were kept


@dataclass(frozen=True)
class _Clip:
    source: str
    split: str
    index: int
    seed: int
    seconds: float  # target length; dialogue ends up near it (whole lines)

    @property
    def rel(self) -> str:
        return f"{self.split}/{self.source}/{self.source}-{self.index:04d}.wav"


def _is_recorded(clip: _Clip, with_recorded: bool) -> bool:
    """Whether this clip speaks with recorded voices: every other train dialogue clip when they are asked for."""
    return with_recorded and clip.source == "dialogue" and clip.split == "train" and clip.index % 2 == 1


def _turn(clip: _Clip, period: int) -> int:
    """Clip index modulo `period`, eval shifted by half a period: kinds rotate evenly even in tiny builds."""
    return (clip.index + SPLITS.index(clip.split) * (period // 2)) % period


def _plan(sources: Iterable[str], minutes: float, eval_fraction: float, seed: int) -> list[_Clip]:
    """Clips to make: per source and split, seeded lengths until the minutes (at least a few clips) are met.
    Clip i of a (source, split) is the same whatever the minutes, so a bigger build extends a smaller one."""
    clips = []
    for s_i, source in enumerate(SOURCES):
        for p_i, split in enumerate(SPLITS):
            if source not in sources:
                continue
            goal = minutes * 60 * (1.0 if split == "train" else eval_fraction)
            least, total, i = 1 if split == "train" else MIN_EVAL_CLIPS, 0.0, 0
            while total < goal or i < least:
                rng = np.random.default_rng([seed, s_i, p_i, i])
                seconds = float(rng.uniform(*LENGTHS[source]))
                clips.append(_Clip(source, split, i, int(rng.integers(2**31)), seconds))
                total, i = total + clips[-1].seconds, i + 1
    return clips


# ---- the material on this machine, and its split ------------------------------------------------------
def _require(sources: Iterable[str], with_recorded: bool = False) -> None:
    """Raise MediaError naming the apt package when a source's material is missing."""
    if with_recorded and "dialogue" in sources:
        recorded.require()
    needs = {"dialogue": [("espeak-ng", "espeak-ng"), (ASTERISK_DIR, "asterisk-core-sounds-en-wav")],
             "music": [("fluidsynth", "fluidsynth"), (demo.SOUNDFONT, "fluid-soundfont-gm")],
             "effects": list(THEME_DIRS.values())}
    for source in sources:
        for need, package in needs[source]:
            if not (need.exists() if isinstance(need, Path) else shutil.which(need)):
                raise MediaError(f"{need} not found, needed for the {source} corpus "
                                 f"(Debian: apt-get install -y {package})")
    if "effects" in sources:
        ffmpeg.find_binary("ffmpeg")  # FfmpegError with the apt command, or REELSPLIT_FFMPEG honoured
    if "music" in sources and importlib.util.find_spec("music21") is None:
        raise MediaError("music21 is not installed in this Python, needed for the music corpus (pip install music21)")


def _split(units: Iterable, seed: int, salt: int, eval_fraction: float) -> dict[str, list]:
    """Seeded split of distinct units (voices, works, files) into train and eval; eval gets at least 2."""
    units = sorted(set(units))
    k = min(len(units) - 1, max(2, round(eval_fraction * len(units))))
    order = np.random.default_rng([seed, salt]).permutation(len(units))
    return {"eval": sorted(units[i] for i in order[:k]), "train": sorted(units[i] for i in order[k:])}


def _variants() -> list[str]:
    """espeak-ng voice variants ("" = the language's own voice), without robots, fast_test and the like."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, timeout=30).stdout
    names = [line.split(None, 4)[4].strip().removeprefix("!v/") for line in out.splitlines()[1:] if "!v/" in line]
    return [""] + [n for n in names if " " not in n and n not in SKIP_VARIANTS and not n.startswith("robosoft")]


def _work_key(rel: str) -> str:
    """The work a music21 corpus file belongs to: movements, chorale numbers and mass sections grouped."""
    parts = rel.split("/")
    if len(parts) >= 3:  # mozart/k155/movement1.mxl -> mozart/k155
        return "/".join(parts[:2])
    stem = parts[-1].rsplit(".", 1)[0]
    stem = re.sub(r"(\d)[a-c](?=$|[-_ ])", r"\1", re.sub(r"_(old|bak)$", "", stem))  # 03a / 03b: one piece
    if parts[0] == "bach":  # bwv244.3, bwv145-a -> bwv244, bwv145
        stem = re.split(r"[.-]", stem)[0]
    elif parts[0] == "palestrina":  # Credo_30_a, Agnus_II_30 -> mass 30
        stem = "mass_" + (re.findall(r"\d+", stem) or ["unnumbered"])[0]
    return f"{parts[0]}/{stem}"


def _works() -> dict[str, list[str]]:
    """Usable music21 corpus files by work: key -> corpus-relative paths. Byte-identical files (Palestrina has
    some under two mass numbers) join their works; .mxl/.krn files over 100 kB (whole Beethoven quartets,
    over 30 s to parse) are left out, as are test files and chord-symbol lead sheets."""
    root, parent, first, works = _music_root(), {}, {}, {}

    def top(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if (p.suffix not in (".mxl", ".xml", ".musicxml", ".krn") or rel.split("/")[0] in MUSIC_SKIP
                or p.suffix in (".mxl", ".krn") and p.stat().st_size > 100_000):
            continue
        key, digest = _work_key(rel), hashlib.sha1(p.read_bytes()).hexdigest()
        if digest in first:  # a copy: its work and the original's are one
            if top(key) != top(first[digest]):
                parent[top(key)] = top(first[digest])
            continue
        first[digest] = key
        works.setdefault(key, []).append(rel)
    merged: dict[str, list[str]] = {}
    for key, rels in works.items():
        merged.setdefault(top(key), []).extend(rels)
    return merged


def _music_root() -> Path:
    return Path(importlib.util.find_spec("music21").origin).parent / "corpus"


def _pools(sources: Iterable[str], seed: int, eval_fraction: float, with_recorded: bool = False) -> dict:
    """Everything a renderer draws from, split: unit kind -> split -> sorted units (plus "voices"; "recorded":
    the recorded voices' lines, train only)."""
    pools: dict = {}
    if "dialogue" in sources and with_recorded:
        pools["recorded"] = recorded.lines()
    if "dialogue" in sources:
        out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, timeout=30).stdout
        have = {line.split()[1] for line in out.splitlines()[1:] if line.split()}
        pools["voices"] = {lang: [v for v in voices if v in have] for lang, voices in LANGS.items()}
        pools["voices"] = {lang: v for lang, v in pools["voices"].items() if v}
        prompts = [str(p.relative_to(ASTERISK_DIR)) for p in ASTERISK_DIR.rglob("*.wav")
                   if p.parent.name != "silence" and 0.3 <= sf.info(p).duration <= 12.0]
        if not pools["voices"] or not prompts:
            raise MediaError("espeak-ng has none of the expected voices or the Asterisk prompts are empty "
                             "(Debian: apt-get install -y espeak-ng asterisk-core-sounds-en-wav)")
        pools["variants"] = _split(_variants(), seed, 1, eval_fraction)
        pools["prompts"] = _split(prompts, seed, 2, eval_fraction)
    if "music" in sources:
        works = _works()
        split = _split(works, seed, 3, eval_fraction)
        pools["works"] = {name: [(key, works[key]) for key in keys] for name, keys in split.items()}
    if "effects" in sources:  # audio-channel-* are spoken words ("front left"): speech, not effects
        files = [f"{name}/{p.name}" for name, (d, _) in THEME_DIRS.items() for p in d.glob("*.oga")
                 if not p.name.startswith("audio-channel-")]
        pools["sounds"] = _split(files, seed, 4, eval_fraction)
    return pools


# ---- dialogue ------------------------------------------------------------------------------------------
def _trim(x: np.ndarray) -> np.ndarray:
    """(samples,) from the first to the last sample above 2 % of the peak: silence trimmed."""
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return x[loud[0]: loud[-1] + 1] if len(loud) else x[:0]


def _assemble(next_line: Callable[[], tuple[np.ndarray, str]], target: float, rng: np.random.Generator
              ) -> tuple[np.ndarray, list[str]]:
    """Mono lines (samples,) joined by 0.15-0.8 s gaps until `target` s, and the labels of the lines used.
    At most 12 lines (the labels must fit the WAV comment) and MAX_S seconds; padded to MIN_S if short."""
    out, labels, n = [], [], 0
    while len(labels) < 12 and n < max(target, MIN_S) * SR:
        line, label = next_line()
        gap = np.zeros(int(rng.uniform(0.15, 0.8) * SR) if out else 0, np.float32)
        if n + len(gap) + len(line) > MAX_S * SR:
            if n >= MIN_S * SR:
                break
            line = line[: int(MAX_S * SR) - n - len(gap)]
        out += [gap, line]
        labels.append(label)
        n += len(gap) + len(line)
    audio = np.concatenate(out)
    return np.pad(audio, (0, max(0, int(MIN_S * SR) + 1 - n))), labels


def _recorded(clip: _Clip, pools: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Recorded lines, mono (samples,): consecutive Queen lines (a scene's exchange) three times in four, else
    one Hedgewars voice pack's exclamations."""
    everything: list[recorded.Line] = pools["recorded"]
    queen = [line for line in everything if line.speaker == "queen"]
    if rng.random() < 0.75:
        start = int(rng.integers(len(queen)))
        order = iter(queen[start:] + queen[:start])
    else:
        packs = sorted({line.speaker for line in everything} - {"queen"})
        pack = packs[int(rng.integers(len(packs)))]
        mine = [line for line in everything if line.speaker == pack]
        order = iter(mine[i] for i in rng.permutation(len(mine)))

    packages = set()

    def line() -> tuple[np.ndarray, str]:
        for item in order:
            x = _trim(recorded.read(item, SR))
            if len(x) >= recorded.MIN_LINE_S * SR:
                packages.add(item.package)
                return x, item.name
        raise MediaError("the recorded voices ran out of lines for one clip")

    mono, used = _assemble(line, clip.seconds, rng)
    return mono, {"generator": "recorded", "lines": used, "packages": sorted(packages)}


def _dialogue(clip: _Clip, pools: dict, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, dict]:
    """One speaker's lines (or a recorded scene's), mono panned within +-0.3 into (samples, 2)."""
    if _is_recorded(clip, "recorded" in pools):
        mono, meta = _recorded(clip, pools, rng)
    elif _turn(clip, ASTERISK_EVERY) == 0:  # one telephone-band speaker, 8 kHz prompts resampled to 48 kHz
        names = pools["prompts"][clip.split]

        def prompt() -> tuple[np.ndarray, str]:
            name = names[int(rng.integers(len(names)))]
            x, rate = sf.read(ASTERISK_DIR / name, dtype="float32", always_2d=True)
            return _trim(soxr.resample(x[:, 0], rate, SR)).astype(np.float32), name

        mono, used = _assemble(prompt, min(clip.seconds, 12.0), rng)
        meta = {"generator": "asterisk", "prompts": used}
    else:  # one espeak-ng character: a language voice + variant, pitch and rate kept for the whole clip
        variants = pools["variants"][clip.split]
        variant = variants[int(rng.integers(len(variants)))]
        langs = sorted(pools["voices"])
        lang = "en" if "en" in langs and rng.random() < 0.6 else langs[int(rng.integers(len(langs)))]
        voice = pools["voices"][lang][int(rng.integers(len(pools["voices"][lang])))]
        pitch, rate = int(rng.integers(20, 81)), int(rng.integers(120, 201))

        def line() -> tuple[np.ndarray, str]:
            if lang == "en" and rng.random() < 0.3:  # an assembled sentence
                text = " ".join(str(rng.choice(words)) for words in (_WHO, _DID, _WHEN)) + "."
            else:
                text = SENTENCES[lang][int(rng.integers(len(SENTENCES[lang])))]
            return demo.speak(text, voice + (f"+{variant}" if variant else ""), pitch, rate, SR, tmp), text

        mono, said = _assemble(line, clip.seconds, rng)
        meta = {"generator": "espeak-ng", "voice": voice, "variant": variant or "default", "language": lang,
                "pitch": pitch, "rate": rate, "text": said}
    return demo.pan(mono, rng.uniform(-0.3, 0.3))[:, :2], meta


# ---- music ---------------------------------------------------------------------------------------------
def _score_notes(path: Path) -> dict:
    """{"bpm": quarter bpm or None, "parts": [[(onset_q, length_q, midi key), ...], ...]} of a music21 work,
    parsed in a child process killed after PARSE_TIMEOUT seconds."""
    try:
        proc = subprocess.run([sys.executable, "-c", _NOTES_PY, str(path)], capture_output=True,
                              timeout=PARSE_TIMEOUT, stdin=subprocess.DEVNULL)
        data = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise MediaError(f"music21 could not parse {path.name}: {type(exc).__name__}", path) from exc
    if not data or not data["parts"]:
        raise MediaError(f"music21 found no notes in {path.name}", path)
    return data


def _excerpt_midi(data: dict, seconds: float, rng: np.random.Generator) -> tuple[bytes, dict]:
    """A standard MIDI file of `seconds` of a work's notes from a random onset (looped if too short): one
    random GM program, pan and reverb send per part, random tempo, transposition and velocities."""
    bpm = float(np.clip((data["bpm"] or rng.uniform(72, 108)) * rng.uniform(0.8, 1.25), 40, 180))
    span, notes = seconds * bpm / 60, [(*nt, k) for k, part in enumerate(data["parts"]) for nt in part]
    length = max(on + ql for on, ql, _, _ in notes)
    reps = int(span // length) + 1
    notes = [(on + r * length, ql, key, k) for r in range(reps) for on, ql, key, k in notes]
    starts = sorted({on for on, *_ in notes if on <= reps * length - span}) or [min(nt[0] for nt in notes)]
    q0 = starts[int(rng.integers(len(starts)))]
    pool = ENSEMBLES[int(rng.integers(len(ENSEMBLES)))] if rng.random() < 0.5 else MELODIC
    programs = [int(rng.choice(pool)) for _ in data["parts"]]
    channels = [c for c in range(16) if c != 9]  # channel 10 is GM percussion
    ev = [(0, b"\xff\x51\x03" + int(60e6 / bpm).to_bytes(3, "big"))]
    for k, prog in enumerate(programs):
        ch = channels[k % 15]
        ev += [(0, bytes([0xC0 | ch, prog])), (0, bytes([0xB0 | ch, 10, int(rng.integers(16, 112))])),
               (0, bytes([0xB0 | ch, 91, int(rng.integers(10, 90))]))]
    base, shift = rng.integers(60, 101, len(programs)), int(rng.integers(-3, 4))
    for on, ql, key, k in notes:
        if q0 <= on < q0 + span and 0 <= key + shift < 128:
            ch, t0 = channels[k % 15], round((on - q0) * 480)
            vel = int(np.clip(base[k] + rng.integers(-8, 9), 1, 127))
            ev += [(t0, bytes([0x90 | ch, key + shift, vel])),
                   (max(t0 + 1, round((on - q0 + ql) * 480) - 4), bytes([0x80 | ch, key + shift, 0]))]
    meta = {"programs": programs, "bpm": round(bpm, 1), "start_quarter": round(q0, 3), "transpose": shift}
    return demo.midi_bytes(ev, 480), meta


def _music(clip: _Clip, pools: dict, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, dict]:
    """An excerpt of a seeded work of the clip's split, rendered by fluidsynth (output capped)."""
    works, n, error = pools["works"][clip.split], int(clip.seconds * SR), None
    per_composer = Counter(key.split("/")[0] for key, _ in works)
    weight = np.array([per_composer[key.split("/")[0]] ** -0.5 for key, _ in works])  # Bach: 25 %, not 55 %
    for _ in range(5):  # a work that fails to parse (or comes out silent) gives way to another
        work, files = works[int(rng.choice(len(works), p=weight / weight.sum()))]
        rel = files[int(rng.integers(len(files)))]
        try:
            midi, meta = _excerpt_midi(_score_notes(_music_root() / rel), clip.seconds, rng)
        except MediaError as exc:
            error = exc
            continue
        (tmp / "music.mid").write_bytes(midi)
        audio = demo.render_music(tmp / "music.mid", n, SR)
        audio[-int(0.03 * SR):] *= np.linspace(1, 0, int(0.03 * SR), dtype=np.float32)[:, None]  # no click
        if np.abs(audio).max() > 1e-4:
            return audio, {"work": work, "file": rel, **meta}
        error = MediaError(f"{rel} rendered silent")
    raise MediaError(f"no usable music21 work for {clip.rel}: {error}")


# ---- effects -------------------------------------------------------------------------------------------
def _bp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """`x` (samples, ...) band-passed along axis 0 between `lo` and `hi` Hz (Butterworth, order 2 each side)."""
    from scipy import signal
    return signal.sosfilt(signal.butter(2, [lo, min(hi, 0.45 * SR)], "bandpass", fs=SR, output="sos"), x, axis=0)


def _env(rng: np.random.Generator, n: int, points: int, lo: float, hi: float) -> np.ndarray:
    """(n,) a slowly varying random gain: `points` random values, linearly interpolated."""
    return np.interp(np.arange(n), np.linspace(0, n - 1, max(points, 2)), rng.uniform(lo, hi, max(points, 2)))


def _burst(rng: np.random.Generator, seconds: float, lo: float, hi: float, tau: float) -> np.ndarray:
    """(samples,) one short hit: band-passed noise with an exponential decay of `tau` seconds, peak 1."""
    t = np.arange(int(seconds * SR)) / SR
    x = _bp(rng.standard_normal(t.size), lo, hi) * np.exp(-t / tau)
    return x / np.abs(x).max()


def _scatter(n: int, hits: list[tuple[float, np.ndarray, float, float]]) -> np.ndarray:
    """(n, 2) mono hits (start_s, samples, gain, pan in [-1, 1]) placed with equal-power pans."""
    out = np.zeros((n, 2))
    for start, x, gain, pan in hits:
        i = int(start * SR)
        if 0 <= i < n:
            seg = x[: n - i] * gain
            out[i: i + len(seg)] += seg[:, None] * [np.cos((pan + 1) * np.pi / 4), np.sin((pan + 1) * np.pi / 4)]
    return out


@lru_cache(maxsize=None)
def _sound(rel: str) -> np.ndarray:
    """(samples, 2) float32 at 48 kHz: a desktop theme sound ("Yaru/bell.oga") decoded by ffmpeg."""
    path = THEME_DIRS[rel.split("/")[0]][0] / rel.split("/")[1]
    proc = ffmpeg.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "f32le", "-ac", "2",
                       "-ar", str(SR), "pipe:1"], timeout=60, path=path)
    return np.frombuffer(proc.stdout, "<f4").reshape(-1, 2)


def _effect(kind: str, rng: np.random.Generator, n: int, sounds: list[str], used: list[str]) -> np.ndarray:
    """(n, 2) one effect layer of `kind`; theme sounds drawn from `sounds` are appended to `used`."""
    secs, noise = n / SR, lambda: rng.standard_normal((n, 2))
    if kind == "impacts":  # demo.py's door slams and whooshes over room tone, its rear pair folded in
        fx = demo.render_effects(rng, n, SR)
        return fx[:, :2] + db_to_gain(-3) * fx[:, 2:]
    if kind == "roomtone":  # air and a mains hum
        mains = rng.choice([50, 60])
        hum = sum(np.sin(2 * np.pi * mains * h * np.arange(n) / SR) / h**2 for h in (1, 2, 3))
        return _bp(noise(), 40, rng.uniform(800, 4000)) + rng.uniform(0, 0.3) * hum[:, None]
    if kind == "rain":  # a hiss bed plus droplet clicks (band-passed noise ticks, 20-70 a second)
        bed = _bp(noise(), 400, 9000) * _env(rng, n, int(secs), 0.5, 1.0)[:, None]
        drops = [_burst(rng, 0.03, rng.uniform(800, 2500), rng.uniform(4000, 12000), rng.uniform(0.002, 0.008))
                 for _ in range(8)]
        hits = [(t, drops[int(rng.integers(8))], db_to_gain(rng.uniform(-24, 0)), rng.uniform(-1, 1))
                for t in rng.uniform(0, secs, int(rng.uniform(20, 70) * secs))]
        return 0.3 * bed / np.abs(bed).max() + _scatter(n, hits)
    if kind == "wind":  # three noise bands, each with its own gusts
        return sum(_bp(noise(), lo, hi) * (_env(rng, n, int(secs * rng.uniform(0.5, 2)), 0, 1) ** 2)[:, None]
                   for lo, hi in ((60, 300), (300, 900), (900, 2500)))
    if kind == "footsteps":  # heel + toe bursts in a walking rhythm, surface from soft to gravel
        lo, hi, tau = [(60, 1200, 0.03), (120, 4000, 0.012), (300, 7000, 0.05)][int(rng.integers(3))]
        steps = np.arange(rng.uniform(0, 0.6), secs - 0.3, rng.uniform(0.42, 0.7))
        steps += rng.normal(0, 0.015, len(steps))
        pans = np.linspace(*rng.uniform(-0.8, 0.8, 2), len(steps))  # walking across, nearer or farther
        gains = np.linspace(*rng.uniform(-12, 0, 2), len(steps))
        heel = [(t, _burst(rng, 0.2, lo, hi, tau), db_to_gain(g), p) for t, g, p in zip(steps, gains, pans)]
        toe = [(t + rng.uniform(0.05, 0.09), _burst(rng, 0.1, lo * 1.5, hi, tau * 0.6), db_to_gain(g - 6), p)
               for t, g, p in zip(steps, gains, pans)]
        return _scatter(n, heel + toe)
    if kind == "car":  # engine harmonics + tyre noise, Doppler-shifted, 1/distance, panned as it passes
        t, v, d0 = np.arange(n) / SR, rng.uniform(8, 30), rng.uniform(3, 15)
        way = rng.choice([-1, 1])
        x = way * v * (t - rng.uniform(0.3, 0.7) * secs)  # metres along the road; the listener is d0 off it
        dist = np.hypot(x, d0)
        phase = 2 * np.pi * np.cumsum(rng.uniform(25, 50) * 343 / (343 + way * v * x / dist)) / SR  # Doppler
        engine = sum(np.sin(h * phase + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 9))
        tyres = _bp(rng.standard_normal(n), 150, 2500)
        mono = (engine / 2 + rng.uniform(0.5, 2) * tyres / np.abs(tyres).max()) * (d0 / dist) ** 1.3
        return demo.pan(mono, 0.9 * x / dist)[:, :2]
    if kind == "theme":  # 2-5 desktop sounds, re-pitched 0.8-1.25x, at random times
        out = 0.01 * _bp(noise(), 60, 4000)
        for _ in range(int(rng.integers(2, 6))):
            used.append(sounds[int(rng.integers(len(sounds)))])
            x = soxr.resample(_sound(used[-1]), SR * rng.uniform(0.8, 1.25), SR)[:n]
            at, pan = int(rng.uniform(0, max(secs - len(x) / SR, 0.1)) * SR), rng.uniform(-0.8, 0.8)
            seg = x[: n - at] * db_to_gain(rng.uniform(-12, 0)) * [1 - max(pan, 0), 1 + min(pan, 0)]
            out[at: at + len(seg)] += seg
        return out
    raise ValueError(kind)


def _effects(clip: _Clip, pools: dict, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, dict]:
    """A primary effect (kinds rotate clip by clip) over a bed 6-24 dB under it in RMS."""
    n, used = int(clip.seconds * SR), []
    kinds = [EFFECT_KINDS[_turn(clip, len(EFFECT_KINDS))]]
    out = _effect(kinds[0], rng, n, pools["sounds"][clip.split], used)
    kinds.append(str(rng.choice([k for k in BED_KINDS if k != kinds[0]])))  # always a bed: no digital silence
    bed = _effect(kinds[1], rng, n, [], used)
    rms = lambda a: float(np.sqrt(np.mean(np.square(a)))) or 1e-12  # noqa: E731
    out = out + bed * (rms(out) * db_to_gain(rng.uniform(-24, -6)) / rms(bed))
    return out, {"kinds": kinds, "sounds": used}


RENDERERS = {"dialogue": _dialogue, "music": _music, "effects": _effects}


# ---- files ---------------------------------------------------------------------------------------------
def _render(clip: _Clip, pools: dict, root: Path) -> dict:
    """Render one clip, peak-normalise it to -6..-1 dBFS and write it atomically; return its manifest entry."""
    rng = np.random.default_rng(clip.seed)
    with tempfile.TemporaryDirectory(prefix="reelsplit-corpus-") as tmp:
        audio, meta = RENDERERS[clip.source](clip, pools, rng, Path(tmp))
    peak = float(rng.uniform(-6, -1))
    audio = (audio * (db_to_gain(peak) / max(float(np.abs(audio).max()), 1e-12))).astype(np.float32)
    meta = {**meta, "version": VERSION, "seed": clip.seed, "peak_dbfs": round(peak, 2)}
    comment = json.dumps(meta, sort_keys=True, ensure_ascii=True)
    if len(comment) > 2000:  # libsndfile silently drops longer strings
        raise OutputError(f"the manifest entry of {clip.rel} is too long for a WAV comment ({len(comment)} > 2000)")
    path, part = root / clip.rel, (root / clip.rel).with_name(f".{clip.source}-{clip.index:04d}.wav.part")
    try:  # the WAV's comment carries its manifest entry, so a resumed build can list files it did not make
        with sf.SoundFile(part, "w", SR, 2, "PCM_24", format="WAV") as f:  # no PEAK chunk: no timestamp
            f.comment = comment
            f.write(audio)
        os.replace(part, path)
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"cannot write {clip.rel}: {exc}", path) from exc
    finally:
        part.unlink(missing_ok=True)
    return {**meta, "seconds": round(len(audio) / SR, 3)}


def _existing(path: Path, clip: _Clip, with_recorded: bool = False) -> dict | None:
    """The manifest entry of an already built clip, or None if it is missing, from another seed/version, or
    spoken by the other kind of voice (recorded or not) than this build asks for."""
    try:
        with sf.SoundFile(path) as f:
            meta, frames = json.loads(f.comment or "{}"), f.frames
    except (OSError, RuntimeError, ValueError):
        return None
    ok = (meta.get("seed") == clip.seed and meta.get("version") == VERSION
          and (meta.get("generator") == "recorded") == _is_recorded(clip, with_recorded))
    return {**meta, "seconds": round(frames / SR, 3)} if ok else None


def _write_manifest(root: Path, manifest: dict) -> None:
    """root/manifest.json, written under a temporary name and renamed."""
    part = root / ".manifest.json.part"
    try:
        text = json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True)  # sorted: reruns match
        part.write_text(text + "\n", encoding="utf-8")
        os.replace(part, root / "manifest.json")
    except OSError as exc:
        raise OutputError(f"cannot write the manifest: {exc.strerror}", root / "manifest.json") from exc
    finally:
        part.unlink(missing_ok=True)


def build_corpus(root: Path, *, minutes: float = 10.0, eval_fraction: float = 0.2, seed: int = 0,
                 sources: Iterable[str] = SOURCES, progress: Callable[[str], None] | None = None,
                 recorded_voices: bool = False) -> CorpusSummary:
    """Build (or resume) the corpus under `root`: {train,eval}/{dialogue,music,effects}/*.wav and manifest.json.

    `minutes` of audio per source in train; eval gets `eval_fraction` of that, at least MIN_EVAL_CLIPS clips.
    Clips are 48 kHz stereo 24-bit PCM, 4-20 s, peaks at -6..-1 dBFS. Held out (seeded, from `seed` alone):
    espeak-ng variants and Asterisk prompt files (dialogue), music21 works (music), theme sound files
    (effects; synthesized layers differ by seed). Existing clips of the same seed and version are kept.
    `recorded_voices`: every other train dialogue clip speaks with people's recorded voices (pipeline.training.
    recorded: Debian packages, train only, never the voices the benchmarks test on).
    """
    sources = tuple(s for s in SOURCES if s in set(sources))
    if not 0 < minutes <= 10_000 or not 0 < eval_fraction < 1 or not sources:
        raise ConfigError(f"corpus: need 0 < minutes <= 10000 (got {minutes}), 0 < eval_fraction < 1 "
                          f"(got {eval_fraction}) and sources from {', '.join(SOURCES)}")
    _require(sources, recorded_voices)
    root, say = Path(root), progress or (lambda _: None)
    try:
        for split in SPLITS:
            for source in sources:
                (root / split / source).mkdir(parents=True, exist_ok=True)
                for stale in (root / split / source).glob(".*.part"):  # left by a killed build
                    stale.unlink()
    except OSError as exc:
        raise OutputError(f"cannot prepare {root}: {exc.strerror}", root) from exc
    clips, pools = _plan(sources, minutes, eval_fraction, seed), _pools(sources, seed, eval_fraction, recorded_voices)
    entries = {c.rel: e for c in clips if (e := _existing(root / c.rel, c, "recorded" in pools))}
    todo = [c for c in clips if c.rel not in entries]
    if entries:
        say(f"{len(entries)} of {len(clips)} clips already built")
    with ThreadPoolExecutor(2) as pool:
        futures = {pool.submit(_render, c, pools, root): c for c in todo}
        try:
            for k, fut in enumerate(as_completed(futures), 1):
                entries[futures[fut].rel] = fut.result()
                say(f"[{k}/{len(todo)}] {futures[fut].rel} ({entries[futures[fut].rel]['seconds']:.1f} s)")
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    held_out = {"espeak_variants": pools.get("variants", {}).get("eval"),
                "asterisk_prompts": pools.get("prompts", {}).get("eval"),
                "music_works": [key for key, _ in pools.get("works", {}).get("eval", [])],
                "sounds": pools.get("sounds", {}).get("eval")}
    manifest = {"version": VERSION, "seed": seed, "minutes": minutes, "eval_fraction": eval_fraction,
                "sources": list(sources), "sample_rate": SR,
                "held_out": {k: v for k, v in held_out.items() if v},
                "clips": [{"path": c.rel, "split": c.split, "source": c.source, **entries[c.rel]} for c in clips]}
    if "recorded" in pools:  # which packages, their licences, and the test voices kept out
        manifest["recorded_voices"] = {"packages": recorded.PACKAGES, "split": "train",
                                       "never_used": list(recorded.HELD_OUT_PACKAGES)}
    _write_manifest(root, manifest)
    counts = {s: {src: 0 for src in sources} for s in SPLITS}
    seconds = {s: {src: 0.0 for src in sources} for s in SPLITS}
    for c in clips:
        counts[c.split][c.source] += 1
        seconds[c.split][c.source] = round(seconds[c.split][c.source] + entries[c.rel]["seconds"], 3)
    return CorpusSummary(root, counts, seconds, len(clips) - len(todo))


def format_summary(summary: CorpusSummary) -> str:
    """The summary as a small text table: split, source, clips, minutes."""
    rows = [f"{'split':6} {'source':9} {'clips':>6} {'minutes':>8}"]
    rows += [f"{split:6} {src:9} {n:6d} {summary.seconds[split][src] / 60:8.2f}"
             for split in SPLITS for src, n in summary.counts[split].items()]
    rows.append(f"{summary.skipped} clips were already built; manifest: {summary.root / 'manifest.json'}")
    return "\n".join(rows)
