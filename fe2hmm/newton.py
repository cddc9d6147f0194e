"""Newton's method for macro problems closed by micro-models.

Each iteration updates every closure at the current macro state (micro solves), assembles the
residual and the Jacobian built from the closures' tangents, and solves the linear system with
PETSc. A closure that is linear in its inputs makes the macro problem converge in one step.

**Stopping within the noise.** A stochastic micro-model (molecular dynamics at T > 0, kinetic
Monte Carlo) returns outputs ``q`` with standard errors ``s`` and fresh noise at every
evaluation: the residual cannot fall below what that noise puts into it. With independent
errors at the quadrature-point components, the residual's noise has the covariance
``B diag(s²) Bᵀ`` with ``B = ∂F/∂q`` (assembled as a matrix from the test space to the
output's quadrature space), so its expected norm is ``σ_F = (Σ_i Σ_p B_ip² s_p²)^½`` (rows of
Dirichlet dofs excluded). Newton stops when ``|F| <= noise_tolerance · σ_F`` as well: further
steps would only chase noise. ``σ_F`` is recomputed at every iterate and returned in
:attr:`NewtonResult.noise_norms`. :class:`ResidualNoise` computes it, for this solver and for
:class:`fe2hmm.macro.snes.SNESSolver` alike.

PETSc options: every solver has its own options prefix (see :mod:`fe2hmm.petsc_options`), and
its options are in PETSc's global database only while the KSP configures itself and while it
solves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from petsc4py import PETSc

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError, NewtonConvergenceError, keep_alive, stopping
from fe2hmm.micro.interface import check_stateful
from fe2hmm.petsc_options import claim_prefix, options_set, release_prefix

__all__ = ["NewtonSolver", "NewtonResult", "LoadStep", "ResidualNoise", "solve_incrementally"]

_log = logging.getLogger(__name__)

_DEFAULT_PETSC_OPTIONS = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
}


@dataclass
class NewtonResult:
    """Outcome of :meth:`NewtonSolver.solve`.

    Attributes:
        iterations: Newton steps taken (linear solves).
        converged: whether the tolerances were met.
        residual_norms: l2 norm of the residual before each step and after the last one.
        seconds: wall-time split: ``"micro"`` (closure updates), ``"assemble"``, ``"solve"``.
        iteration_seconds: the same split per iterate (rank-local), one dict per closure
            update (see :func:`fe2hmm.timing.time_report`).
        noise_norms: expected norm ``σ_F`` of the residual's noise at each iterate (stochastic
            closures; empty without them).
    """

    iterations: int
    converged: bool
    residual_norms: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    iteration_seconds: list[dict[str, float]] = field(default_factory=list)
    noise_norms: list[float] = field(default_factory=list)


class ResidualNoise:
    """The expected norm ``σ_F`` of a residual's noise from its closures' standard errors.

    ``σ_F = (Σ_i Σ_p B_ip² s_p²)^½`` with ``B = ∂F/∂q`` for every closure output ``q`` that
    carries standard errors ``s``, rows of Dirichlet dofs excluded (see the module docstring).
    The one implementation of the noise-aware stopping rule's ``σ_F``, shared by
    :class:`NewtonSolver` and :class:`fe2hmm.macro.snes.SNESSolver`.

    Args:
        F: residual form, linear in the test function, using the closures' outputs.
        V: the test (and trial) space of ``F``, i.e. that of the macro unknown.
        bcs: Dirichlet conditions; their dofs carry no noise.
        closures: the closures of ``F``; those of stochastic models have standard errors.
        form_compiler_options: FFCx options for the ``∂F/∂q`` forms.
        jit_options: JIT options for the ``∂F/∂q`` forms.

    Note:
        Construction compiles forms; :meth:`norm` is collective on ``V.mesh.comm``.
    """

    def __init__(
        self,
        F: ufl.Form,
        V: fem.FunctionSpace,
        bcs: Sequence[fem.DirichletBC] = (),
        closures: Sequence[Closure] = (),
        form_compiler_options: dict | None = None,
        jit_options: dict | None = None,
    ) -> None:
        self.V = V
        self.bcs = list(bcs)
        # residual sensitivities ∂F/∂q to the outputs that carry standard errors
        self._forms = [
            (
                fem.form(
                    ufl.derivative(F, q, ufl.TrialFunction(q.function_space)),
                    form_compiler_options=form_compiler_options,
                    jit_options=jit_options,
                ),
                closure.standard_errors[key],
            )
            for closure in closures
            for key, q in closure.outputs.items()
            if key in closure.standard_errors
        ]

    @property
    def active(self) -> bool:
        """Whether any closure output carries standard errors (else ``σ_F`` is 0)."""
        return bool(self._forms)

    def norm(self) -> float:
        """``σ_F`` from the standard errors of the closures' last update (``0`` if inactive).

        Note:
            Collective on ``V.mesh.comm``.
        """
        V = self.V
        comm = V.mesh.comm
        owned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        variance = np.zeros(owned)
        for form, s in self._forms:
            # B_ip² as a matrix of its own (owned rows, global columns): each column p gets
            # contributions from its own cell only, so squaring the assembled entries is exact
            B = fem_petsc.assemble_matrix(form)
            B.assemble()
            rows, cols, values = B.getValuesCSR()
            B2 = PETSc.Mat().createAIJ(B.getSizes(), csr=(rows, cols, values**2), comm=comm)
            B.destroy()
            s2, out = B2.createVecs()
            Q = s.function_space
            n_q = Q.dofmap.index_map.size_local * Q.dofmap.index_map_bs
            s2.array[:] = s.x.array[:n_q] ** 2
            B2.mult(s2, out)
            variance += out.array
            for obj in (B2, s2, out):
                obj.destroy()
        for bc in self.bcs:
            dofs = bc.dof_indices()[0]
            variance[dofs[dofs < owned]] = 0.0
        return float(np.sqrt(comm.allreduce(float(variance.sum()))))


class NewtonSolver:
    """Newton solver for ``F(u; closures) = 0``.

    Args:
        F: residual form, linear in the test function, using the closures' outputs.
        u: macro unknown; its values are the initial guess and are overwritten.
        bcs: Dirichlet conditions on ``u``.
        closures: closures whose outputs appear in ``F``; updated at every iterate.
        J: Jacobian form; by default ``closure.jacobian`` chained over all closures.
        petsc_options: PETSc options of the linear solver, without the prefix (default:
            MUMPS LU: ``ksp_type preonly``, ``pc_type lu``, ``pc_factor_mat_solver_type
            mumps``). They are in PETSc's database only during ``setFromOptions`` and the
            linear solves.
        petsc_options_prefix: options prefix of the KSP. ``None`` generates a unique
            ``fe2hmm_newton_<k>_``; a given one must be the same on all ranks and not overlap
            the prefix of a live solver (see :func:`fe2hmm.petsc_options.claim_prefix`).
        rtol: relative tolerance on the residual norm.
        atol: absolute tolerance on the residual norm.
        max_iterations: Newton steps before giving up.
        noise_tolerance: with stochastic closures, also stop when the residual norm is at most
            this many times its expected noise ``σ_F`` (see the module docstring); ``0``
            switches the rule off.

    Raises:
        TypeError: the prefix is not a string.
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
    ) -> None:
        self._ksp = self._A = self._b = None
        self._prefix: str | None = None
        for label, value in (("rtol", rtol), ("atol", atol), ("noise_tolerance", noise_tolerance)):
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
        if int(max_iterations) < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations!r}")
        comm = u.function_space.mesh.comm
        self._prefix = claim_prefix(comm, petsc_options_prefix, "fe2hmm_newton_")
        self._options = dict(petsc_options or _DEFAULT_PETSC_OPTIONS)
        self.u = u
        self.bcs = list(bcs)
        self.closures = list(closures)
        if J is None:
            du = ufl.TrialFunction(u.function_space)
            J = ufl.derivative(F, u, du)
            for closure in self.closures:
                for term in closure.jacobian_terms(F, u, du):
                    J = J + term
        self._F = fem.form(F)
        self._J = fem.form(J)
        self.rtol, self.atol, self.max_iterations = float(rtol), float(atol), int(max_iterations)
        self.noise_tolerance = float(noise_tolerance)
        self._noise = ResidualNoise(F, u.function_space, self.bcs, self.closures)
        self._A = fem_petsc.create_matrix(self._J)
        self._b = fem_petsc.create_vector(u.function_space)
        self._du = fem.Function(u.function_space)
        self._ksp = PETSc.KSP().create(comm)
        self._ksp.setOperators(self._A)
        self._ksp.setOptionsPrefix(self._prefix)
        with options_set(self._prefix, self._options):
            self._ksp.setFromOptions()

    @property
    def petsc_options_prefix(self) -> str:
        """The options prefix of the KSP (and of its PC)."""
        if self._prefix is None:
            raise RuntimeError("the solver has been destroyed")
        return self._prefix

    @property
    def ksp(self) -> PETSc.KSP:
        """The PETSc KSP of the linear solves."""
        if self._ksp is None:
            raise RuntimeError("the solver has been destroyed")
        return self._ksp

    def _residual(self) -> float:
        with self._b.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(self._b, self._F)
        fem_petsc.apply_lifting(
            self._b, [self._J], bcs=[self.bcs], x0=[self.u.x.petsc_vec], alpha=-1.0
        )
        self._b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self._b, self.bcs, self.u.x.petsc_vec, -1.0)
        return float(self._b.norm())

    def noise_norm(self) -> float:
        """Expected norm ``σ_F`` of the residual's noise from the closures' standard errors.

        ``0`` without stochastic closures. Uses the standard errors of the last closure update
        (see :class:`ResidualNoise`).

        Note:
            Collective on the mesh communicator.
        """
        return self._noise.norm()

    def solve(self) -> NewtonResult:
        """Run Newton's method from the current ``u``.

        Returns:
            Iteration count, residual history and timings.

        Raises:
            NewtonConvergenceError: when ``max_iterations`` is reached (the error carries
                ``residual_norms``), or the linear solver or the residual fails (non-finite
                values).
            MicroSolveError: from a closure update (names the quadrature point).
            RuntimeError: the solver has been destroyed.

        Note:
            Collective on ``u.function_space.mesh.comm``.
        """
        ksp = self.ksp
        seconds = {"micro": 0.0, "assemble": 0.0, "solve": 0.0}
        per_iteration: list[dict[str, float]] = []
        norms: list[float] = []
        noise_norms: list[float] = []
        r0 = None
        for iteration in range(self.max_iterations + 1):
            t0 = time.perf_counter()
            for closure in self.closures:
                closure.update(tangents=True)
            t1 = time.perf_counter()
            norm = self._residual()
            seconds["micro"] += t1 - t0
            seconds["assemble"] += time.perf_counter() - t1
            per_iteration.append(
                {"micro": t1 - t0, "assemble": time.perf_counter() - t1, "solve": 0.0}
            )
            if not np.isfinite(norm):
                raise NewtonConvergenceError(
                    f"non-finite residual norm {norm} at Newton iteration {iteration}"
                )
            norms.append(norm)
            r0 = norm if r0 is None else r0
            noise = self.noise_norm() if self._noise.active else 0.0
            if self._noise.active:
                noise_norms.append(noise)
            _log.info("Newton iteration %d: |F| = %.3e (noise %.3e)", iteration, norm, noise)
            if (
                norm <= self.atol
                or (iteration > 0 and norm <= self.rtol * r0)
                or norm <= self.noise_tolerance * noise
            ):
                return NewtonResult(iteration, True, norms, seconds, per_iteration, noise_norms)
            if iteration == self.max_iterations:
                break
            t2 = time.perf_counter()
            self._A.zeroEntries()
            fem_petsc.assemble_matrix(self._A, self._J, bcs=self.bcs)
            self._A.assemble()
            t3 = time.perf_counter()
            with options_set(self._prefix, self._options):  # MUMPS reads them at factorisation
                ksp.solve(self._b, self._du.x.petsc_vec)
            reason = ksp.getConvergedReason()
            if reason < 0:
                raise NewtonConvergenceError(
                    f"linear solver failed at Newton iteration {iteration} (PETSc reason {reason})"
                )
            self._du.x.scatter_forward()
            self.u.x.array[:] -= self._du.x.array
            self.u.x.scatter_forward()
            seconds["assemble"] += t3 - t2
            seconds["solve"] += time.perf_counter() - t3
            per_iteration[-1]["assemble"] += t3 - t2
            per_iteration[-1]["solve"] += time.perf_counter() - t3
        error = NewtonConvergenceError(
            f"Newton did not converge in {self.max_iterations} iterations: residual norms "
            + ", ".join(f"{n:.3e}" for n in norms)
            + f" (rtol={self.rtol:g}, atol={self.atol:g}"
            + (f", noise {noise_norms[-1]:.3e}" if noise_norms else "")
            + ")"
        )
        error.residual_norms = norms
        error.noise_norms = noise_norms
        raise error

    def destroy(self) -> None:
        """Destroy the KSP, matrix and vector and free the options prefix (idempotent).

        Note:
            Collective on ``u.function_space.mesh.comm``.
        """
        for name in ("_ksp", "_A", "_b"):
            obj = getattr(self, name, None)
            if obj is not None:
                setattr(self, name, None)
                obj.destroy()
        release_prefix(getattr(self, "_prefix", None))
        self._prefix = None

    def __del__(self) -> None:
        # destroy() is collective (MUMPS's clean-up), and the ranks may release a solver at
        # different moments (a reference cycle on one rank, e.g. through matplotlib's frames on
        # the plotting rank, is freed only when that rank's GC runs): only drop the references
        # here; petsc4py then hands the parallel objects to PETSc's garbage, destroyed
        # collectively at PETSc.garbage_cleanup() or finalisation. Once a micro-model stopped
        # the run nothing is released (the process ends without finalisation).
        if stopping():
            keep_alive(self)
            return
        for name in ("_ksp", "_A", "_b"):
            setattr(self, name, None)
        release_prefix(getattr(self, "_prefix", None))
        self._prefix = None


