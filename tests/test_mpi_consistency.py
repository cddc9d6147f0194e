"""1 rank and 2 ranks give the same FE² solution (to solver round-off)."""

import json

from mpi4py import MPI

import numpy as np
from _fe2_functionals import functionals
from conftest import REPO, run_python, serial_only


@serial_only
def test_one_and_two_ranks_identical():
    serial = functionals(MPI.COMM_SELF)
    out = run_python([REPO / "tests/_fe2_functionals.py"], nprocs=2, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    parallel = json.loads(out.stdout.strip().splitlines()[-1])
    assert parallel["points"] == serial["points"]
    assert parallel["iterations"] == serial["iterations"] == 1
    np.testing.assert_allclose(parallel["functionals"], serial["functionals"], rtol=1e-10)
