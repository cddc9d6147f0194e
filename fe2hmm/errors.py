"""Exceptions raised by fe2hmm beyond the built-in ``ValueError``/``TypeError``/``RuntimeError``."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Fe2hmmError", "MicroSolveError", "NonPeriodicMeshError", "NewtonConvergenceError"]


class Fe2hmmError(Exception):
    """Base class of fe2hmm's own exceptions."""


class NonPeriodicMeshError(Fe2hmmError, ValueError):
    """A cell mesh whose nodes on opposite faces do not match."""


class MicroSolveError(Fe2hmmError, RuntimeError):
    """A micro solve failed at one macro quadrature point.

    Attributes:
        point: index of the quadrature point in the rank-local batch (``None`` if not known).
        coordinates: macro coordinates of that point, shape ``(gdim,)`` (``None`` if not known).
        parameters: the per-point parameters that were passed to the micro-model.
        rank: MPI rank that owns the point.
    """

    def __init__(
        self,
        message: str,
        point: int | None = None,
        coordinates: Sequence[float] | None = None,
        parameters: dict | None = None,
        rank: int | None = None,
    ):
        self.message = message
        self.point = point
        self.coordinates = None if coordinates is None else tuple(float(c) for c in coordinates)
        self.parameters = parameters
        self.rank = rank
        where = []
        if point is not None:
            where.append(f"quadrature point {point}")
        if self.coordinates is not None:
            where.append("at x = (" + ", ".join(f"{c:.6g}" for c in self.coordinates) + ")")
        if rank is not None:
            where.append(f"on rank {rank}")
        if parameters:
            where.append("with " + ", ".join(f"{k}={_fmt(v)}" for k, v in parameters.items()))
        super().__init__(message + (" [" + " ".join(where) + "]" if where else ""))


class NewtonConvergenceError(Fe2hmmError, RuntimeError):
    """The macro Newton iteration did not converge."""


def _fmt(value) -> str:
    try:
        import numpy as np

        arr = np.asarray(value)
        if arr.ndim == 0:
            return f"{float(arr):.6g}"
        return np.array2string(arr, precision=6)
    except Exception:  # pragma: no cover - formatting must never hide the real error
        return repr(value)
