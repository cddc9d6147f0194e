"""Sparse factorisations shared by all right-hand sides of a cell.

Cell problems are rank-local (``MPI.COMM_SELF``): one factorisation serves the ``d`` (diffusion,
Stokes) or ``d(d+1)/2`` (elasticity) unit load cases. The default backend is MUMPS Cholesky for
symmetric positive-definite matrices; ``"mumps-lu"`` (LU with pivoting) also takes the
symmetric indefinite saddle-point systems of the Stokes cells.
"""

from __future__ import annotations

import time

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np

from fe2hmm.micro.cells.sparse import CSRMatrix

__all__ = ["SPDFactorization", "BACKENDS", "constrain", "solve_constrained"]

#: Available backends: PETSc+MUMPS Cholesky (default), PETSc+MUMPS LU, SciPy SuperLU.
BACKENDS = ("mumps", "mumps-lu", "superlu")


class SPDFactorization:
    """Factorise a sparse SPD matrix once, then solve for many right-hand sides.

    :meth:`factor` refactorises for a new matrix: one with the pattern of the last keeps the
    PETSc matrix, the solver and MUMPS's symbolic analysis (ordering and elimination tree), and
    redoes only the numeric factorisation — the cells of a morphed family
    (:mod:`fe2hmm.rve.morph`) and every Newton iteration of a cell have the same pattern.

    Args:
        A: square sparse matrix (:class:`~fe2hmm.micro.cells.sparse.CSRMatrix` or SciPy CSR),
            symmetric positive definite; ``None`` for a factorisation to be made by
            :meth:`factor`.
        backend: one of :data:`BACKENDS`.

    Raises:
        ValueError: unknown backend or non-square matrix.
        RuntimeError: the factorisation failed (e.g. the matrix is singular).
    """

    def __init__(self, A=None, backend: str = "mumps") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown linear solver backend {backend!r}; valid: {BACKENDS}")
        self.backend = backend
        self.size = 0
        #: numeric factorisations that reused the symbolic analysis of an earlier one
        self.numeric_only = 0
        self._pattern: tuple[np.ndarray, np.ndarray] | None = None
        self._mat = self._ksp = self._x = self._b = None
        if A is not None:
            self.factor(A)

    def factor(self, A) -> None:
        """(Re)factorise for ``A``: numerically only if ``A`` has the last matrix's pattern.

        Raises:
            ValueError: non-square matrix.
            RuntimeError: the factorisation failed.
        """
        A = CSRMatrix.of(A)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"matrix must be square, got shape {A.shape}")
        if self.backend == "superlu":
            import scipy.sparse.linalg as spla

            self.size = A.shape[0]
            try:
                self._lu = spla.splu(A.to_scipy().tocsc())
            except RuntimeError as err:
                raise RuntimeError(f"SuperLU factorisation failed: {err}") from err
            return
        same = (
            self._pattern is not None
            and np.array_equal(self._pattern[0], A.indptr)
            and np.array_equal(self._pattern[1], A.indices)
        )
        if same:  # every stored entry is overwritten (INSERT_VALUES): no zeroing needed
            self._mat.setValuesCSR(*self._pattern, A.data)
            self._mat.assemble()
            self._ksp.setOperators(self._mat)  # a new matrix stage: the set-up refactorises
            self.numeric_only += 1
        else:
            self._destroy()
            self.size = A.shape[0]
            self._pattern = (A.indptr.astype(PETSc.IntType), A.indices.astype(PETSc.IntType))
            self._mat = PETSc.Mat().createAIJ(
                size=A.shape, csr=(*self._pattern, A.data), comm=MPI.COMM_SELF
            )
            self._mat.assemble()
            ksp = PETSc.KSP().create(MPI.COMM_SELF)
            ksp.setOperators(self._mat)
            ksp.setType("preonly")
            pc = ksp.getPC()
            if self.backend == "mumps":
                self._mat.setOption(PETSc.Mat.Option.SPD, True)
                pc.setType("cholesky")
            else:
                pc.setType("lu")
            pc.setFactorSolverType("mumps")
            self._ksp = ksp
            self._x, self._b = self._mat.createVecs()
        self._ksp.setUp()  # symbolic + numeric, or numeric only after a change of values
        reason = self._ksp.getPC().getFailedReason()
        if reason != 0:  # pragma: no cover - PETSc build
            # MUMPS keeps its failure state: the next matrix starts afresh (analysis included)
            self._destroy()
            self._pattern = None
            raise RuntimeError(f"MUMPS factorisation failed (PETSc reason {reason})")

    def solve(self, B: np.ndarray) -> np.ndarray:
        """Solve ``A X = B``.

        Args:
            B: right-hand sides, shape ``(n,)`` or ``(n, m)``.

        Returns:
            ``X`` with the shape of ``B``.

        Raises:
            RuntimeError: the solve failed or produced non-finite values.
        """
        B = np.asarray(B, dtype=float)
        flat = B.ndim == 1
        B2 = B.reshape(self.size, -1)
        if self.backend == "superlu":
            X = self._lu.solve(np.ascontiguousarray(B2))
        else:
            X = np.empty_like(B2)
            for j in range(B2.shape[1]):
                self._b.array[:] = B2[:, j]
                self._ksp.solve(self._b, self._x)
                reason = self._ksp.getConvergedReason()
                if reason < 0:
                    raise RuntimeError(f"MUMPS solve failed (PETSc reason {reason})")
                X[:, j] = self._x.array
        if not np.all(np.isfinite(X)):
            raise RuntimeError("linear solve produced non-finite values (singular cell matrix?)")
        return X.reshape(-1) if flat else X

    def _destroy(self) -> None:
        for name in ("_ksp", "_mat", "_x", "_b"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.destroy()
            setattr(self, name, None)

    def __del__(self) -> None:
        self._destroy()


def constrain(M, B: np.ndarray, eliminate: np.ndarray) -> tuple[CSRMatrix, np.ndarray]:
    """Identity rows/columns for eliminated dofs (sparsity kept, no slicing), zero right-hand side.

    Args:
        M: symmetric matrix (:class:`~fe2hmm.micro.cells.sparse.CSRMatrix` or SciPy CSR),
            shape ``(n, n)``; every eliminated dof must have a stored diagonal.
        B: right-hand sides, shape ``(n,)`` or ``(n, m)``.
        eliminate: boolean mask, shape ``(n,)``, of dofs fixed to zero.

    Returns:
        The constrained copies ``(M, B)``.
    """
    M = CSRMatrix.of(M).copy()
    rows = M.row_indices()
    kill = eliminate[rows] | eliminate[M.indices]
    M.data[kill] = 0.0
    M.data[kill & (rows == M.indices)] = 1.0
    B = np.array(B, dtype=float)
    B[eliminate] = 0.0
    return M, B


def solve_constrained(
    M,
    B: np.ndarray,
    eliminate: np.ndarray,
    backend: str = "mumps",
    seconds: dict | None = None,
    factorization: SPDFactorization | None = None,
) -> tuple[np.ndarray, tuple[CSRMatrix, np.ndarray]]:
    """Solve ``M X = B`` with the dofs in ``eliminate`` fixed to zero, one factorisation.

    Args:
        M: symmetric matrix, nonsingular once ``eliminate`` is applied: positive (semi-)definite
            for ``"mumps"``; indefinite (e.g. a saddle point) needs ``"mumps-lu"``.
        B: right-hand sides ``(n,)`` or ``(n, m)``.
        eliminate: boolean mask of dofs fixed to zero.
        backend: see :data:`BACKENDS`.
        seconds: if given, ``"factorize"`` and ``"solve"`` wall times are stored in it.
        factorization: refactorise this one (:meth:`SPDFactorization.factor`: numeric only for
            the pattern it last factorised) instead of making a new one; its backend is used.

    Returns:
        ``X`` and the constrained system ``(M, B)`` that was solved.
    """
    Mc, Bc = constrain(M, B, eliminate)
    t0 = time.perf_counter()
    if factorization is None:
        factor = SPDFactorization(Mc, backend=backend)
    else:
        factor = factorization
        factor.factor(Mc)
    t1 = time.perf_counter()
    X = factor.solve(Bc)
    X[eliminate] = 0.0
    if seconds is not None:
        seconds.update(factorize=t1 - t0, solve=time.perf_counter() - t1)
    return X, (Mc, Bc)
