"""Logging for the CLI: one-line messages on the terminal, full detail (tracebacks, ffmpeg commands) in
`OUT/reports/reelsplit.log`."""
from __future__ import annotations

import logging
from pathlib import Path

OUR_LOGGERS = ("reelsplit", "pipeline", "flows")


class _OneLine(logging.Formatter):
    """Terminal format: no tracebacks (they go to the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_console(verbose: bool) -> None:
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose else _OneLine())
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False


def add_file_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in OUR_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    return handler
