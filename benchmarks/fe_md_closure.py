"""Benchmark: the FE–MD closure's micro work, one box at a time against one batched call.

The workload of `LJStressModel` in one macro Newton iteration: one box per quadrature point
and, for the tangent, ``2d²`` more (triangular lattice, 6×4 cells = 48 atoms, r_c = 2.5,
F = I + 0.01·noise).

- **T = 0**: relax every box (FIRE) and take its virial stress. Baseline: a Python loop over
  the boxes (`md.minimize` + `LJBox.stress`, what the model did before); batched: one
  `md.relaxed_stresses` call (`lj.relax_boxes`: FIRE, parallel over boxes).
- **T > 0** (T = 0.1, Langevin, ``equilibration`` + ``steps``): baseline: a loop of
  `md.thermal_stress` (the reference kernel: cell list or all pairs at every step, one box at a
  time); batched: one `md.thermal_stresses` call (Verlet lists, parallel over boxes). Both
  draw the same noise, and the engine reproduces the reference trajectories, so the stresses
  agree to round-off (printed).

Figures: seconds of each way (best of ``--repeat``; compilation excluded by a warm-up), the
speed-up, and boxes or atom-steps per second.

Run: ``python benchmarks/fe_md_closure.py [--quick] [--repeat N] [--json]``; with ``--json``
the last line is ``{"zero_temperature": {...}, "finite_temperature": {...}, "threads"}``.
"""

from __future__ import annotations

import argparse
import json
import time

import numba
import numpy as np

from fe2hmm.micro.particles.md import (
    LJBox,
    lattice_box,
    minimize,
    relaxed_stresses,
    thermal_stress,
    thermal_stresses,
)

CELLS, CUTOFF, TEMPERATURE = (6, 4), 2.5, 0.1


def boxes(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` deformed copies of the reference box: positions ``(B, n, 2)``, boxes."""
    reference = lattice_box("triangular", CELLS, cutoff=CUTOFF)
    F = np.eye(2) + 0.01 * np.random.default_rng(seed).normal(size=(count, 2, 2))
    X = np.ascontiguousarray(np.einsum("mj,bij->bmi", reference.x, F))
    return X, F @ reference.H


def best(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - t0)
    return min(times), result


def zero_temperature(count: int, repeat: int) -> dict:
    X, Hs = boxes(count)

    def loop():
        out = []
        for x, H in zip(X, Hs, strict=True):
            box = LJBox(x, H, CUTOFF)
            minimize(box)
            out.append(box.stress())
        return np.array(out)

    def batched():
        return relaxed_stresses(X.copy(), Hs, CUTOFF)[0]

    loop(), batched()  # compile
    t_loop, s_loop = best(loop, repeat)
    t_batch, s_batch = best(batched, repeat)
    return {
        "boxes": count,
        "loop_seconds": t_loop,
        "batched_seconds": t_batch,
        "speedup": t_loop / t_batch,
        "boxes_per_second": count / t_batch,
        "max_stress_difference": float(np.abs(s_loop - s_batch).max()),
    }


def finite_temperature(count: int, steps: int, equilibration: int, repeat: int) -> dict:
    X, Hs = boxes(count)
    seeds = np.arange(count)
    options = {"steps": steps, "equilibration": equilibration, "blocks": 10}

    def loop():
        return np.array([
            thermal_stress(LJBox(x, H, CUTOFF), TEMPERATURE, seed=int(s), **options).stress
            for x, H, s in zip(X, Hs, seeds, strict=True)
        ])  # fmt: skip

    def batched():
        runs = thermal_stresses(X, Hs, CUTOFF, TEMPERATURE, seeds, **options)
        return np.array([r.stress for r in runs])

    small = {"steps": 100, "equilibration": 10, "blocks": 10, "every": 5}
    thermal_stress(LJBox(X[0], Hs[0], CUTOFF), TEMPERATURE, **small)  # compile
    thermal_stresses(X[:2], Hs[:2], CUTOFF, TEMPERATURE, seeds[:2], **small)
    t_loop, s_loop = best(loop, repeat)
    t_batch, s_batch = best(batched, repeat)
    atom_steps = count * X.shape[1] * (steps + equilibration)
    return {
        "boxes": count,
        "steps": steps + equilibration,
        "loop_seconds": t_loop,
        "batched_seconds": t_batch,
        "speedup": t_loop / t_batch,
        "atom_steps_per_second": atom_steps / t_batch,
        "max_stress_difference": float(np.abs(s_loop - s_batch).max()),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="FE–MD closure: box loop vs batched call")
    parser.add_argument("--quick", action="store_true", help="small workload (CI)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    points = 20 if args.quick else 200
    hot_points = 2 if args.quick else 8
    steps = 1000 if args.quick else 4000
    cold = zero_temperature(points * 9, args.repeat)
    hot = finite_temperature(hot_points * 9, steps, steps // 4, args.repeat)
    threads = numba.get_num_threads()
    print(f"FE-MD closure micro work, 48-atom triangular boxes, {threads} numba threads")
    print(f"{'case':>22} {'boxes':>6} {'loop s':>9} {'batched s':>10} {'speed-up':>9} "
          f"{'max |dsigma|':>13}")  # fmt: skip
    for name, r in (("T = 0 relax + stress", cold), (f"T = {TEMPERATURE} Langevin", hot)):
        print(f"{name:>22} {r['boxes']:>6} {r['loop_seconds']:>9.3f} {r['batched_seconds']:>10.3f} "
              f"{r['speedup']:>8.1f}x {r['max_stress_difference']:>13.1e}")  # fmt: skip
    print(f"T = 0: {cold['boxes_per_second']:.3g} boxes/s batched; T > 0: "
          f"{hot['atom_steps_per_second']:.3g} atom-steps/s batched "
          f"({hot['steps']} steps per box)")  # fmt: skip
    summary = {"zero_temperature": cold, "finite_temperature": hot, "threads": threads}
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
