"""Evolving microstructure: state-dependent cells, their surrogate, and the irreversible state
that drives them from macro fields."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm import analytic
from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.evolution import IrreversibleState
from fe2hmm.micro.cells.diffusion import homogenize_diffusion
from fe2hmm.micro.cells.evolving import StateDependentDiffusionCellModel
from fe2hmm.reuse import Cache, ParameterSurrogateModel
from fe2hmm.rve.cell import INCLUSION, MATRIX


def degrading(s):
    return {MATRIX: 1.0, INCLUSION: (1 - s) * 10.0 + s * 0.1}


def test_tensor_follows_the_state_exactly_on_laminates():
    model = StateDependentDiffusionCellModel(
        degrading, rve="laminate", volume_fraction=0.3, resolution=8
    )
    for s in (0.0, 0.37, 1.0):
        k_f = degrading(s)[INCLUSION]
        exact = analytic.laminate_conductivity(1.0, k_f, 0.3, dim=2, normal=0)
        assert np.allclose(model.conductivity_tensor(s), exact, rtol=1e-10)
    circle = StateDependentDiffusionCellModel(degrading, volume_fraction=0.4, resolution=8)
    K = homogenize_diffusion(circle.cell, degrading(0.5)).effective_tensor
    assert np.allclose(circle.conductivity_tensor(0.5), K, rtol=1e-12)
    # the state at which the fibre conducts like the matrix: a homogeneous cell
    s_equal = 9.0 / 9.9
    assert np.allclose(circle.conductivity_tensor(s_equal), np.eye(2), atol=1e-10)


def test_seeded_surrogate_serves_many_states_within_tolerance_from_few_solves():
    cell = StateDependentDiffusionCellModel(degrading, volume_fraction=0.4, resolution=8)
    model = ParameterSurrogateModel(cell, 1e-3, initial_nodes=(0.0, 0.5, 1.0))
    assert model.statistics.micro_solves == 3
    assert set(model.surrogate.nodes) == {0.0, 0.5, 1.0}
    rng = np.random.default_rng(0)
    states = rng.uniform(0.0, 1.0, 2000)
    result = model.evaluate({"gradient": np.ones((states.size, 2))}, {"state": states})
    tensors = result.tangents["flux", "gradient"]
    assert model.statistics.micro_solves < 40
    exact_model = StateDependentDiffusionCellModel(degrading, volume_fraction=0.4, resolution=8)
    held_out = rng.choice(states.size, 15, replace=False)
    scale = np.abs(tensors).max()
    for i in held_out:
        exact = -exact_model.conductivity_tensor(states[i])
        # the estimate (O(h²)) bounds the served error (O(h³)) at the 1e-3 tolerance
        assert np.abs(tensors[i] - exact).max() < 1e-3 * scale
    assert result.tensor_errors.max() <= 1e-3 * scale


def test_bad_states_and_arguments_are_named():
    model = StateDependentDiffusionCellModel(degrading, resolution=8)
    with pytest.raises(ValueError, match=r"state 1.5 outside the admissible interval \[0.0, 1.0\]"):
        model.conductivity_tensor(1.5)
    with pytest.raises(TypeError, match="callable"):
        StateDependentDiffusionCellModel({MATRIX: 1.0})
    with pytest.raises(ValueError, match="bounds"):
        StateDependentDiffusionCellModel(degrading, bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="cache_key"):
        Cache(model, "unused")
    mesh = dmesh.create_unit_square(MPI.COMM_SELF, 2, 2)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    closure = Closure(model, mesh, {"gradient": ufl.grad(fem.Function(V))}, {"state": 2.0})
    with pytest.raises(MicroSolveError, match="outside the admissible interval") as info:
        closure.update()
    assert info.value.coordinates is not None


def test_cache_key_enables_the_persistent_cache(tmp_path):
    request = ({"gradient": np.ones((1, 2))}, {"state": np.array([0.25])})
    law = {"law": "lin"}
    first = Cache(
        StateDependentDiffusionCellModel(degrading, resolution=8, cache_key=law), tmp_path
    )
    again = Cache(
        StateDependentDiffusionCellModel(degrading, resolution=8, cache_key=law), tmp_path
    )
    K_first = first.evaluate(*request).tangents["flux", "gradient"]
    assert np.array_equal(again.evaluate(*request).tangents["flux", "gradient"], K_first)
    assert (again.statistics.cache_hits, again.statistics.micro_solves) == (1, 0)


def test_irreversible_state_follows_the_maximum_and_rolls_back():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T = fem.Function(V)
    model = StateDependentDiffusionCellModel(degrading, resolution=8)
    closure = Closure(model, mesh, {"gradient": ufl.grad(T)}, {"state": 0.0})
    state = IrreversibleState(closure, "state", T, lambda t: np.clip(t, 0.0, 1.0))
    x = closure.coordinates[:, 0]
    T.interpolate(lambda p: p[0])  # P1 is exact for x: the state equals x at every point
    assert state.advance() == np.count_nonzero(x > 0)
    state.commit()
    assert np.allclose(state.values, x, atol=1e-14)
    assert np.allclose(closure.parameters["state"], x, atol=1e-14)
    T.interpolate(lambda p: 0.5 + 0 * p[0])  # cooling where x > 0.5, heating where x < 0.5
    state.advance()
    assert np.allclose(closure.parameters["state"], np.maximum(x, 0.5))
    state.rollback()
    assert np.allclose(closure.parameters["state"], x, atol=1e-14)
    state.advance()
    state.commit()
    T.interpolate(lambda p: 0 * p[0])  # full cooling changes nothing: irreversible
    assert state.advance() == 0
    state.commit()
    assert np.allclose(state.values, np.maximum(x, 0.5))
    with pytest.raises(ValueError, match="not finite at quadrature point"):
        IrreversibleState(closure, "state", T, lambda t: np.full_like(t, np.nan)).advance()
    with pytest.raises(ValueError, match="law returned shape"):
        IrreversibleState(closure, "state", T, lambda t: t[:1]).advance()
    with pytest.raises(ValueError, match="not a scalar parameter"):
        IrreversibleState(closure, "damage", T, np.tanh)
    with pytest.raises(ValueError, match="must be scalar"):
        IrreversibleState(closure, "state", ufl.grad(T), np.tanh)


def test_closure_takes_per_point_parameter_arrays():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    model = StateDependentDiffusionCellModel(degrading, resolution=8)
    closure = Closure(model, mesh, {"gradient": ufl.grad(fem.Function(V))}, {"state": 0.0})
    values = np.linspace(0.0, 1.0, closure.num_points)
    closure.set_parameter("state", values)
    assert np.array_equal(closure.parameters["state"], values)
    with pytest.raises(ValueError, match=r"per-point values of shape"):
        closure.set_parameter("state", values[:-1])


def test_a_law_failing_on_one_rank_raises_on_every_rank():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T = fem.Function(V)
    model = StateDependentDiffusionCellModel(degrading, resolution=8)
    closure = Closure(model, mesh, {"gradient": ufl.grad(T)}, {"state": 0.0})
    rank = MPI.COMM_WORLD.rank

    def law(t):
        return np.full_like(t, np.nan) if rank == 0 else np.zeros_like(t)

    state = IrreversibleState(closure, "state", T, law)
    with pytest.raises(ValueError, match="not finite" if rank == 0 else "another rank"):
        state.advance()
