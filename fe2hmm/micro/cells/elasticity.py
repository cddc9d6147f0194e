r"""Linear elastic cell problems: effective stiffness C* (plane strain and 3D).

For a unit macro strain :math:`E_I` (Voigt index I, engineering shear) the micro displacement is
:math:`u_I = E_I\,y + w_I` with

.. math:: \int_Y \sigma(\varepsilon(u_I)) : \varepsilon(v)\,\mathrm{d}y = 0 \quad \forall v,
   \qquad \sigma = \lambda\,\mathrm{tr}(\varepsilon)\,I + 2\mu\,\varepsilon ,

and the averaged stress gives the column :math:`C^*_{JI} = \langle\sigma(u_I)\rangle : E_J
= |Y|^{-1} a(u_I, E_J y)` (energy identity). Boundary conditions on the fluctuation ``w``:

- ``"periodic"``: periodic (dof reduction); translations are removed by fixing one node;
- ``"affine"``: ``w = 0`` on the box boundary (upper bound);
- ``"traction"``: uniform traction :math:`\sigma n = \Sigma n` for unit macro stresses; the
  average strain :math:`|Y|^{-1}\int_{\partial Y}\mathrm{sym}(u\otimes n)` gives the compliance
  and :math:`C^* = S^{-1}` (lower bound). Rigid-body motions are removed by a statically
  determinate support (3-2-1 rule at box corners), not by springs: the loads are self-equilibrated.

Voigt order: 2D ``(11, 22, 12)``, 3D ``(11, 22, 33, 23, 13, 12)``; shear strains are engineering
(γ = 2ε), so ``C*[-1, -1]`` is the in-plane shear modulus. Voids must not be meshed (use the
``voids`` RVE); meshed phases need E > 0.
"""

from __future__ import annotations

import time

import numpy as np
import ufl
from dolfinx import fem

from fe2hmm.analytic import voigt_pairs
from fe2hmm.checks import check_cell_size, check_contrast, check_isotropic, installed_memory
from fe2hmm.micro.cells.condensation import condense_tangent
from fe2hmm.micro.cells.geometry import CellGeometry, MeshProblems, SharedMeshProblem
from fe2hmm.micro.cells.linalg import SPDFactorization, solve_constrained
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.phases import phase_field, phase_materials, phase_name
from fe2hmm.micro.cells.sparse import CSRMatrix
from fe2hmm.micro.interface import LinearMicroModel
from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE

__all__ = [
    "BOUNDARY_CONDITIONS",
    "ElasticityCellModel",
    "ElasticityCellProblem",
    "ElasticityCellSolution",
    "homogenize_elasticity",
    "lame_parameters",
    "phase_lame_parameters",
    "voigt_pairs",
    "voigt_to_tensor",
]

#: Boundary conditions on the fluctuation.
BOUNDARY_CONDITIONS = ("periodic", "affine", "traction")


def lame_parameters(E: float, nu: float, phase: int | str = "") -> tuple[float, float]:
    """Lamé parameters ``(λ, μ)`` of an isotropic phase (3D, and plane strain in 2D).

    Raises:
        ValueError: ``E`` outside ``(0, MAX_MODULUS]`` or ``nu`` outside ``(-1, 0.5)``, naming
            the phase (:func:`fe2hmm.checks.check_isotropic`).
    """
    check_isotropic(E, nu, f" of phase {phase}" if phase != "" else "")
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


def _check_elastic_contrast(materials: dict) -> None:
    """Young's moduli at most :data:`~fe2hmm.checks.MAX_CONTRAST` times the matrix's."""
    moduli = {f"E of phase {phase_name(p)}": float(m[0]) for p, m in materials.items()}
    if MATRIX in materials:
        check_contrast(moduli, float(materials[MATRIX][0]), "inclusion")


