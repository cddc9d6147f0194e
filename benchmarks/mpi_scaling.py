"""Benchmark: MPI scaling of the micro solves with each scheduler (1 and 2 ranks).

Cases:

- ``composite_conduction``: the graded composite (32×32 macro mesh, 6144 points, circle cells
  at resolution 16, one solve per distinct fibre fraction);
- ``porous_plasticity``: the porous J2 plate of the demo (uniform porosity 0.2);
- ``composite_conduction_half_graded``: the same plate with the fibre fraction graded only on
  the left half (0.1 → 0.5) and constant 0.5 on the right half: the distinct cell problems —
  the micro work after dedupe — sit on one side of the plate, which is the uneven case for
  owner-computes and what global dedupe with dynamic load balancing is for.

Every run is a separate process (``mpiexec -n P python benchmarks/mpi_scaling.py --worker …``)
that prints its time report (:func:`fe2hmm.timing.time_report`) as JSON. ``speedup`` is
relative to the one-rank owner-computes run of the same case; ``imbalance`` = max/mean micro
seconds per rank; ``serial_fraction`` as defined in :mod:`fe2hmm.timing`.

Every configuration runs ``--repeat`` times (default 3; 1 with ``--quick``) and the fastest
run counts. Run: ``python benchmarks/mpi_scaling.py [--quick] [--repeat N] [--json]``; with
``--json`` the last line is ``{"cases": [{"demo", "scheduler", "ranks", "seconds", "speedup",
"imbalance", "serial_fraction"}, …]}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CASES = ("composite_conduction", "composite_conduction_half_graded", "porous_plasticity")
SCHEDULERS = ("owner", "pooled", "serial")


def worker(case: str, scheduler: str, quick: bool) -> None:
    """Run one case under the current ``mpiexec`` and print its time report as JSON."""
    from mpi4py import MPI

    import numpy as np
    from _cases import LOADS, graded_conduction, graded_fraction, porous_plate
    from dolfinx import mesh as dmesh

    from fe2hmm.micro.cells.diffusion import DiffusionCellModel
    from fe2hmm.reuse import Dedupe
    from fe2hmm.timing import time_report

    comm = MPI.COMM_WORLD
    if case.startswith("composite_conduction"):
        import ufl

        n, resolution = (12, 10) if quick else (32, 16)
        model = Dedupe(DiffusionCellModel(rve="circle", inclusion=10.0, resolution=resolution))
        mesh = dmesh.create_unit_square(comm, n, n)

        def half_graded(x):
            return 0.1 + 0.4 * ufl.min_value(2.0 * x[0], 1.0)

        fraction = half_graded if case.endswith("half_graded") else graded_fraction
        comm.Barrier()
        t0 = time.perf_counter()
        problem, result = graded_conduction(model, mesh, scheduler=scheduler, fraction=fraction)
        wall = time.perf_counter() - t0
        T, closure = problem.T, problem.closure
        results = [result]
        check = float(
            comm.allreduce(T.x.array[: T.function_space.dofmap.index_map.size_local].sum())
        )
    else:
        nx, resolution = (2, 6) if quick else (3, 8)
        problem, model, apply, reaction = porous_plate(comm, nx, resolution, scheduler=scheduler)
        closure = problem.closure
        comm.Barrier()
        t0 = time.perf_counter()
        results, forces = [], []
        for target in LOADS:
            steps = problem.solve_incrementally(apply, [target])
            results += [s.result for s in steps]
            forces.append(reaction())
        wall = time.perf_counter() - t0
        check = float(np.sum(np.abs(forces)))
    report = time_report([closure], results, wall, comm)
    report["check"] = check
    report["micro_solves"] = comm.allreduce(model.statistics.micro_solves)
    if comm.rank == 0:
        print(json.dumps(report))


def run(case: str, scheduler: str, ranks: int, quick: bool, repeat: int = 1) -> dict:
    """The fastest of ``repeat`` runs (the machine's timing noise is ±20-40 %)."""
    reports = [_run_once(case, scheduler, ranks, quick) for _ in range(repeat)]
    return min(reports, key=lambda r: r["wall"])


def _run_once(case: str, scheduler: str, ranks: int, quick: bool) -> dict:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    cmd = [sys.executable, __file__, "--worker", case, scheduler] + (["--quick"] if quick else [])
    if ranks > 1:
        cmd = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases (smoke test)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per configuration (min)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "SCHEDULER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.quick)
        return
    cases, rows = [], []
    repeat = args.repeat or (1 if args.quick else 3)
    for case in CASES:
        base = run(case, "owner", 1, args.quick, repeat)
        runs = [("owner", 1, base)] + [
            (s, 2, run(case, s, 2, args.quick, repeat)) for s in SCHEDULERS
        ]
        for scheduler, ranks, r in runs:
            speedup = base["wall"] / r["wall"]
            # same answer as one rank: to the macro/micro Newton tolerances (1e-9, 1e-10)
            if abs(r["check"] - base["check"]) > 1e-6 * abs(base["check"]):
                raise RuntimeError(f"{case}/{scheduler}/{ranks}: result differs from 1 rank")
            cases.append(
                {
                    "demo": case,
                    "scheduler": scheduler,
                    "ranks": ranks,
                    "seconds": r["wall"],
                    "speedup": speedup,
                    "imbalance": r["imbalance"],
                    "serial_fraction": r["serial_fraction"],
                }
            )
            rows.append((case, scheduler, ranks, r, speedup))
    print(
        f"{'demo':<26} {'scheduler':<9} {'ranks':>5} {'seconds':>8} {'speedup':>7} "
        f"{'effic.':>6} {'micro max/mean':>14} {'comm':>6} {'wait':>6} {'serial f':>8} "
        f"{'Amdahl':>6} {'solves':>6}"
    )
    for case, scheduler, ranks, r, speedup in rows:
        print(
            f"{case:<26} {scheduler:<9} {ranks:>5d} {r['wall']:>8.2f} {speedup:>7.2f} "
            f"{speedup / ranks:>6.2f} {r['micro']['max']:>6.2f}/{r['micro']['mean']:<7.2f} "
            f"{r['communication']['max']:>6.2f} {r['waiting']['max']:>6.2f} "
            f"{r['serial_fraction']:>8.4f} {r['amdahl_speedup']:>6.2f} {r['micro_solves']:>6d}"
        )
    if args.json:
        print(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()
