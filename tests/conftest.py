import gc
import os
import subprocess
import sys
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

import fe2hmm  # noqa: F401
from fe2hmm import analytic
from fe2hmm.micro.interface import LinearMicroModel

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under mpiexec each rank gets its own temporary-directory root (pytest's default root is
    shared, and two ranks pruning old directories at once race on it)."""
    if MPI.COMM_WORLD.size > 1 and config.option.basetemp is None:
        import tempfile

        root = Path(tempfile.gettempdir()) / f"pytest-mpi-{os.getppid()}-rank{MPI.COMM_WORLD.rank}"
        config.option.basetemp = str(root)


@pytest.fixture(autouse=True)
def _collect_and_barrier():
    """dolfinx destructors can be collective: collect garbage and synchronise after each test;
    then destroy, collectively, the parallel PETSc objects released during the test (petsc4py
    defers them to PETSc's garbage, e.g. the solvers a ``NewtonSolver`` drops in ``__del__``)."""
    yield
    gc.collect()
    MPI.COMM_WORLD.barrier()
    from petsc4py import PETSc

    PETSc.garbage_cleanup(MPI.COMM_WORLD)


def same_function_values(a, b) -> bool:
    """Whether two Functions on equal meshes hold bitwise the same values, compared cell by cell
    through the original cell indices (independent of the local numbering of cells and dofs);
    True on every rank or on none (collective)."""

    def by_cell(f):
        dofs = np.asarray(f.function_space.dofmap.list)
        cells = f.function_space.mesh.topology.original_cell_index[: dofs.shape[0]]
        values = f.x.array.reshape(-1, f.function_space.dofmap.bs)[dofs]
        return {int(c): v for c, v in zip(cells, values, strict=True)}

    A, B = by_cell(a), by_cell(b)
    same = A.keys() == B.keys() and all(np.array_equal(A[k], B[k]) for k in A)
    return all(MPI.COMM_WORLD.allgather(bool(same)))


def mpiexec() -> str:
    """The mpiexec next to this Python (the mpich wheel puts it in the venv's bin)."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def run_python(args, nprocs: int = 1, timeout: float = 600, cwd=REPO, env=None):
    """Run ``python args`` (optionally under mpiexec) and return the CompletedProcess.

    One thread, unbuffered output; ``env`` adds or overrides environment variables.
    """
    cmd = [sys.executable, *map(str, args)]
    if nprocs > 1:
        cmd = [mpiexec(), "-n", str(nprocs), *cmd]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


serial_only = pytest.mark.skipif(
    MPI.COMM_WORLD.size > 1, reason="spawns its own processes; run from the serial suite"
)


class MaxwellGarnett(LinearMicroModel):
    """Cheap analytic linear micro-model: flux = -K_MG(φ) gradient (contrast 10).

    Raises (like a diverging cell solver) for volume fractions above ``fail_above``.
    """

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}
    parameter_shapes = {"volume_fraction": ()}

    def __init__(self, fail_above=np.inf, **kwargs):
        super().__init__(**kwargs)
        self.fail_above = fail_above

    def effective_tensors(self, parameters):
        phi = float(parameters["volume_fraction"])
        if phi > self.fail_above:
            raise RuntimeError(f"cell solver diverged at phi={phi:.3f}")
        return {("flux", "gradient"): -analytic.maxwell_garnett(1.0, 10.0, phi) * np.eye(2)}


def jacobian_difference_error(problem, direction, h=1e-5):
    """``(‖J d − (F(u + h d) − F(u − h d))/2h‖, ‖J d‖)`` at the current state ``problem.u``.

    ``J`` is the problem's assembled Jacobian (with the closures' chain-rule terms) and ``F``
    its residual, the closures updated at each shifted state; ``u`` is restored.
    """
    from petsc4py import PETSc

    from dolfinx import fem
    from dolfinx.fem import petsc as fem_petsc

    u = problem.u
    state = u.x.array.copy()
    F_form, J_form = fem.form(problem.F), fem.form(problem.J)

    def residual(shift):
        u.x.array[:] = state + shift * direction.x.array
        for closure in problem.closures:
            closure.update()
        b = fem_petsc.assemble_vector(F_form)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return b

    plus, minus = residual(h), residual(-h)
    plus.axpy(-1.0, minus)
    plus.scale(1.0 / (2 * h))
    residual(0.0)
    A = fem_petsc.assemble_matrix(J_form)
    A.assemble()
    Jd = A.createVecLeft()
    A.mult(direction.x.petsc_vec, Jd)
    norm = Jd.norm()
    Jd.axpy(-1.0, plus)
    error = Jd.norm()
    for obj in (plus, minus, A, Jd):
        obj.destroy()
    return error, norm
