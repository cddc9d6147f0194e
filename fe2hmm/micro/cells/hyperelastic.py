r"""Finite-strain hyperelastic cell problems with the consistent (condensed) macro tangent.

For a macro deformation gradient :math:`\bar F` the micro deformation is
:math:`\varphi(y) = \bar F y + w(y)` with :math:`w` periodic, and :math:`w` solves

.. math:: R(w; v) = \int_Y P(\bar F + \nabla w) : \nabla v\,\mathrm{d}y = 0 \quad\forall v,

by Newton's method. The phases are compressible neo-Hookean,
:math:`\psi = \tfrac{\mu}{2}(\mathrm{tr}\,C - d - 2\ln J) + \tfrac{\lambda}{2}(\ln J)^2`
(in 2D: plane strain), which linearises to Hooke's law with the same Lamé parameters.

Outputs: the average first Piola–Kirchhoff stress :math:`\bar P = |Y|^{-1}\int_Y P`, and the
consistent tangent :math:`\bar{\mathbb A} = \partial\bar P/\partial\bar F`. At the converged state,
with the micro tangent matrix :math:`K` and the affine fields :math:`U_{ij} = (e_i\otimes e_j)\,y`,

.. math:: |Y|\,\bar{\mathbb A}_{IJ} = U_I^\top K U_J - (P^\top K U_I)^\top (P^\top K P)^{-1}
   (P^\top K U_J),

i.e. the linear homogenisation of the tangent operator (static condensation of the fluctuation):
no finite differences, one extra solve with the last Newton factorisation's matrix.
"""

from __future__ import annotations

import time

import numpy as np
import ufl
from dolfinx import fem

from fe2hmm.errors import MicroSolveError, at_point
from fe2hmm.micro.cells.condensation import condense_tangent
from fe2hmm.micro.cells.elasticity import phase_lame_parameters
from fe2hmm.micro.cells.geometry import CellGeometry, CellProblems
from fe2hmm.micro.cells.linalg import solve_constrained
from fe2hmm.micro.cells.periodic import PeriodicDofMap, affine_gradient_fields
from fe2hmm.micro.cells.phases import phase_field, phase_materials
from fe2hmm.micro.cells.sparse import CSRMatrix
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE

__all__ = ["HyperelasticCellProblem", "HyperelasticCellModel", "neo_hookean_stress"]


def neo_hookean_stress(F: np.ndarray, lam: float, mu: float) -> np.ndarray:
    """First Piola–Kirchhoff stress of the compressible neo-Hookean law, ``F`` of shape ``(d, d)``.

    ``P = μ (F - F^{-T}) + λ ln(J) F^{-T}``.
    """
    J = np.linalg.det(F)
    if J <= 0:
        raise ValueError(f"det F must be > 0, got {J:g}")
    FinvT = np.linalg.inv(F).T
    return mu * (F - FinvT) + lam * np.log(J) * FinvT


