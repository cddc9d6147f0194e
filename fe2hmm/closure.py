"""Closures: bind a micro-model to the quadrature points of a macro mesh.

A closure is a micro-model on a :class:`~fe2hmm.quadrature.QuadratureMap` (the quadrature-space
functions of outputs, declared tangent blocks and standard errors; evaluation of the UFL inputs;
write-back; Jacobian terms) plus the parallel policy: :meth:`Closure.update` evaluates the macro
inputs at the rank-local points, runs the micro-model under the chosen scheduler, broadcasts
any failure to every rank and writes the result back — lift → micro-evolve → restrict — with
timings of each stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

from fe2hmm.errors import (
    MicroModelError,
    MicroSolveError,
    MicroStop,
    classify,
    describe,
    located_class,
    stop_everywhere,
)
from fe2hmm.micro.interface import MicroModel
from fe2hmm.quadrature import ParameterSource, QuadratureMap
from fe2hmm.scheduler import (
    check_scheduler,
    register_local_ranks,
    scheduled_evaluate,
    stop_watchdog,
)

__all__ = ["Closure", "ClosureTimings"]

_log = logging.getLogger(__name__)


@dataclass
class ClosureTimings:
    """Cumulative wall time (s) of the closure's stages on this rank.

    Attributes:
        evaluate_inputs: evaluating UFL inputs/parameters at quadrature points.
        micro: inside the micro-model (for pooled/serial scheduling: the whole scheduled
            stage, including its communication and waiting).
        solve_seconds: pooled/serial scheduling only: in this rank's own micro solves.
        communication: pooled/serial scheduling: exchanging requests and results.
        waiting: blocked until the slowest rank finished its micro work (the barrier).
        write_back: writing outputs/tangents into quadrature functions (with ghost update).
        updates: number of :meth:`Closure.update` calls.
    """

    evaluate_inputs: float = 0.0
    micro: float = 0.0
    solve_seconds: float = 0.0
    communication: float = 0.0
    waiting: float = 0.0
    write_back: float = 0.0
    updates: int = 0

    def as_dict(self) -> dict:
        """Return the timings as a plain dict."""
        return dict(self.__dict__)


class Closure:
    """Constitutive data of a macro form computed by a micro-model at quadrature points.

    Args:
        model: the micro-model.
        mesh: the macro mesh.
        inputs: micro-model input name -> UFL expression of the macro solution (e.g.
            ``{"gradient": ufl.grad(T)}``); shapes must match ``model.input_shapes``.
        parameters: per-point parameter name -> UFL expression (may use
            ``ufl.SpatialCoordinate``), a constant, a callable ``f(x)`` taking coordinates
            ``(gdim, n)`` and returning ``(n, *shape)`` (or ``(n,)`` for scalars), or an array
            of rank-local per-point values ``(num_points, *shape)`` in the order of
            :attr:`coordinates` (e.g. an evolving state). Parameters are held fixed when
            differentiating (no tangent with respect to them).
        quadrature_degree: degree of the quadrature rule; forms using the closure's functions
            must be integrated with :attr:`dx` (same rule).
        name: label used in function names and log messages.
        scheduler: where micro solves run under MPI (:data:`fe2hmm.scheduler.SCHEDULERS`):
            ``"owner"`` (each rank its own points), ``"pooled"`` (global dedupe, dynamic load
            balance) or ``"serial"`` (all on rank 0); the last two for models that split
            into tasks (linear and plastic cells, and reuse wrappers around them).

    Note:
        Construction and :meth:`update` are collective on ``mesh.comm``: every rank evaluates
        its own points, and a micro failure on any rank is raised on every rank.
    """

    def __init__(
        self,
        model: MicroModel,
        mesh: _dmesh.Mesh,
        inputs: dict[str, ufl.core.expr.Expr],
        parameters: dict[str, ParameterSource] | None = None,
        quadrature_degree: int = 2,
        name: str = "closure",
        scheduler: str = "owner",
    ) -> None:
        if not isinstance(model, MicroModel):
            raise TypeError(f"model must be a fe2hmm MicroModel, got {type(model).__name__}")
        parameters = dict(parameters or {})
        for kind, given, declared in (
            ("inputs", inputs, model.input_shapes),
            ("parameters", parameters, model.parameter_shapes),
        ):
            if set(given) != set(declared):
                raise ValueError(
                    f"{type(model).__name__} needs {kind} {sorted(declared)}, got {sorted(given)}"
                )
        for key, expr in inputs.items():
            shape = tuple(ufl.shape(expr))
            if shape != tuple(model.input_shapes[key]):
                raise ValueError(
                    f"input {key!r} has UFL shape {shape}, the micro-model expects "
                    f"{tuple(model.input_shapes[key])}"
                )
        self.scheduler = check_scheduler(scheduler, model)
        self.model = model
        self.mesh = mesh
        self.name = name
        #: the quadrature map: functions, evaluation, write-back, Jacobian terms
        self.map = QuadratureMap(
            mesh,
            inputs,
            model.output_shapes,
            parameters,
            model.parameter_shapes,
            tangent_blocks=model.tangent_blocks,
            standard_errors=list(model.output_shapes) if model.is_stochastic else (),
            quadrature_degree=quadrature_degree,
            name=name,
        )
        self.quadrature_degree = self.map.quadrature_degree
        #: output name -> quadrature function
        self.outputs: dict[str, fem.Function] = self.map.outputs
        #: ``(output, input)`` -> quadrature function of the tangent (declared blocks only)
        self.tangents: dict[tuple[str, str], fem.Function] = self.map.tangents
        #: output name -> quadrature function of its standard error (stochastic models)
        self.standard_errors: dict[str, fem.Function] = self.map.standard_errors
        self.coordinates = self.map.coordinates
        self.dx = self.map.dx
        #: output name -> ``(num_points,)`` estimated error bound of the last update's outputs
        #: where a surrogate served them (empty without a surrogate); see
        #: :mod:`fe2hmm.reuse.indicators`
        self.error_bounds: dict[str, np.ndarray] = {}
        self.timings = ClosureTimings()

    # ------------------------------------------------------------------ the map's data
    @property
    def num_points(self) -> int:
        """Number of rank-local (owned) quadrature points."""
        return self.map.num_points

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """Per-point parameter values, name -> ``(num_points, *shape)`` (rank-local)."""
        return self.map.parameters

    def quadrature_function(self, values: np.ndarray, name: str = "q") -> fem.Function:
        """A quadrature-space function holding ``values`` (see :meth:`QuadratureMap.function`)."""
        return self.map.function(values, name)

    def point_values(self, function: fem.Function) -> np.ndarray:
        """Rank-local values ``(num_points, *shape)`` of an output, tangent or error function."""
        return self.map.point_values(function)

    def evaluate_inputs(self) -> dict[str, np.ndarray]:
        """The macro inputs at the rank-local quadrature points: name -> ``(n, *shape)``."""
        return self.map.evaluate_inputs()

    def set_parameter(self, key: str, source: ParameterSource) -> None:
        """Replace the values of one per-point parameter (e.g. a field that evolves).

        Args:
            key: parameter name declared by the micro-model.
            source: as in the constructor.
        """
        self.map.set_parameter(key, source)

    # ------------------------------------------------------------------ the HMM loop
    def update(self, tangents: bool = True) -> None:
        """Evaluate inputs, run the micro-model on all local points, write outputs back.

        Every update asks the model for every point: what may be reused (a linear model's
        tensors for unchanged parameters, identical requests, cached or interpolated answers)
        is decided by the reuse wrappers around the model (:mod:`fe2hmm.reuse`).

        Args:
            tangents: also write the tangents (needed for Newton's Jacobian).

        Raises:
            MicroSolveError: a micro solve failed on some rank; on the failing rank the error
                names the point, its macro coordinates and its parameters.
            MicroModelError: on every rank, when a model on some rank raised a programming
                error (``TypeError``, …) or returned a missing or misshapen output, tangent
                block or standard error (the failing rank's names it; a ``RuntimeError``, not
                a ``MicroSolveError``: no cut-back retries it).
            SystemExit, KeyboardInterrupt: on every rank, when a micro-model on some rank
                raised one (or another non-``Exception``); the message names the point.

        Note:
            Collective on ``mesh.comm``.
        """
        comm = self.mesh.comm
        register_local_ranks(comm)  # once per communicator: whom a stop may have to end
        t0 = time.perf_counter()
        error: BaseException | None = None
        result = None
        try:
            inputs = self.evaluate_inputs()
        except Exception as err:  # noqa: BLE001 - re-raised below on every rank
            error = self._locate(err)
        t1 = time.perf_counter()
        self.timings.evaluate_inputs += t1 - t0
        if self.scheduler != "owner":
            # collective scheduling: every rank takes part, so settle earlier errors first
            failures = comm.allgather(None if error is None else (classify(error)[0], str(error)))
            if any(failures):
                self._raise_everywhere(error, comm, failures)
            shared = self.timings.communication + self.timings.waiting
            try:
                result = scheduled_evaluate(
                    self.model,
                    inputs,
                    self.map.parameters,
                    tangents,
                    comm,
                    self.scheduler,
                    self.timings,
                )
                self.map.check(result, tangents, source=type(self.model).__name__)
            except BaseException as err:  # noqa: BLE001 - re-raised below on every rank
                error = self._locate(err)
            # micro = the scheduled stage minus its communication and waiting
            self.timings.micro += (time.perf_counter() - t1) - (
                self.timings.communication + self.timings.waiting - shared
            )
        elif error is None:
            try:
                result = self.model.evaluate(inputs, self.map.parameters, tangents=tangents)
                self.map.check(result, tangents, source=type(self.model).__name__)
            except BaseException as err:  # noqa: BLE001 - re-raised below on every rank
                error = self._locate(err)
            self.timings.micro += time.perf_counter() - t1
        t_wait = time.perf_counter()
        # every rank learns every failure (also waits for the slowest rank)
        with stop_watchdog(comm, error):
            failures = comm.allgather(None if error is None else (classify(error)[0], str(error)))
        self.timings.waiting += time.perf_counter() - t_wait
        if any(failures):
            self._raise_everywhere(error, comm, failures)
        t2 = time.perf_counter()
        self.error_bounds = dict(result.error_bounds)
        self.map.write(result, tangents)
        self.timings.write_back += time.perf_counter() - t2
        self.timings.updates += 1

    def _raise_everywhere(self, error, comm, failures):
        """Raise on every rank after a failure on some: this rank's error, or a pointer.

        A stop (``SystemExit``, ``KeyboardInterrupt`` in a micro-model) on any rank ends the run
        on every rank as :func:`~fe2hmm.errors.stop_everywhere` of it; else a broken model
        (kind ``"bug"``) on any rank is a :class:`MicroModelError` on every rank; else every
        rank raises a :class:`MicroSolveError` — its own (``error`` is always located, see
        :meth:`_locate`) or one naming the ranks that failed. The same class everywhere: a
        cut-back that catches it on one rank catches it on all.
        """
        stops = [
            r for r, f in enumerate(failures) if f is not None and f[0] in ("exit", "interrupt")
        ]
        if stops:
            if isinstance(error, MicroStop):
                raise stop_everywhere(error, comm.size) from error
            r = stops[0]
            kind, text = failures[r]
            text = text.removeprefix(f"closure {self.name!r}: ")
            stop = MicroStop.of_kind(
                kind, f"closure {self.name!r}: rank {r} stopped the run: {text}", rank=comm.rank
            )
            raise stop_everywhere(stop, comm.size) from error
        kind = "bug" if any(f is not None and f[0] == "bug" for f in failures) else "error"
        if error is not None and classify(error)[0] == kind:
            raise error
        cls = located_class(kind)
        failed = [r for r, f in enumerate(failures) if f is not None and f[0] == kind]
        raise cls(
            f"closure {self.name!r}: a micro solve failed on other rank(s) "
            f"{', '.join(map(str, failed))}; see their error",
            rank=comm.rank,
        ) from error

    def _locate(self, err: BaseException) -> BaseException:
        """Name the point, its macro coordinates, parameters and rank in a micro failure.

        A :class:`MicroSolveError`/:class:`MicroModelError`/:class:`MicroStop` with a point of
        this batch gets them; any other exception becomes one of these three (by its
        :func:`~fe2hmm.errors.classify` kind) naming the closure, the model and this rank.
        """
        rank = self.mesh.comm.rank
        if not isinstance(err, (MicroSolveError, MicroModelError, MicroStop)):
            kind = classify(err)[0]
            message = f"closure {self.name!r}: {type(self.model).__name__}: {describe(err)}"
            if kind in ("exit", "interrupt"):
                located = MicroStop(err, rank=rank, message=message)
            else:
                located = located_class(kind)(message, rank=rank)
            located.__cause__ = err
            return located
        if err.point is None or not (0 <= err.point < self.num_points):
            return err
        i = err.point
        where = {
            "point": i,
            "coordinates": self.coordinates[i],
            "parameters": err.parameters or {k: v[i] for k, v in self.map.parameters.items()},
            "rank": rank,
        }
        message = f"closure {self.name!r}: {err.message}"
        if isinstance(err, MicroStop):
            located = MicroStop(err.stop, message=message, **where)
        else:
            located = type(err)(message, **where)
        located.__cause__ = err
        return located

    # ------------------------------------------------------------------ linearisation
    def jacobian(self, F: ufl.Form, u: fem.Function, du: ufl.Argument | None = None) -> ufl.Form:
        """The Gateaux derivative of a residual form that uses this closure's outputs.

        ``dF/du[du] = ∂F/∂u[du] + Σ ∂F/∂q[T_{q,g} · ∂g/∂u[du]]`` for every output ``q`` and
        input ``g``, with the tangent functions ``T`` supplied by the micro-model.

        Args:
            F: residual form (linear in the test function).
            u: the macro unknown.
            du: trial function (created when omitted).

        Returns:
            The bilinear Jacobian form.
        """
        if du is None:
            du = ufl.TrialFunction(u.function_space)
        J = ufl.derivative(F, u, du)
        for term in self.jacobian_terms(F, u, du):
            J = J + term
        return J

    def jacobian_terms(self, F: ufl.Form, u: fem.Function, du: ufl.Argument) -> list[ufl.Form]:
        """The chain-rule terms ``∂F/∂q[T_{q,g} · ∂g/∂u[du]]`` of :meth:`jacobian`, one per output.

        Args:
            F: residual form.
            u: the macro unknown.
            du: trial function.

        Returns:
            Bilinear forms to add to ``ufl.derivative(F, u, du)``.
        """
        return self.map.jacobian_terms(F, u, du)
