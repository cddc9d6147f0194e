"""Homogenised waves: exact laminate speeds from cell problems, the integrators' energy
conservation, orders and stability limit, and the analytic wave formulas."""

import math

from mpi4py import MPI

import numpy as np
import pytest
import scipy.linalg
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm import analytic
from fe2hmm.closure import Closure
from fe2hmm.micro.cells.diffusion import homogenize_diffusion
from fe2hmm.micro.cells.elasticity import ElasticityCellModel, homogenize_elasticity
from fe2hmm.rve import create
from fe2hmm.rve.cell import INCLUSION, MATRIX
from fe2hmm.waves import WaveIntegrator, elastic_stiffness_form, scalar_stiffness_form


def test_laminate_wave_speeds_from_cell_problems_are_exact():
    """Laminates are exact in FE: speeds agree with the harmonic/arithmetic means to 1e-10."""
    cell = create("laminate", volume_fraction=0.3, resolution=8)
    K = homogenize_diffusion(cell, {MATRIX: 1.0, INCLUSION: 8.0}).effective_tensor
    rho = 0.7 * 2.0 + 0.3 * 0.5
    speeds = analytic.wave_speed(0.5 * (K + K.T), rho, [[1, 0], [0, 1]])
    assert speeds[0] == pytest.approx(math.sqrt(analytic.harmonic_mean(1, 8, 0.3) / rho), 1e-10)
    assert speeds[1] == pytest.approx(math.sqrt(analytic.arithmetic_mean(1, 8, 0.3) / rho), 1e-10)
    materials = {MATRIX: (1.0, 0.3), INCLUSION: (10.0, 0.2)}
    C = homogenize_elasticity(cell, materials).effective_tensor
    exact = analytic.laminate_stiffness(
        analytic.isotropic_stiffness_tensor(1.0, 0.3),
        analytic.isotropic_stiffness_tensor(10.0, 0.2),
        0.3,
    )
    n = [[1, 0], [0, 1], [1, 1], [1, -2]]
    assert np.allclose(
        analytic.christoffel_speeds(C, rho, n),
        analytic.christoffel_speeds(exact, rho, n),
        rtol=1e-9,
    )


def test_analytic_wave_formulas():
    # isotropic plane strain: c_P = sqrt((λ+2μ)/ρ), c_S = sqrt(μ/ρ) in every direction
    E, nu, rho = 2.0, 0.25, 3.0
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    speeds = analytic.christoffel_speeds(analytic.isotropic_stiffness(E, nu), rho, [[1, 2], [3, 0]])
    assert np.allclose(speeds, [[math.sqrt((lam + 2 * mu) / rho), math.sqrt(mu / rho)]] * 2)
    A = np.array([[4.0, 1.0], [1.0, 2.0]])
    n = np.array([1.0, 1.0]) / math.sqrt(2)
    assert analytic.wave_speed(A, 2.0, n)[0] == pytest.approx(math.sqrt(n @ A @ n / 2.0))
    assert analytic.impedance(A, 2.0, n)[0] == pytest.approx(math.sqrt(2.0 * n @ A @ n))
    # Rytov: long waves -> homogenised speed; matched impedances -> no dispersion at all
    k1, r1, k2, r2, f = 1.0, 1.0, 10.0, 3.0, 0.4
    c_hom = math.sqrt(analytic.harmonic_mean(k1, k2, f) / ((1 - f) * r1 + f * r2))
    assert analytic.laminate_phase_velocity(k1, r1, k2, r2, f, 1e-3) == pytest.approx(c_hom, 1e-6)
    k2_matched, r2_matched = 4.0, 0.25  # Z = sqrt(k ρ) = 1 in both phases
    travel = (1 - f) / math.sqrt(k1 / r1) + f / math.sqrt(k2_matched / r2_matched)
    velocity = analytic.laminate_phase_velocity(k1, r1, k2_matched, r2_matched, f, [0.5, 2.0, 3.1])
    assert np.allclose(velocity, 1.0 / travel, rtol=1e-10)
    with pytest.raises(ValueError, match="first band"):
        analytic.laminate_phase_velocity(k1, r1, k2, r2, f, 4.0)
    with pytest.raises(ValueError, match="positive definite"):
        analytic.wave_speed(np.diag([1.0, -1.0]), 1.0, [1, 0])
    with pytest.raises(ValueError, match="density"):
        analytic.impedance(np.eye(2), 0.0, [1, 0])
    with pytest.raises(ValueError, match="non-zero"):
        analytic.wave_speed(np.eye(2), 1.0, [0, 0])


