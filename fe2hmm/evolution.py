r"""State variables at quadrature points that follow macro fields (non-stationary microstructure).

An :class:`IrreversibleState` holds one scalar per quadrature point of a closure and feeds it
to the closure as a per-point parameter, e.g. the damage of a phase that degrades when the
local macro temperature exceeds a threshold:

.. math:: s_{n+1}(x) = \max\big(s_n(x),\; g(\theta(x, t_{n+1}))\big),

with :math:`\theta` a UFL expression of the macro solution and :math:`g` a user law. The
``max`` makes the state — and with it the micro structure and the homogenised tensor —
path dependent: heating and cooling back leaves the material changed. The update is
*staggered* (explicit in the state): a macro step is solved with :math:`s_n`, then the state
advances with the new solution; the lag is first order in Δt, the order of backward Euler.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import ufl

from fe2hmm.closure import Closure
from fe2hmm.micro.interface import Stateful

__all__ = ["IrreversibleState"]


class IrreversibleState(Stateful):
    """A monotonically non-decreasing per-point state driving a closure parameter.

    Args:
        closure: the closure whose micro-model takes the state as a scalar parameter.
        parameter: the parameter's name (e.g. ``"state"``).
        expression: scalar UFL expression of the macro fields the state follows
            (e.g. the temperature ``T``).
        law: ``law(values) -> states`` on arrays ``(n,)`` (vectorised), e.g. a clipped ramp.
        initial: initial state (scalar or ``(num_points,)``).

    Attributes:
        values: the committed state at the closure's rank-local points, shape ``(n,)``.

    Raises:
        ValueError: unknown or non-scalar parameter, non-scalar expression.
    """

    def __init__(
        self,
        closure: Closure,
        parameter: str,
        expression: ufl.core.expr.Expr,
        law: Callable[[np.ndarray], np.ndarray],
        initial: float | np.ndarray = 0.0,
    ) -> None:
        shapes = closure.model.parameter_shapes
        if parameter not in shapes or tuple(shapes[parameter]) != ():
            raise ValueError(
                f"{parameter!r} is not a scalar parameter of {type(closure.model).__name__} "
                f"(parameters: {dict(shapes)})"
            )
        if ufl.shape(expression) != ():
            raise ValueError(f"expression must be scalar, got shape {ufl.shape(expression)}")
        self.closure, self.parameter, self.law = closure, parameter, law
        self._field = closure.map.expression(expression)
        n = closure.num_points
        self.values = np.broadcast_to(np.asarray(initial, dtype=float), (n,)).copy()
        self._trial: np.ndarray | None = None
        closure.set_parameter(parameter, self.values)

    def field_values(self) -> np.ndarray:
        """The followed expression at the closure's rank-local points, shape ``(n,)``."""
        return self._field()

    def advance(self) -> int:
        """``s ← max(s_n, law(θ))`` from the current macro fields; sets the closure parameter.

        Returns:
            The number of rank-local points whose state grew.

        Raises:
            ValueError: the law returned a wrong shape or non-finite values (naming the point
                and its macro coordinates).

        Note:
            Collective on the closure's mesh communicator (a failure on one rank is raised on
            all); the state itself is rank-local.
        """
        theta = self.field_values()
        target = np.asarray(self.law(theta), dtype=float)
        error = None
        if target.shape != theta.shape:
            error = f"law returned shape {target.shape}, expected {theta.shape}"
        elif not np.all(np.isfinite(target)):
            i = int(np.flatnonzero(~np.isfinite(target))[0])
            error = (
                f"law({theta[i]!r}) = {target[i]!r} is not finite at quadrature point {i}, "
                f"x = {self.closure.coordinates[i]}"
            )
        comm = self.closure.mesh.comm
        if comm.allreduce(error is not None):  # every rank raises: none is left waiting
            raise ValueError(error or "the state law failed on another rank; see its error")
        self._trial = np.maximum(self.values, target)
        self.closure.set_parameter(self.parameter, self._trial)
        return int(np.count_nonzero(self._trial > self.values))

    def commit(self) -> None:
        """Accept the advanced state."""
        if self._trial is not None:
            self.values = self._trial
        self._trial = None

    def rollback(self) -> None:
        """Discard the advanced state and restore the committed one in the closure."""
        self._trial = None
        self.closure.set_parameter(self.parameter, self.values)

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The committed state ``{"values": (n,)}``."""
        return {"values": self.values.copy()}

    def restore_state(self, state) -> None:
        """Make ``state["values"]`` the committed state (and the closure's parameter)."""
        values = np.asarray(state["values"], dtype=float)
        if values.shape != self.values.shape:
            raise ValueError(
                f"state values have shape {values.shape}, this state {self.values.shape}"
            )
        self.values, self._trial = values.copy(), None
        self.closure.set_parameter(self.parameter, self.values)
