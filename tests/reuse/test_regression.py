"""The hyperelastic regression surrogate: exact for polynomial energies, converging to the
Cauchy–Born stress with the degree, consistent tangent, χ² near 1 on noisy MD, growing design,
prediction errors that cover the truth."""

import numpy as np
import pytest
from conftest import MaxwellGarnett

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.micro.particles import lattice as L
from fe2hmm.micro.particles.model import LJStressModel
from fe2hmm.reuse.regression import (
    ArrheniusRegressionModel,
    HyperelasticRegressionModel,
    strain_components,
)


class PolynomialEnergy(MicroModel):
    """W = λ/2 tr(E)² + μ E:E + κ tr(E)³ (+ optional Gaussian noise of standard error s on P)."""

    def __init__(self, dim=2, noise=0.0, seed=0):
        super().__init__()
        self.dim, self.noise = dim, noise
        self.rng = np.random.default_rng(seed)
        self.is_stochastic = noise > 0

    input_shapes = property(lambda self: {"deformation_gradient": (self.dim, self.dim)})
    output_shapes = property(lambda self: {"stress": (self.dim, self.dim)})

    def second_piola(self, F):
        d = self.dim
        E = 0.5 * (np.einsum("nki,nkj->nij", F, F) - np.eye(d))
        tr = np.trace(E, axis1=1, axis2=2)[:, None, None]
        return (2.0 * tr + 3.0 * tr**2) * np.eye(d) + 3.0 * E

    def evaluate(self, inputs, parameters, *, tangents=True):
        F = np.asarray(inputs["deformation_gradient"])
        self.statistics.micro_solves += len(F)
        P = F @ self.second_piola(F)
        result = MicroResult({"stress": P + self.noise * self.rng.normal(size=P.shape)}, {})
        if self.noise:
            result.standard_errors = {"stress": np.full(P.shape, self.noise)}
        return result


def _random_F(n, d, amplitude, seed=0):
    return np.eye(d) + amplitude * np.random.default_rng(seed).uniform(-1, 1, size=(n, d, d))


@pytest.mark.parametrize("dim", [2, 3])
def test_polynomial_energy_is_recovered_exactly_with_consistent_tangent(dim):
    """A cubic energy is in the basis: stress to 1e-12, tangent equal to central differences
    of the served stress (1e-7: the O(h²) error of the differences), major symmetry of ∂P/∂F."""
    model = PolynomialEnergy(dim)
    surrogate = HyperelasticRegressionModel(model, 0.05, degree=3)
    F = _random_F(5, dim, 0.03)
    result = surrogate.evaluate({"deformation_gradient": F}, {})
    exact = model.evaluate({"deformation_gradient": F}, {}).outputs["stress"]
    assert np.allclose(result.outputs["stress"], exact, atol=1e-12)
    assert surrogate.residual < 1e-12 and np.isnan(surrogate.chi2)
    tangent = result.tangents["stress", "deformation_gradient"]
    h = 1e-5
    for k in range(dim):
        for m in range(dim):
            dF = np.zeros((dim, dim))
            dF[k, m] = h
            plus = surrogate.evaluate({"deformation_gradient": F + dF}, {}, tangents=False)
            minus = surrogate.evaluate({"deformation_gradient": F - dF}, {}, tangents=False)
            diff = (plus.outputs["stress"] - minus.outputs["stress"]) / (2 * h)
            assert np.allclose(tangent[:, :, :, k, m], diff, atol=1e-7)
    assert np.allclose(tangent, np.transpose(tangent, (0, 3, 4, 1, 2)), atol=1e-10)


def test_lj_cauchy_born_fit_converges_with_the_degree():
    """T = 0 MD boxes (exactly Cauchy–Born) over |e| <= 0.03: the largest stress error at 100
    random strains falls with the degree (measured 5.2e-3, 5.3e-4, 1.1e-4 relative for
    p = 4, 5, 6 with 64 design points)."""
    md = LJStressModel("triangular")
    F = _random_F(400, 2, 0.03, seed=1)
    F = F[np.abs(strain_components(F)).max(axis=1) < 0.03][:100]
    exact = np.array([L.cauchy_born_stress("triangular", md.a, 2.5, f) for f in F])
    errors = []
    for degree in (4, 5, 6):
        surrogate = HyperelasticRegressionModel(md, 0.03, degree=degree, samples=64)
        P = surrogate.evaluate({"deformation_gradient": F}, {}, tangents=False).outputs["stress"]
        errors.append(np.abs(P - exact).max() / np.abs(exact).max())
    assert errors[0] > 3 * errors[1] > 3 * errors[2] and errors[2] < 3e-4, errors


