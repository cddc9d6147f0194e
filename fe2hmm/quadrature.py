"""The quadrature map: a mesh's quadrature points, the data a micro-model needs and returns there.

A :class:`QuadratureMap` owns the quadrature-space :class:`dolfinx.fem.Function` objects that a
macro form uses as constitutive data — outputs, the *declared* tangent blocks, standard errors of
stochastic outputs — and the other direction: evaluation of the UFL inputs and of the per-point
parameters at the rank-local points with :class:`dolfinx.fem.Expression`, and the chain-rule
Jacobian terms. It has no MPI policy and calls no micro-model: :class:`fe2hmm.closure.Closure`
puts a micro-model, a scheduler, failure broadcast and timings on top of it, and a micro cell
whose material lives at its own quadrature points (J2 plasticity) uses a map directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh
from ufl.algorithms.apply_algebra_lowering import apply_algebra_lowering
from ufl.algorithms.apply_derivatives import apply_derivatives

from fe2hmm.errors import MicroModelError, MicroSolveError
from fe2hmm.micro.interface import MicroResult

__all__ = ["QuadratureMap", "ParameterSource"]

Shape = tuple[int, ...]

#: What a per-point parameter may be bound to.
ParameterSource = ufl.core.expr.Expr | float | np.ndarray | Callable[[np.ndarray], np.ndarray]


class QuadratureMap:
    """Quadrature-space data of one constitutive relation on a mesh (rank-local points).

    Args:
        mesh: the mesh.
        inputs: input name -> UFL expression of the unknowns (e.g. ``{"gradient": ufl.grad(T)}``).
        output_shapes: output name -> per-point shape.
        parameters: per-point parameter name -> UFL expression (may use
            ``ufl.SpatialCoordinate``), a constant, a callable ``f(x)`` taking coordinates
            ``(gdim, n)`` and returning ``(n, *shape)`` (or ``(n,)`` for scalars), or an array of
            rank-local per-point values ``(num_points, *shape)`` in the order of
            :attr:`coordinates`.
        parameter_shapes: per-point parameter name -> shape (required for every parameter).
        tangent_blocks: the ``(output, input)`` pairs that have a tangent function; default:
            every pair. Only these are allocated and enter :meth:`jacobian_terms`.
        standard_errors: outputs that get a standard-error function (stochastic outputs).
        quadrature_degree: degree of the quadrature rule; forms using the map's functions must
            be integrated with :attr:`dx` (same rule).
        name: prefix of the functions' names.

    Attributes:
        outputs: output name -> quadrature function.
        tangents: ``(output, input)`` -> quadrature function of ∂output/∂input (declared blocks).
        standard_errors: output name -> quadrature function of the output's standard error.
        coordinates: macro coordinates of the rank-local points ``(num_points, gdim)``.
        dx: the integration measure of the map's quadrature rule.
    """

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        inputs: dict[str, ufl.core.expr.Expr],
        output_shapes: dict[str, Shape],
        parameters: dict[str, ParameterSource] | None = None,
        parameter_shapes: dict[str, Shape] | None = None,
        tangent_blocks: Iterable[tuple[str, str]] | None = None,
        standard_errors: Iterable[str] = (),
        quadrature_degree: int = 2,
        name: str = "q",
    ) -> None:
        if int(quadrature_degree) != quadrature_degree or quadrature_degree < 0:
            raise ValueError(
                f"quadrature_degree must be an integer >= 0, got {quadrature_degree!r}"
            )
        parameters = dict(parameters or {})
        self.parameter_shapes = {k: tuple(s) for k, s in (parameter_shapes or {}).items()}
        if set(parameters) != set(self.parameter_shapes):
            raise ValueError(
                f"parameters {sorted(parameters)} do not match the declared parameter shapes "
                f"{sorted(self.parameter_shapes)}"
            )
        self.mesh, self.name = mesh, name
        self.quadrature_degree = int(quadrature_degree)
        self.input_shapes = {k: tuple(ufl.shape(e)) for k, e in inputs.items()}
        self.output_shapes = {k: tuple(s) for k, s in output_shapes.items()}
        blocks = (
            [(o, i) for o in self.output_shapes for i in self.input_shapes]
            if tangent_blocks is None
            else [tuple(b) for b in tangent_blocks]
        )
        for out, inp in blocks:
            if out not in self.output_shapes or inp not in self.input_shapes:
                raise ValueError(
                    f"tangent block ({out!r}, {inp!r}) names no output of "
                    f"{sorted(self.output_shapes)} or no input of {sorted(self.input_shapes)}"
                )
        errors = list(standard_errors)
        for out in errors:
            if out not in self.output_shapes:
                raise ValueError(
                    f"standard error of {out!r}: no such output in {sorted(self.output_shapes)}"
                )

        tdim = mesh.topology.dim
        self._num_cells = mesh.topology.index_map(tdim).size_local
        self._cells = np.arange(self._num_cells, dtype=np.int32)
        scalar_space = self.space(())
        self._points = scalar_space.element.interpolation_points
        self._num_points_per_cell = self._points.shape[0]
        self._dofs = scalar_space.dofmap.list[: self._num_cells].reshape(-1)

        self.outputs: dict[str, fem.Function] = {
            k: fem.Function(self.space(s), name=f"{name}.{k}")
            for k, s in self.output_shapes.items()
        }
        self.tangents: dict[tuple[str, str], fem.Function] = {
            (o, i): fem.Function(
                self.space(self.output_shapes[o] + self.input_shapes[i]), name=f"{name}.d{o}_d{i}"
            )
            for o, i in blocks
        }
        self.standard_errors: dict[str, fem.Function] = {
            k: fem.Function(self.space(self.output_shapes[k]), name=f"{name}.{k}_standard_error")
            for k in errors
        }
        self._input_ufl = dict(inputs)
        self._input_exprs = {
            k: fem.Expression(e, self._points, comm=mesh.comm) for k, e in inputs.items()
        }
        x = ufl.SpatialCoordinate(mesh)
        self.coordinates = self._eval(fem.Expression(x, self._points), (mesh.geometry.dim,))
        self._parameters = {
            k: self._parameter_values(k, v, self.parameter_shapes[k]) for k, v in parameters.items()
        }
        self.dx = ufl.Measure(
            "dx", domain=mesh, metadata={"quadrature_degree": self.quadrature_degree}
        )

    # ------------------------------------------------------------------ points and spaces
    def space(self, shape: Shape) -> fem.FunctionSpace:
        """A quadrature space of the map's rule with per-point value shape ``shape``."""
        element = basix.ufl.quadrature_element(
            self.mesh.basix_cell(), value_shape=tuple(shape), degree=self.quadrature_degree
        )
        return fem.functionspace(self.mesh, element)

    @property
    def num_points(self) -> int:
        """Number of rank-local (owned) quadrature points."""
        return self._num_cells * self._num_points_per_cell

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """Per-point parameter values, name -> ``(num_points, *shape)`` (rank-local)."""
        return dict(self._parameters)

    def _eval(self, expression: fem.Expression, shape: Shape) -> np.ndarray:
        values = expression.eval(self.mesh, self._cells)
        return np.asarray(values, dtype=float).reshape(self.num_points, *shape)

    def expression(self, expr: ufl.core.expr.Expr) -> Callable[[], np.ndarray]:
        """Compile a UFL expression once; the returned callable evaluates it at the points.

        Args:
            expr: any UFL expression on the map's mesh.

        Returns:
            ``f()`` -> values ``(num_points, *ufl.shape(expr))`` (rank-local).
        """
        compiled = fem.Expression(expr, self._points, comm=self.mesh.comm)
        shape = tuple(ufl.shape(expr))
        return lambda: self._eval(compiled, shape)

    def evaluate_inputs(self) -> dict[str, np.ndarray]:
        """The inputs at the rank-local quadrature points: name -> ``(num_points, *shape)``."""
        return {k: self._eval(e, self.input_shapes[k]) for k, e in self._input_exprs.items()}

    def _parameter_values(self, key: str, source, shape: Shape) -> np.ndarray:
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
                values = raw.copy()  # rank-local per-point values, in the map's point order
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
            key: a declared parameter name.
            source: as in the constructor.
        """
        if key not in self.parameter_shapes:
            raise ValueError(
                f"unknown parameter {key!r}; declared: {sorted(self.parameter_shapes)}"
            )
        self._parameters[key] = self._parameter_values(key, source, self.parameter_shapes[key])

    # ------------------------------------------------------------------ values in functions
    def function(self, values: np.ndarray, name: str = "q") -> fem.Function:
        """A quadrature-space function on the map's points holding ``values``.

        Args:
            values: ``(num_points, *shape)`` rank-local values.
            name: the function's name.
        """
        values = np.asarray(values, dtype=float)
        if values.shape[0] != self.num_points:
            raise ValueError(f"expected {self.num_points} values, got shape {values.shape}")
        function = fem.Function(self.space(values.shape[1:]), name=name)
        self._write(function, values)
        return function

    def point_values(self, function: fem.Function) -> np.ndarray:
        """Rank-local values ``(num_points, *shape)`` of a function on the map's space.

        The points are in the map's order (as :attr:`coordinates`).
        """
        bs = function.function_space.dofmap.bs
        values = function.x.array.reshape(-1, bs)[self._dofs]
        return values.reshape(self.num_points, *function.ufl_shape)

    def _write(self, function: fem.Function, values: np.ndarray) -> None:
        bs = function.function_space.dofmap.bs
        function.x.array.reshape(-1, bs)[self._dofs] = values.reshape(self.num_points, bs)
        function.x.scatter_forward()

    def check(self, result: MicroResult, tangents: bool = True, source: str = "micro-model"):
        """Check a micro result against the map's declarations before it is written.

        Args:
            result: the micro-model's answer for the rank-local points.
            tangents: whether the declared tangent blocks are required.
            source: the model's name, for the messages.

        Raises:
            MicroModelError: (a ``RuntimeError``) an output, a declared tangent block or a
                standard error is missing, has the wrong shape, or an undeclared tangent block
                was returned (names it).
            MicroSolveError: a value is not finite (names the point).
        """
        n = self.num_points
        checks = []
        for key, shape in self.output_shapes.items():
            value = result.outputs.get(key)
            if value is None:
                raise MicroModelError(f"{source} returned no output {key!r}")
            if np.shape(value) != (n, *shape):
                raise MicroModelError(
                    f"{source} output {key!r} has shape {np.shape(value)}, expected {(n, *shape)}"
                )
            checks.append((key, value))
        if tangents:
            for (out, inp), function in self.tangents.items():
                value = result.tangents.get((out, inp))
                expected = (n, *function.ufl_shape)
                if value is None:
                    raise MicroModelError(
                        f"{source} returned no tangent d{out}/d{inp}, a declared tangent block "
                        f"(shape {expected})"
                    )
                if np.shape(value) != expected:
                    raise MicroModelError(
                        f"{source} tangent d{out}/d{inp} has shape {np.shape(value)}, "
                        f"expected {expected}"
                    )
                checks.append((f"d{out}/d{inp}", value))
            extra = set(result.tangents) - set(self.tangents)
            if extra:
                o, i = sorted(extra)[0]
                raise MicroModelError(
                    f"{source} returned tangent d{o}/d{i}, which is not a declared tangent "
                    f"block {sorted(self.tangents)}"
                )
        for key, function in self.standard_errors.items():
            value = result.standard_errors.get(key)
            expected = (n, *function.ufl_shape)
            if value is None or np.shape(value) != expected:
                raise MicroModelError(
                    f"{source} is stochastic but returned "
                    + ("no" if value is None else f"shape {np.shape(value)} for the")
                    + f" standard error of {key!r} (expected {expected})"
                )
            checks.append((f"standard error of {key}", value))
        for label, arr in checks:
            arr = np.asarray(arr)
            bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
            if bad.any():
                raise MicroSolveError(
                    f"{source} returned non-finite {label}", point=int(np.flatnonzero(bad)[0])
                )

    def write(self, result: MicroResult, tangents: bool = True) -> None:
        """Write outputs, the declared tangent blocks and standard errors into the functions.

        Call :meth:`check` first: this only copies (with a ghost update).

        Args:
            result: values for the rank-local points.
            tangents: also write the tangent blocks.
        """
        for key, function in self.outputs.items():
            self._write(function, np.asarray(result.outputs[key]))
        if tangents:
            for key, function in self.tangents.items():
                self._write(function, np.asarray(result.tangents[key]))
        for key, function in self.standard_errors.items():
            self._write(function, np.asarray(result.standard_errors[key]))

    # ------------------------------------------------------------------ linearisation
    def jacobian_terms(self, F: ufl.Form, u: fem.Function, du: ufl.Argument) -> list[ufl.Form]:
        """The chain-rule terms ``∂F/∂q[T_{q,g} · ∂g/∂u[du]]``, one per output with a tangent.

        Args:
            F: residual form using the map's outputs.
            u: the unknown the inputs depend on.
            du: trial function.

        Returns:
            Bilinear forms to add to ``ufl.derivative(F, u, du)``.
        """
        terms = []
        for out, q in self.outputs.items():
            direction = None
            for inp, g in self._input_ufl.items():
                if (out, inp) not in self.tangents:
                    continue
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
