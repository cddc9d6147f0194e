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
from fe2hmm.errors import MicroSolveError
from fe2hmm.macro import Dirichlet, SmallStrainElasticity, SteadyDiffusion
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.reuse import Cache, Dedupe, ParameterSurrogateModel

pytestmark = pytest.mark.mpi


def _solve(scheduler, model, n=8):
    """The graded composite: -div(K*(phi) grad T) = 10, phi = 0.1 + 0.4 x, T = 0 on the boundary."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    problem = SteadyDiffusion(
        mesh,
        model,
        parameters={"volume_fraction": 0.1 + 0.4 * ufl.SpatialCoordinate(mesh)[0]},
        source=10.0,
        bcs=[Dirichlet(0.0)],
        scheduler=scheduler,
    )
    problem.solve()
    return problem.T, problem.closure


def test_schedulers_agree_and_pooled_dedupes_globally():
    comm = MPI.COMM_WORLD
    solutions, solves = {}, {}
    for scheduler in ("owner", "pooled", "serial"):
        model = Dedupe(MaxwellGarnett())
        T, closure = _solve(scheduler, model)
        solutions[scheduler] = T.x.array.copy()
        solves[scheduler] = comm.allreduce(model.statistics.micro_solves)
        if scheduler == "serial" and comm.rank != 0:
            assert model.statistics.micro_solves == 0  # everything on rank 0
        assert closure.timings.waiting >= 0 and closure.timings.communication >= 0
    for scheduler in ("pooled", "serial"):
        np.testing.assert_allclose(solutions[scheduler], solutions["owner"], rtol=1e-14)
    assert solves["pooled"] == solves["serial"] <= solves["owner"]


class IdentifiedMaxwellGarnett(MaxwellGarnett):
    def cache_identity(self):
        return {"model": "MaxwellGarnett/test"}


def test_reuse_stacks_run_under_the_pooled_scheduler(tmp_path_factory):
    """Dedupe + cache: the tasks the stack hands out are the misses, deduplicated across ranks;
    a second run is served from disk without a solve. Surrogate + cache: trained on each rank
    (through the cache), within its tolerance of the exact tensors."""
    comm = MPI.COMM_WORLD
    directory = comm.bcast(str(tmp_path_factory.mktemp("pooled")) if comm.rank == 0 else None)
    T_ref, _ = _solve("owner", Dedupe(MaxwellGarnett()))
    first = Dedupe(Cache(IdentifiedMaxwellGarnett(), directory))
    T, _ = _solve("pooled", first)
    np.testing.assert_allclose(T.x.array, T_ref.x.array, rtol=1e-14)
    solved = comm.allreduce(first.statistics.micro_solves)
    owner = Dedupe(MaxwellGarnett())
    _solve("owner", owner)
    assert 0 < solved <= comm.allreduce(owner.statistics.micro_solves)
    comm.barrier()  # every rank's entries are on disk
    again = Dedupe(Cache(IdentifiedMaxwellGarnett(), directory))
    T, _ = _solve("pooled", again)
    assert comm.allreduce(again.statistics.micro_solves) == 0
    st = again.statistics  # first update from disk, later ones remembered by Dedupe
    assert st.cache_hits > 0 and st.cache_hits + st.exact_reuse_hits == st.micro_requests
    np.testing.assert_allclose(T.x.array, T_ref.x.array, rtol=1e-14)
    surrogate = ParameterSurrogateModel(Cache(IdentifiedMaxwellGarnett(), directory), 1e-4)
    T, closure = _solve("pooled", surrogate)
    # K*(φ) within 1e-4 relative: the solution within a few times that
    assert np.abs(T.x.array - T_ref.x.array).max() <= 1e-3 * np.abs(T_ref.x.array).max()
    assert surrogate.statistics.cache_hits > 0 and surrogate.statistics.surrogate_hits > 0
    assert closure.error_bounds["flux"].shape == (closure.num_points,)


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


@pytest.mark.parametrize("tolerance", [None, 1e-3])
def test_plastic_cells_pooled_and_serial_match_owner(tolerance):
    """Tasks carry the committed history to whichever rank solves them, and bring back the
    sensitivities the linearised predictor (``tolerance``) serves from; the load path ends in
    the same forces and plastic strains (to round-off) under every scheduler."""
    from fe2hmm.micro.cells.plasticity import PlasticCellModel

    forces = {}
    for scheduler in ("owner", "pooled", "serial"):
        # the porous plate of demos/porous_plasticity.py, 2 x 1 macro cells
        mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [2, 1]], [2, 1])
        pull = fem.Constant(mesh, np.zeros(2))
        model = PlasticCellModel(
            rve="voids", matrix=(1.0, 0.3, 0.01, 0.1), resolution=6, tolerance=tolerance
        )
        problem = SmallStrainElasticity(
            mesh,
            model,
            parameters={"volume_fraction": 0.2},
            bcs=[
                Dirichlet(np.zeros(2), lambda x: np.isclose(x[0], 0.0)),
                Dirichlet(pull, lambda x: np.isclose(x[0], 2.0)),
            ],
            quadrature_degree=1,
            scheduler=scheduler,
            rtol=1e-9,
            atol=1e-9,
        )

        def apply(t, pull=pull):
            pull.value[:] = [0.04 * t, 0.0]

        path = []
        for target in (0.2, 0.6, 0.3):
            problem.solve_incrementally(apply, [target])  # commits the plastic histories
            path.append(problem.reaction(1, component=0))
        forces[scheduler] = np.array(path)
        if scheduler == "serial" and MPI.COMM_WORLD.rank != 0:
            assert model.statistics.micro_solves == 0
        if tolerance is not None:
            assert MPI.COMM_WORLD.allreduce(model.statistics.surrogate_hits) > 0
    for scheduler in ("pooled", "serial"):
        np.testing.assert_allclose(forces[scheduler], forces["owner"], rtol=1e-9)
