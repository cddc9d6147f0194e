"""Exceptions raised by fe2hmm beyond the built-in ``ValueError``/``TypeError``/``RuntimeError``.

Failures inside a micro-model come in three kinds, raised as the same class on every rank:

- an ``Exception`` is a failed micro solve: :class:`MicroSolveError`, naming the point (the
  closure adds its macro coordinates and rank); a Newton cut-back may catch it and retry;
- a programming error (:data:`PROGRAMMING_ERRORS`: ``TypeError``, ``AttributeError``, …) or a
  broken contract (a missing or misshapen output) is :class:`MicroModelError`: a retry cannot
  fix it, so no cut-back catches it;
- anything else (``SystemExit`` from ``sys.exit``, ``KeyboardInterrupt``) stops the run:
  :class:`MicroStop`, not an ``Exception``, so no ``except Exception`` handler retries it. The
  closure turns it, on every rank at once, into ``KeyboardInterrupt`` (for an interrupt) or
  ``SystemExit`` with a message naming the point (for the rest).

:func:`at_point` attributes whatever a per-point solve raises to its point.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = [
    "Fe2hmmError",
    "MicroModelError",
    "MicroSolveError",
    "MicroStop",
    "PROGRAMMING_ERRORS",
    "NewtonConvergenceError",
    "NonPeriodicMeshError",
    "at_point",
    "classify",
    "describe",
    "located_class",
    "keep_alive",
    "raise_on_every_rank",
    "stop_everywhere",
    "stopping",
]


class Fe2hmmError(Exception):
    """Base class of fe2hmm's own exceptions."""


class NonPeriodicMeshError(Fe2hmmError, ValueError):
    """A cell mesh whose nodes on opposite faces do not match."""


#: Exceptions a retry (a smaller load step) cannot fix: a micro-model raising one is broken.
PROGRAMMING_ERRORS = (
    TypeError,
    AttributeError,
    NameError,
    ImportError,
    MemoryError,
    NotImplementedError,
    AssertionError,
    RecursionError,
)


class _Located:
    """Where a micro failure happened: point, macro coordinates, parameters, rank."""

    def __reduce__(self):
        where = (self.point, self.coordinates, self.parameters, self.rank)
        if isinstance(self, MicroStop):
            return (_rebuild_stop, (self.stop, self.message, *where))
        return (_rebuild, (type(self), self.message, *where))

    def _locate(self, message, point, coordinates, parameters, rank) -> str:
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
        return message + (" [" + " ".join(where) + "]" if where else "")


