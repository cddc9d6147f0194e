"""Peer for benchmarks/cell_diffusion.py: K* of a circle cell with µSpectre's Fourier solver.

Standalone on purpose (no fe2hmm, no dolfinx imports), so that its process stays lean; run it
with a Python that has ``muspectre`` (PyPI 0.27.0; manylinux wheels for CPython 3.11 and 3.12):

    python3.12 -m venv /tmp/musvenv && /tmp/musvenv/bin/pip install muspectre
    /tmp/musvenv/bin/python benchmarks/peer_muspectre.py --pixels 513 --json

The unit cell [0, 1]^2 is an N x N pixel image: a pixel belongs to the centred disk of area
fraction f when its centre lies inside it. Each unit macro gradient e_i is imposed and solved
by µSpectre's spectral (Fourier-projection) Newton–CG solver; K*[:, i] is the mean flux.
``iterations`` in the JSON line is the total number of CG iterations over the load cases.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def assign_phases(cell, pixels: int, f: float, phase_matrix, phase_inclusion):
    """Put each pixel whose centre lies in the centred disk of area f into ``phase_inclusion``."""
    centres = (np.arange(pixels) + 0.5) / pixels
    x, y = np.meshgrid(centres, centres, indexing="ij")
    # µSpectre numbers pixels x-fastest (column-major); the disk is symmetric anyway.
    inside = ((x - 0.5) ** 2 + (y - 0.5) ** 2 < f / np.pi).ravel(order="F")
    add_inclusion, add_matrix = phase_inclusion.add_pixel, phase_matrix.add_pixel
    for index, flag in enumerate(inside.tolist()):
        (add_inclusion if flag else add_matrix)(index)


def effective_conductivity(pixels: int, f: float, k_matrix: float, k_inclusion: float, tol: float):
    """Return K* (2x2), CG iterations, and seconds of set-up + solve."""
    import muSpectre as msp

    t0 = time.perf_counter()
    cell = msp.cell.CellData.make([pixels, pixels], [1.0, 1.0])
    cell.nb_quad_pts = 1
    matrix = msp.material.MaterialLinearDiffusion_2d.make(cell, "matrix", k_matrix)
    inclusion = msp.material.MaterialLinearDiffusion_2d.make(cell, "inclusion", k_inclusion)
    assign_phases(cell, pixels, f, matrix, inclusion)
    krylov = msp.solvers.KrylovSolverCG(tol, 10 * pixels, verbose=msp.Verbosity.Silent)
    solver = msp.solvers.SolverNewtonCG(cell, krylov, msp.Verbosity.Silent, 1e-8, 0.0, 10)
    K = np.zeros((2, 2))
    for i in range(2):
        load = np.zeros((2, 1))
        load[i, 0] = 1.0
        result = solver.solve_load_increment(load)
        flux = np.asarray(result.stress).reshape(2, -1, order="F")
        K[:, i] = flux.mean(axis=1)
    return K, int(krylov.counter), time.perf_counter() - t0


def effective_stiffness(pixels: int, f: float, matrix, inclusion, tol: float):
    """C* (Voigt 11, 22, 12; engineering shear) of the circle cell, small strain, µSpectre 2D."""
    import muSpectre as msp

    t0 = time.perf_counter()
    cell = msp.cell.CellData.make([pixels, pixels], [1.0, 1.0])
    cell.nb_quad_pts = 1
    phase_m = msp.material.MaterialLinearElastic1_2d.make(cell, "matrix", *matrix)
    phase_i = msp.material.MaterialLinearElastic1_2d.make(cell, "inclusion", *inclusion)
    assign_phases(cell, pixels, f, phase_m, phase_i)
    krylov = msp.solvers.KrylovSolverCG(tol, 10 * pixels, verbose=msp.Verbosity.Silent)
    solver = msp.solvers.SolverNewtonCG(cell, krylov, msp.Verbosity.Silent, 1e-8, 0.0, 10)
    solver.formulation = msp.Formulation.small_strain
    pairs = [(0, 0), (1, 1), (0, 1)]
    C = np.zeros((3, 3))
    for col, (i, j) in enumerate(pairs):
        strain = np.zeros((2, 2))
        strain[i, j] = strain[j, i] = 1.0 if i == j else 0.5  # engineering shear = 1
        result = solver.solve_load_increment(strain)
        stress = np.asarray(result.stress).reshape(2, 2, -1, order="F").mean(axis=2)
        C[:, col] = [stress[k, m] for (k, m) in pairs]
    return C, time.perf_counter() - t0


def main(argv=None):
    """Parse arguments, solve, print K* (and a JSON line with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=513)
    parser.add_argument("--volume-fraction", type=float, default=0.5)
    parser.add_argument("--physics", choices=("diffusion", "elasticity"), default="diffusion")
    parser.add_argument("--matrix", default="1.0", help="k, or E,nu for elasticity")
    parser.add_argument("--inclusion", default="10.0", help="k, or E,nu for elasticity")
    parser.add_argument("--tol", type=float, default=1e-8, help="CG tolerance")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.physics == "elasticity":
        matrix = [float(x) for x in args.matrix.split(",")]
        inclusion = [float(x) for x in args.inclusion.split(",")]
        C, seconds = effective_stiffness(
            args.pixels, args.volume_fraction, matrix, inclusion, args.tol
        )
        print(f"muSpectre {args.pixels}^2 pixels: C* (Voigt) = {C.tolist()}  ({seconds:.2f} s)")
        if args.json:
            print(
                json.dumps(
                    {"pixels": args.pixels, "effective_tensor": C.tolist(), "seconds": seconds}
                )
            )
        return
    K, iterations, seconds = effective_conductivity(
        args.pixels, args.volume_fraction, float(args.matrix), float(args.inclusion), args.tol
    )
    print(f"muSpectre {args.pixels}^2 pixels: K* = {K.tolist()}  ({seconds:.2f} s)")
    if args.json:
        print(
            json.dumps(
                {
                    "pixels": args.pixels,
                    "effective_tensor": K.tolist(),
                    "seconds": seconds,
                    "iterations": iterations,
                }
            )
        )


if __name__ == "__main__":
    main()
