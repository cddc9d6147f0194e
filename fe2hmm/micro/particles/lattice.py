r"""Perfect Lennard-Jones lattices by direct lattice sums (independent of the MD code).

For a Bravais lattice every atom sees the same neighbours :math:`R` (lattice vectors with
:math:`0 < |R| < r_c`), so with the cut-and-shifted pair potential :math:`\phi` and the volume
per atom :math:`\Omega`:

.. math:: e = \tfrac12\sum_R \phi(|R|), \qquad
          \sigma_{ij} = \frac{1}{2\Omega}\sum_R \phi'(r)\,\frac{R_iR_j}{r}, \qquad
          C_{ijkl} = \frac{1}{2\Omega}\sum_R \Big(\phi''(r) - \frac{\phi'(r)}{r}\Big)
          \frac{R_iR_jR_kR_l}{r^2}.

:math:`C` is the Born (affine) stiffness — exact for Bravais lattices, where symmetry forbids
internal relaxation — and at zero stress it is the small-strain stiffness (Cauchy relations
hold: :math:`C_{12} = C_{66}` for pair potentials). Lattice constants: ``"triangular"`` (2D) —
the nearest-neighbour distance; ``"fcc"`` (3D) — the cubic cell edge.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import brentq

__all__ = [
    "LATTICES",
    "cauchy_born_stress",
    "lattice_energy",
    "lattice_stiffness",
    "lattice_stress",
    "lattice_vectors",
    "zero_pressure_lattice_constant",
]

#: Supported lattices and their dimension.
LATTICES = {"triangular": 2, "fcc": 3}


def _check(lattice: str, cutoff: float) -> None:
    if lattice not in LATTICES:
        raise ValueError(f"unknown lattice {lattice!r}; valid: {sorted(LATTICES)}")
    if not (np.isfinite(cutoff) and cutoff >= 1.2):
        raise ValueError(
            f"cutoff must be a finite number >= 1.2 sigma (beyond the nearest neighbours at "
            f"2^(1/6) sigma), got {cutoff!r}"
        )


def primitive_vectors(lattice: str, a: float) -> tuple[np.ndarray, float]:
    """Primitive vectors (rows) and the volume per atom ``Ω`` for lattice constant ``a``."""
    if lattice == "triangular":
        P = a * np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    else:
        P = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    return P, abs(np.linalg.det(P))


def lattice_vectors(lattice: str, a: float, cutoff: float) -> np.ndarray:
    """All lattice vectors ``R`` with ``0 < |R| < cutoff``, shape ``(m, d)``."""
    _check(lattice, cutoff)
    P, _ = primitive_vectors(lattice, a)
    d = P.shape[0]
    shortest = np.min(np.linalg.svd(P, compute_uv=False))
    n = int(np.ceil(cutoff / shortest)) + 1
    ints = np.array(list(itertools.product(range(-n, n + 1), repeat=d)), dtype=float)
    R = ints @ P
    r = np.linalg.norm(R, axis=1)
    return R[(r > 0) & (r < cutoff)]


def _phi(r, cutoff):
    def lj(x):
        return 4.0 * (x**-12 - x**-6)

    return lj(r) - lj(cutoff)


def _dphi(r):
    return -48.0 * r**-13 + 24.0 * r**-7


def _d2phi(r):
    return 624.0 * r**-14 - 168.0 * r**-8


def lattice_energy(lattice: str, a: float, cutoff: float) -> float:
    """Potential energy per atom ``½ Σ_R φ(|R|)`` (cut and shifted)."""
    R = lattice_vectors(lattice, a, cutoff)
    return 0.5 * float(_phi(np.linalg.norm(R, axis=1), cutoff).sum())


def lattice_stress(lattice: str, a: float, cutoff: float) -> np.ndarray:
    """Cauchy stress ``(d, d)`` of the perfect lattice at rest (tension positive)."""
    R = lattice_vectors(lattice, a, cutoff)
    _, omega = primitive_vectors(lattice, a)
    r = np.linalg.norm(R, axis=1)
    return 0.5 / omega * np.einsum("m,mi,mj->ij", _dphi(r) / r, R, R)


def lattice_stiffness(lattice: str, a: float, cutoff: float) -> np.ndarray:
    """Born stiffness ``C_ijkl`` ``(d, d, d, d)`` of the perfect lattice."""
    R = lattice_vectors(lattice, a, cutoff)
    _, omega = primitive_vectors(lattice, a)
    r = np.linalg.norm(R, axis=1)
    w = (_d2phi(r) - _dphi(r) / r) / r**2
    return 0.5 / omega * np.einsum("m,mi,mj,mk,ml->ijkl", w, R, R, R, R)


def zero_pressure_lattice_constant(lattice: str, cutoff: float) -> float:
    """The lattice constant at which the perfect lattice carries no stress (T = 0).

    Raises:
        ValueError: invalid lattice or cutoff (< 1.2 σ).
    """
    _check(lattice, cutoff)
    per_nn = 1.0 if lattice == "triangular" else np.sqrt(2.0)  # a per nearest-neighbour distance

    def pressure(a):
        return float(np.trace(lattice_stress(lattice, a, cutoff)))

    # the nearest-neighbour distance of the minimum lies between 1.0 and 2^(1/6) = 1.1225
    lo, hi = 0.98 * per_nn, 1.15 * per_nn
    return brentq(pressure, lo, hi, xtol=1e-14, rtol=1e-14)


def cauchy_born_stress(lattice: str, a: float, cutoff: float, F: np.ndarray) -> np.ndarray:
    """First Piola–Kirchhoff stress of the lattice deformed homogeneously by ``F`` (Cauchy–Born).

    ``P = (1/2Ω₀) Σ_R φ'(|FR|) (FR ⊗ R)/|FR|`` over the reference lattice vectors whose
    deformed length is below the cutoff (exact for Bravais lattices at T = 0).

    Args:
        lattice: ``"triangular"`` or ``"fcc"``.
        a: reference lattice constant.
        cutoff: LJ cutoff.
        F: deformation gradient ``(d, d)``, ``det F > 0``.
    """
    F = np.asarray(F, dtype=float)
    if not np.linalg.det(F) > 0:
        raise ValueError(f"deformation gradient needs det F > 0, got {np.linalg.det(F):g}")
    stretch = np.linalg.svd(F, compute_uv=False).min()
    R = lattice_vectors(lattice, a, cutoff / stretch * (1 + 1e-12))
    r_vec = R @ F.T
    r = np.linalg.norm(r_vec, axis=1)
    keep = r < cutoff
    _, omega = primitive_vectors(lattice, a)
    return 0.5 / omega * np.einsum("m,mi,mj->ij", (_dphi(r) / r)[keep], r_vec[keep], R[keep])