def _square(n, comm=MPI.COMM_WORLD):
    mesh = dmesh.create_unit_square(comm, n, n)
    mesh.topology.create_connectivity(1, 2)
    return mesh, dmesh.exterior_facet_indices(mesh.topology)


A_ANISO = ufl.as_matrix([[1.0, 0.3], [0.3, 2.0]])


def _mode(x):
    return np.sin(np.pi * x[0]) * np.sin(np.pi * x[1]) * (1 + x[0])


@pytest.mark.parametrize("scheme", ["leapfrog", "newmark"])
@pytest.mark.parametrize("clamped", [True, False])
def test_discrete_energy_is_conserved(scheme, clamped):
    """The documented energies are invariants of the schemes: conserved to round-off."""
    mesh, facets = _square(12)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    fixed = fem.locate_dofs_topological(V, 1, facets) if clamped else None
    waves = WaveIntegrator(
        scalar_stiffness_form(A_ANISO, u, v, ufl.dx), 1.5, V, 0.02, scheme, fixed,
        petsc_options_prefix=f"energy_{scheme}_{clamped}_",
    )  # fmt: skip
    waves.u.interpolate(_mode)
    waves.start()
    energies = [waves.energy()]
    for _ in range(20):
        waves.step(5)
        energies.append(waves.energy())
    energies = np.array(energies)
    assert energies[0] > 0
    assert np.abs(energies - energies[0]).max() < 1e-12 * energies[0]
    if clamped:
        assert np.allclose(waves.u.x.array[fixed], 0.0)


@pytest.mark.parametrize("scheme", ["leapfrog", "newmark"])
def test_both_schemes_are_second_order_in_time(scheme):
    """Self-convergence of the displacement at t = 0.5 (dt = 0.02 ... 0.0025): order 2 ± 0.1."""
    mesh, facets = _square(8)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    fixed = fem.locate_dofs_topological(V, 1, facets)
    finals = []
    for level in range(4):
        dt = 0.02 / 2**level
        waves = WaveIntegrator(
            scalar_stiffness_form(A_ANISO, u, v, ufl.dx), 1.0, V, dt, scheme, fixed,
            petsc_options_prefix=f"order_{scheme}_{level}_",
        )  # fmt: skip
        waves.u.interpolate(_mode)
        waves.step(round(0.5 / dt))
        finals.append(waves.u.x.array.copy())
    comm = mesh.comm
    diffs = [
        math.sqrt(comm.allreduce(float(np.sum((a - b) ** 2))))
        for a, b in zip(finals[:-1], finals[1:], strict=True)
    ]
    orders = np.log2(np.array(diffs[:-1]) / diffs[1:])
    assert np.all(np.abs(orders - 2) < 0.1), orders


