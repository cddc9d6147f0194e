"""Periodic Stokes cells: permeability against Sangani & Acrivos (1982, square arrays of
cylinders) and Zick & Homsy (1982, simple-cubic arrays of spheres)."""

import numpy as np
import pytest

from fe2hmm import rve
from fe2hmm.micro.cells.stokes import StokesCellProblem

#: Sangani & Acrivos (1982), Table 1: solid fraction c -> drag per unit length F/(μU) of a
#: square array of cylinders (4 significant digits); K/L² = μU/F on the unit cell.
SANGANI_ACRIVOS = {0.05: 15.56, 0.1: 24.83, 0.2: 51.53, 0.3: 102.90, 0.4: 217.89, 0.5: 532.55,
                   0.6: 1.763e3, 0.7: 1.352e4}  # fmt: skip

#: Zick & Homsy (1982), Table 2: solid fraction φ -> drag coefficient K = F/(6πμaU) of a
#: simple-cubic array of spheres of radius a; K/L² = L/(6π a K) on the unit cell.
ZICK_HOMSY = {0.027: 2.008, 0.064: 2.810, 0.125: 4.292, 0.216: 7.442, 0.343: 15.4, 0.45: 28.1}


def square_array(c: float) -> float:
    """K/L² of a square array of cylinders from Sangani & Acrivos's table."""
    return 1.0 / SANGANI_ACRIVOS[c]


def simple_cubic(phi: float) -> float:
    """K/L² of a simple-cubic array of spheres from Zick & Homsy's table."""
    radius = (3 * phi / (4 * np.pi)) ** (1 / 3)
    return 1 / (6 * np.pi * radius * ZICK_HOMSY[phi])


def dilute_square_array(c: float) -> float:
    """Sangani & Acrivos's dilute expansion for square arrays (truncation O(c⁴))."""
    return (-0.5 * np.log(c) - 0.738 + c - 0.887 * c**2 + 2.038 * c**3) / (4 * np.pi)


@pytest.mark.parametrize(
    ("c", "measured"), [(0.05, -2.1e-4), (0.2, -5.9e-5), (0.4, -1.2e-4), (0.6, -4.8e-4),
                        (0.7, -4.5e-4)]
)  # fmt: skip
def test_square_array_permeability_matches_the_published_table(c, measured):
    """Resolution 32, P2/P1: within 6e-4 of the table (``measured``: the relative error; the
    table's 4 digits round at ~1e-4) from dilute to 0.7 (the gap is 6 % of the period); the
    tensor is diagonal to round-off and isotropic (the cell's symmetry) to the discretisation
    error of an unsymmetric mesh (measured up to 3e-4 at c = 0.7)."""
    K = StokesCellProblem(rve.create("voids", volume_fraction=c, resolution=32)).solve()
    K = K.permeability
    assert abs(K[0, 0] / square_array(c) - 1) < 6e-4, (K, square_array(c), measured)
    assert abs(K[0, 1]) < 1e-5 * K[0, 0] and abs(K[1, 1] - K[0, 0]) < 1e-3 * K[0, 0]


def test_permeability_converges_under_refinement():
    """c = 0.1 at resolutions 16, 32, 64: successive differences shrink by more than 4 (measured
    7.7: the P2 velocity's order); the finest is within 0.1 % of the dilute expansion too."""
    values = [
        StokesCellProblem(rve.create("voids", volume_fraction=0.1, resolution=r))
        .solve()
        .permeability[0, 0]
        for r in (16, 32, 64)
    ]
    d1, d2 = abs(values[1] - values[0]), abs(values[2] - values[1])
    assert d2 < 0.25 * d1, values
    assert abs(values[-1] / dilute_square_array(0.1) - 1) < 1e-3


def test_permeability_scales_as_one_over_viscosity():
    cell = rve.create("voids", volume_fraction=0.2, resolution=12)
    one = StokesCellProblem(cell).solve().permeability
    two = StokesCellProblem(cell, viscosity=2.0).solve().permeability
    np.testing.assert_allclose(two, one / 2, rtol=1e-10, atol=1e-12 * np.abs(one).max())
    # as solved (not symmetrised): symmetric to round-off, positive definite
    assert np.abs(one - one.T).max() <= 1e-10 * np.abs(one).max()
    assert np.all(np.linalg.eigvalsh(0.5 * (one + one.T)) > 0)


@pytest.mark.slow
@pytest.mark.parametrize(("phi", "measured"), [(0.064, -4.8e-3), (0.343, -3.7e-3)])
def test_simple_cubic_array_permeability_matches_the_published_table(phi, measured):
    """3D spheres at resolution 12 (24–33k unknowns, ~10 s each): within 0.8 % of Zick & Homsy
    (``measured``; −1.1 … −2.4 % at resolution 8: second order)."""
    K = StokesCellProblem(rve.create("voids", volume_fraction=phi, dim=3, resolution=12))
    K = K.solve().permeability
    assert abs(np.trace(K) / 3 / simple_cubic(phi) - 1) < 8e-3, (K, simple_cubic(phi), measured)
    assert np.abs(K - np.diag(np.diag(K))).max() < 1e-3 * K[0, 0]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("f", [0.3, 0.5])
def test_laminate_gives_plane_poiseuille_flow_exactly(dim, f):
    """A fluid layer of width h = 1 − f between solid layers: K = h³/12 along the layers
    (plane Poiseuille flow, a parabola P2 holds exactly) and 0 across them, to round-off, on a
    coarse mesh — the walls, the periodic reduction and the flux are exact."""
    K = StokesCellProblem(rve.create("laminate", volume_fraction=f, dim=dim, resolution=4))
    K = K.solve().permeability
    expected = np.full(dim, (1 - f) ** 3 / 12)
    expected[0] = 0.0  # the layers are normal to x₁
    np.testing.assert_allclose(K, np.diag(expected), atol=1e-12)