def phase_lame_parameters(material: tuple[float, float], phase: int) -> tuple[float, float]:
    """Lamé parameters ``(λ, μ)`` of the ``(E, nu)`` pair of one phase (a phase-material parser).

    Args:
        material: ``(E, nu)``.
        phase: the phase tag, for messages.

    Raises:
        ValueError: not a pair of numbers, or invalid ``E``/``nu`` (see :func:`lame_parameters`).
    """
    try:
        E, nu = (float(x) for x in material)
    except (TypeError, ValueError):
        raise ValueError(
            f"material of phase {phase_name(phase)} must be a pair (E, nu), got {material!r}"
        ) from None
    return lame_parameters(E, nu, phase_name(phase))


class ElasticityCellSolution:
    """Result of an elastic cell problem.

    Attributes:
        effective_tensor: C* in Voigt notation (engineering shear), ``(3, 3)`` or ``(6, 6)``.
        dofs: unknowns of the solved system (after constraints).
        hill_mandel_error: ``max |⟨σ(u_I):ε(u_J)⟩ - Σ_I:E_J| / max |C*|`` over all load cases.
        seconds: wall-time split (``assemble``, ``setup``, ``factorize``, ``solve``,
            ``postprocess``, ``total``).
    """

    def __init__(self, C, V, W, dofs, hill_mandel_error, seconds, cell: RVE | None = None):
        self.effective_tensor = C
        self.dofs = dofs
        self.hill_mandel_error = hill_mandel_error
        self.seconds = seconds
        self._V, self._W = V, W
        self._cell = cell
        self._fluctuations = None

    @property
    def fluctuations(self) -> list[fem.Function]:
        """Fluctuation displacements ``w_I`` of the unit-strain load cases (built on access).

        For a morphed cell, which shares its mesh with its family (:mod:`fe2hmm.rve.morph`),
        each access places this cell's nodes in the mesh.
        """
        if self._cell is not None:
            self._cell.place_nodes()
        if self._fluctuations is None:
            self._fluctuations = []
            n = self._W.shape[0]
            for i in range(self._W.shape[1]):
                w = fem.Function(self._V, name=f"w{i}")
                w.x.array[:n] = self._W[:, i]
                w.x.scatter_forward()
                self._fluctuations.append(w)
        return self._fluctuations

    def write_xdmf(self, filename: str, cell_tags=None) -> None:
        """Write the cell mesh, its phase tags and the fluctuations ``w_I`` to XDMF (ParaView).

        Args:
            filename: output ``.xdmf`` path (an ``.h5`` file is written beside it).
            cell_tags: phase tags to include (e.g. ``rve.cell_tags``).
        """
        from fe2hmm.micro.cells.output import write_cell_fields

        write_cell_fields(filename, self.fluctuations, cell_tags)