def test_leapfrog_stability_limit():
    """The Gershgorin step is safe (≤ the true limit 2/sqrt(λ_max)); 5 % above the true limit
    the solution blows up; the check names dt and the limit."""
    mesh, facets = _square(6, MPI.COMM_SELF)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    fixed = fem.locate_dofs_topological(V, 1, facets)
    form = scalar_stiffness_form(A_ANISO, u, v, ufl.dx)
    probe = WaveIntegrator(form, 1.0, V, 1.0, "leapfrog", fixed, check_cfl=False)
    K = fem.assemble_matrix(fem.form(form)).to_dense()
    free = np.setdiff1d(np.arange(K.shape[0]), fixed)
    m = fem.assemble_vector(fem.form(v * ufl.dx)).array  # row sums of the mass matrix (ρ = 1)
    lam_max = scipy.linalg.eigh(K[np.ix_(free, free)], np.diag(m[free]), eigvals_only=True)[-1]
    true_limit = 2 / math.sqrt(lam_max)
    assert probe.critical_time_step <= true_limit
    assert probe.critical_time_step > 0.3 * true_limit  # not uselessly pessimistic

    def peak(dt):
        waves = WaveIntegrator(form, 1.0, V, dt, "leapfrog", fixed, check_cfl=False)
        waves.u.interpolate(_mode)
        waves.step(400)
        return np.abs(waves.u.x.array).max()

    assert peak(probe.critical_time_step) < 10
    assert peak(1.05 * true_limit) > 1e3
    with pytest.raises(ValueError, match=r"dt=1 exceeds the stability limit"):
        WaveIntegrator(form, 1.0, V, 1.0, "leapfrog", fixed)
    with pytest.raises(ValueError, match="unknown scheme"):
        WaveIntegrator(form, 1.0, V, 0.1, "rk4")
    with pytest.raises(ValueError, match="time step"):
        WaveIntegrator(form, 1.0, V, -0.1)


def test_elastic_waves_with_the_closure_stiffness_conserve_energy():
    mesh, facets = _square(6)
    V = fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    model = ElasticityCellModel("laminate", (1.0, 0.3), (10.0, 0.2), resolution=8)
    closure = Closure(
        model, mesh, {"strain": ufl.sym(ufl.grad(fem.Function(V)))}, {"volume_fraction": 0.3}
    )
    closure.update()
    C = closure.tangents["stress", "strain"]
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    fixed = fem.locate_dofs_topological(V, 1, facets)
    waves = WaveIntegrator(
        elastic_stiffness_form(C, u, v, closure.dx), 2.0, V, 0.01, "newmark", fixed, closure.dx,
        petsc_options_prefix="elastic_waves_",
    )  # fmt: skip
    waves.u.interpolate(lambda x: np.vstack([_mode(x), 0.5 * _mode(x)]))
    waves.start()
    e0 = waves.energy()
    waves.step(50)
    assert abs(waves.energy() - e0) < 1e-12 * e0
    bs = V.dofmap.index_map_bs
    assert np.allclose(waves.u.x.array.reshape(-1, bs)[fixed], 0.0)


def test_newmark_prefixes_are_unique_and_leave_no_options_behind():
    """Two Newmark integrators get distinct generated prefixes; their LU options are in
    PETSc's database only while read; a given prefix is refused while a live solver holds it
    and free again after ``destroy``."""
    from petsc4py import PETSc

    mesh, facets = _square(3)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    form = scalar_stiffness_form(A_ANISO, u, v, ufl.dx)
    fixed = fem.locate_dofs_topological(V, 1, facets)
    first = WaveIntegrator(form, 1.0, V, 0.05, "newmark", fixed)
    second = WaveIntegrator(form, 1.0, V, 0.05, "newmark", fixed)
    a, b = first.petsc_options_prefix, second.petsc_options_prefix
    assert a.startswith("fe2hmm_waves_") and b.startswith("fe2hmm_waves_") and a != b
    left = [k for k in PETSc.Options().getAll() if k.startswith(("fe2hmm_waves_", a, b))]
    assert left == []
    assert first._solver.getPC().getFactorSolverType() == "mumps"
    for waves in (first, second):  # both still solve
        waves.u.interpolate(_mode)
        waves.step(2)
    np.testing.assert_array_equal(first.u.x.array, second.u.x.array)
    mine = WaveIntegrator(form, 1.0, V, 0.05, "newmark", fixed, petsc_options_prefix="mine_")
    with pytest.raises(ValueError, match="'mine_' overlaps the prefix of a live fe2hmm solver"):
        WaveIntegrator(form, 1.0, V, 0.05, "newmark", fixed, petsc_options_prefix="mine_")
    mine.destroy()
    again = WaveIntegrator(form, 1.0, V, 0.05, "newmark", fixed, petsc_options_prefix="mine_")
    assert again.petsc_options_prefix == "mine_"
    for waves in (first, second, again):
        waves.destroy()
    assert WaveIntegrator(form, 1.0, V, 0.05, "leapfrog", fixed).petsc_options_prefix is None
