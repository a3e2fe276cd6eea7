"""Every file made from a transcript, for one reel: the dialogue list (over the spotting list's lines), subtitles
(SRT, WebVTT, TTML IMSC 1.1), the ADR cue sheet and the marker EDL, written atomically into the title's folder."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from . import cuesheets, subtitles
from .timecode import Rate, StartTimecode, timecode_rate
from .words import Transcript


def _clock(start: StartTimecode | None, fps) -> StartTimecode:
    """The clock of the ADR sheet and the markers, which need one: the source's start with its rate, else the
    start counted at `fps`, else at the subtitles' default rate."""
    seconds = start.seconds if start is not None else Fraction(0)
    if start is not None and start.rate is not None:
        return start
    return StartTimecode(seconds, timecode_rate(fps if fps is not None else subtitles.DEFAULT_FPS))


def word_paths(out_dir: Path, title: str) -> dict[str, Path]:
    """Where `write_words` puts each file, by role."""
    out_dir = Path(out_dir)
    return {"srt": out_dir / f"{title}_subtitles.srt",
            "webvtt": out_dir / f"{title}_subtitles.vtt", "ttml": out_dir / f"{title}_subtitles.ttml",
            "adr_cues": out_dir / f"{title}_adr.csv", "markers": out_dir / f"{title}_markers.edl"}


def write_words(transcript: Transcript, out_dir: Path, title: str, start: StartTimecode | None,
                fps: Fraction | float | str | Rate | None) -> dict[str, Path]:
    """Write the subtitles (SRT, WebVTT, TTML), the ADR cue sheet and the marker EDL of `transcript` into
    `out_dir`; returns {role: path} (`word_paths`), for the manifest. (The dialogue list is the spotting list
    with the words: cuesheets.write_dialogue_csv, written with it.)

    `start` is the reel's start timecode (pipeline.starttc.reel_start) and `fps` the picture's frame rate, None
    for audio only. Subtitle events sit on the frame grid of `fps`, else of the start's timecode rate, else 24 fps;
    their times are media seconds. Timecodes count from `start` at its rate (else from 00:00:00:00 at `fps`, else
    at 24 fps)."""
    clock = _clock(start, fps)
    grid = subtitles.event_rate(fps if fps is not None else (start.rate if start is not None else None))
    events = subtitles.subtitle_events(transcript, grid)
    paths = word_paths(out_dir, title)
    subtitles.write_srt(paths["srt"], events, transcript.language)
    subtitles.write_webvtt(paths["webvtt"], events, transcript.language)
    subtitles.write_ttml(paths["ttml"], events, transcript.language, grid, title)
    cuesheets.write_adr_csv(paths["adr_cues"], transcript, clock)
    cuesheets.write_marker_edl(paths["markers"], transcript, clock, title)
    return paths
