r"""Diffusion cell problems: effective conductivity / permeability tensors K*.

For a unit macro gradient :math:`e_i` the micro field is :math:`u_i = e_i\cdot y + w_i` with

.. math:: \int_Y k\,(e_i + \nabla w_i)\cdot\nabla v\,\mathrm{d}y = 0 \quad \forall v,

and :math:`K^*_{ji} = |Y|^{-1}\int_Y k\,(e_i + \nabla w_i)\cdot e_j`. The boundary condition on
the fluctuation :math:`w` selects the variant:

- ``"periodic"``: :math:`w` periodic (dof reduction, :mod:`fe2hmm.micro.cells.periodic`);
- ``"affine"`` (linear Dirichlet): :math:`w = 0` on :math:`\partial Y` — an upper bound;
- ``"flux"`` (uniform flux, Neumann): :math:`k\nabla u\cdot n = Q\cdot n` on :math:`\partial Y`,
  then :math:`K^* = S^{-1}` with :math:`S_{ji} = \langle\partial_j u_i\rangle` for
  :math:`Q = e_i` — a lower bound.

All ``d`` load cases share one sparse Cholesky factorisation. Phases with zero conductivity
(meshed voids) are handled by dropping the dofs they alone touch; voids that are not meshed are
natural no-flux holes. Every conducting connected component is pinned once (fluctuations are
defined up to a constant) and reported with zero mean.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

from fe2hmm.checks import check_cell_size, check_contrast, installed_memory
from fe2hmm.micro.cells.condensation import condense_tangent
from fe2hmm.micro.cells.geometry import CellGeometry, MeshProblems, SharedMeshProblem
from fe2hmm.micro.cells.linalg import SPDFactorization, solve_constrained
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.phases import phase_field, phase_materials, phase_name
from fe2hmm.micro.cells.sparse import CSRMatrix, connected_components
from fe2hmm.micro.interface import LinearMicroModel
from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE

__all__ = [
    "BOUNDARY_CONDITIONS",
    "DiffusionCellProblem",
    "DiffusionCellSolution",
    "DiffusionCellModel",
    "homogenize_diffusion",
]

#: Boundary conditions on the fluctuation.
BOUNDARY_CONDITIONS = ("periodic", "affine", "flux")


class DiffusionCellSolution:
    """Result of a diffusion cell problem.

    Attributes:
        effective_tensor: K*, shape ``(d, d)``.
        dofs: number of unknowns of the solved system (after constraints).
        seconds: wall-time split: ``"assemble"`` (stiffness matrix), ``"setup"`` (periodic
            reduction, connectivity, right-hand sides), ``"factorize"``, ``"solve"`` (all load
            cases), ``"postprocess"`` (K*), ``"total"``.
    """

    def __init__(
        self,
        effective_tensor: np.ndarray,
        V: fem.FunctionSpace,
        nodal_fluctuations: np.ndarray,
        dofs: int,
        seconds: dict[str, float],
        cell: RVE | None = None,
    ) -> None:
        self.effective_tensor = effective_tensor
        self.dofs = dofs
        self.seconds = seconds
        self._cell = cell
        self._V = V
        self._W = nodal_fluctuations
        self._fluctuations: list[fem.Function] | None = None

    @property
    def fluctuations(self) -> list[fem.Function]:
        """``w_i`` for the unit gradients ``e_i`` as Lagrange functions with zero cell mean.

        For flux boundary conditions, the micro field of the unit-gradient load case minus
        ``e_i·y``. Built on first access (the fields are for plotting and reconstruction). The
        fields live on the cell's mesh; for a morphed cell, which shares its mesh with its family
        (:mod:`fe2hmm.rve.morph`), each access places this cell's nodes in it.
        """
        if self._cell is not None:
            self._cell.place_nodes()
        if self._fluctuations is None:
            V, W = self._V, self._W
            v = ufl.TestFunction(V)
            n = W.shape[0]
            mass = fem.assemble_vector(fem.form(v * ufl.dx)).array[:n]
            W = W - (mass @ W) / mass.sum()  # zero cell mean: ∫w = Σ_i w_i ∫φ_i exactly
            self._fluctuations = []
            for i in range(W.shape[1]):
                w = fem.Function(V, name=f"w{i}")
                w.x.array[:n] = W[:, i]
                w.x.scatter_forward()
                self._fluctuations.append(w)
        return self._fluctuations

    def write_xdmf(self, filename: str, cell_tags: _dmesh.MeshTags | None = None) -> None:
        """Write the cell mesh, its phase tags and the fluctuations ``w_i`` to XDMF (ParaView).

        Args:
            filename: output ``.xdmf`` path (an ``.h5`` file is written beside it).
            cell_tags: phase tags to include (e.g. ``rve.cell_tags``).
        """
        from fe2hmm.micro.cells.output import write_cell_fields

        write_cell_fields(filename, self.fluctuations, cell_tags)  # nodes placed by fluctuations


def _conductivity_parser(dim: int):
    """``parse(value, phase) -> (d, d)`` tensor of a conductivity (scalar or tensor, >= 0)."""

    def parse(value, phase: int) -> np.ndarray:
        label = phase_name(phase)
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"conductivity of phase {label} must be a number or a {dim}x{dim} tensor, "
                f"got {value!r}"
            ) from None
        if arr.shape == ():
            if not np.isfinite(arr) or arr < 0:
                raise ValueError(
                    f"conductivity of phase {label} must be a finite number >= 0, got {value!r}"
                )
            return arr * np.eye(dim)
        if arr.shape != (dim, dim):
            raise ValueError(
                f"conductivity of phase {label} must be a scalar or a {dim}x{dim} tensor, "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)) or not np.allclose(arr, arr.T, rtol=1e-12, atol=0):
            raise ValueError(f"conductivity tensor of phase {label} must be finite and symmetric")
        if np.linalg.eigvalsh(arr).min() < 0:
            raise ValueError(f"conductivity tensor of phase {label} must be positive semi-definite")
        return arr

    return parse


def _check_conductivity_contrast(tensors: dict[int, np.ndarray]) -> None:
    """Largest conductivity at most :data:`~fe2hmm.checks.MAX_CONTRAST` times the matrix's."""
    largest = {
        f"conductivity of phase {phase_name(p)}": float(np.linalg.eigvalsh(k).max())
        for p, k in tensors.items()
    }
    matrix = float(np.linalg.eigvalsh(tensors[MATRIX]).min()) if MATRIX in tensors else 0.0
    check_contrast(largest, matrix, "inclusion")


