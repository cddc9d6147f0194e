"""The micro-model contract: batched maps from macro inputs and per-point parameters to outputs.

A micro-model never sees dolfinx objects of the macro problem. It receives named NumPy arrays
shaped ``(n_points, *shape)`` and returns named arrays of the same leading length. The
reference implementation is :class:`fe2hmm.micro.cells.diffusion.DiffusionCellModel`.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from fe2hmm.errors import MicroSolveError, at_point

__all__ = [
    "MicroModel",
    "LinearMicroModel",
    "LinearTask",
    "linear_outputs",
    "linear_output_bounds",
    "run_tasks",
    "StatefulMicroModel",
    "Stateful",
    "MicroResult",
    "MicroStatistics",
    "TaskBatch",
    "check_stateful",
]

_log = logging.getLogger(__name__)

Shape = tuple[int, ...]


@dataclass
class MicroResult:
    """What a micro-model returns for a batch of ``n`` points.

    Attributes:
        outputs: output name -> array ``(n, *output_shape)``.
        tangents: ``(output, input)`` -> ∂output/∂input, array ``(n, *output_shape, *input_shape)``.
            Empty when tangents were not requested.
        standard_errors: output name -> statistical standard error ``(n, *output_shape)``, for
            stochastic models; empty for deterministic ones.
        error_bounds: output name -> estimated bound ``(n,)`` of the output's error (2-norm)
            against a real micro solve, where a surrogate served it (0 where a real solve did);
            empty when no surrogate is involved.
        tensor_errors: linear models served by a surrogate: bound ``(n,)`` of the max-entry
            error of the tensors (``error_bounds`` follow from it and the inputs); else None.
    """

    outputs: dict[str, np.ndarray]
    tangents: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    standard_errors: dict[str, np.ndarray] = field(default_factory=dict)
    error_bounds: dict[str, np.ndarray] = field(default_factory=dict)
    tensor_errors: np.ndarray | None = None


@dataclass
class MicroStatistics:
    """Counters of a micro-model and of the reuse wrappers around it (rank-local).

    A stack of reuse wrappers shares one object (:class:`fe2hmm.reuse.ReuseWrapper`): each
    layer counts what it does, so the counters describe the whole stack. A *request* is one
    micro problem asked for after exact dedupe (:class:`fe2hmm.reuse.Dedupe`; without it,
    one per point). Every request is answered exactly without a solve (an identical request
    remembered by ``Dedupe``, or a model's own exact shortcut such as the elastic predictor of
    plastic cells), by the persistent cache, by a surrogate, or by a real solve;
    ``micro_solves`` also counts a surrogate's training solves at values nobody asked for.

    Attributes:
        points_requested: quadrature-point evaluations asked of the outermost layer.
        micro_requests: distinct micro problems asked for (after exact dedupe).
        exact_reuse_hits: requests answered exactly without a solve (see above).
        cache_hits: requests served by the persistent cache.
        surrogate_hits: requests served by a surrogate within its tolerance.
        micro_solves: real micro problems solved (cell solves, simulations).
        seconds: wall time inside real micro solves (s).
        reuse_seconds: wall time in dedupe, cache look-ups and surrogate predictions (s).
    """

    points_requested: int = 0
    micro_requests: int = 0
    exact_reuse_hits: int = 0
    cache_hits: int = 0
    surrogate_hits: int = 0
    micro_solves: int = 0
    seconds: float = 0.0
    reuse_seconds: float = 0.0

    def as_dict(self) -> dict:
        """Return the counters as a plain dict (for JSON reports)."""
        return dict(self.__dict__)

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The counters as named 0-d arrays (``statistics.<name>``, for checkpoints)."""
        return {f"statistics.{k}": np.asarray(v) for k, v in self.__dict__.items()}

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Set the counters from :meth:`checkpoint_state`'s arrays (missing ones unchanged)."""
        for k, v in self.__dict__.items():
            if f"statistics.{k}" in state:
                setattr(self, k, type(v)(state[f"statistics.{k}"][()]))

    def summary(self) -> str:
        """One line: points, requests, served by cache/surrogate, solved, time split."""
        return (
            f"{self.points_requested} points, {self.micro_requests} distinct requests: "
            f"{self.exact_reuse_hits} exact without a solve, {self.cache_hits} from cache, "
            f"{self.surrogate_hits} from surrogate, "
            f"{self.micro_solves} micro solves ({self.seconds:.2f} s solving, "
            f"{self.reuse_seconds:.2f} s reuse overhead)"
        )


