r"""The fully resolved (DNS) diffusion problem on a tiled mesh, and a homogenised solution's error.

The reference of an FE² diffusion run: :math:`-\nabla\cdot(k(x/\varepsilon)\nabla T_\varepsilon)
= f` on the unit square (cube) meshed by :func:`fe2hmm.rve.tiling.tile_columns` (every
inclusion resolved), :math:`T_\varepsilon = 0` on the boundary, solved the way a DNS user
would: P1 (or P2), conjugate gradients with PETSc's algebraic multigrid (GAMG; the PyPI wheel
has no hypre). :func:`homogenisation_errors` measures a homogenised solution :math:`T_0` (on
its own macro mesh) against it: relative :math:`L^2` error of :math:`T_0`, relative
:math:`H^1`-seminorm error of the first-order two-scale field
:math:`T_0 + \chi\cdot\nabla T_0` (:func:`fe2hmm.rve.tiling.first_order_corrector`) and of
:math:`T_0` alone.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh
from dolfinx.fem import petsc as fem_petsc

from fe2hmm.rve.tiling import TiledMesh

__all__ = ["DNS_SOLVER_OPTIONS", "ResolvedSolution", "homogenisation_errors", "solve_resolved"]

#: PETSc options of the resolved solve: CG + smoothed-aggregation AMG (GAMG), Chebyshev/Jacobi
#: smoothing, relative residual 1e-10 (the algebraic error far below any discretisation error).
DNS_SOLVER_OPTIONS: dict[str, object] = {
    "ksp_type": "cg",
    "ksp_rtol": 1e-10,
    "ksp_max_it": 1000,
    "pc_type": "gamg",
    "pc_gamg_type": "agg",
    "pc_gamg_agg_nsmooths": 1,
    "pc_gamg_threshold": 0.02,
    "mg_levels_ksp_type": "chebyshev",
    "mg_levels_pc_type": "jacobi",
    "mg_levels_ksp_max_it": 2,
}


class ResolvedSolution(NamedTuple):
    """Result of :func:`solve_resolved`.

    Attributes:
        temperature: the resolved field :math:`T_ε` (Lagrange).
        dofs: global number of unknowns.
        iterations: CG iterations.
        seconds: wall times (max over ranks): ``"assemble"`` (coefficient, forms, matrix and
            right-hand side), ``"solve"`` (GAMG set-up and CG), ``"total"``.
    """

    temperature: fem.Function
    dofs: int
    iterations: int
    seconds: dict[str, float]


def solve_resolved(
    tiled: TiledMesh,
    conductivity: dict[int, float],
    source: float,
    degree: int = 1,
    petsc_options: dict[str, object] | None = None,
) -> ResolvedSolution:
    """Solve the resolved diffusion problem with zero boundary values.

    Args:
        tiled: the tiled mesh (phase tags per cell).
        conductivity: phase tag -> conductivity (> 0) of every tag present.
        source: uniform heat source :math:`f`.
        degree: Lagrange degree of :math:`T_ε`.
        petsc_options: PETSc options of the linear solve; default :data:`DNS_SOLVER_OPTIONS`.

    Returns:
        The resolved solution, its size, CG iterations and timings.

    Raises:
        ValueError: a tag without a conductivity.
        RuntimeError: the linear solve did not converge.

    Note:
        Collective on the mesh's communicator.
    """
    mesh, comm = tiled.mesh, tiled.mesh.comm
    missing = sorted(set(np.unique(tiled.tags).tolist()) - set(conductivity))
    if comm.allreduce(len(missing), op=MPI.MAX):
        raise ValueError(f"no conductivity for phase tag(s) {missing}; given {conductivity}")
    t0 = time.perf_counter()
    Q = fem.functionspace(mesh, ("DG", 0))
    k = fem.Function(Q)
    values = np.array([conductivity[int(t)] for t in tiled.tags], dtype=float)
    k.x.array[: values.size] = values
    k.x.scatter_forward()
    V = fem.functionspace(mesh, ("Lagrange", int(degree)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    fdim = mesh.topology.dim - 1
    facets = _dmesh.locate_entities_boundary(mesh, fdim, lambda p: np.full(p.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, fdim, facets), V)
    a = fem.form(k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = fem.form(fem.Constant(mesh, float(source)) * v * ufl.dx)
    A = fem_petsc.assemble_matrix(a, bcs=[bc])
    A.assemble()
    b = fem_petsc.assemble_vector(L)
    fem_petsc.apply_lifting(b, [a], [[bc]])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fem_petsc.set_bc(b, [bc])
    t1 = time.perf_counter()
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    prefix = f"fe2hmm_dns_{id(ksp)}_"
    ksp.setOptionsPrefix(prefix)
    options = PETSc.Options()
    chosen = DNS_SOLVER_OPTIONS if petsc_options is None else petsc_options
    for key, value in chosen.items():
        options[prefix + key] = value
    ksp.setFromOptions()
    for key in chosen:
        del options[prefix + key]
    T = fem.Function(V, name="T_eps")
    try:
        ksp.solve(b, T.x.petsc_vec)
        reason, iterations = ksp.getConvergedReason(), ksp.getIterationNumber()
    finally:
        ksp.destroy()
        A.destroy()
        b.destroy()
    if reason < 0:
        raise RuntimeError(f"resolved solve did not converge (PETSc reason {reason})")
    T.x.scatter_forward()
    t2 = time.perf_counter()
    seconds = {"assemble": t1 - t0, "solve": t2 - t1, "total": t2 - t0}
    seconds = {key: comm.allreduce(s, op=MPI.MAX) for key, s in seconds.items()}
    return ResolvedSolution(T, V.dofmap.index_map.size_global, int(iterations), seconds)


def homogenisation_errors(
    T_eps: fem.Function, T0: fem.Function, corrector: fem.Function | None = None
) -> dict[str, float]:
    """Errors of a homogenised solution ``T0`` against the resolved ``T_eps``, relative.

    Args:
        T_eps: the resolved solution (on the tiled mesh).
        T0: the homogenised solution, Lagrange of degree >= 1 on its own (macro) mesh of the
            same domain.
        corrector: ``χ = ε w(x/ε)`` on the tiled mesh
            (:func:`~fe2hmm.rve.tiling.first_order_corrector`), for the corrected energy error;
            ``None`` to skip it.

    Returns:
        ``{"l2_error": ‖T_ε − T0‖/‖T_ε‖, "h1_error_without_corrector": ‖∇(T_ε − T0)‖/‖∇T_ε‖}``
        and, with a corrector, ``"h1_error"``: ``‖∇(T_ε − T0 − χ·∇T0)‖/‖∇T_ε‖``.

    Note:
        Collective.
    """
    mesh = T_eps.function_space.mesh
    d = mesh.topology.dim
    V = T_eps.function_space
    n_cells = mesh.topology.index_map(d).size_local
    # T0 at the dofs of T_eps's space: interpolated on a subset of cells that holds every dof
    # (the first cell of each dof), 4-6x fewer points to locate in the macro mesh than all cells
    dofs = V.dofmap.list[:n_cells]
    order = np.argsort(dofs, axis=None, kind="stable")
    first_of_dof = np.unique(dofs.reshape(-1)[order], return_index=True)[1]
    cover = np.unique(order[first_of_dof] // dofs.shape[1]).astype(np.int32)
    T0_here = fem.Function(V)
    T0_here.interpolate_nonmatching(
        T0, cover, fem.create_interpolation_data(V, T0.function_space, cover, padding=1e-10)
    )
    T0_here.x.scatter_forward()

    def norm(expr, grad: bool) -> float:
        integrand = ufl.inner(ufl.grad(expr), ufl.grad(expr)) if grad else expr * expr
        local = fem.assemble_scalar(fem.form(integrand * ufl.dx(domain=mesh)))
        return float(np.sqrt(mesh.comm.allreduce(local, op=MPI.SUM)))

    l2, h1 = norm(T_eps, False), norm(T_eps, True)  # the DNS's norms, once
    out = {
        "l2_error": norm(T_eps - T0_here, False) / l2,
        "h1_error_without_corrector": norm(T_eps - T0_here, True) / h1,
    }
    if corrector is not None:
        # ∇T0 by the gradient of its interpolant on the tiled mesh: piecewise constant, O(h)
        # from ∇T0 with h the tiled mesh size (<< ε), and no second point location
        g = ufl.grad(T0_here)
        corrected = T0_here + ufl.dot(corrector, g)
        out["h1_error"] = norm(T_eps - corrected, True) / h1
    return out
