"""Input surrogate for nonlinear stateless micro-models with scalar or tensor inputs.

:class:`TangentSurrogateModel` serves ``y(x)`` — a flux ``q(g)`` over a gradient ``(2,)``, a
stress ``σ(ε)`` over a strain ``(2, 2)``, any number of inputs — from first-order Taylor models
around real solves ("nodes" ``(x_n, y_n, T_n)``, with ``T_n`` the micro tangent):

- **prediction** from the nearest node ``a`` (in the scaled norm below):
  ``y(x) ≈ P_a(x) = y_a + T_a (x − x_a)``, tangent served ``T_a``;
- **estimate** per output: ``max(|P_a(x) − P_b(x)|, 2 · ½ L̂ |x − x_a|²)``, with ``b`` the
  second-nearest node and ``L̂`` the Lipschitz constant of the tangent estimated by divided
  differences ``|T_c − T_a| / |x_c − x_a|`` (Frobenius norm, scaled coordinates) over the
  ``d + 1`` nodes ``c`` nearest to ``x`` after ``a`` (``d`` input components). The first term is
  "two models disagree" (both are O(h²) accurate for smooth ``y``, and the second node is the
  farther one); it cancels where ``x`` is equidistant from ``a`` and ``b`` (two tangent planes
  err alike there), which the second term covers: the Taylor remainder bound, doubled because
  divided differences along a few directions underestimate the Lipschitz constant (without
  the factor the bound failed at ~10 % of random points of the power-law test, with it at
  none, smallest margin 1.1). Relative to
  ``max |y|`` over the nodes; ``inf`` with fewer than two nodes or a second node farther than
  ``radius``.

Requests above the tolerance are solved for real (through the rest of the stack, so a
:class:`~fe2hmm.reuse.cache.Cache` below still helps), become nodes and are served exactly.
Solves happen in rounds of one forward call each, with a greedy thinning (see
:class:`TangentSurrogateModel`). Training is adaptive and sequential, so it runs on the rank
that asks, like the other surrogates.

Limits: nearest-node search over ``d`` input components — meant for low-dimensional inputs
(2D/3D gradients, small strains), not for dozens of components (the number of nodes for a
tolerance grows like ``tolerance^(−d/2)``); deterministic stateless models only.
"""

from __future__ import annotations

import time

import numpy as np

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult, TaskBatch, run_tasks
from fe2hmm.reuse.wrapper import ReuseWrapper

__all__ = ["TangentSurrogateModel"]


