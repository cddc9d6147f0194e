"""The representative volume element (unit cell) as handed to cell problems."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ufl
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

    def on_box(self, x: np.ndarray, relative_tolerance: float = 1e-10) -> np.ndarray:
        """Mask of points on the faces of the periodic box.

        Args:
            x: coordinates, shape ``(k, n)`` with ``k >= gdim`` (dolfinx marker convention).
            relative_tolerance: tolerance relative to the box size.

        Returns:
            Boolean mask, shape ``(n,)``.
        """
        x = np.asarray(x)
        tol = relative_tolerance * float(self.period.max())
        mask = np.zeros(x.shape[1], dtype=bool)
        for axis in range(self.dim):
            mask |= np.isclose(x[axis], self.lower[axis], atol=tol)
            mask |= np.isclose(x[axis], self.upper[axis], atol=tol)
        return mask

    def box_measure(self) -> ufl.Measure:
        """``ds`` restricted to the faces of the periodic box (not to void surfaces)."""
        mesh = self.mesh
        fdim = mesh.topology.dim - 1
        facets = _dmesh.locate_entities_boundary(mesh, fdim, self.on_box)
        tags = _dmesh.meshtags(mesh, fdim, facets, np.full(facets.size, 1, dtype=np.int32))
        return ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)

    @property
    def phases(self) -> list[int]:
        """Phase tags present in the mesh, sorted."""
        return sorted(int(t) for t in np.unique(self.cell_tags.values))
