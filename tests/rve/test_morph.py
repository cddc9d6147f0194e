"""Morphed cells (fe2hmm.rve.morph): geometry, periodicity, accuracy against remeshed cells."""

import math

import numpy as np
import pytest

from fe2hmm import analytic, rve
from fe2hmm._compat import geometry_dofmap
from fe2hmm.micro.cells.diffusion import DiffusionCellProblem, homogenize_diffusion
from fe2hmm.micro.cells.elasticity import homogenize_elasticity
from fe2hmm.micro.cells.geometry import CellGeometry, MeshProblems
from fe2hmm.micro.cells.linalg import SPDFactorization
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.sparse import CSRMatrix
from fe2hmm.rve.cell import INCLUSION, MATRIX, VOID
from fe2hmm.rve.morph import MAX_STRETCH, CellFamily

FAMILIES = [
    ("circle", 2, 12, {}),
    ("ellipse", 2, 16, {"aspect_ratio": 2.5, "angle": 0.3}),
    ("voids", 2, 12, {}),
    ("laminate", 2, 8, {"normal": 1}),
    ("sphere", 3, 6, {}),
    ("fibre", 3, 5, {}),
    ("voids", 3, 6, {}),
    ("laminate", 3, 4, {"normal": 2}),
]


def _volumes(cell):
    d = cell.dim
    p = cell.mesh.geometry.x[geometry_dofmap(cell.mesh)][:, :, :d]
    return np.linalg.det(p[:, 1:] - p[:, :1])


@pytest.mark.parametrize("name,dim,res,options", FAMILIES, ids=lambda v: str(v))
def test_morphed_cells_are_periodic_exact_in_volume_and_stretched_within_the_bound(
    name, dim, res, options
):
    family = CellFamily(name, dim, res, options)
    fmax = rve.max_volume_fraction(name, dim, **options)
    fractions = [0.02, 0.3 * fmax, 0.61 * fmax, 0.97 * fmax]
    if name == "laminate":
        fractions = [0.02, 0.35, 0.6, 0.95]
    phase = VOID if name == "voids" else INCLUSION
    for f in fractions:
        cell = family.create(f)
        assert cell.node_coordinates is not None
        assert cell.parameters["volume_fraction"] == f
        # meshed = nominal to round-off (the reference's inclusion scaled, not re-approximated)
        assert cell.volume_fractions[phase] == pytest.approx(f, rel=1e-12, abs=1e-14)
        ref = family.references[family.rung(f)]
        ref_x = ref.node_coordinates
        # faces across the scaled axes stay put; the others (fibre ends, laminate sides) move
        # alike on opposite faces, a function of the scaled coordinates only
        axes = {"fibre": [0, 1], "laminate": [options.get("normal", 0)]}.get(name, range(dim))
        on_box = np.any([np.isclose(ref_x[:, a], 0) | np.isclose(ref_x[:, a], 1) for a in axes], 0)
        assert on_box.any()
        np.testing.assert_array_equal(cell.node_coordinates[on_box], ref_x[on_box])
        V = DiffusionCellProblem(cell, {MATRIX: 1.0, INCLUSION: 2.0}).V
        PeriodicDofMap(V, cell.lower, cell.upper)  # raises if a face node lost its partner
        # no element inverted; volumes change by at most the ladder's stretch per axis
        ratio = _volumes(cell) / _volumes(ref)
        assert ratio.min() > 0
        assert ratio.max() <= MAX_STRETCH**dim * (1 + 1e-9)
        assert ratio.min() >= MAX_STRETCH**-dim * (1 - 1e-9)
    assert family.morphed == len(fractions)
    assert family.meshed == len(family.references) <= len(fractions)


def test_the_ladder_makes_each_cell_independent_of_the_request_order():
    a, b = CellFamily("circle", 2, 10), CellFamily("circle", 2, 10)
    first = [a.create(f).node_coordinates for f in (0.15, 0.4, 0.22)]
    second = [b.create(f).node_coordinates for f in (0.22, 0.15, 0.4)]
    for x, y in zip(first, [second[1], second[2], second[0]], strict=True):
        np.testing.assert_array_equal(x, y)
    # the rungs are at most one stretch apart: both stretches within [1/S, S]
    for f in np.linspace(0.01, rve.max_volume_fraction("circle", 2), 50):
        e, e0 = math.sqrt(f / math.pi), math.sqrt(a.reference_volume_fraction(a.rung(f)) / math.pi)
        for stretch in (e / e0, (0.5 - e) / (0.5 - e0)):
            assert 1 / MAX_STRETCH - 1e-12 <= stretch <= MAX_STRETCH + 1e-12


def test_morphed_circles_are_as_accurate_as_remeshed_ones_against_perrins():
    """At resolution 16 the discretisation error against Perrins et al. (1979) is 0.25-1.1 %;
    a morphed cell must be within 10 % (+1e-4) of the remeshed cell's error."""
    family = CellFamily("circle", 2, 16)
    for f in (0.1, 0.3, 0.5, 0.7):
        exact = analytic.square_array_cylinders(1.0, 10.0, f)
        morphed = homogenize_diffusion(family.create(f), {MATRIX: 1.0, INCLUSION: 10.0})
        fresh = rve.create("circle", volume_fraction=f, resolution=16)
        remeshed = homogenize_diffusion(fresh, {MATRIX: 1.0, INCLUSION: 10.0})
        err_m = abs(morphed.effective_tensor[0, 0] / exact - 1)
        err_r = abs(remeshed.effective_tensor[0, 0] / exact - 1)
        assert err_m <= 1.1 * err_r + 1e-4, (f, err_m, err_r)
        assert (
            morphed.dofs
            == homogenize_diffusion(
                family.references[family.rung(f)], {MATRIX: 1.0, INCLUSION: 10.0}
            ).dofs
        )


