"""Periodic Stokes cells: permeability against the dilute expansions of Sangani & Acrivos."""

import numpy as np
import pytest

from fe2hmm import rve
from fe2hmm.micro.cells.stokes import StokesCellProblem


def square_array(c: float) -> float:
    """K/L² of a square array of cylinders, solid fraction c (Sangani & Acrivos 1982, the
    dilute expansion; its truncation is O(c⁴), ~1e-4 relative at c = 0.1)."""
    return (-0.5 * np.log(c) - 0.738 + c - 0.887 * c**2 + 2.038 * c**3) / (4 * np.pi)


def simple_cubic(phi: float) -> float:
    """K/L² of a simple-cubic array of spheres, solid fraction φ (Sangani & Acrivos 1982:
    drag K(φ) = F/(6πμaU); k = L³/F per unit velocity and viscosity)."""
    drag = 1 / (
        1
        - 1.7601 * phi ** (1 / 3)
        + phi
        - 1.5593 * phi**2
        + 3.9799 * phi ** (8 / 3)
        - 3.0734 * phi ** (10 / 3)
    )
    radius = (3 * phi / (4 * np.pi)) ** (1 / 3)
    return 1 / (6 * np.pi * radius * drag)


@pytest.mark.parametrize(("c", "measured"), [(0.05, -5.8e-4), (0.1, -9.9e-4)])
def test_square_array_permeability_matches_the_dilute_expansion(c, measured):
    """Resolution 32, P2/P1: within 0.15 % of the expansion (measured: see ``measured``); the
    tensor is isotropic and diagonal (the cell's symmetry) to the solver's round-off."""
    K = StokesCellProblem(rve.create("voids", volume_fraction=c, resolution=32)).solve()
    K = K.permeability
    assert abs(K[0, 0] / square_array(c) - 1) < 1.5e-3, (K, square_array(c), measured)
    assert abs(K[0, 1]) < 1e-5 * K[0, 0] and abs(K[1, 1] - K[0, 0]) < 1e-5 * K[0, 0]


def test_permeability_converges_under_refinement():
    """c = 0.1 at resolutions 16, 32, 64: successive differences shrink by more than 4 (measured
    7.7: the P2 velocity's order); the finest is 0.08 % below the expansion, its truncation."""
    values = [
        StokesCellProblem(rve.create("voids", volume_fraction=0.1, resolution=r))
        .solve()
        .permeability[0, 0]
        for r in (16, 32, 64)
    ]
    d1, d2 = abs(values[1] - values[0]), abs(values[2] - values[1])
    assert d2 < 0.25 * d1, values
    assert abs(values[-1] / square_array(0.1) - 1) < 1e-3


def test_permeability_scales_as_one_over_viscosity():
    cell = rve.create("voids", volume_fraction=0.2, resolution=12)
    one = StokesCellProblem(cell).solve().permeability
    two = StokesCellProblem(cell, viscosity=2.0).solve().permeability
    np.testing.assert_allclose(two, one / 2, rtol=1e-10, atol=1e-12 * np.abs(one).max())
    assert np.all(np.linalg.eigvalsh(one) > 0)  # symmetric positive definite


@pytest.mark.slow
def test_simple_cubic_array_permeability_matches_the_dilute_expansion():
    """3D spheres at φ = 0.05, resolution 12 (33k unknowns, ~10 s): within 1 % of the expansion
    (measured −0.6 %; −1.9 % at resolution 8, −0.35 % at 14: second order)."""
    K = StokesCellProblem(rve.create("voids", volume_fraction=0.05, dim=3, resolution=12))
    K = K.solve().permeability
    assert abs(np.trace(K) / 3 / simple_cubic(0.05) - 1) < 1e-2, (K, simple_cubic(0.05))
    assert np.abs(K - np.diag(np.diag(K))).max() < 1e-3 * K[0, 0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: StokesCellProblem(c, viscosity=0.0), "viscosity must be a finite number > 0"),
        (lambda c: StokesCellProblem(c, degree=1), "degree must be an integer >= 2"),
        (
            lambda c: StokesCellProblem(rve.create("circle", volume_fraction=0.2, resolution=6)),
            "meshed part is the fluid",
        ),
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
    with pytest.raises(ValueError, match="cell_size must be a finite number > 0"):
        PermeabilityCellModel(cell_size=-1.0)
