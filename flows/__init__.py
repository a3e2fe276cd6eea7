"""Prefect orchestration of reelsplit: the reel flow (reel.py), the per-file sequence (steps.py), the CLI."""
