r"""Elasticity closed by micro-models: small strain and finite strain (quasi-static).

- :class:`SmallStrainElasticity`: the micro-model's input ``strain`` ``(d, d)`` is bound to
  ``ε(u) = sym ∇u`` and its output ``stress`` ``(d, d)`` (Cauchy stress σ) enters
  ``F(u; v) = ∫ σ : ∇v dx - ∫ b·v dx - Σ ∫ t·v ds = 0``
  (e.g. :class:`~fe2hmm.micro.cells.elasticity.ElasticityCellModel`, or
  :class:`~fe2hmm.micro.cells.plasticity.PlasticCellModel` with history over load steps).
- :class:`FiniteStrainElasticity`: the input is the deformation gradient ``F = I + ∇u`` and
  the output the first Piola–Kirchhoff stress ``P``; the residual is
  ``∫ P : ∇v dX - ∫ b·v dX - Σ ∫ t·v dS`` in the reference configuration (dead loads:
  ``b`` per unit reference volume, ``t`` per unit reference area), e.g.
  :class:`~fe2hmm.micro.cells.hyperelastic.HyperelasticCellModel` (names ``F``/``P``) or
  :class:`~fe2hmm.micro.particles.model.LJStressModel` (``deformation_gradient``/``stress``).

Both take a UFL law in place of the micro-model (``lambda eps: 2 * mu * eps + …``; for finite
strain ``lambda F: P(F)``, e.g. ``ufl.diff`` of an energy): the single-scale reference. In 2D
the problems are plane (strain or stress, as the micro-model is) and forces are per unit
thickness. Rigid-body modes must be removed by the Dirichlet conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

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

__all__ = ["SmallStrainElasticity", "FiniteStrainElasticity"]

#: A vector given as numbers ``(d,)``, a :class:`dolfinx.fem.Constant` or a UFL vector.
VectorValue = Sequence[float] | np.ndarray | fem.Constant | ufl.core.expr.Expr

#: A traction on part of the boundary: ``(ds measure, t)``.
Traction = tuple[ufl.Measure, VectorValue]


def _vector(value, dim: int, owner: str, label: str):
    """A UFL vector of length ``dim`` from numbers, a Constant or UFL (ValueError otherwise)."""
    if isinstance(value, fem.Constant):
        shape = tuple(np.shape(value.value))
    elif isinstance(value, ufl.core.expr.Expr):
        shape = tuple(ufl.shape(value))
    else:
        array = np.asarray(value, dtype=float)
        if array.shape != (dim,) or not np.all(np.isfinite(array)):
            raise ValueError(
                f"{owner}: {label} must be {dim} finite numbers, got {np.asarray(value)!r}"
            )
        return ufl.as_vector(array.tolist())
    if shape != (dim,):
        raise ValueError(f"{owner}: {label} must have shape ({dim},), got {shape}")
    return value


def _loads(F, v, body_force, traction, dx, dim: int, owner: str):
    if body_force is not None:
        F = F - ufl.dot(_vector(body_force, dim, owner, "body_force"), v) * dx
    for i, item in enumerate(traction):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], ufl.Measure)):
            raise ValueError(
                f"{owner}: traction[{i}] must be a pair (ds measure, traction vector), got {item!r}"
            )
        ds, t = item
        F = F - ufl.dot(_vector(t, dim, owner, f"traction[{i}]"), v) * ds
    return F


class _Elasticity(MacroProblem):
    """Shared construction: vector P``degree`` displacement, stress from a model, loads."""

    def _build(
        self,
        mesh,
        model,
        kinematics,
        names: tuple[str, str],
        parameters,
        body_force,
        traction,
        bcs,
        degree,
        quadrature_degree,
        scheduler,
        name,
        solver_options,
    ) -> None:
        owner = type(self).__name__
        solver_options = check_solver_options(solver_options, owner)
        _check_degrees(degree, quadrature_degree)
        dim = mesh.geometry.dim
        V = fem.functionspace(mesh, ("Lagrange", int(degree), (dim,)))
        u = fem.Function(V, name="u")
        v = ufl.TestFunction(V)
        measure = kinematics(u)
        closure, stress, dx = _constitutive(
            model,
            mesh,
            {names[0]: measure},
            names[1],
            parameters,
            quadrature_degree,
            name,
            scheduler,
            owner,
        )
        F = ufl.inner(stress, ufl.grad(v)) * dx
        F = _loads(F, v, body_force, traction, dx, dim, owner)
        super().__init__(
            F, u, bcs, [closure] if closure is not None else [], dx=dx, **solver_options
        )
        self.closure: Closure | None = closure
        self.stress = stress


class SmallStrainElasticity(_Elasticity):
    """Small-strain equilibrium ``-∇·σ(ε(u); x) = b`` with the stress from a micro-model.

    Args:
        mesh: the macro mesh.
        model: a micro-model with input ``strain`` ``(d, d)`` and output ``stress`` ``(d, d)``,
            or a UFL law ``σ = law(ε)``.
        parameters: the micro-model's per-point parameters, e.g. ``{"volume_fraction": 0.4}``.
        body_force: body force ``b`` ``(d,)`` per unit volume.
        traction: ``(ds, t)`` pairs: traction ``t`` ``(d,)`` per unit area on the measure's
            facets.
        bcs: :class:`~fe2hmm.macro.problem.Dirichlet` conditions on ``u`` (or dolfinx ones).
        degree: Lagrange degree of ``u``.
        quadrature_degree: the closure's quadrature degree.
        scheduler: where the micro solves run under MPI.
        name: the closure's name.
        **solver_options: the solver keywords of :class:`~fe2hmm.macro.problem.MacroProblem`
            (:class:`~fe2hmm.macro.problem.SolverOptions`: ``solver``, ``petsc_options``,
            ``petsc_options_prefix``, ``rtol``, ``atol``, ``max_iterations``).

    Attributes:
        closure: the closure, or ``None`` for a UFL law.
        stress: σ in the form (a quadrature function or the law's UFL).
        strain: ``ε(u)`` (UFL).

    Raises:
        ValueError: the model lacks ``strain``/``stress`` or declares other inputs, bad degrees,
            loads of the wrong shape.
        TypeError: ``model`` is neither a micro-model nor a callable.

    Note:
        Construction and solving are collective on ``mesh.comm``.
    """

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        model: MicroModel | ConstitutiveLaw,
        *,
        parameters: dict | None = None,
        body_force: VectorValue | None = None,
        traction: Sequence[Traction] = (),
        bcs: Sequence[Dirichlet | fem.DirichletBC] = (),
        degree: int = 1,
        quadrature_degree: int = 2,
        scheduler: str = "owner",
        name: str = "elasticity",
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        self._build(
            mesh,
            model,
            lambda u: ufl.sym(ufl.grad(u)),
            ("strain", "stress"),
            parameters,
            body_force,
            traction,
            bcs,
            degree,
            quadrature_degree,
            scheduler,
            name,
            solver_options,
        )
        self.strain = ufl.sym(ufl.grad(self.u))


class FiniteStrainElasticity(_Elasticity):
    """Finite-strain equilibrium ``-∇_X·P(F; X) = b`` with ``P`` from a micro-model.

    Args:
        mesh: the macro mesh (reference configuration).
        model: a micro-model with one ``(d, d)`` input (the deformation gradient) and a
            ``(d, d)`` output (the first Piola–Kirchhoff stress), or a UFL law ``P = law(F)``.
        parameters: the micro-model's per-point parameters.
        body_force: dead body force ``b`` ``(d,)`` per unit reference volume.
        traction: ``(ds, t)`` pairs: dead nominal traction ``t`` ``(d,)`` per unit reference
            area.
        bcs: Dirichlet conditions on ``u``.
        degree: Lagrange degree of ``u``.
        quadrature_degree: the closure's quadrature degree.
        names: the model's ``(input, output)`` names; by default its only input and its only
            output (``("F", "P")`` for hyperelastic cells, ``("deformation_gradient",
            "stress")`` for MD boxes).
        scheduler: where the micro solves run under MPI.
        name: the closure's name.
        **solver_options: the solver keywords of :class:`~fe2hmm.macro.problem.MacroProblem`
            (:class:`~fe2hmm.macro.problem.SolverOptions`: ``solver``, ``petsc_options``,
            ``petsc_options_prefix``, ``rtol``, ``atol``, ``max_iterations``).

    Attributes:
        closure: the closure, or ``None`` for a UFL law.
        stress: ``P`` in the form.
        deformation_gradient: ``F = I + ∇u`` (UFL).

    Raises:
        ValueError: ``names`` not given and the model has several inputs or outputs; the
            names not declared; bad degrees; loads of the wrong shape.
        TypeError: ``model`` is neither a micro-model nor a callable.

    Note:
        Construction and solving are collective on ``mesh.comm``.
    """

    def __init__(
        self,
        mesh: _dmesh.Mesh,
        model: MicroModel | ConstitutiveLaw,
        *,
        parameters: dict | None = None,
        body_force: VectorValue | None = None,
        traction: Sequence[Traction] = (),
        bcs: Sequence[Dirichlet | fem.DirichletBC] = (),
        degree: int = 1,
        quadrature_degree: int = 2,
        names: tuple[str, str] | None = None,
        scheduler: str = "owner",
        name: str = "elasticity",
        **solver_options: Unpack[SolverOptions],
    ) -> None:
        owner = type(self).__name__
        check_solver_options(solver_options, owner)
        if names is None:
            if isinstance(model, MicroModel):
                ins, outs = list(model.input_shapes), list(model.output_shapes)
                if len(ins) != 1 or len(outs) != 1:
                    raise ValueError(
                        f"{owner}: {type(model).__name__} has inputs {ins} and outputs {outs}; "
                        "give names=(deformation gradient input, stress output)"
                    )
                names = (ins[0], outs[0])
            else:
                names = ("F", "P")
        if not (
            isinstance(names, tuple) and len(names) == 2 and all(isinstance(n, str) for n in names)
        ):
            raise ValueError(f"{owner}: names must be a pair of strings, got {names!r}")
        dim = mesh.geometry.dim
        self._build(
            mesh,
            model,
            lambda u: ufl.Identity(dim) + ufl.grad(u),
            names,
            parameters,
            body_force,
            traction,
            bcs,
            degree,
            quadrature_degree,
            scheduler,
            name,
            solver_options,
        )
        self.deformation_gradient = ufl.Identity(dim) + ufl.grad(self.u)
