"""Tests of the gmsh generators of periodic unit cells (fe2hmm.rve.generators).

Volume tolerances: the boolean fragment partitions the box exactly, so without voids the total
mesh volume is 1 to round-off, and planar interfaces (laminates) give exact phase volumes. Curved
interfaces are meshed by polygons/polyhedra that the generators scale to the exact volume, so the
phase volumes equal the nominal fractions to round-off too (tests/rve/test_volume_fractions.py
checks that in detail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from fe2hmm import _compat  # noqa: F401  (dolfinx import order)

# isort: split

import gmsh
import ufl
from dolfinx import fem

from fe2hmm import rve as rve_pkg
from fe2hmm.rve import generators as gen
from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE, VOID

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def volume(cell: RVE, tag: int | None = None) -> float:
    dx = ufl.Measure("dx", domain=cell.mesh, subdomain_data=cell.cell_tags)
    measure = dx if tag is None else dx(tag)
    return float(fem.assemble_scalar(fem.form(fem.Constant(cell.mesh, 1.0) * measure)))


def first_moment(cell: RVE, tag: int) -> np.ndarray:
    dx = ufl.Measure("dx", domain=cell.mesh, subdomain_data=cell.cell_tags)
    x = ufl.SpatialCoordinate(cell.mesh)
    return np.array([fem.assemble_scalar(fem.form(x[i] * dx(tag))) for i in range(cell.dim)])


def assert_periodic(cell: RVE, tol: float = 1e-10) -> None:
    x = cell.mesh.geometry.x[:, : cell.dim]
    for axis in range(cell.dim):
        others = [i for i in range(cell.dim) if i != axis]
        low = x[np.abs(x[:, axis] - cell.lower[axis]) < tol][:, others]
        high = x[np.abs(x[:, axis] - cell.upper[axis]) < tol][:, others]
        assert len(low) > 0 and len(low) == len(high), (axis, len(low), len(high))
        for a, b in ((low, high), (high, low)):
            dist, _ = cKDTree(b).query(a)
            assert dist.max() < tol, f"face x{axis}: unmatched node, distance {dist.max():.3g}"


# Small-but-representative cells; 3D at the default resolution (12) unless noted.
CASES = {
    "circle": lambda: gen.circle(0.3),
    "ellipse": lambda: gen.ellipse(0.25, aspect_ratio=2.0, angle=0.4),
    "laminate2-x": lambda: gen.laminate(0.4, dim=2, normal=0),
    "laminate2-y": lambda: gen.laminate(0.3, dim=2, normal=1, resolution=16),
    "laminate3-z": lambda: gen.laminate(0.4, dim=3, normal=2, resolution=8),
    "random2": lambda: gen.random_inclusions(0.3, count=8, seed=1),
    "voids2": lambda: gen.voids(0.3, dim=2),
    "sphere": lambda: gen.sphere(0.2),
    "fibre": lambda: gen.fibre(0.3),
    "random3": lambda: gen.random_inclusions(0.05, count=4, seed=0, dim=3),
    "voids3": lambda: gen.voids(0.2, dim=3),
}


@pytest.fixture(scope="module")
def cells() -> dict[str, RVE]:
    return {key: make() for key, make in CASES.items()}


# ---------------------------------------------------------------------------------------------
# geometry and mesh
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(CASES))
def test_volumes(cells, key):
    cell = cells[key]
    nominal = cell.nominal_volume_fractions
    assert math.isclose(sum(nominal.values()), 1.0, abs_tol=1e-14)
    assert cell.phases == sorted(k for k in nominal if k != VOID)
    f = cell.parameters["volume_fraction"]
    assert nominal[VOID if cell.name == "voids" else INCLUSION] == f
    total = volume(cell)
    assert abs(total - (1.0 - nominal.get(VOID, 0.0))) < 1e-12
    for tag in cell.phases:
        assert abs(volume(cell, tag) - nominal[tag]) < 1e-12


@pytest.mark.parametrize("key", list(CASES))
def test_periodic_and_metadata(cells, key):
    cell = cells[key]
    assert_periodic(cell)
    d = cell.dim
    assert cell.mesh.topology.cell_name() == ("triangle" if d == 2 else "tetrahedron")
    assert cell.mesh.geometry.cmaps[0].degree == 1
    assert cell.mesh.comm.size == 1
    np.testing.assert_array_equal(cell.lower, np.zeros(d))
    np.testing.assert_array_equal(cell.upper, np.ones(d))
    assert cell.name in gen.GENERATORS
    assert d in gen.GENERATORS[cell.name].dims
    x = cell.mesh.geometry.x[:, :d]
    assert x.min() > -1e-12 and x.max() < 1 + 1e-12
    assert len(cell.cell_tags.values) == cell.mesh.topology.index_map(d).size_local


def test_voids_have_no_inclusion_phase(cells):
    for key in ("voids2", "voids3"):
        assert cells[key].phases == [MATRIX]
        assert set(cells[key].volume_fractions) == {MATRIX, VOID}
        assert set(cells[key].nominal_volume_fractions) == {MATRIX, VOID}


def test_random_reproducible():
    a = gen.random_inclusions(0.2, count=5, seed=7, resolution=16)
    b = gen.random_inclusions(0.2, count=5, seed=7, resolution=16)
    c = gen.random_inclusions(0.2, count=5, seed=8, resolution=16)
    assert a.parameters == b.parameters
    np.testing.assert_array_equal(a.mesh.geometry.x, b.mesh.geometry.x)
    assert a.mesh.geometry.x.shape != c.mesh.geometry.x.shape or not np.array_equal(
        a.mesh.geometry.x, c.mesh.geometry.x
    )
    # same polygons (the mesh size is uniform) but at other places
    assert np.linalg.norm(first_moment(a, INCLUSION) - first_moment(c, INCLUSION)) > 1e-3


def test_random_respects_gap():
    gap, res, n, f = 0.05, 16, 6, 0.25
    r = gen._ball_radius(f / n, 2)
    centres = gen._place_random(n, r, gap, 2, 3, f)
    assert np.all(centres >= r + gap) and np.all(centres <= 1 - r - gap)
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(n) * 10
    assert d.min() >= 2 * r + gap
    cell = gen.random_inclusions(f, count=n, seed=3, min_gap=gap, resolution=res)
    assert cell.parameters["min_gap"] == gap


def test_create_and_registry():
    assert gen.available() == sorted(gen.GENERATORS)
    assert gen.available(2) == ["circle", "ellipse", "laminate", "random", "voids"]
    assert gen.available(3) == ["fibre", "laminate", "random", "sphere", "voids"]
    cell = gen.create("ellipse", volume_fraction=0.2, resolution=12, angle=math.pi / 2)
    assert cell.name == "ellipse" and cell.dim == 2
    assert cell.parameters["angle"] == math.pi / 2 and cell.parameters["resolution"] == 12
    cell = gen.create("laminate", dim=3, volume_fraction=0.5, resolution=4, normal=1)
    assert cell.name == "laminate" and cell.dim == 3 and cell.parameters["normal"] == 1
    cell = gen.create("sphere", volume_fraction=0.1, resolution=5)  # dim inferred
    assert cell.dim == 3
    assert rve_pkg.create is gen.create and rve_pkg.RVE is RVE
    for name, info in gen.GENERATORS.items():
        for d in info.dims:
            assert info.max_volume_fraction[d] == gen.max_volume_fraction(name, d)


def test_max_volume_fraction_values():
    assert gen.max_volume_fraction("circle", 2) == pytest.approx(math.pi * 0.48**2)
    assert gen.max_volume_fraction("sphere") == pytest.approx(4 / 3 * math.pi * 0.48**3)
    assert gen.max_volume_fraction("fibre", 3) == gen.max_volume_fraction("circle", 2)
    assert gen.max_volume_fraction("laminate", 3) == 1.0
    # a 2:1 ellipse along x touches x = 0.02 first; rotated by 90 degrees, y = 0.02
    a = 0.48
    assert gen.max_volume_fraction("ellipse", 2) == pytest.approx(math.pi * a * a / 2)
    rotated = gen.max_volume_fraction("ellipse", 2, angle=math.pi / 2)
    assert rotated == pytest.approx(math.pi * a * a / 2)
    assert gen.max_volume_fraction("ellipse", 2, angle=math.pi / 4) > rotated
    # the extreme admissible values mesh
    gen.circle(gen.max_volume_fraction("circle", 2), resolution=16)
    gen.ellipse(gen.max_volume_fraction("ellipse", 2, angle=0.3), angle=0.3, resolution=16)


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------

BAD = [
    (lambda: gen.create("blob", volume_fraction=0.1), "'blob'"),
    (lambda: gen.create("circle", dim=3, volume_fraction=0.1), "dim=3"),
    (lambda: gen.create("circle", volume_fraction=0.1, colour=1), "colour"),
    (lambda: gen.circle(0.0), "volume_fraction=0.0"),
    (lambda: gen.circle(-0.1), "volume_fraction=-0.1"),
    (lambda: gen.circle(0.9), "volume_fraction=0.9"),
    (lambda: gen.circle(float("nan")), "volume_fraction=nan"),
    (lambda: gen.circle(0.3, resolution=1), "resolution=1"),
    (lambda: gen.circle(0.3, resolution=2.5), "resolution=2.5"),
    (lambda: gen.sphere(0.5), "volume_fraction=0.5"),
    (lambda: gen.fibre(0.75), "volume_fraction=0.75"),
    (lambda: gen.ellipse(0.2, aspect_ratio=0.5), "aspect_ratio=0.5"),
    (lambda: gen.ellipse(0.5), "volume_fraction=0.5"),
    (lambda: gen.laminate(1.0), "volume_fraction=1.0"),
    (lambda: gen.laminate(0.5, dim=2, normal=2), "normal=2"),
    (lambda: gen.laminate(0.5, dim=4), "dim=4"),
    (lambda: gen.random_inclusions(0.2, count=0), "count=0"),
    (lambda: gen.random_inclusions(0.2, min_gap=-0.1), "min_gap=-0.1"),
    (lambda: gen.random_inclusions(0.2, seed=-1), "seed=-1"),
    (lambda: gen.random_inclusions(0.55, count=16), "volume_fraction=0.55"),
    (lambda: gen.voids(0.5, dim=3), "volume_fraction=0.5"),
    (lambda: gen.max_volume_fraction("sphere", 2), "dim=2"),
    (lambda: gen.max_volume_fraction("ellipse", 2, aspect_ratio=0), "aspect_ratio=0"),
    (lambda: gen.max_volume_fraction("random", 2, count=0), "count=0"),
]


@pytest.mark.parametrize("call,needle", BAD, ids=[b[1] for b in BAD])
def test_bad_inputs(monkeypatch, call, needle):
    def no_gmsh(*args, **kwargs):
        raise AssertionError("gmsh touched before validation")

    monkeypatch.setattr(gen, "_generate", no_gmsh)
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_placement_failure_message():
    # admissible by the packing bound but random sequential addition jams
    with pytest.raises(ValueError, match=r"volume_fraction=0\.5.*count=8|count=8.*volume_fraction"):
        gen.random_inclusions(0.5, count=8, seed=0)


# ---------------------------------------------------------------------------------------------
# gmsh hygiene
# ---------------------------------------------------------------------------------------------


def test_gmsh_state_is_restored():
    gen.circle(0.1, resolution=4)  # make sure gmsh is initialised
    gmsh.model.add("user_model")
    gmsh.option.setNumber("Mesh.MeshSizeMax", 0.7)
    gmsh.option.setNumber("Mesh.ElementOrder", 2)
    try:
        models = gmsh.model.list()
        for _ in range(100):
            cell = gen.circle(0.2, resolution=6)
        assert cell.mesh.geometry.cmaps[0].degree == 1  # user ElementOrder ignored ...
        assert gmsh.option.getNumber("Mesh.ElementOrder") == 2  # ... and restored
        assert gmsh.option.getNumber("Mesh.MeshSizeMax") == 0.7
        assert gmsh.model.getCurrent() == "user_model"
        assert gmsh.model.list() == models
        assert gmsh.isInitialized()
    finally:
        gmsh.option.setNumber("Mesh.ElementOrder", 1)
        gmsh.option.setNumber("Mesh.MeshSizeMax", 1e22)
        gmsh.model.setCurrent("user_model")
        gmsh.model.remove()