@dataclass
class TaskBatch:
    """A batch split into independent micro solves, for pooled scheduling.

    Attributes:
        tasks: picklable task objects, each with an integer ``point`` (index in the batch; the
            points of one round are distinct) and optionally ``key`` (bytes: tasks of any rank
            with equal keys are one micro problem, solved once by the pooled scheduler);
            :meth:`MicroModel.solve_task` solves one on any rank.
        finish: called on the owning rank with ``{point: result}`` of all tasks; returns the
            batch's :class:`MicroResult` (points without a task were answered locally), or a
            further :class:`TaskBatch` when the answer needs another round of solves (adaptive
            surrogate training); see :func:`run_tasks`.
    """

    tasks: list
    finish: Callable[[dict], MicroResult | TaskBatch]


class Stateful(abc.ABC):
    """Committed and trial state: the history protocol of micro-models and evolving fields.

    Evaluations start from the *committed* state and keep what they computed as the *trial*
    state; nothing but :meth:`commit` changes the committed state. The macro solvers call it:
    :func:`fe2hmm.newton.solve_incrementally` and :func:`fe2hmm.timestepping.march` commit
    after a converged step and roll back before a failed step is cut or raised.
    """

    @abc.abstractmethod
    def commit(self) -> None:
        """Accept the trial state of the last evaluation as the committed state."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Discard the trial state; the next evaluation starts from the committed state."""

    @property
    def supports_checkpoints(self) -> bool:
        """Whether :meth:`checkpoint_state` and :meth:`restore_state` are implemented."""
        return type(self).checkpoint_state is not Stateful.checkpoint_state

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The committed state as named arrays, all a restarted run needs to continue bitwise.

        Written by :class:`fe2hmm.checkpoint.Checkpoint`.

        Raises:
            NotImplementedError: the class does not support checkpoints.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints")

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Make ``state`` (from :meth:`checkpoint_state`) the committed state; no trial state.

        Raises:
            NotImplementedError: the class does not support checkpoints.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints")


def check_stateful(histories) -> list[Stateful]:
    """Check that every object follows the :class:`Stateful` protocol.

    Args:
        histories: the objects a solver commits and rolls back.

    Returns:
        The objects as a list.

    Raises:
        TypeError: naming the first object that is not :class:`Stateful`.
    """
    histories = list(histories)
    for i, h in enumerate(histories):
        if not isinstance(h, Stateful):
            raise TypeError(
                f"histories[{i}] is a {type(h).__name__}, not a fe2hmm Stateful (a micro-model "
                "or state with commit() and rollback(), e.g. a StatefulMicroModel)"
            )
    return histories


