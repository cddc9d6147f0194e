r"""Pseudo-arclength continuation of a macro problem in a scalar parameter, with fold location.

A :class:`~fe2hmm.macro.problem.MacroProblem` ``F(u; λ) = 0`` whose residual (or Dirichlet
values) depends on a :class:`dolfinx.fem.Constant` ``λ`` has branches of solutions
``(u(s), λ(s))`` that may turn back at folds (limit points, ``dλ/ds = 0``), where continuation
in ``λ`` itself (:meth:`~fe2hmm.macro.problem.MacroProblem.solve_incrementally`) fails.
:func:`continuation` follows the branch in the arclength ``s`` (Keller 1977):

- **Norm.** States are compared in the scaled inner product ``⟨a, b⟩ = a·b / N`` of the dof
  vectors (``N`` global dofs, so ``‖u‖`` is the rms dof value, independent of the mesh) plus
  ``λ`` as it is; the tangent ``t = (u̇, λ̇)`` has ``⟨u̇, u̇⟩ + λ̇² = 1``.
- **Predictor.** ``x = x_k + Δs t_k``.
- **Corrector.** Newton on the bordered system ``G(u, λ) = 0``,
  ``⟨u̇_k, u - u_k⟩ + λ̇_k (λ - λ_k) = Δs``, by Keller's bordering: with the assembled Jacobian
  ``A = ∂G/∂u`` (the problem's own, including the closures' chain-rule terms) factorised once
  per iterate, ``A z₁ = G`` and ``A z₂ = ∂G/∂λ`` give
  ``δλ = (⟨u̇_k, z₁⟩ - n) / (λ̇_k - ⟨u̇_k, z₂⟩)`` and ``δu = -z₁ - z₂ δλ``. ``G`` is the
  :class:`~fe2hmm.newton.NewtonSolver`'s assembled residual (Dirichlet rows ``u - g(λ)``, lifted),
  computed by its own routine after the closures are updated at the iterate, as in
  :meth:`~fe2hmm.newton.NewtonSolver.solve`. ``∂G/∂λ`` is the central difference
  ``(G(λ+h) - G(λ-h)) / 2h`` of that residual, ``h = 10⁻⁴ max(|λ|, |stop - start|)`` by
  default: exact to round-off when ``G`` is at most quadratic in ``λ`` (Bratu's ``λ eᵘ``, the
  Joule term ``V² σ|∇ψ|²`` of :mod:`fe2hmm.macro.thermoelectric`, Dirichlet values linear in
  ``λ``), ``O(h²)`` otherwise, which only slows the corrector, not the converged points. A
  closure whose inputs depend on ``λ`` is re-evaluated at ``λ ± h`` (without tangents); one whose
  inputs do not is evaluated once per iterate.
- **Convergence.** ``|G| <= atol``, or ``|G| <= rtol · max(|G_0|, |λ ∂G/∂λ|)`` (``G_0`` the
  predictor's residual; the second term is the size of the parameter's part of the residual,
  since near a converged branch the predictor residual is ``O(Δs²)`` and alone would ask for
  round-off), or ``|G| <= noise_tolerance · σ_F`` for stochastic closures, with the problem's
  Newton tolerances (:class:`~fe2hmm.macro.problem.SolverOptions`); or, at the round-off
  floor, after an update ``‖(δu, δλ)‖ <= 10⁻⁸ ‖(u, λ)‖`` (PETSc's ``snes_stol`` rule: with
  quadratic convergence the error left is of its square).
- **Tangent** at a converged point: ``A z₂ = ∂G/∂λ`` and ``t ∝ (-z₂, 1) / (λ̇_k - ⟨u̇_k, z₂⟩)``,
  normalised: the sign keeps ``⟨t, t_k⟩ > 0`` (orientation through folds).
- **Step size.** ``Δs ← Δs · clip(target_iterations / iterations, 1/2, 2)`` within
  ``[min_step, max_step]``; a failed corrector (no convergence, a micro failure, non-finite
  values) or a tangent turning by more than ``max_angle`` is rolled back and halved; below
  ``min_step`` :class:`~fe2hmm.errors.NewtonConvergenceError` is raised (carrying the result so
  far as ``error.result``).
- **Histories.** The closures' micro-models with history are committed after every accepted
  point and rolled back after a rejected attempt.
- **Folds.** A sign change of ``λ̇`` between consecutive points brackets a fold; it is located
  by the Illinois variant of regula falsi on ``λ̇(σ) = 0``, ``σ ∈ (0, Δs)`` the arclength from
  the last point (each evaluation: a corrector and a tangent), until ``|λ̇| <= fold_tolerance``.
  Near the fold ``λ(σ) = λ_c - κ(σ - σ*)²/2`` and ``λ̇ = -κ(σ - σ*)``, so the located parameter
  is within ``λ̇²/(2κ)`` — ``10⁻¹⁶/κ`` for the default tolerance ``10⁻⁸`` — of the discrete
  fold: its accuracy is that of the corrector (the Newton tolerance), not of the step.

Every decision is taken from global reductions (residual norms, dot products), so all ranks
take the same path. The ``monitor`` callback must be collective and return the same value on
every rank.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from ufl.algorithms.analysis import extract_constants

from fe2hmm.checkpoint import Checkpoint
from fe2hmm.errors import MicroSolveError, NewtonConvergenceError
from fe2hmm.macro.problem import MacroProblem
from fe2hmm.micro.interface import check_stateful
from fe2hmm.newton import NewtonSolver
from fe2hmm.petsc_options import options_set

__all__ = ["ContinuationPoint", "ContinuationResult", "Fold", "continuation"]

_log = logging.getLogger(__name__)

#: A corrector update this small relative to the state ends the corrector after it (PETSc's
#: ``snes_stol`` rule): with quadratic convergence the error left is ~ its square, at round-off.
_STOL = 1e-8


@dataclass
class ContinuationPoint:
    """One converged point of the branch.

    Attributes:
        parameter: ``λ``.
        monitor: the monitor's value at the point.
        arclength: ``s`` from the first point (sum of the accepted steps).
        step: the arclength step ``Δs`` that reached it (0 for the first point).
        tangent: ``dλ/ds`` at the point (its sign says whether ``λ`` increases along the branch).
        iterations: corrector (or, for the first and the last point, Newton) iterations.
        cuts: rejected attempts before this point was accepted.
    """

    parameter: float
    monitor: float
    arclength: float
    step: float
    tangent: float
    iterations: int
    cuts: int = 0


@dataclass
class Fold:
    """A located fold (limit point) of the branch.

    Attributes:
        parameter: ``λ`` at the fold.
        monitor: the monitor's value at the fold.
        arclength: ``s`` of the fold from the first point.
        tangent: ``dλ/ds`` at the located point (``<= fold_tolerance`` in magnitude when the
            location converged): the parameter is within ``tangent² / (2κ)`` of the fold.
        iterations: regula-falsi iterations (correctors) spent locating it.
        after: index in :attr:`ContinuationResult.points` of the last point before the fold.
        converged: whether ``|tangent| <= fold_tolerance`` was reached.
        state: rank-local copy of ``problem.u.x.array`` at the fold.
    """

    parameter: float
    monitor: float
    arclength: float
    tangent: float
    iterations: int
    after: int
    converged: bool
    state: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


@dataclass
class ContinuationResult:
    """The outcome of :func:`continuation`.

    Attributes:
        points: the converged points, in order along the branch.
        folds: the folds passed, in order.
        reason: why it stopped: ``"stop"`` (landed on ``λ = stop``), ``"start"`` (the branch
            came back past ``λ = start``) or ``"max_points"``.
    """

    points: list[ContinuationPoint] = field(default_factory=list)
    folds: list[Fold] = field(default_factory=list)
    reason: str = ""

    @property
    def parameters(self) -> np.ndarray:
        """``λ`` of every point ``(n_points,)``."""
        return np.array([p.parameter for p in self.points])

    @property
    def monitors(self) -> np.ndarray:
        """The monitor of every point ``(n_points,)``."""
        return np.array([p.monitor for p in self.points])


class _Failure(Exception):
    """A corrector attempt failed (converted into a step cut)."""


class _Bordered:
    """Keller's bordering on a problem's :class:`~fe2hmm.newton.NewtonSolver`.

    Uses the solver's own residual assembly (lifting and Dirichlet rows), matrix, Jacobian form,
    KSP and options; vectors are held as owned dof values (NumPy), dot products are global.
    """

    def __init__(self, problem: MacroProblem, parameter: fem.Constant, scale: float, h):
        newton = problem.newton
        self.newton = newton
        self.u = problem.u
        self.parameter = parameter
        V = problem.V
        self.owned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        self.size = V.dofmap.index_map.size_global * V.dofmap.index_map_bs
        self.comm = problem.mesh.comm
        self.scale = scale
        self.h = h
        self.dependent = [c for c in newton.closures if _closure_depends(c, parameter)]
        self._rhs = fem_petsc.create_vector(V)
        self._sol = fem.Function(V)

    # ---------------------------------------------------------------- vectors
    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.comm.allreduce(float(np.dot(a, b)), op=MPI.SUM)) / self.size

    @property
    def state(self) -> np.ndarray:
        return self.u.x.array[: self.owned].copy()

    @state.setter
    def state(self, values: np.ndarray) -> None:
        self.u.x.array[: self.owned] = values
        self.u.x.scatter_forward()

    # ---------------------------------------------------------------- assembly
    def update_closures(self, closures=None, tangents: bool = True) -> None:
        for closure in self.newton.closures if closures is None else closures:
            closure.update(tangents=tangents)

    def residual(self) -> tuple[np.ndarray, float]:
        """``G`` at the current state and parameter (closures as they are) and its norm."""
        norm = self.newton._residual()
        return self.newton._b.array_r.copy(), norm

    def derivative(self) -> np.ndarray:
        """``∂G/∂λ`` by a central difference; leaves the parameter and the closures as found."""
        lam = float(self.parameter.value)
        h = self.h if self.h is not None else 1e-4 * max(abs(lam), self.scale)
        values = []
        try:
            for shifted in (lam + h, lam - h):
                self.parameter.value = shifted
                self.update_closures(self.dependent, tangents=False)
                values.append(self.residual()[0])
        finally:
            self.parameter.value = lam
        self.update_closures(self.dependent, tangents=True)
        with np.errstate(all="ignore"):  # non-finite values are a failed step, checked later
            return (values[0] - values[1]) / (2.0 * h)

    def assemble_jacobian(self) -> None:
        newton = self.newton
        newton._A.zeroEntries()
        fem_petsc.assemble_matrix(newton._A, newton._J, bcs=newton.bcs)
        newton._A.assemble()

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``A⁻¹ rhs`` with the solver's KSP (the factorisation is reused between solves)."""
        self._rhs.array_w[:] = rhs
        newton = self.newton
        with options_set(newton.petsc_options_prefix, newton._options):
            newton.ksp.solve(self._rhs, self._sol.x.petsc_vec)
        reason = newton.ksp.getConvergedReason()
        if reason < 0:
            raise _Failure(f"linear solver failed (PETSc reason {reason})")
        return self._sol.x.petsc_vec.array_r.copy()

    def noise(self) -> float:
        return self.newton.noise_tolerance * self.newton.noise_norm()

    # ---------------------------------------------------------------- the two steps
    def tangent(self, dG: np.ndarray, previous: tuple[np.ndarray, float]):
        """The unit tangent at the current (converged) state, oriented along ``previous``."""
        self.assemble_jacobian()
        z = self.solve(dG)
        t_u, t_lam = previous
        denominator = t_lam - self.dot(t_u, z)
        if not (np.isfinite(denominator) and denominator != 0.0):
            raise _Failure("the tangent is orthogonal to the previous one")
        a = 1.0 / denominator
        vector, lam = -a * z, a
        norm = np.sqrt(self.dot(vector, vector) + lam**2)
        if not np.isfinite(norm):
            raise _Failure("non-finite tangent")
        return (vector / norm, float(lam / norm)), float(1.0 / norm)  # cosine of the turn

    def correct(self, base, tangent, sigma: float, max_iterations: int):
        """Corrector from ``base = (u, λ)`` along ``tangent`` at arclength ``sigma``.

        Returns:
            ``(iterations, ∂G/∂λ at the converged state)``; the state and parameter hold it.
        """
        newton = self.newton
        u0, lam0 = base
        t_u, t_lam = tangent
        self.state = u0 + sigma * t_u
        lam = lam0 + sigma * t_lam
        self.parameter.value = lam
        r0 = None
        small_update = False
        for iteration in range(max_iterations + 1):
            try:
                self.update_closures()
                G, norm = self.residual()
                dG = self.derivative()
            except MicroSolveError as err:
                raise _Failure(str(err)) from err
            if not (np.isfinite(norm) and np.all(np.isfinite(dG))):
                raise _Failure(f"non-finite residual at corrector iteration {iteration}")
            r0 = norm if r0 is None else r0
            with np.errstate(all="ignore"):
                size = abs(lam) * np.sqrt(self.comm.allreduce(float(dG @ dG), op=MPI.SUM))
            _log.debug("corrector %d: |G| = %.3e (λ = %.10g)", iteration, norm, lam)
            if (
                norm <= newton.atol
                or norm <= newton.rtol * max(r0, size)
                or norm <= self.noise()
                or small_update
            ):
                return iteration, dG
            if iteration == max_iterations:
                break
            self.assemble_jacobian()
            z1, z2 = self.solve(G), self.solve(dG)
            u = self.state
            n = self.dot(t_u, u - u0) + t_lam * (lam - lam0) - sigma
            denominator = t_lam - self.dot(t_u, z2)
            if not (np.isfinite(denominator) and denominator != 0.0):
                raise _Failure("singular bordered system")
            d_lam = (self.dot(t_u, z1) - n) / denominator
            du = -z1 - z2 * d_lam
            small_update = self.dot(du, du) + d_lam**2 <= _STOL**2 * (self.dot(u, u) + lam**2)
            self.state = u + du
            lam += d_lam
            self.parameter.value = lam
        raise _Failure(
            f"corrector did not converge in {max_iterations} iterations (|G| = {norm:.3e})"
        )


