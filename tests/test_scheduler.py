"""Schedulers: identical results for owner/pooled/serial, global dedupe, failures reach every
rank without a hang (run under ``mpiexec -n 2`` by ``make test``)."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import MaxwellGarnett
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.closure import Closure
from fe2hmm.demos.composite_conduction import solve_macro
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult

pytestmark = pytest.mark.mpi


def _solve(scheduler, model, n=8):
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    _, T, closure, _ = solve_macro(model, mesh, quadrature_degree=2, scheduler=scheduler)
    return T, closure


def test_schedulers_agree_and_pooled_dedupes_globally():
    comm = MPI.COMM_WORLD
    solutions, solves = {}, {}
    for scheduler in ("owner", "pooled", "serial"):
        model = MaxwellGarnett()
        T, closure = _solve(scheduler, model)
        solutions[scheduler] = T.x.array.copy()
        solves[scheduler] = comm.allreduce(model.statistics.micro_solves)
        if scheduler == "serial" and comm.rank != 0:
            assert model.statistics.micro_solves == 0  # everything on rank 0
        assert closure.timings.waiting >= 0 and closure.timings.communication >= 0
    for scheduler in ("pooled", "serial"):
        np.testing.assert_allclose(solutions[scheduler], solutions["owner"], rtol=1e-14)
    assert solves["pooled"] == solves["serial"] <= solves["owner"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheduler", ["owner", "pooled", "serial"])
def test_failure_on_some_points_reaches_every_rank_without_hang(scheduler):
    with pytest.raises(MicroSolveError) as info:
        _solve(scheduler, MaxwellGarnett(fail_above=0.45))
    err = info.value
    if err.coordinates is not None:  # the rank owning the first failing parameter set
        assert 0.1 + 0.4 * err.coordinates[0] > 0.45 - 1e-12
        assert "diverged" in str(err) and "x = (" in str(err)
    else:
        assert "rank" in str(err)


def test_bad_scheduler_is_rejected():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T = fem.Function(V)
    with pytest.raises(ValueError, match="unknown scheduler 'fastest'"):
        Closure(
            MaxwellGarnett(),
            mesh,
            {"gradient": ufl.grad(T)},
            {"volume_fraction": 0.2},
            scheduler="fastest",
        )
    with pytest.raises(ValueError, match="use scheduler='owner'"):  # no micro_tasks()
        Closure(Cubic(), mesh, {"gradient": ufl.grad(T)}, scheduler="pooled")


class Cubic(MicroModel):
    """q = -(1 + |g|²) g: nonlinear, no task splitting."""

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def evaluate(self, inputs, parameters, *, tangents=True):
        g = inputs["gradient"]
        return MicroResult({"flux": -(1 + np.einsum("ni,ni->n", g, g))[:, None] * g})


def test_plastic_cells_pooled_and_serial_match_owner():
    """Tasks carry the committed history to whichever rank solves them; the load path ends in
    the same forces and plastic strains (to round-off) under every scheduler."""
    from fe2hmm.demos.porous_plasticity import build
    from fe2hmm.newton import solve_incrementally

    forces = {}
    for scheduler in ("owner", "pooled", "serial"):
        mesh, u, model, closure, newton, apply, reaction = build(
            MPI.COMM_WORLD, 1, 6, scheduler=scheduler
        )
        current, path = 0.0, []
        for target in (0.2, 0.6, 0.3):
            solve_incrementally(newton, apply, [target], histories=[model], start=current)
            current = target
            path.append(reaction())
        forces[scheduler] = np.array(path)
        if scheduler == "serial" and MPI.COMM_WORLD.rank != 0:
            assert model.statistics.micro_solves == 0
    for scheduler in ("pooled", "serial"):
        np.testing.assert_allclose(forces[scheduler], forces["owner"], rtol=1e-9)