class MicroModel(abc.ABC):
    """Abstract micro-model: a batch function ``(inputs, parameters) -> outputs (+ tangents)``.

    Subclasses declare the names and per-point shapes of their inputs, outputs and parameters
    (and, where not every output depends on every input, the :attr:`tangent_blocks` they
    return), and implement :meth:`evaluate`. They must not keep one Python object per point.
    Models with history derive from :class:`StatefulMicroModel`; stochastic models set
    :attr:`is_stochastic` and return ``standard_errors`` of every output.
    """

    #: True when outputs are linear in the inputs (an effective tensor per microstructure).
    is_linear: bool = False
    #: True when outputs carry statistical noise: :meth:`evaluate` then returns
    #: ``standard_errors`` of every output, which closures write beside the outputs.
    is_stochastic: bool = False
    #: Whether the model may use its documented exact shortcuts — answers that are exact
    #: without a micro solve, such as the elastic predictor of plastic cells (counted in
    #: ``statistics.exact_reuse_hits``). ``model.exact_shortcuts = False`` gives the naive
    #: baseline: every request is a solve.
    exact_shortcuts: bool = True

    def __init__(self) -> None:
        self.statistics = MicroStatistics()

    @property
    @abc.abstractmethod
    def input_shapes(self) -> dict[str, Shape]:
        """Input name -> per-point shape, e.g. ``{"gradient": (2,)}``."""

    @property
    @abc.abstractmethod
    def output_shapes(self) -> dict[str, Shape]:
        """Output name -> per-point shape, e.g. ``{"flux": (2,)}``."""

    @property
    def parameter_shapes(self) -> dict[str, Shape]:
        """Per-point parameter name -> shape, e.g. ``{"volume_fraction": ()}``. Default none."""
        return {}

    @property
    def tangent_blocks(self) -> list[tuple[str, str]]:
        """The ``(output, input)`` tangent blocks :meth:`evaluate` returns with ``tangents=True``.

        Default: every pair. A closure allocates quadrature functions for these blocks only,
        and a missing or misshapen declared block is an error naming it.
        """
        return [(o, i) for o in self.output_shapes for i in self.input_shapes]

    def cache_identity(self) -> dict:
        """Everything besides the request (parameters, inputs) that determines the answer.

        Models usable with :class:`fe2hmm.reuse.Cache` return a JSON-serialisable dict (model
        name and version, geometry generator, materials, resolution, boundary condition, …).

        Raises:
            NotImplementedError: the model defines none (the default).
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a cache identity")

    @property
    def is_stateful(self) -> bool:
        """Whether the model has history (follows the :class:`Stateful` protocol)."""
        return isinstance(self, Stateful)

    @abc.abstractmethod
    def evaluate(
        self,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, np.ndarray],
        *,
        tangents: bool = True,
    ) -> MicroResult:
        """Evaluate the micro-model at a batch of points.

        Args:
            inputs: input name -> array ``(n, *input_shape)``.
            parameters: parameter name -> array ``(n, *parameter_shape)``.
            tangents: also return ∂output/∂input.

        Returns:
            The outputs (and tangents) for all ``n`` points.

        Raises:
            MicroSolveError: a micro solve failed; ``point`` is the index in this batch.
        """

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """Split a batch into independent tasks (optional; enables pooled scheduling).

        Models with per-point state implement this with :meth:`solve_task`; the default raises
        ``NotImplementedError``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not split into micro tasks")

    def solve_task(self, task):
        """Solve one task of :meth:`micro_tasks` (may run on another rank)."""
        raise NotImplementedError(f"{type(self).__name__} does not split into micro tasks")

    @property
    def splits_into_tasks(self) -> bool:
        """Whether :meth:`micro_tasks` is implemented (pooled and serial scheduling need it)."""
        return type(self).micro_tasks is not MicroModel.micro_tasks

    def check_batch(self, inputs: dict[str, np.ndarray], parameters: dict[str, np.ndarray]) -> int:
        """Validate names and shapes of a batch and return its number of points.

        Raises:
            ValueError: on missing/unknown names, wrong shapes, inconsistent lengths or
                non-finite values.
        """
        n = None
        for kind, given, declared in (
            ("input", inputs, self.input_shapes),
            ("parameter", parameters, self.parameter_shapes),
        ):
            missing = set(declared) - set(given)
            extra = set(given) - set(declared)
            if missing or extra:
                raise ValueError(
                    f"{type(self).__name__} expects {kind}s {sorted(declared)}, got {sorted(given)}"
                )
            for name, shape in declared.items():
                arr = np.asarray(given[name])
                if arr.shape[1:] != tuple(shape):
                    raise ValueError(
                        f"{kind} {name!r} must have shape {('n', *shape)}, got {arr.shape}"
                    )
                if n is None:
                    n = arr.shape[0]
                elif arr.shape[0] != n:
                    raise ValueError(
                        f"{kind} {name!r} has {arr.shape[0]} points, expected {n} like the others"
                    )
                bad = ~np.isfinite(arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))).all(
                    axis=1
                )
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise MicroSolveError(
                        f"non-finite {kind} {name!r} = {arr[i]!r} passed to {type(self).__name__}",
                        point=i,
                    )
        return 0 if n is None else int(n)


