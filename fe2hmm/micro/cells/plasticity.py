r"""Small-strain J2 plasticity with isotropic hardening: material points, cells, FE² micro-model.

Material (von Mises, linear isotropic hardening, associative; Simo & Hughes 1998, Box 3.2): with
:math:`\sigma^{tr} = \lambda\,\mathrm{tr}(\varepsilon-\varepsilon^p_n)I + 2\mu(\varepsilon-
\varepsilon^p_n)`, :math:`s = \mathrm{dev}\,\sigma^{tr}`, :math:`q = \sqrt{3/2}\,|s|`, the trial
yield function is :math:`f = q - (\sigma_y + H p_n)`. If :math:`f > 0`,
:math:`\Delta p = f/(3\mu + H)`, :math:`n = s/|s|`,
:math:`\sigma = \sigma^{tr} - 2\mu\sqrt{3/2}\,\Delta p\,n`,
:math:`\varepsilon^p = \varepsilon^p_n + \sqrt{3/2}\,\Delta p\,n`, and the algorithmic tangent is
:math:`\kappa\,I\otimes I + 2\mu\theta\,\mathbb I_{dev} - 2\mu\bar\theta\,n\otimes n` with
:math:`\theta = 1 - 3\mu\Delta p/q`, :math:`\bar\theta = 3\mu/(3\mu + H) - (1-\theta)`.
All tensors are 3×3 (plane strain embeds the 2D strain with ε_zz = 0).

The cell problem imposes a macro strain :math:`\bar E` with a periodic fluctuation, solves the
micro equilibrium by Newton with the algorithmic tangent (the J2 material lives on a
:class:`~fe2hmm.quadrature.QuadratureMap` of the cell mesh: the same evaluate → local solve →
write-back data path as the macro level, without its scheduling and MPI), and returns
:math:`\bar\sigma` and the condensed consistent tangent.
Internal variables live per macro point × micro quadrature point; they are updated only by
:meth:`PlasticCellModel.commit` (after a converged macro step) and discarded otherwise.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem

from fe2hmm.checkpoint import ragged, unragged
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.cells.condensation import condense_tangent
from fe2hmm.micro.cells.elasticity import lame_parameters
from fe2hmm.micro.cells.geometry import CellGeometry, CellProblems
from fe2hmm.micro.cells.linalg import solve_constrained
from fe2hmm.micro.cells.periodic import PeriodicDofMap, affine_gradient_fields
from fe2hmm.micro.cells.phases import phase_field, phase_materials, phase_name
from fe2hmm.micro.cells.sparse import CSRMatrix
from fe2hmm.micro.interface import (
    MicroModel,
    MicroResult,
    StatefulMicroModel,
    TaskBatch,
    run_tasks,
)
from fe2hmm.quadrature import QuadratureMap
from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE

__all__ = [
    "YIELD_TOLERANCE",
    "ESTIMATE_SAFETY",
    "j2_return_mapping",
    "J2Material",
    "PlasticCellProblem",
    "PlasticCellModel",
]

#: Points whose trial yield function is above ``-YIELD_TOLERANCE * min(σ_y, 1)`` are *on* the
#: yield surface: they take the plastic branch (Δp = max(f, 0)/(3μ + H), so the stress is the
#: exact trial stress when f <= 0) and the elasto-plastic tangent. A committed plastic point
#: re-evaluated at its own strain has f = 0 up to round-off (~1e-16 σ_y); deciding its tangent
#: by the sign of that round-off made the macro Newton path, and so its iteration counts,
#: depend on the CPU and BLAS kernel. The elastic predictor uses the same margin.
YIELD_TOLERANCE = 1e-10

#: The linearised predictor's estimate is this times ``|Wᵀ R|/|Y|``, the first-order error of
#: the uncorrected mean stress (:meth:`PlasticCellProblem.predict`). The served stress is
#: corrected by that term, but where micro points switch between the elastic and the plastic
#: branch between the last solve and the prediction (a kink of the return mapping) the
#: correction can fall short: without the factor 8 of 612 served predictions on the benchmark's
#: plate path erred above the tolerance (by up to 1.3×), with it none of 566 (tolerance 1e-4)
#: or 674 (1e-3) did, each checked against a real solve.
ESTIMATE_SAFETY = 2.0

_I3 = np.eye(3)
_II = np.einsum("ij,kl->ijkl", _I3, _I3)
_IS = 0.5 * (np.einsum("ik,jl->ijkl", _I3, _I3) + np.einsum("il,jk->ijkl", _I3, _I3))
_IDEV = _IS - _II / 3.0


def j2_return_mapping(eps, eps_p, p, lam, mu, sigma_y, hardening):
    """Radial return for a batch of points.

    Points within :data:`YIELD_TOLERANCE` of the yield surface take the plastic branch with
    ``Δp = max(f, 0)/(3μ + H)``: the stress is exact either way, and the tangent does not depend
    on the sign of round-off.

    Args:
        eps: total strain ``(n, 3, 3)``.
        eps_p: committed plastic strain ``(n, 3, 3)``.
        p: committed equivalent plastic strain ``(n,)``.
        lam: Lamé λ ``(n,)``.
        mu: shear modulus ``(n,)``.
        sigma_y: initial yield stress ``(n,)`` (``inf`` for elastic phases).
        hardening: linear isotropic hardening modulus H ``(n,)``.

    Returns:
        ``(sigma (n, 3, 3), tangent (n, 3, 3, 3, 3), eps_p_new, p_new)``.
    """
    ee = eps - eps_p
    tr = np.trace(ee, axis1=1, axis2=2)
    sig_tr = lam[:, None, None] * tr[:, None, None] * _I3 + 2 * mu[:, None, None] * ee
    s = sig_tr - np.trace(sig_tr, axis1=1, axis2=2)[:, None, None] * _I3 / 3
    s_norm = np.sqrt(np.einsum("nij,nij->n", s, s))
    q = np.sqrt(1.5) * s_norm
    f = q - (sigma_y + hardening * p)
    plastic = f > -YIELD_TOLERANCE * np.minimum(sigma_y, 1.0)
    kappa = lam + 2 * mu / 3
    tangent = (
        kappa[:, None, None, None, None] * _II + 2 * mu[:, None, None, None, None] * _IDEV
    ).copy()
    sigma, eps_p_new, p_new = sig_tr.copy(), eps_p.copy(), p.copy()
    if plastic.any():
        i = np.flatnonzero(plastic)
        m, H = mu[i], hardening[i]
        dp = np.maximum(f[i], 0.0) / (3 * m + H)
        n = s[i] / s_norm[i][:, None, None]
        sigma[i] -= (2 * m * np.sqrt(1.5) * dp)[:, None, None] * n
        eps_p_new[i] += (np.sqrt(1.5) * dp)[:, None, None] * n
        p_new[i] += dp
        theta = 1 - 3 * m * dp / q[i]
        theta_bar = 3 * m / (3 * m + H) - (1 - theta)
        tangent[i] = (
            kappa[i][:, None, None, None, None] * _II
            + (2 * m * theta)[:, None, None, None, None] * _IDEV
            - (2 * m * theta_bar)[:, None, None, None, None] * np.einsum("nij,nkl->nijkl", n, n)
        )
    return sigma, tangent, eps_p_new, p_new


class J2Material(MicroModel):
    """Micro-level material model (on the cell's quadrature map): ε (d×d) -> σ (d×d).

    Per-point parameters ``lam, mu, sigma_y, hardening`` (phase fields); history ``eps_p``
    ``(n, 3, 3)`` and ``p`` ``(n,)`` is *committed* state, ``trial_*`` the last evaluation
    (``trial_sigma``: the full 3×3 stress, σ_zz included in plane strain).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.eps_p: np.ndarray | None = None
        self.p: np.ndarray | None = None
        self.trial_eps_p: np.ndarray | None = None
        self.trial_p: np.ndarray | None = None
        self.trial_sigma: np.ndarray | None = None

    @property
    def input_shapes(self):
        """``{"strain": (d, d)}``."""
        return {"strain": (self.dim, self.dim)}

    @property
    def output_shapes(self):
        """``{"stress": (d, d)}``."""
        return {"stress": (self.dim, self.dim)}

    @property
    def parameter_shapes(self):
        """Phase fields ``lam``, ``mu``, ``sigma_y``, ``hardening``."""
        return {"lam": (), "mu": (), "sigma_y": (), "hardening": ()}

    def evaluate(self, inputs, parameters, *, tangents=True):
        """Return mapping at all micro quadrature points from the committed history."""
        n, d = inputs["strain"].shape[0], self.dim
        if self.eps_p is None or self.eps_p.shape[0] != n:
            self.eps_p, self.p = np.zeros((n, 3, 3)), np.zeros(n)
        eps = np.zeros((n, 3, 3))
        eps[:, :d, :d] = inputs["strain"]
        sigma, C, self.trial_eps_p, self.trial_p = j2_return_mapping(
            eps, self.eps_p, self.p, *(parameters[k] for k in ("lam", "mu", "sigma_y", "hardening"))
        )
        self.trial_sigma = sigma
        tangent = {("stress", "strain"): C[:, :d, :d, :d, :d]} if tangents else {}
        return MicroResult({"stress": sigma[:, :d, :d]}, tangent)


def _j2_phase(material, phase: int) -> tuple[float, float, float, float]:
    """``(λ, μ, σ_y, H)`` of a phase's ``(E, nu, sigma_y, H)`` (a phase-material parser)."""
    try:
        E, nu, sy, H = (float(x) for x in material)
    except (TypeError, ValueError):
        raise ValueError(
            f"material of phase {phase_name(phase)} must be (E, nu, sigma_y, H), got {material!r}"
        ) from None
    if not sy > 0 or not H >= 0:
        raise ValueError(
            f"phase {phase_name(phase)}: need sigma_y > 0 (inf if elastic) and H >= 0, "
            f"got sigma_y={sy!r}, H={H!r}"
        )
    return (*lame_parameters(E, nu, phase_name(phase)), sy, H)


class PlasticCellProblem:
    """Periodic small-strain cell with elasto-plastic (J2) phases.

    Args:
        rve: the unit cell (voids not meshed).
        materials: phase tag -> ``(E, nu, sigma_y, H)``; ``sigma_y = inf`` for an elastic phase.
        quadrature_degree: micro quadrature degree (1 for P1: constant strain per cell).
        rtol: micro Newton tolerance on the residual relative to ``|Y| max(|σ̄|, 1)``.
        max_iterations: micro Newton iterations before :class:`MicroSolveError`.
    """

    def __init__(
        self,
        rve: RVE,
        materials: dict[int, tuple[float, float, float, float]],
        quadrature_degree: int = 1,
        rtol: float = 1e-10,
        max_iterations: int = 25,
    ) -> None:
        parameters = phase_materials(rve, materials, _j2_phase, "(E, nu, sigma_y, H)")
        d = rve.dim
        mesh = rve.mesh
        self.rve, self.rtol, self.max_iterations = rve, float(rtol), int(max_iterations)
        self.V = fem.functionspace(mesh, ("Lagrange", 1, (d,)))
        values = {p: (la, m, min(sy, 1e300), H) for p, (la, m, sy, H) in parameters.items()}
        fields = {
            key: phase_field(rve, {p: v[i] for p, v in values.items()})
            for i, key in enumerate(("lam", "mu", "sigma_y", "hardening"))
        }
        self.E_macro = fem.Constant(mesh, np.zeros((d, d)))
        self.w = fem.Function(self.V)
        self.material = J2Material(d)
        strain = ufl.sym(ufl.grad(self.w)) + self.E_macro
        self.map = QuadratureMap(
            mesh,
            {"strain": strain},
            self.material.output_shapes,
            fields,
            self.material.parameter_shapes,
            quadrature_degree=quadrature_degree,
            name="cell",
        )
        v, dw = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        residual = ufl.inner(self.map.outputs["stress"], ufl.grad(v)) * self.map.dx
        self._R = fem.form(residual)
        self._K = fem.form(sum(self.map.jacobian_terms(residual, self.w, dw)))
        self.pmap = PeriodicDofMap(self.V, rve.lower, rve.upper)
        n_nodes = self.V.dofmap.index_map.size_local
        self._n = n_nodes * d
        X = self.V.tabulate_dof_coordinates()[:n_nodes, :d] - np.asarray(rve.lower)
        self._UE = affine_gradient_fields(X)  # (e_i ⊗ e_j) y, column i*d + j
        self._eliminate = np.zeros(self.pmap.num_reduced, dtype=bool)
        self._eliminate[:d] = True
        self._elastic: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _update(self, tangents: bool = True) -> None:
        """Return mapping at every micro quadrature point; stress (and tangent) written back."""
        result = self.material.evaluate(
            self.map.evaluate_inputs(), self.map.parameters, tangents=tangents
        )
        self.map.write(result, tangents)

    def _residual_norm(self) -> float:
        self._update(tangents=False)
        Rr = self.pmap.reduce_vector(fem.assemble_vector(self._R).array[: self._n])
        Rr[self._eliminate] = 0.0
        return float(np.linalg.norm(Rr))

    def _line_search(self, dw: np.ndarray, norm: float, max_halvings: int = 6) -> None:
        """Backtracking on the residual norm.

        Full steps near the solution keep the quadratic rate; damped ones help while the plastic
        zones are still being found.
        """
        n = self._n
        w0 = self.w.x.array[:n].copy()
        alpha = 1.0
        for _ in range(max_halvings):
            self.w.x.array[:n] = w0 + alpha * dw
            self.w.x.scatter_forward()
            if self._residual_norm() < norm:
                return
            alpha *= 0.5
        self.w.x.array[:n] = w0 + alpha * dw  # accept the smallest step and go on
        self.w.x.scatter_forward()

    @property
    def num_points(self) -> int:
        """Micro quadrature points (size of the history arrays)."""
        return self.map.num_points

    def elastic_operators(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Operators of the purely elastic response, computed once per cell.

        Returns:
            ``(C (d, d, d, d), W (n_dofs, d²), S (d², m, 3, 3))``: the elastic effective
            tangent, the fluctuations of the unit macro gradients ``e_i ⊗ e_j`` (column
            ``i*d + j``) and the micro stress (3×3, σ_zz included) they cause at the ``m``
            micro quadrature points.
        """
        if self._elastic is None:
            d, n, pmap, vol, m = self.rve.dim, self._n, self.pmap, self.rve.volume, self.num_points
            self.E_macro.value[:] = 0.0
            self.material.eps_p, self.material.p = np.zeros((m, 3, 3)), np.zeros(m)
            self.w.x.array[:] = 0.0
            self._update()  # zero stress: the elastic tangent everywhere
            K = CSRMatrix.from_dolfinx(fem.assemble_matrix(self._K), n)
            condensed = condense_tangent(
                K, self._UE, vol, self._eliminate, pmap, backend="mumps-lu"
            )
            C, W = condensed.tangent.reshape(d, d, d, d), condensed.fluctuations
            lam = self.map.parameters["lam"]
            mu = self.map.parameters["mu"]
            S = np.empty((d * d, m, 3, 3))
            for c in range(d * d):
                self.w.x.array[:n] = W[:, c]
                self.w.x.scatter_forward()
                self.E_macro.value[:] = np.eye(d * d)[c].reshape(d, d)
                eps = np.zeros((m, 3, 3))
                eps[:, :d, :d] = self.map.evaluate_inputs()["strain"]
                tr = np.trace(eps, axis1=1, axis2=2)
                S[c] = lam[:, None, None] * tr[:, None, None] * _I3 + 2 * mu[:, None, None] * eps
            self.w.x.array[:] = 0.0
            self.E_macro.value[:] = 0.0
            self._elastic = (C, W, S)
        return self._elastic

    def elastic_trial(self, dE: np.ndarray, sigma: np.ndarray, p: np.ndarray):
        """Micro stress after a macro strain increment if the whole cell stays elastic.

        With the plastic strain frozen the cell problem is linear, so the elastic trial
        ``σ + Σ_c dE_c S_c`` is the exact micro stress if no micro point reaches the yield
        surface — and conversely, if one does, the true response is plastic.

        Args:
            dE: macro strain increment from the committed state ``(d, d)``.
            sigma: committed micro stress ``(m, 3, 3)``.
            p: committed equivalent plastic strain ``(m,)``.

        Returns:
            The trial micro stress ``(m, 3, 3)``, or ``None`` if some point would yield.
        """
        _, _, S = self.elastic_operators()
        trial = sigma + np.tensordot(np.asarray(dE, dtype=float).reshape(-1), S, axes=1)
        s = trial - np.trace(trial, axis1=1, axis2=2)[:, None, None] * _I3 / 3
        q = np.sqrt(1.5 * np.einsum("nij,nij->n", s, s))
        sigma_y = self.map.parameters["sigma_y"]
        yield_stress = sigma_y + self.map.parameters["hardening"] * p
        # points on the yield surface to within YIELD_TOLERANCE take the real solve
        if np.any(q - yield_stress > -YIELD_TOLERANCE * np.minimum(sigma_y, 1.0)):
            return None
        return trial

    def solve(self, E_macro, eps_p, p, w0=None):
        """Solve the cell for macro strain ``Ē`` from committed history ``(eps_p, p)``.

        Returns:
            ``(σ̄ (d, d), tangent (d, d, d, d), w, trial_eps_p, trial_p, iterations, W)``:
            ``W`` (``(n_dofs, d²)``) the fluctuations of the unit macro strains under the
            consistent tangent (``∂w/∂Ē``, column ``i*d + j``), which :meth:`predict` uses.

        Raises:
            MicroSolveError: no convergence or a failed micro solve.
        """
        d, n, pmap, vol = self.rve.dim, self._n, self.pmap, self.rve.volume
        self.E_macro.value[:] = np.asarray(E_macro, dtype=float).reshape(d, d)
        self.material.eps_p, self.material.p = eps_p, p
        self.w.x.array[:n] = 0.0 if w0 is None else w0
        self.w.x.scatter_forward()
        history = []
        for iteration in range(self.max_iterations + 1):
            self._update()
            R = fem.assemble_vector(self._R).array[:n].copy()
            K = CSRMatrix.from_dolfinx(fem.assemble_matrix(self._K), n)
            Rr = pmap.reduce_vector(R)
            Rr[self._eliminate] = 0.0
            sigma = (self._UE.T @ R).reshape(d, d) / vol
            norm = float(np.linalg.norm(Rr))
            history.append(norm)
            if norm <= self.rtol * vol * max(1.0, np.abs(sigma).max()):
                break
            if iteration == self.max_iterations or not np.isfinite(norm):
                raise MicroSolveError(
                    f"plastic cell Newton did not converge in {iteration} iterations "
                    f"(residual norms {', '.join(f'{h:.2e}' for h in history[-4:])})"
                )
            dw, _ = solve_constrained(pmap.reduce_matrix(K), -Rr, self._eliminate, "mumps-lu")
            self._line_search(pmap.expand(dw), norm)
        condensed = condense_tangent(K, self._UE, vol, self._eliminate, pmap, backend="mumps-lu")
        tangent = condensed.tangent.reshape(d, d, d, d)
        m = self.material
        w = self.w.x.array[:n].copy()
        return sigma, tangent, w, m.trial_eps_p, m.trial_p, iteration, condensed.fluctuations

    def predict(self, E_macro, eps_p, p, w, W):
        """The cell at a given micro fluctuation, without a solve: stress and its first-order error.

        The return mapping from the committed history is evaluated exactly at the micro strain
        of ``w`` (e.g. a linearised prediction ``w_a + W (Ē − Ē_a)``), and the residual ``R``
        of the cell (full dofs) is assembled once. With ``U`` the affine fields, ``Uᵀ R/|Y|`` is
        the mean stress of that micro state and, to first order in ``R``, the mean stress of
        the equilibrated cell is ``(U + W)ᵀ R/|Y|``: one Newton step, ``W = ∂w/∂Ē`` standing in
        for the solve (with ``W`` from the consistent tangent at ``w``, ``Wᵀ R = -Xᵀ Pᵀ R`` is
        exactly the Newton correction of the mean stress; with that of an earlier state, an
        approximation of it). The correction ``Wᵀ R/|Y|`` is returned as
        the error estimate of the prediction; it is 0 at an equilibrated state.

        Args:
            E_macro: macro strain ``(d, d)``.
            eps_p: committed plastic strain ``(m, 3, 3)``.
            p: committed equivalent plastic strain ``(m,)``.
            w: micro fluctuation on the owned dofs ``(n_dofs,)``.
            W: fluctuation sensitivities ``(n_dofs, d²)`` (:meth:`solve`, or the elastic ones).

        Returns:
            ``(σ̄ (d, d), estimate (d, d), trial_eps_p, trial_p, micro stress (m, 3, 3))``.
        """
        d, n, vol = self.rve.dim, self._n, self.rve.volume
        self.E_macro.value[:] = np.asarray(E_macro, dtype=float).reshape(d, d)
        self.material.eps_p, self.material.p = eps_p, p
        self.w.x.array[:n] = w
        self.w.x.scatter_forward()
        self._update(tangents=False)
        R = fem.assemble_vector(self._R).array[:n]
        correction = (W.T @ R).reshape(d, d) / vol
        sigma = (self._UE.T @ R).reshape(d, d) / vol + correction
        m = self.material
        return sigma, correction, m.trial_eps_p.copy(), m.trial_p.copy(), m.trial_sigma.copy()


@dataclass
class PlasticTask:
    """One plastic cell solve: everything needed to run it on any rank (picklable)."""

    point: int
    volume_fraction: float
    strain: np.ndarray
    eps_p: np.ndarray
    p: np.ndarray
    w0: np.ndarray | None


class PlasticCellModel(StatefulMicroModel):
    """FE² micro-model with history: ``σ̄(Ē)`` and the consistent tangent from J2 cells.

    Input ``{"strain": (d, d)}``, output ``{"stress": (d, d)}``, parameter
    ``{"volume_fraction": ()}``. Every macro point keeps its own micro history (plastic strain
    and equivalent plastic strain at every micro quadrature point). :meth:`evaluate` never
    changes it; :meth:`commit` accepts the last evaluated (trial) state after a converged macro
    step, :meth:`rollback` discards it (e.g. before cutting the step).

    Exact shortcut (:attr:`~fe2hmm.micro.interface.MicroModel.exact_shortcuts`, on by default):
    a point whose cell stays elastic from its committed state
    is answered without a cell solve, exactly: with frozen plastic strain the cell problem is
    linear, so ``σ̄ = σ̄_n + C_el : (Ē - Ē_n)`` with the elastic operators computed once per cell,
    and the elastic trial micro stress decides, exactly, whether any micro point yields
    (:meth:`PlasticCellProblem.elastic_trial`). Elastic loading, unloading and reloading below
    the previous yield stress cost no cell solves. Counted in ``statistics.exact_reuse_hits``.

    Linearised predictor (inexact reuse with error control, off unless ``tolerance`` is
    given): once a point has had a real plastic solve, a plastic request is first answered
    without a solve from a base state ``(Ē_a, w_a)`` — the point's last real solve in this load
    step, else its committed state — and the sensitivities ``W = ∂w/∂Ē`` and consistent tangent
    of its last real solve: the fluctuation ``w = w_a + W (Ē − Ē_a)``, the return mapping
    evaluated exactly there from the committed history, and the cell's residual ``R`` assembled
    once give ``σ̄ = (U + W)ᵀ R/|Y|`` (:meth:`PlasticCellProblem.predict`: one Newton step with
    the last solve's tangent standing in for the one at ``w``) with the error estimate
    ``2 |Wᵀ R|/|Y|`` (:data:`ESTIMATE_SAFETY`; a heuristic, first-order exact when the tangent
    has not changed since the last solve, the factor calibrated on the porous plate). If that is
    at most ``tolerance`` times ``max(|σ̄|, |σ̄_n|)`` (max-norms, ``σ̄_n`` the committed stress)
    the prediction is served with the last solve's tangent (counted in
    ``statistics.surrogate_hits``) and, once committed, its micro state — not exactly in
    equilibrium — becomes the point's history, so its error is carried along the path (the
    elastic predictor is then exact relative to that state); otherwise the cell is solved,
    warm-started from the prediction. Macro Newton iterates after a step's first solve, and
    steps along a nearly linear stretch of the path, then cost no solves; the macro Newton
    converges linearly (served tangents are those of earlier solves). Tolerances of 10⁻² and
    above can make it cycle between predicted states (seen on the porous plate).

    Args:
        rve: generator name, e.g. ``"voids"`` (porous) or ``"circle"``.
        matrix: ``(E, nu, sigma_y, H)`` of the matrix.
        inclusion: ``(E, nu, sigma_y, H)`` of the inclusion (ignored for ``"voids"``).
        dim: 2 (plane strain).
        resolution: RVE resolution.
        tolerance: relative tolerance of the linearised predictor (above), > 0; ``None``: off
            (every plastic request is a cell solve).

    Raises:
        ValueError: bad materials or tolerance.
        NotImplementedError: ``dim`` is not 2.
    """

    def __init__(
        self,
        rve: str = "voids",
        matrix: tuple[float, float, float, float] = (1.0, 0.3, 0.01, 0.1),
        inclusion: tuple[float, float, float, float] = (10.0, 0.3, np.inf, 0.0),
        dim: int = 2,
        resolution: int | None = None,
        tolerance: float | None = None,
    ) -> None:
        super().__init__()
        if dim != 2:
            raise NotImplementedError("plastic cells are implemented in 2D (plane strain) only")
        if tolerance is not None and not (
            isinstance(tolerance, numbers.Real)
            and not isinstance(tolerance, bool)
            and math.isfinite(tolerance)
            and tolerance > 0
        ):
            raise ValueError(
                f"tolerance must be a finite number > 0 (or None: no predictor), got {tolerance!r}"
            )
        self.geometry = CellGeometry(rve, dim, resolution)
        self.dim = dim
        self.tolerance = None if tolerance is None else float(tolerance)
        materials = {MATRIX: matrix, INCLUSION: inclusion}
        phase_materials(self.geometry, materials, _j2_phase, "(E, nu, sigma_y, H)")
        self.materials = {MATRIX: tuple(matrix), INCLUSION: tuple(inclusion)}
        self._problems = CellProblems(
            self.geometry, lambda cell: PlasticCellProblem(cell, self.materials)
        )
        self.history: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._trial: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # committed / trial (Ē, σ̄, micro stress (m, 3, 3), w) per point, for the predictors
        self._state: dict[int, tuple] = {}
        self._trial_state: dict[int, tuple] = {}
        self._w: dict[int, np.ndarray] = {}
        # the linearised predictor: committed (C, W) of each point's last real solve, and the
        # real solves (Ē, w, C, W) of the current step
        self._sensitivities: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._solved: dict[int, tuple] = {}
        #: Largest relative estimate of a served prediction so far (the predictor's own record).
        self.largest_estimate = 0.0

    @property
    def input_shapes(self):
        """``{"strain": (d, d)}``."""
        return {"strain": (self.dim, self.dim)}

    @property
    def output_shapes(self):
        """``{"stress": (d, d)}``."""
        return {"stress": (self.dim, self.dim)}

    @property
    def parameter_shapes(self):
        """``{"volume_fraction": ()}``."""
        return {"volume_fraction": ()}

    def problem(self, volume_fraction: float) -> PlasticCellProblem:
        """The cached cell problem of one volume fraction."""
        return self._problems(volume_fraction)

    def evaluate(self, inputs, parameters, *, tangents=True):
        """Every point's cell from its committed history (no dedupe: histories differ)."""
        return run_tasks(self, self.micro_tasks(inputs, parameters, tangents=tangents))

    def _predict(self, i: int, problem: PlasticCellProblem, E, committed, eps_p, p):
        """The linearised prediction of point ``i`` (see the class docstring).

        Returns:
            ``(σ̄, tangent, relative estimate, trial history, trial state)``, or ``None`` before
            the point's first real solve.
        """
        E_n, sigma_n, _, w_n = committed
        if i in self._solved:
            E_a, w_a, C, W = self._solved[i]
        elif i in self._sensitivities:
            (E_a, w_a), (C, W) = (E_n, w_n), self._sensitivities[i]
        else:  # no plastic solve yet: elastic sensitivities would miss the softening
            return None
        w = w_a + W @ (E - E_a).reshape(-1)
        sigma, correction, tep, tp, micro = problem.predict(E, eps_p, p, w, W)
        scale = max(np.abs(sigma).max(), np.abs(sigma_n).max())
        estimate = ESTIMATE_SAFETY * np.abs(correction).max() / scale if scale > 0 else np.inf
        return sigma, C, estimate, (tep, tp), (E, sigma.copy(), micro, w)

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """Split a batch into cell solves (tasks) and points answered by the predictors.

        Tasks carry everything a solve needs (φ, Ē, committed history, warm start), so any rank
        can solve them (pooled scheduling); :meth:`TaskBatch.finish` stores the trial states.
        """
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        d = self.dim
        sigma = np.empty((n, d, d))
        tangent = np.empty((n, d, d, d, d))
        self._trial, self._trial_state = {}, {}
        tasks = []
        for i in range(n):
            t0 = time.perf_counter()
            phi = float(parameters["volume_fraction"][i])
            problem = self.problem(phi)
            m = problem.num_points
            eps_p, p = self.history.get(i, (np.zeros((m, 3, 3)), np.zeros(m)))
            E = np.asarray(inputs["strain"][i], dtype=float)
            committed = self._state.get(i) or (
                np.zeros((d, d)),
                np.zeros((d, d)),
                np.zeros((m, 3, 3)),
                np.zeros(problem.V.dofmap.index_map.size_local * d),
            )
            if self.exact_shortcuts:
                E_n, sigma_n, micro_n, w_n = committed
                micro = problem.elastic_trial(E - E_n, micro_n, p)
                if micro is not None:
                    C, W, _ = problem.elastic_operators()
                    sigma[i] = sigma_n + np.einsum("ijkl,kl->ij", C, E - E_n)
                    tangent[i] = C
                    w = w_n + W @ (E - E_n).reshape(-1)
                    self._trial[i] = (eps_p, p)
                    self._trial_state[i] = (E, sigma[i].copy(), micro, w)
                    self._w[i] = w
                    self.statistics.exact_reuse_hits += 1
                    self.statistics.reuse_seconds += time.perf_counter() - t0
                    continue
            w0 = self._w.get(i)
            prediction = None
            if self.tolerance is not None:
                prediction = self._predict(i, problem, E, committed, eps_p, p)
                self.statistics.reuse_seconds += time.perf_counter() - t0
            if prediction is not None:
                sig, C, estimate, trial, state = prediction
                w0 = state[3]
                if estimate <= self.tolerance:
                    sigma[i], tangent[i] = sig, C
                    self._trial[i], self._trial_state[i], self._w[i] = trial, state, w0
                    self.largest_estimate = max(self.largest_estimate, estimate)
                    self.statistics.surrogate_hits += 1
                    continue
            tasks.append(PlasticTask(i, phi, E, eps_p, p, w0))

        def finish(results: dict) -> MicroResult:
            for i, (sig, tan, w, tep, tp, micro, W) in results.items():
                sigma[i], tangent[i] = sig, tan
                E = np.asarray(inputs["strain"][i], dtype=float)
                self._trial[i] = (tep, tp)
                self._trial_state[i] = (E, sig.copy(), micro, w)
                self._w[i] = w
                if self.tolerance is not None:
                    self._solved[i] = (E, w, tan, W)
            return MicroResult(
                {"stress": sigma}, {("stress", "strain"): tangent} if tangents else {}
            )

        return TaskBatch(tasks, finish)

    def solve_task(self, task: PlasticTask):
        """One cell solve: ``(σ̄, tangent, w, trial eps_p, trial p, micro stress, W)``.

        ``W`` (the sensitivities) only with the linearised predictor, else ``None``: results
        travel between ranks under pooled scheduling.
        """
        t0 = time.perf_counter()
        problem = self.problem(task.volume_fraction)
        try:
            sigma, tangent, w, tep, tp, _, W = problem.solve(
                task.strain, task.eps_p, task.p, task.w0
            )
        except MicroSolveError as err:
            raise MicroSolveError(err.message, point=task.point) from err
        self.statistics.micro_solves += 1
        self.statistics.seconds += time.perf_counter() - t0
        micro = problem.material.trial_sigma.copy()
        W = None if self.tolerance is None else W
        return sigma, tangent, w, tep.copy(), tp.copy(), micro, W

    def commit(self) -> None:
        """Accept the last evaluated state as the committed history of every point."""
        self.history.update(self._trial)
        self._state.update(self._trial_state)
        self._sensitivities.update({i: (C, W) for i, (_, _, C, W) in self._solved.items()})
        self._trial, self._trial_state, self._solved = {}, {}, {}

    def rollback(self) -> None:
        """Discard the last evaluated state (the committed history is unchanged)."""
        self._trial, self._trial_state, self._solved = {}, {}, {}
        self._w = {}

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """Committed histories, predictor states, warm starts and counters, as arrays."""
        parts = {
            "eps_p": {i: h[0] for i, h in self.history.items()},
            "p": {i: h[1] for i, h in self.history.items()},
            "w": self._w,
            "C": {i: s[0] for i, s in self._sensitivities.items()},
            "W": {i: s[1] for i, s in self._sensitivities.items()},
        }
        for k, name in enumerate(("E", "sigma", "micro", "w_state")):
            parts[name] = {i: s[k] for i, s in self._state.items()}
        out = self.statistics.checkpoint_state()
        out["largest_estimate"] = np.asarray(self.largest_estimate)
        for name, arrays in parts.items():
            out.update({f"{name}.{key}": value for key, value in ragged(arrays).items()})
        return out

    def restore_state(self, state) -> None:
        """Make the arrays of :meth:`checkpoint_state` the committed state (no trial)."""

        def part(name):
            return unragged({k: state[f"{name}.{k}"] for k in ("points", "shapes", "values")})

        eps_p, p = part("eps_p"), part("p")
        self.history = {i: (eps_p[i], p[i]) for i in eps_p}
        self._w = part("w")
        E, sigma, micro, w = (part(n) for n in ("E", "sigma", "micro", "w_state"))
        self._state = {i: (E[i], sigma[i], micro[i], w[i]) for i in E}
        # checkpoints written before the linearised predictor have no sensitivities: the
        # predictor then starts from the elastic ones (more solves, same tolerance)
        C, W = (part(n) if f"{n}.points" in state else {} for n in ("C", "W"))
        self._sensitivities = {i: (C[i], W[i]) for i in C}
        self._trial, self._trial_state, self._solved = {}, {}, {}
        self.largest_estimate = float(state.get("largest_estimate", 0.0))
        self.statistics.restore_state(state)

    def equivalent_plastic_strain(self) -> np.ndarray:
        """Committed cell-average equivalent plastic strain per macro point, shape ``(n,)``."""
        if not self.history:
            return np.zeros(0)
        n = max(self.history) + 1
        return np.array([self.history[i][1].mean() if i in self.history else 0.0 for i in range(n)])