class _LocatedError(_Located, Fe2hmmError, RuntimeError):
    """A located micro failure that is an ``Exception`` (see the two subclasses).

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
        super().__init__(self._locate(message, point, coordinates, parameters, rank))


class MicroSolveError(_LocatedError):
    """A micro solve failed at one macro quadrature point (a cut-back may retry it).

    The attributes ``point`` (index in the rank-local batch), ``coordinates`` (macro, shape
    ``(gdim,)``), ``parameters`` and ``rank`` say where; each is ``None`` when not known.
    """


class MicroStop(_Located, BaseException):
    """A micro-model stopped the run at one point (``SystemExit``, ``KeyboardInterrupt``, …).

    Not an ``Exception``: handlers of failed solves never catch it. A closure re-raises it on
    every rank as ``KeyboardInterrupt`` or ``SystemExit`` (see the module docstring).

    Attributes:
        stop: the original exception.
        point: index of the quadrature point in the rank-local batch (``None`` if not known).
        coordinates: macro coordinates of that point, shape ``(gdim,)`` (``None`` if not known).
        parameters: the per-point parameters that were passed to the micro-model.
        rank: MPI rank that owns the point.
    """

    def __init__(
        self,
        stop: BaseException,
        point: int | None = None,
        coordinates: Sequence[float] | None = None,
        parameters: dict | None = None,
        rank: int | None = None,
        message: str | None = None,
    ):
        self.stop = stop
        if message is None:
            message = f"the micro-model raised {describe(stop)}"
        super().__init__(self._locate(message, point, coordinates, parameters, rank))

    @classmethod
    def of_kind(cls, kind: str, message: str, **where) -> MicroStop:
        """A stop re-created from its ``kind``, ``"interrupt"`` or ``"exit"`` (:func:`classify`).

        ``where``: point, coordinates, parameters, rank (as in the constructor).
        """
        stop = KeyboardInterrupt() if kind == "interrupt" else SystemExit(1)
        return cls(stop, message=message, **where)

    @property
    def interrupt(self) -> bool:
        """Whether the original was a ``KeyboardInterrupt``."""
        return isinstance(self.stop, KeyboardInterrupt)


def describe(error: BaseException) -> str:
    """``Type(args)`` of an exception, e.g. ``SystemExit(3)``, ``ValueError: bad``."""
    if isinstance(error, Exception):
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return f"{type(error).__name__}({', '.join(map(repr, error.args))})"


def classify(error: BaseException) -> tuple[str, str]:
    """``(kind, message)`` of a micro failure.

    ``kind``: ``"error"`` (a failed solve, :class:`MicroSolveError`), ``"bug"``
    (:class:`MicroModelError`, :data:`PROGRAMMING_ERRORS`), ``"exit"`` or ``"interrupt"`` (the
    run must stop on every rank, :class:`MicroStop`).
    """
    if isinstance(error, MicroSolveError):
        return "error", error.message
    if isinstance(error, MicroModelError):
        return "bug", error.message
    if isinstance(error, MicroStop):
        return _stop_kind(error.stop), error.message
    if isinstance(error, PROGRAMMING_ERRORS):
        return "bug", describe(error)
    if isinstance(error, Exception):
        return "error", describe(error)
    return _stop_kind(error), f"the micro-model raised {describe(error)}"


def located_class(kind: str) -> type:
    """:class:`MicroSolveError` for ``"error"``, :class:`MicroModelError` for ``"bug"``."""
    return MicroModelError if kind == "bug" else MicroSolveError


def _stop_kind(error: BaseException) -> str:
    return "interrupt" if isinstance(error, KeyboardInterrupt) else "exit"


def stop_everywhere(stop: MicroStop, ranks: int = 1) -> BaseException:
    """What a closure raises for a :class:`MicroStop`.

    ``KeyboardInterrupt`` for an interrupt, else ``SystemExit`` (exit status 1), both carrying
    the located message; use as ``raise stop_everywhere(s, comm.size) from s``.

    On more than one rank the process is going down on every rank, for good: from here on
    collective clean-up in destructors is skipped (:func:`stopping`; the ranks would release
    their solvers in different orders and wait for each other in MUMPS's clean-up forever),
    also if the caller catches the exception, and the process ends at exit without MPI/PETSc
    finalisation: ``os._exit`` (status 1, or 130 for an interrupt; the model's own exit code is
    in the message) after flushing stdout and stderr, from an ``atexit`` handler registered
    now — so the handlers registered before it (``logging.shutdown``, user handlers) do not
    run.
    """
    status = 130 if stop.interrupt else 1
    if ranks > 1:
        _end_at_exit(status)
    if stop.interrupt:
        return KeyboardInterrupt(f"fe2hmm: {stop}")
    return SystemExit(f"fe2hmm: {stop}")


_stop_status: int | None = None
_kept_alive: list = []  # objects whose collective clean-up was skipped while stopping


def raise_on_every_rank(comm, error: str | None, exception: type, what) -> None:
    """Raise ``exception(what(R) + ": " + error of R)`` on every rank if any rank has an error.

    ``error``: this rank's message, or ``None``; ``what``: rank -> the message's prefix. ``R`` is
    the first rank with an error. Collective on ``comm``: call it where every rank arrives (before
    the next collective operation), so that no rank is left waiting in one.
    """
    errors = comm.allgather(error)
    if any(errors):
        rank = next(r for r, e in enumerate(errors) if e)
        raise exception(f"{what(rank)}: {errors[rank]}")


def stopping() -> bool:
    """Whether a micro-model stopped the run on several ranks (see :func:`stop_everywhere`)."""
    return _stop_status is not None


def keep_alive(obj) -> None:
    """Keep ``obj`` (e.g. a solver whose destroy is collective) until the process ends."""
    _kept_alive.append(obj)


def _end_at_exit(status: int) -> None:
    global _stop_status
    if _stop_status is None:
        import atexit

        atexit.register(_exit_now)
    _stop_status = status


def _exit_now() -> None:
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - a closed stream must not block the exit
            pass
    os._exit(_stop_status)


@contextmanager
def at_point(point: int, parameters: dict | None = None) -> Iterator[None]:
    """Attribute whatever the block raises to batch point ``point``.

    A :class:`MicroSolveError`, :class:`MicroModelError` or :class:`MicroStop` without a point
    gets this one; any other ``Exception`` becomes a :class:`MicroSolveError` — or, for
    :data:`PROGRAMMING_ERRORS`, a :class:`MicroModelError` — chained; any other
    ``BaseException`` a :class:`MicroStop` (``GeneratorExit`` passes through).

    Args:
        point: index of the point in the batch being evaluated.
        parameters: the point's parameters (shown in the message), if known.
    """
    try:
        yield
    except (MicroSolveError, MicroModelError) as err:
        if err.point is not None:
            raise
        raise type(err)(err.message, point=point, parameters=parameters or err.parameters) from err
    except MicroStop as err:
        if err.point is not None:
            raise
        raise MicroStop(
            err.stop, point=point, parameters=parameters or err.parameters, message=err.message
        ) from err.stop
    except GeneratorExit:
        raise
    except Exception as err:
        cls = located_class(classify(err)[0])
        raise cls(describe(err), point=point, parameters=parameters) from err
    except BaseException as err:
        raise MicroStop(err, point=point, parameters=parameters) from err


class MicroModelError(_LocatedError):
    """A micro-model is broken at one point: a programming error or a broken contract.

    Raised on every rank like :class:`MicroSolveError` (same attributes), but not one: the
    cut-backs of load stepping and continuation, which retry failed solves, do not catch it.
    """


def _rebuild(cls, message, point, coordinates, parameters, rank):
    return cls(message, point, coordinates, parameters, rank)


def _rebuild_stop(stop, message, point, coordinates, parameters, rank):
    return MicroStop(stop, point, coordinates, parameters, rank, message=message)


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
