"""Benchmark: a transient HMM run against fully resolved runs at equal accuracy.

Problem (ε = 1/8 … 1/64; ``--quick``: 1/4, 1/8 on coarser meshes): the graded fibre
composite of ``demos/composite_conduction.py`` on (0, 1)² (fibre
fraction 0.1 → 0.5 across the plate, conductivities 10 / 1, period ε), uniform storage c = 1
(the consistent setting of the micro-transient cell), heated by a uniform source f = 10 from
T = 0 with the edges held at 0, backward Euler to t = 0.04 (16 steps; the plate is then close to
its steady state, whose relaxation time is ~0.03).

- **DNS**: ``c ∂_t T − ∇·(k(x)∇T) = f`` on conforming meshes that resolve every fibre (cells
  of ``resolution`` elements per edge tiled 1/ε × 1/ε times), one MUMPS factorisation reused
  over the steps. The finest resolution is the reference of its ε.
- **HMM**: ``TransientDiffusionCellModel`` (memory window, cell size ε: the micro-transient
  closure; one modal decomposition per distinct fibre fraction) on a 32×32 P1 macro mesh,
  marched with :meth:`fe2hmm.macro.TransientDiffusion.march`; the DNS mesh is
  :func:`fe2hmm.rve.tiling.tile_columns`.

Accuracy: the relative L2 error of the temperature at t_end against the reference DNS of the
same ε (the HMM field is interpolated onto the DNS mesh). The HMM error contains the O(ε)
homogenisation error — it is the accuracy a homogenised model *can* reach at that ε — plus its
macro discretisation error. **Equal accuracy**: per ε, the cheapest coarser DNS whose error is
at most the HMM's; ``speedup_at_equal_accuracy`` = its seconds / HMM seconds (``None`` when no
coarser DNS reaches the HMM's error, then the reference itself is the cheapest that does).
Wall times are whole runs (mesh and cell generation included), the minimum of ``--repeat``.

Run: ``python benchmarks/transient_hmm.py [--quick] [--repeat N] [--json]``; with ``--json`` the
last line is ``{"rows": [{"eps", "dns": [{"resolution", "dofs", "seconds", "error"}…],
"hmm_seconds", "hmm_error", "hmm_cell_problems", "equal_accuracy_resolution",
"speedup_at_equal_accuracy"}…], "steps", "t_end"}``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from dolfinx.fem import petsc as fem_petsc

from fe2hmm.macro import Dirichlet, TransientDiffusion
from fe2hmm.micro.cells.transient import TransientDiffusionCellModel
from fe2hmm.rve import create as create_rve
from fe2hmm.rve.cell import INCLUSION
from fe2hmm.rve.tiling import tile_columns

# the graded composite of demos/composite_conduction.py
PHI0, PHI1 = 0.1, 0.5  # fibre area fraction at x1 = 0 and x1 = 1
K_MATRIX, K_FIBRE = 1.0, 10.0
SOURCE = 10.0
STORAGE = 1.0


def volume_fraction(x):
    """Graded fibre fraction; ``x`` has shape (gdim, n) (or is a UFL coordinate)."""
    return PHI0 + (PHI1 - PHI0) * x[0]


def tile_mesh(eps_inv: int, resolution: int, comm):
    """Conforming DNS mesh of 1/eps x 1/eps cells, column j at the fraction of its centre."""
    cells = [
        create_rve(
            "circle",
            volume_fraction=float(volume_fraction(np.array([(j + 0.5) / eps_inv]))),
            resolution=resolution,
        )
        for j in range(eps_inv)
    ]
    return tile_columns(cells, comm)


def _boundary_bc(V):
    mesh = V.mesh
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda p: np.full(p.shape[1], True))
    return fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)


def dns(eps_inv: int, resolution: int, steps: int, t_end: float, comm) -> dict:
    """Fully resolved backward-Euler run; returns the final field, dofs and seconds."""
    t0 = time.perf_counter()
    tiled = tile_mesh(eps_inv, resolution, comm)
    mesh, tags = tiled.mesh, tiled.tags
    Q = fem.functionspace(mesh, ("DG", 0))
    k = fem.Function(Q)
    k.x.array[: tags.size] = np.where(tags == INCLUSION, K_FIBRE, K_MATRIX)
    k.x.scatter_forward()
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    T_n = fem.Function(V)
    dt = t_end / steps
    bc = _boundary_bc(V)
    a = fem.form(STORAGE * u * v / dt * ufl.dx + k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = fem.form((STORAGE * T_n / dt + SOURCE) * v * ufl.dx)
    A = fem_petsc.assemble_matrix(a, bcs=[bc])
    A.assemble()
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    ksp.setType("preonly")
    ksp.getPC().setType("lu")
    ksp.getPC().setFactorSolverType("mumps")
    b = fem_petsc.create_vector(V)
    T = fem.Function(V, name="T")
    for _ in range(steps):
        with b.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(b, L)
        fem_petsc.apply_lifting(b, [a], bcs=[[bc]])
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(b, [bc])
        ksp.solve(b, T.x.petsc_vec)
        T.x.scatter_forward()
        T_n.x.array[:] = T.x.array
    ksp.destroy()
    A.destroy()
    b.destroy()
    return {
        "T": T,
        "dofs": V.dofmap.index_map.size_global,
        "seconds": comm.allreduce(time.perf_counter() - t0, op=MPI.MAX),
    }


def hmm(eps_inv: int, n: int, resolution: int, steps: int, t_end: float, comm) -> dict:
    """Transient HMM run (memory window, cell size ε); returns the final field and seconds."""
    t0 = time.perf_counter()
    mesh = dmesh.create_unit_square(comm, n, n)
    x = ufl.SpatialCoordinate(mesh)
    model = TransientDiffusionCellModel(
        "circle",
        matrix=(K_MATRIX, STORAGE),
        inclusion=(K_FIBRE, STORAGE),
        cell_size=1.0 / eps_inv,
        resolution=resolution,
    )
    problem = TransientDiffusion(
        mesh,
        model,
        dt=t_end / steps,
        parameters={"volume_fraction": volume_fraction(x)},
        source=SOURCE,
        bcs=[Dirichlet(0.0)],
    )
    problem.march(np.linspace(0.0, t_end, steps + 1))  # commits the cells' memory
    T = problem.T
    return {
        "T": T,
        "cell_problems": comm.allreduce(model.statistics.micro_solves, op=MPI.SUM),
        "seconds": comm.allreduce(time.perf_counter() - t0, op=MPI.MAX),
    }


def relative_l2(reference: fem.Function, other: fem.Function) -> float:
    """``‖reference − other‖/‖reference‖`` on the reference mesh (``other`` interpolated)."""
    V = reference.function_space
    mesh = V.mesh
    cells = np.arange(mesh.topology.index_map(2).size_local, dtype=np.int32)
    moved = fem.Function(V)
    data = fem.create_interpolation_data(V, other.function_space, cells, padding=1e-10)
    moved.interpolate_nonmatching(other, cells, data)
    moved.x.scatter_forward()

    def norm(expr):
        return math.sqrt(
            mesh.comm.allreduce(fem.assemble_scalar(fem.form(expr * expr * ufl.dx)), op=MPI.SUM)
        )

    return norm(reference - moved) / norm(reference)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Transient HMM vs fully resolved runs")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per timing (min counts)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    if args.quick:
        eps_list, resolutions, n, cell_resolution, steps = (4, 8), (4, 8), 16, 8, 8
    else:
        eps_list, resolutions, n, cell_resolution, steps = (8, 16, 32, 64), (4, 8, 16), 32, 16, 16
    t_end = 0.04
    rows = []
    say(
        f"{'eps':>6} {'run':>10} {'dofs':>9} {'seconds':>8} {'L2 error':>9}   "
        f"(backward Euler, {steps} steps to t = {t_end})"
    )
    for eps_inv in eps_list:
        runs = []
        for r in resolutions:
            best = None
            for _ in range(args.repeat):
                run = dns(eps_inv, r, steps, t_end, comm)
                if best is None or run["seconds"] < best["seconds"]:
                    best = run
            runs.append({"resolution": r, **best})
        reference = runs[-1]["T"]
        for run in runs[:-1]:
            run["error"] = relative_l2(reference, run["T"])
        runs[-1]["error"] = 0.0
        best_hmm = None
        for _ in range(args.repeat):
            run = hmm(eps_inv, n, cell_resolution, steps, t_end, comm)
            if best_hmm is None or run["seconds"] < best_hmm["seconds"]:
                best_hmm = run
        hmm_error = relative_l2(reference, best_hmm["T"])
        matching = [run for run in runs[:-1] if run["error"] <= hmm_error]
        cheapest = min(matching, key=lambda run: run["seconds"]) if matching else None
        row = {
            "eps": 1.0 / eps_inv,
            "dns": [
                {key: run[key] for key in ("resolution", "dofs", "seconds", "error")}
                for run in runs
            ],
            "hmm_seconds": best_hmm["seconds"],
            "hmm_error": hmm_error,
            "hmm_cell_problems": best_hmm["cell_problems"],
            "equal_accuracy_resolution": cheapest["resolution"] if cheapest else None,
            "speedup_at_equal_accuracy": (
                cheapest["seconds"] / best_hmm["seconds"] if cheapest else None
            ),
            "reference_over_hmm": runs[-1]["seconds"] / best_hmm["seconds"],
        }
        rows.append(row)
        for run in runs:
            label = f"DNS r={run['resolution']}" + (" (ref)" if run is runs[-1] else "")
            say(
                f"1/{eps_inv:<4d} {label:>10} {run['dofs']:>9d} {run['seconds']:>8.2f} "
                f"{run['error']:>9.2e}"
            )
        say(
            f"1/{eps_inv:<4d} {'HMM':>10} {'':>9} {best_hmm['seconds']:>8.2f} {hmm_error:>9.2e}"
            f"   ({best_hmm['cell_problems']} cell problems)"
        )
        if cheapest:
            say(
                f"       equal accuracy: DNS r={cheapest['resolution']} takes "
                f"{row['speedup_at_equal_accuracy']:.1f}x the HMM time"
            )
        else:
            say(
                "       no coarser DNS is as inaccurate as the HMM: the reference takes "
                f"{row['reference_over_hmm']:.1f}x the HMM time"
            )
    summary = {"rows": rows, "steps": steps, "t_end": t_end, "macro_cells": n}
    if args.json:
        say(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
