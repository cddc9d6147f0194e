"""The micro-model contract: batched maps from macro inputs and per-point parameters to outputs.

A micro-model never sees dolfinx objects of the macro problem. It receives named NumPy arrays
shaped ``(n_points, *shape)`` and returns named arrays of the same leading length. The
reference implementation is :class:`fe2hmm.micro.cells.diffusion.DiffusionCellModel`.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fe2hmm.errors import MicroSolveError

__all__ = [
    "MicroModel",
    "LinearMicroModel",
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
    """

    outputs: dict[str, np.ndarray]
    tangents: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    standard_errors: dict[str, np.ndarray] = field(default_factory=dict)
    error_bounds: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class MicroStatistics:
    """Counters a micro-model keeps over its lifetime (rank-local).

    A *request* is one distinct micro problem asked for after exact dedupe (one per distinct
    parameter set for linear models; one per point otherwise). Every request is served by the
    persistent cache, by the surrogate, or by a real solve; ``micro_solves`` also counts the
    surrogate's training solves at parameter values nobody asked for.

    Attributes:
        points_requested: quadrature-point evaluations asked for.
        micro_requests: distinct micro problems asked for (after exact dedupe).
        exact_reuse_hits: requests answered exactly without a solve by a model's own exact
            shortcut (e.g. the elastic predictor of plastic cells).
        cache_hits: requests served by the persistent cache.
        surrogate_hits: requests served by the surrogate within its tolerance.
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

    def summary(self) -> str:
        """One line: points, requests, served by cache/surrogate, solved, time split."""
        return (
            f"{self.points_requested} points, {self.micro_requests} distinct requests: "
            f"{self.exact_reuse_hits} exact shortcuts, {self.cache_hits} from cache, "
            f"{self.surrogate_hits} from surrogate, "
            f"{self.micro_solves} micro solves ({self.seconds:.2f} s solving, "
            f"{self.reuse_seconds:.2f} s reuse overhead)"
        )


@dataclass
class TaskBatch:
    """A batch split into independent micro solves, for pooled scheduling.

    Attributes:
        tasks: picklable task objects, each with an integer ``point`` (index in the batch);
            :meth:`MicroModel.solve_task` solves one on any rank.
        finish: called on the owning rank with ``{point: result}`` of all tasks; returns the
            batch's :class:`MicroResult` (points without a task were answered locally).
    """

    tasks: list
    finish: Callable[[dict], MicroResult]


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


class LinearMicroModel(MicroModel):
    """A micro-model whose outputs are linear in its inputs: ``out = Σ_in T[out, in] · in``.

    Only :meth:`effective_tensors` (one microstructure at a time) needs implementing. Points
    whose parameters agree within :attr:`parameter_tolerance` share one micro solve.

    Args:
        parameter_tolerance: absolute tolerance under which two parameter sets are identical.
            ``0`` (default) means bitwise-equal values only. With a positive tolerance the values
            are binned to multiples of it, and every point of a bin uses the tensor computed at
            the first point of that bin: the error this adds is bounded by the tensor's
            variation over one bin width.
        reuse: ``False`` switches every reuse off — no dedupe, no tensors kept across closure
            updates: one micro solve per point per update (the naive FE² baseline of the
            benchmarks).
    """

    is_linear = True

    def __init__(self, parameter_tolerance: float = 0.0, reuse: bool = True) -> None:
        super().__init__()
        if not (parameter_tolerance >= 0.0 and np.isfinite(parameter_tolerance)):
            raise ValueError(
                f"parameter_tolerance must be a finite number >= 0, got {parameter_tolerance!r}"
            )
        self.parameter_tolerance = float(parameter_tolerance)
        self.reuse = bool(reuse)
        self.cache = None
        self.surrogate = None
        self._surrogate_layout: dict = {}
        #: per-point bound ``(n,)`` of the max-entry error of the tensors of the last
        #: :meth:`tensors` call (None without a surrogate)
        self.last_tensor_errors: np.ndarray | None = None

    def cache_identity(self) -> dict:
        """Everything besides the per-point parameters that determines the tensors.

        Subclasses that support :meth:`enable_cache` return a JSON-serialisable dict (model
        name and version, geometry generator, materials, resolution, boundary condition, …).
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a cache identity")

    def enable_cache(self, directory) -> None:
        """Keep effective tensors in a persistent on-disk cache (see :mod:`fe2hmm.reuse.cache`).

        Args:
            directory: cache directory; entries are keyed by :meth:`cache_identity` and the
                parameters, so a change of either never returns a stale tensor.
        """
        from fe2hmm.reuse.cache import PersistentCache

        self.cache = PersistentCache(directory, self.cache_identity())

    def enable_surrogate(self, tolerance: float = 1e-3, min_spacing: float | None = None):
        """Serve tensors from an error-controlled interpolant over the (one, scalar) parameter.

        See :mod:`fe2hmm.reuse.surrogate`: a request is served by the interpolant when its
        error estimate (relative to the largest tensor entry) is below ``tolerance``; otherwise
        real micro solves refine it. Real solves still go through the persistent cache.

        Args:
            tolerance: relative error tolerance of the served tensors, > 0.
            min_spacing: smallest parameter spacing the refinement may create.

        Returns:
            The :class:`~fe2hmm.reuse.surrogate.ParameterSurrogate` (also ``self.surrogate``).

        Raises:
            ValueError: the model does not have exactly one scalar parameter.
        """
        from fe2hmm.reuse.surrogate import ParameterSurrogate

        shapes = self.parameter_shapes
        if len(shapes) != 1 or any(int(np.prod(sh, dtype=int)) != 1 for sh in shapes.values()):
            raise ValueError(
                f"the surrogate interpolates over one scalar parameter; {type(self).__name__} "
                f"has parameters {dict(shapes)}"
            )
        self.surrogate = ParameterSurrogate(tolerance, min_spacing)
        return self.surrogate

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

    def _solve(self, point_parameters: dict, point: int) -> dict[tuple[str, str], np.ndarray]:
        """One real micro solve (through the persistent cache), with statistics and checks."""
        if self.cache is not None:
            cached = self.cache.get(point_parameters)
            if cached is not None:
                self.statistics.cache_hits += 1
                return {tuple(flat.split("|")): t for flat, t in cached.items()}
        t0 = time.perf_counter()
        try:
            tensors = self.effective_tensors(point_parameters)
        except MicroSolveError as err:
            raise MicroSolveError(
                str(err.args[0]), point=point, parameters=point_parameters
            ) from err
        except (ValueError, RuntimeError, ArithmeticError) as err:
            raise MicroSolveError(
                f"{type(self).__name__} failed: {err}", point=point, parameters=point_parameters
            ) from err
        self.statistics.seconds += time.perf_counter() - t0
        self.statistics.micro_solves += 1
        for key, tensor in tensors.items():
            if not np.all(np.isfinite(tensor)):
                raise MicroSolveError(
                    f"{type(self).__name__} returned a non-finite tensor {key}",
                    point=point,
                    parameters=point_parameters,
                )
        if self.cache is not None:
            self.cache.put(point_parameters, {"|".join(k): t for k, t in tensors.items()})
        return tensors

    def tensors(
        self, parameters: dict[str, np.ndarray], n: int
    ) -> dict[tuple[str, str], np.ndarray]:
        """Effective tensors at ``n`` points, one micro solve per distinct parameter set.

        Distinct sets are served by the persistent cache, then by the surrogate (if enabled),
        then by real micro solves, in that order; see :attr:`statistics`.

        Args:
            parameters: name -> ``(n, *shape)``.
            n: number of points.

        Returns:
            ``(output, input)`` -> ``(n, *output_shape, *input_shape)``.

        Raises:
            MicroSolveError: naming the first point that uses the failed parameter set.
        """
        from fe2hmm.progress import progress

        t_start = time.perf_counter()
        solve_seconds = self.statistics.seconds
        names = sorted(self.parameter_shapes)
        rows = self.parameter_rows(parameters, n)
        if not self.reuse:
            first, inverse = np.arange(n), np.arange(n)
        else:
            keys = self.dedupe_keys(rows)
            _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
        self.statistics.micro_requests += len(first)

        def point_parameters(i: int) -> dict:
            return {k: np.asarray(parameters[k])[i] for k in names}

        per_set: list[dict] = []
        self.last_tensor_errors = None
        if self.surrogate is not None and self.reuse and len(first):
            values = rows[first, 0]
            nearest = {float(v): int(i) for v, i in zip(values, first, strict=True)}

            def solve(p: float) -> dict:
                point = nearest.get(p, int(first[np.argmin(np.abs(values - p))]))
                return self._solve(self.row_parameters(np.array([p])), point)

            per_set, errors = self.serve_by_surrogate(values, solve)
            self.last_tensor_errors = errors[inverse]
        else:
            for i in progress(first, desc=type(self).__name__):
                per_set.append(self._solve(point_parameters(int(i)), int(i)))
        result = (
            {key: np.stack([tensors[key] for tensors in per_set]) for key in per_set[0]}
            if per_set
            else {}
        )
        self.statistics.reuse_seconds += (time.perf_counter() - t_start) - (
            self.statistics.seconds - solve_seconds
        )
        _log.debug("%s: %d points, %d distinct requests", type(self).__name__, n, len(first))
        return {key: value[inverse] for key, value in result.items()}

    def parameter_rows(self, parameters: dict[str, np.ndarray], n: int) -> np.ndarray:
        """The per-point parameters as rows ``(n, k)``: names sorted, each flattened."""
        names = sorted(self.parameter_shapes)
        if not names:
            return np.zeros((n, 0))
        return np.concatenate(
            [np.asarray(parameters[k], dtype=float).reshape(n, -1) for k in names], axis=1
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

    def dedupe_keys(self, rows: np.ndarray) -> np.ndarray:
        """Keys under which rows count as identical (bitwise, or binned by the tolerance)."""
        if self.parameter_tolerance == 0.0:
            return rows
        return np.round(rows / self.parameter_tolerance)

    def serve_by_surrogate(
        self, values: np.ndarray, solve: Callable[[float], dict]
    ) -> tuple[list[dict], np.ndarray]:
        """Tensors of the distinct parameter values ``values`` from the surrogate.

        Args:
            values: distinct values of the (one, scalar) parameter ``(m,)``.
            solve: real micro solve ``p -> {(output, input): tensor}`` used for training (local,
                or collective under a pooled scheduler).

        Returns:
            ``(tensors per value, per-value bound of the max-entry error (0 where solved))``.
        """
        layout: dict = dict(self._surrogate_layout)

        def solve_flat(p: float) -> np.ndarray:
            tensors = solve(p)
            if not layout:
                layout.update({key: np.shape(t) for key, t in tensors.items()})
            return np.concatenate([np.ravel(tensors[key]) for key in layout])

        known = self.surrogate.nodes.copy()
        flat, estimates, solved = self.surrogate.serve(values, solve_flat)
        self._surrogate_layout = dict(layout)
        # served without a solve in this call: interpolated, or a node trained earlier
        self.statistics.surrogate_hits += int((~solved | np.isin(values, known)).sum())
        per_set = []
        for row in flat:
            entry, offset = {}, 0
            for key, sh in layout.items():
                size = int(np.prod(sh, dtype=int))
                entry[key] = row[offset : offset + size].reshape(sh)
                offset += size
            per_set.append(entry)
        scale = float(np.abs(self.surrogate.values).max())
        return per_set, np.where(solved, 0.0, estimates * scale)

    def evaluate(
        self,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, np.ndarray],
        *,
        tangents: bool = True,
        tensors: dict[tuple[str, str], np.ndarray] | None = None,
        tensor_errors: np.ndarray | None = None,
    ) -> MicroResult:
        """Outputs ``Σ_in T·input`` with one solve per distinct parameter set.

        Args:
            inputs: input name -> ``(n, *input_shape)``.
            parameters: parameter name -> ``(n, *parameter_shape)``.
            tangents: also return the tensors as tangents.
            tensors: precomputed tensors from :meth:`tensors` (skips the micro solves).
            tensor_errors: per-point bound ``(n,)`` of the tensors' max-entry error (from a
                surrogate); turned into ``error_bounds`` of the outputs.

        Returns:
            Outputs and (optionally) tangents for all points.
        """
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        if tensors is None:
            tensors = self.tensors(parameters, n)
            tensor_errors = self.last_tensor_errors
        outputs, bounds = {}, {}
        for out, oshape in self.output_shapes.items():
            value = np.zeros((n, *oshape))
            for inp in self.input_shapes:
                t = tensors.get((out, inp))
                if t is None:
                    continue
                x = np.asarray(inputs[inp], dtype=float).reshape(n, -1)
                tm = t.reshape(n, int(np.prod(oshape, dtype=int)), x.shape[1])
                value += np.einsum("nij,nj->ni", tm, x).reshape(n, *oshape)
                if tensor_errors is not None:
                    # |ΔT x| <= |ΔT|_F |x| <= sqrt(size) max|ΔT_ij| |x|
                    bound = np.sqrt(tm.shape[1] * tm.shape[2]) * tensor_errors
                    bounds[out] = bounds.get(out, 0.0) + bound * np.linalg.norm(x, axis=1)
            outputs[out] = value
        return MicroResult(
            outputs=outputs, tangents=dict(tensors) if tangents else {}, error_bounds=bounds
        )
