r"""Periodic Stokes cell problem: the permeability tensor of a porous cell.

The fluid fills the matrix phase of the cell (of a ``"voids"`` cell: the holes are the solid
grains; of a cell with inclusions, e.g. a random packing or an image: the inclusions are, their
velocity and pressure dofs eliminated and the integrals taken over the matrix cells); with
viscosity :math:`\mu` and a unit mean pressure gradient :math:`-e_j` as the load, the periodic
velocity :math:`u^{(j)}` and pressure fluctuation :math:`p^{(j)}` solve

.. math:: -\mu\Delta u^{(j)} + \nabla p^{(j)} = e_j, \qquad \nabla\cdot u^{(j)} = 0 \ \text{in the
   fluid}, \qquad u^{(j)} = 0 \ \text{on the grains},

periodic on the box, and the permeability is the mean (superficial) velocity over the whole cell,
:math:`K_{ij} = |Y|^{-1}\int_{Y_f} u^{(j)}_i\,dy` (Darcy: :math:`\bar u = -K\nabla\bar p/\mu`;
with :math:`\mu = 1` and a unit cell, :math:`K` is the permeability divided by the cell size
squared). Discretisation: Taylor–Hood (P2 velocity, P1 pressure) on the cell mesh; periodicity by
dof reduction of both fields (:class:`~fe2hmm.micro.cells.periodic.PeriodicDofMap`), no-slip by
elimination, the pressure fixed at one node per pore part (its mean is free), one MUMPS LU
factorisation for the ``d`` load cases. :math:`K_{ij} = |Y|^{-1} L_i^\top X_j` with :math:`L_i`
the load vector of :math:`e_i`, the same vectors as the right-hand sides: symmetric (to
round-off) and positive semi-definite — definite when the pore space connects in every direction
(a laminate's ``K`` is 0 across its layers). The pressure is fixed at one node of each connected
part of the pore space (periodic images joined): a part sealed off by the grains, as in image
cells, holds fluid at rest with a pressure constant of its own.
"""

from __future__ import annotations

import time

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.checks import check_cell_size, installed_memory, positive
from fe2hmm.micro.cells.geometry import CellGeometry, MeshProblems, SharedMeshProblem
from fe2hmm.micro.cells.linalg import solve_constrained
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.sparse import CSRMatrix, connected_components
from fe2hmm.micro.interface import LinearMicroModel
from fe2hmm.rve.cell import MATRIX, RVE

__all__ = [
    "PermeabilityCellModel",
    "PermeabilityResult",
    "StokesCellProblem",
    "check_flow_parameters",
]


def check_flow_parameters(viscosity: float, degree: int) -> None:
    """Check a Stokes problem's viscosity and Taylor–Hood velocity degree (before any work).

    Raises:
        ValueError: one line: a viscosity that is not a finite number > 0, a degree that is
            not an integer >= 2.
    """
    positive("viscosity", viscosity)
    if not isinstance(degree, int) or isinstance(degree, bool) or degree < 2:
        raise ValueError(f"degree must be an integer >= 2 (Taylor-Hood), got {degree!r}")


class PermeabilityResult:
    """Result of :meth:`StokesCellProblem.solve`.

    Attributes:
        permeability: ``K`` (permeability / cell size², viscosity 1 → ``K/μ`` otherwise),
            shape ``(d, d)``, as solved (symmetric to round-off; not symmetrised).
        velocity: the velocity field of each unit load ``e_j`` in the blocked layout of
            :attr:`StokesCellProblem.V` (node · d + component), shape ``(n_nodes · d, d)``.
        dofs: unknowns of the reduced, constrained system.
        seconds: wall-time split ``{"assemble", "factorize", "solve"}``.
    """

    def __init__(self, permeability, velocity, dofs, seconds) -> None:
        self.permeability = permeability
        self.velocity = velocity
        self.dofs = dofs
        self.seconds = seconds


