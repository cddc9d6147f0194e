"""Transport estimators of the lattice KMC (fe2hmm.micro.stochastic.transport) against exact and
published results: jump and chemical diffusion of the lattice gas, tracer correlation factors,
Arrhenius activation, linear response (drift against Nernst–Einstein), honest standard errors.

Tolerances are in standard errors from R independent replicas (Student t with R − 1 degrees of
freedom): |z| < 4 fails by chance with probability < 1e-3 per check for R >= 16."""

import numpy as np
import pytest

from fe2hmm.micro.stochastic.hopping import simulate_hopping
from fe2hmm.micro.stochastic.lattice import lattice
from fe2hmm.micro.stochastic.transport import (
    hopping_transport,
    thermodynamic_factor,
    transport,
)

# vacancy-mechanism tracer correlation factors at c -> 1 (Compaan & Haven 1956, 1958;
# Montet 1973): square 1/(pi - 1), triangular, simple cubic
F_VACANCY = {"square": 1 / (np.pi - 1), "triangular": 0.56006, "cubic": 0.65311}


SIZES = {"square": 12, "triangular": 12, "cubic": 5}


@pytest.mark.parametrize("kind", ["square", "triangular", "cubic"])
def test_jump_diffusion_is_d0_times_vacancy_availability_and_chemical_is_d0(kind):
    """Without disorder the centre of mass is a martingale with hop rate P z Γ (N−P)/(N−1), so
    D_σ = D₀ (N−P)/(N−1) exactly (→ D₀(1−c)) and D_c = D_σ/(1−c) = D₀ N/(N−1) (the finite
    canonical lattice; → D₀) at every coverage. Each within 4 standard errors (32 replicas,
    128 blocks: about 1 % each); H_R = f for the lattice gas within 4 combined errors."""
    lat = lattice(kind, SIZES[kind])
    N = lat.sites
    for c in (0.1, 0.5, 0.8):
        tr = hopping_transport(
            lat, c, 1.0, barrier=0.0, events=40000, samples=128, replicas=32, seed=11
        )
        P = round(c * N)
        D0 = tr.single_ion_diffusion[0]
        assert np.isclose(D0, lat.coordination / (2 * lat.dim))
        se = tr.standard_errors
        exact = D0 * (N - P) / (N - 1)
        assert abs(tr.jump_diffusion[0] - exact) < 4 * se["jump_diffusion"][0], (c, tr)
        assert se["jump_diffusion"][0] < 0.03 * exact
        chem = D0 * N / (N - 1)
        assert abs(tr.chemical_diffusion[0] - chem) < 4 * se["chemical_diffusion"][0]
        assert np.isclose(tr.thermodynamic_factor[0], 1 / (1 - P / N))
        gap = tr.haven_ratio[0] - tr.correlation_factor[0]
        assert abs(gap) < 4 * np.hypot(se["haven_ratio"][0], se["correlation_factor"][0])


def test_correlation_factor_tends_to_one_at_low_coverage():
    """c = 0.01 (41 ions on 64² sites): f within 4 SE + c of 1. The allowance c bounds the
    first-order correction: an ion's back-hop into the site it left is never blocked, the others
    are blocked with probability c, so 1 − f = O(c) with a coefficient below 1 (the engine gives
    f = 0.92 at c = 0.2). 256 lattices, SE about 1.5 % (few ions: the noisiest estimate)."""
    lat = lattice("square", 64)
    tr = hopping_transport(lat, 0.01, 1.0, barrier=0.0, events=20000, replicas=256, seed=2)
    f, se = tr.correlation_factor[0], tr.standard_errors["correlation_factor"][0]
    assert abs(f - 1) < 4 * se + 41 / 4096 and se < 0.025, (f, se)


@pytest.mark.parametrize("kind,size", [("square", 64), ("triangular", 64), ("cubic", 16)])
def test_correlation_factor_of_a_single_vacancy_is_the_vacancy_mechanism_value(kind, size):
    """One vacancy (c = 1 − 1/N, N = 4096): f = f₀ (1/(π−1) = 0.46694, 0.56006, 0.65311) within
    4 SE + 0.005. A single vacancy has no vacancy–vacancy correction (with several vacancies
    the 2D correction is of order c_v ln(1/c_v): 4 vacancies on 32² already shift f by about
    +0.005); the allowance 0.005 (1 %) is for the finite periodic cell, about the difference
    between 32² and 64² runs (no published finite-N value is used)."""
    lat = lattice(kind, size)
    c = 1 - 1 / lat.sites
    tr = hopping_transport(lat, c, 1.0, barrier=0.0, events=1_000_000, replicas=24, seed=3)
    f, se = tr.correlation_factor[0], tr.standard_errors["correlation_factor"][0]
    assert abs(f - F_VACANCY[kind]) < 4 * se + 0.005 and se < 0.004, (f, se)


def test_arrhenius_fit_of_sigma_t_returns_the_barrier():
    """σT = n D_σ ∝ exp(−E_a/T) for the lattice gas: the weighted least-squares slope of
    ln(σT) against 1/T (T = 0.5 … 2, E_a = 0.8) is −E_a within 4 of its standard errors
    (propagated from the replica errors of σ)."""
    lat = lattice("square", 10)
    T = np.array([0.5, 0.7, 1.0, 1.4, 2.0])
    tr = hopping_transport(lat, 0.4, T, barrier=0.8, events=20000, samples=64, replicas=16, seed=4)
    y = np.log(tr.conductivity * T)
    sy = tr.standard_errors["conductivity"] / tr.conductivity
    A = np.stack([np.ones_like(T), 1 / T], axis=1) / sy[:, None]
    coef, *_ = np.linalg.lstsq(A, y / sy, rcond=None)
    cov = np.linalg.inv(A.T @ A)
    Ea, se = -coef[1], np.sqrt(cov[1, 1])
    assert abs(Ea - 0.8) < 4 * se and se < 0.05, (Ea, se)


