r"""Time integration of the homogenised wave equation with tensors from cell problems.

The semi-discrete problem :math:`M\ddot u + K u = F(t)` comes from

.. math:: \int \rho\,\ddot u\,v\,dx + a(u, v) = \int f v\,dx, \qquad
          a(u, v) = \int A_\mathrm{hom}\nabla u\cdot\nabla v\,dx \ \text{(scalar)}
          \quad\text{or}\quad \int C^*\!:\!\varepsilon(u) : \varepsilon(v)\,dx
          \ \text{(elastic)},

where :math:`A_\mathrm{hom}` / :math:`C^*` are the tangents of a closure whose cell problems
run once (the medium does not change in time) and :math:`\rho = \langle\rho\rangle`, the
homogenised density. Two integrators:

- ``"leapfrog"`` (central differences, Newmark β = 0, γ = ½) with the row-sum lumped mass
  :math:`M_L`: explicit, second order, stable for
  :math:`\Delta t \le 2/\sqrt{\lambda_\max(M_L^{-1}K)}`. The bound used is Gershgorin's,
  :math:`\lambda_\max \le \max_i \sum_j |K_{ij}|/M_{L,ii}`, so the reported critical step is
  safe (never above the true one). The discrete energy :math:`E_{n+1/2} =
  \tfrac12\,\dot u_{n+1/2}^\top M_L \dot u_{n+1/2} + \tfrac12\,u_{n+1}^\top K u_n` is
  conserved exactly (to round-off) when :math:`F = 0`.
- ``"newmark"`` (average acceleration, β = ¼, γ = ½) with the consistent mass: implicit,
  unconditionally stable, second order; :math:`E_n = \tfrac12 v_n^\top M v_n + \tfrac12
  u_n^\top K u_n` is conserved exactly (to the linear-solver tolerance) when :math:`F = 0`.

Fixed (homogeneous Dirichlet) dofs stay at zero; other boundaries are free (natural).
"""

from __future__ import annotations

import math

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from fe2hmm.petsc_options import claim_prefix, options_set, release_prefix

__all__ = ["SCHEMES", "WaveIntegrator", "elastic_stiffness_form", "scalar_stiffness_form"]

#: Time integrators.
SCHEMES = ("leapfrog", "newmark")


def scalar_stiffness_form(A, u, v, dx) -> ufl.Form:
    """``∫ A∇u·∇v dx`` for a tensor ``A`` ``(d, d)`` (e.g. ``-closure.tangents[q, g]``)."""
    return ufl.inner(ufl.dot(A, ufl.grad(u)), ufl.grad(v)) * dx


def elastic_stiffness_form(C, u, v, dx) -> ufl.Form:
    """``∫ C:ε(u) : ε(v) dx`` for a fourth-order ``C`` ``(d, d, d, d)`` (a closure tangent)."""
    i, j, k, m = ufl.indices(4)
    eps_u, eps_v = ufl.sym(ufl.grad(u)), ufl.sym(ufl.grad(v))
    sigma = ufl.as_tensor(C[i, j, k, m] * eps_u[k, m], (i, j))
    return ufl.inner(sigma, eps_v) * dx


