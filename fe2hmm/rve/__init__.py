"""Periodic representative volume elements (unit cells) and their gmsh generators."""

from fe2hmm import _compat  # noqa: F401  (dolfinx import order)

# isort: split

from fe2hmm.rve.cell import INCLUSION, MATRIX, PHASE_NAMES, RVE, VOID, phase_volumes
from fe2hmm.rve.generators import (
    GENERATORS,
    MAX_RADIUS,
    GeneratorInfo,
    available,
    circle,
    create,
    ellipse,
    fibre,
    laminate,
    max_volume_fraction,
    random_inclusions,
    sphere,
    voids,
)

__all__ = [
    "GENERATORS",
    "INCLUSION",
    "MATRIX",
    "MAX_RADIUS",
    "PHASE_NAMES",
    "RVE",
    "VOID",
    "GeneratorInfo",
    "available",
    "circle",
    "create",
    "ellipse",
    "fibre",
    "laminate",
    "max_volume_fraction",
    "phase_volumes",
    "random_inclusions",
    "sphere",
    "voids",
]
