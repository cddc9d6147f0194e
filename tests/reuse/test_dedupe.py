"""Exact dedupe and the reuse-wrapper contract: composition, tasks, statistics, refusals."""

import numpy as np
import pytest
from conftest import MaxwellGarnett
from test_quadrature import NoisyConductor, TwoOutputs

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.cells.plasticity import PlasticCellModel
from fe2hmm.micro.interface import run_tasks
from fe2hmm.reuse import Cache, Dedupe, ParameterSurrogateModel, ReuseWrapper


class Identified(MaxwellGarnett):
    def cache_identity(self):
        return {"model": "MaxwellGarnett/dedupe-test"}


def _batch(phi):
    phi = np.asarray(phi, dtype=float)
    g = np.stack([np.arange(phi.size, dtype=float), np.ones(phi.size)], axis=1)
    return {"gradient": g}, {"volume_fraction": phi}


def test_linear_dedupe_solves_each_distinct_parameter_once_and_remembers_it():
    phi = [0.1, 0.2, 0.1, 0.3, 0.2]
    naive = MaxwellGarnett().evaluate(*_batch(phi))
    model = Dedupe(MaxwellGarnett())
    result = model.evaluate(*_batch(phi))
    np.testing.assert_array_equal(result.outputs["flux"], naive.outputs["flux"])
    np.testing.assert_array_equal(
        result.tangents["flux", "gradient"], naive.tangents["flux", "gradient"]
    )
    st = model.statistics
    assert (st.points_requested, st.micro_requests, st.micro_solves) == (5, 3, 3)
    model.evaluate(*_batch([0.3, 0.4]))  # 0.3 remembered, 0.4 new
    assert (st.points_requested, st.micro_requests, st.exact_reuse_hits, st.micro_solves) == (
        7,
        5,
        1,
        4,
    )
    assert len(model) == 4
    model.clear()
    model.evaluate(*_batch([0.3]))
    assert st.micro_solves == 5


def test_tolerance_bins_requests_and_is_validated():
    model = Dedupe(MaxwellGarnett(), tolerance=1e-3)
    model.evaluate(*_batch([0.1, 0.1 + 1e-5, 0.2]))
    assert model.statistics.micro_solves == 2
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0, got -1.0"):
        Dedupe(MaxwellGarnett(), tolerance=-1.0)


def test_nonlinear_dedupe_keys_on_inputs_and_parameters():
    inputs = {
        "gradient": np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0], [1.0, 2.0]]),
        "value": np.array([1.0, 1.0, 1.0, 2.0]),
    }
    reference = TwoOutputs().evaluate(inputs, {})
    model = Dedupe(TwoOutputs())
    result = model.evaluate(inputs, {})
    assert model.statistics.micro_requests == 3  # (g, T) pairs: rows 0 and 1 agree
    for key in reference.outputs:
        np.testing.assert_array_equal(result.outputs[key], reference.outputs[key])
    for key in reference.tangents:
        np.testing.assert_array_equal(result.tangents[key], reference.tangents[key])
    assert not model.memory  # inputs change at every Newton iterate: nothing remembered
    model.evaluate(inputs, {})
    assert model.statistics.exact_reuse_hits == 0


def test_wrappers_compose_in_any_order_and_count_once():
    phi = np.array([0.1, 0.2, 0.1, 0.3])
    for make in (
        lambda d: Dedupe(Cache(Identified(), d)),
        lambda d: Cache(Dedupe(Identified()), d),
    ):
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            model = make(directory)
            result = model.evaluate(*_batch(phi))
            st = model.statistics
            assert st is model.model.statistics  # one object for the stack
            assert st.points_requested == 4 and st.micro_solves == 3
            np.testing.assert_allclose(
                result.outputs["flux"], MaxwellGarnett().evaluate(*_batch(phi)).outputs["flux"]
            )
            assert model.is_linear and model.splits_into_tasks
            assert model.tangent_blocks == [("flux", "gradient")]


def test_tasks_through_a_stack_are_the_misses_and_failures_name_the_batch_point():
    model = Dedupe(MaxwellGarnett(fail_above=0.45))
    batch = model.micro_tasks(*_batch([0.1, 0.5, 0.1, 0.2]))
    assert sorted(t.point for t in batch.tasks) == [0, 1, 3]  # point 2 repeats point 0
    with pytest.raises(MicroSolveError) as info:
        run_tasks(model, batch)
    assert info.value.point == 1 and "diverged" in str(info.value)
    deep = Dedupe(Dedupe(MaxwellGarnett(fail_above=0.45)))
    with pytest.raises(MicroSolveError) as info:
        deep.evaluate(*_batch([0.1, 0.2, 0.1, 0.5]))
    assert info.value.point == 3


def test_exact_reuse_is_refused_where_it_would_not_be_exact():
    with pytest.raises(TypeError, match="stochastic"):
        Dedupe(NoisyConductor(0.1))
    with pytest.raises(TypeError, match="has history"):
        Dedupe(PlasticCellModel(resolution=4))
    with pytest.raises(TypeError, match="must be a fe2hmm MicroModel"):
        ReuseWrapper(object())
    with pytest.raises(TypeError, match="not linear"):
        ParameterSurrogateModel(TwoOutputs())


def test_empty_batches_pass_through_every_wrapper():
    for model in (Dedupe(MaxwellGarnett()), ParameterSurrogateModel(MaxwellGarnett(), 1e-3)):
        result = model.evaluate(*_batch([]))
        assert result.outputs["flux"].shape == (0, 2)
