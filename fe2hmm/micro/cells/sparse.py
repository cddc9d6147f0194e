"""Compressed sparse row matrices of the cell problems, in NumPy.

The cell problems need few sparse operations: the matrix that dolfinx assembled, its periodic
reduction ``Pᵀ A P`` (rows and columns of identified dofs summed), products with dense blocks of
right-hand sides, the graph of its pattern (connected components) and the hand-over to PETSc,
which factorises it. Doing them here keeps SciPy (0.3–0.4 s of import, more than the whole
solve of a small cell) off the cell path; SciPy matrices are accepted wherever a
:class:`CSRMatrix` is (anything with ``indptr``, ``indices``, ``data`` and ``shape``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CSRMatrix", "CSRPattern", "connected_components"]


@dataclass(frozen=True, eq=False)
class CSRPattern:
    """Where the entries of a COO list land in CSR order: build once, fill many times.

    Attributes:
        indptr: row starts of the CSR pattern, shape ``(n_rows + 1,)``.
        indices: columns of the pattern, sorted within rows, shape ``(nnz,)``.
        position: CSR position of each COO entry (duplicates share one), shape ``(k,)``.
        shape: ``(n_rows, n_cols)``.
    """

    indptr: np.ndarray
    indices: np.ndarray
    position: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of_entries(cls, rows, cols, shape: tuple[int, int]) -> CSRPattern:
        """The pattern of the entries at ``(rows, cols)``, shape ``(k,)`` each."""
        n_rows, n_cols = int(shape[0]), int(shape[1])
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        keys, position = np.unique(rows * n_cols + cols, return_inverse=True)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_cols, minlength=n_rows), out=indptr[1:])
        indices = (keys % n_cols).astype(np.int32)
        return cls(indptr, indices, position.reshape(-1), (n_rows, n_cols))

    def matrix(self, values: np.ndarray) -> CSRMatrix:
        """The matrix with the COO ``values`` (shape ``(k,)``) in place, duplicates summed."""
        data = np.bincount(self.position, weights=values, minlength=self.indices.size)
        return CSRMatrix(self.indptr, self.indices, data, self.shape)


@dataclass(frozen=True, eq=False)
class CSRMatrix:
    """A sparse matrix in compressed sparse row form (column indices sorted within each row).

    Attributes:
        indptr: row starts, shape ``(n_rows + 1,)``.
        indices: column of each stored entry, shape ``(nnz,)``.
        data: value of each stored entry, shape ``(nnz,)``.
        shape: ``(n_rows, n_cols)``.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, A) -> CSRMatrix:
        """``A`` itself, or a CSR matrix with its arrays (a SciPy CSR matrix, for instance)."""
        if isinstance(A, cls):
            return A
        if not all(hasattr(A, name) for name in ("indptr", "indices", "data", "shape")):
            raise TypeError(f"expected a CSR matrix, got {type(A).__name__}")
        if getattr(A, "format", "csr") != "csr":
            A = A.tocsr()
        if not getattr(A, "has_canonical_format", True):  # duplicates summed, columns sorted
            A = A.copy()
            A.sum_duplicates()
        return cls(np.asarray(A.indptr), np.asarray(A.indices), np.asarray(A.data), tuple(A.shape))

    @classmethod
    def from_coo(cls, rows, cols, values, shape: tuple[int, int]) -> CSRMatrix:
        """The matrix with ``values`` at ``(rows, cols)``, duplicates summed.

        Args:
            rows: entry rows, shape ``(k,)``.
            cols: entry columns, shape ``(k,)``.
            values: entry values, shape ``(k,)``.
            shape: ``(n_rows, n_cols)``.
        """
        pattern = CSRPattern.of_entries(rows, cols, shape)
        return pattern.matrix(values)

    @classmethod
    def from_dolfinx(cls, A, n: int | None = None) -> CSRMatrix:
        """The owned block of an assembled ``dolfinx.la.MatrixCSR`` (block sizes expanded).

        Args:
            A: the matrix ``dolfinx.fem.assemble_matrix`` returned.
            n: keep rows and columns ``< n`` (scalar dofs); default: the owned rows.
        """
        bs0, bs1 = A.block_size
        n_rows = A.index_map(0).size_local
        nnz = int(A.indptr[n_rows])
        indptr = np.asarray(A.indptr[: n_rows + 1], dtype=np.int64)
        indices = np.asarray(A.indices[:nnz], dtype=np.int64)
        data = np.asarray(A.data[: nnz * bs0 * bs1])
        size = n_rows * bs0 if n is None else int(n)
        full = size == n_rows * bs0 and (nnz == 0 or indices.max() < n_rows)
        if full and _sorted_rows(indptr, indices):  # dolfinx sorts its sparsity: no sort here
            if bs0 == bs1 == 1:
                return cls(indptr.copy(), indices.astype(np.int32), data.copy(), (size, size))
            # scalar row I*bs0 + a holds, for each block (I, J_k) in order, columns J_k*bs1 + b
            lengths = np.diff(indptr)
            per_row = np.repeat(lengths, bs0)  # blocks in each scalar row
            block_row = np.repeat(np.arange(n_rows), lengths * bs0)
            q = np.arange(block_row.size) - np.repeat(indptr[:-1] * bs0, lengths * bs0)
            a, k = np.divmod(q, lengths[block_row])
            k += indptr[block_row]
            values = data[((k * bs0 + a) * bs1)[:, None] + np.arange(bs1)].reshape(-1)
            cols = ((indices[k] * bs1)[:, None] + np.arange(bs1)).reshape(-1)
            out_ptr = np.zeros(size + 1, dtype=np.int64)
            np.cumsum(per_row * bs1, out=out_ptr[1:])
            return cls(out_ptr, cols.astype(np.int32), values, (size, size))
        block_rows = np.repeat(np.arange(n_rows), np.diff(indptr))
        if bs0 == bs1 == 1:
            rows, cols, values = block_rows, indices, data
        else:  # entry (a, b) of block (I, J) is row I*bs0 + a, column J*bs1 + b
            a, b = np.divmod(np.arange(bs0 * bs1), bs1)
            rows = (block_rows[:, None] * bs0 + a).reshape(-1)
            cols = (indices[:, None] * bs1 + b).reshape(-1)
            values = data
        keep = (rows < size) & (cols < size)
        return cls.from_coo(rows[keep], cols[keep], values[keep], (size, size))

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.indptr[-1])

    def row_indices(self) -> np.ndarray:
        """Row of each stored entry, shape ``(nnz,)``."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def copy(self) -> CSRMatrix:
        """A copy with its own value array (the pattern arrays are shared)."""
        return CSRMatrix(self.indptr, self.indices, self.data.copy(), self.shape)

    def diagonal(self) -> np.ndarray:
        """The diagonal, shape ``(min(n_rows, n_cols),)`` (zero where not stored)."""
        rows = self.row_indices()
        on = rows == self.indices
        out = np.zeros(min(self.shape), dtype=self.data.dtype)
        out[rows[on]] = self.data[on]  # one entry per position in a CSR matrix
        return out

    def toarray(self) -> np.ndarray:
        """The dense matrix, shape ``shape``."""
        out = np.zeros(self.shape, dtype=self.data.dtype)
        np.add.at(out, (self.row_indices(), self.indices), self.data)
        return out

    def __matmul__(self, X: np.ndarray) -> np.ndarray:
        """``A @ X`` for a dense ``X`` of shape ``(n_cols,)`` or ``(n_cols, m)``."""
        X = np.asarray(X)
        if X.shape[0] != self.shape[1]:
            raise ValueError(f"shapes {self.shape} and {X.shape} do not match")
        columns = X.reshape(X.shape[0], int(np.prod(X.shape[1:], dtype=int)))
        out = np.zeros((self.shape[0], columns.shape[1]), dtype=np.result_type(self.data, X))
        filled = np.diff(self.indptr) > 0  # reduceat sums each row's run (empty rows excluded)
        if self.nnz:
            starts = self.indptr[:-1][filled]
            for j in range(columns.shape[1]):  # one column at a time: 2.5x faster than 2D
                out[filled, j] = np.add.reduceat(self.data * columns[self.indices, j], starts)
        return out.reshape((self.shape[0],) + X.shape[1:])

    def to_scipy(self):
        """A SciPy CSR copy (imports SciPy).

        A copy, so that SciPy's in-place methods cannot alter a pattern that other matrices share
        (a periodic map keeps the reduced pattern for reassemblies).
        """
        import scipy.sparse as sp

        arrays = (self.data.copy(), self.indices.copy(), self.indptr.copy())
        return sp.csr_matrix(arrays, shape=self.shape)


def _sorted_rows(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether the columns increase strictly within every row."""
    steps = np.diff(indices)
    starts = indptr[1:-1]
    steps[starts[(starts > 0) & (starts < indices.size)] - 1] = 1  # a new row may start lower
    return bool(np.all(steps > 0))


def connected_components(n: int, rows: np.ndarray, cols: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the undirected graph on ``n`` nodes with edges ``(rows, cols)``.

    Hooks each edge's larger root under its smaller one and compresses the paths, until every
    edge joins nodes of one component (a few rounds on mesh graphs).

    Returns:
        The number of components and the component of every node, numbered ``0, 1, …`` in the
        order of their lowest node, shape ``(n,)``.
    """
    label = np.arange(n)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    while True:
        a, b = label[rows], label[cols]
        differ = a != b
        if not differ.any():
            break
        low, high = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        np.minimum.at(label, high, low)
        while True:  # path compression: every node points at its root
            parent = label[label]
            if np.array_equal(parent, label):
                break
            label = parent
    roots, component = np.unique(label, return_inverse=True)
    return roots.size, component.reshape(-1)