class StatefulMicroModel(MicroModel, Stateful):
    """A micro-model with history (plastic cells, micro-transient cells).

    :meth:`evaluate` works from the committed history of every point and keeps the result as
    the trial state; :meth:`commit` and :meth:`rollback` (see :class:`Stateful`) accept or
    discard it. Reuse by input alone is not exact for such models: the reuse wrappers refuse
    them, and exact shortcuts that know the history belong to the model itself (e.g. the
    elastic predictor of :class:`~fe2hmm.micro.cells.plasticity.PlasticCellModel`).
    """


@dataclass
class LinearTask:
    """One effective-tensor solve of a :class:`LinearMicroModel` (picklable).

    Attributes:
        point: index in the batch.
        parameters: the point's parameters, name -> array of the declared shape.
        key: bytes identifying the request; tasks with equal keys are solved once when the
            pooled scheduler deduplicates across ranks.
    """

    point: int
    parameters: dict
    key: bytes


def linear_output_bounds(
    tensor_errors: np.ndarray,
    inputs: dict[str, np.ndarray],
    output_shapes: dict[str, Shape],
    tangent_blocks: list[tuple[str, str]],
) -> dict[str, np.ndarray]:
    """Output error bounds ``(n,)`` from a bound on the tensors' max entry ``(n,)``.

    ``|ΔT x| <= |ΔT|_F |x| <= sqrt(size(T)) max|ΔT_ij| |x|``, summed over the inputs.
    """
    n = tensor_errors.shape[0]
    bounds = {}
    for out, inp in tangent_blocks:
        osize = int(np.prod(output_shapes[out], dtype=int))
        x = np.asarray(inputs[inp], dtype=float)
        x = x.reshape(n, int(np.prod(x.shape[1:], dtype=int)))
        bound = np.sqrt(osize * x.shape[1]) * tensor_errors * np.linalg.norm(x, axis=1)
        bounds[out] = bounds.get(out, 0.0) + bound
    return bounds


def linear_outputs(
    tensors: dict[tuple[str, str], np.ndarray],
    inputs: dict[str, np.ndarray],
    output_shapes: dict[str, Shape],
) -> dict[str, np.ndarray]:
    """Outputs ``Σ_in T[out, in] · in`` of a linear model at ``n`` points.

    Args:
        tensors: ``(output, input)`` -> ``(n, *output_shape, *input_shape)``.
        inputs: input name -> ``(n, *input_shape)``.
        output_shapes: output name -> per-point shape.

    Returns:
        Output name -> ``(n, *output_shape)``.
    """
    n = next(iter(inputs.values())).shape[0] if inputs else 0
    outputs = {}
    for out, oshape in output_shapes.items():
        value = np.zeros((n, *oshape))
        for (o, inp), t in tensors.items():
            if o != out:
                continue
            t = np.asarray(t)
            isize = int(np.prod(t.shape[1 + len(oshape) :], dtype=int))
            x = np.asarray(inputs[inp], dtype=float).reshape(n, isize)
            tm = t.reshape(n, int(np.prod(oshape, dtype=int)), isize)
            value += np.einsum("nij,nj->ni", tm, x).reshape(n, *oshape)
        outputs[out] = value
    return outputs


