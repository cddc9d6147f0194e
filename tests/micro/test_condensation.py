"""Static condensation of the fluctuation (fe2hmm.micro.cells.condensation) vs direct solves."""

import numpy as np
import pytest
import scipy.sparse as sp
import ufl
from dolfinx import fem

from fe2hmm import analytic, rve
from fe2hmm.micro.cells.condensation import condense_tangent
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.phases import phase_field
from fe2hmm.rve.cell import INCLUSION, MATRIX


def random_spd(n: int, seed: int) -> sp.csr_matrix:
    """A sparse SPD matrix (banded, diagonally dominant) with a stored diagonal."""
    rng = np.random.default_rng(seed)
    B = sp.random(n, n, density=0.15, random_state=seed, format="csr")
    B = B + B.T
    return sp.csr_matrix(B + sp.diags(np.abs(B).sum(axis=1).A1 + 1.0 + rng.random(n)))


def dense_schur(K: np.ndarray, U: np.ndarray, free: np.ndarray, volume: float) -> np.ndarray:
    """``(Uᵀ K U - Uᵀ K_f K_ff⁻¹ K_fᵀ U)/|Y|``: the Schur complement by a dense solve."""
    KU = K @ U
    x = np.linalg.solve(K[np.ix_(free, free)], KU[free])
    return (U.T @ KU - KU[free].T @ x) / volume


@pytest.mark.parametrize("backend", ["mumps", "mumps-lu", "superlu"])
def test_raw_arrays_equal_the_dense_schur_complement(backend):
    # no mesh: the fluctuation lives on all dofs, the masked ones fixed to zero
    n, m, volume = 40, 3, 2.5
    K = random_spd(n, seed=1)
    U = np.random.default_rng(2).standard_normal((n, m))
    eliminate = np.zeros(n, dtype=bool)
    eliminate[[0, 7, 19]] = True
    seconds = {}
    result = condense_tangent(K, U, volume, eliminate, backend=backend, seconds=seconds)
    expected = dense_schur(K.toarray(), U, ~eliminate, volume)
    np.testing.assert_allclose(result.tangent, expected, rtol=1e-12, atol=1e-12)
    # the fluctuations: zero where fixed, and K (U + W) = 0 on the free dofs (equilibrium)
    W = result.fluctuations
    assert W.shape == (n, m) and np.all(W[eliminate] == 0.0)
    np.testing.assert_allclose((K @ (U + W))[~eliminate], 0.0, atol=1e-11)
    # the energy identity C = Uᵀ K (U + W)/|Y| of a linear cell
    np.testing.assert_allclose(result.tangent, U.T @ (K @ (U + W)) / volume, rtol=1e-12)
    assert set(seconds) == {"factorize", "solve"}
    M, G = result.system
    assert M.shape == (n, n) and G.shape == (n, m)


def test_the_tangent_lies_between_zero_and_the_voigt_bound():
    # 0 <= C <= Uᵀ K U/|Y| (Loewner order): condensing the fluctuation only softens the cell
    n = 30
    K = random_spd(n, seed=3)
    U = np.random.default_rng(4).standard_normal((n, 4))
    eliminate = np.zeros(n, dtype=bool)
    eliminate[:6] = True
    C = condense_tangent(K, U, 1.0, eliminate).tangent
    voigt = U.T @ (K @ U)
    np.testing.assert_allclose(C, C.T, rtol=1e-12, atol=1e-12)
    scale = np.abs(voigt).max()
    assert np.linalg.eigvalsh(0.5 * (C + C.T)).min() > -1e-12 * scale
    assert np.linalg.eigvalsh(voigt - 0.5 * (C + C.T)).min() > -1e-12 * scale


