"""The deliverable's audio tracks, in one of two structures (`output_tracks`):

- `interleaved` (the default): the source's tracks of the master copied, then each delivered stem as one track
  in the program's layout (a 5.1 stem = one 6-channel track), the fold-down's stems after them, then the
  source's other tracks, copied;
- `source`: the source's audio tracks copied in the file's order, then, for each stem, the master's own track
  structure: six mono tracks give each stem as six mono tracks ("DX L" … "DX Rs"), eight (5.1 + Lt/Rt) as eight
  whose last two are that stem of the Lt/Rt program, one 5.1 stream as one 6-channel track. A track is made of
  channels picked from the delivered broadcast WAVs (`remux.Track.picks`); channels the track map marks unused
  have no stem, so they appear only in the copied originals.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .config import OUTPUT_TRACKS
from .master import Master
from .media import AudioStream, MediaInfo
from .remux import Track

NO_LANGUAGE = "zxx"      # ISO 639-2 "no linguistic content": M&E, MX and FX
STEMS = ("MIX", "DX", "ME", "MX", "FX")
INTERLEAVED_TITLES = {"DX": "DX dialogue", "ME": "M&E", "MX": "MX music", "FX": "FX effects"}
SOURCE_TITLES = {"MIX": "Mix", "DX": "DX", "ME": "M&E", "MX": "MX", "FX": "FX"}
# ffmpeg's channel names for a stereo fold-down's channels: "stereo downmix left/right" (DL, DR), so that one
# track holding a surround program and its Lt/Rt names no channel twice.
FOLDDOWN_NAMES = ("DL", "DR")


@dataclass(frozen=True)
class Program:
    """One separated program of a master (the master itself, or its Lt/Rt fold-down) and its delivered stems."""

    master: Master
    labels: tuple[str, ...]        # a label per channel, in the program's order: L R C …, or Lt Rt
    names: tuple[str, ...]         # ffmpeg's channel names in the same order: FL FR FC …, or DL DR
    wavs: Mapping[str, Path]       # stem (MIX, DX, ME, MX, FX) → its delivered broadcast WAV
    what: str = ""                 # prefix of its stems' titles in the interleaved structure: "" or "Lt/Rt "

    def channel(self, stream: AudioStream, index: int) -> int | None:
        """The program's position of channel `index` of `stream`, or None when it is not in the program."""
        for position, (s, c) in enumerate(self.master.channels_from):
            if s.audio_index == stream.audio_index and c == index:
                return position
        return None


@dataclass(frozen=True)
class Languages:
    """The ISO 639-2 language tags of the deliverable's tracks: `base` (the source's or the config's) for the
    originals without one, the mix and DX; `dialogue`, the language recognised in the dialogue (None: none),
    tags the DX and, where `base` is undetermined ("und"), the delivered mix. M&E, MX and FX are `zxx`."""

    base: str
    dialogue: str | None = None

    def of(self, stem: str) -> str:
        if stem == "DX":
            return self.dialogue or self.base
        if stem == "MIX":
            return self.dialogue if self.dialogue and self.base == "und" else self.base
        return NO_LANGUAGE


def deliverable_tracks(structure: str, programs: list[Program], info: MediaInfo, profile: str,
                       languages: Languages) -> list[Track]:
    """The deliverable's audio tracks for `structure` (interleaved or source), tagged by `languages`."""
    if structure == "source":
        return source_tracks(programs, info, languages)
    if structure != "interleaved":
        raise ValueError(f"output tracks must be one of {', '.join(OUTPUT_TRACKS)}, got {structure!r}")
    return interleaved_tracks(programs, info, profile, languages)


def original_title(programs: list[Program], stream: AudioStream) -> str:
    """"Original mix" for a master that is one whole stream; "Original L (a:0)" for a track of assembled ones
    (its channels' labels); "Original track a:7 (not processed)" for a track no program uses."""
    main = programs[0].master
    single = main.single
    if single is not None and single.audio_index == stream.audio_index and len(programs) == 1:
        return "Original mix"
    labels = [p.labels[j] for c in range(stream.channels) for p in programs
              if (j := p.channel(stream, c)) is not None]
    if not labels:
        return f"Original track a:{stream.audio_index} (not processed)"
    return f"Original {' '.join(labels)} (a:{stream.audio_index})"


def _original(programs: list[Program], stream: AudioStream, language: str) -> Track:
    return Track(None, original_title(programs, stream), stream.language or language, stream.audio_index)


def _used(programs: list[Program]) -> list[AudioStream]:
    """The streams the programs read, in the programs' order, each once."""
    seen: dict[int, AudioStream] = {}
    for program in programs:
        for stream in program.master.streams:
            seen.setdefault(stream.audio_index, stream)
    return list(seen.values())


def interleaved_tracks(programs: list[Program], info: MediaInfo, profile: str, languages: Languages) -> list[Track]:
    """The master's own tracks (copied untouched; a fold-down's after them), then each program's delivered mix,
    DX, M&E (MX and FX if made) as one track in its layout, then every other audio track of the source, copied
    (a deliverable never drops a track)."""
    used, language = _used(programs), languages.base
    tracks = [_original(programs, s, language) for s in used]
    for p in programs:
        tracks.append(Track(p.wavs["MIX"], f"{p.what}Delivered mix ({profile})", languages.of("MIX")))
        tracks += [Track(p.wavs[stem], f"{p.what}{INTERLEAVED_TITLES[stem]}", languages.of(stem))
                   for stem in STEMS[1:] if stem in p.wavs]
    indices = {s.audio_index for s in used}
    return tracks + [_original(programs, s, language) for s in info.audio if s.audio_index not in indices]


def source_tracks(programs: list[Program], info: MediaInfo, languages: Languages) -> list[Track]:
    """Every audio track of the source copied, in the file's order; then for each stem (MIX, DX, ME, MX, FX:
    those every program has) one track per source track the programs read, with that track's channels in its
    order, each picked from the stem's WAV of the program the channel belongs to."""
    tracks = [_original(programs, s, languages.base) for s in info.audio]
    stems = [stem for stem in STEMS if all(stem in p.wavs for p in programs)]
    for stem in stems:
        for stream in info.audio:
            track = _stem_track(programs, stream, stem, languages.of(stem))
            if track is not None:
                tracks.append(track)
    return tracks


def _stem_track(programs: list[Program], stream: AudioStream, stem: str, lang: str) -> Track | None:
    """Stem `stem` in the shape of source track `stream` (None when no program reads it): a whole delivered WAV
    when the track is all of one program in its order, else its channels picked one by one."""
    picks, labels, names = [], [], []
    for c in range(stream.channels):
        for p in programs:
            j = p.channel(stream, c)
            if j is not None:
                picks.append((p.wavs[stem], j))
                labels.append(p.labels[j])
                names.append(p.names[j])
    if not picks:
        return None
    title = f"{SOURCE_TITLES[stem]} {' '.join(labels)}"
    wav = picks[0][0]
    whole = next(p for p in programs if p.wavs[stem] == wav).master.channels
    if all(path == wav for path, _ in picks) and [j for _, j in picks] == list(range(whole)):
        return Track(wav, title, lang)
    return Track(None, title, lang, picks=tuple(picks), layout="+".join(names))