class StokesCellProblem(SharedMeshProblem):
    """Periodic Stokes flow in the pore space of a cell (Taylor–Hood), giving ``K``.

    Built once per cell mesh: :meth:`for_cell` gives the problem on another (morphed) cell of
    the same mesh, sharing the function spaces, forms, periodic maps and walls
    (:class:`~fe2hmm.micro.cells.geometry.MeshProblems`); :meth:`solve` places the cell's nodes,
    assembles and factorises.

    Args:
        rve: the cell; its matrix phase is the fluid, every other phase (and every unmeshed
            hole) is solid, and every boundary facet of the fluid inside the box (not on its
            faces) is a no-slip wall — e.g. ``rve.create("voids", volume_fraction=φ_s)`` for a
            periodic array of grains of solid fraction ``φ_s``, or ``rve.create("random", ...)``
            for a random packing (its inclusions are the grains).
        viscosity: dynamic viscosity μ > 0 (``K`` scales as 1/μ).
        degree: velocity degree ``k >= 2`` (pressure ``k − 1``).

    Attributes:
        pore_parts: connected parts of the pore space (periodic images joined), each with its
            pressure fixed at one node; more than 1 when grains seal off pores (image cells).

    Raises:
        ValueError: bad viscosity or degree; a cell without matrix (fluid) cells, or without
            walls (the flow would be unbounded).
    """

    def __init__(self, rve: RVE, viscosity: float = 1.0, degree: int = 2) -> None:
        check_flow_parameters(viscosity, degree)
        rve.place_nodes()  # a morphed cell's own nodes in its family's shared mesh
        tags = rve.cell_tags
        fluid = np.asarray(tags.indices)[np.asarray(tags.values) == MATRIX]
        if fluid.size == 0:
            raise ValueError(
                f"StokesCellProblem: the cell has no matrix (phase {MATRIX}) cells to hold the "
                "fluid"
            )
        d = rve.dim
        mesh = rve.mesh
        n_cells = mesh.topology.index_map(d).size_local
        is_fluid = np.zeros(n_cells, dtype=bool)
        is_fluid[fluid] = True
        walls = _wall_facets(mesh, rve)  # the holes' boundaries (voids)
        if walls.size == 0 and is_fluid.all():
            raise ValueError(
                "the cell has no walls inside the box (no grains): the periodic Stokes flow is "
                "unbounded; use a porous cell such as rve.create('voids', ...)"
            )
        self.rve, self.viscosity, self.degree = rve, float(viscosity), int(degree)
        t0 = time.perf_counter()
        # the whole (periodic) cell mesh, integrals over the fluid cells only; the velocity
        # vanishes on the solid cells (no slip on their faces) and the pressure lives where
        # the fluid is: the dofs of the other cells are eliminated
        V = fem.functionspace(mesh, ("Lagrange", degree, (d,)))
        Q = fem.functionspace(mesh, ("Lagrange", degree - 1))
        self.V, self.Q = V, Q
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        mu = fem.Constant(mesh, self.viscosity)
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=tags)(MATRIX)
        self._a = fem.form(mu * ufl.inner(ufl.grad(u), ufl.grad(v)) * dx)
        self._loads = [fem.form(v[j] * dx) for j in range(d)]
        self._divergence = _divergence_forms(V, ufl.TrialFunction(Q), dx)
        self._map_v = PeriodicDofMap(V, rve.lower, rve.upper)
        self._map_q = PeriodicDofMap(Q, rve.lower, rve.upper)
        nv, nq = self._map_v.num_reduced, self._map_q.num_reduced
        self._nv_full = V.dofmap.index_map.size_local * d
        self._rv = self._map_v.full_to_reduced[: self._nv_full]
        self._rq = self._map_q.full_to_reduced[: Q.dofmap.index_map.size_local]
        nodes = np.concatenate(
            [
                fem.locate_dofs_topological(V, d - 1, walls),
                V.dofmap.list[:n_cells][~is_fluid].ravel(),
            ]
        )
        wall_dofs = (nodes[:, None] * d + np.arange(d)).reshape(-1)
        wall_dofs = wall_dofs[wall_dofs < self._nv_full]
        self._eliminate = np.zeros(nv + nq, dtype=bool)
        self._eliminate[self._rv[wall_dofs]] = True
        # the pressure where there is fluid, one node fixed per connected part of the pore space
        fluid_q = self._rq[Q.dofmap.list[:n_cells][is_fluid]]  # (fluid cells, dofs), reduced
        in_fluid = np.zeros(nq, dtype=bool)
        in_fluid[fluid_q.ravel()] = True
        count, part = connected_components(nq, fluid_q[:, :-1].ravel(), fluid_q[:, 1:].ravel())
        _, first = np.unique(part, return_index=True)
        self.pore_parts = int(np.unique(part[in_fluid]).size)
        self._eliminate[nv + first] = True
        self._eliminate[nv:][~in_fluid] = True
        self._setup_seconds = time.perf_counter() - t0

    @property
    def num_dofs(self) -> int:
        """Unknowns of the reduced, constrained system."""
        return int((~self._eliminate).sum())

    def _assemble(self) -> tuple[CSRMatrix, np.ndarray]:
        """The reduced saddle-point matrix and the ``d`` load vectors on the cell's nodes."""
        self.rve.place_nodes()
        d = self.rve.dim
        nv, nq = self._map_v.num_reduced, self._map_q.num_reduced
        rv, rq = self._rv, self._rq
        A = CSRMatrix.from_dolfinx(fem.assemble_matrix(self._a), self._nv_full)
        B = _divergence_block(self._divergence, self._nv_full, len(rq))
        rows_a, cols_a = A.row_indices(), A.indices
        rows_b, cols_b = B.row_indices(), B.indices
        # stored zeros on the diagonal: the eliminated pressure nodes and the dofs of solid cells
        # (outside the fluid integrals' pattern) get their unit diagonal there
        diagonal = np.arange(nv + nq)
        rows = np.concatenate([rv[rows_a], rv[rows_b], nv + rq[cols_b], diagonal])
        cols = np.concatenate([rv[cols_a], nv + rq[cols_b], rv[rows_b], diagonal])
        values = np.concatenate([A.data, B.data, B.data, np.zeros(nv + nq)])
        M = CSRMatrix.from_coo(rows, cols, values, (nv + nq, nv + nq))
        L = np.stack([fem.assemble_vector(form).array for form in self._loads], axis=1)
        loads = np.zeros((nv + nq, d))
        loads[:nv] = self._map_v.reduce_vector(L)
        return M, loads

    def solve(self) -> PermeabilityResult:
        """Solve the ``d`` unit-gradient cell problems (one LU factorisation).

        Returns:
            The permeability tensor, the velocity fields, the unknowns and the time split.
        """
        t0 = time.perf_counter()
        M, L = self._assemble()
        seconds: dict = {"assemble": time.perf_counter() - t0 + self._setup_seconds}
        X, _ = solve_constrained(M, L, self._eliminate, "mumps-lu", seconds)
        K = L.T @ X / self.rve.volume
        return PermeabilityResult(K, X[self._rv], self.num_dofs, seconds)