def kozeny_constant(k: float, c: float, count: int) -> float:
    """Kozeny–Carman: k = ε³ d²/(16 K_C (1 − ε)²) for cylinders of diameter d (specific surface
    4/d per solid volume), ε = 1 − c; ``count`` equal disks of total fraction c in the cell."""
    d2 = 4 * c / (count * np.pi)
    return (1 - c) ** 3 * d2 / (16 * k * c**2)


def test_random_packings_follow_the_kozeny_carman_trend():
    """Random packings of 8 disks (2 seeds each, the fluid the matrix cells around the inclusions of
    the ``random`` generator) from c = 0.1 to 0.3: the permeability falls 4.2× while the implied
    Kozeny constant stays within a factor 2 (measured 8.0–13.6; square arrays: 10.5, 9.4 at
    c = 0.2, 0.3), and the circle cell (inclusion cells eliminated) gives the voids cell's K to
    round-off."""
    k, kc = [], []
    for c in (0.1, 0.2, 0.3):
        for seed in (0, 1):
            cell = rve.create("random", volume_fraction=c, count=8, seed=seed, resolution=32)
            K = StokesCellProblem(cell).solve().permeability
            k.append(np.trace(K) / 2)
            kc.append(kozeny_constant(k[-1], c, 8))
    assert max(k) / min(k) > 3 and max(kc) / min(kc) < 2, (k, kc)
    assert all(5 < x < 20 for x in kc), kc
    circle = StokesCellProblem(rve.create("circle", volume_fraction=0.3, resolution=16)).solve()
    voids = StokesCellProblem(rve.create("voids", volume_fraction=0.3, resolution=16)).solve()
    np.testing.assert_allclose(circle.permeability, voids.permeability, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: StokesCellProblem(c, viscosity=0.0), "viscosity must be a finite number > 0"),
        (lambda c: StokesCellProblem(c, degree=1), "degree must be an integer >= 2"),
    ],
)
def test_bad_input_is_refused(make, message):
    cell = rve.create("voids", volume_fraction=0.2, resolution=6)
    with pytest.raises(ValueError, match=message):
        make(cell)


@pytest.mark.parametrize("morph", [False, True])
def test_permeability_model_gives_darcy_fluxes(morph):
    """``PermeabilityCellModel``: q = -(K(φ) L²/μ) ∇p per point, the tangent -K L²/μ; remeshed
    cells equal the cell problem's tensor, morphed ones agree to the morphing's discretisation
    difference (measured 3e-4 relative; the discretisation error itself is 2e-3 here)."""
    from fe2hmm.micro.cells.stokes import PermeabilityCellModel

    model = PermeabilityCellModel(resolution=16, viscosity=2.0, cell_size=0.1, morph=morph)
    phi = np.array([0.1, 0.3, 0.1])
    g = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
    result = model.evaluate({"pressure_gradient": g}, {"volume_fraction": phi})
    for i, f in enumerate(phi):
        K = StokesCellProblem(rve.create("voids", volume_fraction=f, resolution=16)).solve()
        expected = -(K.permeability * 0.01 / 2.0) @ g[i]
        tolerance = 1e-3 if morph else 1e-10
        np.testing.assert_allclose(
            result.outputs["velocity"][i], expected, atol=tolerance * np.abs(expected).max()
        )
        np.testing.assert_allclose(
            result.tangents["velocity", "pressure_gradient"][i],
            -K.permeability * 0.01 / 2.0,
            atol=tolerance * np.abs(K.permeability).max() * 0.01 / 2.0,
        )
    assert model.statistics.micro_solves == 3  # one per point (no reuse wrapper)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell_size": -1.0}, "cell_size must be a finite number > 0"),
        ({"viscosity": True}, "viscosity must be a finite number > 0"),
        ({"viscosity": float("nan")}, "viscosity must be a finite number > 0"),
        ({"degree": 1}, "degree must be an integer >= 2"),
        ({"dim": 4}, "dim must be 2 or 3"),
        ({"resolution": 10**7}, "resolution"),  # memory, before any meshing
    ],
)
def test_permeability_model_refuses_bad_arguments(kwargs, message):
    from fe2hmm.micro.cells.stokes import PermeabilityCellModel

    with pytest.raises(ValueError, match=message):
        PermeabilityCellModel(**kwargs)


def test_morphed_cells_share_one_problem_per_mesh():
    """A morphed family serves every φ from one problem per reference mesh (``for_cell``), also
    with solid inclusion cells (circle cells: the inclusion is the grain): the shared problem's K
    equals a problem built for the cell itself to round-off, and 40 distinct φ build no more
    problems than the family has meshes (a problem per φ held a communicator per function
    space: a thousand φ exhausted MPI's)."""
    from fe2hmm.micro.cells.stokes import PermeabilityCellModel
    from fe2hmm.rve.morph import CellFamily

    family = CellFamily("circle", 2, 8)
    first, second = family.create(0.2), family.create(0.22)
    assert first.mesh is second.mesh
    shared = StokesCellProblem(first).for_cell(second).solve().permeability
    own = StokesCellProblem(second).solve().permeability
    np.testing.assert_allclose(shared, own, rtol=1e-12)
    model = PermeabilityCellModel(resolution=8)
    for phi in np.linspace(0.1, 0.5, 40):
        model.permeability(phi)
    assert 1 <= len(model._problems) <= model.geometry.family.meshed
