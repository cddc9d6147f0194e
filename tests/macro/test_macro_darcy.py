"""fe2hmm.macro.darcy: Darcy flow closed by Stokes cells (also run under ``mpiexec -n 2``).

Exact flow rates (a uniform medium: the cell's permeability; a graded law in series: the
harmonic mean), mass conservation of the consistent fluxes with a source, and bad input.
"""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import mesh as dmesh

from fe2hmm.macro import DarcyFlow, Dirichlet
from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.micro.cells.stokes import PermeabilityCellModel

pytestmark = pytest.mark.mpi


def _left(x):
    return np.isclose(x[0], 0.0)


def _right(x):
    return np.isclose(x[0], 1.0)


def test_uniform_medium_passes_the_cells_permeability():
    """A uniform filter (solid fraction 0.3, cells of period 0.1, viscosity 2) under a unit
    pressure drop: the pressure is linear (exact in P1), so the flow rate is K/μ = K* ε²/μ of
    the cell to round-off (1e-12), in once and out once, with one cell solve."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    model = PermeabilityCellModel(2, viscosity=2.0, cell_size=0.1, resolution=8)
    problem = DarcyFlow(
        mesh,
        model,
        parameters={"volume_fraction": 0.3},
        bcs=[Dirichlet(1.0, _left), Dirichlet(0.0, _right)],
    )
    result = problem.solve()
    K = model.permeability(0.3)
    assert result.iterations == 1
    assert problem.reaction(0) == pytest.approx(K[0, 0] / 2.0, rel=1e-12)
    assert problem.reaction(1) == pytest.approx(-K[0, 0] / 2.0, rel=1e-12)
    unit = PermeabilityCellModel(2, resolution=8).permeability(0.3)  # K* of the unit cell
    np.testing.assert_allclose(K, 0.1**2 * unit, rtol=1e-12)


def test_graded_law_in_series_gives_the_harmonic_mean():
    """u = -k(x₁)∇p with k = 1 + x₁ across the square: flow rate 1/∫dx/k = 1/ln 2. P2 on a
    16 × 16 mesh: measured 3e-8 relative; asserted 1e-6."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 16, 16)
    x = ufl.SpatialCoordinate(mesh)
    problem = DarcyFlow(
        mesh,
        lambda g: -(1.0 + x[0]) * g,
        bcs=[Dirichlet(1.0, _left), Dirichlet(0.0, _right)],
        degree=2,
    )
    problem.solve()
    assert problem.p.name == "p" and problem.closure is None
    assert problem.reaction(0) == pytest.approx(1.0 / np.log(2.0), rel=1e-6)


def test_injection_leaves_through_the_held_boundary():
    """∇·u = f with f = 3 and p = 0 on the whole boundary: the consistent flux out equals the
    injected 3 (mass conservation) to 1e-10, for any permeability field."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 8, 8)
    x = ufl.SpatialCoordinate(mesh)
    problem = DarcyFlow(mesh, lambda g: -(1.0 + x[0] * x[1]) * g, source=3.0, bcs=[Dirichlet(0.0)])
    problem.solve()
    assert problem.reaction(0) == pytest.approx(-3.0, rel=1e-10)


def test_a_model_without_darcy_names_is_refused():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    with pytest.raises(ValueError, match="pressure_gradient"):
        DarcyFlow(mesh, DiffusionCellModel(matrix=1.0, inclusion=2.0, resolution=4))
    with pytest.raises(ValueError, match="parameters"):
        DarcyFlow(mesh, lambda g: -g, parameters={"volume_fraction": 0.2})
    with pytest.raises(TypeError, match="MicroModel"):
        DarcyFlow(mesh, "permeability")
