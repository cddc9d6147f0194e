r"""Indicators that tell the reuse layer where the closure needs real micro solves.

**A posteriori: closure inconsistency.** A macro solution :math:`u_h` computed with surrogate
outputs :math:`\hat q` satisfies the discrete macro equation with :math:`\hat q`, not with the
true closure :math:`q`. Its residual with the true closure is
:math:`R(u_h; v) = \int_\Omega (q - \hat q)\cdot\nabla v\,dx` (for a flux closure), so with the
per-point error bounds :math:`b \ge |q - \hat q|` that the surrogate returns,

.. math:: |R(u_h; v)| \le \sum_K \eta_K\,\|\nabla v\|_{L^2(K)}, \qquad
   \eta_K = \|b\|_{L^2(K)}, \qquad \|R(u_h)\|_{H^{-1}} \le \eta = \Big(\sum_K \eta_K^2\Big)^{1/2}.

For a coercive macro problem (conductivity bounded below by :math:`k_{min}`) this bounds the
error that reuse adds: :math:`\|\nabla(u - u_h)\|_{L^2} \le \eta / k_{min}`, where :math:`u` is
the solution with the true closure on the same mesh. :func:`closure_error_indicator` returns
:math:`\eta_K` (a DG0 field, to plot or mark) and :math:`\eta`.

**Predictive: approaching a sign change of the tangent.** Where the closure's tangent
:math:`\partial\hat\omega/\partial u` (or the smallest eigenvalue of a tensor tangent) nears zero,
the linearised macro operator can lose definiteness — the precursor of a fold or a loss of
uniqueness — and an interpolation error there changes the macro answer qualitatively.
:func:`tangent_sign_indicator` returns :math:`\iota = \lambda_{min}(\mathrm{sym}\,T)/\max|T|`;
points with :math:`\iota` below a threshold get a tighter surrogate tolerance
(:class:`~fe2hmm.reuse.surrogate_model.ScalarSurrogateModel`).
"""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

__all__ = ["closure_error_indicator", "tangent_sign_indicator"]


def closure_error_indicator(closure, output: str) -> tuple[fem.Function, float]:
    """Per-cell indicators ``η_K = ‖b‖_{L²(K)}`` of the closure's surrogate error and ``η``.

    Args:
        closure: a :class:`~fe2hmm.closure.Closure` after :meth:`~fe2hmm.closure.Closure.update`.
        output: the output whose error bounds to use (e.g. ``"flux"``).

    Returns:
        ``(eta_K, eta)``: a DG0 function of the per-cell indicators and the global
        ``η = (Σ η_K²)^{1/2}`` (same on all ranks). Zero where real solves served every point.

    Note:
        Collective on ``closure.mesh.comm``.
    """
    if output not in closure.outputs:
        raise ValueError(f"unknown output {output!r}; the closure has {sorted(closure.outputs)}")
    bound = closure.error_bounds.get(output, np.zeros(closure.num_points))
    b2 = closure.quadrature_function(np.asarray(bound) ** 2, name=f"{output}_bound_squared")
    mesh = closure.mesh
    W = fem.functionspace(mesh, ("DG", 0))
    w = ufl.TestFunction(W)
    eta2 = fem.assemble_vector(fem.form(b2 * w * closure.dx))
    eta = fem.Function(W, name=f"eta_{output}")
    n = W.dofmap.index_map.size_local
    eta.x.array[:n] = np.sqrt(np.maximum(eta2.array[:n], 0.0))
    eta.x.scatter_forward()
    total = float(np.sqrt(mesh.comm.allreduce(float(eta2.array[:n].sum()), op=MPI.SUM)))
    return eta, total


def tangent_sign_indicator(tangent: np.ndarray, scale: float | None = None) -> np.ndarray:
    """``ι = λ_min(sym T) / scale`` per point: near or below 0 where the tangent changes sign.

    Args:
        tangent: tangents ``(n,)`` (scalar closure) or ``(n, k, k)`` (square tensor tangents,
            e.g. ``-K*`` negated by the caller, or a Voigt stiffness).
        scale: normalisation (default: the largest ``|T|`` entry in the batch).

    Returns:
        ``ι`` of shape ``(n,)``.
    """
    T = np.asarray(tangent, dtype=float)
    if T.ndim == 1:
        lam = T
    elif T.ndim == 3 and T.shape[1] == T.shape[2]:
        lam = np.linalg.eigvalsh(0.5 * (T + np.swapaxes(T, 1, 2)))[:, 0]
    else:
        raise ValueError(f"tangent must have shape (n,) or (n, k, k), got {T.shape}")
    if scale is None:
        scale = float(np.abs(T).max()) if T.size else 1.0
    return lam / max(scale, np.finfo(float).tiny)
