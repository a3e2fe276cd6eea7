"""Batched Demucs separation (pipeline/demucs_batch.py) against one segment at a time and against demucs's own
`apply_model` over the whole input: the same samples within −80 dB, with and without shifts, for lengths that are
no multiple of the segment; memory stays a few batches whatever the length; the precision setting."""
from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.config import SeparationSettings, Settings
from pipeline.demucs_batch import stream_apply
from pipeline.errors import ConfigError, ModelError
from pipeline.models import load_demucs, resolve
from pipeline.readers import ArrayReader
from test_stream import error_db, signal
from tiny_demucs import write_tiny_model

RATE = 44100


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_demucs(resolve(str(write_tiny_model(tmp_path_factory.mktemp("tiny") / "repo"))))


def separated(model, x: np.ndarray, device: str = "cpu", seed: int = 7, **kw) -> np.ndarray:
    """stream_apply's (sources, channels, n) of `x` with `random` seeded (the shifts' draws)."""
    random.seed(seed)
    return np.concatenate([est for _, est in stream_apply(model, ArrayReader(x), 0.0, 1.0,
                                                          SeparationSettings(**kw), device)], axis=-1)


def whole(model, x: np.ndarray, shifts: int, seed: int = 7) -> np.ndarray:
    """demucs.apply.apply_model(split=True) over the whole input, `random` seeded alike."""
    import torch
    from demucs.apply import apply_model

    random.seed(seed)
    with torch.inference_mode():
        return apply_model(model, torch.from_numpy(x.T.copy())[None], shifts=shifts, split=True, overlap=0.25,
                           progress=False)[0].numpy()


@pytest.mark.parametrize("shifts", [0, 1, 2])
def test_batched_equals_unbatched_and_apply_model(model, shifts):
    """The issue's bar: batched within −80 dB of one segment at a time (fp32, CPU). Measured (2 cores): about
    −148 dB (batched vs not), and the unbatched result bit-equal to apply_model's, shifts included. 13.4 s is no
    multiple of the tiny model's 4 s segment (3 s stride): 5 segments per pass."""
    x = signal(13.4, RATE, 2, seed=shifts) / 0.2
    one = separated(model, x, shifts=shifts, batch_segments=1)
    assert one.shape == (3, 2, x.shape[0])
    assert error_db(one, whole(model, x, shifts)) < -80
    for batch in (3, 16):
        assert error_db(separated(model, x, shifts=shifts, batch_segments=batch), one) < -80


def test_shift_draws_change_the_result(model):
    """Shifts are honoured: another draw of the random offsets gives another (close) result."""
    x = signal(9.3, RATE, 2, seed=3) / 0.2
    a = separated(model, x, seed=1, shifts=1, batch_segments=4)
    b = separated(model, x, seed=2, shifts=1, batch_segments=4)
    assert -80 < error_db(a, b) < 0


class Watched(ArrayReader):
    """An ArrayReader that remembers the furthest frame read."""

    furthest = 0

    def read(self, start, count):
        self.furthest = max(self.furthest, min(self.frames, start + count))
        return super().read(start, count)


@pytest.mark.parametrize("shifts,batch", [(0, 4), (2, 3)])
def test_batches_stream_without_reading_ahead(model, shifts, batch):
    """Flat memory: at every hand-on, the input read so far is at most batch + 2 segments past the samples handed
    on, whatever the length (here 60 s, 15 segments; measured at most batch − 0.75 segments ahead, 2 cores);
    everything is handed on exactly once, in order."""
    x = signal(60.0, RATE, 2, seed=9) / 0.2
    reader = Watched(x)
    seg = 4 * RATE
    random.seed(0)
    done = 0
    for start, est in stream_apply(model, reader, 0.0, 1.0, SeparationSettings(shifts=shifts,
                                                                                batch_segments=batch), "cpu"):
        assert start == done
        done += est.shape[-1]
        assert reader.furthest - done <= (batch + 2) * seg
    assert done == x.shape[0]


def test_precision_on_the_cpu_is_refused_in_one_line(model):
    x = signal(5.0, RATE, 2)
    for precision in ("bf16", "fp16"):
        with pytest.raises(ModelError, match=f"precision {precision} needs a CUDA device") as err:
            separated(model, x, precision=precision)
        assert "\n" not in str(err.value)


def test_batch_and_precision_settings_are_checked():
    sep = Settings.from_dict({"separation": {"batch_segments": 16, "precision": "bf16"}}).separation
    assert (sep.batch_segments, sep.precision) == (16, "bf16")
    assert Settings.from_dict({}).separation.batch_segments == 0
    with pytest.raises(ConfigError, match="separation.precision"):
        Settings.from_dict({"separation": {"precision": "int8"}})
    with pytest.raises(ConfigError, match="separation.batch_segments"):
        Settings.from_dict({"separation": {"batch_segments": -1}})


@pytest.mark.gpu
def test_batched_on_cuda_equals_unbatched(model):
    """On a GPU: batches of 16 against one at a time in fp32 (−80 dB), and the CUDA result against the CPU's."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = signal(20.3, RATE, 2, seed=4) / 0.2
    one = separated(model, x, "cuda", batch_segments=1)
    assert error_db(separated(model, x, "cuda", batch_segments=16), one) < -80
    assert error_db(one, separated(model, x, "cpu", batch_segments=1)) < -70
    model.to("cpu")
