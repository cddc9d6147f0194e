"""Lennard-Jones boxes: lattice sums against published values, zero-temperature elastic
constants of the MD code against lattice sums, cell list against all pairs, stress symmetry and
objectivity, NVE energy conservation, equipartition, reproducible seeds, input validation."""

import numpy as np
import pytest

from fe2hmm.micro.particles import lattice as L
from fe2hmm.micro.particles import lj
from fe2hmm.micro.particles.lj import forces, langevin
from fe2hmm.micro.particles.md import (
    LJBox,
    elastic_constants,
    lattice_box,
    thermal_stress,
    to_voigt,
)


def test_fcc_lattice_sums_reach_the_published_full_lj_values():
    """Full LJ FCC: nearest neighbour (2 A12/A6)^(1/6) = 1.09017 and cohesive energy
    −A6²/(2 A12) = −8.6102 with A12 = 12.13188, A6 = 14.45392 (Lennard-Jones & Ingham 1925;
    Kittel, Introduction to Solid State Physics, ch. 3). At rc = 12 the unshifted truncated sum
    plus the standard tail correction 2πρ∫ r²φ dr (Allen & Tildesley) agrees to 2e-4."""
    rc = 12.0
    a = L.zero_pressure_lattice_constant("fcc", rc)
    assert a / np.sqrt(2) == pytest.approx(1.09017, rel=2e-4)
    neighbours = L.lattice_vectors("fcc", a, rc).shape[0]
    unshifted = L.lattice_energy("fcc", a, rc) + 0.5 * neighbours * 4 * (rc**-12 - rc**-6)
    density = 4 / a**3
    tail = 8 * np.pi * density * (rc**-9 / 9 - rc**-3 / 3)
    assert unshifted + tail == pytest.approx(-8.6102, rel=2e-4)
    assert np.allclose(L.lattice_stress("fcc", a, rc), 0, atol=1e-10)


@pytest.mark.parametrize("lattice,cells", [("fcc", 4), ("triangular", (5, 3))])
def test_zero_temperature_elastic_constants_equal_the_lattice_sums(lattice, cells):
    """The MD code (FIRE relaxation, virial stress, central differences with strain 1e-5)
    against the Born lattice sums for the same cutoff: equal to 1e-7 (difference error
    O(strain²) ~ 1e-10 plus the relaxation tolerance)."""
    box = lattice_box(lattice, cells, cutoff=2.5)
    a = L.zero_pressure_lattice_constant(lattice, 2.5)
    sigma, C, sigma_err, C_err = elastic_constants(box)
    exact = L.lattice_stiffness(lattice, a, 2.5)
    assert np.abs(sigma).max() < 1e-10  # the zero-pressure lattice carries no stress
    assert np.abs(C - exact).max() < 1e-7 * np.abs(exact).max()
    assert not sigma_err.any() and not C_err.any()
    V = to_voigt(C)
    if lattice == "fcc":  # cubic; pair potentials obey the Cauchy relation C12 = C44
        assert V[0, 1] == pytest.approx(V[3, 3], rel=1e-7)
        assert V[0, 0] == pytest.approx(97.71206, rel=1e-6)  # this cutoff's lattice sums
    else:  # triangular lattices are isotropic in 2D, and C12 = C66 for central forces
        assert V[0, 0] == pytest.approx(3 * V[0, 1], rel=1e-7)
        assert V[2, 2] == pytest.approx(V[0, 1], rel=1e-7)


def test_cell_list_equals_all_pairs():
    box = lattice_box("fcc", 6, cutoff=2.5)  # widths 9.3 = 3.7 rc: 3 cells per axis
    rng = np.random.default_rng(2)
    x = box.x + rng.normal(scale=0.05, size=box.x.shape)
    H = box.H @ np.array([[1.0, 0.05, 0.0], [0.0, 1.0, 0.02], [0.0, 0.0, 1.0]])  # triclinic
    e_cells, f_cells, w_cells = forces(x, H, 2.5)
    Hinv = np.linalg.inv(H)
    shift = float(lj.lj_energy(2.5**2))
    e_all, f_all, w_all = lj._forces_all_pairs(x, H, Hinv, 2.5**2, shift)
    assert e_cells == pytest.approx(e_all, rel=1e-12)
    assert np.allclose(f_cells, f_all, atol=1e-10)
    assert np.allclose(w_cells, w_all, atol=1e-9)
    assert np.allclose(w_cells, w_cells.T, atol=1e-9)  # pair virial is symmetric
    assert np.abs(f_cells.sum(axis=0)).max() < 1e-9  # Newton's third law


def test_stress_is_symmetric_and_objective():
    """A rotated deformation gives the rotated stress: σ(R U) = R σ(U) Rᵀ (to round-off)."""
    box = lattice_box("fcc", 4, cutoff=2.5)
    U = np.array([[1.02, 0.01, 0.0], [0.01, 0.99, 0.005], [0.0, 0.005, 1.01]])
    angle = 0.4
    R = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    s_u = box.deformed(U).stress()
    s_ru = box.deformed(R @ U).stress()
    assert np.allclose(s_u, s_u.T, atol=1e-12)
    assert np.allclose(s_ru, R @ s_u @ R.T, atol=1e-10 * np.abs(s_u).max())