def _divergence_forms(
    V: fem.FunctionSpace, p, dx: ufl.Measure
) -> list[tuple[fem.Form, np.ndarray, int]]:
    """The divergence forms of :func:`_divergence_block`, one per velocity component ``i``.

    Each entry: the form ``-∫ p ∂v_i/∂x_i`` on the collapsed scalar space, the component's dofs
    in ``V`` and the collapsed space's number of owned dofs.
    """
    forms = []
    for i in range(V.mesh.topology.dim):
        Vi, parent = V.sub(i).collapse()
        form = fem.form(-p * ufl.TestFunction(Vi).dx(i) * dx)
        forms.append((form, np.asarray(parent).reshape(-1), Vi.dofmap.index_map.size_local))
    return forms


def _divergence_block(forms, n_rows: int, n_cols: int) -> CSRMatrix:
    """``B = -∫ p div v`` (rows: the owned dofs of the blocked velocity space, columns: pressure).

    Assembled per velocity component on the collapsed scalar space (:func:`_divergence_forms`):
    DOLFINx's Python CSR assembler takes square block sizes only, and PETSc's assembler
    (``dolfinx.fem.petsc``) would import numba and SciPy into the one-shot CLI process.
    """
    rows, cols, values = [], [], []
    for form, parent, n_owned in forms:
        # rectangular (n_Vi × n_Q): from_dolfinx keeps columns < n_Vi, all of Q's (fewer dofs)
        Bi = CSRMatrix.from_dolfinx(fem.assemble_matrix(form), n_owned)
        r, c = Bi.row_indices(), Bi.indices
        rows.append(parent[r])
        cols.append(c)
        values.append(Bi.data)
    rows, cols, values = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    keep = (rows < n_rows) & (cols < n_cols)
    return CSRMatrix.from_coo(rows[keep], cols[keep], values[keep], (n_rows, n_cols))


