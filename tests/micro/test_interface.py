"""The micro-model contract on raw arrays (no mesh)."""

import numpy as np
import pytest

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import LinearMicroModel


class Scaled(LinearMicroModel):
    input_shapes = {"g": (2,)}
    output_shapes = {"q": (2,)}
    parameter_shapes = {"phi": ()}

    def effective_tensors(self, parameters):
        phi = float(parameters["phi"])
        if phi < 0:
            raise ValueError(f"negative phi {phi}")
        return {("q", "g"): (1.0 + phi) * np.eye(2)}


def test_outputs_and_tangents_batched():
    m = Scaled()
    g = np.arange(8.0).reshape(4, 2)
    phi = np.array([0.0, 1.0, 0.0, 1.0])
    r = m.evaluate({"g": g}, {"phi": phi})
    np.testing.assert_allclose(r.outputs["q"], (1 + phi)[:, None] * g)
    assert r.tangents["q", "g"].shape == (4, 2, 2)
    # no reuse without a wrapper: one solve per point (the naive baseline)
    assert m.statistics.micro_solves == 4 and m.statistics.points_requested == 4


def test_linear_model_splits_into_keyed_tasks():
    m = Scaled()
    batch = m.micro_tasks({"g": np.ones((3, 2))}, {"phi": np.array([0.5, 0.25, 0.5])})
    assert [t.point for t in batch.tasks] == [0, 1, 2]
    assert batch.tasks[0].key == batch.tasks[2].key != batch.tasks[1].key  # equal requests
    result = batch.finish({t.point: m.solve_task(t) for t in batch.tasks})
    np.testing.assert_allclose(result.outputs["q"][:, 0], [1.5, 1.25, 1.5])
    assert m.splits_into_tasks and m.tangent_blocks == [("q", "g")]


def test_shape_and_name_errors():
    m = Scaled()
    with pytest.raises(ValueError, match="expects inputs"):
        m.evaluate({"x": np.ones((2, 2))}, {"phi": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        m.evaluate({"g": np.ones((2, 3))}, {"phi": np.zeros(2)})
    with pytest.raises(ValueError, match="points"):
        m.evaluate({"g": np.ones((2, 2))}, {"phi": np.zeros(3)})
    with pytest.raises(MicroSolveError, match="non-finite"):
        m.evaluate({"g": np.array([[1.0, np.nan]])}, {"phi": np.zeros(1)})


def test_failure_names_the_point_and_parameters():
    m = Scaled()
    with pytest.raises(MicroSolveError) as info:
        m.evaluate({"g": np.ones((3, 2))}, {"phi": np.array([0.0, -2.0, 0.0])})
    assert info.value.point == 1
    assert "phi=-2" in str(info.value) and "negative phi" in str(info.value)
