"""fe2hmm.rve.resolved.solve_resolved_stokes and the tile helpers (also under ``mpiexec -n 2``).

The resolved Stokes flow through a uniform tiling reproduces its cell's permeability (the box
conditions hold the periodic solution), conserves mass exactly, refuses bad open parts; tile
means and tile positions of cells.
"""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import mesh as dmesh

from fe2hmm import rve
from fe2hmm.macro import DarcyFlow, Dirichlet
from fe2hmm.micro.cells.stokes import StokesCellProblem
from fe2hmm.rve.resolved import darcy_errors, solve_resolved_stokes
from fe2hmm.rve.tiling import cell_tiles, tile_columns, tile_means

pytestmark = pytest.mark.mpi


def _left(x):
    return np.isclose(x[0], 0.0)


def _right(x):
    return np.isclose(x[0], 1.0)


@pytest.fixture(scope="module")
def uniform():
    """3 × 3 tiles of one voids cell (solid fraction 0.3, resolution 8), flow along x₁."""
    cell = rve.create("voids", volume_fraction=0.3, resolution=8)
    K = StokesCellProblem(cell).solve().permeability
    tiled = tile_columns([cell] * 3, MPI.COMM_WORLD)
    flow = solve_resolved_stokes(tiled, [(_left, 1.0), (_right, 0.0)])
    return K, tiled, flow


def test_uniform_tiling_reproduces_the_cells_permeability(uniform):
    """Flow rate ε² K*₁₁ Δp/μ with ε = 1/3: the periodic cell flow satisfies the open and the
    symmetry conditions on its faces, so only the mesh's asymmetry separates the two (measured
    5e-6 at resolution 8, 4e-8 at 16); asserted 1e-4. In = out to round-off (Taylor–Hood keeps
    the mean divergence zero)."""
    K, tiled, flow = uniform
    inflow, inflow_right = flow.inflow
    assert inflow * 9 == pytest.approx(K[0, 0], rel=1e-4)
    assert inflow_right == pytest.approx(-inflow, rel=1e-12)
    means = tile_means(flow.velocity, tiled.mesh, tiled.tile, 3)
    assert means.shape == (9, 2)
    np.testing.assert_allclose(means[:, 0] * 9, K[0, 0], rtol=1e-3)  # every tile: Darcy
    assert np.abs(means[:, 1]).max() < 1e-4 * means[:, 0].min()  # measured 4e-5
    assert flow.dofs > 0 and flow.seconds["total"] > 0


def test_darcy_errors_of_the_exact_darcy_solution_are_the_cells(uniform):
    """The Darcy flow with the cell's K on a 6 × 6 mesh is the linear pressure: its tile-mean
    velocity matches the resolved one to the tiling's 1e-4; its pressure differs by the
    cell-scale fluctuation of the resolved pressure, O(ε) (measured 8.5 % at ε = 1/3)."""
    K, tiled, flow = uniform
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 6, 6)
    problem = DarcyFlow(
        mesh, lambda g: -float(K[0, 0]) / 9 * g, bcs=[Dirichlet(1.0, _left), Dirichlet(0.0, _right)]
    )
    problem.solve()
    errors = darcy_errors(tiled, flow, problem.p, problem.velocity)
    assert errors["velocity_error"] < 1e-3
    assert 0.02 < errors["pressure_l2_error"] < 0.15


def test_tile_means_and_cell_tiles():
    """The mean of 1 over the tiles of a voids tiling is each column's fluid fraction; cells of
    a 4 × 4 mesh lie in 2 × 2 tiles, not in 3 × 3 ones."""
    cells = [rve.create("voids", volume_fraction=f, resolution=6) for f in (0.2, 0.4)]
    tiled = tile_columns(cells, MPI.COMM_WORLD)
    means = tile_means(ufl.as_ufl(1.0), tiled.mesh, tiled.tile, 2)
    fluid = [1.0 - c.parameters["volume_fraction"] for c in cells]
    np.testing.assert_allclose(means, [fluid[0], fluid[0], fluid[1], fluid[1]], rtol=2e-2)
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    tiles = cell_tiles(mesh, 2)
    assert tiles.shape == (mesh.topology.index_map(2).size_local, 2)
    assert set(map(tuple, tiles.tolist())) <= {(0, 0), (0, 1), (1, 0), (1, 1)}
    with pytest.raises(ValueError, match="straddles"):
        cell_tiles(mesh, 3)


def test_bad_open_boundaries_are_refused(uniform):
    _, tiled, _ = uniform
    with pytest.raises(ValueError, match="at least one"):
        solve_resolved_stokes(tiled, [])
    with pytest.raises(ValueError, match=r"open_boundaries\[1\] overlaps"):
        solve_resolved_stokes(tiled, [(_left, 1.0), (lambda x: x[0] < 0.5, 0.0)])
    with pytest.raises(ValueError, match=r"open_boundaries\[0\] selects no facet"):
        solve_resolved_stokes(tiled, [(lambda x: x[0] > 2.0, 1.0)])
    with pytest.raises(ValueError, match="viscosity"):
        solve_resolved_stokes(tiled, [(_left, 1.0)], viscosity=0.0)
    with pytest.raises(ValueError, match="degree"):
        solve_resolved_stokes(tiled, [(_left, 1.0)], degree=1)
