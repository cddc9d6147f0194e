r"""Error-controlled surrogate of a micro-model's effective tensors over one scalar parameter.

For a linear micro-model the outputs are ``T(p) · input``: the tensors ``T`` depend only on the
per-point parameter ``p`` (a volume fraction, a temperature, …), and the input enters exactly.
:class:`ParameterSurrogate` interpolates ``T(p)`` from real micro solves at nodes
``p_0 < … < p_m`` and attaches an error estimate to every prediction:

- prediction: the quadratic interpolant through the bracketing interval ``[p_j, p_{j+1}]`` and
  the neighbouring node nearer to ``p``;
- estimate: ``|Q(p) - L(p)|``, the difference to the linear interpolant on the interval,
  relative to ``max |T|`` over the nodes.

For a smooth ``T`` the estimate behaves like the linear interpolation error,
``|T''| (p - p_j)(p_{j+1} - p) / 2 = O(h²)``, while the returned quadratic prediction is
``O(h³)`` accurate: the estimate bounds the true error with a margin that grows as the nodes
get denser (local extrapolation, as in embedded Runge–Kutta pairs). Training is adaptive
(:meth:`ParameterSurrogate.serve`): requests outside the trained interval extend it, and the
interval holding the worst estimate above the tolerance is bisected with a real micro solve,
until every request is within tolerance. Where ``T`` is not smooth (a percolation threshold,
a phase change), bisection stops at ``min_spacing`` and those requests are solved exactly.

The tangent of a linear model is the tensor itself, so value and tangent stay consistent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["HermiteSurrogate", "ParameterSurrogate", "SurrogatePrediction"]


@dataclass
class SurrogatePrediction:
    """Predictions at ``m`` parameter values.

    Attributes:
        values: interpolated tensors, flattened, ``(m, k)``.
        estimates: relative error estimates ``(m,)`` (0 at nodes; ``inf`` where untrained).
        trained: whether each value lies in the trained interval ``(m,)``.
    """

    values: np.ndarray
    estimates: np.ndarray
    trained: np.ndarray


class ParameterSurrogate:
    """Adaptive piecewise-quadratic interpolant of flattened tensors ``T(p)`` with estimates.

    Args:
        tolerance: relative error tolerance (estimate / ``max |T|`` over the nodes) under which a
            prediction replaces a micro solve; > 0.
        min_spacing: smallest node spacing bisection may create; below it requests are solved
            exactly (default: ``1e-6`` times the trained interval, at least ``1e-12``).

    Attributes:
        nodes: trained parameter values, sorted ``(m,)``.
        values: tensors at the nodes, flattened ``(m, k)``.
    """

    def __init__(self, tolerance: float = 1e-4, min_spacing: float | None = None) -> None:
        if not (np.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"surrogate tolerance must be a finite number > 0, got {tolerance!r}")
        if min_spacing is not None and not (np.isfinite(min_spacing) and min_spacing > 0):
            raise ValueError(f"min_spacing must be a finite number > 0, got {min_spacing!r}")
        self.tolerance = float(tolerance)
        self.min_spacing = min_spacing
        self.nodes = np.empty(0)
        self.values = np.empty((0, 0))

    def __len__(self) -> int:
        return self.nodes.size

    def add(self, p: float, value: np.ndarray) -> None:
        """Add a node: the (flattened) tensor computed by a real micro solve at ``p``."""
        value = np.asarray(value, dtype=float).reshape(-1)
        if self.nodes.size and value.size != self.values.shape[1]:
            raise ValueError(f"tensor size {value.size} differs from {self.values.shape[1]}")
        i = int(np.searchsorted(self.nodes, p))
        if i < self.nodes.size and self.nodes[i] == p:
            self.values[i] = value
            return
        self.nodes = np.insert(self.nodes, i, float(p))
        values = self.values if self.values.size else np.empty((0, value.size))
        self.values = np.insert(values, i, value, axis=0)

    def predict(self, p: np.ndarray) -> SurrogatePrediction:
        """Interpolated tensors and relative error estimates at the values ``p`` ``(m,)``."""
        p = np.asarray(p, dtype=float).reshape(-1)
        m, nodes, values = p.size, self.nodes, self.values
        k = values.shape[1] if values.size else 0
        out = np.zeros((m, k))
        est = np.full(m, np.inf)
        if nodes.size == 0:
            return SurrogatePrediction(out, est, np.zeros(m, dtype=bool))
        exact = np.isin(p, nodes)
        trained = (p >= nodes[0]) & (p <= nodes[-1])
        if exact.any():
            out[exact] = values[np.searchsorted(nodes, p[exact])]
            est[exact] = 0.0
        inner = trained & ~exact
        if nodes.size < 3 or not inner.any():
            trained &= exact | (nodes.size >= 3)
            return SurrogatePrediction(out, est, trained)
        q = p[inner]
        j = np.clip(np.searchsorted(nodes, q) - 1, 0, nodes.size - 2)  # q in (p_j, p_{j+1})
        a, b = nodes[j], nodes[j + 1]
        # third node: the neighbour nearer to q (on the side that exists)
        left = np.clip(j - 1, 0, None)
        right = np.clip(j + 2, None, nodes.size - 1)
        use_left = (j - 1 >= 0) & ((j + 2 > nodes.size - 1) | (q - nodes[left] < nodes[right] - q))
        c_idx = np.where(use_left, left, right)
        c = nodes[c_idx]
        fa, fb, fc = values[j], values[j + 1], values[c_idx]
        t = ((q - a) / (b - a))[:, None]
        linear = (1.0 - t) * fa + t * fb
        # Newton form: Q = L + f[a, b, c] (q - a)(q - b)
        dab = (fb - fa) / (b - a)[:, None]
        dbc = (fc - fb) / (c - b)[:, None]
        dca = (fc - fa) / (c - a)[:, None]
        second = np.where(
            use_left[:, None], (dab - dca) / (b - c)[:, None], (dbc - dab) / (c - a)[:, None]
        )
        quadratic = linear + second * ((q - a) * (q - b))[:, None]
        scale = max(float(np.abs(values).max()), np.finfo(float).tiny)
        out[inner] = quadratic
        est[inner] = np.abs(quadratic - linear).max(axis=1) / scale
        return SurrogatePrediction(out, est, trained)

    def serve(
        self, p: np.ndarray, solve: Callable[[float], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tensors at the requested values ``p``, training with ``solve`` where needed.

        Args:
            p: requested parameter values ``(m,)`` (distinct values; repeats are fine).
            solve: real micro solve ``p -> flattened tensor``; called to extend or refine.

        Returns:
            ``(values (m, k), estimates (m,), solved (m,) bool)``: ``solved`` marks requests
            whose value is a node (computed by a real solve now or earlier).
        """
        p = np.asarray(p, dtype=float).reshape(-1)
        if p.size == 0:
            return np.empty((0, self.values.shape[1] if self.values.size else 0)), p, p > 0
        if not np.all(np.isfinite(p)):
            raise ValueError(f"surrogate parameters must be finite, got {p[~np.isfinite(p)][:3]}")
        lo, hi = float(p.min()), float(p.max())
        # start (or extend) with the ends of the requested range and its midpoint
        seeds = [lo, hi] if self.nodes.size == 0 else []
        if self.nodes.size == 0 and hi > lo:
            seeds.append(0.5 * (lo + hi))
        if self.nodes.size:
            if lo < self.nodes[0]:
                seeds.append(lo)
            if hi > self.nodes[-1]:
                seeds.append(hi)
        for s in dict.fromkeys(seeds):
            self.add(s, solve(s))
        while True:
            pred = self.predict(p)
            bad = pred.estimates > self.tolerance
            if not bad.any():
                break
            worst = int(np.argmax(np.where(bad, pred.estimates, -1.0)))
            q = p[worst]
            j = min(max(int(np.searchsorted(self.nodes, q)) - 1, 0), self.nodes.size - 2)
            a, b = self.nodes[j], self.nodes[j + 1]
            spacing = self.min_spacing or max(1e-6 * (self.nodes[-1] - self.nodes[0]), 1e-12)
            if self.nodes.size < 3 or b - a < 2.0 * spacing:
                # too few nodes for an estimate, or T is not resolvable here: solve exactly
                targets = p[bad & (p >= a) & (p <= b)] if self.nodes.size >= 3 else p[bad]
                for s in np.unique(targets):
                    self.add(float(s), solve(float(s)))
                continue
            mid = 0.5 * (a + b)
            self.add(mid, solve(mid))
        return pred.values, pred.estimates, np.isin(p, self.nodes)


