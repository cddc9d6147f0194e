"""Phase materials of a cell (fe2hmm.micro.cells.phases): validation and DG0 phase fields."""

import numpy as np
import pytest
import ufl
from dolfinx import fem

from fe2hmm import rve
from fe2hmm.micro.cells.geometry import CellGeometry
from fe2hmm.micro.cells.phases import phase_field, phase_materials, phase_name
from fe2hmm.rve.cell import INCLUSION, MATRIX


@pytest.fixture(scope="module")
def laminate():
    # planar interfaces: the meshed phase areas are exact (0.7 and 0.3)
    return rve.create("laminate", dim=2, volume_fraction=0.3, resolution=8)


def positive(value, phase):
    if not value > 0:
        raise ValueError(f"value of phase {phase_name(phase)} must be > 0, got {value!r}")
    return 2.0 * value


def test_phase_names():
    assert phase_name(MATRIX) == "1 (matrix)"
    assert phase_name(INCLUSION) == "2 (inclusion)"
    assert phase_name(np.int32(7)) == "7"


def test_materials_of_the_meshed_phases_are_parsed_in_tag_order(laminate):
    parsed = phase_materials(laminate, {INCLUSION: 3.0, MATRIX: 1.0, 9: -1.0}, positive, "k")
    assert list(parsed) == [MATRIX, INCLUSION] and parsed == {MATRIX: 2.0, INCLUSION: 6.0}
    # a geometry's phases come from its generator (no inclusion for voids): nothing is meshed
    voids = CellGeometry("voids", 2)
    assert phase_materials(voids, {MATRIX: 1.0, INCLUSION: -5.0}, positive, "k") == {MATRIX: 2.0}


@pytest.mark.parametrize("materials", [{MATRIX: 1.0}, {MATRIX: 1.0, INCLUSION: None}])
def test_a_missing_material_is_named(laminate, materials):
    with pytest.raises(ValueError) as info:
        phase_materials(laminate, materials, positive, "conductivity")
    assert str(info.value) == (
        "no conductivity given for phase(s) 2 (inclusion) of RVE 'laminate' "
        "(phases present: 1 (matrix), 2 (inclusion))"
    )


def test_the_parser_names_the_phase(laminate):
    with pytest.raises(ValueError, match=r"value of phase 2 \(inclusion\) must be > 0, got -3"):
        phase_materials(laminate, {MATRIX: 1.0, INCLUSION: -3.0}, positive, "k")


def test_phase_field_is_the_value_of_each_cell_phase(laminate):
    k = phase_field(laminate, {MATRIX: 1.5, INCLUSION: 4.0})
    mesh = laminate.mesh
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=laminate.cell_tags)
    for tag, value, area in ((MATRIX, 1.5, 0.7), (INCLUSION, 4.0, 0.3)):
        assert fem.assemble_scalar(fem.form(k * dx(tag))) == pytest.approx(value * area, 1e-13)
    # cell by cell
    n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
    values = k.x.array[k.function_space.dofmap.list[:n_cells, 0]]
    tags = laminate.cell_tags
    expected = np.zeros(n_cells)
    expected[tags.indices] = np.where(tags.values == MATRIX, 1.5, 4.0)
    np.testing.assert_array_equal(values, expected)


def test_tensor_phase_field_and_unlisted_phases(laminate):
    K = np.array([[2.0, 0.5], [0.5, 1.0]])
    k = phase_field(laminate, {INCLUSION: K}, (2, 2))  # the matrix is not listed: 0 there
    dx = ufl.Measure("dx", domain=laminate.mesh, subdomain_data=laminate.cell_tags)
    for i in range(2):
        for j in range(2):
            assert fem.assemble_scalar(fem.form(k[i, j] * dx(INCLUSION))) == pytest.approx(
                0.3 * K[i, j], 1e-13
            )
            assert fem.assemble_scalar(fem.form(abs(k[i, j]) * dx(MATRIX))) == 0.0
