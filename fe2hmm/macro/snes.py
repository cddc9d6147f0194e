"""The macro solve through PETSc SNES, with the closures updated before every residual.

:class:`SNESSolver` wraps dolfinx's :class:`dolfinx.fem.petsc.NonlinearProblem` and replaces
its residual callback by one that first copies the SNES iterate into ``u``, then runs
:meth:`fe2hmm.closure.Closure.update` (micro solves, outputs *and* tangents), then assembles
the residual with dolfinx's own :func:`dolfinx.fem.petsc.assemble_residual`. The Jacobian
callback assembles from the tangents of that same update. With the defaults (Newton with the
full step, ``snes_linesearch_type basic``, MUMPS LU) the iterates are those of
:class:`fe2hmm.newton.NewtonSolver`: the same residual vector, the same matrix, the same linear
solve and the same update ``u ← u - δu``; the tests find the residual histories equal to
round-off. :class:`SNESSolver` has the duck type ``solve_incrementally`` needs (``.u`` and
``.solve()`` returning a :class:`fe2hmm.newton.NewtonResult`), so load stepping, history
commit/rollback and step cutting work unchanged.

Errors: petsc4py turns a Python exception raised inside a SNES callback into a bare
``PETSc.Error`` (error code 101) and leaves the SNES unusable (its vectors stay locked), so the
callbacks never raise. An exception from a closure update (e.g.
:class:`~fe2hmm.errors.MicroSolveError`) or from the assembly is kept, agreed on by all ranks
(one ``allreduce``), and the residual is filled with NaN, which ends SNES's iteration cleanly
(``DIVERGED_FUNCTION_NANORINF`` or a failed line search); :meth:`SNESSolver.solve` then
re-raises the kept exception on every rank. Any other divergence raises
:class:`~fe2hmm.errors.NewtonConvergenceError` with ``residual_norms``.

Stopping within the noise: with stochastic closures the SNES gets a convergence test of its
own, PETSc's default test (``snes_atol``, ``snes_rtol``, ``snes_stol``, divergence tolerance,
function-evaluation count) followed by :class:`fe2hmm.newton.NewtonSolver`'s noise rule
``|F| <= noise_tolerance · σ_F``, with ``σ_F`` from the same
:class:`fe2hmm.newton.ResidualNoise`, so the iterates stop where the own loop stops.

PETSc options hygiene (:mod:`fe2hmm.petsc_options`): every solver has its own options prefix
(generated, or given and checked against the live solvers), and its options are in PETSc's
global database only while it configures itself and while it solves (some options, e.g.
MUMPS' ``mat_mumps_icntl_*``, are read at the first factorisation, inside the solve).
dolfinx 0.11's own clean-up in ``NonlinearProblem`` deletes the option names without the
pushed prefix and so leaves them in the database; fe2hmm therefore never passes
``petsc_options`` to it.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Sequence

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError, NewtonConvergenceError, keep_alive, stopping
from fe2hmm.newton import NewtonResult, ResidualNoise
from fe2hmm.petsc_options import claim_prefix, options_set, release_prefix

__all__ = ["SNESSolver"]

_log = logging.getLogger(__name__)

#: Newton with the full step, like :class:`fe2hmm.newton.NewtonSolver`; no step-length or
#: divergence tests, which the own loop does not have either.
_SNES_DEFAULTS = {
    "snes_type": "newtonls",
    "snes_linesearch_type": "basic",
    "snes_stol": 0.0,
    "snes_divergence_tolerance": -1.0,
}
#: The linear solver of :class:`fe2hmm.newton.NewtonSolver`; used unless ``petsc_options`` has
#: a ``ksp_`` or ``pc_`` key.
_KSP_DEFAULTS = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
}


class SNESSolver:
    """Newton's method for ``F(u; closures) = 0`` through PETSc SNES (dolfinx ``NonlinearProblem``).

    A drop-in for :class:`fe2hmm.newton.NewtonSolver` (same arguments, same result type, same
    errors) that leaves the nonlinear iteration to SNES, so its line searches, monitors and
    command-line options are available. ``rtol``, ``atol`` and ``max_iterations`` become
    ``snes_rtol``, ``snes_atol`` and ``snes_max_it``; ``petsc_options`` override them.

    Args:
        F: residual form, linear in the test function, using the closures' outputs.
        u: macro unknown; its values are the initial guess and are overwritten.
        bcs: Dirichlet conditions on ``u``.
        closures: closures whose outputs appear in ``F``; updated before every residual.
        J: Jacobian form; by default ``ufl.derivative(F, u)`` plus every closure's
            :meth:`~fe2hmm.closure.Closure.jacobian_terms`.
        petsc_options: options of the SNES and of its KSP/PC, without the prefix, merged over
            the defaults: ``snes_type newtonls``, ``snes_linesearch_type basic``,
            ``snes_stol 0``, ``snes_divergence_tolerance -1`` and, unless a ``ksp_``/``pc_``
            key is given, MUMPS LU (``ksp_type preonly``, ``pc_type lu``).
        petsc_options_prefix: options prefix of the SNES (the Jacobian gets ``<prefix>A_``,
            the vectors ``<prefix>b_``/``<prefix>x_``, as in dolfinx). ``None`` generates a
            unique ``fe2hmm_snes_<k>_``; a given one must be the same on all ranks and not
            overlap the prefix of a live :class:`SNESSolver`.
        rtol: relative tolerance on the residual norm (``snes_rtol``).
        atol: absolute tolerance on the residual norm (``snes_atol``).
        max_iterations: Newton steps before giving up (``snes_max_it``).
        noise_tolerance: with stochastic closures, also stop when the residual norm is at most
            this many times its expected noise ``σ_F`` (as :class:`fe2hmm.newton.NewtonSolver`;
            ``0`` switches the rule off).
        form_compiler_options: FFCx options for the residual and Jacobian forms.
        jit_options: JIT options for the residual and Jacobian forms.

    Raises:
        TypeError: ``u`` is not a :class:`dolfinx.fem.Function`, or the prefix not a string.
        ValueError: bad tolerances or iteration count; an empty, rank-dependent or taken
            prefix.

    Note:
        Construction, :meth:`solve` and :meth:`destroy` are collective on
        ``u.function_space.mesh.comm``.
    """

    def __init__(
        self,
        F: ufl.Form,
        u: fem.Function,
        bcs: Sequence[fem.DirichletBC] = (),
        closures: Sequence[Closure] = (),
        J: ufl.Form | None = None,
        petsc_options: dict | None = None,
        petsc_options_prefix: str | None = None,
        rtol: float = 1e-10,
        atol: float = 1e-12,
        max_iterations: int = 25,
        noise_tolerance: float = 2.0,
        form_compiler_options: dict | None = None,
        jit_options: dict | None = None,
    ) -> None:
        self._problem = None
        self._prefix: str | None = None
        if not isinstance(u, fem.Function):
            raise TypeError(f"u must be a dolfinx.fem.Function, got {type(u).__name__}")
        for label, value in (("rtol", rtol), ("atol", atol), ("noise_tolerance", noise_tolerance)):
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
        if int(max_iterations) != max_iterations or int(max_iterations) < 1:
            raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
        comm = u.function_space.mesh.comm
        self._comm = comm
        self._prefix = claim_prefix(comm, petsc_options_prefix, "fe2hmm_snes_")
        self._reset()
        self.u = u
        self.bcs = list(bcs)
        self.closures = list(closures)
        self.rtol, self.atol, self.max_iterations = float(rtol), float(atol), int(max_iterations)
        self.noise_tolerance = float(noise_tolerance)
        user = dict(petsc_options or {})
        options: dict = dict(_SNES_DEFAULTS)
        options.update(snes_rtol=self.rtol, snes_atol=self.atol, snes_max_it=self.max_iterations)
        if not any(k.startswith(("ksp_", "pc_")) for k in user):
            options.update(_KSP_DEFAULTS)
        options.update(user)
        self._options = options
        if J is None:
            du = ufl.TrialFunction(u.function_space)
            J = ufl.derivative(F, u, du)
            for closure in self.closures:
                for term in closure.jacobian_terms(F, u, du):
                    J = J + term
        self._noise = ResidualNoise(
            F, u.function_space, self.bcs, self.closures, form_compiler_options, jit_options
        )
        self._problem = fem_petsc.NonlinearProblem(
            F,
            u,
            petsc_options_prefix=self._prefix,
            bcs=self.bcs,
            J=J,
            petsc_options=None,  # set below: dolfinx 0.11 leaves them in the database
            form_compiler_options=form_compiler_options,
            jit_options=jit_options,
        )
        snes = self._problem.solver
        # the callbacks hold a weak reference: a bound method kept by the SNES would make a
        # reference cycle through petsc4py objects and delay the destruction
        ref = weakref.ref(self)
        snes.setFunction(_call, self._problem.b, args=(ref, "_residual"))
        snes.setJacobian(_call, self._problem.A, self._problem.P_mat, args=(ref, "_jacobian"))
        snes.setMonitor(_call, args=(ref, "_monitor"))
        if self._noise.active:  # before setFromOptions: -<prefix>snes_convergence_test wins
            snes.setConvergenceTest(_call, args=(ref, "_converged"))
        with options_set(self._prefix, self._options):
            snes.setFromOptions()

    # ------------------------------------------------------------------ properties
    @property
    def petsc_options_prefix(self) -> str:
        """The options prefix of the SNES (its KSP and PC share it)."""
        if self._prefix is None:
            raise RuntimeError("the solver has been destroyed")
        return self._prefix

    @property
    def snes(self) -> PETSc.SNES:
        """The underlying PETSc SNES."""
        if self._problem is None:
            raise RuntimeError("the solver has been destroyed")
        return self._problem.solver

    @property
    def problem(self) -> fem_petsc.NonlinearProblem:
        """The wrapped dolfinx ``NonlinearProblem`` (its residual callback is replaced)."""
        if self._problem is None:
            raise RuntimeError("the solver has been destroyed")
        return self._problem

    # ------------------------------------------------------------------ SNES callbacks
    def _reset(self) -> None:
        self._norms: list[float] = []
        self._noise_norms: list[float] = []
        self._r0: float | None = None
        self._seconds = {"micro": 0.0, "assemble": 0.0, "solve": 0.0}
        self._per_iteration: list[dict[str, float]] = []
        self._error: BaseException | None = None
        self._failed = False
        self._updated_at: np.ndarray | None = None
        self._last_callback_end: float | None = None

    def _account_solve(self, start: float) -> None:
        """Add the time since the last callback (linear solve, vector updates) to ``solve``."""
        if self._last_callback_end is not None and self._per_iteration:
            dt = start - self._last_callback_end
            self._seconds["solve"] += dt
            self._per_iteration[-1]["solve"] += dt

    def _fail(self, error: BaseException | None) -> bool:
        """Agree on all ranks whether this or an earlier callback failed; keep the error.

        Note:
            Collective.
        """
        if error is not None and self._error is None:
            self._error = error
        if self._comm.allreduce(self._error is not None, op=MPI.LOR):
            self._failed = True
        return self._failed

    def _update_closures(self, x: PETSc.Vec) -> None:
        """Copy the iterate into ``u`` and update every closure there (outputs and tangents)."""
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        fem_petsc.assign(x, self.u)
        for closure in self.closures:
            closure.update(tangents=True)
        self._updated_at = x.getArray(readonly=True).copy()

    def _residual(self, snes: PETSc.SNES, x: PETSc.Vec, b: PETSc.Vec) -> None:
        t0 = time.perf_counter()
        self._account_solve(t0)
        error = None
        t1 = t0
        if not self._failed:
            try:
                self._update_closures(x)
                t1 = time.perf_counter()
                fem_petsc.assemble_residual(
                    snes, x, b, self.u, self._problem.F, self._problem.J, self.bcs
                )
            except BaseException as err:  # noqa: BLE001 - re-raised by solve() on every rank
                error = err
        if self._fail(error):
            with b.localForm() as local:  # a NaN residual ends the SNES iteration cleanly
                local.set(np.nan)
            return
        t2 = time.perf_counter()
        self._seconds["micro"] += t1 - t0
        self._seconds["assemble"] += t2 - t1
        self._per_iteration.append({"micro": t1 - t0, "assemble": t2 - t1, "solve": 0.0})
        self._last_callback_end = t2

    def _jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, A: PETSc.Mat, P: PETSc.Mat) -> None:
        t0 = time.perf_counter()
        self._account_solve(t0)
        error = None
        micro = 0.0
        if not self._failed:
            try:
                # the tangents must be those of x: re-update if a line search evaluated the
                # residual elsewhere last (never with the default full step)
                local = x.getArray(readonly=True)
                stale = self._updated_at is None or not np.array_equal(local, self._updated_at)
                if self._comm.allreduce(stale, op=MPI.LOR):
                    _log.debug("SNES Jacobian at a point without a closure update: updating")
                    self._update_closures(x)
                micro = time.perf_counter() - t0
                fem_petsc.assemble_jacobian(
                    snes,
                    x,
                    A,
                    P,
                    self.u,
                    self._problem.J,
                    self._problem.preconditioner,
                    self.bcs,
                )
            except BaseException as err:  # noqa: BLE001 - re-raised by solve() on every rank
                error = err
        if self._fail(error):
            # a valid (identity) operator keeps the linear solve clean; the next residual is
            # NaN and ends the iteration
            A.zeroEntries()
            A.assemble()
            A.shift(1.0)
            return
        t1 = time.perf_counter()
        self._seconds["micro"] += micro
        self._seconds["assemble"] += t1 - t0 - micro
        if self._per_iteration:
            self._per_iteration[-1]["micro"] += micro
            self._per_iteration[-1]["assemble"] += t1 - t0 - micro
        self._last_callback_end = t1

    def _converged(
        self, snes: PETSc.SNES, iteration: int, norms: tuple[float, float, float]
    ) -> int:
        """PETSc's default convergence test, then the noise rule of ``NewtonSolver``.

        Installed with stochastic closures only. ``σ_F`` is that of the closure update of the
        residual just assembled (the accepted iterate).

        Note:
            Collective.
        """
        reasons = PETSc.SNES.ConvergedReason
        xnorm, snorm, fnorm = norms
        error = None
        noise = 0.0
        if not self._failed:
            try:
                noise = self._noise.norm()
            except BaseException as err:  # noqa: BLE001 - re-raised by solve() on every rank
                error = err
        if self._fail(error):
            return reasons.DIVERGED_FUNCTION_NANORINF
        self._noise_norms.append(noise)
        rtol, atol, stol, _ = snes.getTolerances()
        if iteration == 0:
            self._r0 = fnorm
        # SNESConvergedDefault (PETSc 3.25), without snes_force_iteration
        if not np.isfinite(fnorm):
            return reasons.DIVERGED_FUNCTION_NANORINF
        if fnorm < atol:
            return reasons.CONVERGED_FNORM_ABS
        max_funcs = snes.getMaxFunctionEvaluations()
        if 0 <= max_funcs <= snes.getFunctionEvaluations():
            return reasons.DIVERGED_FUNCTION_COUNT
        if iteration > 0:
            divtol = snes.getDivergenceTolerance()
            if fnorm <= rtol * self._r0:
                return reasons.CONVERGED_FNORM_RELATIVE
            if snorm < stol * xnorm:
                return reasons.CONVERGED_SNORM_RELATIVE
            if divtol > 0 and fnorm > divtol * self._r0:
                return reasons.DIVERGED_DTOL
        if fnorm <= self.noise_tolerance * noise:
            _log.info(
                "SNES iteration %d: |F| = %.3e within the noise %.3e", iteration, fnorm, noise
            )
            return reasons.CONVERGED_FNORM_ABS
        return reasons.ITERATING

    def _monitor(self, snes: PETSc.SNES, iteration: int, norm: float) -> None:
        if self._failed:
            return
        self._norms.append(float(norm))
        _log.info("SNES iteration %d: |F| = %.3e", iteration, norm)

    # ------------------------------------------------------------------ solve
    def solve(self) -> NewtonResult:
        """Run SNES from the current ``u``.

        Returns:
            Iteration count (SNES iterations = linear solves), the residual norm before each
            step and after the last, and the timings (``micro``: closure updates,
            ``assemble``, ``solve``: everything else inside SNES, mostly the linear solves).

        Raises:
            MicroSolveError: from a closure update, on every rank (ranks without a failing
                point get one naming the failure elsewhere).
            NewtonConvergenceError: SNES diverged (``max_iterations`` reached, failed linear
                solve or line search, non-finite residual); the error carries
                ``residual_norms`` and ``reason`` (the PETSc ``SNESConvergedReason``).
            Exception: any other exception of a closure update or of the assembly, re-raised.

        Note:
            Collective on ``u.function_space.mesh.comm``.
        """
        problem = self.problem
        self._reset()
        start = time.perf_counter()
        with options_set(self.petsc_options_prefix, self._options):
            problem.solve()
        end = time.perf_counter()
        self._account_solve(end)
        snes = problem.solver
        reason = snes.getConvergedReason()
        iterations = snes.getIterationNumber()
        norms = list(self._norms)
        noise_norms = list(self._noise_norms)
        if self._failed:
            error = self._error
            self._reset()
            if error is None:
                error = MicroSolveError(
                    "the SNES residual callback failed on another rank; see its error",
                    rank=self._comm.rank,
                )
            raise error
        _log.debug(
            "SNES %s: %d iterations in %.3g s", _reason_name(reason), iterations, end - start
        )
        if reason > 0:
            return NewtonResult(
                iterations,
                True,
                norms,
                dict(self._seconds),
                list(self._per_iteration),
                noise_norms,
            )
        if not norms or not np.isfinite(norms[-1]):
            detail = "non-finite residual norm"
        elif reason == PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT:
            detail = f"did not converge in {self.max_iterations} iterations"
        else:
            detail = "diverged"
        error = NewtonConvergenceError(
            f"SNES {detail} ({_reason_name(reason)}, reason {reason}) after {iterations} "
            "iterations: residual norms "
            + ", ".join(f"{n:.3e}" for n in norms)
            + f" (rtol={self.rtol:g}, atol={self.atol:g}"
            + (f", noise {noise_norms[-1]:.3e}" if noise_norms else "")
            + ")"
        )
        error.residual_norms = norms
        error.noise_norms = noise_norms
        error.reason = reason
        raise error

    def destroy(self) -> None:
        """Destroy the PETSc objects and free the options prefix (idempotent).

        Note:
            Collective on ``u.function_space.mesh.comm``.
        """
        if self._problem is not None:
            problem, self._problem = self._problem, None
            problem.__del__()  # destroys SNES, A, b, x (dolfinx's own clean-up)
        release_prefix(self._prefix)
        self._prefix = None

    def __del__(self) -> None:
        # destroy is collective (MUMPS's clean-up): every rank must reach it, here or at
        # interpreter exit; once a micro-model stopped the run the ranks leave by different
        # paths, so none destroys (the process ends without finalisation, errors.stopping)
        if stopping():
            keep_alive(self)
        else:
            self.destroy()


def _call(snes: PETSc.SNES, *args) -> None:
    """SNES callback: forward to the method ``args[-1]`` of the solver ``args[-2]()``."""
    *petsc_args, ref, method = args
    solver = ref()
    if solver is not None:
        return getattr(solver, method)(snes, *petsc_args)
    return None


def _reason_name(reason: int) -> str:
    for name, value in vars(PETSc.SNES.ConvergedReason).items():
        if not name.startswith("_") and value == reason and name != "CONVERGED_ITERATING":
            return name
    return str(reason)