class HermiteSurrogate:
    """Adaptive piecewise-cubic Hermite interpolant of a scalar closure ``f(u)`` and its slope.

    For nonlinear closures with one scalar input, e.g. a reaction rate ω(u).

    Nodes carry the value and the micro tangent ``f'(u)`` from real solves. On
    ``[u_j, u_{j+1}]`` the prediction is the cubic Hermite interpolant ``H`` (C¹ across nodes,
    ``O(h⁴)``) and its derivative is the tangent served with it, so value and tangent are
    consistent. The error estimate is ``max |H - P_j|, |H - P_{j+1}|`` with ``P`` the quadratics
    through both values and one end's slope (``O(h³)``), relative to ``max |f|`` over the nodes;
    asymptotically it bounds the ``O(h⁴)`` error of ``H``.

    Args:
        tolerance: relative error tolerance, > 0.
        min_spacing: smallest node spacing bisection may create (default ``1e-6`` of the span).
    """

    def __init__(self, tolerance: float = 1e-4, min_spacing: float | None = None) -> None:
        if not (np.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"surrogate tolerance must be a finite number > 0, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self.min_spacing = min_spacing
        self.nodes = np.empty(0)
        self.values = np.empty(0)
        self.slopes = np.empty(0)

    def __len__(self) -> int:
        return self.nodes.size

    def add(self, u: float, value: float, slope: float) -> None:
        """Add a node from a real micro solve: value ``f(u)`` and tangent ``f'(u)``."""
        i = int(np.searchsorted(self.nodes, u))
        if i < self.nodes.size and self.nodes[i] == u:
            self.values[i], self.slopes[i] = value, slope
            return
        self.nodes = np.insert(self.nodes, i, float(u))
        self.values = np.insert(self.values, i, float(value))
        self.slopes = np.insert(self.slopes, i, float(slope))

    def predict(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(values, slopes, relative estimates)`` at ``u`` ``(m,)``.

        Estimates are ``inf`` outside the trained interval (values and slopes there are 0).
        """
        u = np.asarray(u, dtype=float).reshape(-1)
        value, slope, est = np.zeros(u.size), np.zeros(u.size), np.full(u.size, np.inf)
        x, f, g = self.nodes, self.values, self.slopes
        if x.size == 0:
            return value, slope, est
        exact = np.isin(u, x)
        if exact.any():
            k = np.searchsorted(x, u[exact])
            value[exact], slope[exact], est[exact] = f[k], g[k], 0.0
        inner = (u > x[0]) & (u < x[-1]) & ~exact
        if not inner.any():
            return value, slope, est
        q = u[inner]
        j = np.clip(np.searchsorted(x, q) - 1, 0, x.size - 2)
        a, b = x[j], x[j + 1]
        h = b - a
        t = (q - a) / h
        fa, fb, ga, gb = f[j], f[j + 1], g[j] * h, g[j + 1] * h
        h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
        h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
        H = h00 * fa + h10 * ga + h01 * fb + h11 * gb
        dH = (
            (6 * t**2 - 6 * t) * (fa - fb) + (3 * t**2 - 4 * t + 1) * ga + (3 * t**2 - 2 * t) * gb
        ) / h
        # quadratics through fa, fb and one slope (in t): P_a = fa + ga t + (fb - fa - ga) t²
        Pa = fa + ga * t + (fb - fa - ga) * t**2
        Pb = fb + gb * (t - 1) + (fa - fb + gb) * (t - 1) ** 2
        scale = max(float(np.abs(f).max()), np.finfo(float).tiny)
        value[inner], slope[inner] = H, dH
        est[inner] = np.maximum(np.abs(H - Pa), np.abs(H - Pb)) / scale
        return value, slope, est

    def serve(
        self,
        u: np.ndarray,
        solve: Callable[[float], tuple[float, float]],
        tolerance: np.ndarray | float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Values and slopes at ``u``, training with ``solve(u) -> (f, f')`` where needed.

        Args:
            u: requested inputs ``(m,)``.
            solve: the real micro solve.
            tolerance: per-request relative tolerances ``(m,)`` (default: :attr:`tolerance`);
                an indicator lowers them where the physics needs more accuracy.

        Returns:
            ``(values, slopes, estimates, solved)``, each ``(m,)``; ``solved`` marks requests
            that are nodes.
        """
        u = np.asarray(u, dtype=float).reshape(-1)
        if not np.all(np.isfinite(u)):
            raise ValueError(f"surrogate inputs must be finite, got {u[~np.isfinite(u)][:3]}")
        tol = np.broadcast_to(
            np.asarray(self.tolerance if tolerance is None else tolerance, dtype=float), u.shape
        )
        if u.size == 0:
            return u.copy(), u.copy(), u.copy(), u > 0
        lo, hi = float(u.min()), float(u.max())
        seeds = []
        if self.nodes.size == 0 or lo < self.nodes[0]:
            seeds.append(lo)
        if self.nodes.size == 0 or hi > self.nodes[-1]:
            seeds.append(hi)
        for s in dict.fromkeys(seeds):
            self.add(s, *solve(s))
        while True:
            value, slope, est = self.predict(u)
            bad = est > tol
            if not bad.any():
                return value, slope, est, np.isin(u, self.nodes)
            worst = int(np.argmax(np.where(bad, est / tol, -1.0)))
            j = min(max(int(np.searchsorted(self.nodes, u[worst])) - 1, 0), self.nodes.size - 2)
            a, b = self.nodes[j], self.nodes[j + 1]
            spacing = self.min_spacing or max(1e-6 * (self.nodes[-1] - self.nodes[0]), 1e-12)
            if b - a < 2.0 * spacing:
                for s in np.unique(u[bad & (u >= a) & (u <= b)]):
                    self.add(float(s), *solve(float(s)))
                continue
            mid = 0.5 * (a + b)
            self.add(mid, *solve(mid))
