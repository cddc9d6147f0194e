"""fe2hmm.rve.tiling: the DNS mesh tiled from unit cells (also under ``mpiexec -n 2``)."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem, la
from dolfinx import mesh as dmesh

from fe2hmm.micro.cells.diffusion import homogenize_diffusion
from fe2hmm.rve import INCLUSION, create
from fe2hmm.rve.cell import MATRIX
from fe2hmm.rve.morph import CellFamily
from fe2hmm.rve.tiling import first_order_corrector, tile_columns

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("morphed", [False, True], ids=["meshed", "morphed"])
def test_tiled_mesh_conforms_and_keeps_every_cells_phases(morphed):
    """Two columns (fractions 0.1 and 0.4; morphed: 0.2 and 0.21, one shared mesh) tiled
    2 × 2: area 1, inclusion area the mean of the meshed cells' inclusion areas (exactly: the
    cells are copies, to round-off 1e-14), and one connected conforming mesh (its boundary is
    the square's perimeter only, 4)."""
    comm = MPI.COMM_WORLD
    if morphed:
        family = CellFamily("circle", 2, 6)
        cells = [family.create(f) for f in (0.2, 0.21)]
        assert cells[0].mesh is cells[1].mesh
    else:
        cells = [create("circle", volume_fraction=f, resolution=6) for f in (0.1, 0.4)]
    tiled = tile_columns(cells, comm)
    mesh, tags = tiled.mesh, tiled.tags
    if morphed:  # each column kept its own fraction though the cells share a mesh
        fractions = [c.volume_fractions[INCLUSION] for c in cells]
        np.testing.assert_allclose(fractions, [0.2, 0.21], rtol=1e-12)
    Q = fem.functionspace(mesh, ("DG", 0))
    inclusion = fem.Function(Q)
    inclusion.x.array[: tags.size] = tags == INCLUSION
    inclusion.x.scatter_forward()

    def total(form):
        return comm.allreduce(fem.assemble_scalar(fem.form(form)))

    def inclusion_area(cell):
        cell.place_nodes()  # a morphed cell: its own nodes in the shared mesh
        dx = ufl.Measure("dx", domain=cell.mesh, subdomain_data=cell.cell_tags)
        return fem.assemble_scalar(fem.form(1.0 * dx(INCLUSION)))

    meshed = [inclusion_area(c) for c in cells]
    assert total(1.0 * ufl.dx(domain=mesh)) == pytest.approx(1.0, abs=1e-12)
    assert total(inclusion * ufl.dx) == pytest.approx(np.mean(meshed), abs=1e-14)
    # interior cell edges shared by neighbours: only the outer boundary remains
    assert total(1.0 * ufl.ds(domain=mesh)) == pytest.approx(4.0, abs=1e-12)
    per_column = [c.mesh.topology.index_map(2).size_local for c in cells]
    assert comm.allreduce(tags.size) == len(cells) * sum(per_column)  # one copy per row


def test_bad_cells_are_named():
    cells = [create("circle", volume_fraction=0.2, resolution=r) for r in (4, 6)]
    with pytest.raises(RuntimeError, match="do not conform"):
        tile_columns(cells, MPI.COMM_WORLD)
    with pytest.raises(ValueError, match="at least one cell"):
        tile_columns([], MPI.COMM_WORLD)
    with pytest.raises(ValueError, match="2D unit cell"):
        tile_columns(
            [cells[0], create("sphere", volume_fraction=0.1, resolution=3)], MPI.COMM_WORLD
        )


def test_tiled_spheres_of_one_reference_mesh_conform():
    """3D: sphere columns (fractions 0.05 and 0.3) morphed from one reference mesh, tiled
    2 × 2 × 2: volume 1, the mean inclusion volume, and only the cube's surface (6) as
    boundary. (gmsh triangulates the cube faces of different spheres differently: 3D columns
    must come from one mesh.)"""
    comm = MPI.COMM_WORLD
    family = CellFamily("sphere", 3, 4, reference_fraction=0.15)
    cells = [family.create(f) for f in (0.05, 0.3)]
    assert cells[0].mesh is cells[1].mesh
    tiled = tile_columns(cells, comm)
    mesh = tiled.mesh

    def total(form):
        return comm.allreduce(fem.assemble_scalar(fem.form(form)))

    Q = fem.functionspace(mesh, ("DG", 0))
    inclusion = fem.Function(Q)
    inclusion.x.array[: tiled.tags.size] = tiled.tags == INCLUSION
    inclusion.x.scatter_forward()
    assert total(1.0 * ufl.dx(domain=mesh)) == pytest.approx(1.0, abs=1e-12)
    assert total(inclusion * ufl.dx) == pytest.approx(np.mean([0.05, 0.3]), rel=1e-10)
    assert total(1.0 * ufl.ds(domain=mesh)) == pytest.approx(6.0, abs=1e-12)
    assert comm.allreduce(tiled.tags.size) == 4 * sum(
        c.mesh.topology.index_map(3).size_local for c in cells
    )


@pytest.mark.parametrize("dim", [2, 3])
def test_first_order_corrector_makes_the_affine_field_a_discrete_solution(dim):
    """With one cell in every column, u = G·x + χ·G (χ = ε w(x/ε) from the cell's own
    fluctuations) solves the discrete DNS equations at every interior node: the stiffness
    residual vanishes to round-off (1e-10 relative) — the corrector is exactly the cell
    solution laid out on the tiles."""
    comm = MPI.COMM_WORLD
    name, res, n = ("circle", 6, 3) if dim == 2 else ("sphere", 4, 2)
    cell = CellFamily(name, dim, res).create(0.2)
    solution = homogenize_diffusion(cell, {MATRIX: 1.0, INCLUSION: 7.0})
    tiled = tile_columns([cell] * n, comm)
    chi = first_order_corrector(tiled, [solution] * n)
    mesh = tiled.mesh
    Q = fem.functionspace(mesh, ("DG", 0))
    k = fem.Function(Q)
    k.x.array[: tiled.tags.size] = np.where(tiled.tags == INCLUSION, 7.0, 1.0)
    k.x.scatter_forward()
    G = np.array([1.0, -0.4, 0.7][:dim])
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u = fem.Function(V)
    x = ufl.SpatialCoordinate(mesh)
    u.interpolate(
        fem.Expression(ufl.dot(ufl.as_vector(G), x + chi), V.element.interpolation_points)
    )
    v = ufl.TestFunction(V)
    residual = fem.assemble_vector(fem.form(k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx))
    residual.scatter_reverse(la.InsertMode.add)
    fdim = dim - 1
    boundary = fem.locate_dofs_topological(
        V, fdim, dmesh.locate_entities_boundary(mesh, fdim, lambda p: np.full(p.shape[1], True))
    )
    r = residual.array[: V.dofmap.index_map.size_local].copy()
    r[boundary[boundary < r.size]] = 0.0
    scale = comm.allreduce(np.abs(residual.array).max(), op=MPI.MAX)
    assert comm.allreduce(np.abs(r).max(), op=MPI.MAX) < 1e-10 * scale
    # the corrector is not trivially zero
    assert comm.allreduce(np.abs(chi.x.array).max(), op=MPI.MAX) > 1e-3 / n


def test_corrector_refuses_missing_or_foreign_cell_solutions_on_every_rank():
    comm = MPI.COMM_WORLD
    family = CellFamily("circle", 2, 6)
    cells = [family.create(f) for f in (0.2, 0.21)]
    tiled = tile_columns(cells, comm)
    solution = homogenize_diffusion(cells[0], {MATRIX: 1.0, INCLUSION: 2.0})
    with pytest.raises(ValueError, match="need one cell solution per column"):
        first_order_corrector(tiled, [solution])
    with pytest.raises(ValueError, match="column 1 has cells on this rank but no cell solution"):
        first_order_corrector(tiled, [solution, None])  # every rank owns cells of both columns
    other = create("circle", volume_fraction=0.2, resolution=8)  # not the tiled cell's mesh
    foreign = homogenize_diffusion(other, {MATRIX: 1.0, INCLUSION: 2.0})
    with pytest.raises(ValueError, match="not a node of its cell's mesh"):
        first_order_corrector(tiled, [solution, foreign])
