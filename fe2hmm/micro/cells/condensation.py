r"""Static condensation of the fluctuation: the effective (macro) tangent of a cell operator.

A cell with stiffness (or tangent) matrix :math:`K` is loaded by affine fields :math:`U` (one
column per unit macro gradient or strain) plus a fluctuation :math:`w = P w_r` (periodic
prolongation :math:`P`, or the identity with the boundary dofs fixed) that is in equilibrium,
:math:`P^\top K (U + P w_r) = 0`. Eliminating :math:`w_r` gives the effective tangent

.. math:: |Y|\,C = U^\top K U - G^\top X, \qquad G = P^\top K U, \qquad (P^\top K P)\,X = G,

and the fluctuations of the unit load cases :math:`W = -P X`. This is the linear homogenisation
of a linear cell (:math:`C` is then :math:`C^*`, equal to :math:`|Y|^{-1} U^\top K (U + W)`), and
the consistent macro tangent of a nonlinear one at a converged state (:math:`K` its tangent
matrix): no finite differences, one factorisation for all columns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fe2hmm.micro.cells.linalg import SPDFactorization, solve_constrained
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.sparse import CSRMatrix

__all__ = ["CondensedTangent", "condense_tangent"]


class CondensedTangent(NamedTuple):
    """Result of :func:`condense_tangent`.

    Attributes:
        tangent: ``C = (Uᵀ K U - Gᵀ X)/|Y|``, shape ``(m, m)`` for ``m`` affine fields.
        fluctuations: ``W = -P X``, the fluctuation of each unit load case on the full dofs,
            shape ``(n, m)``.
        system: the constrained matrix and right-hand sides ``(M, G)`` that were factorised and
            solved (see :func:`~fe2hmm.micro.cells.linalg.solve_constrained`).
    """

    tangent: np.ndarray
    fluctuations: np.ndarray
    system: tuple[CSRMatrix, np.ndarray]


def condense_tangent(
    K,
    U: np.ndarray,
    volume: float,
    eliminate: np.ndarray,
    periodic: PeriodicDofMap | None = None,
    *,
    reduced: CSRMatrix | None = None,
    backend: str = "mumps",
    seconds: dict | None = None,
    factorization: SPDFactorization | None = None,
) -> CondensedTangent:
    """Effective tangent of the cell matrix ``K`` over the affine fields ``U`` (``w`` condensed).

    Args:
        K: cell matrix on the full (owned) dofs (:class:`~fe2hmm.micro.cells.sparse.CSRMatrix` or
            SciPy CSR), shape ``(n, n)``; symmetric.
        U: affine fields of the unit macro loads, shape ``(n, m)``.
        volume: cell volume ``|Y|`` (voids included).
        eliminate: mask of the fluctuation dofs fixed to zero (periodic: reduced dofs, shape
            ``(n_r,)``; else full dofs, shape ``(n,)``), e.g. one node against translations.
        periodic: the periodic dof map ``P``; ``None`` for a fluctuation on the full dofs (kinematic
            boundary conditions through ``eliminate``).
        reduced: ``Pᵀ K P`` if already at hand (saves recomputing it).
        backend: linear solver backend (:data:`~fe2hmm.micro.cells.linalg.BACKENDS`).
        seconds: if given, ``"factorize"`` and ``"solve"`` wall times are stored in it.
        factorization: an :class:`~fe2hmm.micro.cells.linalg.SPDFactorization` to refactorise
            (see :func:`~fe2hmm.micro.cells.linalg.solve_constrained`).

    Returns:
        The tangent ``(m, m)``, the fluctuations ``W`` and the solved system.

    Raises:
        RuntimeError: the factorisation or a solve failed.
    """
    KU = K @ U
    if periodic is None:
        G, M = KU, K
    else:
        G = periodic.reduce_vector(KU)
        M = periodic.reduce_matrix(K) if reduced is None else reduced
    X, system = solve_constrained(M, G, eliminate, backend, seconds, factorization)
    tangent = (U.T @ KU - G.T @ X) / volume
    W = -(X if periodic is None else periodic.expand(X))
    return CondensedTangent(tangent, W, system)
