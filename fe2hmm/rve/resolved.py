r"""Fully resolved (DNS) problems on tiled meshes, and a homogenised solution's errors.

The reference of an FE² diffusion run: :math:`-\nabla\cdot(k(x/\varepsilon)\nabla T_\varepsilon)
= f` on the unit square (cube) meshed by :func:`fe2hmm.rve.tiling.tile_columns` (every
inclusion resolved), :math:`T_\varepsilon = 0` on the boundary, solved the way a DNS user
would: P1 (or P2), conjugate gradients with PETSc's algebraic multigrid (GAMG; the PyPI wheel
has no hypre). :func:`homogenisation_errors` measures a homogenised solution :math:`T_0` (on
its own macro mesh) against it: relative :math:`L^2` error of :math:`T_0`, relative
:math:`H^1`-seminorm error of the first-order two-scale field
:math:`T_0 + \chi\cdot\nabla T_0` (:func:`fe2hmm.rve.tiling.first_order_corrector`) and of
:math:`T_0` alone.

:func:`solve_resolved_stokes` is the reference of a Darcy flow closed by Stokes cells
(:class:`~fe2hmm.macro.darcy.DarcyFlow`): Stokes flow in the pore space of a tiled mesh of
``voids`` cells (every grain resolved), no-slip on the grains, the pressure held on parts of the
box (the Darcy model's Dirichlet conditions) and symmetry planes (impermeable, free slip)
elsewhere; :func:`darcy_errors` measures a Darcy solution against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from mpi4py import MPI
from petsc4py import PETSc

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh
from dolfinx.fem import petsc as fem_petsc

from fe2hmm.micro.cells.stokes import check_flow_parameters
from fe2hmm.rve.tiling import TiledMesh, cell_tiles, tile_means

__all__ = [
    "DNS_SOLVER_OPTIONS",
    "ResolvedFlow",
    "ResolvedSolution",
    "STOKES_SOLVER_OPTIONS",
    "darcy_errors",
    "homogenisation_errors",
    "solve_resolved",
    "solve_resolved_stokes",
]

#: PETSc options of the resolved Stokes solve: a direct MUMPS LU of the saddle-point system.
STOKES_SOLVER_OPTIONS: dict[str, object] = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
}

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
    T0_here = _interpolated(T0, T_eps.function_space)

    def norm(expr, grad: bool) -> float:
        integrand = ufl.inner(ufl.grad(expr), ufl.grad(expr)) if grad else expr * expr
        return _norm(integrand, mesh)

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


class ResolvedFlow(NamedTuple):
    """Result of :func:`solve_resolved_stokes`.

    Attributes:
        velocity: the resolved velocity (Lagrange of degree ``degree``, ``(d,)``).
        pressure: the resolved pressure (Lagrange of degree ``degree - 1``).
        inflow: per open boundary part, the flow rate entering through it,
            ``-∫ u·n ds`` (per unit thickness in 2D), in the order given.
        dofs: global number of unknowns (velocity and pressure).
        seconds: wall times (max over ranks): ``"assemble"``, ``"solve"``, ``"total"``.
    """

    velocity: fem.Function
    pressure: fem.Function
    inflow: list[float]
    dofs: int
    seconds: dict[str, float]


def solve_resolved_stokes(
    tiled: TiledMesh,
    open_boundaries: Sequence[tuple[Callable[[np.ndarray], np.ndarray], float]],
    viscosity: float = 1.0,
    degree: int = 2,
) -> ResolvedFlow:
    r"""Stokes flow in the pore space of a tiled mesh, driven by pressures held on the box.

    :math:`-\mu\Delta u + \nabla p = 0`, :math:`\nabla\cdot u = 0` in the fluid (the tiled
    mesh: ``voids`` cells, whose holes are the grains), Taylor–Hood. Boundary conditions:

    - on the grains (every boundary facet not on the box), no slip :math:`u = 0`;
    - on an open part of the box with pressure :math:`p_0`, the normal stress
      :math:`-p + \mu\,\partial_n u\cdot n = -p_0` (natural) and no tangential velocity;
    - on the rest of the box, a symmetry plane: :math:`u\cdot n = 0` and no tangential stress.

    The periodic cell solution of a uniform array satisfies both box conditions on the faces of
    its cells (fore-aft symmetry of Stokes flow past a symmetric grain), so a uniform tiling
    with a pressure drop reproduces the cell's permeability; the conditions are those of a
    Darcy model with the pressure held on the open parts and impermeable walls elsewhere.

    Args:
        tiled: the tiled mesh of the unit square (cube), :func:`~fe2hmm.rve.tiling.tile_columns`
            of ``voids`` cells.
        open_boundaries: ``(where, p0)`` pairs: a marker ``where(x) -> bool`` of facet
            midpoints ``(3, n)`` on the box and the pressure held there. Parts must not
            overlap; at least one is needed (it fixes the pressure).
        viscosity: dynamic viscosity μ > 0.
        degree: velocity degree (>= 2; pressure ``degree - 1``).

    Returns:
        The velocity and pressure, the inflow through each open part, the size and timings.

    Raises:
        ValueError: no open part, a part that selects no box facet or overlaps another, a bad
            viscosity or degree.

    Note:
        Collective on the mesh's communicator; one MUMPS LU (memory grows like the unknowns to
        the power 1.3 in 2D).
    """
    mesh, comm = tiled.mesh, tiled.mesh.comm
    check_flow_parameters(viscosity, degree)
    if not open_boundaries:
        raise ValueError("open_boundaries needs at least one (where, pressure) part")
    t0 = time.perf_counter()
    d = mesh.topology.dim
    fdim = d - 1
    mesh.topology.create_connectivity(fdim, d)
    boundary = _dmesh.exterior_facet_indices(mesh.topology)
    corners = mesh.geometry.x[_dmesh.entities_to_geometry(mesh, fdim, boundary)]  # (f, d, 3)
    tol = 1e-9
    on_face = {}
    for i in range(d):
        for side in (0.0, 1.0):
            on_face[i, side] = np.all(np.abs(corners[:, :, i] - side) < tol, axis=1)
    on_box = np.any(list(on_face.values()), axis=0)
    midpoints = corners.mean(axis=1).T
    parts = np.zeros(boundary.size, dtype=np.int32)
    for k, (where, _) in enumerate(open_boundaries, start=1):
        selected = np.asarray(where(midpoints), dtype=bool) & on_box
        # decided on every rank alike (a rank-local raise would leave the others waiting)
        overlap, count = comm.allreduce(
            np.array([np.any(selected & (parts > 0)), selected.sum()], dtype=np.int64), op=MPI.SUM
        )
        if overlap:
            raise ValueError(f"open_boundaries[{k - 1}] overlaps an earlier part")
        if count == 0:
            raise ValueError(f"open_boundaries[{k - 1}] selects no facet of the box")
        parts[selected] = k
    cell = mesh.basix_cell()
    element = basix.ufl.mixed_element(
        [
            basix.ufl.element("Lagrange", cell, int(degree), shape=(d,)),
            basix.ufl.element("Lagrange", cell, int(degree) - 1),
        ]
    )
    W = fem.functionspace(mesh, element)
    V = W.sub(0)
    zero = np.float64(0.0)

    def held(sub, facets) -> fem.DirichletBC:
        return fem.dirichletbc(zero, fem.locate_dofs_topological(sub, fdim, facets), sub)

    bcs = [held(V.sub(i), boundary[~on_box]) for i in range(d)]  # no slip on the grains
    for (i, _), selected in on_face.items():
        bcs.append(held(V.sub(i), boundary[selected & (parts == 0)]))  # symmetry: u·n = 0
        for j in range(d):
            if j != i:  # open: no tangential velocity
                bcs.append(held(V.sub(j), boundary[selected & (parts > 0)]))
    order = np.argsort(boundary)
    tags = _dmesh.meshtags(mesh, fdim, boundary[order], parts[order])
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)
    (u, p), (v, q) = ufl.TrialFunctions(W), ufl.TestFunctions(W)
    n = ufl.FacetNormal(mesh)
    mu = fem.Constant(mesh, float(viscosity))
    a = (
        mu * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
        - p * ufl.div(v) * ufl.dx
        - q * ufl.div(u) * ufl.dx
    )
    L = fem.Constant(mesh, 0.0) * q * ufl.dx
    for k, (_, p0) in enumerate(open_boundaries, start=1):
        L = L - fem.Constant(mesh, float(p0)) * ufl.dot(v, n) * ds(k)
    problem = fem_petsc.LinearProblem(
        a,
        L,
        bcs=bcs,
        petsc_options=STOKES_SOLVER_OPTIONS,
        petsc_options_prefix=f"fe2hmm_dns_stokes_{id(tags)}_",
    )
    t1 = time.perf_counter()
    w = problem.solve()
    reason = problem.solver.getConvergedReason()
    if reason < 0:
        raise RuntimeError(f"resolved Stokes solve failed (PETSc reason {reason})")
    velocity, pressure = w.sub(0).collapse(), w.sub(1).collapse()
    velocity.name, pressure.name = "u_eps", "p_eps"
    t2 = time.perf_counter()
    inflow = [
        -float(comm.allreduce(fem.assemble_scalar(fem.form(ufl.dot(velocity, n) * ds(k)))))
        for k in range(1, len(open_boundaries) + 1)
    ]
    dofs = W.dofmap.index_map.size_global * W.dofmap.index_map_bs
    seconds = {"assemble": t1 - t0, "solve": t2 - t1, "total": t2 - t0}
    seconds = {key: comm.allreduce(s, op=MPI.MAX) for key, s in seconds.items()}
    return ResolvedFlow(velocity, pressure, inflow, int(dofs), seconds)


def darcy_errors(
    tiled: TiledMesh,
    flow: ResolvedFlow,
    p0: fem.Function,
    velocity0: ufl.core.expr.Expr,
) -> dict[str, float]:
    """Errors of a Darcy solution ``(p0, u0)`` against a resolved Stokes flow, relative.

    Args:
        tiled: the tiled mesh the flow was solved on.
        flow: the resolved flow (:func:`solve_resolved_stokes`).
        p0: the Darcy pressure, Lagrange on its own (macro) mesh of the unit square (cube).
        velocity0: the Darcy (superficial) velocity on the macro mesh, e.g.
            :attr:`~fe2hmm.macro.darcy.DarcyFlow.velocity`; the macro mesh must tile into the
            cells of the tiling (its cells inside one tile each), so that tile means are exact.

    Returns:
        ``{"pressure_l2_error": ‖p_ε − p0‖/‖p_ε‖`` over the fluid, ``"velocity_error":
        ‖Ū_ε − Ū_0‖/‖Ū_ε‖}`` with ``Ū`` the superficial velocity averaged over each tile
        (the resolved velocity is zero in the grains), Euclidean norms over the tiles.

    Raises:
        ValueError: a macro cell straddles two tiles.

    Note:
        Collective.
    """
    mesh = flow.pressure.function_space.mesh
    p0_here = _interpolated(p0, flow.pressure.function_space)
    pressure_error = _norm((flow.pressure - p0_here) ** 2, mesh) / _norm(flow.pressure**2, mesh)
    n = int(round(1.0 / tiled.eps))
    resolved = tile_means(flow.velocity, mesh, tiled.tile, n)
    macro = p0.function_space.mesh
    homogenised = tile_means(velocity0, macro, cell_tiles(macro, n), n)
    velocity_error = np.linalg.norm(resolved - homogenised) / np.linalg.norm(resolved)
    return {"pressure_l2_error": float(pressure_error), "velocity_error": float(velocity_error)}


def _interpolated(f: fem.Function, V: fem.FunctionSpace) -> fem.Function:
    """``f`` (on another mesh of the same domain) interpolated into ``V``."""
    mesh = V.mesh
    n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
    # interpolated on a subset of cells that holds every dof (the first cell of each dof),
    # 4-6x fewer points to locate in the other mesh than all cells
    dofs = V.dofmap.list[:n_cells]
    order = np.argsort(dofs, axis=None, kind="stable")
    first_of_dof = np.unique(dofs.reshape(-1)[order], return_index=True)[1]
    cover = np.unique(order[first_of_dof] // dofs.shape[1]).astype(np.int32)
    here = fem.Function(V)
    here.interpolate_nonmatching(
        f, cover, fem.create_interpolation_data(V, f.function_space, cover, padding=1e-10)
    )
    here.x.scatter_forward()
    return here


def _norm(square: ufl.core.expr.Expr, mesh: _dmesh.Mesh) -> float:
    """``sqrt(∫ square dx)`` over ``mesh``, summed over ranks."""
    local = fem.assemble_scalar(fem.form(square * ufl.dx(domain=mesh)))
    return float(np.sqrt(mesh.comm.allreduce(local, op=MPI.SUM)))
