"""Dialogue / M&E separation behind one interface, implemented by the Demucs backend (`separate_demucs`, any
demucs-format model) and the bundled DeepFilterNet3 (`separate_dfn3`).

A separator has a `name`, the `sample_rate` it runs at and `separate(mix, rate, layout, workspace) -> Stems`:
DX (and MX/FX when the model has them) as spill files at the source rate and layout, block by block; M&E is
mix − DX, so DX + M&E nulls against the mix. Each group of the layout (a stereo pair, the centre) is separated
together; the LFE is in no group and stays in M&E. Models are loaded once (`load_separator`) and reused for
every file.
"""
from __future__ import annotations

from typing import Mapping, Protocol

from .config import DEFAULT_STEM_MAP, SeparationSettings
from .layout import Layout
from .models import DFN3, ModelSpec, load_demucs
from .readers import Reader, Workspace
from .stems import Stems


class Separator(Protocol):
    name: str
    sample_rate: int

    def separate(self, mix: Reader, rate: int, layout: Layout, workspace: Workspace) -> Stems: ...


def load_separator(spec: ModelSpec, settings: SeparationSettings,
                   stem_map: Mapping[str, str] = DEFAULT_STEM_MAP) -> Separator:
    """Load the model behind `spec` once; the returned separator is reused for every file."""
    if spec.kind == DFN3:
        from .separate_dfn3 import Dfn3Separator

        return Dfn3Separator(settings)
    from .separate_demucs import DemucsSeparator

    return DemucsSeparator(load_demucs(spec), spec, settings, stem_map)
