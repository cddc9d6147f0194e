"""Periodic boundary conditions by dof reduction (no dolfinx_mpc needed).

On a mesh of a box whose nodes on opposite faces match (the RVE generators guarantee it), every
Lagrange dof on an upper face ``y_i = upper_i`` is identified with its image on the lower face.
The identification is the prolongation ``P`` (full × reduced, one 1 per row); periodic problems
are solved as ``Pᵀ A P w_r = Pᵀ b`` and expanded back as ``w = P w_r``.
"""

from __future__ import annotations

import numpy as np
from dolfinx import fem

from fe2hmm.errors import NonPeriodicMeshError
from fe2hmm.micro.cells.sparse import CSRMatrix, CSRPattern, connected_components

__all__ = ["PeriodicDofMap", "affine_gradient_fields", "coincident_pairs"]


class PeriodicDofMap:
    """Identification of periodic dofs of a (possibly blocked) Lagrange space on a box.

    Args:
        V: Lagrange function space on a rank-local (``COMM_SELF``) mesh.
        lower: lower box corner, shape ``(gdim,)``.
        upper: upper box corner, shape ``(gdim,)``.
        tolerance: relative tolerance (w.r.t. the box size) for coinciding coordinates.

    Attributes:
        full_to_reduced: reduced index of every full dof (blocked), shape ``(n_full,)``.
        num_reduced: number of reduced dofs.
        boundary: mask of full (unblocked) nodes on the box boundary, shape ``(n_nodes,)``.

    Raises:
        NonPeriodicMeshError: a node on one face has no partner on the opposite face.
    """

    def __init__(
        self,
        V: fem.FunctionSpace,
        lower: np.ndarray,
        upper: np.ndarray,
        tolerance: float = 1e-8,
    ) -> None:
        gdim = V.mesh.geometry.dim
        lower = np.asarray(lower, dtype=float).reshape(gdim)
        upper = np.asarray(upper, dtype=float).reshape(gdim)
        size = upper - lower
        if np.any(size <= 0):
            raise ValueError(f"box must have upper > lower, got lower={lower}, upper={upper}")
        bs = V.dofmap.bs
        n_nodes = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
        y = (V.tabulate_dof_coordinates()[:n_nodes, :gdim] - lower) / size
        on_low = np.abs(y) < tolerance
        on_up = np.abs(y - 1.0) < tolerance
        self.boundary = (on_low | on_up).any(axis=1)
        wrapped = np.where(on_up, 0.0, y)
        rep = np.arange(n_nodes)
        b_idx = np.flatnonzero(self.boundary)
        if b_idx.size:
            pairs = coincident_pairs(wrapped[b_idx], tolerance)
            _, label = connected_components(b_idx.size, pairs[:, 0], pairs[:, 1])
            # a node on an upper face must share its group with a node off that face
            for axis in range(gdim):
                up = on_up[b_idx, axis]
                partner = np.zeros(label.max() + 1, dtype=bool)
                np.logical_or.at(partner, label[~up], True)
                orphan = up & ~partner[label]
                if orphan.any():
                    x_bad = y[b_idx[np.flatnonzero(orphan)[0]]] * size + lower
                    raise NonPeriodicMeshError(
                        f"mesh is not periodic: node at {np.array2string(x_bad, precision=6)} "
                        f"on face x{axis} = {upper[axis]:g} has no partner on face "
                        f"x{axis} = {lower[axis]:g} ({int(orphan.sum())} such nodes); "
                        "generate the cell with fe2hmm.rve or gmsh setPeriodic"
                    )
            first = np.full(label.max() + 1, n_nodes, dtype=np.int64)
            np.minimum.at(first, label, b_idx)
            rep[b_idx] = first[label]
        _, node_reduced = np.unique(rep, return_inverse=True)
        node_reduced = node_reduced.reshape(-1)
        self.num_nodes = n_nodes
        self.block_size = bs
        self.node_to_reduced = node_reduced
        self.num_reduced = int(node_reduced.max() + 1) * bs if n_nodes else 0
        self.full_to_reduced = (node_reduced[:, None] * bs + np.arange(bs)).reshape(-1)
        self._reduction = None  # (indptr, indices, CSRPattern) of the last reduced pattern

    @property
    def prolongation(self) -> CSRMatrix:
        """``P`` with ``w_full = P @ w_reduced``, shape ``(n_full, n_reduced)``."""
        n = self.full_to_reduced.size
        return CSRMatrix.from_coo(
            np.arange(n), self.full_to_reduced, np.ones(n), (n, self.num_reduced)
        )

    def reduce_matrix(self, A) -> CSRMatrix:
        """``Pᵀ A P`` (sums rows and columns of identified dofs).

        Args:
            A: full matrix (:class:`~fe2hmm.micro.cells.sparse.CSRMatrix` or SciPy CSR), shape
                ``(n_full, n_full)``.

        Returns:
            The reduced matrix, shape ``(n_reduced, n_reduced)``.
        """
        A = CSRMatrix.of(A)
        cached = self._reduction
        if cached is None or not (
            np.array_equal(cached[0], A.indptr) and np.array_equal(cached[1], A.indices)
        ):  # a new pattern (a Newton loop reassembles the same one: sorted once)
            m = self.full_to_reduced
            shape = (self.num_reduced, self.num_reduced)
            pattern = CSRPattern.of_entries(m[A.row_indices()], m[A.indices], shape)
            cached = self._reduction = (A.indptr.copy(), A.indices.copy(), pattern)
        return cached[2].matrix(A.data)

    def reduce_vector(self, b: np.ndarray) -> np.ndarray:
        """``Pᵀ b`` for ``b`` of shape ``(n_full,)`` or ``(n_full, m)``."""
        b = np.asarray(b, dtype=float)
        cols = b.reshape(b.shape[0], -1)
        out = np.column_stack(
            [
                np.bincount(self.full_to_reduced, weights=c, minlength=self.num_reduced)
                for c in cols.T
            ]
        )
        return out.reshape(self.num_reduced, *b.shape[1:])

    def expand(self, w: np.ndarray) -> np.ndarray:
        """``P w`` for ``w`` of shape ``(n_reduced,)`` or ``(n_reduced, m)``."""
        return np.asarray(w)[self.full_to_reduced]