def test_nve_energy_drift_is_bounded():
    """Velocity Verlet (friction 0), 30 atoms (triangular), T = 0.1, dt = 0.002, 4000 steps:
    total energy within 1e-4 relative (measured ~1e-6; the cut-and-shifted force jump at the
    cutoff and O(dt²) fluctuations are the only errors)."""
    box = lattice_box("triangular", (5, 3), cutoff=2.5)
    rng = np.random.default_rng(0)
    v = rng.normal(scale=np.sqrt(0.1), size=box.x.shape)
    v -= v.mean(axis=0)
    x = box.x.copy()
    _, kinetic, potential = langevin(x, v, box.H, 2.5, 0.002, 0.0, 0.0, 4000, 1, 10)
    energy = kinetic + potential
    assert (energy.max() - energy.min()) / abs(energy.mean()) < 1e-4
    assert np.abs(v.sum(axis=0)).max() < 1e-10  # momentum conserved without the thermostat


def test_equipartition_and_reproducible_seeds():
    """BAOAB Langevin at T = 0.1: the kinetic temperature Σv²/(n d) of two independent runs
    (seeds 5, 6) equals T within 4 standard errors of their mean (block errors, measured
    0.0014–0.0018 per run, i.e. a band of about ±5 %); the same seed reproduces the run bit for
    bit (same kernel, same inputs), another seed does not."""
    box = lattice_box("triangular", (5, 3), cutoff=2.5)
    result = thermal_stress(box, 0.1, steps=20000, equilibration=2000, seed=5)
    again = thermal_stress(box, 0.1, steps=20000, equilibration=2000, seed=5)
    assert np.array_equal(again.samples, result.samples)
    other = thermal_stress(box, 0.1, steps=20000, equilibration=2000, seed=6)
    assert not np.array_equal(other.samples, result.samples)
    (t1, e1), (t2, e2) = result.temperature, other.temperature
    # the runs resolve T: se < 3 % of T each (a mis-scaled thermostat would show as > 4 se)
    assert 0 < e1 < 0.003 and 0 < e2 < 0.003, (e1, e2)
    # statistical tolerance only: a fixed bound (formerly 2 % = 1.2 se of one run) held for
    # seed 5 by luck of its random sequence and failed for 3 of 8 other seeds
    mean, error = 0.5 * (t1 + t2), 0.5 * np.hypot(e1, e2)
    assert abs(mean - 0.1) < 4 * error, (t1, e1, t2, e2)
    assert np.allclose(result.stress, result.stress.T, atol=4 * result.stress_error.max())


def test_finite_temperature_constants_tend_to_the_zero_temperature_ones():
    """At T = 0.005 the thermal C (common random numbers, strain 0.01) is within 2 % (and a
    few standard errors) of the T = 0 lattice sums at the same density."""
    box = lattice_box("triangular", (5, 3), cutoff=2.5)
    _, C0, _, _ = elastic_constants(box)
    _, C, _, C_err = elastic_constants(box, 0.01, 0.005, steps=4000, seed=1)
    V0, V, E = to_voigt(C0), to_voigt(C), to_voigt(C_err)
    for i, j in ((0, 0), (1, 1), (0, 1), (2, 2)):
        assert abs(V[i, j] - V0[i, j]) < 0.02 * V0[i, j]
    assert E.max() > 0


def test_bad_input_is_named():
    box = lattice_box("fcc", 4, cutoff=2.5)
    with pytest.raises(ValueError, match="det F > 0"):
        box.deformed(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="box too small for the cutoff"):
        lattice_box("fcc", 2, cutoff=2.5)
    with pytest.raises(ValueError, match="box too small"):
        box.deformed(np.diag([1.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        thermal_stress(box, -0.1)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        elastic_constants(box, temperature=-1.0)
    with pytest.raises(ValueError, match="unknown lattice 'bcc'"):
        lattice_box("bcc", 4)
    with pytest.raises(ValueError, match=">= 1.2 sigma"):
        L.zero_pressure_lattice_constant("fcc", 1.0)
    with pytest.raises(ValueError, match="positive determinant"):
        LJBox(box.x, -box.H, 2.5)


def test_thermal_lattice_constant_expands_and_zeroes_the_pressure():
    """T = 0.1, triangular: the zero-pressure lattice expands (measured 0.85 %); a fresh set of
    replicas at that lattice constant has a pressure within 4 standard errors of zero, while the
    T = 0 lattice at T = 0.1 is compressed by tens of standard errors."""
    from fe2hmm.micro.particles.md import thermal_lattice_constant, thermal_stresses

    a0 = L.zero_pressure_lattice_constant("triangular", 2.5)
    a, p, se = thermal_lattice_constant("triangular", 2.5, 0.1, (6, 4), steps=4000, blocks=10)
    assert abs(p) <= 2 * se and 1.005 < a / a0 < 1.012
    pressures = {}
    for name, lattice_constant in (("thermal", a), ("cold", a0)):
        box = lattice_box("triangular", (6, 4), lattice_constant)
        runs = thermal_stresses(
            np.stack([box.x] * 4), np.stack([box.H] * 4), 2.5, 0.1, 100 + np.arange(4),
            steps=4000, blocks=10,
        )  # fmt: skip
        mean = np.mean([r.pressure[0] for r in runs])
        error = np.sqrt(sum(r.pressure[1] ** 2 for r in runs)) / 4
        pressures[name] = (mean, error)
    assert abs(pressures["thermal"][0]) < 4 * pressures["thermal"][1]
    assert pressures["cold"][0] > 20 * pressures["cold"][1]
