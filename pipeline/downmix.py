"""Stereo from 5.1: the ITU-R BS.775 downmix (Lo = L + 0.707·C + 0.707·Ls, Ro = R + 0.707·C + 0.707·Rs; LFE omitted)."""
from __future__ import annotations

import numpy as np

CENTRE_GAIN = SURROUND_GAIN = 10 ** (-3 / 20)   # −3 dB, BS.775 table 2


def itu_downmix(audio: np.ndarray) -> np.ndarray:
    """(samples, 6) in L R C LFE Ls Rs order → (samples, 2) float32. Linear, so stems downmixed one by one
    still sum to the downmixed mix."""
    if audio.ndim != 2 or audio.shape[1] != 6:
        raise ValueError(f"a 5.1 downmix needs (samples, 6) audio, got {audio.shape}")
    left = audio[:, 0] + CENTRE_GAIN * audio[:, 2] + SURROUND_GAIN * audio[:, 4]
    right = audio[:, 1] + CENTRE_GAIN * audio[:, 2] + SURROUND_GAIN * audio[:, 5]
    return np.stack([left, right], axis=1).astype(np.float32)
