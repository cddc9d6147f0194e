"""The reuse layer's base: a :class:`~fe2hmm.micro.interface.MicroModel` wrapping another.

Reuse policies (:class:`~fe2hmm.reuse.dedupe.Dedupe`, :class:`~fe2hmm.reuse.cache.Cache`,
:class:`~fe2hmm.reuse.surrogate_model.ParameterSurrogateModel`,
:class:`~fe2hmm.reuse.surrogate_model.ScalarSurrogateModel`,
:class:`~fe2hmm.reuse.tangent_surrogate.TangentSurrogateModel`,
:class:`~fe2hmm.reuse.regression.HyperelasticRegressionModel`) are ``MicroModel → MicroModel``
wrappers: each keeps the inner model's declarations (inputs, outputs, parameters, tangent
blocks, linearity, stochasticity) and its contract, including :meth:`micro_tasks`, so they
compose in any order and pooled scheduling works through them — the tasks a stack hands to the
scheduler are the innermost model's, for the points no layer could answer. A stack shares one
:class:`~fe2hmm.micro.interface.MicroStatistics`: each layer counts what it does::

    model = Dedupe(Cache(DiffusionCellModel(...), "~/.cache/fe2hmm"))
    closure = Closure(model, mesh, ...)
    print(model.statistics.summary())
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fe2hmm.errors import MicroModelError, MicroSolveError, MicroStop
from fe2hmm.micro.interface import MicroModel, MicroResult, TaskBatch, run_tasks

__all__ = ["ReuseWrapper", "then"]


def then(batch: TaskBatch, step: Callable[[MicroResult], MicroResult | TaskBatch]) -> TaskBatch:
    """A batch with the same tasks whose final result is passed through ``step``.

    Rounds of ``batch`` (a ``finish`` that returns another :class:`TaskBatch`) are kept.
    """

    def finish(results: dict) -> MicroResult | TaskBatch:
        answer = batch.finish(results)
        return step(answer) if isinstance(answer, MicroResult) else then(answer, step)

    return TaskBatch(batch.tasks, finish)


class ReuseWrapper(MicroModel):
    """Base of the reuse wrappers: forwards the declarations and tasks of ``model``.

    Args:
        model: the wrapped micro-model (another wrapper, or a micro-model). Models with history
            (:class:`~fe2hmm.micro.interface.StatefulMicroModel`) are refused: reuse by input
            alone is not exact for them.

    Raises:
        TypeError: ``model`` is not a micro-model, or it has history.
    """

    #: Whether the layer answers a restarted run exactly as it would have answered the
    #: uninterrupted one without saving its own state: exact reuse (:class:`Dedupe`, the
    #: persistent :class:`Cache`) or state fixed at construction. Layers that learn during a
    #: run (surrogates, refitted regressions) are not, and a checkpoint refuses them
    #: (:meth:`fe2hmm.macro.MacroProblem.checkpoint`).
    restart_exact: bool = False

    def __init__(self, model: MicroModel) -> None:
        if not isinstance(model, MicroModel):
            raise TypeError(f"model must be a fe2hmm MicroModel, got {type(model).__name__}")
        if model.is_stateful:
            raise TypeError(
                f"{type(self).__name__} cannot wrap {type(model).__name__}: it has history, so "
                "equal inputs do not mean equal answers (its exact shortcuts are its own)"
            )
        self.inner = model
        self.statistics = model.statistics  # one object for the whole stack

    @property
    def model(self) -> MicroModel:
        """The innermost micro-model of the stack."""
        return self.inner.model if isinstance(self.inner, ReuseWrapper) else self.inner

    @property
    def input_shapes(self):
        """The inner model's inputs."""
        return self.inner.input_shapes

    @property
    def output_shapes(self):
        """The inner model's outputs."""
        return self.inner.output_shapes

    @property
    def parameter_shapes(self):
        """The inner model's parameters."""
        return self.inner.parameter_shapes

    @property
    def tangent_blocks(self):
        """The inner model's tangent blocks."""
        return self.inner.tangent_blocks

    @property
    def is_linear(self) -> bool:  # type: ignore[override]
        """Whether the inner model is linear in its inputs."""
        return self.inner.is_linear

    @property
    def is_stochastic(self) -> bool:  # type: ignore[override]
        """Whether the inner model is stochastic."""
        return self.inner.is_stochastic

    @property
    def splits_into_tasks(self) -> bool:
        """Whether the innermost model splits into tasks (then pooled scheduling works)."""
        return self.inner.splits_into_tasks

    def cache_identity(self) -> dict:
        """The inner model's cache identity."""
        return self.inner.cache_identity()

    def solve_task(self, task):
        """Solve one of the innermost model's tasks (may run on another rank)."""
        return self.inner.solve_task(task)

    def evaluate(self, inputs, parameters, *, tangents=True) -> MicroResult:
        """Evaluate through the wrapper on this rank (all rounds of :meth:`micro_tasks`)."""
        return run_tasks(self, self.micro_tasks(inputs, parameters, tangents=tangents))

    def forward(
        self,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, np.ndarray],
        points: np.ndarray,
        tangents: bool,
    ) -> TaskBatch:
        """The inner model's batch for the sub-batch at ``points`` of this layer's batch.

        The inner layer's point and request counts are absorbed (this layer counted them),
        and its tasks are re-indexed to this layer's points, so a failure names the point the
        closure knows; ``finish`` takes results keyed by those points.

        Args:
            inputs: the sub-batch's inputs ``(m, *shape)``.
            parameters: the sub-batch's parameters ``(m, *shape)``.
            points: indices ``(m,)`` of the sub-batch's points in this layer's batch.
            tangents: whether tangents are needed.
        """
        points = np.asarray(points, dtype=int)
        stats = self.statistics
        counted = stats.points_requested, stats.micro_requests
        try:
            if self.inner.splits_into_tasks:
                batch = self.inner.micro_tasks(inputs, parameters, tangents=tangents)
            else:
                result = self.inner.evaluate(inputs, parameters, tangents=tangents)
                batch = TaskBatch([], lambda _results: result)
        except (MicroSolveError, MicroModelError, MicroStop) as err:
            raise _relocated(err, points) from err
        finally:
            stats.points_requested, stats.micro_requests = counted
        return _reindexed(batch, points)


def _relocated(err: MicroSolveError | MicroModelError | MicroStop, points: np.ndarray):
    if err.point is None or not (0 <= err.point < len(points)):
        return err
    point = int(points[err.point])
    if isinstance(err, MicroStop):
        return MicroStop(err.stop, point=point, parameters=err.parameters, message=err.message)
    return type(err)(err.message, point=point, parameters=err.parameters)


def _reindexed(batch: TaskBatch, points: np.ndarray) -> TaskBatch:
    """``batch`` with task points mapped through ``points`` (and results mapped back)."""
    local = {}
    for task in batch.tasks:
        local[int(points[task.point])] = task.point
        task.point = int(points[task.point])

    def finish(results: dict) -> MicroResult | TaskBatch:
        answer = batch.finish({local[p]: r for p, r in results.items()})
        return answer if isinstance(answer, MicroResult) else _reindexed(answer, points)

    return TaskBatch(batch.tasks, finish)
