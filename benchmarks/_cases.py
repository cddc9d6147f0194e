"""The macro problems of the demos that several benchmarks time, built on ``fe2hmm.macro``.

- :func:`graded_conduction`: the graded fibre composite of ``demos/composite_conduction.py``
  (``-∇·(K*(φ)∇T) = 10`` on the unit square, ``T = 0`` on the boundary, φ = 0.1 → 0.5);
- :func:`porous_plate`: the porous J2 plate of ``demos/porous_plasticity.py`` (clamped left,
  pulled right by ``DELTA_MAX`` times the load factor, load path :data:`LOADS`).
"""

from __future__ import annotations

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.macro import Dirichlet, SmallStrainElasticity, SteadyDiffusion
from fe2hmm.micro.cells.plasticity import PlasticCellModel

K_MATRIX, K_FIBRE = 1.0, 10.0
SOURCE = 10.0
MATRIX = (1.0, 0.3, 0.01, 0.1)  # E, nu, sigma_y, H of the porous plate's matrix
POROSITY = 0.2
DELTA_MAX = 0.04
LOADS = [0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 0.75, 0.5, 0.25, 0.0]


def graded_fraction(x):
    """Fibre fraction 0.1 → 0.5 along x₁ (UFL coordinate)."""
    return 0.1 + 0.4 * x[0]


def graded_conduction(model, mesh, scheduler: str = "owner", fraction=graded_fraction, **options):
    """The graded composite closed by ``model``; returns ``(problem, NewtonResult)``.

    ``options`` go to :class:`~fe2hmm.macro.SteadyDiffusion` (``degree``, ``quadrature_degree``).
    """
    problem = SteadyDiffusion(
        mesh,
        model,
        parameters={"volume_fraction": fraction(ufl.SpatialCoordinate(mesh))},
        source=SOURCE,
        bcs=[Dirichlet(0.0)],
        scheduler=scheduler,
        **options,
    )
    return problem, problem.solve()


def porous_plate(
    comm,
    nx: int,
    resolution: int,
    reuse: bool = True,
    scheduler: str = "owner",
    tolerance: float | None = None,
):
    """The porous plate; returns ``(problem, model, apply_load, reaction)`` (reaction: x-force
    on the pulled edge). ``tolerance``: the cells' linearised predictor (None: off)."""
    mesh = dmesh.create_rectangle(comm, [[0, 0], [2, 1]], [2 * nx, nx])
    pull = fem.Constant(mesh, np.zeros(2))
    model = PlasticCellModel(rve="voids", matrix=MATRIX, resolution=resolution, tolerance=tolerance)
    model.exact_shortcuts = reuse  # the exact elastic predictor
    problem = SmallStrainElasticity(
        mesh,
        model,
        parameters={"volume_fraction": POROSITY},
        bcs=[
            Dirichlet(np.zeros(2), lambda x: np.isclose(x[0], 0.0)),
            Dirichlet(pull, lambda x: np.isclose(x[0], 2.0)),
        ],
        quadrature_degree=1,
        scheduler=scheduler,
        rtol=1e-9,
        atol=1e-9,
    )
    _ = problem.newton  # compile before any timing starts

    def apply(t: float) -> None:
        pull.value[:] = [DELTA_MAX * t, 0.0]

    return problem, model, apply, lambda: problem.reaction(1, component=0)
