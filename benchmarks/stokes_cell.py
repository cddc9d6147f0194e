"""Benchmark: seconds per permeability tensor of a Stokes cell against its accuracy, 2D and 3D.

Cells: a square array of cylinders at solid fraction 0.4 (2D) and a simple-cubic array of
spheres at 0.216 (3D), with the published references — Sangani & Acrivos (1982), Table 1,
F/(μU) = 217.89, and Zick & Homsy (1982), Table 2, K = 7.442. For each resolution the row
gives the unknowns, the error of K/L² against the reference and the seconds per tensor, split
into meshing (gmsh), assembly and set-up (forms, periodic reduction, saddle-point matrix),
MUMPS LU factorisation and the d solves; the last columns say whether the row is the coarsest
within 1 % and within 0.1 %.

Run: ``python benchmarks/stokes_cell.py [--quick] [--json]``; with ``--json`` the last line is
``{"cases": [{"dim", "resolution", "dofs", "error", "seconds", "mesh_seconds",
"assemble_seconds", "factorize_seconds", "solve_seconds"}, …]}``.
"""

from __future__ import annotations

import argparse
import json
import time

from mpi4py import MPI  # noqa: F401  (MPI before dolfinx, as with every dolfinx script)

import numpy as np

from fe2hmm import rve
from fe2hmm.micro.cells.stokes import StokesCellProblem

#: (dim, generator, solid fraction, K/L² of the published table)
CASES = [
    (2, "circle", 0.4, 1.0 / 217.89),  # Sangani & Acrivos 1982, square array
    (3, "sphere", 0.216, 1.0 / (6 * np.pi * (3 * 0.216 / (4 * np.pi)) ** (1 / 3) * 7.442)),
]


def run(dim: int, name: str, fraction: float, reference: float, resolution: int) -> dict:
    """One cell: mesh, assemble, factorise, solve; the error against ``reference``."""
    t0 = time.perf_counter()
    cell = rve.create(name, dim=dim, volume_fraction=fraction, resolution=resolution)
    t1 = time.perf_counter()
    problem = StokesCellProblem(cell)
    t2 = time.perf_counter()
    result = problem.solve()
    t3 = time.perf_counter()
    k = float(np.trace(result.permeability)) / dim
    return {
        "dim": dim,
        "resolution": resolution,
        "dofs": result.dofs,
        "error": k / reference - 1.0,
        "seconds": t3 - t0,
        "mesh_seconds": t1 - t0,
        "assemble_seconds": t2 - t1,
        "factorize_seconds": result.seconds["factorize"],
        "solve_seconds": result.seconds["solve"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases (smoke test)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        resolutions = {2: (8, 16), 3: (4,)}
    else:
        resolutions = {2: (4, 8, 16, 32, 64), 3: (4, 6, 8, 10, 12, 14)}
    rows = []
    print(
        f"{'dim':>3} {'res':>4} {'dofs':>7} {'error':>9} {'seconds':>8} {'mesh':>6} "
        f"{'assemble':>8} {'factor':>7} {'solve':>6}  within"
    )
    for dim, name, fraction, reference in CASES:
        run(dim, name, fraction, reference, resolutions[dim][0])  # warm: JIT caches
        first = {}
        for resolution in resolutions[dim]:
            row = run(dim, name, fraction, reference, resolution)
            rows.append(row)
            marks = []
            for level in (1e-2, 1e-3):
                if abs(row["error"]) < level and level not in first:
                    first[level] = resolution
                    marks.append(f"{level:.0%}" if level >= 1e-2 else f"{level:.1%}")
            print(
                f"{dim:>3} {resolution:>4} {row['dofs']:>7} {row['error']:>+9.2e} "
                f"{row['seconds']:>8.3f} {row['mesh_seconds']:>6.3f} "
                f"{row['assemble_seconds']:>8.3f} {row['factorize_seconds']:>7.3f} "
                f"{row['solve_seconds']:>6.3f}  {' '.join(marks)}"
            )
    if args.json:
        print(json.dumps({"cases": rows}))


if __name__ == "__main__":
    main()
