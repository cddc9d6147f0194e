"""Schedulers: identical results for owner/pooled/serial, global dedupe, failures reach every
rank without a hang (run under ``mpiexec -n 2`` by ``make test``)."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm import analytic
from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import LinearMicroModel, MicroModel, MicroResult
from fe2hmm.newton import NewtonSolver

pytestmark = pytest.mark.mpi


class Graded(LinearMicroModel):
    """K*(φ) = Maxwell Garnett, contrast 10; fails above ``fail_above``."""

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


def _solve(scheduler, model, n=8):
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T, v = fem.Function(V), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(mesh)
    closure = Closure(
        model,
        mesh,
        {"gradient": ufl.grad(T)},
        {"volume_fraction": 0.1 + 0.4 * x[0]},
        scheduler=scheduler,
    )
    F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx - 10.0 * v * closure.dx
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda p: np.full(p.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    NewtonSolver(F, T, [bc], [closure], petsc_options_prefix=f"s{id(model)}_").solve()
    return T, closure


def test_schedulers_agree_and_pooled_dedupes_globally():
    comm = MPI.COMM_WORLD
    solutions, solves = {}, {}
    for scheduler in ("owner", "pooled", "serial"):
        model = Graded()
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
        _solve(scheduler, Graded(fail_above=0.45))
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
            Graded(), mesh, {"gradient": ufl.grad(T)}, {"volume_fraction": 0.2}, scheduler="fastest"
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
