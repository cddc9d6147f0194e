r"""Micro-model: reaction–diffusion in a porous catalyst pellet with Langmuir–Hinshelwood kinetics.

A slab pellet of half-thickness 1 (dimensionless) sits in a macro medium whose local reactant
concentration :math:`u` is the pellet's surface value. Inside,

.. math:: c''(y) = \phi^2\, r(c), \quad c'(0) = 0,\quad c(1) = u, \qquad
   r(c) = \frac{c}{(1 + \beta c)^2},

with Thiele modulus :math:`\phi` and adsorption constant :math:`\beta`. The micro output is the
pellet-averaged consumption rate :math:`\omega(u) = \int_0^1 r(c)\,dy` (per unit pellet volume,
in units of the rate constant), and the tangent :math:`\omega'(u) = \int_0^1 r'(c)\,s\,dy` with
the sensitivity :math:`s = \partial c/\partial u` (:math:`s'' = \phi^2 r'(c) s`, :math:`s(1) = 1`).

:math:`r` peaks at :math:`c = 1/\beta`: above it adsorbed reactant inhibits the reaction, so
:math:`\omega(u)` rises, peaks and falls — its tangent changes sign, the classic source of
multiple steady states of catalytic beds (Aris 1975). For :math:`\beta = 0`,
:math:`\omega(u) = u\tanh(\phi)/\phi` (the effectiveness factor), which the tests use.

Discretisation: second-order finite differences on ``nodes`` points, Newton with a tridiagonal
Jacobian; :math:`\omega` by the trapezoidal rule; the tangent is the exact derivative of the
discrete :math:`\omega` (the sensitivity system uses the converged Jacobian).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.linalg import solve_banded

from fe2hmm.errors import MicroSolveError, at_point
from fe2hmm.micro.interface import MicroModel, MicroResult

__all__ = ["CatalystPelletModel", "langmuir_hinshelwood"]


def langmuir_hinshelwood(c: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Rate ``r(c) = c/(1 + βc)²`` and ``r'(c) = (1 - βc)/(1 + βc)³``."""
    d = 1.0 + beta * c
    return c / d**2, (1.0 - beta * c) / d**3


class CatalystPelletModel(MicroModel):
    """Pellet rate ``ω(u)`` and its tangent ``ω'(u)`` from the pellet problem.

    Input ``{"concentration": ()}`` (surface value u >= 0), output ``{"rate": ()}``.

    Args:
        thiele: Thiele modulus φ > 0.
        adsorption: Langmuir adsorption constant β >= 0.
        nodes: finite-difference nodes across the half-pellet (>= 3).
        rtol: Newton tolerance on the update, relative to ``max(u, 1e-12)``.
        max_iterations: Newton iterations before :class:`~fe2hmm.errors.MicroSolveError`.
    """

    def __init__(
        self,
        thiele: float = 2.0,
        adsorption: float = 4.0,
        nodes: int = 201,
        rtol: float = 1e-13,
        max_iterations: int = 50,
    ) -> None:
        super().__init__()
        if not (np.isfinite(thiele) and thiele > 0):
            raise ValueError(f"thiele modulus must be a finite number > 0, got {thiele!r}")
        if not (np.isfinite(adsorption) and adsorption >= 0):
            raise ValueError(f"adsorption constant must be finite and >= 0, got {adsorption!r}")
        if int(nodes) < 3:
            raise ValueError(f"nodes must be >= 3, got {nodes!r}")
        self.thiele, self.adsorption = float(thiele), float(adsorption)
        self.nodes, self.rtol, self.max_iterations = int(nodes), float(rtol), int(max_iterations)
        self._h = 1.0 / (self.nodes - 1)
        w = np.full(self.nodes, self._h)
        w[[0, -1]] *= 0.5
        self._weights = w  # trapezoidal rule on [0, 1]

    input_shapes = {"concentration": ()}
    output_shapes = {"rate": ()}

    def _jacobian(self, rp: np.ndarray) -> np.ndarray:
        """Banded Jacobian of F(c) = D2 c - φ² r(c) on the unknowns c_0 … c_{N-2}."""
        m, h2, phi2 = self.nodes - 1, self._h**2, self.thiele**2
        ab = np.zeros((3, m))
        ab[1] = -2.0 / h2 - phi2 * rp[:m]
        ab[0, 1:] = 1.0 / h2
        ab[2, :-1] = 1.0 / h2
        ab[0, 1] = 2.0 / h2  # symmetry c'(0) = 0 by a ghost node: (2c_1 - 2c_0)/h²
        return ab

    def solve_point(self, u: float) -> tuple[float, float, int]:
        """``(ω(u), ω'(u), Newton iterations)`` for one surface concentration ``u >= 0``."""
        if not (np.isfinite(u) and u >= 0):
            raise MicroSolveError(f"surface concentration must be finite and >= 0, got {u!r}")
        m, h2, phi2, beta = self.nodes - 1, self._h**2, self.thiele**2, self.adsorption
        c = np.full(self.nodes, float(u))
        for iteration in range(self.max_iterations + 1):
            r, rp = langmuir_hinshelwood(c, beta)
            F = np.empty(m)
            F[0] = 2.0 * (c[1] - c[0]) / h2 - phi2 * r[0]
            F[1:] = (c[2:] - 2.0 * c[1:-1] + c[:-2]) / h2 - phi2 * r[1:m]
            dc = solve_banded((1, 1), self._jacobian(rp), -F)
            c[:m] += dc
            if np.abs(dc).max() <= self.rtol * max(u, 1e-12):
                break
            if iteration == self.max_iterations or not np.all(np.isfinite(c)):
                raise MicroSolveError(
                    f"pellet Newton did not converge for u={u!r} in {iteration} iterations"
                )
        r, rp = langmuir_hinshelwood(c, beta)
        # sensitivity s = dc/du: J s = -dF/du, where only the last interior equation sees u
        rhs = np.zeros(m)
        rhs[-1] = -1.0 / h2
        s = np.append(solve_banded((1, 1), self._jacobian(rp), rhs), 1.0)
        return float(self._weights @ r), float(self._weights @ (rp * s)), iteration

    def evaluate(self, inputs, parameters, *, tangents=True):
        """ω and ω' at every point (one pellet solve per point)."""
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        u = np.asarray(inputs["concentration"], dtype=float)
        rate, slope = np.empty(n), np.empty(n)
        for i in range(n):
            t0 = time.perf_counter()
            with at_point(i):
                rate[i], slope[i], _ = self.solve_point(float(u[i]))
            self.statistics.micro_solves += 1
            self.statistics.seconds += time.perf_counter() - t0
        return MicroResult({"rate": rate}, {("rate", "concentration"): slope} if tangents else {})