class HyperelasticCellProblem:
    """Periodic neo-Hookean cell problem on one RVE.

    Args:
        rve: the unit cell (voids not meshed).
        materials: phase tag -> ``(E, nu)`` (small-strain moduli of the neo-Hookean phases).
        degree: Lagrange degree of the fluctuation.
        rtol: Newton tolerance on the residual norm relative to ``|Y| max(|P̄|, 1)``.
        max_iterations: Newton iterations before :class:`MicroSolveError`.
    """

    def __init__(
        self,
        rve: RVE,
        materials: dict[int, tuple[float, float]],
        degree: int = 1,
        rtol: float = 1e-10,
        max_iterations: int = 25,
    ) -> None:
        lame = phase_materials(rve, materials, phase_lame_parameters, "(E, nu)")
        self.rve, self.rtol, self.max_iterations = rve, float(rtol), int(max_iterations)
        d = rve.dim
        mesh = rve.mesh
        self.V = fem.functionspace(mesh, ("Lagrange", int(degree), (d,)))
        lam = phase_field(rve, {p: la for p, (la, _) in lame.items()})
        mu = phase_field(rve, {p: m for p, (_, m) in lame.items()})
        self.F_macro = fem.Constant(mesh, np.eye(d))
        self.w = fem.Function(self.V, name="w")
        v, dw = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        F = ufl.variable(self.F_macro + ufl.grad(self.w))
        J = ufl.det(F)
        psi = mu / 2 * (ufl.tr(F.T * F) - d - 2 * ufl.ln(J)) + lam / 2 * ufl.ln(J) ** 2
        P = ufl.diff(psi, F)
        residual = ufl.inner(P, ufl.grad(v)) * ufl.dx
        self._R = fem.form(residual)
        self._K = fem.form(ufl.derivative(residual, self.w, dw))
        self._J = fem.form(J * ufl.dx)
        self.pmap = PeriodicDofMap(self.V, rve.lower, rve.upper)
        n_nodes = self.V.dofmap.index_map.size_local
        self._n = n_nodes * d
        X = self.V.tabulate_dof_coordinates()[:n_nodes, :d] - np.asarray(rve.lower)
        self._UE = affine_gradient_fields(X)  # (e_i ⊗ e_j) y, column i*d + j
        self._eliminate = np.zeros(self.pmap.num_reduced, dtype=bool)
        self._eliminate[:d] = True  # translations of the periodic fluctuation

    def _assemble(self):
        n = self._n
        R = fem.assemble_vector(self._R).array[:n].copy()
        K = CSRMatrix.from_dolfinx(fem.assemble_matrix(self._K), n)
        return R, K

    def solve(self, F_macro: np.ndarray, w0: np.ndarray | None = None):
        """Solve the cell for ``F̄`` and return ``(P̄, Ā, w, iterations)``.

        Args:
            F_macro: macro deformation gradient, shape ``(d, d)``, ``det > 0``.
            w0: initial fluctuation (full dof vector), e.g. the last converged one.

        Returns:
            ``P̄`` ``(d, d)``, ``Ā`` ``(d, d, d, d)``, the converged fluctuation dof vector and
            the number of Newton iterations.

        Raises:
            MicroSolveError: ``det F̄ <= 0``, a non-positive micro Jacobian, or no convergence.
        """
        d, n, pmap = self.rve.dim, self._n, self.pmap
        F_macro = np.asarray(F_macro, dtype=float).reshape(d, d)
        if not np.all(np.isfinite(F_macro)) or np.linalg.det(F_macro) <= 0:
            raise MicroSolveError(
                f"macro deformation gradient with det F = "
                f"{np.linalg.det(F_macro):g} <= 0 (or not finite)"
            )
        self.F_macro.value[:] = F_macro
        self.w.x.array[:n] = 0.0 if w0 is None else w0
        self.w.x.scatter_forward()
        volume = self.rve.volume
        history = []
        for iteration in range(self.max_iterations + 1):
            R, K = self._assemble()
            Rr = pmap.reduce_vector(R)
            Rr[self._eliminate] = 0.0
            P_avg = (self._UE.T @ R).reshape(d, d) / volume  # ∫P_ij = R(U_ij)
            norm = float(np.linalg.norm(Rr))
            history.append(norm)
            if not np.isfinite(norm):
                raise MicroSolveError("non-finite micro residual (element inversion?)")
            if norm <= self.rtol * volume * max(1.0, np.abs(P_avg).max()):
                break
            if iteration == self.max_iterations:
                raise MicroSolveError(
                    f"micro Newton did not converge in {self.max_iterations} iterations "
                    f"(residual norms {', '.join(f'{h:.2e}' for h in history[-4:])})"
                )
            Kr = pmap.reduce_matrix(K)
            try:
                dw, _ = solve_constrained(Kr, -Rr, self._eliminate, backend="mumps-lu")
            except RuntimeError as err:
                raise MicroSolveError(f"micro tangent solve failed: {err}") from err
            self.w.x.array[:n] += pmap.expand(dw)
            self.w.x.scatter_forward()
        # consistent macro tangent by static condensation of the fluctuation
        A = condense_tangent(K, self._UE, volume, self._eliminate, pmap, backend="mumps-lu").tangent
        return P_avg, A.reshape(d, d, d, d), self.w.x.array[:n].copy(), iteration


