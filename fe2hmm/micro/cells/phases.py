"""Phase materials of a cell: per-phase validation and piecewise-constant coefficient fields.

Every cell problem takes its materials as ``{phase tag: material}`` and needs one for each phase
its RVE meshes; every cell micro-model takes a matrix and an inclusion material and needs those
its generator meshes (no inclusion for voids). :func:`phase_materials` checks both the same way,
before any meshing or assembly; :func:`phase_field` puts per-phase values on the cell mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
from dolfinx import fem

from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE

__all__ = ["PHASE_NAMES", "phase_field", "phase_materials", "phase_name"]

#: Names of the phase tags every generated RVE uses.
PHASE_NAMES: dict[int, str] = {MATRIX: "matrix", INCLUSION: "inclusion"}

T = TypeVar("T")


class _Phased(Protocol):
    """An RVE or a :class:`~fe2hmm.micro.cells.geometry.CellGeometry`: a name and phase tags."""

    name: str

    @property
    def phases(self) -> Sequence[int]: ...  # noqa: D102


def phase_name(phase: int) -> str:
    """``"1 (matrix)"``: a phase tag with its name, for messages (``"phase {phase_name(p)}"``)."""
    name = PHASE_NAMES.get(int(phase))
    return f"{int(phase)} ({name})" if name else str(int(phase))


def phase_materials(
    cell: _Phased,
    materials: Mapping[int, Any],
    parse: Callable[[Any, int], T],
    what: str,
) -> dict[int, T]:
    """The parsed material of every phase of a cell, in tag order; a missing one is an error.

    Args:
        cell: an :class:`~fe2hmm.rve.cell.RVE` (the phases its mesh holds) or a
            :class:`~fe2hmm.micro.cells.geometry.CellGeometry` (the phases its generator meshes).
        materials: phase tag -> material; ``None`` counts as missing. Tags of other phases are
            ignored (e.g. an inclusion material for a voids cell).
        parse: ``parse(material, tag)`` returns the checked material or raises ``ValueError``
            naming the phase (see :func:`phase_name`).
        what: what a material is, for the message, e.g. ``"(E, nu)"``.

    Returns:
        ``{tag: parse(materials[tag], tag)}`` for the cell's phases.

    Raises:
        ValueError: a phase of the cell has no material, or ``parse`` rejects one.
    """
    phases = [int(p) for p in cell.phases]
    missing = [p for p in phases if materials.get(p) is None]
    if missing:
        raise ValueError(
            f"no {what} given for phase(s) {', '.join(phase_name(p) for p in missing)} of RVE "
            f"{cell.name!r} (phases present: {', '.join(phase_name(p) for p in phases)})"
        )
    return {p: parse(materials[p], p) for p in phases}


def phase_field(
    rve: RVE, values: Mapping[int, float | np.ndarray], shape: tuple[int, ...] = ()
) -> fem.Function:
    """Piecewise-constant (DG0) coefficient equal to ``values[tag]`` on the cells of each phase.

    Args:
        rve: the cell (mesh and phase tags).
        values: phase tag -> value, a scalar or an array of ``shape``; cells of phases not
            listed get 0.
        shape: value shape, ``()`` for a scalar field, e.g. ``(d, d)`` for a tensor.

    Returns:
        The DG0 function on ``rve.mesh``.
    """
    mesh = rve.mesh
    Q = fem.functionspace(mesh, ("DG", 0, shape) if shape else ("DG", 0))
    f = fem.Function(Q)
    n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
    dofs = Q.dofmap.list[:n_cells, 0]
    blocks = f.x.array.reshape(-1, int(np.prod(shape, dtype=int)))
    tags = rve.cell_tags
    for phase, value in values.items():
        cells = tags.indices[tags.values == phase]
        blocks[dofs[cells]] = np.asarray(value, dtype=float).reshape(-1)
    return f