def laminate_diffusion(normal: int, k_matrix: float, k_layer: float, f: float):
    """Stiffness, affine fields and periodic map of a laminate diffusion cell."""
    cell = rve.create("laminate", dim=2, volume_fraction=f, normal=normal, resolution=8)
    V = fem.functionspace(cell.mesh, ("Lagrange", 1))
    k = phase_field(cell, {MATRIX: k_matrix, INCLUSION: k_layer})
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    n = V.dofmap.index_map.size_local
    A = fem.assemble_matrix(fem.form(k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx))
    A = A.to_scipy().tocsr()[:n, :n]
    X = V.tabulate_dof_coordinates()[:n, :2] - np.asarray(cell.lower)
    return cell, A, X, PeriodicDofMap(V, cell.lower, cell.upper)


@pytest.mark.parametrize("normal", [0, 1])
def test_periodic_laminate_condenses_to_the_exact_tensor(normal):
    # P1 on a mesh conforming to the layers holds the exact piecewise-linear solution, so the
    # condensed tangent is the laminate's K* (harmonic across, arithmetic along) to round-off
    cell, A, X, pmap = laminate_diffusion(normal, 1.0, 10.0, 0.3)
    eliminate = np.zeros(pmap.num_reduced, dtype=bool)
    eliminate[0] = True  # the constant
    result = condense_tangent(A, X, cell.volume, eliminate, pmap)
    exact = analytic.laminate_conductivity(1.0, 10.0, 0.3, 2, normal)
    np.testing.assert_allclose(result.tangent, exact, atol=1e-11)
    # and the same number as a dense solve of the reduced system
    reference = periodic_dense(A, X, pmap.prolongation.to_scipy(), eliminate, cell.volume)
    np.testing.assert_allclose(result.tangent, reference, rtol=1e-12, atol=1e-13)
    # the fluctuation is periodic: every copy of an identified dof holds the same value
    W = result.fluctuations
    Wr = np.empty((pmap.num_reduced, W.shape[1]))
    Wr[pmap.full_to_reduced] = W
    np.testing.assert_array_equal(pmap.expand(Wr), W)


def periodic_dense(A, X, P, eliminate, volume):
    """Dense reference: ``Pᵀ A P w = -Pᵀ A X`` on the free dofs, then ``Xᵀ A (X + P w)/|Y|``."""
    free = ~eliminate
    Kr = (P.T @ A @ P).toarray()
    G = P.T @ (A @ X)
    w = np.zeros((P.shape[1], X.shape[1]))
    w[free] = np.linalg.solve(Kr[np.ix_(free, free)], -G[free])
    return X.T @ (A @ (X + P @ w)) / volume


def test_reduced_matrix_at_hand_gives_the_same_result():
    cell, A, X, pmap = laminate_diffusion(0, 1.0, 5.0, 0.4)
    eliminate = np.zeros(pmap.num_reduced, dtype=bool)
    eliminate[0] = True
    fresh = condense_tangent(A, X, cell.volume, eliminate, pmap)
    reused = condense_tangent(A, X, cell.volume, eliminate, pmap, reduced=pmap.reduce_matrix(A))
    np.testing.assert_array_equal(fresh.tangent, reused.tangent)
    np.testing.assert_array_equal(fresh.fluctuations, reused.fluctuations)


def test_reduction_reuses_its_pattern_and_follows_the_values():
    """``Pᵀ A P`` equals the dense product; a second matrix of the same pattern (a Newton loop's
    reassembly) reuses the sorted pattern; another pattern is reduced afresh."""
    _, A, _, pmap = laminate_diffusion(0, 1.0, 5.0, 0.4)
    P = pmap.prolongation.to_scipy()
    dense = (P.T @ A @ P).toarray()
    first = pmap.reduce_matrix(A)
    np.testing.assert_allclose(first.toarray(), dense, rtol=1e-14, atol=1e-14)
    twice = pmap.reduce_matrix(sp.csr_matrix((3.0 * A.data, A.indices, A.indptr), A.shape))
    assert twice.indices is first.indices  # the cached pattern
    np.testing.assert_allclose(twice.toarray(), 3.0 * dense, rtol=1e-14, atol=1e-14)
    B = sp.csr_matrix(A + sp.eye(A.shape[0], k=3))  # more entries: a new pattern
    np.testing.assert_allclose(pmap.reduce_matrix(B).toarray(), (P.T @ B @ P).toarray(), atol=1e-14)
