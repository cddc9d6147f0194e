"""A micro-model that fails on purpose: on one rank, at one point, at one closure update.

Used in-process by tests/test_fault_injection.py and, for faults that kill the process
(segfault) or leave a rank busy, as a script under ``mpiexec -n 2``:

    mpiexec -n 2 python tests/_fault_injection.py --how segfault --scheduler owner

The macro problem: -div q = 10 on the unit square, T = 0 on the boundary, with the nonlinear
flux q = -(1 + |∇T|²) ∇T (Newton needs a few iterations, so "update 2" is reached).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from dataclasses import dataclass

from mpi4py import MPI

import numpy as np

from fe2hmm.micro.interface import MicroModel, MicroResult, TaskBatch, run_tasks

HOWS = ("raise", "bug", "exit", "interrupt", "segfault")


@dataclass
class FluxTask:
    point: int
    gradient: np.ndarray
    origin: int  # the rank that owns the point


class FaultyConductor(MicroModel):
    """q = -(1 + |g|²) g with its tangent, failing at ``(rank, point, update)``.

    ``how``: ``"raise"`` (ValueError), ``"bug"`` (TypeError, a programming error), ``"exit"``
    (``sys.exit(3)``), ``"interrupt"`` (KeyboardInterrupt), ``"segfault"`` (reads address 0).
    At the same point and update, ``busy_rank`` sleeps 60 s (a rank still working when another
    stops). With ``tasks`` the model splits into tasks (any scheduler); the fault fires
    wherever the owner's task is solved.
    """

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def __init__(self, how, rank, point=2, update=2, tasks=True, busy_rank=None):
        super().__init__()
        if how not in HOWS:
            raise ValueError(f"how must be one of {HOWS}, got {how!r}")
        self.how, self.rank, self.point, self.update = how, rank, point, update
        self.busy_rank = busy_rank  # also keep this rank busy at the same point and update
        self.tasks = tasks
        self.updates = -1

    @property
    def splits_into_tasks(self) -> bool:
        return self.tasks

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        self.updates += 1
        g = np.asarray(inputs["gradient"], dtype=float)
        rank = MPI.COMM_WORLD.rank
        tasks = [FluxTask(i, g[i].copy(), rank) for i in range(g.shape[0])]
        update = self.updates

        def finish(results):
            n = g.shape[0]
            q = np.array([results[i][0] for i in range(n)]).reshape(n, 2)
            A = np.array([results[i][1] for i in range(n)]).reshape(n, 2, 2)
            return MicroResult({"flux": q}, {("flux", "gradient"): A} if tangents else {})

        for task in tasks:
            task.update = update
        return TaskBatch(tasks, finish)

    def solve_task(self, task):
        self._maybe_fail(task.origin, task.point, task.update)
        g = task.gradient
        s = 1.0 + g @ g
        return -s * g, -s * np.eye(2) - 2.0 * np.outer(g, g)

    def evaluate(self, inputs, parameters, *, tangents=True):
        if self.tasks:
            return run_tasks(self, self.micro_tasks(inputs, parameters, tangents=tangents))
        # a plain model: its own loop over the points, failures attributed with at_point
        from fe2hmm.errors import at_point

        self.updates += 1
        g = np.asarray(inputs["gradient"], dtype=float)
        q, A = np.empty_like(g), np.empty((g.shape[0], 2, 2))
        for i in range(g.shape[0]):
            with at_point(i):
                self._maybe_fail(MPI.COMM_WORLD.rank, i, self.updates)
                s = 1.0 + g[i] @ g[i]
                q[i], A[i] = -s * g[i], -s * np.eye(2) - 2.0 * np.outer(g[i], g[i])
        return MicroResult({"flux": q}, {("flux", "gradient"): A} if tangents else {})

    def _maybe_fail(self, origin, point, update):
        if point != self.point or update != self.update:
            return
        if origin == self.busy_rank:
            time.sleep(60.0)
            return
        if origin != self.rank:
            return
        print(f"FAULT {time.time():.3f} {self.how}", file=sys.stderr, flush=True)
        if self.how == "raise":
            raise ValueError("injected failure")
        if self.how == "bug":
            raise TypeError("injected bug")
        if self.how == "exit":
            sys.exit(3)
        if self.how == "interrupt":
            raise KeyboardInterrupt
        if self.how == "segfault":
            ctypes.string_at(0)


def solve(model, scheduler="owner", n=4):
    """The macro problem of the module docstring with ``model`` as its closure."""
    from dolfinx import mesh as dmesh

    from fe2hmm.macro import Dirichlet, SteadyDiffusion

    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    problem = SteadyDiffusion(mesh, model, source=10.0, bcs=[Dirichlet(0.0)], scheduler=scheduler)
    problem.solve()
    return problem


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--how", choices=HOWS, required=True)
    parser.add_argument("--scheduler", default="owner")
    parser.add_argument("--plain", action="store_true", help="no task splitting")
    parser.add_argument("--busy", action="store_true", help="rank 0 busy when rank 1 fails")
    args = parser.parse_args(argv)
    import faulthandler

    import dolfinx  # noqa: F401 - PETSc installs its signal handlers here: faulthandler after it

    faulthandler.enable()  # a segfault prints the Python stack, then PETSc's handler runs
    model = FaultyConductor(
        args.how, rank=1, tasks=not args.plain, busy_rank=0 if args.busy else None
    )
    solve(model, args.scheduler)
    print("finished without a fault", flush=True)


if __name__ == "__main__":
    main()
