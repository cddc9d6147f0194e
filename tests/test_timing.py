"""Time report and Amdahl's law (collective; also run under ``mpiexec -n 2``)."""

import time

from mpi4py import MPI

import pytest
import ufl
from conftest import MaxwellGarnett
from dolfinx import mesh as dmesh

from fe2hmm.macro import Dirichlet, SteadyDiffusion
from fe2hmm.timing import amdahl_speedup, format_time_report, time_report

pytestmark = pytest.mark.mpi


def test_amdahl_law():
    assert amdahl_speedup(0.0, 8) == pytest.approx(8.0)
    assert amdahl_speedup(1.0, 8) == pytest.approx(1.0)
    assert amdahl_speedup(0.1, 2) == pytest.approx(1 / (0.1 + 0.45))
    assert amdahl_speedup(0.01, float("inf")) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="serial fraction"):
        amdahl_speedup(1.5, 2)
    with pytest.raises(ValueError, match="ranks"):
        amdahl_speedup(0.1, 0)


@pytest.mark.parametrize("scheduler", ["owner", "pooled"])
def test_time_report_is_consistent_on_every_rank(scheduler):
    comm = MPI.COMM_WORLD
    mesh = dmesh.create_unit_square(comm, 8, 8)
    # no reuse wrapper: a solve per point per update, so there is micro work at every iteration
    model = MaxwellGarnett()
    t0 = time.perf_counter()
    problem = SteadyDiffusion(
        mesh,
        model,
        parameters={"volume_fraction": 0.1 + 0.4 * ufl.SpatialCoordinate(mesh)[0]},
        source=10.0,
        bcs=[Dirichlet(0.0)],
        scheduler=scheduler,
    )
    result = problem.solve()
    closure = problem.closure
    report = time_report([closure], [result], time.perf_counter() - t0, comm)
    assert report == comm.bcast(report, root=0)  # the same dict on every rank
    assert report["ranks"] == comm.size
    for key in ("micro", "communication", "waiting", "macro_assemble", "macro_solve"):
        s = report[key]
        assert 0.0 <= s["min"] <= s["mean"] <= s["max"] <= report["wall"] + 1e-9
    assert report["imbalance"] >= 1.0 - 1e-12
    assert 0.0 <= report["serial_fraction"] <= 1.0
    assert 1.0 <= report["amdahl_speedup"] <= comm.size + 1e-12
    assert len(report["iterations"]) == len(result.residual_norms)
    assert "serial fraction" in format_time_report(report)


def test_scaling_model_limits():
    from fe2hmm.timing import model_speedup

    # no serial part, many equal tasks: linear speed-up for both schedulers
    kw = {"tasks": 10_000, "task_seconds": 0.1, "serial_seconds": 0.0, "latency": 0.0}
    assert model_speedup(100, scheduler="owner", **kw) == pytest.approx(100.0)
    assert model_speedup(100, scheduler="pooled", atomic_seconds=0.0, **kw) == pytest.approx(100.0)
    # granularity: never faster than one task per rank
    assert model_speedup(10**5, scheduler="pooled", atomic_seconds=0.0, **kw) == pytest.approx(
        10_000.0
    )
    # the counter serialises one atomic per task: pooled saturates at c / t_a
    assert model_speedup(10**5, scheduler="pooled", atomic_seconds=1e-4, **kw) == pytest.approx(
        1000.0
    )
    # Amdahl: a serial part caps the speed-up at T_1 / S
    capped = model_speedup(10**5, scheduler="owner", **(kw | {"serial_seconds": 10.0}))
    assert capped < (10.0 + 1000.0) / 10.0
    with pytest.raises(ValueError, match="scheduler"):
        model_speedup(2, scheduler="magic", **kw)