def _closure_depends(closure, parameter: fem.Constant) -> bool:
    """Whether any input of the closure's map uses ``parameter``."""
    inputs = getattr(closure.map, "_input_ufl", {})
    return any(
        any(c is parameter for c in extract_constants(ufl.as_ufl(e))) for e in inputs.values()
    )


def continuation(
    problem: MacroProblem,
    parameter: fem.Constant,
    start: float,
    stop: float,
    *,
    step: float | None = None,
    min_step: float | None = None,
    max_step: float | None = None,
    max_points: int = 200,
    monitor: Callable[[MacroProblem], float] | None = None,
    target_iterations: int = 4,
    max_iterations: int = 10,
    max_angle: float = 30.0,
    locate_folds: bool = True,
    fold_tolerance: float = 1e-8,
    max_fold_iterations: int = 30,
    difference_step: float | None = None,
    after_point: Callable[[ContinuationPoint], None] | None = None,
    histories: Sequence | None = None,
    checkpoint: Checkpoint | None = None,
) -> ContinuationResult:
    """Follow the solution branch of ``problem`` in ``parameter`` from ``start`` towards ``stop``.

    The first point is solved by the problem's Newton method at ``λ = start`` from the current
    ``problem.u``; then pseudo-arclength steps (see the module docstring) follow the branch
    through folds until it reaches ``λ = stop`` (the last point is solved at ``stop`` exactly),
    comes back past ``start``, or ``max_points`` points are found. ``problem.u`` and
    ``parameter`` hold the last point on return.

    Args:
        problem: the macro problem; its solver must be fe2hmm's
            :class:`~fe2hmm.newton.NewtonSolver` (the default).
        parameter: a scalar :class:`dolfinx.fem.Constant` in the residual or a Dirichlet value.
        start: the first parameter value.
        stop: the parameter value to reach (``!= start``; it gives the initial direction).
        step: the initial arclength step; default ``|stop - start| / 20``.
        min_step: the smallest step before giving up; default ``step / 10⁴``.
        max_step: the largest step; default ``10 step``.
        max_points: the largest number of points (the first included).
        monitor: ``monitor(problem) -> float`` recorded at every point and fold (collective,
            the same value on every rank), e.g. the maximum temperature; default the rms dof
            value of ``u``.
        target_iterations: corrector iterations the step control aims at.
        max_iterations: corrector iterations before the step is cut.
        max_angle: largest turn of the tangent between consecutive points (degrees); a larger
            one is rejected and the step halved (so a step cannot jump over two folds).
        locate_folds: locate the folds passed (else only the bracketing points are recorded,
            as a :class:`Fold` with the linear interpolation of ``λ̇`` and ``converged=False``).
        fold_tolerance: ``|dλ/ds|`` at which a fold counts as located.
        max_fold_iterations: correctors spent locating one fold.
        difference_step: ``h`` of the central difference ``∂G/∂λ``; default
            ``10⁻⁴ max(|λ|, |stop - start|)``.
        after_point: called with every accepted :class:`ContinuationPoint` (``problem.u`` holds
            its state), e.g. to write output.
        histories: committed after each accepted point, rolled back after a rejected attempt;
            default ``problem.histories``.
        checkpoint: a :class:`~fe2hmm.checkpoint.Checkpoint` of ``problem`` (e.g.
            ``problem.checkpoint(DIR)``, restored): saved after every accepted point with the
            points, folds, tangent, step and arclength so far; a restored checkpoint resumes
            the branch after its last point (a finished branch is returned as it was).

    Returns:
        The points, the folds and the reason for stopping.

    Raises:
        TypeError: ``problem`` not a MacroProblem, ``parameter`` not a Constant, a callback not
            callable, a history not Stateful.
        ValueError: a non-scalar parameter, one the residual and the Dirichlet values do not use,
            non-finite or equal ``start``/``stop``, bad step sizes, counts or tolerances.
        NotImplementedError: the problem's solver is not fe2hmm's NewtonSolver.
        NewtonConvergenceError: the first point did not converge, or the step fell below
            ``min_step`` (``error.result`` holds the points so far; ``problem.u`` the last one).
        MicroSolveError: a micro failure at the first point.

    Note:
        Collective on ``problem.mesh.comm``.
    """
    if not isinstance(problem, MacroProblem):
        raise TypeError(
            f"continuation: problem must be a MacroProblem, got {type(problem).__name__}"
        )
    if not isinstance(parameter, fem.Constant):
        raise TypeError(
            "continuation: parameter must be a dolfinx.fem.Constant, got "
            f"{type(parameter).__name__}"
        )
    if np.shape(parameter.value) != ():
        raise ValueError(
            "continuation: parameter must be a scalar Constant, got shape "
            f"{np.shape(parameter.value)}"
        )
    in_residual = any(c is parameter for c in extract_constants(problem.F))
    in_bcs = any(bc.g is parameter._cpp_object for bc in problem.bcs)
    if not (in_residual or in_bcs):
        raise ValueError(
            "continuation: the parameter appears neither in the residual nor as a Dirichlet value"
        )
    start, stop = _number(start, "start"), _number(stop, "stop")
    if start == stop:
        raise ValueError(f"continuation: stop must differ from start, got {stop!r} twice")
    step = abs(stop - start) / 20.0 if step is None else _positive(step, "step")
    min_step = step * 1e-4 if min_step is None else _positive(min_step, "min_step")
    max_step = step * 10.0 if max_step is None else _positive(max_step, "max_step")
    if not min_step <= step <= max_step:
        raise ValueError(
            f"continuation: need min_step <= step <= max_step, got {min_step:g}, {step:g}, "
            f"{max_step:g}"
        )
    for label, value, least in (
        ("max_points", max_points, 1),
        ("target_iterations", target_iterations, 1),
        ("max_iterations", max_iterations, 1),
        ("max_fold_iterations", max_fold_iterations, 1),
    ):
        if isinstance(value, bool) or int(value) != value or value < least:
            raise ValueError(f"continuation: {label} must be an integer >= {least}, got {value!r}")
    if not 0.0 < _number(max_angle, "max_angle") < 90.0:
        raise ValueError(f"continuation: max_angle must be in (0, 90) degrees, got {max_angle!r}")
    fold_tolerance = _positive(fold_tolerance, "fold_tolerance")
    if difference_step is not None:
        difference_step = _positive(difference_step, "difference_step")
    for label, callback in (("monitor", monitor), ("after_point", after_point)):
        if callback is not None and not callable(callback):
            raise TypeError(
                f"continuation: {label} must be callable, got {type(callback).__name__}"
            )
    histories = check_stateful(problem.histories if histories is None else histories)
    if not isinstance(problem.newton, NewtonSolver):
        raise NotImplementedError(
            "continuation works on fe2hmm's NewtonSolver (the default solver), got "
            f"{type(problem.newton).__name__}"
        )

    bordered = _Bordered(problem, parameter, abs(stop - start), difference_step)
    if monitor is None:

        def monitor(_: MacroProblem) -> float:
            state = bordered.state
            return float(np.sqrt(bordered.dot(state, state)))

    cos_max = np.cos(np.radians(max_angle))
    direction = np.sign(stop - start)
    result = ContinuationResult()

    def commit():
        for h in histories:
            h.commit()

    def rollback():
        for h in histories:
            h.rollback()

    def accept(point: ContinuationPoint) -> None:
        commit()
        result.points.append(point)
        _log.info(
            "continuation point %d: λ = %.10g, monitor = %.6g, dλ/ds = %.3e, Δs = %.3g",
            len(result.points) - 1,
            point.parameter,
            point.monitor,
            point.tangent,
            point.step,
        )
        if after_point is not None:
            after_point(point)

    def save(reason: str = "") -> ContinuationResult:
        """Save the branch so far (a checkpoint step); returns ``result``."""
        result.reason = reason
        if checkpoint is not None:
            checkpoint.data["continuation"] = {
                "points": [asdict(p) for p in result.points],
                "folds": [
                    {k: v for k, v in asdict(f).items() if k != "state"} for f in result.folds
                ],
                "parameter": float(base[1]),
                "tangent": float(tangent[1]),
                "step": float(step),
                "arclength": float(arclength),
                "reason": reason,
            }
            checkpoint.arrays["continuation.tangent"] = tangent[0]
            for i, f in enumerate(result.folds):
                checkpoint.arrays[f"continuation.fold{i}"] = f.state
            checkpoint.save()
        return result

    saved = None if checkpoint is None else checkpoint.data.get("continuation")
    if saved is not None:  # resume after the last saved point (problem.u holds it)
        result.points = [ContinuationPoint(**p) for p in saved["points"]]
        result.folds = [
            Fold(**f, state=checkpoint.arrays[f"continuation.fold{i}"].copy())
            for i, f in enumerate(saved["folds"])
        ]
        result.reason = saved["reason"]
        if result.reason:  # finished: problem.u and the parameter hold the last point
            parameter.value = result.points[-1].parameter
            bordered.update_closures()
            return result
        parameter.value = saved["parameter"]
        tangent = (checkpoint.arrays["continuation.tangent"].copy(), saved["tangent"])
        base = (bordered.state, saved["parameter"])
        step, arclength = saved["step"], saved["arclength"]
    else:  # the first point: Newton at λ = start
        parameter.value = start
        first = problem.solve()
        dG = bordered.derivative()
        tangent, _ = bordered.tangent(dG, (np.zeros(bordered.owned), direction))
        base = (bordered.state, start)
        arclength = 0.0
        accept(
            ContinuationPoint(
                start, float(monitor(problem)), 0.0, 0.0, tangent[1], first.iterations
            )
        )
        save()

    while True:
        if len(result.points) >= max_points:
            return save("max_points")
        cuts = 0
        while True:
            try:
                iterations, dG = bordered.correct(base, tangent, step, max_iterations)
                new_tangent, cosine = bordered.tangent(dG, tangent)
                if cosine < cos_max and step > min_step:
                    raise _Failure(f"the tangent turned by {np.degrees(np.arccos(cosine)):.1f}°")
                break
            except _Failure as err:
                rollback()
                cuts += 1
                bordered.state, parameter.value = base[0], base[1]
                if step <= min_step:
                    error = NewtonConvergenceError(
                        f"continuation stopped at λ = {base[1]:.10g}: the step fell below "
                        f"min_step = {min_step:g} ({err})"
                    )
                    error.result = result
                    raise error from err
                step = max(0.5 * step, min_step)
                _log.info("continuation step rejected (%s); Δs -> %g", err, step)
        lam = float(parameter.value)
        state = bordered.state
        if locate_folds and tangent[1] * new_tangent[1] < 0.0:
            fold = _locate_fold(
                bordered,
                base,
                tangent,
                step,
                new_tangent[1],
                arclength,
                len(result.points) - 1,
                fold_tolerance,
                max_fold_iterations,
                max_iterations,
                monitor,
                problem,
                rollback,
            )
            result.folds.append(fold)
            bordered.state, parameter.value = state, lam
            bordered.update_closures()  # this point's outputs and trial history again
        elif tangent[1] * new_tangent[1] < 0.0:
            a, b = tangent[1], new_tangent[1]
            result.folds.append(
                Fold(
                    base[1] + (lam - base[1]) * a / (a - b),
                    float("nan"),
                    arclength + step * a / (a - b),
                    0.5 * (a + b),
                    0,
                    len(result.points) - 1,
                    False,
                )
            )
        arclength += step
        if direction * (lam - stop) >= 0.0:  # passed stop: land on it
            theta = (stop - base[1]) / (lam - base[1])
            bordered.state = base[0] + theta * (state - base[0])
            parameter.value = stop
            rollback()
            try:
                last = problem.solve()
            except (NewtonConvergenceError, MicroSolveError) as err:
                rollback()
                error = NewtonConvergenceError(
                    f"continuation: landing on λ = {stop:g} failed: {err}"
                )
                error.result = result
                raise error from err
            dG = bordered.derivative()
            landed, _ = bordered.tangent(dG, tangent)
            accept(
                ContinuationPoint(
                    stop,
                    float(monitor(problem)),
                    arclength - (1.0 - theta) * step,
                    theta * step,
                    landed[1],
                    last.iterations,
                    cuts,
                )
            )
            return save("stop")
        accept(
            ContinuationPoint(
                lam, float(monitor(problem)), arclength, step, new_tangent[1], iterations, cuts
            )
        )
        base, tangent = (state, lam), new_tangent
        if direction * (lam - start) < 0.0:
            return save("start")
        factor = float(np.clip(target_iterations / max(iterations, 1), 0.5, 2.0))
        step = float(np.clip(step * factor, min_step, max_step))
        save()