def test_noisy_fit_has_chi2_near_one_and_errors_that_cover_the_truth():
    """Gaussian noise s = 1e-3 on a cubic energy: χ² within its 4σ band around 1
    (sqrt(2/dof)), the served stress within 4 prediction standard errors of the truth at 95 %
    or more of the points, and the prediction errors below the raw noise (the fit averages)."""
    model = PolynomialEnergy(2, noise=1e-3, seed=3)
    surrogate = HyperelasticRegressionModel(model, 0.04, degree=3, samples=128, seed=2)
    dof = surrogate.design.shape[0] * 3 - len(surrogate.exponents)
    assert abs(surrogate.chi2 - 1.0) < 4 * np.sqrt(2.0 / dof), surrogate.chi2
    F = _random_F(200, 2, 0.02, seed=4)
    served = surrogate.evaluate({"deformation_gradient": F}, {}, tangents=False)
    truth = F @ PolynomialEnergy(2).second_piola(F)
    se = surrogate.standard_errors(F)
    assert np.all(se > 0) and se.max() < 1e-3
    assert np.mean(np.abs(served.outputs["stress"] - truth) <= 4 * se) > 0.95


def test_design_grows_for_requests_outside_and_bad_input_is_named():
    model = PolynomialEnergy(2)
    surrogate = HyperelasticRegressionModel(model, 0.01, degree=3)
    solves = model.statistics.micro_solves
    F = np.array([np.diag([1.05, 1.0])])  # E11 = 0.05125 > 0.01
    surrogate.evaluate({"deformation_gradient": F}, {})
    assert surrogate.refits == 1 and surrogate.range[0] == pytest.approx(1.25 * 0.05125)
    assert surrogate.range[1] == 0.01  # only the exceeded component grows
    assert model.statistics.micro_solves > solves == surrogate.samples + 1
    assert surrogate.statistics.micro_solves == model.statistics.micro_solves
    bad = np.stack([np.eye(2), np.diag([1.0, -1.0])])
    with pytest.raises(MicroSolveError, match="det F > 0") as info:
        surrogate.evaluate({"deformation_gradient": bad}, {})
    assert info.value.point == 1
    with pytest.raises(ValueError, match="strain_range"):
        HyperelasticRegressionModel(model, 0.7)
    with pytest.raises(ValueError, match="degree"):
        HyperelasticRegressionModel(model, 0.01, degree=1)
    with pytest.raises(ValueError, match="one input \\(the deformation gradient"):
        HyperelasticRegressionModel(_Scalar())


class _Scalar(MicroModel):
    input_shapes = property(lambda self: {"u": ()})
    output_shapes = property(lambda self: {"flux": ()})

    def evaluate(self, inputs, parameters, *, tangents=True):  # pragma: no cover
        raise AssertionError


# -- ArrheniusRegressionModel ----------------------------------------------------------------


class NoisyArrhenius(MicroModel):
    """σ(T) = (A/T) exp(−E_a/T − W²/(2T²)) with seeded multiplicative Gaussian noise of
    relative standard error ``noise`` (a stand-in for kinetic Monte Carlo)."""

    input_shapes = {"temperature": ()}
    output_shapes = {"conductivity": ()}
    is_stochastic = True

    def __init__(self, barrier=4.0, disorder=0.0, noise=0.02, seed=0):
        super().__init__()
        self.barrier, self.disorder, self.noise = barrier, disorder, noise
        self.rng = np.random.default_rng(seed)

    def exact(self, T):
        T = np.asarray(T, dtype=float)
        return 10.0 / T * np.exp(-self.barrier / T - 0.5 * (self.disorder / T) ** 2)

    def evaluate(self, inputs, parameters, *, tangents=True):
        T = inputs["temperature"]
        self.statistics.micro_solves += T.size
        mean = self.exact(T)
        value = mean * (1.0 + self.noise * self.rng.standard_normal(T.shape))
        return MicroResult(
            {"conductivity": value}, standard_errors={"conductivity": self.noise * mean}
        )


def _serve(model, T, tangents=True):
    return model.evaluate({"temperature": np.asarray(T, dtype=float)}, {}, tangents=tangents)


def test_arrhenius_fit_returns_the_barrier_within_its_standard_error():
    """Degree 1 on an Arrhenius law with 2 % noise at 12 nodes over T = 0.5..1.5: E(T) is the
    barrier within 3 of its standard errors, chi2 is O(1) (0.25..2.5, the 1st–99th percentile
    range of chi2 with 10 degrees of freedom is 0.26..2.3; 200 seeds gave 0.35..2.48), and
    the served σ carries its 2-SE error bound."""
    inner = NoisyArrhenius(barrier=4.0, seed=0)
    model = ArrheniusRegressionModel(inner, (0.5, 1.5), nodes=12, degree=1)
    assert inner.statistics.micro_solves == 12 and model.design.size == 12
    energy, se = model.activation_energy([0.6, 1.0, 1.4])
    assert np.all(se > 0) and np.all(np.abs(energy - 4.0) < 3 * se)
    np.testing.assert_allclose(energy, energy[0], rtol=1e-12)  # degree 1: one barrier
    assert 0.25 < model.chi2 < 2.5
    result = _serve(model, [0.7, 1.1])
    sigma, se_sigma = model.predict([0.7, 1.1])
    np.testing.assert_array_equal(result.outputs["conductivity"], sigma)
    np.testing.assert_array_equal(result.error_bounds["conductivity"], 2 * se_sigma)
    assert not model.is_stochastic and not result.standard_errors