def test_morphed_laminates_stay_exact_and_spheres_match_remeshed_cells():
    family = CellFamily("laminate", 2, 8)
    for f in (0.1, 0.45, 0.8):
        K = homogenize_diffusion(family.create(f), {MATRIX: 1.0, INCLUSION: 7.0}).effective_tensor
        exact = analytic.laminate_conductivity(1.0, 7.0, f, dim=2, normal=0)
        np.testing.assert_allclose(K, exact, atol=1e-10)
    spheres = CellFamily("sphere", 3, 8)
    materials = {MATRIX: (1.0, 0.3), INCLUSION: (10.0, 0.25)}
    for f in (0.1, 0.3):
        C_m = homogenize_elasticity(spheres.create(f), materials).effective_tensor
        fresh = rve.create("sphere", volume_fraction=f, resolution=8)
        C_r = homogenize_elasticity(fresh, materials).effective_tensor
        # the two discretisations of one cell: 3D P1 at resolution 8 differ by ~0.5 %
        np.testing.assert_allclose(C_m, C_r, rtol=0, atol=1e-2 * np.abs(C_r).max())


def test_one_problem_per_mesh_serves_every_cell_of_it_as_a_fresh_problem_would():
    geometry = CellGeometry("circle", 2, 12)
    problems = MeshProblems(lambda c: DiffusionCellProblem(c, {MATRIX: 1.0, INCLUSION: 5.0}))
    cells = [geometry.create(f) for f in (0.20, 0.21, 0.205)]  # one rung: one shared mesh
    assert len({id(c.mesh) for c in cells}) == 1
    shared = [problems(c).solve() for c in cells]
    assert len(problems) == 1
    for cell, solution in zip(cells, shared, strict=True):
        fresh = DiffusionCellProblem(cell, {MATRIX: 1.0, INCLUSION: 5.0}).solve()
        np.testing.assert_allclose(solution.effective_tensor, fresh.effective_tensor, rtol=1e-12)
    # the fields of an earlier cell come back on its own geometry
    w = shared[0].fluctuations[0]
    np.testing.assert_array_equal(w.function_space.mesh.geometry.x, cells[0].node_coordinates)
    with pytest.raises(ValueError, match="same mesh"):
        problems(cells[0]).for_cell(rve.create("circle", volume_fraction=0.2, resolution=12))


def test_geometry_morphs_only_the_morphable_generators_and_on_request():
    assert CellGeometry("circle", 2, 8).family is not None
    assert CellGeometry("circle", 2, 8, morph=False).family is None
    assert CellGeometry("random", 2, 8).family is None
    assert CellGeometry("circle", 2, 8).create(0.3, shared=False).node_coordinates is None
    with pytest.raises(ValueError, match="cannot morph 'random'"):
        CellFamily("random", 2, 8)
    with pytest.raises(ValueError, match="max_stretch"):
        CellFamily("circle", 2, 8, max_stretch=1.0)
    with pytest.raises(ValueError, match="volume_fraction=0.9"):
        CellFamily("circle", 2, 8).create(0.9)
    with pytest.raises(ValueError, match="volume_fraction=0.8"):
        CellFamily("circle", 2, 8, reference_fraction=0.8)
    # a fixed reference serves every fraction it can, and refuses a morph that crushes the gap
    fixed = CellFamily("circle", 2, 8, reference_fraction=0.2)
    assert fixed.create(0.1).mesh is fixed.create(0.45).mesh
    with pytest.raises(ValueError, match="crushes elements"):
        CellFamily("circle", 2, 8, reference_fraction=0.01).create(0.72)


def test_refactorisation_reuses_the_pattern_and_matches_a_fresh_factorisation():
    rng = np.random.default_rng(4)
    n = 40
    B = rng.standard_normal((n, n)) * (rng.random((n, n)) < 0.1)
    pattern = (B + B.T + np.eye(n)) != 0
    rows, cols = np.nonzero(pattern)

    def spd(shift):
        values = np.where(rows == cols, n + shift, -rng.random(rows.size))
        M = np.zeros((n, n))
        M[rows, cols] = values
        M = 0.5 * (M + M.T)
        return CSRMatrix.from_coo(rows, cols, M[rows, cols], (n, n))

    b = rng.standard_normal(n)
    factor = SPDFactorization(backend="mumps")
    for shift in (1.0, 5.0):
        A = spd(shift)
        factor.factor(A)
        x = factor.solve(b)
        np.testing.assert_allclose(x, SPDFactorization(A).solve(b), rtol=1e-12)
        np.testing.assert_allclose(A @ x, b, atol=1e-10)
    assert factor.numeric_only == 1
    other = CSRMatrix.from_coo(np.arange(n), np.arange(n), np.full(n, 2.0), (n, n))
    factor.factor(other)  # a new pattern: a new analysis
    assert factor.numeric_only == 1
    np.testing.assert_allclose(factor.solve(b), b / 2)
