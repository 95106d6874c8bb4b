"""Putting a model back as it was after nnsight has wrapped it.

nnsight installs its controller as an instance `forward` on every module it wraps and leaves it there ("inert
outside a trace"). `restoring_instance_attrs` removes whatever instance attributes the modules gained during a
block, so the model comes back as it was; attributes a module already had (another wrapper of the same model) stay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from toolprior.model_protocols import CausalLM


@contextlib.contextmanager
def restoring_instance_attrs(model: CausalLM) -> Iterator[None]:
    """Undo the instance attributes (nnsight's `forward` controller and its state) modules gain during the block."""
    before = {id(m): set(m.__dict__) for m in model.modules()}
    try:
        yield
    finally:
        for module in model.modules():
            keys = before.get(id(module))
            if keys is None:
                continue
            for key in set(module.__dict__) - keys:
                del module.__dict__[key]
