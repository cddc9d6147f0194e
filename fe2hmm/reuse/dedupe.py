"""Exact dedupe: one micro solve per distinct request, remembered across evaluations.

For a linear micro-model a request is its parameter set (the tensors do not depend on the
inputs); for a nonlinear, stateless one it is the inputs together with the parameters. Points
whose requests agree — bitwise, or within ``tolerance`` — share one answer. A linear model's
tensors are remembered across evaluations (``memory``), so a closure updated at every Newton
iterate solves each microstructure once; for a nonlinear model memory is off by default (its
inputs change at every iterate).
"""

from __future__ import annotations

import time

import numpy as np

from fe2hmm.micro.interface import (
    MicroModel,
    MicroResult,
    TaskBatch,
    linear_output_bounds,
    linear_outputs,
)
from fe2hmm.reuse.wrapper import ReuseWrapper, then

__all__ = ["Dedupe", "request_rows"]


def request_rows(model: MicroModel, inputs: dict, parameters: dict, n: int) -> np.ndarray:
    """The rows ``(n, k)`` that identify each point's request.

    Parameters (names sorted, flattened) for a linear model; inputs then parameters otherwise.
    """
    names = [("p", k) for k in sorted(model.parameter_shapes)]
    if not model.is_linear:
        names = [("i", k) for k in sorted(model.input_shapes)] + names
    if not names:
        return np.zeros((n, 0))
    shapes = {"i": model.input_shapes, "p": model.parameter_shapes}
    blocks = [
        np.asarray((inputs if kind == "i" else parameters)[k], dtype=float).reshape(
            n, int(np.prod(shapes[kind][k], dtype=int))
        )
        for kind, k in names
    ]
    return np.concatenate(blocks, axis=1)


class Dedupe(ReuseWrapper):
    """Solve each distinct request once.

    Args:
        model: the wrapped micro-model (not stochastic, no history).
        tolerance: absolute tolerance under which two requests are identical. ``0`` (default)
            means bitwise-equal values. With a positive tolerance values are binned to
            multiples of it and every point of a bin gets the answer computed at the first
            point of the bin: the error this adds is bounded by the answer's variation over
            one bin width.
        memory: remember answers across evaluations (default: for linear models only).

    Raises:
        TypeError: ``model`` is stochastic (one noisy sample would stand for independent ones)
            or has history.
        ValueError: a negative or non-finite ``tolerance``.
    """

    restart_exact = True  # exact answers: its memory only saves solves

    def __init__(self, model: MicroModel, tolerance: float = 0.0, memory: bool | None = None):
        super().__init__(model)
        if model.is_stochastic:
            raise TypeError(
                f"Dedupe cannot wrap the stochastic {type(model).__name__}: one noisy sample "
                "would stand for independent ones"
            )
        if not (np.isfinite(tolerance) and tolerance >= 0.0):
            raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self.memory = model.is_linear if memory is None else bool(memory)
        self._known: dict[bytes, dict] = {}

    def __len__(self) -> int:
        """Number of remembered answers."""
        return len(self._known)

    def clear(self) -> None:
        """Forget the remembered answers."""
        self._known.clear()

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """Tasks of the inner model for the distinct requests not yet known."""
        n = self.check_batch(inputs, parameters)
        t0 = time.perf_counter()
        stats = self.statistics
        stats.points_requested += n
        rows = request_rows(self, inputs, parameters, n)
        keys = rows if self.tolerance == 0.0 else np.round(rows / self.tolerance)
        unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        stats.micro_requests += len(unique)
        linear = self.is_linear
        need_tangents = tangents or linear  # a linear model's answer is its tensors
        names = [k.tobytes() for k in unique]
        answers = {}
        todo = []
        for j, name in enumerate(names):
            entry = self._known.get(name)
            if entry is not None and (not need_tangents or entry["tangents"] is not None):
                answers[j] = entry
            else:
                todo.append(j)
        stats.exact_reuse_hits += len(answers)
        points = first[todo]
        sub = self.forward(
            {k: np.asarray(v)[points] for k, v in inputs.items()},
            {k: np.asarray(v)[points] for k, v in parameters.items()},
            points,
            need_tangents,
        )
        stats.reuse_seconds += time.perf_counter() - t0

        def done(result: MicroResult) -> MicroResult:
            t1 = time.perf_counter()
            for m, j in enumerate(todo):
                entry = {
                    "outputs": None if linear else {k: v[m] for k, v in result.outputs.items()},
                    "tangents": {k: v[m] for k, v in result.tangents.items()}
                    if need_tangents
                    else None,
                    "error_bounds": {k: v[m] for k, v in result.error_bounds.items()},
                    "tensor_error": None
                    if result.tensor_errors is None
                    else float(result.tensor_errors[m]),
                }
                answers[j] = entry
                if self.memory:
                    self._known[names[j]] = entry
            per_point = [answers[j] for j in inverse]
            blocks = self.tangent_blocks if need_tangents else []
            tangent_values = {
                key: _stack([e["tangents"][key] for e in per_point], self, key) for key in blocks
            }
            if linear:
                outputs = linear_outputs(tangent_values, inputs, self.output_shapes)
            else:
                outputs = {
                    k: _stack([e["outputs"][k] for e in per_point], self, k)
                    for k in self.output_shapes
                }
            tensor_errors = None
            if linear and any(e["tensor_error"] is not None for e in per_point):
                tensor_errors = np.array([e["tensor_error"] or 0.0 for e in per_point])
                bounds = linear_output_bounds(
                    tensor_errors, inputs, self.output_shapes, self.tangent_blocks
                )
            else:
                bounded = set().union(*(e["error_bounds"] for e in per_point))
                bounds = {
                    k: np.array([e["error_bounds"].get(k, 0.0) for e in per_point]) for k in bounded
                }
            stats.reuse_seconds += time.perf_counter() - t1
            return MicroResult(
                outputs,
                tangent_values if tangents else {},
                error_bounds=bounds,
                tensor_errors=tensor_errors,
            )

        return then(sub, done)


def _stack(values: list, model: MicroModel, key) -> np.ndarray:
    if values:
        return np.stack(values)
    if isinstance(key, tuple):
        shape = (*model.output_shapes[key[0]], *model.input_shapes[key[1]])
    else:
        shape = tuple(model.output_shapes[key])
    return np.empty((0, *shape))
