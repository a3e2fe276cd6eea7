"""The exception hierarchy of reelsplit: deep code raises these, only the CLI picks exit codes.

Every message is one line a person can act on; the file it concerns is carried separately in `path`
so the report and the terminal can both name it.
"""
from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """Base class: a failure of one file or one setting, explained in one line."""

    stage = "pipeline"

    def __init__(self, message: str, path: Path | str | None = None):
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class ConfigError(PipelineError):
    """A configuration or profile value is missing or out of range."""

    stage = "config"


class FfmpegError(PipelineError):
    """ffmpeg/ffprobe is missing, failed, or timed out."""

    stage = "ffmpeg"


class MediaError(PipelineError):
    """The input itself is unusable: unreadable, no audio stream, unsupported layout."""

    stage = "probe"


class TransientInputError(MediaError):
    """The input is still changing (being copied into the drop folder): worth trying again in a while."""

    stage = "input"


class ModelError(PipelineError):
    """A separation model could not be found, verified or loaded."""

    stage = "model"


class OutputError(PipelineError):
    """An output could not be written (disk full, permissions, lock held)."""

    stage = "output"


class TitleLockedError(OutputError):
    """Another reelsplit run holds this output title's lock."""

    stage = "lock"
