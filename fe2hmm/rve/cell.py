"""The representative volume element (unit cell) as handed to cell problems."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from dolfinx import mesh as _dmesh

__all__ = ["RVE", "MATRIX", "INCLUSION"]

#: Cell tag of the matrix phase in every generated RVE.
MATRIX: int = 1
#: Cell tag of the inclusion phase(s) in every generated RVE (absent for voids).
INCLUSION: int = 2


@dataclass
class RVE:
    """A periodic unit cell mesh with phase tags.

    Attributes:
        mesh: dolfinx mesh of the *material* part of the cell (voids are not meshed), created on
            ``MPI.COMM_SELF``: cell problems are rank-local.
        cell_tags: phase id of every cell (:data:`MATRIX`, :data:`INCLUSION`).
        lower: lower corner of the periodic box, shape ``(gdim,)``.
        upper: upper corner of the periodic box, shape ``(gdim,)``.
        name: generator name, e.g. ``"circle"``.
        volume_fractions: exact geometric volume fraction of each phase by tag; voids appear
            under the key ``0``. They sum to 1.
        parameters: the generator arguments that determine the geometry (for caching/reports).
    """

    mesh: _dmesh.Mesh
    cell_tags: _dmesh.MeshTags
    lower: np.ndarray
    upper: np.ndarray
    name: str
    volume_fractions: dict[int, float]
    parameters: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Geometric dimension of the cell (2 or 3)."""
        return int(self.mesh.geometry.dim)

    @property
    def period(self) -> np.ndarray:
        """Edge lengths of the periodic box, shape ``(gdim,)``."""
        return np.asarray(self.upper, dtype=float) - np.asarray(self.lower, dtype=float)

    @property
    def volume(self) -> float:
        """Volume (area in 2D) of the whole periodic box, voids included."""
        return float(np.prod(self.period))

    @property
    def phases(self) -> list[int]:
        """Phase tags present in the mesh, sorted."""
        return sorted(int(t) for t in np.unique(self.cell_tags.values))