class _Nodes:
    """Real solves of one parameter row: inputs ``(m, d)``, outputs ``(m, p)``, tangents."""

    def __init__(self, d: int, p: int) -> None:
        self.x = np.empty((0, d))
        self.y = np.empty((0, p))
        self.t = np.empty((0, p, d))

    def add(self, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> None:
        self.x = np.concatenate([self.x, x])
        self.y = np.concatenate([self.y, y])
        self.t = np.concatenate([self.t, t])


class TangentSurrogateModel(ReuseWrapper):
    """Serve a nonlinear, deterministic, stateless micro-model from Taylor models at nodes.

    A request (inputs of one point, compared with the nodes of the same parameter row, bitwise)
    whose estimate (module docstring) is at most ``tolerance`` is served by the nearest node's
    Taylor model and counted in ``statistics.surrogate_hits``; a request equal to a node is
    served exactly (``exact_reuse_hits``); the others are solved. Solving goes in rounds: each
    round takes the requests above the tolerance, worst first, and skips one when a request
    already chosen in the round is predicted to cover it — for a finite estimate ``η`` when the
    chosen one is nearer than ``|x − x_a| sqrt(tolerance / η)`` (the estimate scales like the
    squared distance), for an infinite one when the chosen one is nearer than every node —
    up to ``batch_size`` solves in one forward call; then all requests are re-estimated.

    Distances use ``|x − x'|_s = |(x − x')/s|``. The default ``s`` is per input (isotropic over
    its components, so the norm is invariant under rotations of gradients and strains): the
    largest spread (max − min) over the input's components among the nodes of the parameter
    row, or 1 where the nodes do not spread. ``radius`` is in this scaled norm.

    Args:
        model: the wrapped micro-model (nonlinear, deterministic, stateless, returning the
            tangent of every output with respect to every input).
        tolerance: relative tolerance of the served outputs (estimate / ``max |y|`` over the
            nodes, per output), > 0.
        scale: per-component scale of the inputs: a positive number, or input name ->
            positive array broadcastable to the input's shape; None: the default above.
        radius: when the second-nearest node is farther than this (scaled norm), the request
            is solved; None: no limit.
        batch_size: most solves in one round (one forward call), >= 1.

    Raises:
        TypeError: ``model`` is linear (use :class:`~fe2hmm.reuse.dedupe.Dedupe`: exact),
            stochastic or stateful.
        ValueError: missing tangent blocks (named), a model without inputs, bad tolerance,
            scale, radius or batch size.
    """

    def __init__(
        self,
        model: MicroModel,
        tolerance: float = 1e-3,
        scale: float | dict | None = None,
        radius: float | None = None,
        batch_size: int = 64,
    ) -> None:
        super().__init__(model)
        name = type(model).__name__
        if model.is_linear:
            raise TypeError(
                f"TangentSurrogateModel serves nonlinear models; {name} is linear (use Dedupe: "
                "its tensors are exact and remembered)"
            )
        if model.is_stochastic:
            raise TypeError(
                f"TangentSurrogateModel cannot wrap the stochastic {name}: Taylor models of "
                "noisy samples are noise (see HyperelasticRegressionModel)"
            )
        if not model.input_shapes:
            raise ValueError(f"TangentSurrogateModel needs inputs; {name} has none")
        missing = [
            (o, i)
            for o in model.output_shapes
            for i in model.input_shapes
            if (o, i) not in set(model.tangent_blocks)
        ]
        if missing:
            raise ValueError(
                f"TangentSurrogateModel needs the tangent of every output with respect to every "
                f"input; {name} does not declare {missing} (declare and return zero blocks)"
            )
        if not (np.isfinite(tolerance) and tolerance > 0.0):
            raise ValueError(f"tolerance must be a finite number > 0, got {tolerance!r}")
        if radius is not None and not (np.isfinite(radius) and radius > 0.0):
            raise ValueError(f"radius must be None or a finite number > 0, got {radius!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.tolerance = float(tolerance)
        self.radius = None if radius is None else float(radius)
        self.batch_size = int(batch_size)
        self._inputs = [(k, tuple(s)) for k, s in model.input_shapes.items()]
        self._outputs = [(k, tuple(s)) for k, s in model.output_shapes.items()]
        self._isl = _slices(self._inputs)
        self._osl = _slices(self._outputs)
        self._d = sum(int(np.prod(s, dtype=int)) for _, s in self._inputs)
        self._p = sum(int(np.prod(s, dtype=int)) for _, s in self._outputs)
        self._scale = None if scale is None else self._fixed_scale(scale)
        self._groups: dict[bytes, _Nodes] = {}
        self._parameter_rows: dict[bytes, np.ndarray] = {}

    def _fixed_scale(self, scale) -> np.ndarray:
        if not isinstance(scale, dict):
            scale = {k: scale for k, _ in self._inputs}
        if set(scale) != {k for k, _ in self._inputs}:
            raise ValueError(
                f"scale must give every input {[k for k, _ in self._inputs]}, got {sorted(scale)}"
            )
        try:
            flat = np.concatenate(
                [
                    np.broadcast_to(np.asarray(scale[k], float), s).reshape(-1)
                    for k, s in self._inputs
                ]
            )
        except ValueError as err:
            raise ValueError(f"scale does not fit the input shapes: {err}") from None
        if not (np.isfinite(flat).all() and (flat > 0).all()):
            raise ValueError(f"scale must be finite and > 0, got {scale!r}")
        return flat

    # -- nodes ----------------------------------------------------------------------------

    @property
    def nodes(self) -> list[dict]:
        """The nodes, one dict per parameter row.

        Keys: ``parameters`` ``{name: array}``, ``inputs`` and ``outputs`` ``{name: (m, *shape)}``.
        """
        out = []
        for key, group in self._groups.items():
            m = group.x.shape[0]
            row, parameters, offset = self._parameter_rows[key], {}, 0
            for k in sorted(self.parameter_shapes):
                shape = tuple(self.parameter_shapes[k])
                size = int(np.prod(shape, dtype=int))
                parameters[k] = row[offset : offset + size].reshape(shape)
                offset += size
            out.append(
                {
                    "parameters": parameters,
                    "inputs": {k: group.x[:, self._isl[k]].reshape(m, *s) for k, s in self._inputs},
                    "outputs": {
                        k: group.y[:, self._osl[k]].reshape(m, *s) for k, s in self._outputs
                    },
                }
            )
        return out

    def __len__(self) -> int:
        """Number of nodes (real solves kept), over all parameter rows."""
        return sum(g.x.shape[0] for g in self._groups.values())

    def clear(self) -> None:
        """Forget all nodes."""
        self._groups.clear()
        self._parameter_rows.clear()

    def _scale_of(self, group: _Nodes) -> np.ndarray:
        if self._scale is not None:
            return self._scale
        s = np.ones(self._d)
        if group.x.shape[0] > 1:
            spread = group.x.max(axis=0) - group.x.min(axis=0)
            for k, _ in self._inputs:
                widest = spread[self._isl[k]].max()
                s[self._isl[k]] = widest if widest > 0 else 1.0
        return s

    # -- estimates ------------------------------------------------------------------------

    def _estimate(self, group: _Nodes, x: np.ndarray):
        """Prediction, tangent, bounds and relative estimate at requests ``x`` ``(r, d)``.

        Returns ``(y (r, p), t (r, p, d), bounds (r, n_outputs), eta (r,), nearest-node
        distance (r,), distance-to-nearest-node per request and node (r, m))`` (scaled).
        """
        r, m = x.shape[0], group.x.shape[0]
        n_out = len(self._outputs)
        if m == 0:
            inf = np.full(r, np.inf)
            return None, None, np.full((r, n_out), np.inf), inf, inf, np.empty((r, 0))
        s = self._scale_of(group)
        z, zn = x / s, group.x / s
        dist = np.sqrt(((z[:, None, :] - zn[None, :, :]) ** 2).sum(axis=2))
        k = min(m, self._d + 2)
        near = (
            np.argpartition(dist, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (r, 1))
        )
        near = np.take_along_axis(near, np.argsort(np.take_along_axis(dist, near, 1), 1), 1)
        a = near[:, 0]
        da = dist[np.arange(r), a]
        y = group.y[a] + np.einsum("rpd,rd->rp", group.t[a], x - group.x[a])
        t = group.t[a]
        bounds = np.full((r, n_out), np.inf)
        if m >= 2:
            b = near[:, 1]
            yb = group.y[b] + np.einsum("rpd,rd->rp", group.t[b], x - group.x[b])
            others = near[:, 1:]
            dz = np.sqrt(((zn[others] - zn[a][:, None, :]) ** 2).sum(axis=2))  # (r, k-1)
            dt = (group.t[others] - group.t[a][:, None]) * s  # tangents in scaled coordinates
            for j, (o, _) in enumerate(self._outputs):
                sl = self._osl[o]
                diff = np.linalg.norm(y[:, sl] - yb[:, sl], axis=1)
                lip = np.linalg.norm(dt[:, :, sl, :], axis=(2, 3)) / np.maximum(dz, 1e-300)
                bounds[:, j] = np.maximum(diff, lip.max(axis=1) * da**2)  # 2 × ½ L̂ |x − x_a|²
            if self.radius is not None:
                bounds[dist[np.arange(r), b] > self.radius] = np.inf
        bounds[da == 0.0] = 0.0  # a node itself: exact
        ymax = np.array(
            [np.linalg.norm(group.y[:, self._osl[o]], axis=1).max() for o, _ in self._outputs]
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(bounds == 0.0, 0.0, bounds / ymax)
        return y, t, bounds, rel.max(axis=1), da, dist

    def _select(self, x: np.ndarray, group: _Nodes, eta: np.ndarray, da: np.ndarray, dist):
        """Indices of the requests to solve in this round (greedy thinning, worst first)."""
        todo = np.flatnonzero(eta > self.tolerance)
        order = todo[np.lexsort((-da[todo], -eta[todo]))]
        s = self._scale_of(group)
        z = x / s
        chosen: list[int] = []
        for c in order:
            if len(chosen) == self.batch_size:
                break
            if chosen:
                near = np.sqrt(((z[chosen] - z[c]) ** 2).sum(axis=1)).min()
                cover = (
                    da[c] if not np.isfinite(eta[c]) else da[c] * np.sqrt(self.tolerance / eta[c])
                )
                if near < cover:
                    continue
            chosen.append(int(c))
        return np.array(chosen, dtype=int)

    # -- solves ---------------------------------------------------------------------------

    def _solve(self, inputs, parameters, points: np.ndarray):
        """Real solves of the rest of the stack at batch ``points``: flat ``(y, t)``."""
        stats = self.statistics
        before = stats.micro_solves + stats.cache_hits + stats.exact_reuse_hits
        t0 = time.perf_counter()
        batch = self.forward(
            {k: np.asarray(v)[points] for k, v in inputs.items()},
            {k: np.asarray(v)[points] for k, v in parameters.items()},
            points,
            True,
        )
        result = run_tasks(self.inner, batch)
        if stats.micro_solves + stats.cache_hits + stats.exact_reuse_hits == before:
            stats.micro_solves += len(points)  # an inner model that counts nothing
            stats.seconds += time.perf_counter() - t0
        m = len(points)
        y = np.concatenate([result.outputs[o].reshape(m, -1) for o, _ in self._outputs], axis=1)
        t = np.zeros((m, self._p, self._d))
        for o, _ in self._outputs:
            for i, _ in self._inputs:
                block = np.asarray(result.tangents[o, i]).reshape(
                    m, -1, self._isl[i].stop - self._isl[i].start
                )
                t[:, self._osl[o], self._isl[i]] = block
        bad = ~(np.isfinite(y).all(axis=1) & np.isfinite(t).all(axis=(1, 2)))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise MicroSolveError(
                "non-finite micro result in a TangentSurrogateModel node solve",
                point=int(points[j]),
            )
        return y, t

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """Outputs, tangents and error bounds at all points (trained here; no tasks)."""
        n = self.check_batch(inputs, parameters)
        t_start, solve_seconds = time.perf_counter(), self.statistics.seconds
        stats = self.statistics
        stats.points_requested += n
        x_all = np.concatenate(
            [np.asarray(inputs[k], float).reshape(n, -1) for k, _ in self._inputs], axis=1
        )
        names = sorted(self.parameter_shapes)
        p_all = (
            np.concatenate([np.asarray(parameters[k], float).reshape(n, -1) for k in names], axis=1)
            if names
            else np.zeros((n, 0))
        )
        rows = np.concatenate([x_all, p_all], axis=1)
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        stats.micro_requests += first.size
        y_req = np.zeros((first.size, self._p))
        t_req = np.zeros((first.size, self._p, self._d))
        b_req = np.zeros((first.size, len(self._outputs)))
        keys = [p_all[i].tobytes() for i in first]
        for key in dict.fromkeys(keys):
            members = np.array([j for j, kk in enumerate(keys) if kk == key], dtype=int)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Nodes(self._d, self._p)
                self._parameter_rows[key] = p_all[first[members[0]]].copy()
            x = x_all[first[members]]
            solved = np.zeros(members.size, dtype=bool)
            exact_before = None
            while True:
                y, t, bounds, eta, da, dist = self._estimate(group, x)
                if exact_before is None:
                    exact_before = da == 0.0
                eta = np.where(solved, 0.0, eta)
                pick = self._select(x, group, eta, da, dist)
                if pick.size == 0:
                    break
                yn, tn = self._solve(inputs, parameters, first[members[pick]])
                group.add(x[pick], yn, tn)
                solved[pick] = True
            bounds[solved] = 0.0
            y_req[members], t_req[members], b_req[members] = y, t, bounds
            stats.exact_reuse_hits += int(exact_before.sum())
            stats.surrogate_hits += int((~solved & ~exact_before).sum())
        outputs = {o: y_req[inverse][:, self._osl[o]].reshape(n, *s) for o, s in self._outputs}
        result_tangents = {}
        if tangents:
            t_all = t_req[inverse]
            for o, so in self._outputs:
                for i, si in self._inputs:
                    result_tangents[o, i] = t_all[:, self._osl[o], self._isl[i]].reshape(
                        n, *so, *si
                    )
        bounds = {o: b_req[inverse][:, j] for j, (o, _) in enumerate(self._outputs)}
        stats.reuse_seconds += (time.perf_counter() - t_start) - (stats.seconds - solve_seconds)
        result = MicroResult(outputs, result_tangents, error_bounds=bounds)
        return TaskBatch([], lambda _results: result)


def _slices(shapes: list[tuple[str, tuple]]) -> dict[str, slice]:
    out, offset = {}, 0
    for k, s in shapes:
        size = int(np.prod(s, dtype=int))
        out[k] = slice(offset, offset + size)
        offset += size
    return out
