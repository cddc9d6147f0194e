"""Periodic representative volume elements (unit cells) and their gmsh generators.

The names below load lazily: ``fe2hmm.rve.limits`` (what the generators accept: names,
dimensions, admissible volume fractions) needs neither gmsh nor dolfinx, so a command line can
check a request before importing them; the generators and :class:`RVE` import both on first
use.
"""

import importlib

from fe2hmm.rve.limits import DIMS, MAX_RADIUS, available, check_request, max_volume_fraction

_LAZY = {
    **dict.fromkeys(
        ("INCLUSION", "MATRIX", "PHASE_NAMES", "RVE", "VOID", "phase_volumes"), "fe2hmm.rve.cell"
    ),
    **dict.fromkeys(
        (
            "GENERATORS",
            "GeneratorInfo",
            "circle",
            "create",
            "ellipse",
            "fibre",
            "laminate",
            "random_inclusions",
            "sphere",
            "voids",
        ),
        "fe2hmm.rve.generators",
    ),
}

__all__ = [
    "DIMS",
    "GENERATORS",
    "INCLUSION",
    "MATRIX",
    "MAX_RADIUS",
    "PHASE_NAMES",
    "RVE",
    "VOID",
    "GeneratorInfo",
    "available",
    "check_request",
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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fe2hmm.rve' has no attribute {name!r}")


def __dir__():
    return __all__