def test_arrhenius_error_bounds_are_honest_over_seeds():
    """Over 60 seeds the fitted mean at T = 0.8 lies within its 2-SE bound in 85–100 % of
    the fits (95 % expected; the binomial standard error of the fraction is 2.8 %)."""
    T = 0.8
    inside = 0
    for seed in range(60):
        inner = NoisyArrhenius(barrier=4.0, disorder=1.0, seed=seed)
        model = ArrheniusRegressionModel(inner, (0.5, 1.5), nodes=8, degree=2)
        sigma, se = model.predict([T])
        inside += abs(sigma[0] - inner.exact(T)) <= 2 * se[0]
    assert 51 <= inside <= 60


def test_the_disorder_curvature_needs_degree_two():
    """With site-energy disorder (W = 1.5) ln(σT) = ln A − E_a/T − W²/(2T²) is exactly
    quadratic in 1/T: degree 2 fits within the noise (chi2 < 2.5) and returns the apparent
    barrier E(T) = E_a + W²/T within 3 SE; degree 1 misfits (chi2 > 10)."""
    fits = {
        p: ArrheniusRegressionModel(
            NoisyArrhenius(barrier=4.0, disorder=1.5, noise=0.01, seed=5), (0.5, 1.5), 12, p
        )
        for p in (1, 2)
    }
    assert fits[2].chi2 < 2.5 and fits[1].chi2 > 10
    T = np.array([0.6, 1.0, 1.4])
    energy, se = fits[2].activation_energy(T)
    assert np.all(np.abs(energy - (4.0 + 1.5**2 / T)) < 3 * se)


def test_arrhenius_tangent_is_the_derivative_of_the_served_value():
    """The exact tangent equals a central difference of the served σ (h = 1e-5 T: truncation
    ~1e-10, round-off ~1e-11 relative) to 1e-7."""
    model = ArrheniusRegressionModel(NoisyArrhenius(disorder=1.0, seed=1), (0.5, 1.5))
    T = np.array([0.55, 0.9, 1.45])
    tangent = _serve(model, T).tangents[("conductivity", "temperature")]
    h = 1e-5 * T
    up, down = (_serve(model, T + s * h, False).outputs["conductivity"] for s in (1, -1))
    np.testing.assert_allclose(tangent, (up - down) / (2 * h), rtol=1e-7)


def test_arrhenius_temperatures_outside_the_fit_are_refused_not_extrapolated():
    """A request outside the fitted interval is a MicroSolveError naming the point and the
    interval; the fit (and so the closure) does not change, and no new runs are made."""
    inner = NoisyArrhenius(seed=2)
    model = ArrheniusRegressionModel(inner, (0.5, 1.0), nodes=6)
    before = model.coefficients.copy()
    with pytest.raises(MicroSolveError, match="quadrature point 1") as info:
        _serve(model, [0.7, 1.2])
    assert "temperature = 1.2 is outside the fitted interval [0.5, 1]" in str(info.value)
    assert inner.statistics.micro_solves == 6
    np.testing.assert_array_equal(model.coefficients, before)
    _serve(model, [0.5, 1.0])  # the ends are inside
    assert model.statistics.surrogate_hits == 2


def test_arrhenius_bad_input_is_named():
    inner = NoisyArrhenius()
    cases = [
        (dict(temperature_range=(1.0, 0.5)), "0 < T_low < T_high"),
        (dict(temperature_range=0.5), "must be a pair"),
        (dict(temperature_range=(0.5, 1.0), degree=5), "degree must be an integer in 1..4"),
        (
            dict(temperature_range=(0.5, 1.0), nodes=3),
            r"nodes must be an integer >= degree \+ 2 = 4",
        ),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            ArrheniusRegressionModel(inner, **kwargs)
    with pytest.raises(ValueError, match="one scalar input"):
        ArrheniusRegressionModel(MaxwellGarnett(), (0.5, 1.0))
    model = ArrheniusRegressionModel(inner, (0.5, 1.0))
    with pytest.raises(MicroSolveError, match="quadrature point 1") as info:
        _serve(model, [0.7, -1.0])
    assert "temperature must be finite and > 0, got -1.0" in str(info.value)