class DiffusionCellProblem(SharedMeshProblem):
    """The diffusion cell problem on one RVE.

    Args:
        rve: the unit cell (mesh with phase tags).
        conductivity: phase tag -> conductivity (scalar or ``(d, d)`` tensor, >= 0). Phases with
            0 do not conduct (voids meshed as a phase).
        bc: boundary condition, one of :data:`BOUNDARY_CONDITIONS`.
        degree: Lagrange degree of the fluctuation.
        backend: linear solver backend (:data:`fe2hmm.micro.cells.linalg.BACKENDS`).

    Attributes:
        reduced_system: after :meth:`solve`, the SPD matrix and right-hand sides ``(n, d)``
            that were factorised and solved (constraints applied), for inspection/benchmarks.

    Raises:
        ValueError: unknown bc, missing/negative conductivity, nothing conducts.
    """

    def __init__(
        self,
        rve: RVE,
        conductivity: dict[int, float | np.ndarray],
        bc: str = "periodic",
        degree: int = 1,
        backend: str = "mumps",
    ) -> None:
        if bc not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown boundary condition {bc!r}; valid: {BOUNDARY_CONDITIONS}")
        if int(degree) != degree or degree < 1:
            raise ValueError(f"degree must be an integer >= 1, got {degree!r}")
        self.rve = rve
        self.bc = bc
        self.backend = backend
        parse = _conductivity_parser(rve.dim)
        self.conductivity = phase_materials(rve, conductivity, parse, "conductivity")
        if all(not np.any(k) for k in self.conductivity.values()):
            raise ValueError("every phase has zero conductivity: nothing conducts")
        _check_conductivity_contrast(self.conductivity)
        if rve.parameters.get("resolution") is not None:
            check_cell_size(
                rve.dim, rve.parameters["resolution"], int(degree), 1, memory=installed_memory()
            )
        self.V = fem.functionspace(rve.mesh, ("Lagrange", int(degree)))
        self._shared: dict = {}  # see _structure

    def _structure(self) -> dict:
        """What the topology and the phases fix, built at the first solve and shared by copies."""
        if self._shared:
            return self._shared
        s: dict = {}  # filled completely, then shared (a failure leaves nothing half-built)
        rve, V, d = self.rve, self.V, self.rve.dim
        mesh = rve.mesh
        k = phase_field(rve, self.conductivity, (d, d))
        n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
        values = k.x.array.reshape(-1, d * d)[k.function_space.dofmap.list[:n_cells, 0]]
        conducting = np.abs(values).max(axis=1) > 0
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        s["k"] = k  # the form's coefficient: kept alive with the form
        s["a"] = fem.form(ufl.inner(k * ufl.grad(u), ufl.grad(v)) * ufl.dx)
        s["matrix"] = fem.create_matrix(s["a"])
        n_nodes = V.dofmap.index_map.size_local
        if conducting.all():
            s["links"] = None  # the matrix sparsity is the mesh graph: every node conducts
        else:  # graph of nodes linked by conducting cells (robust to zero stiffness entries)
            s["links"] = _ConductingGraph.of_cells(n_nodes, V.dofmap.list[:n_cells][conducting])
        if self.bc == "periodic":
            s["pmap"] = PeriodicDofMap(V, rve.lower, rve.upper)
        if self.bc == "flux":
            ds, n_vec = rve.box_measure(), ufl.FacetNormal(mesh)
            s["flux_forms"] = [fem.form(n_vec[j] * v * ds) for j in range(d)]
        s["factorization"] = SPDFactorization(backend=self.backend)
        self._shared.update(s)
        return self._shared

    def solve(self) -> DiffusionCellSolution:
        """Solve the ``d`` unit-gradient load cases and return K*.

        The first solve builds the problem's structure (:meth:`for_cell` copies share it); every
        solve places the cell's nodes (:meth:`~fe2hmm.rve.cell.RVE.place_nodes`), assembles and
        refactorises.

        Returns:
            The effective tensor, zero-mean fluctuations, dof count and timings.

        Raises:
            RuntimeError: the factorisation or a solve failed.
        """
        t_start = time.perf_counter()
        rve, V, d = self.rve, self.V, self.rve.dim
        rve.place_nodes()
        s = self._structure()
        A = s["matrix"]
        A.data[:] = 0.0
        fem.assemble_matrix(A, s["a"])
        n_nodes = V.dofmap.index_map.size_local
        A = CSRMatrix.from_dolfinx(A, n_nodes)
        seconds = {"assemble": time.perf_counter() - t_start}
        X = V.tabulate_dof_coordinates()[:n_nodes, :d] - np.asarray(rve.lower)
        if self.bc == "flux":
            K, W, ndofs = self._solve_flux(A, X, s, seconds)
        else:
            K, W, ndofs = self._solve_kinematic(A, X, s, seconds)
        seconds["total"] = time.perf_counter() - t_start
        seconds["setup"] = seconds["total"] - sum(
            seconds[key] for key in ("assemble", "factorize", "solve", "postprocess")
        )
        return DiffusionCellSolution(K, V, W, ndofs, seconds, rve)

    @staticmethod
    def _fixed_dofs(M: CSRMatrix, links: _ConductingGraph | None, fixed: np.ndarray) -> np.ndarray:
        """Mask of dofs to eliminate: Dirichlet ``fixed``, non-conducting, one pin per component.

        A component of the conducting graph that holds no fixed dof is pinned at its lowest dof
        (the fluctuation is defined up to a constant there).
        """
        if links is None:  # every node conducts: the graph of the matrix
            active = np.ones(M.shape[0], dtype=bool)
            rows, cols = M.row_indices(), M.indices
        else:
            active, rows, cols = links
        n_comp, label = connected_components(M.shape[0], rows, cols)
        has_fixed = np.zeros(n_comp, dtype=bool)
        has_fixed[label[fixed & active]] = True
        # inactive nodes are isolated in ``links`` (own components): never pinned
        has_fixed[label[~active]] = True
        _, first = np.unique(label, return_index=True)
        pins = first[~has_fixed]
        eliminate = fixed | ~active
        eliminate[pins] = True
        return eliminate

    def _solve_kinematic(self, A, X, s, seconds):
        rve = self.rve
        pmap = s.get("pmap")
        M = A if pmap is None else pmap.reduce_matrix(A)
        if "eliminate" not in s:  # the constraints depend on the topology only
            links = s["links"]
            if pmap is not None:
                links = None if links is None else links.reduced(pmap)
                fixed = np.zeros(M.shape[0], dtype=bool)
            else:
                fixed = rve.on_box((X + np.asarray(rve.lower)).T)
            s["eliminate"] = self._fixed_dofs(M, links, fixed)
        eliminate = s["eliminate"]
        # K_ji = |Y|^-1 y_j^T A (y_i + w_i): the fluctuation condensed
        t2 = time.perf_counter()
        condensed = condense_tangent(
            A,
            X,
            rve.volume,
            eliminate,
            pmap,
            reduced=M,
            backend=self.backend,
            seconds=seconds,
            factorization=s["factorization"],
        )
        self.reduced_system = condensed.system
        seconds["postprocess"] = time.perf_counter() - t2 - seconds["factorize"] - seconds["solve"]
        return condensed.tangent, condensed.fluctuations, int(M.shape[0] - eliminate.sum())

    def _solve_flux(self, A, X, s, seconds):
        rve = self.rve
        n_nodes = A.shape[0]
        R = np.column_stack([fem.assemble_vector(f).array[:n_nodes] for f in s["flux_forms"]])
        if "eliminate" not in s:
            s["eliminate"] = self._fixed_dofs(A, s["links"], np.zeros(n_nodes, dtype=bool))
        eliminate = s["eliminate"]
        U, self.reduced_system = solve_constrained(
            A, R, eliminate, self.backend, seconds, s["factorization"]
        )
        t2 = time.perf_counter()
        S = R.T @ U / rve.volume  # S_ji = <d_j u_i> for the unit flux Q = e_i
        S = 0.5 * (S + S.T)
        K = np.linalg.inv(S)
        # fluctuations of the unit *gradient* load cases: u = Σ_k U_k K_ki, w = u - e_i·y
        W = U @ K - X
        if s["links"] is not None:  # nodes touched by no conducting cell carry no field
            W[~s["links"].active] = 0.0
        seconds["postprocess"] = time.perf_counter() - t2
        return K, W, int(n_nodes - eliminate.sum())


