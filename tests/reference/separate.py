"""Whole-file separation, as reelsplit did it before it streamed: the oracle for the streamed backends.

`demucs_whole` is `demucs.apply.apply_model(split=True)` over each whole group (demucs.api's normalisation);
`dfn3_whole` is DFN3 over each whole channel or pair mid, with the pan placement computed over the whole pair.
Both take a loaded backend (pipeline.separate_demucs.DemucsSeparator / separate_dfn3.Dfn3Separator) for its
model and settings, and return (dx, me, mx, fx) arrays at the source rate, (samples, channels) like the mix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from pipeline.layout import find_layout


@dataclass(frozen=True)
class Whole:
    dx: np.ndarray
    me: np.ndarray
    mx: np.ndarray | None
    fx: np.ndarray | None


def resample(audio: np.ndarray, rate_in: int, rate_out: int, length: int | None = None) -> np.ndarray:
    """Resample (samples, channels) float32 with soxr (VHQ), optionally padded/trimmed to `length` samples."""
    out = audio if rate_in == rate_out else soxr.resample(audio, rate_in, rate_out, quality="VHQ")
    out = np.asarray(out, dtype=np.float32)
    if length is not None and out.shape[0] != length:
        if out.shape[0] > length:
            out = out[:length]
        else:
            out = np.pad(out, ((0, length - out.shape[0]),) + ((0, 0),) * (out.ndim - 1))
    return out


def _groups(layout: str, channels: int):
    return find_layout(layout, channels).groups


def _demucs_apply(sep, wav: np.ndarray) -> np.ndarray:
    """(channels, samples) at the model rate → (sources, channels, samples), as apply_model over the whole."""
    import torch
    from demucs.apply import apply_model

    channels = wav.shape[0]
    if channels != sep.audio_channels:
        if channels == 1:           # mono/centre into a stereo model: duplicate, then average back
            return _demucs_apply(sep, np.repeat(wav, sep.audio_channels, axis=0)).mean(axis=1, keepdims=True)
        return np.concatenate([_demucs_apply(sep, wav[c:c + 1]) for c in range(channels)], axis=1)
    tensor = torch.from_numpy(np.ascontiguousarray(wav))
    ref = tensor.mean(0)        # demucs.api.Separator.separate_tensor's normalisation
    mean, std = ref.mean(), ref.std()
    if float(std) < 1e-6:
        return np.zeros((len(sep.sources),) + wav.shape, dtype=np.float32)  # digital silence
    with torch.inference_mode():
        out = apply_model(sep.model, ((tensor - mean) / std)[None], segment=sep.settings.segment,
                          shifts=sep.settings.shifts, split=True, overlap=sep.settings.overlap,
                          device=sep.device, progress=False)
    return (out[0] * std + mean).cpu().numpy().astype(np.float32)


def demucs_whole(sep, mix: np.ndarray, rate: int, layout: str) -> Whole:
    samples, channels = mix.shape
    stems = {t: np.zeros_like(mix) for t in set(sep.targets.values()) | {"DX"}}
    for group in _groups(layout, channels):
        est = _demucs_apply(sep, resample(mix[:, group], rate, sep.sample_rate).T)
        for k, source in enumerate(sep.sources):
            stems[sep.targets[source]][:, group] += resample(est[k].T, sep.sample_rate, rate, length=samples)
    dx = stems["DX"]
    return Whole(dx, (mix - dx).astype(np.float32), stems.get("MX"), stems.get("FX"))


def enhance(sep, mono: np.ndarray) -> np.ndarray:
    """(samples,) float32 at 48 kHz → the speech DFN3 finds in it, same length, aligned."""
    proc = sep.new_runtime()
    n = mono.shape[0]
    padded = np.concatenate([np.asarray(mono, np.float32), np.zeros(sep.DELAY, np.float32)])
    block = sep.frame * sep.BLOCK_FRAMES
    out = [proc.process_chunk(np.ascontiguousarray(padded[i:i + block])) for i in range(0, padded.size, block)]
    out.append(proc.finalize())
    del proc              # dropped on this thread: the runtime must not be freed on another one
    y = np.concatenate(out)
    return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def _dfn3_channel(sep, x: np.ndarray, rate: int) -> np.ndarray:
    at48 = resample(x[:, None], rate, sep.sample_rate)[:, 0]
    return resample(enhance(sep, at48)[:, None], sep.sample_rate, rate, length=x.shape[0])[:, 0]


def _dfn3_pair(sep, pair: np.ndarray, rate: int) -> np.ndarray:
    speech = _dfn3_channel(sep, pair.mean(axis=1), rate)
    n, win = pair.shape[0], max(1, rate)
    centres, gains = [], []
    for i in range(0, n, win):
        s = speech[i:i + win].astype(np.float64)
        energy = float(np.dot(s, s))
        gains.append([float(np.clip(np.dot(pair[i:i + win, c], s) / energy, 0.0, 2.0)) if energy > 1e-9 else 1.0
                      for c in range(2)])
        centres.append(i + (min(win, n - i) - 1) / 2)
    gains_arr, t = np.asarray(gains), np.arange(n)
    return np.stack([speech * np.interp(t, centres, gains_arr[:, c]) for c in range(2)], axis=1).astype(np.float32)


def dfn3_whole(sep, mix: np.ndarray, rate: int, layout: str) -> Whole:
    dx = np.zeros_like(mix)
    for group in _groups(layout, mix.shape[1]):
        if len(group) == 2 and sep.pairs == "mid":
            dx[:, group] = _dfn3_pair(sep, mix[:, group], rate)
        else:
            for c in group:
                dx[:, c] = _dfn3_channel(sep, mix[:, c], rate)
    return Whole(dx, (mix - dx).astype(np.float32), None, None)