@pytest.mark.parametrize("disorder", [0.0, 1.0])
def test_drift_conductivity_under_a_small_field_equals_nernst_einstein(disorder):
    """Linear response: σ from the mean current under E a = 0.2 kT_ref (tilt exp(±0.1))
    against σ = n D_σ/kT from the zero-field fluctuations, within 4 combined standard errors;
    the nonlinear correction sinh(x)/x − 1 = 0.2 % is below the errors. Without disorder the
    drift also equals the exact n Γ (N−P)/(N−1) 2 sinh(E/2T)/E. With disorder (W = 1, T = 1)
    both runs share the landscapes (site energies per replica from the seed) and D_σ uses 16
    blocks (longer than the relaxation in the landscape: 4 … 256 blocks agree there)."""
    lat = lattice("square", 12 if disorder == 0 else 8)
    E = np.array([0.2, 0.0])
    R, events = (24, 100_000) if disorder == 0 else (64, 40_000)
    kw = dict(barrier=0.5, disorder=disorder, events=events, replicas=R, seed=6)
    drift = hopping_transport(lat, 0.5, 1.0, field=E, **kw)
    fluct = hopping_transport(lat, 0.5, 1.0, samples=128, blocks=128 if disorder == 0 else 16, **kw)
    a, sa = drift.drift_conductivity[0], drift.standard_errors["drift_conductivity"][0]
    b, sb = fluct.conductivity[0], fluct.standard_errors["conductivity"][0]
    assert abs(a - b) < 4 * np.hypot(sa, sb) and sb < 0.04 * b, (a, sa, b, sb)
    assert np.isnan(fluct.drift_conductivity[0])
    if disorder == 0:
        N, P = lat.sites, lat.sites // 2
        exact = P / N * np.exp(-0.5) * (N - P) / (N - 1) * 2 * np.sinh(0.1) / 0.2
        assert abs(a - exact) < 4 * sa and sa < 0.01 * exact


def test_standard_errors_are_honest_over_seeds():
    """z-scores of D_σ against its exact value over 12 seeds (16 replicas each): all below 4.5
    and mean z² below 2.4 (the 0.999 quantile for 12 t₁₅ variables is about 2.3)."""
    lat = lattice("triangular", 8)
    N, P = lat.sites, 32
    z = []
    for seed in range(12):
        tr = hopping_transport(lat, 0.5, 1.0, barrier=0.0, events=20000, replicas=16, seed=seed)
        exact = tr.single_ion_diffusion[0] * (N - P) / (N - 1)
        z.append((tr.jump_diffusion[0] - exact) / tr.standard_errors["jump_diffusion"][0])
    z = np.array(z)
    assert np.abs(z).max() < 4.5 and np.mean(z**2) < 2.4, z


def test_thermodynamic_factor_is_c_over_kt_dc_dmu():
    """Φ = c/(kT ∂c/∂μ) of the Fermi–Dirac lattice gas: 1/(1−c) without site energies, and
    against a finite difference of c(μ) with them."""
    assert np.isclose(thermodynamic_factor(0.3, 2.0), 1 / 0.7)
    eps = np.random.default_rng(0).standard_normal(500)
    T, c = 0.7, 0.35

    def coverage(mu):
        return np.mean(1 / (1 + np.exp((eps - mu) / T)))

    from scipy.optimize import brentq

    mu = brentq(lambda m: coverage(m) - c, -10, 10, xtol=1e-14)
    h = 1e-5
    dc = (coverage(mu + h) - coverage(mu - h)) / (2 * h)
    assert np.isclose(thermodynamic_factor(c, T, eps), c / (T * dc), rtol=1e-6)


def test_transport_rejects_inconsistent_or_bad_arguments():
    lat = lattice("square", 6)
    run = simulate_hopping(lat, 0.5, [1.0, 2.0], events=2000, replicas=2, samples=8)
    cases = [
        (dict(coverage=0.25), "coverage 0.25 gives 9 ions, the run has 18"),
        (dict(temperature=1.0), "temperature must be 2 finite values"),
        (dict(temperature=[1.0, 3.0]), "differs from the run's"),
        (dict(field=[0.1, 0.0]), "field .* differs from the run's"),
        (dict(barrier=0.5), "barrier 0.5 differs"),
        (dict(fit_from=1.0), r"fit_from must be in \[0, 1\)"),
        (dict(blocks=9), r"blocks must be an integer in \[1, S = 8\]"),
        (dict(lattice=lattice("square", 5)), "is not the run's"),
    ]
    for kwargs, message in cases:
        args = {"lattice": lat, "coverage": 0.5, "temperature": [1.0, 2.0], **kwargs}
        with pytest.raises(ValueError, match=message) as info:
            transport(
                run, args.pop("lattice"), args.pop("coverage"), args.pop("temperature"), **args
            )
        assert "\n" not in str(info.value)
    tr = transport(run, lat, 0.5, [1.0, 2.0])
    assert set(tr.standard_errors) == {
        "tracer_diffusion",
        "jump_diffusion",
        "chemical_diffusion",
        "correlation_factor",
        "haven_ratio",
        "conductivity",
        "drift_conductivity",
    }
    assert tr.events.shape == (2,) and tr.events_per_second > 0
