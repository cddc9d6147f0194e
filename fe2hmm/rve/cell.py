"""The representative volume element (unit cell) as handed to cell problems."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

from fe2hmm._compat import geometry_dofmap

__all__ = ["INCLUSION", "MATRIX", "PHASE_NAMES", "RVE", "VOID", "phase_volumes"]

#: Cell tag of the matrix phase in every generated RVE.
MATRIX: int = 1
#: Cell tag of the inclusion phase(s) in every generated RVE (absent for voids).
INCLUSION: int = 2
#: Key of the (unmeshed) void fraction in :attr:`RVE.volume_fractions`; never a cell tag.
VOID: int = 0
#: Names of the phases by tag, as in the gmsh physical groups and the CLI reports.
PHASE_NAMES: dict[int, str] = {VOID: "void", MATRIX: "matrix", INCLUSION: "inclusion"}


def phase_volumes(mesh: _dmesh.Mesh, cell_tags: _dmesh.MeshTags) -> dict[int, float]:
    """Volume (area in 2D) of the rank-local cells of each tag: the integral of the tags.

    Affine simplices (all generated cells) are summed exactly from their vertex determinants;
    other meshes are integrated with ``dolfinx.fem.assemble_scalar``.

    Args:
        mesh: the cell mesh.
        cell_tags: tags of its cells (the cells of one tag must be rank-local).

    Returns:
        ``{tag: volume}`` for every tag in ``cell_tags``, sorted by tag.
    """
    dim = mesh.topology.dim
    tags = np.asarray(cell_tags.values)
    indices = np.asarray(cell_tags.indices)
    cmap = mesh.geometry.cmaps[0]
    simplex = mesh.topology.cell_name() in ("interval", "triangle", "tetrahedron")
    if simplex and cmap.degree == 1 and mesh.geometry.dim == dim:
        x = mesh.geometry.x[:, :dim]
        p = x[geometry_dofmap(mesh)[indices]]
        volumes = np.abs(np.linalg.det(p[:, 1:] - p[:, :1])) / math.factorial(dim)
        return {int(t): float(volumes[tags == t].sum()) for t in np.unique(tags)}
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell_tags)
    one = fem.Constant(mesh, 1.0)
    return {int(t): float(fem.assemble_scalar(fem.form(one * dx(int(t))))) for t in np.unique(tags)}


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
        nominal_volume_fractions: the requested volume fraction of each phase by tag (voids
            under the key :data:`VOID` ``= 0``), summing to 1: the geometry the generator aimed
            at. The mesh approximates it; :attr:`volume_fractions` are the meshed values.
        parameters: the generator arguments that determine the geometry (for caching/reports;
            a morphed cell adds its ``reference_volume_fraction``).
        node_coordinates: for cells that share their mesh with the other cells of a family
            (:class:`fe2hmm.rve.morph.CellFamily`): this cell's node coordinates, shape
            ``(num_nodes, 3)``, which :meth:`place_nodes` writes into the shared mesh. ``None``
            for a cell that owns its mesh.
    """

    mesh: _dmesh.Mesh
    cell_tags: _dmesh.MeshTags
    lower: np.ndarray
    upper: np.ndarray
    name: str
    nominal_volume_fractions: dict[int, float]
    parameters: dict = field(default_factory=dict)
    node_coordinates: np.ndarray | None = field(default=None, repr=False, compare=False)

    def place_nodes(self) -> None:
        """Give the (shared) mesh this cell's node coordinates; nothing for a cell owning its mesh.

        Cell problems call it before they assemble, so a problem built on one cell of a family
        solves whichever cell of the family it is handed.
        """
        if self.node_coordinates is not None:
            self.mesh.geometry.x[:] = self.node_coordinates

    @cached_property
    def volume_fractions(self) -> dict[int, float]:
        """Meshed volume fraction of each phase by tag: the phase's mesh volume over the box's.

        These are the fractions the cell problems see, so effective tensors computed on this
        cell belong to them (compare with bounds at these values, not at the nominal ones).
        The void fraction (key :data:`VOID`, when the nominal fractions have one) is the
        unmeshed rest of the box; without voids the fractions sum to 1 to round-off (the
        phases partition the box). Keys are ordered as in :attr:`nominal_volume_fractions`.
        """
        self.place_nodes()
        volumes = phase_volumes(self.mesh, self.cell_tags)
        fractions = {tag: volume / self.volume for tag, volume in volumes.items()}
        keys = list(self.nominal_volume_fractions) or list(fractions)
        keys += [t for t in fractions if t not in keys]
        if VOID in keys:
            fractions[VOID] = 1.0 - sum(fractions.values())
        return {t: fractions.get(t, 0.0) for t in keys}

    @property
    def named_volume_fractions(self) -> dict[str, float]:
        """:attr:`volume_fractions` keyed by phase name (``matrix``, ``inclusion``, ``void``)."""
        return {PHASE_NAMES.get(t, str(t)): f for t, f in self.volume_fractions.items()}

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
