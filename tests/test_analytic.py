"""Exact formulas and bounds in fe2hmm.analytic."""

import numpy as np
import pytest

from fe2hmm import analytic


def test_means_and_laminate():
    assert analytic.arithmetic_mean(1.0, 10.0, 0.5) == pytest.approx(5.5)
    assert analytic.harmonic_mean(1.0, 10.0, 0.5) == pytest.approx(1 / 0.55)
    K = analytic.laminate_conductivity(1.0, 10.0, 0.5, dim=3, normal=1)
    np.testing.assert_allclose(np.diag(K), [5.5, 1 / 0.55, 5.5])


def test_hashin_shtrikman_properties():
    lo, hi = analytic.hashin_shtrikman_bounds(1.0, 10.0, 0.3, dim=2)
    reuss, voigt = analytic.harmonic_mean(1.0, 10.0, 0.3), analytic.arithmetic_mean(1.0, 10.0, 0.3)
    assert reuss < lo < hi < voigt
    # symmetric in the labelling of the phases
    assert analytic.hashin_shtrikman_bounds(10.0, 1.0, 0.7, dim=2) == pytest.approx((lo, hi))
    # lower bound = Maxwell Garnett with the poorer conductor as matrix
    assert lo == pytest.approx(analytic.maxwell_garnett(1.0, 10.0, 0.3, dim=2))
    # 2D: bounds are Keller-dual of each other: HS-(k1,k2) * HS+(k2,k1) = k1 k2
    lo_d, hi_d = analytic.hashin_shtrikman_bounds(10.0, 1.0, 0.3, dim=2)
    assert lo * hi_d == pytest.approx(10.0)
    for f in (0.0, 1.0):
        lo, hi = analytic.hashin_shtrikman_bounds(1.0, 10.0, f, dim=3)
        assert lo == pytest.approx(hi)


def test_square_array_formula_limits():
    # dilute limit: Maxwell Garnett to O(f^4)
    f = 0.01
    assert analytic.square_array_cylinders(1.0, 10.0, f) == pytest.approx(
        analytic.maxwell_garnett(1.0, 10.0, f, dim=2), rel=1e-8
    )
    # Keller duality: exact for the full multipole series, 1e-4 for its truncation at f = 0.5
    k = analytic.square_array_cylinders(1.0, 10.0, 0.5)
    kd = analytic.square_array_cylinders(10.0, 1.0, 0.5)
    assert k * kd == pytest.approx(10.0, rel=2e-4)
    with pytest.raises(ValueError, match="π/4"):
        analytic.square_array_cylinders(1.0, 10.0, 0.8)


def test_keller_dual_of_isotropic_tensor():
    K = analytic.keller_dual(2.0 * np.eye(2), 1.0, 10.0)
    np.testing.assert_allclose(K, 5.0 * np.eye(2))


@pytest.mark.parametrize("args", [(-1.0, 1.0, 0.5), (1.0, 1.0, 1.5), (np.nan, 1.0, 0.5)])
def test_bad_values_raise(args):
    with pytest.raises(ValueError):
        analytic.hashin_shtrikman_bounds(*args)
