r"""Thermo-electric conduction (Joule heating) closed by micro-models: steady and transient.

A solid electrolyte (or any ohmic conductor) between an anode held at the potential ``V`` and a
cathode held at 0 carries the current density ``j = -σ(T) ∇φ``; the current is conserved and
its dissipation heats the body:

.. math:: \nabla\cdot(\sigma(T)\nabla\phi) = 0, \qquad
   c\,\partial_t T - \nabla\cdot(k\nabla T) = \sigma(T)|\nabla\phi|^2 + f,

with ``φ = V`` on the anode, ``φ = 0`` on the cathode, no current through the rest of the
boundary, Dirichlet conditions on ``T`` (typically ``T = T_e`` on the electrodes) and optional
boundary heat inflows ``g`` (e.g. Newton cooling ``g = -h (T - T_a)``). The conductivity
``σ(T)`` comes from a micro-model through a :class:`~fe2hmm.closure.Closure` (input
``temperature`` ``()``, output ``conductivity`` ``()``, tangent ``∂σ/∂T``), or from a UFL law
``σ = law(T)`` (``lambda T: s0 * ufl.exp(-Ea / T)``): the single-scale reference.

**Reformulation.** The potential is written ``φ = V ψ`` with ``ψ = 1`` on the anode and ``0`` on
the cathode. The current equation is linear and homogeneous in ``φ``, so ``ψ`` solves
``∇·(σ(T)∇ψ) = 0`` whatever ``V`` is, and the residual depends on the voltage only through the
Joule term ``V² σ|∇ψ|²``. The Dirichlet values do not depend on ``V``, ``∂F/∂V`` is the single
term ``-2V σ|∇ψ|² v`` (a central difference in ``V`` is exact), and ``V = 0`` is an ordinary
state. The unknown is the pair ``u = (ψ, T)`` on a blocked Lagrange space with two components
(``u[0] = ψ``, ``u[1] = T``), so :class:`~fe2hmm.macro.problem.Dirichlet` ``component=1``
addresses ``T`` and :meth:`~fe2hmm.macro.problem.MacroProblem.reaction` gives the electrode
currents. The weak residual (test functions ``(w, v)``) is

.. math:: F = \int \sigma\nabla\psi\cdot\nabla w + k\nabla T\cdot\nabla v
   - V^2\sigma|\nabla\psi|^2 v - f v\,dx - \sum\int g v\,ds
   \;\Big[+ \int c\,\frac{T - T_n}{\Delta t}\,v\,dx\Big],

solved by fe2hmm's Newton method with the Jacobian ``∂F/∂u`` plus the chain-rule term through
the closure's tangent ``∂σ/∂T`` (:attr:`~fe2hmm.macro.problem.MacroProblem.J`). The voltage is
the :class:`dolfinx.fem.Constant` :attr:`voltage`: change it for load steps, or follow the
branch through the thermal-runaway fold with :func:`fe2hmm.macro.continuation.continuation`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Unpack

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

from fe2hmm.checkpoint import Checkpoint
from fe2hmm.closure import Closure
from fe2hmm.errors import Fe2hmmError
from fe2hmm.macro.diffusion import _scalar, _set_time_step, _time_step
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

__all__ = ["SteadyThermoElectric", "TransientThermoElectric", "ThermalRunawayError"]

#: Boundary entities: a marker ``x -> bool`` of facet coordinates ``(3, n)`` or local facet
#: indices ``(n,)``.
Facets = Callable[[np.ndarray], np.ndarray] | np.ndarray | Sequence[int]

#: A scalar coefficient: a number, a :class:`dolfinx.fem.Constant`, a scalar UFL expression, or
#: a callable ``T -> UFL`` of the temperature (e.g. ``lambda T: -h * (T - 300.0)``).
Coefficient = float | fem.Constant | ufl.core.expr.Expr | Callable[[ufl.core.expr.Expr], object]

#: A boundary heat inflow ``(ds measure, g)``, ``g = -q·n`` a :data:`Coefficient`.
HeatFlux = tuple[ufl.Measure, Coefficient]


class ThermalRunawayError(Fe2hmmError, RuntimeError):
    """The temperature exceeded the limit given to :meth:`TransientThermoElectric.march`.

    Attributes:
        time: end time of the step that exceeded it (s).
        temperature: the maximum temperature reached.
        steps: the converged :class:`~fe2hmm.timestepping.TimeStep` list up to that step.
    """

    def __init__(self, message: str, time: float, temperature: float, steps: list[TimeStep]):
        super().__init__(message)
        self.time = time
        self.temperature = temperature
        self.steps = steps


def _coefficient(value, T, owner: str, label: str):
    """A number, Constant or scalar UFL; a callable is called with ``T`` first."""
    if callable(value) and not isinstance(value, ufl.core.expr.Expr):
        value = value(T)
        if not isinstance(value, ufl.core.expr.Expr | int | float):
            raise TypeError(
                f"{owner}: {label}(T) must return a scalar UFL expression or a number, got "
                f"{type(value).__name__}"
            )
    return _scalar(value, owner, label)


def _facets(where, label: str, owner: str) -> Facets:
    """A marker (kept) or local facet indices as an int32 array, else TypeError."""
    if callable(where):
        return where
    indices = np.asarray(where) if isinstance(where, np.ndarray | list | tuple) else None
    if (
        indices is None
        or indices.ndim != 1
        or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer))
    ):
        raise TypeError(
            f"{owner}: {label} must be a marker x -> bool or local facet indices (n,), got "
            f"{type(where).__name__}"
        )
    return indices.astype(np.int32)


class _ThermoElectric(MacroProblem):
    """Shared construction of the steady and transient models (see the module docstring)."""

    def _build(
        self,
        mesh,
        model,
        *,
        anode,
        cathode,
        voltage,
        thermal_conductivity,
        electrode_temperature,
        temperature_bcs,
        source,
        boundary_flux,
        initial_temperature,
        parameters,
        names,
        degree,
        quadrature_degree,
        scheduler,
        name,
        solver_options,
        storage_term,
    ) -> None:
        owner = type(self).__name__
        solver_options = check_solver_options(solver_options, owner)
        _check_degrees(degree, quadrature_degree)
        names = _names(model, names, owner)
        anode = _facets(anode, "anode", owner)
        cathode = _facets(cathode, "cathode", owner)
        if isinstance(voltage, fem.Constant):
            if np.shape(voltage.value) != ():
                raise ValueError(
                    f"{owner}: voltage must be a scalar Constant, got shape "
                    f"{np.shape(voltage.value)}"
                )
        else:
            voltage = fem.Constant(mesh, _finite(voltage, owner, "voltage"))
        if electrode_temperature is not None and not isinstance(
            electrode_temperature, fem.Constant
        ):
            electrode_temperature = _finite(electrode_temperature, owner, "electrode_temperature")
        temperature_specs = []
        for i, bc in enumerate(temperature_bcs):
            if isinstance(bc, Dirichlet):
                if bc.component is not None:
                    raise ValueError(
                        f"{owner}: temperature_bcs[{i}] is on the temperature already; give it "
                        f"without a component, got component={bc.component!r}"
                    )
                temperature_specs.append(dataclasses.replace(bc, component=1))
            elif isinstance(bc, fem.DirichletBC):
                temperature_specs.append(bc)
            else:
                raise TypeError(
                    f"{owner}: temperature_bcs[{i}] is a {type(bc).__name__}; expected a "
                    "fe2hmm.macro.Dirichlet (on T) or a dolfinx.fem.DirichletBC"
                )
        for i, item in enumerate(boundary_flux):
            if not (
                isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], ufl.Measure)
            ):
                raise ValueError(
                    f"{owner}: boundary_flux[{i}] must be a pair (ds measure, inflow g), got "
                    f"{item!r}"
                )

        tdim = mesh.topology.dim
        mesh.topology.create_connectivity(tdim - 1, tdim)
        located = {}
        for label, where in (("anode", anode), ("cathode", cathode)):
            located[label] = (
                _dmesh.locate_entities_boundary(mesh, tdim - 1, where) if callable(where) else where
            )
        comm = mesh.comm
        counts = comm.allreduce(
            np.array([located["anode"].size, located["cathode"].size, 0]), op=MPI.SUM
        )
        shared = np.intersect1d(located["anode"], located["cathode"]).size
        shared = comm.allreduce(shared, op=MPI.SUM)
        for label, count in zip(("anode", "cathode"), counts[:2], strict=True):
            if count == 0:
                raise ValueError(f"{owner}: the {label} selects no boundary facet")
        if shared:
            raise ValueError(f"{owner}: anode and cathode share {shared} facet(s)")

        V = fem.functionspace(mesh, ("Lagrange", int(degree), (2,)))
        u = fem.Function(V, name="psi_T")
        w, v = ufl.split(ufl.TestFunction(V))
        psi, T = u[0], u[1]
        closure, sigma, dx = _constitutive(
            model,
            mesh,
            {names[0]: T},
            names[1],
            parameters,
            quadrature_degree,
            name,
            scheduler,
            owner,
        )
        if ufl.shape(sigma) != ():
            raise ValueError(
                f"{owner}: the conductivity must be scalar, the law returned UFL shape "
                f"{ufl.shape(sigma)}"
            )
        k = _coefficient(thermal_conductivity, T, owner, "thermal_conductivity")
        joule = voltage**2 * sigma * ufl.dot(ufl.grad(psi), ufl.grad(psi))
        F = (
            sigma * ufl.dot(ufl.grad(psi), ufl.grad(w)) * dx
            + k * ufl.dot(ufl.grad(T), ufl.grad(v)) * dx
            - joule * v * dx
        )
        if source is not None:
            F = F - _coefficient(source, T, owner, "source") * v * dx
        for i, (ds, g) in enumerate(boundary_flux):
            F = F - _coefficient(g, T, owner, f"boundary_flux[{i}] inflow") * v * ds
        F = storage_term(F, u, T, v, dx, closure)

        bcs = [
            Dirichlet(1.0, located["anode"], component=0),
            Dirichlet(0.0, located["cathode"], component=0),
        ]
        if electrode_temperature is not None:
            both = np.concatenate([located["anode"], located["cathode"]])
            bcs.append(Dirichlet(electrode_temperature, both, component=1))
        super().__init__(
            F,
            u,
            bcs + temperature_specs,
            [closure] if closure is not None else [],
            dx=dx,
            **solver_options,
        )
        self.voltage: fem.Constant = voltage
        self.unit_potential = psi
        self.T = T
        self.potential = voltage * psi
        self.conductivity = sigma
        self.current_density = -voltage * sigma * ufl.grad(psi)
        self.joule_heat = joule
        self.closure: Closure | None = closure
        self.thermal_conductivity = k
        collapsed = [V.sub(i).collapse() for i in (0, 1)]
        self._spaces = [space for space, _ in collapsed]
        self._maps = [np.asarray(dofs, dtype=np.int32).reshape(-1) for _, dofs in collapsed]
        if initial_temperature is None:
            initial_temperature = (
                electrode_temperature if electrode_temperature is not None else 0.0
            )
        self.set_temperature(initial_temperature)

    # ------------------------------------------------------------------ state
    def _temperature_values(self, value) -> np.ndarray:
        if isinstance(value, fem.Constant):
            value = float(value.value)
        if callable(value):
            g = fem.Function(self._spaces[1])
            g.interpolate(value)
            return g.x.array
        return np.full(self._maps[1].size, _finite(value, type(self).__name__, "temperature"))

    def set_temperature(self, value) -> None:
        """Set the temperature part of :attr:`u` (the Newton initial guess).

        Args:
            value: a number, a :class:`dolfinx.fem.Constant` or a callable ``T0(x)`` of the
                coordinates ``(3, n)`` returning ``(n,)``.
        """
        self.u.x.array[self._maps[1]] = self._temperature_values(value)
        self.u.x.scatter_forward()

    def fields(self) -> tuple[fem.Function, fem.Function]:
        """The potential ``φ = V ψ`` and the temperature ``T`` as Functions of their own.

        Returns:
            ``(phi, T)`` on the collapsed scalar spaces (new Functions, copies of the state).
        """
        phi = fem.Function(self._spaces[0], name="phi")
        T = fem.Function(self._spaces[1], name="T")
        phi.x.array[:] = float(self.voltage.value) * self.u.x.array[self._maps[0]]
        T.x.array[:] = self.u.x.array[self._maps[1]]
        return phi, T

    def max_temperature(self) -> float:
        """The largest temperature dof value over all ranks (collective).

        Note:
            Collective on ``mesh.comm``.
        """
        owned = self.V.dofmap.index_map.size_local
        local = self.u.x.array.reshape(-1, 2)[:owned, 1]
        value = float(local.max()) if local.size else -np.inf
        return float(self.mesh.comm.allreduce(value, op=MPI.MAX))

    def current(self, electrode: str = "anode") -> float:
        """The total electric current through an electrode (a reaction of the current equation).

        ``I = V ∫ σ ∂ψ/∂n ds`` over the anode, evaluated variationally as ``V`` times the residual
        of the current equation summed over the anode's dofs (exact for the discrete solution);
        the current leaving through the cathode is ``-V`` times the cathode's sum. At a
        converged state both agree to the Newton tolerance (charge conservation). Per unit
        thickness in 2D, per unit area in 1D.

        Args:
            electrode: ``"anode"`` (current entering) or ``"cathode"`` (current leaving).

        Returns:
            The current (A, for SI data).

        Raises:
            ValueError: ``electrode`` is neither.

        Note:
            Collective on ``mesh.comm``.
        """
        if electrode not in ("anode", "cathode"):
            raise ValueError(f"electrode must be 'anode' or 'cathode', got {electrode!r}")
        sign, bc = (1.0, 0) if electrode == "anode" else (-1.0, 1)
        return sign * float(self.voltage.value) * float(self.reaction(bc, component=0))


class SteadyThermoElectric(_ThermoElectric):
    r"""Steady Joule heating: ``∇·(σ(T)∇φ) = 0``, ``-∇·(k∇T) = σ(T)|∇φ|² + f``.

    See the module docstring for the reformulation ``φ = V ψ`` and the residual.

    Args:
        mesh: the macro mesh.
        model: a micro-model with a scalar temperature input and a scalar conductivity output
            and the tangent block ``(conductivity, temperature)``, or a UFL law ``σ = law(T)``.
        anode: the anode facets (``φ = V``): a marker ``x -> bool`` (as
            :func:`dolfinx.mesh.locate_entities_boundary`) or local facet indices.
        cathode: the cathode facets (``φ = 0``), likewise.
        voltage: the applied voltage ``V`` (number or scalar :class:`dolfinx.fem.Constant`, used
            as it is); :attr:`voltage` may be changed between solves.
        thermal_conductivity: ``k`` (:data:`Coefficient`: number, Constant, UFL or ``k(T)``).
        electrode_temperature: ``T`` held on both electrodes (number or Constant); ``None``:
            no such condition (give ``temperature_bcs``).
        temperature_bcs: further :class:`~fe2hmm.macro.problem.Dirichlet` conditions on ``T``
            (without ``component``), or dolfinx conditions on the mixed space.
        source: volumetric heat source ``f`` besides Joule heating (:data:`Coefficient`; a
            callable ``f(T)`` gives e.g. the lateral cooling ``-β (T - T_a)`` of a thin strip).
        boundary_flux: ``(ds, g)`` pairs: heat inflow ``g = -q·n`` (:data:`Coefficient`, e.g.
            ``lambda T: -h * (T - T_a)``).
        initial_temperature: Newton's initial temperature (number, Constant or ``T0(x)``);
            default the electrode temperature, else 0. The initial ``ψ`` is 0.
        parameters: the micro-model's per-point parameters.
        names: the model's ``(temperature input, conductivity output)`` names; by default its
            only input and output, else ``("temperature", "conductivity")``.
        degree: Lagrange degree of ``ψ`` and ``T``.
        quadrature_degree: the closure's quadrature degree (also the law's).
        scheduler: where micro solves run under MPI.
        name: the closure's name.
        **solver_options: the solver keywords of :class:`~fe2hmm.macro.problem.MacroProblem`
            (:class:`~fe2hmm.macro.problem.SolverOptions`).

    Attributes:
        u: the unknown ``(ψ, T)`` (a Function on the blocked space :attr:`V`).
        voltage: ``V`` (:class:`dolfinx.fem.Constant`).
        potential: ``φ = V ψ`` (UFL). ``unit_potential``: ``ψ`` (UFL). ``T``: ``T`` (UFL).
        conductivity: ``σ`` in the form (a quadrature function or the law's UFL).
        current_density: ``j = -σ∇φ`` (UFL). ``joule_heat``: ``σ|∇φ|²`` (UFL).
        closure: the closure, or ``None`` for a UFL law.
        bcs: ``[ψ = 1 on the anode, ψ = 0 on the cathode, (T on the electrodes),
            *temperature_bcs]``.

    Raises:
        ValueError: bad degrees, names, voltage, an electrode without facets or anode and cathode
            sharing facets, a model without the names or the tangent block, a non-scalar
            coefficient, a malformed ``boundary_flux`` entry, a component in ``temperature_bcs``.
        TypeError: ``model`` neither a micro-model nor a callable; electrodes neither markers
            nor indices; a wrong ``temperature_bcs`` entry.

    Note:
        Construction and solving are collective on ``mesh.comm``.
    """

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        model: MicroModel | ConstitutiveLaw,
        *,
        anode: Facets,
        cathode: Facets,
        voltage: float | fem.Constant = 0.0,
        thermal_conductivity: Coefficient = 1.0,
        electrode_temperature: float | fem.Constant | None = None,
        temperature_bcs: Sequence[Dirichlet | fem.DirichletBC] = (),
        source: Coefficient | None = None,
        boundary_flux: Sequence[HeatFlux] = (),
        initial_temperature: float | fem.Constant | Callable | None = None,
        parameters: dict | None = None,
        names: tuple[str, str] | None = None,
        degree: int = 1,
        quadrature_degree: int = 2,
        scheduler: str = "owner",
        name: str = "conductivity",
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        self._build(
            mesh,
            model,
            anode=anode,
            cathode=cathode,
            voltage=voltage,
            thermal_conductivity=thermal_conductivity,
            electrode_temperature=electrode_temperature,
            temperature_bcs=temperature_bcs,
            source=source,
            boundary_flux=boundary_flux,
            initial_temperature=initial_temperature,
            parameters=parameters,
            names=names,
            degree=degree,
            quadrature_degree=quadrature_degree,
            scheduler=scheduler,
            name=name,
            solver_options=solver_options,
            storage_term=lambda F, u, T, v, dx, closure: F,
        )


class TransientThermoElectric(_ThermoElectric):
    r"""One backward-Euler step of ``c ∂_t T - ∇·(k∇T) = σ(T)|∇φ|² + f``, ``∇·(σ∇φ) = 0``.

    The potential is quasi-static (no charge storage): every step solves the current equation at
    the end-of-step temperature. :attr:`u` is the end-of-step state, :attr:`u_n` the start of
    the step (its temperature part is the initial condition, set by ``initial_temperature``
    or :meth:`set_initial_temperature`); :meth:`march` steps through a list of times. The
    arguments and attributes not listed here (``mesh``, ``model``, ``anode``, ``cathode``,
    ``voltage``, ``thermal_conductivity``, ``electrode_temperature``, ``temperature_bcs``,
    ``source``, ``boundary_flux``, ``parameters``, ``names``, ``degree``,
    ``quadrature_degree``, ``scheduler``, ``name``, ``**solver_options``) are those of
    :class:`SteadyThermoElectric`.

    Args:
        dt: the step Δt (s), > 0; :meth:`set_time_step` changes it.
        storage: the volumetric heat capacity ``c`` (ρ c_p; :data:`Coefficient`), default 1.
        initial_temperature: the initial condition ``T(x, 0)`` (number, Constant or ``T0(x)``);
            default the electrode temperature, else 0.

    Attributes:
        u_n: the start-of-step state ``(ψ, T)``; ``T_n`` its temperature (UFL).
        dt: the step (:class:`dolfinx.fem.Constant`, s).
        storage: ``c`` in the form.

    Raises:
        ValueError: ``dt`` not a positive finite number, and as :class:`SteadyThermoElectric`.

    Note:
        Construction and solving are collective on ``mesh.comm``.
    """

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        model: MicroModel | ConstitutiveLaw,
        *,
        dt: float,
        anode: Facets,
        cathode: Facets,
        voltage: float | fem.Constant = 0.0,
        thermal_conductivity: Coefficient = 1.0,
        storage: Coefficient = 1.0,
        electrode_temperature: float | fem.Constant | None = None,
        temperature_bcs: Sequence[Dirichlet | fem.DirichletBC] = (),
        source: Coefficient | None = None,
        boundary_flux: Sequence[HeatFlux] = (),
        initial_temperature: float | fem.Constant | Callable | None = None,
        parameters: dict | None = None,
        names: tuple[str, str] | None = None,
        degree: int = 1,
        quadrature_degree: int = 2,
        scheduler: str = "owner",
        name: str = "conductivity",
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        owner = type(self).__name__
        dt = _time_step(dt, owner)
        step = fem.Constant(mesh, dt)
        held = {}

        def storage_term(F, u, T, v, dx, closure):
            u_n = fem.Function(u.function_space, name="psi_T_n")
            c = _coefficient(storage, T, owner, "storage")
            held.update(u_n=u_n, c=c)
            return F + c * (T - u_n[1]) / step * v * dx

        self._build(
            mesh,
            model,
            anode=anode,
            cathode=cathode,
            voltage=voltage,
            thermal_conductivity=thermal_conductivity,
            electrode_temperature=electrode_temperature,
            temperature_bcs=temperature_bcs,
            source=source,
            boundary_flux=boundary_flux,
            initial_temperature=initial_temperature,
            parameters=parameters,
            names=names,
            degree=degree,
            quadrature_degree=quadrature_degree,
            scheduler=scheduler,
            name=name,
            solver_options=solver_options,
            storage_term=storage_term,
        )
        self.u_n: fem.Function = held["u_n"]
        self.T_n = self.u_n[1]
        self.storage = held["c"]
        self.dt = step
        self.u_n.x.array[:] = self.u.x.array

    def set_initial_temperature(self, value) -> None:
        """Set the initial condition: the temperature of :attr:`u_n` (and of :attr:`u`).

        Args:
            value: a number, a :class:`dolfinx.fem.Constant` or a callable ``T0(x)``.
        """
        self.set_temperature(value)
        self.u_n.x.array[:] = self.u.x.array

    def state_functions(self) -> dict[str, fem.Function]:
        """``{"u": u, "u_n": u_n}``: the end- and start-of-step states."""
        return {"u": self.u, "u_n": self.u_n}

    def set_time_step(self, dt: float) -> None:
        """Set Δt in the form and in the micro-model (its ``set_time_step``, where it has one).

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
        max_temperature: float | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> list[TimeStep]:
        """Step the state through ``times`` (see :func:`fe2hmm.timestepping.march`).

        Before each step Δt is set to ``t_new - t_old``, then ``before_step(t_old, t_new)`` sets
        the step's data (e.g. ``problem.voltage.value``); each step starts from :attr:`u_n`.

        Args:
            times: increasing times, the first the current one (s).
            before_step: sets time-dependent data of a step.
            after_step: called with each converged :class:`~fe2hmm.timestepping.TimeStep`.
            histories: committed after each step; by default :attr:`histories`.
            max_temperature: stop with :class:`ThermalRunawayError` after the first step whose
                largest temperature exceeds it (``None``: no limit).
            checkpoint: from :meth:`checkpoint`, saved after each step; ``times`` is then the
                whole path from the start and the steps already done are skipped.

        Returns:
            One :class:`~fe2hmm.timestepping.TimeStep` per step.

        Raises:
            ThermalRunawayError: the temperature exceeded ``max_temperature``.
            NewtonConvergenceError, MicroSolveError: a step failed (histories rolled back).

        Note:
            Collective on ``mesh.comm``.
        """
        if max_temperature is not None:
            max_temperature = _finite(max_temperature, type(self).__name__, "max_temperature")
        done: list[TimeStep] = []

        def before(t_old: float, t_new: float) -> None:
            self.set_time_step(t_new - t_old)
            if before_step is not None:
                before_step(t_old, t_new)

        def after(step: TimeStep) -> None:
            done.append(step)
            if after_step is not None:
                after_step(step)
            if max_temperature is not None:
                hottest = self.max_temperature()
                if hottest > max_temperature:
                    raise ThermalRunawayError(
                        f"thermal runaway: max T = {hottest:.6g} exceeds {max_temperature:g} "
                        f"at t = {step.time:g} (V = {float(self.voltage.value):g})",
                        step.time,
                        hottest,
                        list(done),
                    )

        histories = self.histories if histories is None else list(histories)
        return march(self.newton, self.u_n, times, before, histories, after, checkpoint)


def _finite(value, owner: str, label: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {label} must be a number, got {type(value).__name__}") from None
    if not np.isfinite(number):
        raise ValueError(f"{owner}: {label} must be finite, got {value!r}")
    return number


def _names(model, names, owner: str) -> tuple[str, str]:
    """The ``(temperature input, conductivity output)`` names, checked against the model."""
    if names is None:
        if isinstance(model, MicroModel):
            ins, outs = list(model.input_shapes), list(model.output_shapes)
            names = (ins[0], outs[0]) if len(ins) == 1 and len(outs) == 1 else None
        names = names or ("temperature", "conductivity")
    if not (
        isinstance(names, tuple) and len(names) == 2 and all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"{owner}: names must be a pair of strings, got {names!r}")
    if isinstance(model, MicroModel):
        temperature, conductivity = names
        for kind, key, shapes in (
            ("input", temperature, model.input_shapes),
            ("output", conductivity, model.output_shapes),
        ):
            if key in shapes and tuple(shapes[key]) != ():
                raise ValueError(
                    f"{owner}: the {kind} {key!r} of {type(model).__name__} must be scalar, got "
                    f"shape {tuple(shapes[key])}"
                )
        if (
            temperature in model.input_shapes
            and conductivity in model.output_shapes
            and (conductivity, temperature) not in model.tangent_blocks
        ):
            raise ValueError(
                f"{owner}: {type(model).__name__} declares no tangent block "
                f"({conductivity!r}, {temperature!r}); Newton's Jacobian needs dσ/dT"
            )
    return names