class _ConductingGraph(NamedTuple):
    """Connectivity of the conducting cells.

    ``active`` marks the nodes that a conducting cell touches, shape ``(n,)``; the edges
    ``(rows, cols)`` join the nodes of each conducting cell.
    """

    active: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def of_cells(cls, n_nodes: int, cell_dofs: np.ndarray) -> _ConductingGraph:
        active = np.zeros(n_nodes, dtype=bool)
        active[cell_dofs.ravel()] = True
        rows = np.repeat(cell_dofs[:, 0], cell_dofs.shape[1] - 1)  # a star per cell
        return cls(active, rows, cell_dofs[:, 1:].ravel())

    def reduced(self, pmap: PeriodicDofMap) -> _ConductingGraph:
        """The same graph on the periodic (reduced) nodes."""
        m = pmap.full_to_reduced
        active = np.zeros(pmap.num_reduced, dtype=bool)
        active[m[np.flatnonzero(self.active)]] = True
        return _ConductingGraph(active, m[self.rows], m[self.cols])


def homogenize_diffusion(
    rve: RVE,
    conductivity: dict[int, float | np.ndarray],
    bc: str = "periodic",
    degree: int = 1,
    backend: str = "mumps",
) -> DiffusionCellSolution:
    """Effective conductivity of one RVE (convenience wrapper of :class:`DiffusionCellProblem`).

    Args:
        rve: the unit cell.
        conductivity: phase tag -> conductivity (scalar or tensor, >= 0).
        bc: ``"periodic"``, ``"affine"`` or ``"flux"``.
        degree: Lagrange degree.
        backend: linear solver backend.

    Returns:
        The solution with ``effective_tensor`` of shape ``(d, d)``.
    """
    return DiffusionCellProblem(rve, conductivity, bc=bc, degree=degree, backend=backend).solve()


