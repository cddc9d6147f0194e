"""Time report and Amdahl's law (collective; also run under ``mpiexec -n 2``)."""

import time

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm import analytic
from fe2hmm.closure import Closure
from fe2hmm.micro.interface import LinearMicroModel
from fe2hmm.newton import NewtonSolver
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


class Graded(LinearMicroModel):
    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}
    parameter_shapes = {"volume_fraction": ()}

    def effective_tensors(self, parameters):
        k = analytic.maxwell_garnett(1.0, 10.0, float(parameters["volume_fraction"]))
        return {("flux", "gradient"): -k * np.eye(2)}


@pytest.mark.parametrize("scheduler", ["owner", "pooled"])
def test_time_report_is_consistent_on_every_rank(scheduler):
    comm = MPI.COMM_WORLD
    mesh = dmesh.create_unit_square(comm, 8, 8)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T, v = fem.Function(V), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(mesh)
    closure = Closure(
        Graded(reuse=False),  # a solve per point per update: micro work at every iteration
        mesh,
        {"gradient": ufl.grad(T)},
        {"volume_fraction": 0.1 + 0.4 * x[0]},
        scheduler=scheduler,
    )
    F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx - v * closure.dx
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda p: np.full(p.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    t0 = time.perf_counter()
    result = NewtonSolver(F, T, [bc], [closure], petsc_options_prefix=f"t{scheduler}_").solve()
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
