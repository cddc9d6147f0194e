"""The NumPy sparse layer of the cell problems against SciPy and brute force."""

from mpi4py import MPI

import numpy as np
import pytest
import scipy.sparse as sp
import ufl
from dolfinx import fem, mesh
from scipy.sparse.csgraph import connected_components as scipy_components

from fe2hmm.micro.cells.periodic import coincident_pairs
from fe2hmm.micro.cells.sparse import CSRMatrix, connected_components


@pytest.mark.parametrize("element", [("Lagrange", 2), ("Lagrange", 1, (2,)), ("Lagrange", 1, (3,))])
def test_from_dolfinx_equals_scipy(element):
    """Scalar and blocked (vector) matrices: the same pattern, values, products, diagonal."""
    domain = mesh.create_unit_square(MPI.COMM_SELF, 7, 5)
    V = fem.functionspace(domain, element)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx + ufl.inner(u, v) * ufl.dx
    A = fem.assemble_matrix(fem.form(a))
    reference = A.to_scipy().tocsr()
    reference.sort_indices()
    ours = CSRMatrix.from_dolfinx(A)
    assert ours.shape == reference.shape
    np.testing.assert_array_equal(ours.indptr, reference.indptr)
    np.testing.assert_array_equal(ours.indices, reference.indices)
    np.testing.assert_allclose(ours.data, reference.data, rtol=0, atol=0)
    X = np.random.default_rng(0).random((reference.shape[0], 3))
    # rows of a stiffness matrix nearly cancel: round-off relative to the largest entry
    scale = np.abs(reference @ X).max()
    np.testing.assert_allclose(ours @ X, reference @ X, rtol=1e-13, atol=1e-13 * scale)
    np.testing.assert_allclose(ours @ X[:, 0], reference @ X[:, 0], rtol=1e-13, atol=1e-13 * scale)
    np.testing.assert_allclose(ours.diagonal(), reference.diagonal(), rtol=0)
    n = reference.shape[0] - 5  # a leading block: through the general (sorting) path
    assert abs(CSRMatrix.from_dolfinx(A, n).to_scipy() - reference[:n, :n]).max() == 0
    assert CSRMatrix.of(reference).nnz == reference.nnz


def test_from_coo_sums_duplicates_like_scipy():
    rng = np.random.default_rng(1)
    rows, cols, values = rng.integers(0, 30, 500), rng.integers(0, 20, 500), rng.random(500)
    ours = CSRMatrix.from_coo(rows, cols, values, (30, 20))
    reference = sp.csr_matrix((values, (rows, cols)), shape=(30, 20))
    reference.sum_duplicates()
    np.testing.assert_array_equal(ours.indptr, reference.indptr)
    np.testing.assert_array_equal(ours.indices, reference.indices)
    np.testing.assert_allclose(ours.data, reference.data, rtol=1e-14)
    assert (ours @ np.zeros((20, 0))).shape == (30, 0)
    # a SciPy matrix with duplicate entries is taken with them summed (its diagonal too)
    twice = sp.csr_matrix((np.ones(3), np.array([0, 0, 1]), np.array([0, 2, 3])), shape=(2, 2))
    np.testing.assert_array_equal(CSRMatrix.of(twice).diagonal(), [2.0, 1.0])
    assert twice.nnz == 3  # the caller's matrix is left as it was
    with pytest.raises(ValueError, match="do not match"):
        ours @ np.ones(30)
    with pytest.raises(TypeError, match="expected a CSR matrix"):
        CSRMatrix.of(np.eye(3))


def test_connected_components_equal_scipy_on_random_graphs():
    """Same count and the same labels (components numbered by their lowest node)."""
    rng = np.random.default_rng(2)
    for _ in range(60):
        n, k = int(rng.integers(1, 200)), int(rng.integers(0, 250))
        rows, cols = rng.integers(0, n, k), rng.integers(0, n, k)
        graph = sp.coo_matrix((np.ones(k), (rows, cols)), shape=(n, n))
        expected = scipy_components(graph, directed=False)
        count, labels = connected_components(n, rows, cols)
        assert count == expected[0]
        np.testing.assert_array_equal(labels, expected[1])
    # a long path in shuffled order (the worst case of naive label propagation)
    order = rng.permutation(5000)
    count, labels = connected_components(5000, order[:-1], order[1:])
    assert count == 1 and not labels.any()


def test_coincident_pairs_equal_brute_force():
    """Planted coincident copies found, near misses (1.5 tolerances apart) not, in 2D and 3D."""
    rng = np.random.default_rng(3)
    tolerance = 1e-8
    for d in (2, 3):
        base = np.round(rng.random((300, d)) * 16) / 16  # grid points: many share coordinates
        base = np.unique(base, axis=0)
        copies = base[rng.integers(0, len(base), 80)] + rng.normal(0, 0.1 * tolerance, (80, d))
        misses = base[rng.integers(0, len(base), 40)] + 1.5 * tolerance / np.sqrt(d)
        points = np.concatenate([base, copies, misses])
        found = {tuple(p) for p in coincident_pairs(points, tolerance)}
        distance = np.linalg.norm(points[:, None] - points[None], axis=2)
        i, j = np.nonzero(np.triu(distance < tolerance, k=1))
        assert found == set(zip(i.tolist(), j.tolist(), strict=True))
        assert len(found) >= 80
    assert coincident_pairs(np.zeros((0, 2)), tolerance).shape == (0, 2)
