"""The names of the steering choices, in the core and without torch (importing anything under steering/ runs
steering/__init__, which loads torch), so the command line and the configs can offer them without loading it: vector methods and sources (steering.compute), the positions a vector is applied at
(steering.positions) and the operators that apply it (steering.operators) take theirs from here."""

from __future__ import annotations

METHODS: tuple[str, ...] = ("mean_diff", "pca_paired", "probe")
SOURCES: tuple[str, ...] = ("twins", "classes")
POSITIONS: tuple[str, ...] = ("all", "prompt", "generated", "from_decision")
OPERATORS: tuple[str, ...] = ("add", "ablate", "ablate_then_add")
