"""A micro-model wrapper serving a nonlinear scalar closure ``ω(u)`` from a surrogate.

The surrogate is the error-controlled :class:`~fe2hmm.reuse.surrogate.HermiteSurrogate`; a
predictive indicator tightens its tolerance where the tangent ``ω'(u)`` nears a sign change.
"""

from __future__ import annotations

import time

import numpy as np

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.reuse.indicators import tangent_sign_indicator
from fe2hmm.reuse.surrogate import HermiteSurrogate

__all__ = ["ScalarSurrogateModel"]


class ScalarSurrogateModel(MicroModel):
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
        tolerance: relative tolerance (estimate / max |ω| over the nodes), > 0.
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
        super().__init__()
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
        self.model = model
        self.surrogate = HermiteSurrogate(tolerance, min_spacing)
        self.critical, self.tighten = float(critical), float(tighten)
        (self._input,) = ins
        (self._output,) = outs
        self.indicator = np.empty(0)

    @property
    def input_shapes(self):
        """The wrapped model's (scalar) input."""
        return {self._input: ()}

    @property
    def output_shapes(self):
        """The wrapped model's (scalar) output."""
        return {self._output: ()}

    def _solve(self, u: float, point: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        result = self.model.evaluate({self._input: np.array([u])}, {}, tangents=True)
        self.statistics.micro_solves += 1
        self.statistics.seconds += time.perf_counter() - t0
        value = float(result.outputs[self._output][0])
        slope = float(result.tangents[self._output, self._input][0])
        if not (np.isfinite(value) and np.isfinite(slope)):
            raise MicroSolveError(f"non-finite micro result at {self._input}={u!r}", point=point)
        return value, slope

    def evaluate(self, inputs, parameters, *, tangents=True):
        """Outputs, consistent tangents and error bounds at all points."""
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
        return MicroResult(
            {self._output: value[inv]},
            {(self._output, self._input): slope[inv]} if tangents else {},
            error_bounds={self._output: bound[inv]},
        )
