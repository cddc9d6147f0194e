r"""Darcy flow in a porous medium closed by micro-models: the pressure (primal) form.

The superficial (Darcy) velocity :math:`u = -K(x)\nabla p/\mu` comes from a micro-model whose
input ``pressure_gradient`` is bound to :math:`\nabla p` — a periodic Stokes cell at each macro
quadrature point, :class:`~fe2hmm.micro.cells.stokes.PermeabilityCellModel` — and the pressure
solves mass conservation :math:`\nabla\cdot u = f` (a volumetric injection :math:`f`, 1/s):

.. math:: F(p; v) = -\int_\Omega u\cdot\nabla v\,dx - \int_\Omega f v\,dx
   - \sum \int_{\Gamma_g} g\,v\,ds = 0,

with :math:`g = -u\cdot n` a prescribed inflow (``0`` on impermeable walls, the natural
condition) and the pressure prescribed by Dirichlet conditions elsewhere. This is the primal
(pressure, Lagrange) form: the micro-model answers the question the cells can answer (velocity
from a pressure gradient), and Newton converges in one step for a linear model. Mass is
conserved globally in the consistent sense: the flow rate entering through a held boundary is
:meth:`~fe2hmm.macro.problem.MacroProblem.reaction` of its condition, and these rates, the
inflows ``g`` and the sources balance to the solver's tolerance. Velocities at quadrature points
are not locally (element-wise) conservative; a mixed Raviart–Thomas form would be, but it
needs the resistivity :math:`\mu K^{-1}` from the micro-model (the inverse question).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

from fe2hmm.macro.diffusion import BoundaryFlux, _SteadyConservationLaw
from fe2hmm.macro.problem import ConstitutiveLaw, Dirichlet, SolverOptions
from fe2hmm.micro.interface import MicroModel

__all__ = ["DarcyFlow"]


class DarcyFlow(_SteadyConservationLaw):
    """Steady Darcy flow ``∇·u = f``, ``u = u(∇p; x)`` from a micro-model (pressure form).

    Args:
        mesh: the macro mesh.
        model: a micro-model with input ``pressure_gradient`` ``(d,)`` and output ``velocity``
            ``(d,)`` (e.g. :class:`~fe2hmm.micro.cells.stokes.PermeabilityCellModel`), or a
            UFL law ``u = law(∇p)`` (``lambda g: -k / mu * g``).
        parameters: the micro-model's per-point parameters, e.g.
            ``{"volume_fraction": 0.1 + 0.4 * x[0]}`` (solid fraction).
        source: volumetric injection ``f`` (number or scalar UFL), 1/s.
        boundary_flux: ``(ds, g)`` pairs: inflow ``g = -u·n`` (velocity) through the measure's
            facets; the rest of the boundary without a Dirichlet condition is impermeable.
        bcs: :class:`~fe2hmm.macro.problem.Dirichlet` conditions on the pressure ``p``.
        degree: Lagrange degree of ``p``.
        quadrature_degree: the closure's quadrature degree.
        scheduler: where the micro solves run under MPI (``"owner"``, ``"pooled"``,
            ``"serial"``).
        name: the closure's name (function names, messages).
        **solver_options: the solver keywords of :class:`~fe2hmm.macro.problem.MacroProblem`.

    Attributes:
        p: the pressure (the unknown :attr:`u`).
        closure: the closure, or ``None`` for a UFL law.
        velocity: the Darcy velocity ``u`` in the form (a quadrature function or the law's UFL).

    Raises:
        ValueError: the model lacks ``pressure_gradient``/``velocity`` or declares other inputs,
            bad degrees, a non-scalar source, a malformed ``boundary_flux`` entry.
        TypeError: ``model`` is neither a micro-model nor a callable.

    Example:
        The flow rate into the body through the held boundary ``bcs[0]`` (per unit thickness in
        2D) is ``problem.reaction(0)``; with no sources the rates of all conditions sum to zero.

    Note:
        Construction and solving are collective on ``mesh.comm``.
    """

    #: The unknown's name, the input bound to its gradient, the output used as the flux.
    _names = ("p", "pressure_gradient", "velocity")

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
        name: str = "darcy",
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
        self.p = self.u
        self.velocity = self._flux
