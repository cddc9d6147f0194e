"""The shared base of macro models: a residual, its closures, Dirichlet conditions, a solver.

A macro model is a UFL residual ``F(u; v)``, linear in the test function ``v``, whose
constitutive data come from :class:`~fe2hmm.closure.Closure` outputs. :class:`MacroProblem`
holds the residual with the closures and boundary conditions it needs and builds the
:class:`~fe2hmm.newton.NewtonSolver` (Jacobian from the closures' tangents) when it is first
needed. It solves one state (:meth:`MacroProblem.solve`), a load path with history commit and
step cutting (:meth:`MacroProblem.solve_incrementally`), and evaluates global functionals and
reactions. The shipped models (:mod:`fe2hmm.macro.diffusion`, :mod:`fe2hmm.macro.elasticity`)
derive from it; a new macro model can use it directly (see ``docs/macro_models.md``).

Boundary conditions are :class:`Dirichlet` specifications, resolved on the unknown's function
space, or ready :class:`dolfinx.fem.DirichletBC` objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem, la
from dolfinx import mesh as _dmesh

from fe2hmm.checkpoint import Checkpoint
from fe2hmm.closure import Closure
from fe2hmm.micro.interface import Stateful
from fe2hmm.newton import LoadStep, NewtonResult, NewtonSolver, solve_incrementally

__all__ = [
    "Dirichlet",
    "MacroProblem",
    "SolverOptions",
    "DirichletValue",
    "ConstitutiveLaw",
    "check_solver_options",
]

_log = logging.getLogger(__name__)

#: What a Dirichlet value may be: a number (or ``(bs,)`` array for a vector space), a
#: :class:`dolfinx.fem.Constant` (changed in place for load stepping), a
#: :class:`dolfinx.fem.Function` (used as it is on the problem's own space, else interpolated
#: once), or a callable ``g(x)`` of the coordinates ``(3, n)`` returning ``(n,)`` (or
#: ``(bs, n)``) values, interpolated once. For time-dependent non-uniform data, change the
#: values of the resolved condition's function ``problem.bcs[i].g`` in place.
DirichletValue = float | Sequence[float] | np.ndarray | fem.Constant | fem.Function | Callable

#: A single-scale constitutive law written in UFL (e.g. ``lambda g: -k * g`` for a flux from
#: a gradient): macro models accept it in place of a micro-model, which gives the single-scale
#: reference of an FE² computation with the same macro form.
ConstitutiveLaw = Callable[[ufl.core.expr.Expr], ufl.core.expr.Expr]


class SolverOptions(TypedDict, total=False):
    """The solver keywords of every macro model, forwarded to :class:`MacroProblem`.

    All keys are optional.

    Keys:
        solver: the solver class, called as ``solver(F, u, bcs, closures, J=…,
            petsc_options=…, petsc_options_prefix=…, rtol=…, atol=…, max_iterations=…)``:
            :class:`~fe2hmm.newton.NewtonSolver` (default) or a drop-in such as
            :class:`fe2hmm.macro.snes.SNESSolver`.
        petsc_options: options of the linear solver (default: MUMPS LU).
        petsc_options_prefix: options prefix of the solver; ``None`` (default): the solver
            generates a unique one.
        rtol: Newton's relative tolerance on the residual norm (default 1e-10).
        atol: Newton's absolute tolerance on the residual norm (default 1e-12).
        max_iterations: Newton steps before :class:`~fe2hmm.errors.NewtonConvergenceError`
            (default 25).
    """

    solver: Callable[..., NewtonSolver]
    petsc_options: dict | None
    petsc_options_prefix: str | None
    rtol: float
    atol: float
    max_iterations: int


_SOLVER_DEFAULTS: dict[str, Any] = {
    "solver": NewtonSolver,
    "petsc_options": None,
    "petsc_options_prefix": None,
    "rtol": 1e-10,
    "atol": 1e-12,
    "max_iterations": 25,
}


def check_solver_options(options: dict[str, Any], owner: str) -> dict[str, Any]:
    """``options`` (:class:`SolverOptions` keys) checked and completed with the defaults.

    Raises:
        TypeError: an unknown key, or ``solver`` not callable.
        ValueError: ``rtol``/``atol`` not finite and >= 0, ``max_iterations`` not an integer
            >= 1, ``petsc_options`` not a mapping, ``petsc_options_prefix`` not a string.
    """
    unknown = sorted(set(options) - set(_SOLVER_DEFAULTS))
    if unknown:
        raise TypeError(
            f"{owner}: unknown keyword argument {unknown[0]!r}; the solver keywords are "
            f"{', '.join(_SOLVER_DEFAULTS)}"
        )
    checked = {**_SOLVER_DEFAULTS, **options}
    if not callable(checked["solver"]):
        raise TypeError(
            f"{owner}: solver must be a solver class, got {type(checked['solver']).__name__}"
        )
    for label in ("rtol", "atol"):
        value = checked[label]
        if isinstance(value, bool) or not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{owner}: {label} must be a finite number >= 0, got {value!r}")
        checked[label] = float(value)
    steps = checked["max_iterations"]
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"{owner}: max_iterations must be an integer >= 1, got {steps!r}")
    checked["max_iterations"] = int(steps)
    if checked["petsc_options"] is not None and not isinstance(checked["petsc_options"], dict):
        raise ValueError(
            f"{owner}: petsc_options must be a dict of PETSc options, "
            f"got {type(checked['petsc_options']).__name__}"
        )
    prefix = checked["petsc_options_prefix"]
    if prefix is not None and not isinstance(prefix, str):
        raise ValueError(f"{owner}: petsc_options_prefix must be a string, got {prefix!r}")
    return checked


@dataclass(frozen=True)
class Dirichlet:
    """A Dirichlet condition, resolved on a macro problem's function space.

    Args:
        value: the prescribed value (see :data:`DirichletValue`); ``0.0`` on a vector space
            means the zero vector.
        where: the boundary entities: a marker ``where(x) -> bool`` of the coordinates
            ``(3, n)`` (as :func:`dolfinx.mesh.locate_entities_boundary`), an array of local
            entity indices of dimension ``entity_dim``, or ``None`` for the whole boundary.
        component: constrain one component of a vector unknown (``None``: all of them).
        entity_dim: dimension of the entities ``where`` selects (default: facets; ``0`` for
            points such as a corner that removes a rigid-body mode).

    Example:
        ``Dirichlet(0.0, lambda x: np.isclose(x[0], 0.0), component=0)`` holds ``u_x = 0`` on
        the edge ``x = 0``.
    """

    value: DirichletValue = 0.0
    where: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None
    component: int | None = None
    entity_dim: int | None = None

    def resolve(self, V: fem.FunctionSpace) -> fem.DirichletBC:
        """The :class:`dolfinx.fem.DirichletBC` of this condition on ``V``.

        Args:
            V: the unknown's function space.

        Returns:
            The boundary condition (dofs rank-local).

        Raises:
            ValueError: a component out of range, an entity dimension out of range, or a value
                whose shape does not fit the (sub)space, naming what came.
        """
        mesh = V.mesh
        tdim = mesh.topology.dim
        bs = V.dofmap.index_map_bs
        dim = tdim - 1 if self.entity_dim is None else int(self.entity_dim)
        if not 0 <= dim < tdim:
            raise ValueError(f"Dirichlet entity_dim must be in [0, {tdim - 1}], got {dim!r}")
        if self.component is not None and not (
            int(self.component) == self.component and 0 <= self.component < bs and bs > 1
        ):
            valid = f"0..{bs - 1}" if bs > 1 else "None (scalar unknown)"
            raise ValueError(f"Dirichlet component must be {valid}, got {self.component!r}")
        if self.where is None:
            entities = _dmesh.locate_entities_boundary(
                mesh, dim, lambda x: np.full(x.shape[1], True)
            )
        elif callable(self.where):
            entities = _dmesh.locate_entities_boundary(mesh, dim, self.where)
        else:
            entities = np.asarray(self.where, dtype=np.int32)
            if entities.ndim != 1:
                raise ValueError(
                    f"Dirichlet where must be a marker, entity indices (n,) or None, "
                    f"got an array of shape {entities.shape}"
                )
        value = self.value
        space = V if self.component is None else V.sub(int(self.component))
        width = bs if self.component is None else 1
        if isinstance(value, fem.Function) or (
            callable(value) and not isinstance(value, fem.Constant)
        ):
            # a Function on another space than V would be ignored by the assembly: interpolate
            if self.component is None:
                if not (isinstance(value, fem.Function) and V.contains(value.function_space)):
                    g = fem.Function(V)
                    g.interpolate(value)
                    value = g
                dofs = fem.locate_dofs_topological(V, dim, entities)
                return fem.dirichletbc(value, dofs)
            collapsed, _ = space.collapse()
            g = fem.Function(collapsed)
            g.interpolate(value)
            dofs = fem.locate_dofs_topological((space, collapsed), dim, entities)
            return fem.dirichletbc(g, dofs, space)
        dofs = fem.locate_dofs_topological(space, dim, entities)
        if isinstance(value, fem.Constant):
            shape = tuple(np.shape(value.value))
            if shape != (() if width == 1 else (width,)):
                raise ValueError(
                    f"Dirichlet value: a Constant of shape {shape} does not fit a space with "
                    f"{width} component(s)"
                )
            return fem.dirichletbc(value, dofs, space)
        array = np.asarray(value, dtype=float)
        if width == 1:
            if array.shape != ():
                raise ValueError(
                    f"Dirichlet value for a scalar (sub)space must be a number, got shape "
                    f"{array.shape}"
                )
            return fem.dirichletbc(float(array), dofs, space)
        if array.shape == ():
            array = np.full(width, float(array))
        if array.shape != (width,):
            raise ValueError(
                f"Dirichlet value for a {width}-component space must have shape ({width},), "
                f"got {array.shape}"
            )
        return fem.dirichletbc(array, dofs, space)


class MacroProblem:
    """A macro residual ``F(u; closures) = 0`` with its Dirichlet conditions and its solver.

    Args:
        F: residual form, linear in the test function, using the closures' outputs.
        u: the macro unknown; its values are the initial guess and hold the solution.
        bcs: :class:`Dirichlet` specifications (resolved on ``u``'s space) or
            :class:`dolfinx.fem.DirichletBC` objects.
        closures: the closures whose outputs appear in ``F``; updated at every Newton iterate.
        J: Jacobian form; by default ``∂F/∂u`` plus the closures' chain-rule terms.
        dx: the cell measure of :meth:`functional`; by default the first closure's
            :attr:`~fe2hmm.closure.Closure.dx` (its quadrature rule), else ``ufl.dx``.
        **solver_options: the solver keywords (:class:`SolverOptions`: ``solver``,
            ``petsc_options``, ``petsc_options_prefix``, ``rtol``, ``atol``,
            ``max_iterations``).

    Attributes:
        u: the unknown. ``V``, ``mesh``: its function space and mesh.
        bcs: the resolved :class:`dolfinx.fem.DirichletBC` list, in the order given.
        closures: the closures, in the order given.
        load: load factor of the last converged :meth:`solve_incrementally` step (0 at first).

    The solver is built on first use (:attr:`newton`); until then :attr:`F` may still be
    changed, e.g. ``problem.F = problem.F - g * problem.v * ds`` to add a boundary term.

    Note:
        Solving and evaluating functionals are collective on ``mesh.comm``.
    """

    def __init__(
        self,
        F: ufl.Form,
        u: fem.Function,
        bcs: Sequence[Dirichlet | fem.DirichletBC] = (),
        closures: Sequence[Closure] = (),
        *,
        J: ufl.Form | None = None,
        dx: ufl.Measure | None = None,
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        options = check_solver_options(solver_options, type(self).__name__)
        if not isinstance(u, fem.Function):
            raise TypeError(f"u must be a dolfinx.fem.Function, got {type(u).__name__}")
        for i, c in enumerate(closures):
            if not isinstance(c, Closure):
                raise TypeError(f"closures[{i}] is a {type(c).__name__}, not a fe2hmm Closure")
        self.u = u
        self.V = u.function_space
        self.mesh = self.V.mesh
        self.closures = list(closures)
        self.bcs: list[fem.DirichletBC] = []
        for i, bc in enumerate(bcs):
            if isinstance(bc, Dirichlet):
                self.bcs.append(bc.resolve(self.V))
            elif isinstance(bc, fem.DirichletBC):
                self.bcs.append(bc)
            else:
                raise TypeError(
                    f"bcs[{i}] is a {type(bc).__name__}; expected a fe2hmm.macro.Dirichlet or "
                    "a dolfinx.fem.DirichletBC"
                )
        self._F = F
        self._J = J
        if dx is None:
            dx = self.closures[0].dx if self.closures else ufl.Measure("dx", domain=self.mesh)
        self._dx = dx
        self._solver = options.pop("solver")
        self._solver_options: dict[str, Any] = options
        self._newton: NewtonSolver | None = None
        self._residual_form: fem.Form | None = None
        self.load = 0.0

    # ------------------------------------------------------------------ the pieces
    @property
    def F(self) -> ufl.Form:
        """The residual form (may be replaced until the solver is built)."""
        return self._F

    @F.setter
    def F(self, form: ufl.Form) -> None:
        if self._newton is not None:
            raise RuntimeError("the residual cannot change after the solver was built")
        self._F = form
        self._residual_form = None

    @property
    def v(self) -> ufl.Argument:
        """The test function of the residual."""
        return self._F.arguments()[0]

    @property
    def J(self) -> ufl.Form:
        """The Jacobian: the given one, or ``∂F/∂u`` plus the closures' chain-rule terms."""
        if self._J is not None:
            return self._J
        du = ufl.TrialFunction(self.V)
        J = ufl.derivative(self._F, self.u, du)
        for closure in self.closures:
            for term in closure.jacobian_terms(self._F, self.u, du):
                J = J + term
        return J

    @property
    def dx(self) -> ufl.Measure:
        """The cell measure of the model (the closures' quadrature rule)."""
        return self._dx

    @property
    def newton(self) -> NewtonSolver:
        """The solver (a :class:`~fe2hmm.newton.NewtonSolver` by default), built on first access.

        Building it JIT-compiles the residual and the Jacobian (collective).
        """
        if self._newton is None:
            self._newton = self._solver(
                self._F, self.u, self.bcs, self.closures, J=self._J, **self._solver_options
            )
        return self._newton

    @property
    def histories(self) -> list:
        """The closures' micro-models with history (:class:`~fe2hmm.micro.interface.Stateful`)."""
        return [c.model for c in self.closures if isinstance(c.model, Stateful)]

    # ------------------------------------------------------------------ checkpoints
    def state_functions(self) -> dict[str, fem.Function]:
        """The Functions that hold the macro state: ``{"u": u}`` (transient: ``"u_n"`` too)."""
        return {"u": self.u}

    def checkpoint(self, directory, objects: Mapping[str, Any] | None = None) -> Checkpoint:
        """A :class:`~fe2hmm.checkpoint.Checkpoint` of this problem in ``directory``.

        It holds :meth:`state_functions`, the problem's :attr:`load` (as ``"problem"``), every
        micro-model with history (:attr:`histories`, as ``"history0"``, ``"history1"``, …),
        the reuse layers of the closures that learn during the run and save what they learnt
        (``"reuse<closure>.<depth>"``, e.g. a ``ParameterSurrogateModel``) and ``objects``
        (more Functions or checkpointable objects: evolving states). Call
        :meth:`~fe2hmm.checkpoint.Checkpoint.restore` before stepping and pass
        the checkpoint to :meth:`solve_incrementally` (or a ``march``).

        Raises:
            TypeError: a history or object cannot be checkpointed, or a closure's reuse layer
                learns during the run (a surrogate, whose ``restart_exact`` is False) and is
                not among ``objects`` (names it).
        """
        from fe2hmm.reuse.wrapper import ReuseWrapper

        held: dict[str, Any] = {**self.state_functions(), "problem": self}
        for i, h in enumerate(self.histories):
            held[f"history{i}"] = h
        held.update(objects or {})
        for i, closure in enumerate(self.closures):
            layer, depth = closure.model, 0
            while isinstance(layer, ReuseWrapper):
                if any(o is layer for o in held.values()) or layer.restart_exact:
                    pass
                elif callable(getattr(layer, "checkpoint_state", None)):
                    held[f"reuse{i}.{depth}"] = layer  # a surrogate that saves what it learnt
                else:
                    raise TypeError(
                        f"closures[{i}]: {type(layer).__name__} learns during the run and a "
                        "checkpoint does not save its state, so a restarted run would not "
                        "repeat the uninterrupted one; checkpoint without it"
                    )
                layer, depth = layer.inner, depth + 1
        return Checkpoint(directory, held, comm=self.mesh.comm)

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """``{"load": ()}``: the load factor of the last converged step."""
        return {"load": np.asarray(self.load)}

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Set :attr:`load` from :meth:`checkpoint_state`'s arrays."""
        self.load = float(state["load"])

    # ------------------------------------------------------------------ solving
    def solve(self) -> NewtonResult:
        """Solve ``F(u) = 0`` by Newton's method from the current ``u``.

        Returns:
            Iterations, residual history and timings.

        Raises:
            NewtonConvergenceError: Newton did not converge.
            MicroSolveError: a micro solve failed (names the point).

        Note:
            Collective on ``mesh.comm``.
        """
        return self.newton.solve()

    def solve_incrementally(
        self,
        apply_load: Callable[[float], None],
        loads: Sequence[float],
        histories: Sequence | None = None,
        min_increment: float = 1e-6,
        checkpoint: Checkpoint | None = None,
    ) -> list[LoadStep]:
        """Follow a load path from :attr:`load` (see :func:`fe2hmm.newton.solve_incrementally`).

        Histories are committed after each converged increment; a failed increment is rolled
        back and halved. :attr:`load` follows the converged targets.

        Args:
            apply_load: sets the boundary data/sources of a load factor.
            loads: target load factors, in order (may decrease: unloading).
            histories: objects committed and rolled back; by default :attr:`histories`.
            min_increment: smallest increment before giving up.
            checkpoint: saved after each converged target (from :meth:`checkpoint`); ``loads``
                is then the whole path from the start, of which the first
                ``checkpoint.step`` targets are done (a restored run skips them).

        Returns:
            One :class:`~fe2hmm.newton.LoadStep` per converged increment (of the targets
            solved by this call).

        Raises:
            NewtonConvergenceError: an increment fell below ``min_increment``; :attr:`load`
                and ``u`` keep the last converged target's state.

        Note:
            Collective on ``mesh.comm``.
        """
        histories = self.histories if histories is None else list(histories)
        steps: list[LoadStep] = []
        loads = [float(target) for target in loads]
        done = 0 if checkpoint is None else checkpoint.steps_done("loads", loads)
        for target in loads[done:]:
            steps += solve_incrementally(
                self.newton,
                apply_load,
                [float(target)],
                histories=histories,
                min_increment=min_increment,
                start=self.load,
            )
            self.load = float(target)
            if checkpoint is not None:
                checkpoint.save()
        return steps

    # ------------------------------------------------------------------ functionals
    def functional(
        self, integrand: ufl.core.expr.Expr | float, measure: ufl.Measure | None = None
    ) -> Callable[[], float]:
        """A compiled global integral ``∫ integrand dμ``, evaluated on each call.

        Args:
            integrand: a scalar UFL expression (closure outputs allowed) or a number.
            measure: the measure; by default :attr:`dx` (the closures' quadrature rule).

        Returns:
            A callable without arguments returning the integral summed over all ranks
            (collective).

        Raises:
            ValueError: the integrand is not scalar.
        """
        integrand = ufl.as_ufl(integrand)
        if ufl.shape(integrand) != ():
            raise ValueError(
                f"functional: the integrand must be scalar, got UFL shape {ufl.shape(integrand)}"
            )
        form = fem.form(integrand * (self.dx if measure is None else measure))
        comm = self.mesh.comm

        def value() -> float:
            return float(comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM))

        return value

    def reaction(self, bc: int, component: int | None = None) -> float | np.ndarray:
        """The reaction of a Dirichlet condition: the residual summed over its constrained dofs.

        For elasticity this is the force the support exerts on the body (per unit thickness
        in 2D); for diffusion the flow that enters the body through the held boundary. It is
        the residual of the current state, so call it after a converged solve.

        Args:
            bc: index of the condition in :attr:`bcs`.
            component: sum one component of a vector unknown only.

        Returns:
            A float (scalar unknown, a single-component condition or ``component`` given),
            otherwise an array ``(bs,)`` per component.

        Raises:
            ValueError: ``bc`` or ``component`` out of range.

        Note:
            Collective on ``mesh.comm``.
        """
        if int(bc) != bc or not 0 <= bc < len(self.bcs):
            raise ValueError(f"bc must be an index in [0, {len(self.bcs) - 1}], got {bc!r}")
        bs = self.V.dofmap.index_map_bs
        if component is not None and not (int(component) == component and 0 <= component < bs):
            raise ValueError(f"component must be in [0, {bs - 1}], got {component!r}")
        dofs, owned = self.bcs[bc].dof_indices()
        dofs = dofs[:owned]
        if self._residual_form is None:
            self._residual_form = fem.form(self._F)
        b = fem.assemble_vector(self._residual_form)
        b.scatter_reverse(la.InsertMode.add)  # contributions of cells on other ranks
        comm = self.mesh.comm
        present = np.unique(dofs % bs) if dofs.size else np.zeros(0, dtype=int)
        present = np.unique(np.concatenate(comm.allgather(present))).astype(int)
        if component is not None or bs == 1 or present.size == 1:
            k = int(component) if component is not None else (present[0] if present.size else 0)
            local = b.array[dofs[dofs % bs == k]].sum()
            return float(comm.allreduce(local, op=MPI.SUM))
        local = np.array([b.array[dofs[dofs % bs == k]].sum() for k in range(bs)])
        return comm.allreduce(local, op=MPI.SUM)


