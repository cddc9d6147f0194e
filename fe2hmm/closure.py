"""Closures: bind a micro-model to the quadrature points of a macro mesh.

The closure owns quadrature-space :class:`dolfinx.fem.Function` objects for the micro-model's
outputs and tangents. :meth:`Closure.update` evaluates the macro inputs (UFL expressions) at the
rank-local quadrature points with :class:`dolfinx.fem.Expression`, calls the micro-model on the
whole batch and writes outputs and tangents back: lift → micro-evolve → restrict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh
from ufl.algorithms.apply_algebra_lowering import apply_algebra_lowering
from ufl.algorithms.apply_derivatives import apply_derivatives

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import LinearMicroModel, MicroModel
from fe2hmm.scheduler import check_scheduler, scheduled_evaluate, scheduled_tensors

__all__ = ["Closure", "ClosureTimings"]

_log = logging.getLogger(__name__)

#: What a per-point parameter may be bound to.
ParameterSource = ufl.core.expr.Expr | float | np.ndarray | Callable[[np.ndarray], np.ndarray]


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
            balance) or ``"serial"`` (all on rank 0); the last two for linear models only.

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
        if int(quadrature_degree) != quadrature_degree or quadrature_degree < 0:
            raise ValueError(
                f"quadrature_degree must be an integer >= 0, got {quadrature_degree!r}"
            )
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
        self.quadrature_degree = int(quadrature_degree)
        cell = mesh.basix_cell()
        tdim = mesh.topology.dim
        self._num_cells = mesh.topology.index_map(tdim).size_local
        self._cells = np.arange(self._num_cells, dtype=np.int32)

        def space(shape):
            element = basix.ufl.quadrature_element(
                cell, value_shape=tuple(shape), degree=self.quadrature_degree
            )
            return fem.functionspace(mesh, element)

        self._space = space
        scalar_space = space(())
        self._points = scalar_space.element.interpolation_points
        self._num_points_per_cell = self._points.shape[0]
        self._dofs = scalar_space.dofmap.list[: self._num_cells].reshape(-1)

        self.outputs: dict[str, fem.Function] = {}
        for key, shape in model.output_shapes.items():
            self.outputs[key] = fem.Function(space(shape), name=f"{name}.{key}")
        self.tangents: dict[tuple[str, str], fem.Function] = {}
        for out, oshape in model.output_shapes.items():
            for inp, ishape in model.input_shapes.items():
                self.tangents[out, inp] = fem.Function(
                    space(tuple(oshape) + tuple(ishape)), name=f"{name}.d{out}_d{inp}"
                )

        self._input_ufl = dict(inputs)
        self._input_exprs = {
            k: fem.Expression(e, self._points, comm=mesh.comm) for k, e in inputs.items()
        }
        x = ufl.SpatialCoordinate(mesh)
        self.coordinates = self._eval(fem.Expression(x, self._points), (mesh.geometry.dim,))
        self._parameters = {
            k: self._parameter_values(k, v, tuple(model.parameter_shapes[k]))
            for k, v in parameters.items()
        }
        self._tensors_cache: dict | None = None
        self._tensor_errors: np.ndarray | None = None
        #: output name -> ``(num_points,)`` estimated error bound of the last update's outputs
        #: where a surrogate served them (empty without a surrogate); see
        #: :mod:`fe2hmm.reuse.indicators`
        self.error_bounds: dict[str, np.ndarray] = {}
        self.timings = ClosureTimings()
        self.dx = ufl.Measure(
            "dx", domain=mesh, metadata={"quadrature_degree": self.quadrature_degree}
        )

    # ------------------------------------------------------------------ evaluation helpers
    @property
    def num_points(self) -> int:
        """Number of rank-local (owned) quadrature points."""
        return self._num_cells * self._num_points_per_cell

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """Per-point parameter values, name -> ``(num_points, *shape)`` (rank-local)."""
        return dict(self._parameters)

    def _eval(self, expression: fem.Expression, shape: tuple[int, ...]) -> np.ndarray:
        values = expression.eval(self.mesh, self._cells)
        return np.asarray(values, dtype=float).reshape(self.num_points, *shape)

    def quadrature_function(self, values: np.ndarray, name: str = "q") -> fem.Function:
        """A quadrature-space function on the closure's points holding ``values``.

        Args:
            values: ``(num_points, *shape)`` rank-local values.
            name: the function's name.
        """
        values = np.asarray(values, dtype=float)
        if values.shape[0] != self.num_points:
            raise ValueError(f"expected {self.num_points} values, got shape {values.shape}")
        function = fem.Function(self._space(values.shape[1:]), name=name)
        self._write(function, values)
        return function

    def point_values(self, function: fem.Function) -> np.ndarray:
        """Rank-local values ``(num_points, *shape)`` of an output or tangent function.

        The points are in the closure's order (as :attr:`coordinates`).
        """
        bs = function.function_space.dofmap.bs
        values = function.x.array.reshape(-1, bs)[self._dofs]
        return values.reshape(self.num_points, *function.ufl_shape)

    def evaluate_inputs(self) -> dict[str, np.ndarray]:
        """The macro inputs at the rank-local quadrature points: name -> ``(n, *shape)``."""
        return {
            k: self._eval(e, tuple(self.model.input_shapes[k]))
            for k, e in self._input_exprs.items()
        }

    def _parameter_values(self, key: str, source, shape: tuple[int, ...]) -> np.ndarray:
        n = self.num_points
        if isinstance(source, ufl.core.expr.Expr):
            if tuple(ufl.shape(source)) != shape:
                raise ValueError(
                    f"parameter {key!r} has UFL shape {tuple(ufl.shape(source))}, expected {shape}"
                )
            if ufl.domain.extract_domains(source):
                expression = fem.Expression(source, self._points, comm=self.mesh.comm)
                values = self._eval(expression, shape)
            else:  # a constant expression (no mesh): evaluate it once
                point = (0.0,) * self.mesh.geometry.dim
                flat = [
                    float(source[c](point)) if shape else float(source(point))
                    for c in (np.ndindex(shape) if shape else [()])
                ]
                values = np.broadcast_to(np.reshape(flat, shape), (n, *shape)).copy()
        elif callable(source):
            raw = np.asarray(source(self.coordinates.T.copy()), dtype=float)
            if raw.shape == (n, *shape):
                values = raw
            elif raw.shape == (*shape, n):
                values = np.moveaxis(raw, -1, 0)
            else:
                raise ValueError(
                    f"parameter {key!r}: callable returned shape {raw.shape}, expected "
                    f"{(n, *shape)} for {n} points"
                )
        else:
            raw = np.asarray(source, dtype=float)
            if raw.shape == (n, *shape) and raw.shape != shape:
                values = raw.copy()  # rank-local per-point values, in the closure's point order
            elif raw.shape == shape:
                values = np.broadcast_to(raw, (n, *shape)).copy()
            else:
                raise ValueError(
                    f"parameter {key!r}: array of shape {raw.shape}; expected a constant of "
                    f"shape {shape} or per-point values of shape {(n, *shape)}"
                )
        bad = ~np.isfinite(values.reshape(n, -1)).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"parameter {key!r} is not finite ({values[i]!r}) at quadrature point {i}, "
                f"x = {self.coordinates[i]}"
            )
        return values

    def set_parameter(self, key: str, source: ParameterSource) -> None:
        """Replace the values of one per-point parameter (e.g. a field that evolves).

        Args:
            key: parameter name declared by the micro-model.
            source: as in the constructor.
        """
        if key not in self.model.parameter_shapes:
            raise ValueError(
                f"unknown parameter {key!r}; the micro-model declares "
                f"{sorted(self.model.parameter_shapes)}"
            )
        self._parameters[key] = self._parameter_values(
            key, source, tuple(self.model.parameter_shapes[key])
        )
        self._tensors_cache = None

    def _write(self, function: fem.Function, values: np.ndarray) -> None:
        bs = function.function_space.dofmap.bs
        function.x.array.reshape(-1, bs)[self._dofs] = values.reshape(self.num_points, bs)
        function.x.scatter_forward()

    # ------------------------------------------------------------------ the HMM loop
    def update(self, tangents: bool = True) -> None:
        """Evaluate inputs, run the micro-model on all local points, write outputs back.

        For a linear micro-model the effective tensors are computed once for the current
        parameters and reused by later updates until :meth:`set_parameter` changes them.

        Args:
            tangents: also write the tangents (needed for Newton's Jacobian).

        Raises:
            MicroSolveError: a micro solve failed on some rank; on the failing rank the error
                names the point, its macro coordinates and its parameters.

        Note:
            Collective on ``mesh.comm``.
        """
        comm = self.mesh.comm
        t0 = time.perf_counter()
        error: BaseException | None = None
        result = None
        linear = isinstance(self.model, LinearMicroModel)
        refresh = linear and (self._tensors_cache is None or not self.model.reuse)
        inputs = None
        scheduled = None
        if self.scheduler != "owner" and (refresh or not linear):
            # collective scheduling: every rank takes part, so settle earlier errors first
            try:
                inputs = self.evaluate_inputs()
            except Exception as err:  # noqa: BLE001 - re-raised below on every rank
                error = err
            if comm.allreduce(1 if error is not None else 0):
                self._raise_everywhere(error, comm)
            t1 = time.perf_counter()
            self.timings.evaluate_inputs += t1 - t0
            shared = self.timings.communication + self.timings.waiting
            try:
                if linear:
                    self._tensors_cache, self._tensor_errors = scheduled_tensors(
                        self.model,
                        self._parameters,
                        self.num_points,
                        comm,
                        self.scheduler,
                        self.timings,
                    )
                else:
                    scheduled = scheduled_evaluate(
                        self.model,
                        inputs,
                        self._parameters,
                        tangents,
                        comm,
                        self.scheduler,
                        self.timings,
                    )
            except MicroSolveError as err:
                error = self._locate(err)
            except Exception as err:  # noqa: BLE001 - re-raised below on every rank
                error = err
            # micro = the scheduled stage minus its communication and waiting
            self.timings.micro += (time.perf_counter() - t1) - (
                self.timings.communication + self.timings.waiting - shared
            )
            refresh = False
            if comm.allreduce(1 if error is not None else 0):
                self._raise_everywhere(error, comm)
            t0 = time.perf_counter()
        try:
            if inputs is None:
                inputs = self.evaluate_inputs()
            t1 = time.perf_counter()
            if scheduled is None:
                self.timings.evaluate_inputs += t1 - t0
            if linear:
                if refresh:
                    self._tensors_cache = self.model.tensors(self._parameters, self.num_points)
                    self._tensor_errors = self.model.last_tensor_errors
                result = self.model.evaluate(
                    inputs,
                    self._parameters,
                    tangents=tangents,
                    tensors=self._tensors_cache,
                    tensor_errors=self._tensor_errors,
                )
            elif scheduled is not None:
                result = scheduled
            else:
                result = self.model.evaluate(inputs, self._parameters, tangents=tangents)
            self.timings.micro += time.perf_counter() - t1
            self._check_result(result, tangents)
        except MicroSolveError as err:
            error = self._locate(err)
        except Exception as err:  # noqa: BLE001 - re-raised below on every rank
            error = err
        t_wait = time.perf_counter()
        failed = comm.allreduce(1 if error is not None else 0)  # also waits for the slowest rank
        self.timings.waiting += time.perf_counter() - t_wait
        if failed:
            self._raise_everywhere(error, comm, failed)
        t2 = time.perf_counter()
        self.error_bounds = dict(result.error_bounds)
        for key, function in self.outputs.items():
            self._write(function, result.outputs[key])
        if tangents:
            for key, function in self.tangents.items():
                value = result.tangents.get(key)
                if value is None:
                    value = np.zeros((self.num_points, *function.ufl_shape))
                self._write(function, value)
        self.timings.write_back += time.perf_counter() - t2
        self.timings.updates += 1

    def _raise_everywhere(self, error, comm, failed: int = 1):
        """Raise this rank's error, or tell ranks without one that another rank failed."""
        if error is not None:
            raise error
        raise MicroSolveError(
            f"closure {self.name!r}: a micro solve failed on {failed} other rank(s); "
            "see their error",
            rank=comm.rank,
        )

    def _locate(self, err: MicroSolveError) -> MicroSolveError:
        if err.point is None or not (0 <= err.point < self.num_points):
            return err
        i = err.point
        params = err.parameters or {k: v[i] for k, v in self._parameters.items()}
        located = MicroSolveError(
            f"closure {self.name!r}: {err.message}",
            point=i,
            coordinates=self.coordinates[i],
            parameters=params,
            rank=self.mesh.comm.rank,
        )
        located.__cause__ = err
        return located

    def _check_result(self, result, tangents: bool) -> None:
        for key, shape in self.model.output_shapes.items():
            value = result.outputs.get(key)
            if value is None:
                raise RuntimeError(f"{type(self.model).__name__} returned no output {key!r}")
            if value.shape != (self.num_points, *shape):
                raise RuntimeError(
                    f"{type(self.model).__name__} output {key!r} has shape {value.shape}, "
                    f"expected {(self.num_points, *shape)}"
                )
            checks = [(key, value)]
            if tangents:
                checks += [(f"d{o}/d{i}", t) for (o, i), t in result.tangents.items() if o == key]
            for label, arr in checks:
                bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
                if bad.any():
                    raise MicroSolveError(
                        f"micro-model returned non-finite {label}",
                        point=int(np.flatnonzero(bad)[0]),
                    )

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
        terms = []
        for out, q in self.outputs.items():
            direction = None
            for inp, g in self._input_ufl.items():
                dg = apply_derivatives(apply_algebra_lowering(ufl.derivative(g, u, du)))
                term = _contract(self.tangents[out, inp], dg, len(q.ufl_shape), len(ufl.shape(g)))
                direction = term if direction is None else direction + term
            if direction is not None:
                terms.append(ufl.derivative(F, q, direction))
        return terms


def _contract(T, dg, out_rank: int, in_rank: int):
    """``T[o..., i...] dg[i...]`` summed over the input indices."""
    if in_rank == 0:
        return T * dg
    idx = ufl.indices(out_rank + in_rank)
    expr = T[idx] * dg[idx[out_rank:]]
    return ufl.as_tensor(expr, idx[:out_rank]) if out_rank else expr
