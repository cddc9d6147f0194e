"""Benchmark: nonlinear FE² (finite-strain neo-Hookean cells) cost per macro Newton iteration.

For a macro plate (2D plane strain) or block (3D) stretched by 10 % and closed at every
quadrature point by a periodic hyperelastic cell (circle/sphere inclusion, contrast 10), it
reports macro quadrature points × micro dofs, seconds per macro Newton iteration, the share of
that time spent in micro solves, and the ratio to the bare linear-algebra lower bound: the
number of micro factorisations actually needed (micro Newton steps + one per condensed tangent)
times the measured cost of one bare micro step (assemble R and K, factorise, solve) plus the
macro assembly and solve time.

Run: ``python benchmarks/fe2_elasticity.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.closure import Closure
from fe2hmm.micro.cells.hyperelastic import HyperelasticCellModel
from fe2hmm.micro.cells.linalg import solve_constrained
from fe2hmm.newton import NewtonSolver
from fe2hmm.reuse import Dedupe

M1, M2 = (1.0, 0.3), (10.0, 0.3)


def bare_micro_step(problem, F_macro, repeats=3):
    """Seconds of one bare micro Newton step: assemble R and K, reduce, factorise, solve."""
    problem.F_macro.value[:] = F_macro
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        R, K = problem._assemble()
        Rr = problem.pmap.reduce_vector(R)
        solve_constrained(problem.pmap.reduce_matrix(K), -Rr, problem._eliminate, "mumps-lu")
        best = min(best, time.perf_counter() - t0)
    return best


def run_case(dim, resolution, macro_cells, comm=MPI.COMM_SELF):
    if dim == 2:
        mesh = dmesh.create_rectangle(comm, [[0, 0], [2, 1]], [2 * macro_cells, macro_cells])
        rve = "circle"
    else:
        mesh = dmesh.create_box(comm, [[0, 0, 0], [1, 1, 1]], [macro_cells] * 3)
        rve = "sphere"
    V = fem.functionspace(mesh, ("Lagrange", 1, (dim,)))
    length = 2.0 if dim == 2 else 1.0
    left = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], length))
    pull = np.zeros(dim)
    pull[0] = 0.1 * length
    bcs = [fem.dirichletbc(np.zeros(dim), left, V), fem.dirichletbc(pull, right, V)]
    u = fem.Function(V)
    v = ufl.TestFunction(V)
    cells = HyperelasticCellModel(rve=rve, matrix=M1, inclusion=M2, dim=dim, resolution=resolution)
    model = Dedupe(cells)  # identical (F, φ) solved once per update
    closure = Closure(
        model,
        mesh,
        {"F": ufl.Identity(dim) + ufl.grad(u)},
        {"volume_fraction": 0.2},
        quadrature_degree=1,
    )
    F = ufl.inner(closure.outputs["P"], ufl.grad(v)) * closure.dx
    newton = NewtonSolver(
        F, u, bcs, [closure], rtol=1e-8, atol=1e-9, petsc_options_prefix=f"bench{dim}_{resolution}_"
    )
    cells.problem(0.2)  # mesh generation and form compilation are set-up, not per-iteration cost
    t0 = time.perf_counter()
    result = newton.solve()
    total = time.perf_counter() - t0
    problem = cells.problem(0.2)
    F_typ = np.eye(dim)
    F_typ[0, 0] = 1.1
    bare_step = bare_micro_step(problem, F_typ)
    bare = cells.factorizations * bare_step + result.seconds["assemble"] + result.seconds["solve"]
    iterations = max(result.iterations, 1)
    return {
        "dim": dim,
        "micro_dofs": int(problem.pmap.num_reduced),
        "macro_points": closure.num_points,
        "newton_iterations": result.iterations,
        "micro_solves": model.statistics.micro_solves,
        "micro_factorizations": cells.factorizations,
        "seconds": total,
        "seconds_per_newton": total / iterations,
        "micro_share": result.seconds["micro"] / total,
        "bare_seconds": bare,
        "bare_ratio": total / bare,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases only (smoke test)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cases = (
        [(2, 8, 4), (3, 4, 2)]
        if args.quick
        else [(2, 8, 4), (2, 16, 4), (2, 32, 4), (3, 6, 2), (3, 10, 2)]
    )
    rows = [run_case(*c) for c in cases]
    print(
        f"{'dim':>3} {'micro dofs':>10} {'macro pts':>9} {'Newton':>6} {'s/Newton':>9} "
        f"{'micro %':>7} {'factorizations':>14} {'bare s':>7} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['dim']:>3} {r['micro_dofs']:>10} {r['macro_points']:>9} "
            f"{r['newton_iterations']:>6} "
            f"{r['seconds_per_newton']:9.3f} {100 * r['micro_share']:7.1f} "
            f"{r['micro_factorizations']:>14} {r['bare_seconds']:7.2f} {r['bare_ratio']:6.2f}"
        )
    if args.json:
        keys = (
            "dim",
            "micro_dofs",
            "macro_points",
            "seconds_per_newton",
            "micro_share",
            "bare_ratio",
        )
        print(json.dumps({"cases": [{k: r[k] for k in keys} for r in rows]}))


if __name__ == "__main__":
    main()