class HyperelasticCellModel(MicroModel):
    """Micro-model: ``P̄(F̄)`` and ``∂P̄/∂F̄`` from periodic neo-Hookean cells.

    Input ``{"F": (d, d)}`` (macro deformation gradient), output ``{"P": (d, d)}`` (first
    Piola–Kirchhoff stress), per-point parameter ``{"volume_fraction": ()}``. One cell mesh and
    problem per distinct volume fraction; every point is a cell solve (wrap the model in
    :class:`fe2hmm.reuse.Dedupe` to solve identical ``(F̄, φ)`` once); each point warm-starts
    from its last converged fluctuation (keyed by its index in the batch, so under ``Dedupe``
    a warm start may come from another point: the answer is the same, to the cell tolerance).

    Args:
        rve: generator name (e.g. ``"circle"``, ``"voids"``).
        matrix: ``(E, nu)`` of the matrix.
        inclusion: ``(E, nu)`` of the inclusion (ignored for ``"voids"``).
        dim: 2 (plane strain) or 3.
        resolution: RVE resolution; generator default if None.
        degree: Lagrange degree.
    """

    def __init__(
        self,
        rve: str = "circle",
        matrix: tuple[float, float] = (1.0, 0.3),
        inclusion: tuple[float, float] = (10.0, 0.3),
        dim: int = 2,
        resolution: int | None = None,
        degree: int = 1,
    ) -> None:
        super().__init__()
        self.geometry = CellGeometry(rve, dim, resolution)
        materials = {MATRIX: matrix, INCLUSION: inclusion}
        phase_materials(self.geometry, materials, phase_lame_parameters, "(E, nu)")
        self.dim = self.geometry.dim
        self.materials = {MATRIX: tuple(matrix), INCLUSION: tuple(inclusion)}
        self.degree = int(degree)
        self._problems = CellProblems(
            self.geometry,
            lambda cell: HyperelasticCellProblem(cell, self.materials, degree=self.degree),
        )
        self._last_w: dict[int, np.ndarray] = {}
        #: sparse factorisations done so far (micro Newton steps + one per condensed tangent)
        self.factorizations = 0

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"F": (d, d)}``."""
        return {"F": (self.dim, self.dim)}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"P": (d, d)}``."""
        return {"P": (self.dim, self.dim)}

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"volume_fraction": ()}``."""
        return {"volume_fraction": ()}

    def problem(self, volume_fraction: float) -> HyperelasticCellProblem:
        """The (cached) cell problem of one volume fraction."""
        return self._problems(volume_fraction)

    def evaluate(self, inputs, parameters, *, tangents=True) -> MicroResult:
        """Solve one cell per point (warm-started from the point's last solve).

        Wrap the model in :class:`fe2hmm.reuse.Dedupe` to solve identical ``(F̄, φ)`` once.
        """
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        d = self.dim
        F = np.asarray(inputs["F"], dtype=float).reshape(n, d, d)
        phi = np.asarray(parameters["volume_fraction"], dtype=float).reshape(n)
        P = np.empty((n, d, d))
        A = np.empty((n, d, d, d, d))
        for i in range(n):
            t0 = time.perf_counter()
            with at_point(i):
                problem = self.problem(phi[i])
                w0 = self._last_w.get(i)
                if w0 is not None and w0.shape[0] != problem._n:
                    w0 = None  # the point's microstructure changed: no warm start
                P[i], A[i], w, iterations = problem.solve(F[i], w0)
            self._last_w[i] = w
            self.factorizations += iterations + 1
            self.statistics.micro_solves += 1
            self.statistics.seconds += time.perf_counter() - t0
        return MicroResult({"P": P}, {("P", "F"): A} if tangents else {})
