"""The reuse layer's base (fe2hmm.reuse.wrapper): a wrapper written the documented way keeps
the inner model's contract — declarations, one statistics object, tasks re-indexed to the
wrapper's points, failures naming the caller's point, rounds kept by ``then``."""

import numpy as np
import pytest
from conftest import MaxwellGarnett

from fe2hmm import analytic
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult, StatefulMicroModel, TaskBatch, run_tasks
from fe2hmm.reuse import Cache, Dedupe
from fe2hmm.reuse.wrapper import ReuseWrapper, then


class ZeroGradientShortcut(ReuseWrapper):
    """Answers zero-gradient points with zero flux (exact for a linear model) when no tangent
    is asked for; forwards every other point to the inner model."""

    def micro_tasks(self, inputs, parameters, *, tangents=True):
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        zero = np.all(inputs["gradient"].reshape(n, -1) == 0.0, axis=1) & (not tangents)
        ask = np.flatnonzero(~zero)
        self.statistics.exact_reuse_hits += int(zero.sum())
        sub = self.forward(
            {k: v[ask] for k, v in inputs.items()},
            {k: v[ask] for k, v in parameters.items()},
            ask,
            tangents,
        )

        def done(result: MicroResult) -> MicroResult:
            outputs = {name: np.zeros((n, *shape)) for name, shape in self.output_shapes.items()}
            for name in outputs:
                outputs[name][ask] = result.outputs[name]
            return MicroResult(outputs, result.tangents)

        return then(sub, done)


def _batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n, 2))
    g[::2] = 0.0  # every other point has a zero gradient
    phi = np.linspace(0.1, 0.6, n)
    return {"gradient": g}, {"volume_fraction": phi}


def test_a_wrapper_keeps_the_declarations_and_shares_the_statistics():
    inner = MaxwellGarnett()
    stack = ZeroGradientShortcut(Dedupe(inner))
    for name in (
        "input_shapes",
        "output_shapes",
        "parameter_shapes",
        "tangent_blocks",
        "is_linear",
        "is_stochastic",
        "splits_into_tasks",
    ):
        assert getattr(stack, name) == getattr(inner, name), name
    assert stack.model is inner and stack.inner.inner is inner
    assert stack.statistics is inner.statistics
    with pytest.raises(NotImplementedError, match="MaxwellGarnett does not define a cache"):
        stack.cache_identity()  # forwarded: the inner model's answer, not the wrapper's


def test_shortcut_answers_are_exact_and_counted_once():
    """Outputs equal the analytic flux at every point; the zero-gradient points are answered
    without a solve; the inner counts of the forwarded sub-batch are absorbed (the points
    are counted once, by the outermost layer)."""
    inputs, parameters = _batch()
    inner = MaxwellGarnett()
    stack = ZeroGradientShortcut(inner)
    result = stack.evaluate(inputs, parameters, tangents=False)
    k = np.array([analytic.maxwell_garnett(1.0, 10.0, p) for p in parameters["volume_fraction"]])
    np.testing.assert_allclose(result.outputs["flux"], -k[:, None] * inputs["gradient"], rtol=1e-14)
    stats = stack.statistics
    assert (stats.points_requested, stats.micro_requests) == (6, 6)
    assert (stats.exact_reuse_hits, stats.micro_solves) == (3, 3)
    # with tangents every point goes through, and the tangent is the tensor
    result = stack.evaluate(inputs, parameters, tangents=True)
    np.testing.assert_allclose(
        result.tangents[("flux", "gradient")], -k[:, None, None] * np.eye(2), rtol=1e-14
    )
    assert stats.points_requested == 12 and stats.micro_solves == 9


def test_tasks_carry_the_wrappers_points_and_failures_name_them():
    """The tasks handed to a scheduler are the innermost model's, indexed by the outer batch;
    a failing solve names the outer point, not its index in the forwarded sub-batch."""
    inputs, parameters = _batch()
    stack = ZeroGradientShortcut(MaxwellGarnett(fail_above=0.5))
    batch = stack.micro_tasks(inputs, parameters, tangents=False)
    assert [t.point for t in batch.tasks] == [1, 3, 5]
    phi = parameters["volume_fraction"]
    assert [float(t.parameters["volume_fraction"]) for t in batch.tasks] == list(phi[1::2])
    with pytest.raises(MicroSolveError, match="quadrature point 5") as info:
        run_tasks(stack, batch)  # phi[5] = 0.6 > 0.5 fails; it is point 2 of the sub-batch
    assert info.value.point == 5


class _Evaluates(MicroModel):
    """A model without tasks (plain ``evaluate``), failing at its second point."""

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def evaluate(self, inputs, parameters, *, tangents=True):
        self.check_batch(inputs, parameters)
        if len(inputs["gradient"]) > 1:
            raise MicroSolveError("diverged", point=1)
        return MicroResult({"flux": -inputs["gradient"]})


def test_failures_of_models_without_tasks_are_relocated():
    inputs = {"gradient": np.ones((6, 2))}
    inputs["gradient"][::2] = 0.0
    stack = ZeroGradientShortcut(_Evaluates())
    assert not stack.splits_into_tasks
    with pytest.raises(MicroSolveError, match="quadrature point 3") as info:
        stack.evaluate(inputs, {}, tangents=False)  # the sub-batch is points [1, 3, 5]
    assert info.value.point == 3


def test_then_keeps_the_rounds_of_a_batch():
    """A batch whose finish asks for a second round stays a two-round batch under ``then``."""
    calls = []

    def second(results):
        calls.append(("second", dict(results)))
        return MicroResult({"x": np.array([results[0]])})

    def first(results):
        calls.append(("first", dict(results)))
        return TaskBatch([_Task(0, 2.0)], second)

    chained = then(
        TaskBatch([_Task(0, 1.0)], first), lambda r: MicroResult({"x": 10 * r.outputs["x"]})
    )
    answer = chained.finish({0: 1.0})
    assert isinstance(answer, TaskBatch) and answer.tasks[0].value == 2.0
    final = answer.finish({0: 2.0})
    assert isinstance(final, MicroResult) and final.outputs["x"].tolist() == [20.0]
    assert [c[0] for c in calls] == ["first", "second"]


class _Task:
    def __init__(self, point, value):
        self.point, self.value = point, value


class _WithHistory(StatefulMicroModel):
    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def evaluate(self, inputs, parameters, *, tangents=True):
        return MicroResult({"flux": -inputs["gradient"]})

    def commit(self):
        pass

    def rollback(self):
        pass


def test_wrappers_refuse_what_they_cannot_wrap_exactly():
    with pytest.raises(TypeError, match="model must be a fe2hmm MicroModel, got int"):
        ZeroGradientShortcut(3)
    with pytest.raises(TypeError, match="cannot wrap _WithHistory: it has history"):
        Cache(_WithHistory(), "/nonexistent")
