"""Which audio of a file is processed: one interleaved stream, or mono (or multichannel) tracks assembled into one
layout by the channel labels ffprobe reports, by the track count, or by a track map (`--tracks L,R,C,LFE,Ls,Rs`).

A master whose tracks cannot be placed with certainty (8 unlabelled mono tracks: 7.1 or 5.1 + Lt/Rt?) is a
MediaError naming the choices: a track is never processed alone while the others are dropped. Tracks the map
names `Lt`/`Rt` (a stereo fold-down beside a surround master) are a second program, separated on its own, and so
is the 2-channel stream of a file with one surround and one 2-channel stream (5.1 + 2.0); tracks named `-`
(unused) are not processed, and the deliverable still carries them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import MediaError
from .layout import LABELS, LAYOUTS, Layout, by_channel_set, find_layout, get_layout, positions, supported
from .media import AudioStream, MediaInfo

UNUSED = "-"            # a track-map entry for a track that is not processed
FOLDDOWN = ("Lt", "Rt")  # a stereo fold-down beside the surround master: its own program, separated too
MAX_LENGTH_GAP_S = 0.05  # tracks of one master may differ in length by this much (a frame at 20 fps)
# Unlabelled mono tracks, by count: the order Avid / Resolve / AS-11 masters carry them in (SMPTE ST 2035).
UNLABELLED = {2: "stereo", 6: "5.1"}


@dataclass(frozen=True)
class Master:
    """The processed audio: for each channel of `layout`, in order, the (stream, channel within the stream) it
    is read from. `streams` are the streams involved, in the file's order; `unused` describes the audio
    channels of the file that are not processed (tracks named -), for the report; `folddown` is the stereo
    fold-down (Lt/Rt) of a surround master, a program of its own."""

    layout: Layout
    channels_from: tuple[tuple[AudioStream, int], ...]
    unused: str = ""
    folddown: "Master | None" = None

    @property
    def streams(self) -> tuple[AudioStream, ...]:
        seen: dict[int, AudioStream] = {}
        for stream, _ in self.channels_from:
            seen.setdefault(stream.audio_index, stream)
        return tuple(seen[i] for i in sorted(seen))

    @property
    def single(self) -> AudioStream | None:
        """The stream itself when the master is one whole stream in its own order, else None."""
        streams = self.streams
        if len(streams) == 1 and [c for _, c in self.channels_from] == list(range(streams[0].channels)):
            return streams[0]
        return None

    @property
    def first(self) -> AudioStream:
        return self.streams[0]

    @property
    def channels(self) -> int:
        return self.layout.channels

    @property
    def sample_rate(self) -> int:
        return self.first.sample_rate

    @property
    def duration_s(self) -> float | None:
        durations = [s.duration_s for s in self.streams if s.duration_s]
        return min(durations) if durations else None

    @property
    def language(self) -> str | None:
        return self.first.language

    def describe(self) -> str:
        """"a:0 5.1" for one stream; "a:0-a:5 → L R C LFE Ls Rs" for assembled tracks (+ what is not used)."""
        single = self.single
        if single is not None:
            text = f"a:{single.audio_index} {self.layout.name}"
        else:
            parts = [f"a:{s.audio_index}" + (f".{c}" if s.channels > 1 else "") for s, c in self.channels_from]
            text = f"{' '.join(parts)} → {self.layout.name} ({' '.join(self.layout.labels)})"
        if self.folddown is not None:
            text += f"; Lt/Rt: {self.folddown.describe().split(' → ')[0]}"
        return f"{text}; not used: {self.unused}" if self.unused else text


def check_layout(stream: AudioStream, path) -> Layout:
    """The stream's Layout if reelsplit can separate it, else MediaError with the reason."""
    try:
        return get_layout(stream.layout, stream.channels)
    except MediaError as exc:
        raise MediaError(exc.message, path) from None