def coincident_pairs(points: np.ndarray, tolerance: float) -> np.ndarray:
    """The pairs ``(i, j)``, ``i < j``, of points closer than ``tolerance`` (Euclidean).

    Sorts the points along a direction with incommensurate components and compares each with
    its successors while their projections stay within ``tolerance`` (projections of close
    points are close; the sweep ends when no pair at the current offset is).

    Args:
        points: shape ``(m, d)``.
        tolerance: distance below which two points coincide.

    Returns:
        Array ``(k, 2)`` of index pairs.
    """
    m, d = points.shape
    direction = np.sqrt(np.array([1.0, 2.0, 3.0, 5.0])[:d])
    projection = points @ (direction / np.linalg.norm(direction))
    order = np.argsort(projection, kind="stable")
    sorted_projection = projection[order]
    found = []
    for offset in range(1, m):
        near = sorted_projection[offset:] - sorted_projection[:-offset] < tolerance
        if not near.any():
            break
        i, j = order[:-offset][near], order[offset:][near]
        close = np.linalg.norm(points[i] - points[j], axis=1) < tolerance
        found.append(np.column_stack([np.minimum(i, j), np.maximum(i, j)])[close])
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def affine_gradient_fields(X: np.ndarray) -> np.ndarray:
    """Displacement fields ``(e_i ⊗ e_j) y`` of the unit macro gradients, blocked dof layout.

    Args:
        X: node coordinates relative to the box corner, shape ``(n_nodes, d)``.

    Returns:
        Array ``(n_nodes * d, d * d)``; column ``i * d + j`` has component i equal to ``y_j``.
    """
    n_nodes, d = X.shape
    U = np.zeros((n_nodes, d, d * d))
    for i in range(d):
        for j in range(d):
            U[:, i, i * d + j] = X[:, j]
    return U.reshape(n_nodes * d, d * d)
