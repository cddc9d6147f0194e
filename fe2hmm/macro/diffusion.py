r"""Diffusion and heat conduction closed by micro-models: steady and transient.

The flux ``q`` (physical sign, e.g. ``q = -K^* ∇T``) comes from a micro-model through a
:class:`~fe2hmm.closure.Closure` whose input ``gradient`` is bound to ``∇T``:

- :class:`SteadyDiffusion`: ``∇·q = f`` in Ω, weakly
  ``F(T; v) = ∫ -q·∇v dx - ∫ f v dx - Σ ∫ g v ds = 0``
  with ``g = -q·n`` a prescribed inflow on parts of the boundary;
- :class:`TransientDiffusion`: ``c ∂_t T + ∇·q = f``, one implicit step
  ``F = ∫ c (T - T_n)/Δt v dx - ∫ q·∇v dx - ∫ f v dx - Σ ∫ g v ds``.
  With a stationary closure (input ``gradient`` only) this is backward Euler; a micro-model that
  also declares ``previous_gradient`` (bound to ``∇T_n``), such as
  :class:`~fe2hmm.micro.cells.transient.TransientDiffusionCellModel`, averages its flux over the
  step itself (memory, HMM window, Crank–Nicolson in time). The storage ``c`` is the model's
  output ``storage`` where it declares one, else the ``storage`` argument.

Either model also takes a single-scale UFL law ``q = law(∇T)`` in place of the micro-model
(``lambda g: -k * g``): the reference an FE² run is compared against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Unpack

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

from fe2hmm.checkpoint import Checkpoint
from fe2hmm.closure import Closure
from fe2hmm.macro.problem import (
    ConstitutiveLaw,
    Dirichlet,
    MacroProblem,
    SolverOptions,
    _check_degrees,
    _constitutive,
    check_solver_options,
)
from fe2hmm.micro.interface import MicroModel
from fe2hmm.timestepping import TimeStep, march

__all__ = ["SteadyDiffusion", "TransientDiffusion"]

#: A boundary inflow: ``(measure, g)`` with ``g = -q·n`` a number or scalar UFL expression.
BoundaryFlux = tuple[ufl.Measure, float | ufl.core.expr.Expr]


def _scalar(value, owner: str, label: str):
    """A number (kept as a Python float) or a scalar UFL expression, else ValueError."""
    if isinstance(value, ufl.core.expr.Expr):
        if ufl.shape(value) != ():
            raise ValueError(f"{owner}: {label} must be scalar, got UFL shape {ufl.shape(value)}")
        return value
    if isinstance(value, fem.Constant):
        if np.shape(value.value) != ():
            raise ValueError(
                f"{owner}: {label} must be scalar, got a Constant of shape {np.shape(value.value)}"
            )
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}: {label} must be a number or a scalar UFL expression, got "
            f"{type(value).__name__}"
        ) from None
    if not np.isfinite(number):
        raise ValueError(f"{owner}: {label} must be finite, got {value!r}")
    return number


def _boundary_terms(F, v, boundary_flux: Sequence[BoundaryFlux], owner: str):
    for i, item in enumerate(boundary_flux):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], ufl.Measure)):
            raise ValueError(
                f"{owner}: boundary_flux[{i}] must be a pair (ds measure, inflow g), got {item!r}"
            )
        ds, g = item
        F = F - _scalar(g, owner, f"boundary_flux[{i}] inflow") * v * ds
    return F


class _SteadyConservationLaw(MacroProblem):
    """``∇·q(∇u; x) = f`` for a scalar ``u``, ``q`` from a micro-model or a UFL law.

    The form ``F(u; v) = ∫ -q·∇v dx - ∫ f v dx - Σ ∫ g v ds`` shared by
    :class:`SteadyDiffusion` and :class:`~fe2hmm.macro.darcy.DarcyFlow`; a subclass names the
    unknown, the micro-model input bound to ``∇u`` and the output that is ``q`` in
    :attr:`_names`. The arguments are those of :class:`SteadyDiffusion`.
    """

    _names: tuple[str, str, str]

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        model: MicroModel | ConstitutiveLaw,
        *,
        parameters: dict | None,
        source: float | ufl.core.expr.Expr | None,
        boundary_flux: Sequence[BoundaryFlux],
        bcs: Sequence[Dirichlet | fem.DirichletBC],
        degree: int,
        quadrature_degree: int,
        scheduler: str,
        name: str,
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        owner = type(self).__name__
        unknown, gradient, flux = self._names
        solver_options = check_solver_options(solver_options, owner)
        _check_degrees(degree, quadrature_degree)
        V = fem.functionspace(mesh, ("Lagrange", int(degree)))
        u = fem.Function(V, name=unknown)
        v = ufl.TestFunction(V)
        closure, q, dx = _constitutive(
            model,
            mesh,
            {gradient: ufl.grad(u)},
            flux,
            parameters,
            quadrature_degree,
            name,
            scheduler,
            owner,
        )
        F = -ufl.inner(q, ufl.grad(v)) * dx
        if source is not None:
            F = F - _scalar(source, owner, "source") * v * dx
        F = _boundary_terms(F, v, boundary_flux, owner)
        super().__init__(
            F,
            u,
            bcs,
            [closure] if closure is not None else [],
            dx=dx,
            **solver_options,
        )
        self.closure: Closure | None = closure
        self._flux = q


class SteadyDiffusion(_SteadyConservationLaw):
    """Steady diffusion ``∇·q(∇T; x) = f`` with the flux from a micro-model.

    Args:
        mesh: the macro mesh.
        model: a micro-model with input ``gradient`` ``(d,)`` and output ``flux`` ``(d,)``
            (e.g. :class:`~fe2hmm.micro.cells.diffusion.DiffusionCellModel`), or a UFL law
            ``q = law(∇T)``.
        parameters: the micro-model's per-point parameters (see
            :class:`~fe2hmm.closure.Closure`), e.g. ``{"volume_fraction": 0.1 + 0.4 * x[0]}``.
        source: volumetric source ``f`` (number or scalar UFL), per unit volume.
        boundary_flux: ``(ds, g)`` pairs: inflow ``g = -q·n`` through the measure's facets.
        bcs: :class:`~fe2hmm.macro.problem.Dirichlet` conditions on ``T`` (or dolfinx ones).
        degree: Lagrange degree of ``T``.
        quadrature_degree: the closure's quadrature degree.
        scheduler: where the micro solves run under MPI (``"owner"``, ``"pooled"``,
            ``"serial"``).
        name: the closure's name (function names, messages).
        **solver_options: the solver keywords of :class:`~fe2hmm.macro.problem.MacroProblem`
            (:class:`~fe2hmm.macro.problem.SolverOptions`: ``solver``, ``petsc_options``,
            ``petsc_options_prefix``, ``rtol``, ``atol``, ``max_iterations``).

    Attributes:
        T: the temperature (the unknown :attr:`u`).
        closure: the closure, or ``None`` for a UFL law.
        flux: the flux ``q`` in the form (a quadrature function or the law's UFL).

    Raises:
        ValueError: the model lacks ``gradient``/``flux`` or declares other inputs, bad degrees,
            a non-scalar source, a malformed ``boundary_flux`` entry.
        TypeError: ``model`` is neither a micro-model nor a callable.

    Note:
        Construction and solving are collective on ``mesh.comm``.
    """

    #: The unknown's name, the input bound to its gradient, the output used as the flux.
    _names = ("T", "gradient", "flux")

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        model: MicroModel | ConstitutiveLaw,
        *,
        parameters: dict | None = None,
        source: float | ufl.core.expr.Expr | None = None,
        boundary_flux: Sequence[BoundaryFlux] = (),
        bcs: Sequence[Dirichlet | fem.DirichletBC] = (),
        degree: int = 1,
        quadrature_degree: int = 2,
        scheduler: str = "owner",
        name: str = "diffusion",
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        super().__init__(
            mesh,
            model,
            parameters=parameters,
            source=source,
            boundary_flux=boundary_flux,
            bcs=bcs,
            degree=degree,
            quadrature_degree=quadrature_degree,
            scheduler=scheduler,
            name=name,
            **solver_options,
        )
        self.T = self.u
        self.flux = self._flux


class TransientDiffusion(MacroProblem):
    """One implicit step of ``c ∂_t T + ∇·q = f`` with the flux from a micro-model.

    The unknown :attr:`u` (= :attr:`T`) is the end-of-step state, :attr:`u_n` the state at the
    start of the step (initial condition: set ``u_n``'s values). :meth:`march` steps through
    a list of times.

    Args:
        mesh: the macro mesh.
        model: a micro-model with input ``gradient`` ``(d,)`` (optionally
            ``previous_gradient``, bound to ``∇T_n``) and output ``flux`` (optionally
            ``storage`` ``()``), or a UFL law ``q = law(∇T)`` (backward Euler).
        dt: the step Δt (s), > 0; :meth:`set_time_step` changes it.
        parameters: the micro-model's per-point parameters.
        storage: storage coefficient ``c`` (number or scalar UFL, e.g. ρ c_p); default 1. Not
            allowed when the model outputs ``storage`` itself.
        source: volumetric source ``f`` (number or scalar UFL; may depend on time through a
            :class:`dolfinx.fem.Constant`).
        boundary_flux: ``(ds, g)`` pairs: inflow ``g = -q·n``.
        bcs: Dirichlet conditions on ``T`` (their values may be Constants changed per step).
        degree: Lagrange degree of ``T``.
        quadrature_degree: the closure's quadrature degree.
        scheduler: where micro solves run under MPI.
        name: the closure's name.
        **solver_options: the solver keywords of :class:`~fe2hmm.macro.problem.MacroProblem`
            (:class:`~fe2hmm.macro.problem.SolverOptions`: ``solver``, ``petsc_options``,
            ``petsc_options_prefix``, ``rtol``, ``atol``, ``max_iterations``).

    Attributes:
        T: the end-of-step temperature (:attr:`u`).
        u_n: the start-of-step temperature.
        dt: the step as a :class:`dolfinx.fem.Constant` (s).
        closure: the closure, or ``None`` for a UFL law.
        flux: the flux ``q`` in the form.
        storage: the storage coefficient ``c`` in the form (the model's output or the
            argument).

    Raises:
        ValueError: ``dt`` not a positive finite number, ``storage`` given although the model
            outputs it, the model lacks ``gradient``/``flux`` or declares inputs other than
            ``gradient``/``previous_gradient``, bad degrees, non-scalar coefficients.

    Note:
        Construction and solving are collective on ``mesh.comm``.
    """

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        model: MicroModel | ConstitutiveLaw,
        *,
        dt: float,
        parameters: dict | None = None,
        storage: float | ufl.core.expr.Expr | None = None,
        source: float | ufl.core.expr.Expr | None = None,
        boundary_flux: Sequence[BoundaryFlux] = (),
        bcs: Sequence[Dirichlet | fem.DirichletBC] = (),
        degree: int = 1,
        quadrature_degree: int = 2,
        scheduler: str = "owner",
        name: str = "diffusion",
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        owner = type(self).__name__
        solver_options = check_solver_options(solver_options, owner)
        dt = _time_step(dt, owner)
        _check_degrees(degree, quadrature_degree)
        if (
            isinstance(model, MicroModel)
            and "storage" in model.output_shapes
            and storage is not None
        ):
            raise ValueError(
                f"{owner}: storage={storage!r} given, but {type(model).__name__} outputs "
                "'storage' itself"
            )
        V = fem.functionspace(mesh, ("Lagrange", int(degree)))
        T, T_n = fem.Function(V, name="T"), fem.Function(V, name="T_n")
        v = ufl.TestFunction(V)
        closure, q, dx = _constitutive(
            model,
            mesh,
            {"gradient": ufl.grad(T), "previous_gradient": ufl.grad(T_n)},
            "flux",
            parameters,
            quadrature_degree,
            name,
            scheduler,
            owner,
        )
        if closure is not None and "storage" in closure.outputs:
            c = closure.outputs["storage"]
        else:
            c = _scalar(1.0 if storage is None else storage, owner, "storage")
        step = fem.Constant(mesh, float(dt))
        F = c * (T - T_n) / step * v * dx - ufl.dot(q, ufl.grad(v)) * dx
        if source is not None:
            F = F - _scalar(source, owner, "source") * v * dx
        F = _boundary_terms(F, v, boundary_flux, owner)
        super().__init__(
            F,
            T,
            bcs,
            [closure] if closure is not None else [],
            dx=dx,
            **solver_options,
        )
        self.T = T
        self.u_n = T_n
        self.dt = step
        self.closure: Closure | None = closure
        self.flux = q
        self.storage = c

    def state_functions(self) -> dict[str, fem.Function]:
        """``{"u": u, "u_n": u_n}``: the end- and start-of-step states."""
        return {"u": self.u, "u_n": self.u_n}

    def set_time_step(self, dt: float) -> None:
        """Set Δt in the form and in the micro-model (its ``set_time_step``, where it has one).

        Args:
            dt: the step (s), > 0.

        Raises:
            ValueError: ``dt`` not a positive finite number.
        """
        _set_time_step(self, dt)

    def march(
        self,
        times: Sequence[float],
        before_step: Callable[[float, float], None] | None = None,
        after_step: Callable[[TimeStep], None] | None = None,
        histories: Sequence | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> list[TimeStep]:
        """Step ``T`` through ``times`` (see :func:`fe2hmm.timestepping.march`).

        Before each step Δt is set to ``t_new - t_old`` (:meth:`set_time_step`), then
        ``before_step(t_old, t_new)`` sets the step's data (boundary values, sources); each
        step starts from :attr:`u_n`, which takes the converged state.

        Args:
            times: increasing times, the first the current one (s).
            before_step: sets time-dependent data of a step.
            after_step: called with each converged :class:`~fe2hmm.timestepping.TimeStep`.
            histories: committed after each step, rolled back on failure; by default the
                closures' micro-models with history (:attr:`histories`).
            checkpoint: from :meth:`checkpoint`, saved after each step; ``times`` is then the
                whole path from the start and the steps already done are skipped.

        Returns:
            One :class:`~fe2hmm.timestepping.TimeStep` per step.

        Raises:
            ValueError: ``times`` fewer than two or not increasing.
            NewtonConvergenceError, MicroSolveError: a step failed (histories rolled back).

        Note:
            Collective on ``mesh.comm``.
        """

        def before(t_old: float, t_new: float) -> None:
            self.set_time_step(t_new - t_old)
            if before_step is not None:
                before_step(t_old, t_new)

        histories = self.histories if histories is None else list(histories)
        return march(self.newton, self.u_n, times, before, histories, after_step, checkpoint)


def _set_time_step(problem, dt) -> None:
    """Δt into ``problem.dt`` and into its micro-model's ``set_time_step`` (where it has one)."""
    dt = _time_step(dt, type(problem).__name__)
    problem.dt.value = dt
    setter = getattr(problem.closure.model, "set_time_step", None) if problem.closure else None
    if callable(setter):
        setter(dt)


def _time_step(dt, owner: str) -> float:
    try:
        value = float(dt)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: dt must be a number, got {type(dt).__name__}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{owner}: dt must be a finite number > 0, got {dt!r}")
    return value
