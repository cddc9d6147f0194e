"""fe2hmm.rve.tiling: the DNS mesh tiled from unit cells (also under ``mpiexec -n 2``)."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem

from fe2hmm.rve import INCLUSION, create
from fe2hmm.rve.morph import CellFamily
from fe2hmm.rve.tiling import tile_columns

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
    mesh, tags = tile_columns(cells, comm)
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