def _locate_fold(
    bordered: _Bordered,
    base,
    tangent,
    step: float,
    end_tangent: float,
    arclength: float,
    after: int,
    tolerance: float,
    max_fold_iterations: int,
    max_iterations: int,
    monitor,
    problem,
    rollback,
) -> Fold:
    """Illinois regula falsi on ``λ̇(σ) = 0`` between ``σ = 0`` and ``σ = step``."""
    a, fa = 0.0, tangent[1]
    b, fb = step, end_tangent
    best = (abs(fb), b, fb, bordered.state, float(bordered.parameter.value))
    side = 0
    iterations = 0
    rollback()
    for iterations in range(1, max_fold_iterations + 1):
        sigma = (a * fb - b * fa) / (fb - fa)
        try:
            bordered.correct(base, tangent, sigma, max_iterations)
            dG = bordered.derivative()
            (_, f), _ = bordered.tangent(dG, tangent)
        except _Failure as err:
            _log.warning("fold location stopped after %d correctors: %s", iterations, err)
            break
        rollback()
        if abs(f) < best[0]:
            best = (abs(f), sigma, f, bordered.state, float(bordered.parameter.value))
        if abs(f) <= tolerance:
            break
        if f * fb > 0.0:  # the root lies between a and sigma
            b, fb = sigma, f
            if side == -1:
                fa *= 0.5  # Illinois: the same end twice, halve the other's value
            side = -1
        else:
            a, fa = sigma, f
            if side == 1:
                fb *= 0.5
            side = 1
    _, sigma, f, state, lam = best
    bordered.state, bordered.parameter.value = state, lam
    bordered.update_closures(tangents=False)
    value = float(monitor(problem))
    rollback()
    _log.info("fold at λ = %.12g (dλ/ds = %.2e, %d correctors)", lam, f, iterations)
    return Fold(
        float(lam),
        value,
        float(arclength + sigma),
        float(f),
        iterations,
        after,
        bool(abs(f) <= tolerance),
        bordered.u.x.array.copy(),
    )


def _number(value, label: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"continuation: {label} must be a number, got {type(value).__name__}"
        ) from None
    if not np.isfinite(number):
        raise ValueError(f"continuation: {label} must be finite, got {value!r}")
    return number


def _positive(value, label: str) -> float:
    number = _number(value, label)
    if number <= 0.0:
        raise ValueError(f"continuation: {label} must be > 0, got {value!r}")
    return number
