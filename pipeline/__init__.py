"""reelsplit's library: pure steps (probe, extract, separate, cleanup, loudness, remux, qc, report) with no
Prefect in it. Functions take arrays + rates or paths and return frozen dataclasses."""

__version__ = "0.2.0"