def _wall_facets(mesh: dmesh.Mesh, rve: RVE) -> np.ndarray:
    """Boundary facets of the fluid mesh that do not lie in one face of the box (the walls).

    A facet is a box facet if all its vertices lie in the *same* face (one face at a time, so a
    wall facet cutting a box edge with its vertices on two faces stays a wall).
    """
    fdim = mesh.topology.dim - 1
    mesh.topology.create_connectivity(fdim, mesh.topology.dim)
    boundary = dmesh.exterior_facet_indices(mesh.topology)
    tol = 1e-10 * float(rve.period.max())
    box = [
        dmesh.locate_entities_boundary(mesh, fdim, lambda x, i=i, c=c: np.abs(x[i] - c) < tol)
        for i in range(rve.dim)
        for c in (rve.lower[i], rve.upper[i])
    ]
    return np.setdiff1d(boundary, np.concatenate(box))


class PermeabilityCellModel(LinearMicroModel):
    """Micro-model: Darcy flux ``q = -(K(φ)/μ) ∇p`` from a periodic Stokes cell.

    ``K(φ)`` is that of the cell at the point's solid fraction φ. Input
    ``{"pressure_gradient": (d,)}``, output ``{"velocity": (d,)}`` (the superficial velocity),
    parameter ``{"volume_fraction": ()}`` (the solid fraction of a ``"voids"`` cell: its holes
    are the grains); the tangent is ``-K/μ``. One cell solve per point and evaluation; wrap it
    in :class:`fe2hmm.reuse.Dedupe` for one per distinct φ. The morphed cells of a family share
    one problem per reference mesh (:class:`~fe2hmm.micro.cells.geometry.MeshProblems`), so
    any number of distinct φ costs a few function spaces, not one per φ.

    Args:
        dim: 2 (cylinders) or 3 (spheres).
        viscosity: dynamic viscosity μ > 0.
        cell_size: period ``L`` of the microstructure (> 0): ``K = K*(φ) L²`` with ``K*`` the
            unit cell's tensor (:class:`StokesCellProblem`).
        resolution: cell mesh resolution (generator default if None).
        degree: velocity degree (>= 2, Taylor–Hood).
        morph: make the cells by morphing reference meshes (:mod:`fe2hmm.rve.morph`).

    Raises:
        ValueError: bad viscosity, cell size, degree, dimension or resolution, or a cell too
            large for the memory (on construction, before any meshing).
    """

    def __init__(
        self,
        dim: int = 2,
        viscosity: float = 1.0,
        cell_size: float = 1.0,
        resolution: int | None = None,
        degree: int = 2,
        morph: bool = True,
    ) -> None:
        super().__init__()
        check_flow_parameters(viscosity, degree)
        positive("cell_size", cell_size)
        self.geometry = CellGeometry("voids", dim, resolution, {}, morph)
        if resolution is not None:  # velocity (d components) and pressure: d + 1 fields
            check_cell_size(
                self.geometry.dim, resolution, int(degree), self.geometry.dim + 1,
                memory=installed_memory(),
            )  # fmt: skip
        self.dim, self.degree = self.geometry.dim, int(degree)
        self.viscosity, self.cell_size = float(viscosity), float(cell_size)
        self._problems = MeshProblems(lambda cell: StokesCellProblem(cell, degree=self.degree))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"pressure_gradient": (d,)}``."""
        return {"pressure_gradient": (self.dim,)}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"velocity": (d,)}``."""
        return {"velocity": (self.dim,)}

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"volume_fraction": ()}`` (solid fraction)."""
        return {"volume_fraction": ()}

    def cache_identity(self) -> dict:
        """Geometry and discretisation of the cell, viscosity and cell size (for the cache)."""
        return {
            "model": "PermeabilityCellModel/1",
            "morph": self.geometry.morph,
            "dim": self.dim,
            "resolution": self.geometry.resolution,
            "degree": self.degree,
            "viscosity": self.viscosity,
            "cell_size": self.cell_size,
        }

    def permeability(self, volume_fraction: float) -> np.ndarray:
        """The permeability tensor ``K*(φ) L²`` (viscosity not included), shape ``(d, d)``."""
        cell = self.geometry.create(float(volume_fraction), shared=True)
        K = self._problems(cell).solve().permeability
        return K * self.cell_size**2

    def effective_tensors(self, parameters: dict[str, np.ndarray]) -> dict:
        """``{("velocity", "pressure_gradient"): -K/μ}`` for one solid fraction."""
        K = self.permeability(float(parameters["volume_fraction"]))
        return {("velocity", "pressure_gradient"): -K / self.viscosity}
