"""Implicit macro time stepping for parabolic problems closed by micro-models.

The user writes one step as a residual form in the unknown ``u`` (end of step) and the previous
state ``u_n`` (a :class:`dolfinx.fem.Function`), e.g. the θ-step of ``c ∂_t T − ∇·q = f``::

    F = c * (T - T_n) / dt * v * dx - ufl.dot(q, ufl.grad(v)) * dx - f_theta * v * dx

and :func:`march` advances it: before each step a hook sets the time-dependent data (``dt``,
boundary values, sources, ``model.set_time_step``), Newton solves the step with the closures'
tangents, micro histories are committed, and ``u_n`` takes the new state. A failed step rolls
the histories back and is raised on every rank.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from dolfinx import fem

from fe2hmm.checkpoint import Checkpoint
from fe2hmm.errors import MicroSolveError, NewtonConvergenceError
from fe2hmm.micro.interface import check_stateful
from fe2hmm.newton import NewtonResult, NewtonSolver

__all__ = ["TimeStep", "march"]

_log = logging.getLogger(__name__)


@dataclass
class TimeStep:
    """One converged macro time step of :func:`march`.

    Attributes:
        time: time at the end of the step (s).
        dt: step length (s).
        iterations: Newton iterations.
        result: the step's :class:`~fe2hmm.newton.NewtonResult` (residuals, timings).
    """

    time: float
    dt: float
    iterations: int
    result: NewtonResult


def march(
    newton: NewtonSolver,
    previous: fem.Function,
    times: Sequence[float],
    before_step: Callable[[float, float], None] | None = None,
    histories: Sequence = (),
    after_step: Callable[[TimeStep], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[TimeStep]:
    """Advance ``newton.u`` through ``times`` (the first entry is the current time).

    Args:
        newton: the step's Newton solver; its ``u`` is the end-of-step unknown.
        previous: the state at the start of the step (``u_n``, used by the form); overwritten
            with ``u`` after each step. ``u`` starts every step from it.
        times: increasing times ``t_0 < t_1 < …`` (s); ``u_n`` holds the state at ``t_0``.
        before_step: ``before_step(t_old, t_new)`` sets the step's data (Δt, boundary values,
            sources, ``model.set_time_step``) before it is solved.
        histories: :class:`~fe2hmm.micro.interface.Stateful` objects (micro-models with
            memory, evolving states) committed after each converged step.
        after_step: called with each converged :class:`TimeStep` (output, diagnostics).
        checkpoint: a :class:`~fe2hmm.checkpoint.Checkpoint` holding ``u``, ``previous`` and
            the histories, saved after each step (after ``after_step``, so what it adds to
            ``checkpoint.data`` is saved with the step); ``times`` is then the whole path from
            the start, of which the first ``checkpoint.step`` steps are done and skipped.

    Returns:
        One :class:`TimeStep` per step solved by this call.

    Raises:
        ValueError: ``times`` not strictly increasing or fewer than two.
        TypeError: an entry of ``histories`` is not :class:`~fe2hmm.micro.interface.Stateful`.
        NewtonConvergenceError, MicroSolveError: a step failed (histories rolled back).

    Note:
        Collective on the mesh's communicator.
    """
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times.size < 2 or not np.all(np.isfinite(times)):
        raise ValueError(f"times must be at least two finite values, got {times!r}")
    if np.any(np.diff(times) <= 0):
        bad = int(np.flatnonzero(np.diff(times) <= 0)[0])
        raise ValueError(
            f"times must increase strictly; t[{bad}]={times[bad]:g} >= "
            f"t[{bad + 1}]={times[bad + 1]:g}"
        )
    histories = check_stateful(histories)
    u = newton.u
    steps: list[TimeStep] = []
    path = [float(t) for t in times]
    done = 0 if checkpoint is None else checkpoint.steps_done("times", path, start=1)
    for t_old, t_new in zip(times[done:-1], times[done + 1 :], strict=True):
        if before_step is not None:
            before_step(float(t_old), float(t_new))
        u.x.array[:] = previous.x.array
        try:
            result = newton.solve()
        except (NewtonConvergenceError, MicroSolveError) as err:
            for h in histories:
                h.rollback()
            _log.error("time step %g -> %g failed: %s", t_old, t_new, err)
            raise
        for h in histories:
            h.commit()
        previous.x.array[:] = u.x.array
        step = TimeStep(float(t_new), float(t_new - t_old), result.iterations, result)
        steps.append(step)
        if after_step is not None:
            after_step(step)
        if checkpoint is not None:
            checkpoint.save()
    return steps