@dataclass
class LoadStep:
    """One converged load increment of :func:`solve_incrementally`.

    Attributes:
        load: load factor reached.
        iterations: Newton iterations of the converged attempt.
        residual_norms: residual history of the converged attempt.
        cuts: failed attempts (rolled back and halved) before this step converged.
        result: the converged attempt's :class:`NewtonResult` (timings included).
    """

    load: float
    iterations: int
    residual_norms: list[float]
    cuts: int = 0
    result: NewtonResult | None = None


def solve_incrementally(
    newton: NewtonSolver,
    apply_load: Callable[[float], None],
    loads: Sequence[float],
    histories: Sequence = (),
    min_increment: float = 1e-6,
    start: float = 0.0,
) -> list[LoadStep]:
    """Load stepping with history commit on convergence and rollback + step cutting on failure.

    Args:
        newton: the macro Newton solver (its ``u`` is the state).
        apply_load: sets boundary data/sources for a load factor.
        loads: target load factors, in order (may go down: unloading).
        histories: :class:`~fe2hmm.micro.interface.Stateful` objects committed after each
            converged increment and rolled back before a cut (e.g. a :class:`PlasticCellModel`).
        min_increment: smallest load increment before giving up.
        start: load factor of the current (converged, committed) state.

    Returns:
        One :class:`LoadStep` per converged increment (cut steps add entries).

    Raises:
        NewtonConvergenceError: the increment fell below ``min_increment``.
        TypeError: an entry of ``histories`` is not :class:`~fe2hmm.micro.interface.Stateful`.

    Note:
        Collective; failures are raised on every rank by the closures and the solver, so all
        ranks cut together.
    """
    histories = check_stateful(histories)
    steps: list[LoadStep] = []
    current = float(start)
    u = newton.u
    for target in loads:
        cuts = 0
        while current != target:
            increment = target - current
            trial = target
            while True:
                saved = u.x.array.copy()
                apply_load(trial)
                try:
                    result = newton.solve()
                except (NewtonConvergenceError, MicroSolveError) as err:
                    for h in histories:
                        h.rollback()
                    u.x.array[:] = saved
                    u.x.scatter_forward()
                    cuts += 1
                    increment *= 0.5
                    if abs(increment) < min_increment:
                        raise NewtonConvergenceError(
                            f"load step to {trial:g} failed and the increment fell below "
                            f"{min_increment:g} after {cuts} cuts: {err}"
                        ) from err
                    _log.info(
                        "step to load %g failed (%s); cutting to %g",
                        trial,
                        err,
                        current + increment,
                    )
                    trial = current + increment
                    continue
                for h in histories:
                    h.commit()
                steps.append(
                    LoadStep(trial, result.iterations, result.residual_norms, cuts, result)
                )
                current = trial
                break
    return steps
