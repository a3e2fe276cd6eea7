"""A headless-Chromium screenshot of a page of Prefect's dashboard (a single-page app: it is given 15 s of
virtual time to fetch its data and draw). Used by tests/e2e/test_prefect_ui.py, which makes docs/prefect-dashboard.png
from a real run (`make dashboard-shot`).

    python docs/screenshot_dashboard.py URL OUT.png [--size 1400,1300]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BUDGET_MS = 15000    # virtual time for the app's JavaScript and API calls


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(url: str, out: Path, size: tuple[int, int] = (1400, 1300), timeout: float = 120) -> Path:
    """Save `url` as seen by headless Chromium (`size` pixels) to `out`; RuntimeError with Chromium's last lines
    when no picture comes out."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium not installed (Debian package `chromium`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reelsplit-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={BUDGET_MS}", f"--screenshot={out}", url]
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
                              stdin=subprocess.DEVNULL)
    if not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError(f"no screenshot of {url} (chromium exit {done.returncode}): {done.stderr[-1500:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1400,1300", help="WIDTH,HEIGHT in pixels (default 1400,1300)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split(","))
    try:
        print(screenshot(args.url, args.out, (width, height)))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"screenshot_dashboard: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
