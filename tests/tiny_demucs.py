"""Small demucs-format models written at test time (no weights can be downloaded here).

They are real `demucs.htdemucs.HTDemucs` networks with random weights, saved in demucs's own package format
(`{klass, args, kwargs, state}` via torch.save, named `<sig>-<sha256[:8]>.th` as `demucs.states.save_with_checksum`
does), so `demucs.pretrained.get_model(name, repo=...)` loads them unchanged. Their separation is not good —
they exercise the Demucs code path (loading, resampling, apply_model, stem mapping), never quality.
"""
from __future__ import annotations

from pathlib import Path

TINY_KWARGS = dict(audio_channels=2, channels=8, depth=2, nfft=1024, t_layers=0, samplerate=44100, segment=4)


def write_tiny_model(folder: Path, name: str = "tiny_dme", sources=("dialogue", "music", "effects"),
                     seed: int = 0) -> Path:
    """Write a tiny HTDemucs into `folder` in demucs's package format; returns the .th path."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum

    torch.manual_seed(seed)
    model = HTDemucs(sources=list(sources), **TINY_KWARGS)
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs,
               "state": {k: v.clone() for k, v in model.state_dict().items()}, "training_args": {}}
    folder.mkdir(parents=True, exist_ok=True)
    save_with_checksum(package, folder / f"{name}.th")
    (found,) = folder.glob(f"{name}-*.th")
    return found