class DiffusionCellModel(LinearMicroModel):
    """Micro-model: flux ``q = -K*(φ) g`` from a cell problem at the point's volume fraction φ.

    One cell solve per point and evaluation; wrap it in :class:`fe2hmm.reuse.Dedupe` for one
    per distinct φ (remembered across evaluations).

    Inputs ``{"gradient": (d,)}`` (the macro gradient ``g = ∇T``), output ``{"flux": (d,)}``
    (Fourier/Darcy flux, physical sign), per-point parameter ``{"volume_fraction": ()}``; the
    tangent ∂q/∂g is ``-K*``. The macro residual of ``-∇·(K*∇T) = f`` is then
    ``∫ -q·∇v dx - ∫ f v dx``.

    Args:
        rve: generator name (see :func:`fe2hmm.rve.create`), e.g. ``"circle"``.
        matrix: conductivity of the matrix phase (> 0).
        inclusion: conductivity of the inclusion phase (>= 0; ignored for ``"voids"``).
        dim: spatial dimension (2 or 3).
        bc: cell boundary condition (:data:`BOUNDARY_CONDITIONS`).
        resolution: RVE mesh resolution (elements per cell edge); generator default if None.
        degree: Lagrange degree of the cell problem.
        rve_options: extra generator options (e.g. ``aspect_ratio``).
        keep_solutions: keep each :class:`DiffusionCellSolution` (fields for plotting) keyed by
            volume fraction in :attr:`solutions`.
        morph: make the cells by morphing a few reference meshes (:mod:`fe2hmm.rve.morph`; one
            cell problem per reference mesh serves all its cells); ``False`` meshes every cell.
    """

    def __init__(
        self,
        rve: str = "circle",
        matrix: float = 1.0,
        inclusion: float = 10.0,
        dim: int = 2,
        bc: str = "periodic",
        resolution: int | None = None,
        degree: int = 1,
        rve_options: dict | None = None,
        keep_solutions: bool = False,
        morph: bool = True,
    ) -> None:
        super().__init__()
        self.geometry = CellGeometry(rve, dim, resolution, rve_options or {}, morph)
        if bc not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown boundary condition {bc!r}; valid: {BOUNDARY_CONDITIONS}")
        tensors = phase_materials(
            self.geometry,
            {MATRIX: matrix, INCLUSION: inclusion},
            _conductivity_parser(self.geometry.dim),
            "conductivity",
        )
        if not np.any(np.asarray(matrix, dtype=float)):
            raise ValueError(f"matrix conductivity must be > 0, got {matrix!r}")
        _check_conductivity_contrast(tensors)
        if resolution is not None:
            check_cell_size(
                self.geometry.dim, resolution, int(degree), 1, memory=installed_memory()
            )
        self.dim, self.bc = self.geometry.dim, bc
        self.matrix, self.inclusion = matrix, inclusion
        self.degree = int(degree)
        self.keep_solutions = keep_solutions
        self.solutions: dict[float, DiffusionCellSolution] = {}
        materials = {MATRIX: matrix, INCLUSION: inclusion}
        self._problems = MeshProblems(
            lambda cell: DiffusionCellProblem(cell, materials, bc=bc, degree=self.degree)
        )

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"gradient": (d,)}``."""
        return {"gradient": (self.dim,)}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"flux": (d,)}``."""
        return {"flux": (self.dim,)}

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"volume_fraction": ()}``."""
        return {"volume_fraction": ()}

    def cache_identity(self) -> dict:
        """Geometry, materials, discretisation and BC of the cell problem (for the cache)."""
        return {
            # /2: cells mesh the nominal volume fractions; /3: morphed cells (other K*)
            "model": "DiffusionCellModel/3",
            "morph": self.geometry.morph,
            "rve": self.geometry.name,
            "rve_options": self.geometry.options,
            "dim": self.dim,
            "bc": self.bc,
            "matrix": np.asarray(self.matrix, dtype=float),
            "inclusion": np.asarray(self.inclusion, dtype=float),
            "resolution": self.geometry.resolution,
            "degree": self.degree,
        }

    def cell(self, volume_fraction: float) -> RVE:
        """The RVE of one volume fraction (morphed: it shares its family's mesh)."""
        return self.geometry.create(volume_fraction)

    def conductivity_tensor(self, volume_fraction: float) -> np.ndarray:
        """K* for one volume fraction, shape ``(d, d)``."""
        solution = self._problems(self.cell(volume_fraction)).solve()
        if self.keep_solutions:
            self.solutions[float(volume_fraction)] = solution
        return solution.effective_tensor

    def effective_tensors(self, parameters: dict[str, np.ndarray]) -> dict:
        """``{("flux", "gradient"): -K*(φ)}`` for one volume fraction φ."""
        K = self.conductivity_tensor(float(parameters["volume_fraction"]))
        return {("flux", "gradient"): -K}
