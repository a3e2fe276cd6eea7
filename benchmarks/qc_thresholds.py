"""What clean reels measure on each QC battery check: the worst value each check saw on each stem (flagged or
not), over every reel folder given, as a Markdown table; the basis of pipeline.battery.DEFAULTS (docs/DESIGN.md,
"QC battery thresholds"). Not a test: it asserts nothing.

    python benchmarks/qc_thresholds.py demo/out/reel1_stereo demo/out/reel2_51 ...

A folder is a reel's output folder holding <title>_MIX.wav, _DX.wav and _ME.wav.
"""
from __future__ import annotations

import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline import battery  # noqa: E402

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}
# per kind: the worst is the highest value, except these (the lowest)
LOWEST = {"phase", "silent_channel"}


def reel_wavs(folder: Path) -> dict[str, Path] | None:
    mixes = list(folder.glob("*_MIX.wav"))
    if len(mixes) != 1:
        return None
    title = mixes[0].name[:-len("_MIX.wav")]
    wavs = {stem: folder / f"{title}_{stem}.wav" for stem in battery.STEMS}
    return wavs if all(p.exists() for p in wavs.values()) else None


def main(folders: list[str]) -> int:
    worst: dict[tuple[str, str], tuple[float, str]] = {}
    for name in folders:
        wavs = reel_wavs(Path(name))
        if wavs is None:
            print(f"skipped {name}: no <title>_MIX/_DX/_ME.wav", file=sys.stderr)
            continue
        layout = LAYOUTS[sf.info(str(wavs["MIX"])).channels]
        for key, value in battery.measure_battery(wavs, layout).items():
            if value is None:
                continue
            low = key[0] in LOWEST
            if key not in worst or (value < worst[key][0] if low else value > worst[key][0]):
                worst[key] = (value, name)
    print("| check | stem | worst measured | where |")
    print("|---|---|---|---|")
    for (kind, stem), (value, where) in sorted(worst.items()):
        print(f"| {kind} | {stem} | {value:.2f} | {where} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
