"""Surrogate wrappers: answers interpolated from real micro solves, with error estimates.

- :class:`ParameterSurrogateModel`: a linear micro-model's tensors ``T(p)`` over its one scalar
  parameter from the error-controlled :class:`~fe2hmm.reuse.surrogate.ParameterSurrogate`;
- :class:`ScalarSurrogateModel`: a nonlinear scalar closure ``ω(u)`` over its scalar input from
  the :class:`~fe2hmm.reuse.surrogate.HermiteSurrogate`, with a predictive indicator that
  tightens the tolerance where the tangent ``ω'(u)`` nears a sign change.

Both train with real solves of the inner model (through the rest of the stack, so a
:class:`~fe2hmm.reuse.cache.Cache` below serves training solves too). Training is adaptive and
sequential, so it runs on the rank that asks; under a pooled scheduler the surrogate's rank
answers its points without handing out tasks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import numpy as np

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import (
    MicroModel,
    MicroResult,
    TaskBatch,
    linear_output_bounds,
    linear_outputs,
    run_tasks,
)
from fe2hmm.reuse.indicators import tangent_sign_indicator
from fe2hmm.reuse.surrogate import HermiteSurrogate, ParameterSurrogate
from fe2hmm.reuse.wrapper import ReuseWrapper

__all__ = ["ParameterSurrogateModel", "ScalarSurrogateModel"]


class ParameterSurrogateModel(ReuseWrapper):
    """Serve a linear micro-model's tensors from an interpolant over its scalar parameter.

    A request is served by the interpolant when its error estimate (relative to the largest
    tensor entry) is below ``tolerance``; otherwise real micro solves refine it (see
    :mod:`fe2hmm.reuse.surrogate`). Outputs carry ``error_bounds`` (and ``tensor_errors``).

    Args:
        model: a linear micro-model with exactly one scalar parameter.
        tolerance: relative error tolerance of the served tensors, > 0.
        min_spacing: smallest parameter spacing the refinement may create.
        initial_nodes: parameter values trained up front (e.g. the ends and the middle of an
            admissible interval, so that a slowly growing state does not extend the trained
            interval one solve at a time).

    Attributes:
        surrogate: the :class:`~fe2hmm.reuse.surrogate.ParameterSurrogate`.

    Raises:
        TypeError: ``model`` is not linear (or is stochastic or stateful).
        ValueError: ``model`` does not have exactly one scalar parameter; bad tolerances.
    """

    def __init__(
        self,
        model: MicroModel,
        tolerance: float = 1e-3,
        min_spacing: float | None = None,
        initial_nodes: Sequence[float] = (),
    ) -> None:
        super().__init__(model)
        if not model.is_linear:
            raise TypeError(
                f"ParameterSurrogateModel interpolates the tensors of a linear model; "
                f"{type(model).__name__} is not linear (see ScalarSurrogateModel)"
            )
        shapes = model.parameter_shapes
        if len(shapes) != 1 or any(int(np.prod(sh, dtype=int)) != 1 for sh in shapes.values()):
            raise ValueError(
                f"the surrogate interpolates over one scalar parameter; {type(model).__name__} "
                f"has parameters {dict(shapes)}"
            )
        (self._parameter,) = shapes
        self.surrogate = ParameterSurrogate(tolerance, min_spacing)
        self._layout: dict = {}
        nodes = np.asarray(initial_nodes, dtype=float).reshape(-1)
        if nodes.size:
            self.serve(nodes)

    def _solve_flat(self, p: float, point: int) -> np.ndarray:
        """One real solve of the rest of the stack at parameter ``p`` (flattened tensors)."""
        inputs = {k: np.zeros((1, *s)) for k, s in self.input_shapes.items()}
        shape = self.parameter_shapes[self._parameter]
        batch = self.forward(inputs, {self._parameter: np.full((1, *shape), p)}, [point], True)
        try:
            tensors = run_tasks(self.inner, batch).tangents
        except MicroSolveError as err:
            raise MicroSolveError(
                f"surrogate training solve at {self._parameter}={p!r} failed: {err.message}",
                point=err.point,
                parameters={self._parameter: p},
            ) from err
        if not self._layout:
            self._layout.update({key: np.shape(t)[1:] for key, t in tensors.items()})
        return np.concatenate([np.ravel(tensors[key][0]) for key in self._layout])

    def serve(self, values: np.ndarray, points: np.ndarray | None = None):
        """Tensors at distinct parameter values, training where needed.

        Args:
            values: distinct parameter values ``(m,)``.
            points: the batch point asking for each value (for failure messages).

        Returns:
            ``(tensors {(out, in): (m, ...)}, tensor error bounds (m,) (0 where solved))``.
        """
        values = np.asarray(values, dtype=float).reshape(-1)
        points = np.zeros(values.size, dtype=int) if points is None else np.asarray(points)
        nearest = {float(v): int(i) for v, i in zip(values, points, strict=True)}

        def solve(p: float) -> np.ndarray:
            point = nearest.get(p, int(points[np.argmin(np.abs(values - p))]) if values.size else 0)
            return self._solve_flat(p, point)

        known = self.surrogate.nodes.copy()
        flat, estimates, solved = self.surrogate.serve(values, solve)
        self.statistics.surrogate_hits += int((~solved | np.isin(values, known)).sum())
        tensors, offset = {}, 0
        for key, shape in self._layout.items():
            size = int(np.prod(shape, dtype=int))
            tensors[key] = flat[:, offset : offset + size].reshape(values.size, *shape)
            offset += size
        scale = float(np.abs(self.surrogate.values).max()) if len(self.surrogate) else 0.0
        return tensors, np.where(solved, 0.0, estimates * scale)

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The trained nodes and tensors, their layout and the stack's counters (arrays)."""
        layout = [[list(key), [int(n) for n in shape]] for key, shape in self._layout.items()]
        return {
            "nodes": self.surrogate.nodes.copy(),
            "values": self.surrogate.values.copy(),
            "layout": np.asarray(json.dumps(layout)),
            **self.statistics.checkpoint_state(),
        }

    def restore_state(self, state) -> None:
        """Make the arrays of :meth:`checkpoint_state` the trained surrogate."""
        self.surrogate.nodes = np.asarray(state["nodes"], dtype=float).copy()
        self.surrogate.values = np.asarray(state["values"], dtype=float).copy()
        layout = json.loads(str(state["layout"][()]))
        self._layout = {tuple(key): tuple(shape) for key, shape in layout}
        self.statistics.restore_state(state)

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """Answer every point from the surrogate (training on this rank); no tasks."""
        n = self.check_batch(inputs, parameters)
        t0, solve_seconds = time.perf_counter(), self.statistics.seconds
        self.statistics.points_requested += n
        p = np.asarray(parameters[self._parameter], dtype=float).reshape(n)
        values, first, inverse = np.unique(p, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        self.statistics.micro_requests += values.size
        per_value, errors = self.serve(values, first)
        tensors = {
            key: t[inverse] if n else np.empty((0, *self._layout.get(key, ())))
            for key, t in per_value.items()
        }
        if not tensors:  # an empty batch before any training
            tensors = {
                (o, i): np.empty((0, *self.output_shapes[o], *self.input_shapes[i]))
                for o, i in self.tangent_blocks
            }
        tensor_errors = errors[inverse] if n else np.zeros(0)
        result = MicroResult(
            linear_outputs(tensors, inputs, self.output_shapes),
            tensors if tangents else {},
            error_bounds=linear_output_bounds(
                tensor_errors, inputs, self.output_shapes, self.tangent_blocks
            ),
            tensor_errors=tensor_errors,
        )
        self.statistics.reuse_seconds += (time.perf_counter() - t0) - (
            self.statistics.seconds - solve_seconds
        )
        return TaskBatch([], lambda _results: result)


class ScalarSurrogateModel(ReuseWrapper):
    """Serve a micro-model with one scalar input and one scalar output from a surrogate.

    Every request gets the cubic Hermite prediction of :class:`HermiteSurrogate` (value and the
    consistent tangent) when its error estimate is below the tolerance; otherwise the wrapped
    model is solved and the surrogate refined. Points whose predicted tangent indicator
    ``ι = ω'/max|ω'|`` is below ``critical`` (near or past a sign change of ``ω'``) get the
    tolerance divided by ``tighten``: the micro-solve density rises where the linearised macro
    problem may lose definiteness (see :mod:`fe2hmm.reuse.indicators`).

    Args:
        model: the wrapped micro-model (one scalar input, one scalar output, no parameters,
            returns its tangent).
        tolerance: relative tolerance (estimate / ``max |ω|`` over the nodes), > 0.
        critical: indicator threshold under which the tolerance is tightened.
        tighten: tolerance divisor at critical points, >= 1.
        min_spacing: smallest node spacing (see :class:`HermiteSurrogate`).

    Attributes:
        surrogate: the :class:`HermiteSurrogate`.
        indicator: ``ι`` at the points of the last evaluation ``(n,)``.
    """

    def __init__(
        self,
        model: MicroModel,
        tolerance: float = 1e-4,
        critical: float = 0.05,
        tighten: float = 100.0,
        min_spacing: float | None = None,
    ) -> None:
        super().__init__(model)
        ins, outs = dict(model.input_shapes), dict(model.output_shapes)
        if len(ins) != 1 or len(outs) != 1 or any(s != () for s in (*ins.values(), *outs.values())):
            raise ValueError(
                f"ScalarSurrogateModel needs one scalar input and one scalar output; "
                f"{type(model).__name__} has inputs {ins} and outputs {outs}"
            )
        if model.parameter_shapes:
            raise ValueError(
                f"ScalarSurrogateModel does not interpolate over parameters; "
                f"{type(model).__name__} has {dict(model.parameter_shapes)}"
            )
        if not (np.isfinite(tighten) and tighten >= 1.0):
            raise ValueError(f"tighten must be a finite number >= 1, got {tighten!r}")
        self.surrogate = HermiteSurrogate(tolerance, min_spacing)
        self.critical, self.tighten = float(critical), float(tighten)
        (self._input,) = ins
        (self._output,) = outs
        self.indicator = np.empty(0)

    def _solve(self, u: float, point: int) -> tuple[float, float]:
        """One real solve of the rest of the stack at input ``u``: ``(ω(u), ω'(u))``."""
        t0, solves = time.perf_counter(), self.statistics.micro_solves
        batch = self.forward({self._input: np.array([u])}, {}, [point], True)
        result = run_tasks(self.inner, batch)
        if self.statistics.micro_solves == solves:  # an inner model that counts nothing
            self.statistics.micro_solves += 1
            self.statistics.seconds += time.perf_counter() - t0
        value = float(result.outputs[self._output][0])
        slope = float(result.tangents[self._output, self._input][0])
        if not (np.isfinite(value) and np.isfinite(slope)):
            raise MicroSolveError(f"non-finite micro result at {self._input}={u!r}", point=point)
        return value, slope

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """Outputs, consistent tangents and error bounds at all points (trained here; no tasks)."""
        n = self.check_batch(inputs, parameters)
        t_start, solve_seconds = time.perf_counter(), self.statistics.seconds
        self.statistics.points_requested += n
        u_all = np.asarray(inputs[self._input], dtype=float)
        u, first, inverse = np.unique(u_all, return_index=True, return_inverse=True)
        self.statistics.micro_requests += u.size
        index = dict(zip(u.tolist(), first.tolist(), strict=True))

        def solve(x: float) -> tuple[float, float]:
            return self._solve(x, index.get(x, int(first[np.argmin(np.abs(u - x))])))

        known = self.surrogate.nodes.copy()
        tolerance = np.full(u.size, self.surrogate.tolerance)
        for _ in range(4):  # tighten until the indicator no longer changes the tolerances
            value, slope, estimate, solved = self.surrogate.serve(u, solve, tolerance)
            scale = float(np.abs(self.surrogate.slopes).max())
            iota = tangent_sign_indicator(slope, scale)
            wanted = np.where(
                np.abs(iota) < self.critical, self.surrogate.tolerance / self.tighten, tolerance
            )
            if np.array_equal(wanted, tolerance):
                break
            tolerance = np.minimum(tolerance, wanted)
        self.statistics.surrogate_hits += int((~solved | np.isin(u, known)).sum())
        self.indicator = iota[inverse.reshape(-1)]
        self.statistics.reuse_seconds += (time.perf_counter() - t_start) - (
            self.statistics.seconds - solve_seconds
        )
        bound = np.where(solved, 0.0, estimate) * float(np.abs(self.surrogate.values).max())
        inv = inverse.reshape(-1)
        result = MicroResult(
            {self._output: value[inv]},
            {(self._output, self._input): slope[inv]} if tangents else {},
            error_bounds={self._output: bound[inv]},
        )
        return TaskBatch([], lambda _results: result)