class WaveIntegrator:
    """``M ü + K u = 0`` on a dolfinx space, by leapfrog or Newmark (average acceleration).

    Args:
        stiffness: the bilinear form ``a(u, v)`` (trial and test function of ``V``).
        density: ``ρ`` (UFL expression or number, > 0).
        V: the (scalar or vector) Lagrange space.
        dt: time step (s), > 0.
        scheme: one of :data:`SCHEMES`.
        fixed: dof indices held at zero (e.g. from ``fem.locate_dofs_topological``).
        dx: the measure of the mass form (use the closure's ``dx``).
        check_cfl: for leapfrog, raise if ``dt`` exceeds the (safe) critical step.
        petsc_options_prefix: options prefix of the Newmark solver (MUMPS LU by default);
            ``None`` (default) generates a unique ``fe2hmm_waves_<k>_``. The options are in
            PETSc's database only while the solver reads them; :meth:`destroy` frees the
            prefix.

    Attributes:
        u: displacement (``fem.Function``); set it and ``v``, then :meth:`start`.
        v: velocity (``fem.Function``).
        time: current time.
        critical_time_step: the leapfrog stability bound (Gershgorin, safe); ``inf`` for
            Newmark.

    Raises:
        ValueError: unknown scheme, ``dt <= 0``, or (leapfrog) ``dt`` above the critical step.

    Note:
        Collective on ``V.mesh.comm``.
    """

    def __init__(
        self,
        stiffness: ufl.Form,
        density,
        V: fem.FunctionSpace,
        dt: float,
        scheme: str = "leapfrog",
        fixed: np.ndarray | None = None,
        dx: ufl.Measure | None = None,
        check_cfl: bool = True,
        petsc_options_prefix: str | None = None,
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; valid: {SCHEMES}")
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"time step must be a finite time > 0, got {dt!r}")
        self.V, self.dt, self.scheme = V, float(dt), scheme
        dx = dx or ufl.dx
        u, w = ufl.TrialFunction(V), ufl.TestFunction(V)
        self._K = fem_petsc.assemble_matrix(fem.form(stiffness))
        self._K.assemble()
        n_local = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        self._free = np.ones(n_local, dtype=bool)
        if fixed is not None:
            fixed = np.asarray(fixed, dtype=np.int32)
            bs = V.dofmap.index_map_bs
            rows = (fixed[:, None] * bs + np.arange(bs)).reshape(-1) if bs > 1 else fixed
            self._free[rows[rows < n_local]] = False
        self.u, self.v = fem.Function(V, name="u"), fem.Function(V, name="v")
        self.time = 0.0
        self._Ku = self._K.createVecLeft()
        mass = ufl.inner(density * u, w) * dx
        if scheme == "leapfrog":
            ones = fem.Function(V)
            ones.x.array[:] = 1.0
            lumped = fem_petsc.assemble_vector(fem.form(ufl.action(mass, ones)))
            lumped.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            self._m = lumped.array_r.copy()
            if np.any(self._m[self._free] <= 0):
                raise ValueError("the lumped mass has non-positive entries: density must be > 0")
            self.critical_time_step = self._gershgorin_step()
            if check_cfl and self.dt > self.critical_time_step:
                raise ValueError(
                    f"leapfrog time step dt={self.dt:g} exceeds the stability limit "
                    f"{self.critical_time_step:g} (dt <= 2/sqrt(lambda_max(M_L^-1 K)), "
                    "Gershgorin bound); reduce dt or use scheme='newmark'"
                )
            self._u_prev: np.ndarray | None = None
        else:
            self.critical_time_step = math.inf
            self._M = fem_petsc.assemble_matrix(fem.form(mass))
            self._M.assemble()
            beta = 0.25
            S = self._M.copy()
            S.axpy(beta * self.dt**2, self._K)
            fixed_rows = np.flatnonzero(~self._free).astype(PETSc.IntType)
            rstart = S.getOwnershipRange()[0]
            S.zeroRowsColumns(fixed_rows + rstart, diag=1.0)
            self._prefix = claim_prefix(V.mesh.comm, petsc_options_prefix, "fe2hmm_waves_")
            self._solver = PETSc.KSP().create(V.mesh.comm)
            self._solver.setOperators(S)
            self._solver.setOptionsPrefix(self._prefix)
            lu = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
            with options_set(self._prefix, lu):
                self._solver.setFromOptions()
            self._a = self._K.createVecLeft()
            self._rhs = self._K.createVecLeft()
        self._started = False

    @property
    def petsc_options_prefix(self) -> str | None:
        """The Newmark solver's options prefix (``None`` for leapfrog, which solves nothing)."""
        return getattr(self, "_prefix", None)

    def destroy(self) -> None:
        """Free the PETSc objects and the options prefix (collective).

        The integrator cannot step afterwards.
        """
        for name in ("_solver", "_K", "_M", "_Ku", "_a", "_rhs"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.destroy()
                setattr(self, name, None)
        release_prefix(getattr(self, "_prefix", None))
        self._prefix = None

    # ------------------------------------------------------------------ helpers
    def _gershgorin_step(self) -> float:
        """``2/sqrt(max_i Σ_j |K_ij| / M_L,ii)`` over free rows (a safe leapfrog step)."""
        indptr, _, values = self._K.getValuesCSR()  # the owned rows
        n_rows = indptr.size - 1
        rows = np.repeat(np.arange(n_rows), np.diff(indptr))
        sums = np.bincount(rows, weights=np.abs(values), minlength=n_rows)
        free = self._free[: sums.size]
        bound = float((sums[free] / self._m[: sums.size][free]).max()) if free.any() else 0.0
        bound = self.V.mesh.comm.allreduce(bound, op=MPI.MAX)
        return 2.0 / math.sqrt(bound) if bound > 0 else math.inf

    def _apply_K(self, x: np.ndarray) -> np.ndarray:
        vec = self._K.createVecRight()
        vec.array_w[:] = x
        self._K.mult(vec, self._Ku)
        out = self._Ku.array_r.copy()
        vec.destroy()
        return out

    def _owned(self, f: fem.Function) -> np.ndarray:
        n = self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs
        return f.x.array[:n]

    def _set(self, f: fem.Function, values: np.ndarray) -> None:
        n = self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs
        f.x.array[:n] = values
        f.x.scatter_forward()

    def _dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return self.V.mesh.comm.allreduce(float(a @ b))

    # ------------------------------------------------------------------ stepping
    def start(self) -> None:
        """Take ``u``, ``v`` as the state at ``time`` (fixed dofs are set to zero)."""
        u = np.where(self._free, self._owned(self.u), 0.0)
        v = np.where(self._free, self._owned(self.v), 0.0)
        self._set(self.u, u)
        self._set(self.v, v)
        if self.scheme == "leapfrog":
            # u_{-1} from the Taylor expansion u(-dt) = u - dt v + dt²/2 a, a = -M_L^{-1} K u
            acc = -self._apply_K(u) / self._m
            self._u_prev = np.where(self._free, u - self.dt * v + 0.5 * self.dt**2 * acc, 0.0)
        else:
            self._rhs.array_w[:] = np.where(self._free, -self._apply_K(u), 0.0)
            mass_solver = PETSc.KSP().create(self.V.mesh.comm)
            M = self._M.copy()
            fixed_rows = np.flatnonzero(~self._free).astype(PETSc.IntType)
            M.zeroRowsColumns(fixed_rows + M.getOwnershipRange()[0], diag=1.0)
            mass_solver.setOperators(M)
            mass_solver.setType("preonly")
            mass_solver.getPC().setType("lu")
            mass_solver.getPC().setFactorSolverType("mumps")
            mass_solver.solve(self._rhs, self._a)
            mass_solver.destroy()
            M.destroy()
        self._started = True

    def step(self, n: int = 1) -> None:
        """Advance ``n`` steps (collective)."""
        if not self._started:
            self.start()
        dt = self.dt
        for _ in range(int(n)):
            u = self._owned(self.u).copy()
            if self.scheme == "leapfrog":
                u_next = 2 * u - self._u_prev - dt**2 * self._apply_K(u) / self._m
                u_next[~self._free] = 0.0
                self._set(self.v, (u_next - self._u_prev) / (2 * dt))
                self._u_prev = u
                self._set(self.u, u_next)
            else:
                v = self._owned(self.v).copy()
                a = self._a.array_r.copy()
                predictor = u + dt * v + 0.25 * dt**2 * a
                self._rhs.array_w[:] = np.where(self._free, -self._apply_K(predictor), 0.0)
                self._solver.solve(self._rhs, self._a)
                a_new = self._a.array_r.copy()
                self._set(self.u, predictor + 0.25 * dt**2 * a_new)
                self._set(self.v, v + 0.5 * dt * (a + a_new))
            self.time += dt

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The stepping state besides ``u`` and ``v`` (checkpoint those as Functions).

        The time and, once started, the previous displacement (leapfrog) or the acceleration
        (Newmark), owned values.
        """
        state = {"time": np.asarray(self.time), "started": np.asarray(self._started)}
        if self._started:
            if self.scheme == "leapfrog":
                state["u_prev"] = self._u_prev.copy()
            else:
                state["a"] = self._a.array_r.copy()
        return state

    def restore_state(self, state) -> None:
        """Continue from the arrays of :meth:`checkpoint_state` (with ``u``, ``v`` restored)."""
        self.time = float(state["time"])
        self._started = bool(state["started"])
        if self._started:
            if self.scheme == "leapfrog":
                self._u_prev = np.asarray(state["u_prev"], dtype=float).copy()
            else:
                self._a.array_w[:] = state["a"]

    def energy(self) -> float:
        """The scheme's conserved discrete energy at the current step (see the module doc).

        For leapfrog the staggered energy ``E_{n-1/2}`` of the last step; for Newmark ``E_n``.
        """
        if not self._started:
            self.start()
        u = self._owned(self.u)
        if self.scheme == "leapfrog":
            w = (u - self._u_prev) / self.dt
            return 0.5 * self._dot(w * self._m, w) + 0.5 * self._dot(u, self._apply_K(self._u_prev))
        v = self._owned(self.v)
        vec = self._M.createVecRight()
        vec.array_w[:] = v
        Mv = self._M.createVecLeft()
        self._M.mult(vec, Mv)
        kinetic = 0.5 * self._dot(v, Mv.array_r)
        return kinetic + 0.5 * self._dot(u, self._apply_K(u))