def _check_degrees(degree: int, quadrature_degree: int) -> None:
    """Validate a Lagrange degree and a quadrature degree (ValueError naming the value)."""
    if int(degree) != degree or degree < 1:
        raise ValueError(f"degree must be an integer >= 1, got {degree!r}")
    if int(quadrature_degree) != quadrature_degree or quadrature_degree < 0:
        raise ValueError(f"quadrature_degree must be an integer >= 0, got {quadrature_degree!r}")


def _constitutive(
    model,
    mesh: _dmesh.Mesh,
    inputs: dict[str, ufl.core.expr.Expr],
    output: str,
    parameters: dict | None,
    quadrature_degree: int,
    name: str,
    scheduler: str,
    owner: str,
) -> tuple[Closure | None, ufl.core.expr.Expr, ufl.Measure]:
    """Bind a micro-model (through a closure) or a UFL law to a macro model's inputs.

    Args:
        model: a :class:`~fe2hmm.micro.interface.MicroModel` or a :data:`ConstitutiveLaw`.
        mesh: the macro mesh.
        inputs: the inputs the macro model offers, name -> UFL; the first is the one a law
            takes. A micro-model must declare ``inputs``' first name and may declare others.
        output: the output the macro form uses.
        parameters: per-point parameters of the micro-model.
        quadrature_degree: the quadrature degree.
        name: the closure's name.
        scheduler: the closure's scheduler.
        owner: the macro model's name, for messages.

    Returns:
        ``(closure or None, the output as UFL, the measure)``.

    Raises:
        ValueError: the model declares inputs the macro model does not offer, lacks the
            required input or the output, or a law is given parameters.
        TypeError: ``model`` is neither, or a law does not return UFL.
    """
    from fe2hmm.micro.interface import MicroModel

    first = next(iter(inputs))
    if isinstance(model, MicroModel):
        declared = set(model.input_shapes)
        if first not in declared or not declared <= set(inputs):
            raise ValueError(
                f"{owner} binds the inputs {sorted(inputs)} (at least {first!r}); "
                f"{type(model).__name__} declares {sorted(declared)}"
            )
        if output not in model.output_shapes:
            raise ValueError(
                f"{owner} uses the output {output!r}; {type(model).__name__} declares "
                f"{sorted(model.output_shapes)}"
            )
        closure = Closure(
            model,
            mesh,
            inputs={k: inputs[k] for k in model.input_shapes},
            parameters=parameters,
            quadrature_degree=quadrature_degree,
            name=name,
            scheduler=scheduler,
        )
        return closure, closure.outputs[output], closure.dx
    if callable(model):
        if parameters:
            raise ValueError(
                f"{owner}: parameters {sorted(parameters)} need a micro-model; a UFL law "
                "takes its coefficients directly"
            )
        value = model(inputs[first])
        if not isinstance(value, ufl.core.expr.Expr):
            raise TypeError(
                f"{owner}: the constitutive law must return a UFL expression, got "
                f"{type(value).__name__}"
            )
        dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": quadrature_degree})
        return None, value, dx
    raise TypeError(
        f"{owner}: model must be a fe2hmm MicroModel or a UFL constitutive law (a callable), "
        f"got {type(model).__name__}"
    )
