"""What steering needs of a vector (`LayerVectors`): the hook it was read at, its layers, one direction per layer,
and a copy restricted to some layers. `steering.vector.SteeringVector` is the one the project writes; any object of
this shape can be applied, and `steering.apply` needs nothing else, so it does not import the vector module."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch


class LayerVectors(Protocol):
    """One steering direction per decoder layer, read at `hook`."""

    hook: str

    @property
    def layers(self) -> list[int]: ...

    def __getitem__(self, layer: int) -> torch.Tensor: ...

    def only(self, layers: Iterable[int]) -> LayerVectors: ...