class ElasticityCellProblem(SharedMeshProblem):
    """The linear elastic cell problem on one RVE.

    Args:
        rve: the unit cell (mesh with phase tags; voids not meshed).
        materials: phase tag -> ``(E, nu)`` (Young's modulus > 0, Poisson ratio in (-1, 0.5)).
        bc: boundary condition, one of :data:`BOUNDARY_CONDITIONS`.
        degree: Lagrange degree of the displacement.
        backend: linear solver backend.

    Raises:
        ValueError: unknown bc, missing or invalid material.
    """

    def __init__(
        self,
        rve: RVE,
        materials: dict[int, tuple[float, float]],
        bc: str = "periodic",
        degree: int = 1,
        backend: str = "mumps",
    ) -> None:
        if bc not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown boundary condition {bc!r}; valid: {BOUNDARY_CONDITIONS}")
        if int(degree) != degree or degree < 1:
            raise ValueError(f"degree must be an integer >= 1, got {degree!r}")
        self.lame = phase_materials(rve, materials, phase_lame_parameters, "(E, nu)")
        _check_elastic_contrast(materials)
        if rve.parameters.get("resolution") is not None:
            check_cell_size(
                rve.dim,
                rve.parameters["resolution"],
                int(degree),
                rve.dim,
                memory=installed_memory(),
            )
        self.rve, self.bc, self.backend = rve, bc, backend
        d = rve.dim
        self.V = fem.functionspace(rve.mesh, ("Lagrange", int(degree), (d,)))
        self._shared: dict = {}  # see _structure

    def _structure(self) -> dict:
        """What the topology and the phases fix, built at the first solve and shared by copies."""
        if self._shared:
            return self._shared
        s: dict = {}  # filled completely, then shared (a failure leaves nothing half-built)
        d = self.rve.dim
        lam = phase_field(self.rve, {p: la for p, (la, _) in self.lame.items()})
        mu = phase_field(self.rve, {p: m for p, (_, m) in self.lame.items()})
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)

        def eps(w):
            return ufl.sym(ufl.grad(w))

        sigma = 2 * mu * eps(u) + lam * ufl.tr(eps(u)) * ufl.Identity(d)
        s["coefficients"] = (lam, mu)  # kept alive with the form
        s["a"] = fem.form(ufl.inner(sigma, eps(v)) * ufl.dx)
        s["matrix"] = fem.create_matrix(s["a"])
        if self.bc == "periodic":
            s["pmap"] = PeriodicDofMap(self.V, self.rve.lower, self.rve.upper)
        s["factorization"] = SPDFactorization(backend=self.backend)
        self._shared.update(s)
        return self._shared

    def _stiffness(self) -> CSRMatrix:
        s = self._structure()
        A = s["matrix"]
        A.data[:] = 0.0
        fem.assemble_matrix(A, s["a"])
        return CSRMatrix.from_dolfinx(A)

    def solve(self) -> ElasticityCellSolution:
        """Solve the unit-strain (or unit-stress) load cases and return C*.

        The first solve builds the problem's structure (:meth:`for_cell` copies share it); every
        solve places the cell's nodes, assembles and refactorises.

        Returns:
            C* (Voigt, engineering shear), fluctuations, dofs, Hill–Mandel error, timings.
        """
        t0 = time.perf_counter()
        rve, d, V = self.rve, self.rve.dim, self.V
        rve.place_nodes()
        A = self._stiffness()
        n_nodes = V.dofmap.index_map.size_local
        n = n_nodes * d
        seconds = {"assemble": time.perf_counter() - t0}
        X = V.tabulate_dof_coordinates()[:n_nodes, :d] - np.asarray(rve.lower)
        pairs = voigt_pairs(d)
        # affine displacement fields E_I y of the unit strains, flattened (node-major, bs = d)
        UE = np.zeros((n, len(pairs)))
        for col, (i, j) in enumerate(pairs):
            field = np.zeros((n_nodes, d))
            if i == j:
                field[:, i] = X[:, i]
            else:  # engineering shear gamma_ij = 1: eps_ij = eps_ji = 1/2
                field[:, i] = 0.5 * X[:, j]
                field[:, j] = 0.5 * X[:, i]
            UE[:, col] = field.reshape(-1)
        if self.bc == "traction":
            C, W, U, ndofs, hm = self._solve_traction(A, X, UE, seconds)
        else:
            C, W, U, ndofs, hm = self._solve_kinematic(A, X, UE, seconds)
        seconds["total"] = time.perf_counter() - t0
        seconds["setup"] = seconds["total"] - sum(
            seconds[k] for k in ("assemble", "factorize", "solve", "postprocess")
        )
        return ElasticityCellSolution(C, V, W, ndofs, hm, seconds, rve)

    def _solve_kinematic(self, A, X, UE, seconds):
        rve, d = self.rve, self.rve.dim
        s = self._structure()
        pmap = s.get("pmap")
        if pmap is not None:
            eliminate = np.zeros(pmap.num_reduced, dtype=bool)
            eliminate[:d] = True  # translations: fix one (reduced) node
        else:
            eliminate = np.repeat(rve.on_box((X + np.asarray(rve.lower)).T), d)
        t2 = time.perf_counter()
        # C_JI = |Y|^-1 a(u_I, E_J y), the fluctuation condensed
        condensed = condense_tangent(
            A,
            UE,
            rve.volume,
            eliminate,
            pmap,
            backend=self.backend,
            seconds=seconds,
            factorization=s["factorization"],
        )
        C, W = condensed.tangent, condensed.fluctuations
        U = UE + W
        energy = U.T @ (A @ U) / rve.volume  # <sigma(u_I) : eps(u_J)>
        hm = float(np.abs(energy - C).max() / np.abs(C).max())
        seconds["postprocess"] = time.perf_counter() - t2 - seconds["factorize"] - seconds["solve"]
        return C, W, U, int(eliminate.size - eliminate.sum()), hm

    def _solve_traction(self, A, X, UE, seconds):
        rve, d, V = self.rve, self.rve.dim, self.V
        mesh = rve.mesh
        lo = np.asarray(rve.lower, float)
        ds = rve.box_measure()
        nrm = ufl.FacetNormal(mesh)
        v = ufl.TestFunction(V)
        n = A.shape[0]
        R = []
        for i, j in voigt_pairs(d):
            g = v[i] * nrm[i] if i == j else v[i] * nrm[j] + v[j] * nrm[i]
            R.append(fem.assemble_vector(fem.form(g * ds)).array[:n])
        R = np.column_stack(R)  # (Σ_J n)·v for unit Voigt stresses = boundary strain functionals
        # 3-2-1 support at box corners: removes rigid motions, loads are self-equilibrated
        corners = [lo.copy(), lo + np.eye(d)[0] * rve.period[0]]
        if d == 3:
            corners.append(lo + np.eye(d)[1] * rve.period[1])
        nodes = [int(np.argmin(np.linalg.norm(X + lo - c, axis=1))) for c in corners]
        fixed_components = [range(d), range(1, d), range(2, d)][: len(nodes)]
        eliminate = np.zeros(n, dtype=bool)
        for node, comps in zip(nodes, fixed_components, strict=True):
            eliminate[[node * d + c for c in comps]] = True
        U, _ = solve_constrained(
            A, R, eliminate, self.backend, seconds, self._structure()["factorization"]
        )
        t2 = time.perf_counter()
        S = R.T @ U / rve.volume  # <eps_I> (engineering) for unit stress J
        energy = U.T @ (A @ U) / rve.volume  # <sigma : eps> = Σ_J : <eps_I> by Hill-Mandel
        hm = float(np.abs(energy - S).max() / np.abs(S).max())
        S = 0.5 * (S + S.T)
        C = np.linalg.inv(S)
        Ugrad = U @ C  # unit-strain load cases as combinations of the unit-stress ones
        W = Ugrad - UE
        seconds["postprocess"] = time.perf_counter() - t2
        return C, W, Ugrad, int(n - eliminate.sum()), hm


