"""Helper script for tests/test_mpi_consistency.py: FE² functionals as one JSON line (rank 0).

Usage: ``python tests/_fe2_functionals.py [SCHEDULER] [surrogate]``.
"""

import json
import sys

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.macro import Dirichlet, SteadyDiffusion
from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.reuse import Dedupe, ParameterSurrogateModel


def functionals(comm, scheduler="owner", surrogate=False):
    mesh = dmesh.create_unit_square(comm, 8, 8)
    cell = DiffusionCellModel(rve="circle", matrix=1.0, inclusion=10.0, resolution=12)
    model = ParameterSurrogateModel(cell, 1e-3) if surrogate else Dedupe(cell)
    x = ufl.SpatialCoordinate(mesh)
    # the graded composite: -div(K*(phi) grad T) = 10, T = 0 on the boundary
    problem = SteadyDiffusion(
        mesh,
        model,
        parameters={"volume_fraction": 0.1 + 0.4 * x[0]},
        source=10.0,
        bcs=[Dirichlet(0.0)],
        scheduler=scheduler,
    )
    result = problem.solve()
    T, closure = problem.T, problem.closure
    values = [
        comm.allreduce(fem.assemble_scalar(fem.form(e * ufl.dx)), op=MPI.SUM)
        for e in (T, T**2, T * x[0], ufl.inner(ufl.grad(T), ufl.grad(T)))
    ]
    return {
        "functionals": values,
        "iterations": result.iterations,
        "points": comm.allreduce(closure.num_points, op=MPI.SUM),
        "micro_solves": comm.allreduce(model.statistics.micro_solves, op=MPI.SUM),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    out = functionals(
        MPI.COMM_WORLD, args[0] if args else "owner", surrogate="surrogate" in args[1:]
    )
    if MPI.COMM_WORLD.rank == 0:
        print(json.dumps(out))
    assert np.all(np.isfinite(out["functionals"]))
