"""Benchmark: micro solves and wall time of FE² with reuse off (naive) and on, and the error
that reuse adds.

Cases (the same macro problems as the demos, from ``benchmarks/_cases.py``):

- ``composite_conduction``: the graded fibre composite (``demos/composite_conduction.py``),
  K*(φ) from periodic circle cells. *Naive*: one cell solve per quadrature point per closure
  update (``DiffusionCellModel`` without a reuse wrapper). *Dedupe*: one solve per distinct φ
  (``Dedupe(model)``), tensors kept across updates; *remeshed*: the same with every distinct
  cell meshed by gmsh (``morph=False``, the cells before issue 16) instead of morphed from the
  family's reference meshes. *Reuse*: dedupe + the error-controlled surrogate over φ
  (``ParameterSurrogateModel(model, tolerance)``).
- ``porous_plasticity``: the porous J2 plate loaded past yield and unloaded
  (``demos/porous_plasticity.py``). *Naive*: a cell solve per point per macro Newton iteration.
  *Elastic*: the exact elastic predictor (``PlasticCellModel``, ``exact_shortcuts`` on, the
  default). *Predictor*: that and the linearised predictor with error control
  (``PlasticCellModel(tolerance=...)``) at a tenth of the tolerance and at the tolerance.

Added error: relative L2 norm of (reuse − naive) macro solution (for the plate: the largest over
the load steps). Both runs happen in this process, one after the other.

Run: ``python benchmarks/adaptive_reuse.py [--quick] [--tolerance 1e-3] [--json]``; with
``--json`` the last line is ``{"cases": [{"demo", "naive_micro_solves", "reuse_micro_solves",
"naive_seconds", "reuse_seconds", "added_error"}, …]}``.
"""

from __future__ import annotations

import argparse
import json
import time

from mpi4py import MPI

import numpy as np
import ufl
from _cases import K_FIBRE, K_MATRIX, LOADS, graded_conduction, porous_plate
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.checks import real
from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.reuse import Dedupe, ParameterSurrogateModel


def _norm(f, comm) -> float:
    return float(np.sqrt(comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(f, f) * ufl.dx)))))


def conduction_run(mesh, resolution: int, mode: str, tolerance: float):
    """Solve the graded-composite macro problem with the given reuse mode."""
    cells = DiffusionCellModel(
        rve="circle",
        matrix=K_MATRIX,
        inclusion=K_FIBRE,
        resolution=resolution,
        morph=mode != "remeshed",
    )
    model = {
        "naive": lambda: cells,
        "remeshed": lambda: Dedupe(cells),
        "dedupe": lambda: Dedupe(cells),
        "reuse": lambda: ParameterSurrogateModel(cells, tolerance),
    }[mode]()
    comm = mesh.comm
    comm.barrier()
    t0 = time.perf_counter()
    problem, result = graded_conduction(model, mesh)
    T = problem.T
    seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    assert result.converged
    return T, model, seconds


def plasticity_run(nx: int, resolution: int, reuse: bool, comm, tolerance=None):
    """The porous plate's load/unload path; displacement snapshots after every step."""
    problem, model, apply, _ = porous_plate(comm, nx, resolution, reuse=reuse, tolerance=tolerance)
    u = problem.u
    comm.barrier()
    t0 = time.perf_counter()
    snapshots = []
    for target in LOADS:
        problem.solve_incrementally(apply, [target])  # commits the plastic histories
        snapshots.append(u.x.array.copy())
    seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    return u, snapshots, model, seconds


def total(model, key: str, comm) -> int:
    return int(comm.allreduce(getattr(model.statistics, key)))


def record(demo: str, runs, comm, table: list, cases: list) -> None:
    """Add table rows and the demo's JSON case for ``runs``.

    ``runs`` = ``[(mode, model, seconds, added error)]``, the naive run first, reuse last.
    """
    for mode, model, seconds, error in runs:
        points = total(model, "points_requested", comm)
        table.append(
            (
                demo,
                mode,
                points,
                total(model, "micro_solves", comm),
                seconds,
                error,
                model.statistics,
            )
        )
    naive, reuse = table[-len(runs)], table[-1]
    cases.append(
        {
            "demo": demo,
            "naive_micro_solves": naive[3],
            "reuse_micro_solves": reuse[3],
            "naive_seconds": naive[4],
            "reuse_seconds": reuse[4],
            "added_error": reuse[5],
        }
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases (smoke test)")
    parser.add_argument(
        "--tolerance",
        type=real(0.0, open_min=True),
        default=1e-3,
        help="tolerance of the composite's surrogate and of the plate's linearised predictor",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    cases, table = [], []

    # --- graded composite (linear closure, K*(φ) from cells)
    n, resolution = (8, 10) if args.quick else (32, 16)
    mesh = dmesh.create_unit_square(comm, n, n)
    runs = {
        m: conduction_run(mesh, resolution, m, args.tolerance)
        for m in ("naive", "remeshed", "dedupe", "reuse")
    }
    T_naive = runs["naive"][0]
    record(
        "composite_conduction",
        [
            (mode, model, seconds, _norm(T - T_naive, comm) / _norm(T_naive, comm))
            for mode, (T, model, seconds) in runs.items()
        ],
        comm,
        table,
        cases,
    )

    # --- porous elasto-plastic plate (history-dependent closure)
    nx, resolution = (2, 6) if args.quick else (3, 8)
    u_n, snaps_n, model_n, sec_n = plasticity_run(nx, resolution, False, comm)
    diff = fem.Function(u_n.function_space)
    ref = fem.Function(u_n.function_space)

    def added_error(snapshots) -> float:
        errors = []
        for a, b in zip(snapshots, snaps_n, strict=True):
            diff.x.array[:] = a - b
            ref.x.array[:] = b
            errors.append(_norm(diff, comm) / _norm(ref, comm))
        return max(errors)

    runs = [("naive", model_n, sec_n, 0.0)]
    for mode, tolerance in (
        ("elastic", None),
        (f"predict {args.tolerance / 10:.0e}", args.tolerance / 10),
        (f"predict {args.tolerance:.0e}", args.tolerance),
    ):
        _, snapshots, model, seconds = plasticity_run(nx, resolution, True, comm, tolerance)
        runs.append((mode, model, seconds, added_error(snapshots)))
    record("porous_plasticity", runs, comm, table, cases)

    say(f"adaptive reuse, {comm.size} rank(s), tolerance {args.tolerance:g}")
    say(
        f"{'demo':<22} {'mode':<13} {'points':>8} {'solves':>7} {'fewer':>7} {'seconds':>8} "
        f"{'faster':>7} {'added error':>11}"
    )
    base = {}
    for demo, mode, points, solves, seconds, error, _ in table:
        base.setdefault(demo, (solves, seconds))
        s0, t0 = base[demo]
        say(
            f"{demo:<22} {mode:<13} {points:>8d} {solves:>7d} {s0 / max(solves, 1):>6.1f}x "
            f"{seconds:>8.2f} {t0 / seconds:>6.1f}x {error:>11.1e}"
        )
    for demo, mode, *_, stats in table:
        if mode != "naive":
            say(f"  {demo} {mode}: {stats.summary()} (rank 0)")
    if args.json:
        say(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()