def homogenize_elasticity(
    rve: RVE,
    materials: dict[int, tuple[float, float]],
    bc: str = "periodic",
    degree: int = 1,
    backend: str = "mumps",
) -> ElasticityCellSolution:
    """Effective stiffness of one RVE (wrapper of :class:`ElasticityCellProblem`).

    Args:
        rve: the unit cell.
        materials: phase tag -> ``(E, nu)``.
        bc: ``"periodic"``, ``"affine"`` or ``"traction"``.
        degree: Lagrange degree.
        backend: linear solver backend.

    Returns:
        The solution with ``effective_tensor`` in Voigt notation.
    """
    return ElasticityCellProblem(rve, materials, bc=bc, degree=degree, backend=backend).solve()


def voigt_to_tensor(C: np.ndarray) -> np.ndarray:
    """Fourth-order ``C_ijkl`` from a Voigt matrix with engineering shear, ``(d, d, d, d)``.

    With engineering shear strains, ``C_voigt[I(ij), J(kl)] = C_ijkl`` for every index order.
    """
    m = C.shape[0]
    dim = {3: 2, 6: 3}.get(m)
    if dim is None or C.shape != (m, m):
        raise ValueError(f"Voigt matrix must be 3x3 (2D) or 6x6 (3D), got shape {C.shape}")
    index = np.zeros((dim, dim), dtype=int)
    for col, (i, j) in enumerate(voigt_pairs(dim)):
        index[i, j] = index[j, i] = col
    return C[index[:, :, None, None], index[None, None, :, :]]