def select_master(info: MediaInfo, n: int = 0, tracks: tuple[str, ...] | None = None) -> Master:
    """What of `info`'s audio is processed: the track map `tracks` when given; else mono tracks assembled by
    their labels or count; else audio stream `n` as it is. MediaError names the file and the reason."""
    if tracks:
        return _mapped(info, tracks)
    info.audio_stream(n)              # "no audio stream" / "stream n requested but the file has …"
    mono = info.mono_tracks()
    if len(mono) >= 2:
        return _assembled(info, mono)
    paired = _surround_and_folddown(info) if n == 0 else None
    if paired is not None:
        return paired
    stream = info.audio_stream(n)
    return Master(check_layout(stream, info.path), tuple((stream, c) for c in range(stream.channels)))


def audio_lead_s(info: MediaInfo, master: Master) -> float:
    """How many seconds the master's audio starts before the picture (0 when it does not, or when the file has
    no picture or no start times): audio that starts after it is read from the picture's start with silence
    first (audio.decode_command), audio before it is kept whole and so starts that much before the picture."""
    starts = [s.start_s for s in master.streams if s.start_s is not None]
    picture = info.video[0].start_s if info.video else None
    if picture is None or not starts:
        return 0.0
    return max(0.0, picture - min(starts))


def _surround_and_folddown(info: MediaInfo) -> Master | None:
    """Two streams, a surround one (5.0, 5.1, 7.1) and a 2-channel one, in either order: the surround program and
    its stereo fold-down (Lt/Rt), each separated, as the track map L,R,C,LFE,Ls,Rs,Lt,Rt reads them, when they
    share a rate and a length. None for any other file. The other reading (the 2-channel stream is no fold-down)
    is a track map: L,R,C,LFE,Ls,Rs,-,-."""
    if len(info.audio) != 2:
        return None
    pair = sorted(info.audio, key=lambda s: s.channels)
    two, surround = pair
    layout = find_layout(surround.layout, surround.channels)
    if two.channels != 2 or layout is None or layout.channels <= 2:
        return None
    try:
        _check_alike(info, pair)
    except MediaError:          # another rate or length: no fold-down of this master; the surround alone, as before
        return None
    return Master(layout, tuple((surround, c) for c in range(surround.channels)),
                  folddown=Master(LAYOUTS["stereo"], ((two, 0), (two, 1))))


def _check_alike(info: MediaInfo, streams) -> None:
    """Tracks assembled into one master must share a rate and a length."""
    rates = {s.sample_rate for s in streams}
    if len(rates) > 1:
        found = ", ".join(f"a:{s.audio_index} {s.sample_rate} Hz" for s in streams)
        raise MediaError(f"the tracks to assemble differ in sample rate ({found}): one master needs one rate",
                         info.path)
    lengths = [s.duration_s for s in streams if s.duration_s]
    if lengths and max(lengths) - min(lengths) > MAX_LENGTH_GAP_S:
        found = ", ".join(f"a:{s.audio_index} {s.duration_s:.3f} s" for s in streams if s.duration_s)
        raise MediaError(f"the tracks to assemble differ in length ({found}): they would drift apart", info.path)


def _ambiguous(info: MediaInfo, count: int, why: str) -> MediaError:
    return MediaError(f"audio is {count} separate mono tracks {why}: name them with --tracks (or `tracks:` in "
                      f"the config), {_map_examples(sum(s.channels for s in info.audio))}; a track that is not "
                      "used is -", info.path)


def _map_examples(channels: int) -> str:
    """Track maps the length of the file's audio channels (a map names every one), for the error's hint."""
    if channels == 8:
        return ("e.g. --tracks L,R,C,LFE,Ls,Rs,Lt,Rt for 5.1 + a stereo fold-down or --tracks "
                "L,R,C,LFE,Lss,Rss,Lrs,Rrs for 7.1")
    maps = [(first + ",-" * (channels - n), what + (", the rest unused" if channels > n else ""))
            for first, n, what in (("L,R,C,LFE,Ls,Rs", 6, "5.1"), ("L,R", 2, "a stereo pair")) if channels >= n]
    return "e.g. " + " or ".join(f"--tracks {m} for {what}" for m, what in maps)