class LinearMicroModel(MicroModel):
    """A micro-model whose outputs are linear in its inputs: ``out = Σ_in T[out, in] · in``.

    Only :meth:`effective_tensors` (one microstructure at a time) needs implementing. Every
    point is one task (:meth:`micro_tasks`): without a reuse wrapper every point of every
    evaluation is one micro solve — the naive FE² baseline. Wrap the model in
    :class:`fe2hmm.reuse.Dedupe` to solve each distinct parameter set once (and remember it
    across evaluations), in :class:`fe2hmm.reuse.Cache` to keep tensors on disk; the tangents
    of a linear model are its tensors.
    """

    is_linear = True

    @abc.abstractmethod
    def effective_tensors(
        self, parameters: dict[str, np.ndarray]
    ) -> dict[tuple[str, str], np.ndarray]:
        """Solve the micro problem for ONE set of parameters.

        Args:
            parameters: name -> array of the declared parameter shape (no leading point axis).

        Returns:
            ``(output, input)`` -> tensor of shape ``(*output_shape, *input_shape)``.
        """

    def solve_tensors(self, parameters: dict, point: int = 0) -> dict[tuple[str, str], np.ndarray]:
        """One real micro solve, counted in :attr:`statistics`, failures naming ``point``.

        Args:
            parameters: one parameter set (declared shapes).
            point: index of the requesting point (for the error message).

        Raises:
            MicroSolveError: the solve failed or returned non-finite tensors.
        """
        t0 = time.perf_counter()
        try:
            tensors = self.effective_tensors(parameters)
        except MicroSolveError as err:
            raise MicroSolveError(str(err.args[0]), point=point, parameters=parameters) from err
        except (ValueError, RuntimeError, ArithmeticError) as err:
            raise MicroSolveError(
                f"{type(self).__name__} failed: {err}", point=point, parameters=parameters
            ) from err
        self.statistics.seconds += time.perf_counter() - t0
        self.statistics.micro_solves += 1
        for key, tensor in tensors.items():
            if not np.all(np.isfinite(tensor)):
                raise MicroSolveError(
                    f"{type(self).__name__} returned a non-finite tensor {key}",
                    point=point,
                    parameters=parameters,
                )
        return tensors

    def parameter_rows(self, parameters: dict[str, np.ndarray], n: int) -> np.ndarray:
        """The per-point parameters as rows ``(n, k)``: names sorted, each flattened."""
        names = sorted(self.parameter_shapes)
        if not names:
            return np.zeros((n, 0))
        return np.concatenate(
            [
                np.asarray(parameters[k], dtype=float).reshape(
                    n, int(np.prod(self.parameter_shapes[k], dtype=int))
                )
                for k in names
            ],
            axis=1,
        )

    def row_parameters(self, row: np.ndarray) -> dict[str, np.ndarray]:
        """One row of :meth:`parameter_rows` back as name -> array of the declared shape."""
        out, offset = {}, 0
        for k in sorted(self.parameter_shapes):
            shape = tuple(self.parameter_shapes[k])
            size = int(np.prod(shape, dtype=int))
            out[k] = np.asarray(row[offset : offset + size], dtype=float).reshape(shape)
            offset += size
        return out

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """One :class:`LinearTask` per point; ``finish`` contracts the tensors with the inputs."""
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        rows = self.parameter_rows(parameters, n)
        tasks = [LinearTask(i, self.row_parameters(rows[i]), rows[i].tobytes()) for i in range(n)]
        blocks = self.tangent_blocks

        def finish(results: dict) -> MicroResult:
            tensors = {
                key: np.stack([np.asarray(results[i][key]) for i in range(n)])
                if n
                else np.empty((0, *self.output_shapes[key[0]], *self.input_shapes[key[1]]))
                for key in blocks
            }
            outputs = linear_outputs(tensors, inputs, self.output_shapes)
            return MicroResult(outputs, tensors if tangents else {})

        return TaskBatch(tasks, finish)

    def solve_task(self, task: LinearTask) -> dict[tuple[str, str], np.ndarray]:
        """The tensors of one task (may run on another rank)."""
        return self.solve_tensors(task.parameters, task.point)

    def evaluate(self, inputs, parameters, *, tangents=True) -> MicroResult:
        """Outputs ``Σ_in T·input`` (and the tensors as tangents): one solve per point.

        Args:
            inputs: input name -> ``(n, *input_shape)``.
            parameters: parameter name -> ``(n, *parameter_shape)``.
            tangents: also return the tensors as tangents.
        """
        return run_tasks(self, self.micro_tasks(inputs, parameters, tangents=tangents))


def run_tasks(model: MicroModel, batch: TaskBatch) -> MicroResult:
    """Solve a :class:`TaskBatch` on this rank (every round) and return its result.

    Args:
        model: the model whose :meth:`~MicroModel.solve_task` solves the tasks.
        batch: from ``model.micro_tasks``.
    """
    from fe2hmm.progress import progress

    while True:
        results = {}
        for task in progress(batch.tasks, desc=type(model).__name__):
            with at_point(task.point):
                results[task.point] = model.solve_task(task)
        answer = batch.finish(results)
        if isinstance(answer, MicroResult):
            return answer
        batch = answer