class ElasticityCellModel(LinearMicroModel):
    """Micro-model: stress ``σ = C*(φ) : ε`` from an elastic cell problem per distinct φ.

    Input ``{"strain": (d, d)}`` (the macro small strain), output ``{"stress": (d, d)}``, per-point
    parameter ``{"volume_fraction": ()}``; the tangent is the fourth-order C* ``(d, d, d, d)``.
    Plane strain in 2D. The macro residual of ``-div σ = f`` is ``∫ σ : ε(v) dx - ∫ f·v dx``.

    Args:
        rve: generator name (see :func:`fe2hmm.rve.create`), e.g. ``"circle"`` or ``"voids"``.
        matrix: ``(E, nu)`` of the matrix.
        inclusion: ``(E, nu)`` of the inclusion (ignored for ``"voids"``).
        dim: 2 (plane strain) or 3.
        bc: cell boundary condition (:data:`BOUNDARY_CONDITIONS`).
        resolution: RVE mesh resolution; generator default if None.
        degree: Lagrange degree of the cell problem.
        rve_options: extra generator options.
        morph: make the cells by morphing a few reference meshes (:mod:`fe2hmm.rve.morph`; one
            cell problem per reference mesh serves all its cells); ``False`` meshes every cell.
    """

    def __init__(
        self,
        rve: str = "circle",
        matrix: tuple[float, float] = (1.0, 0.3),
        inclusion: tuple[float, float] = (10.0, 0.3),
        dim: int = 2,
        bc: str = "periodic",
        resolution: int | None = None,
        degree: int = 1,
        rve_options: dict | None = None,
        morph: bool = True,
    ) -> None:
        super().__init__()
        self.geometry = CellGeometry(rve, dim, resolution, rve_options or {}, morph)
        if bc not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown boundary condition {bc!r}; valid: {BOUNDARY_CONDITIONS}")
        materials = {MATRIX: matrix, INCLUSION: inclusion}
        phase_materials(self.geometry, materials, phase_lame_parameters, "(E, nu)")
        _check_elastic_contrast(materials)
        if resolution is not None:
            check_cell_size(
                self.geometry.dim,
                resolution,
                int(degree),
                self.geometry.dim,
                memory=installed_memory(),
            )
        self.dim, self.bc = self.geometry.dim, bc
        self.matrix, self.inclusion = tuple(matrix), tuple(inclusion)
        self.degree = int(degree)
        materials = {MATRIX: self.matrix, INCLUSION: self.inclusion}
        self._problems = MeshProblems(
            lambda cell: ElasticityCellProblem(cell, materials, bc=bc, degree=self.degree)
        )

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"strain": (d, d)}``."""
        return {"strain": (self.dim, self.dim)}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"stress": (d, d)}``."""
        return {"stress": (self.dim, self.dim)}

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"volume_fraction": ()}``."""
        return {"volume_fraction": ()}

    def cache_identity(self) -> dict:
        """Geometry, materials, discretisation and BC of the cell problem (for the cache)."""
        return {
            # /2: cells mesh the nominal volume fractions; /3: morphed cells (other C*)
            "model": "ElasticityCellModel/3",
            "morph": self.geometry.morph,
            "rve": self.geometry.name,
            "rve_options": self.geometry.options,
            "dim": self.dim,
            "bc": self.bc,
            "matrix": list(self.matrix),
            "inclusion": list(self.inclusion),
            "resolution": self.geometry.resolution,
            "degree": self.degree,
        }

    def stiffness(self, volume_fraction: float) -> np.ndarray:
        """C* (Voigt, engineering shear) for one volume fraction."""
        return self._problems(self.geometry.create(volume_fraction)).solve().effective_tensor

    def effective_tensors(self, parameters: dict[str, np.ndarray]) -> dict:
        """``{("stress", "strain"): C*_ijkl}`` for one volume fraction."""
        C = self.stiffness(float(parameters["volume_fraction"]))
        return {("stress", "strain"): voigt_to_tensor(C)}