def _assembled(info: MediaInfo, mono: tuple[AudioStream, ...]) -> Master:
    """Mono tracks by their labels (FL, FR …) or, unlabelled, by their count (2: L R; 6: L R C LFE Ls Rs)."""
    if len(mono) != len(info.audio):
        raise _ambiguous(info, len(mono), f"beside {len(info.audio) - len(mono)} multichannel stream(s)")
    labels = [s.label for s in mono]
    plain = all(x in (None, "FC") for x in labels)      # unlabelled, or all "mono": placed by their count
    if not plain and all(labels) and len(set(labels)) == len(labels):
        layout = by_channel_set(set(labels))
        if layout is None:
            raise _ambiguous(info, len(mono), f"labelled {' '.join(labels)}, which is no layout reelsplit "
                                              f"separates ({supported()})")
        where = positions(layout)
        ordered = sorted(mono, key=lambda s: where[s.label])
    elif plain and len(mono) in UNLABELLED:
        layout, ordered = LAYOUTS[UNLABELLED[len(mono)]], list(mono)
    elif plain:
        choices = "7.1 or 5.1 + Lt/Rt" if len(mono) == 8 else "in no order reelsplit can assume"
        raise _ambiguous(info, len(mono), f"without channel labels ({choices})")
    else:
        raise _ambiguous(info, len(mono), f"labelled {' '.join(x or '?' for x in labels)}")
    _check_alike(info, ordered)
    return Master(layout, tuple((s, 0) for s in ordered))


def check_track_map(tracks) -> tuple[str, ...]:
    """A track map as a tuple of known labels (L R C LFE Ls Rs Lss Rss Lrs Rrs Lt Rt, ffmpeg's FL FR …, or -
    for an unused track); ValueError naming the first unknown one."""
    tracks = tuple(str(t).strip() for t in tracks)
    unknown = [t for t in tracks if t not in LABELS and t != UNUSED]
    if unknown:
        raise ValueError(f"unknown track label {unknown[0]!r} (known: {' '.join(LABELS)} and - for unused)")
    return tracks


def _mapped(info: MediaInfo, tracks: tuple[str, ...]) -> Master:
    """The channels of every audio stream, in the file's order, named by the track map."""
    channels = [(s, c) for s in info.audio for c in range(s.channels)]
    if len(tracks) != len(channels):
        raise MediaError(f"the track map names {len(tracks)} tracks ({' '.join(tracks)}) but the file has "
                         f"{len(channels)} audio channels in {len(info.audio)} stream(s)", info.path)
    named = {LABELS[t]: ch for t, ch in zip(tracks, channels) if t != UNUSED and t not in FOLDDOWN}
    if len(named) != sum(t != UNUSED and t not in FOLDDOWN for t in tracks):
        raise MediaError(f"the track map {' '.join(tracks)} names a channel twice", info.path)
    layout = by_channel_set(set(named))
    if layout is None:
        raise MediaError(f"the track map {' '.join(tracks)} gives no layout reelsplit separates ({supported()})",
                         info.path)
    where = positions(layout)
    order = sorted(named, key=lambda name: where[name])
    fold = {t: ch for t, ch in zip(tracks, channels) if t in FOLDDOWN}
    folddown = None
    if fold:
        if sorted(fold) != sorted(FOLDDOWN):
            raise MediaError(f"the track map {' '.join(tracks)} names {' '.join(fold)} without its pair: a "
                             "fold-down is Lt and Rt", info.path)
        folddown = Master(LAYOUTS["stereo"], (fold["Lt"], fold["Rt"]))
    used = [ch for ch in named.values()] + list(fold.values())
    _check_alike(info, {s.audio_index: s for s, _ in used}.values())
    unused = " ".join(f"{t} (a:{s.audio_index}" + (f".{c})" if s.channels > 1 else ")")
                      for t, (s, c) in zip(tracks, channels) if t == UNUSED)
    return Master(layout, tuple(named[name] for name in order), unused, folddown)
