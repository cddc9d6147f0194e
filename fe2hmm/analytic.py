"""Exact results and bounds for effective conductivity, used by tests and as cheap closures.

All functions take phase conductivities (> 0 unless stated) and volume fractions in [0, 1].

References:
    - Z. Hashin, S. Shtrikman, J. Appl. Phys. 33 (1962) 3125 (bounds, d = 3; d-dimensional form
      as in S. Torquato, *Random Heterogeneous Materials*, Springer 2002, eq. 21.23).
    - J. B. Keller, J. Math. Phys. 5 (1964) 548 (2D phase-interchange duality).
    - W. T. Perrins, D. R. McKenzie, R. C. McPhedran, Proc. R. Soc. Lond. A 369 (1979) 207
      (square arrays of cylinders, Rayleigh multipole method).
    - S. M. Rytov, Sov. Phys. Acoust. 2 (1956) 68 (waves in periodically layered media).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "arithmetic_mean",
    "harmonic_mean",
    "laminate_conductivity",
    "voigt_bound",
    "reuss_bound",
    "hashin_shtrikman_bounds",
    "maxwell_garnett",
    "square_array_cylinders",
    "keller_dual",
    "isotropic_stiffness",
    "isotropic_stiffness_tensor",
    "to_voigt",
    "laminate_stiffness",
    "voigt_reuss_stiffness",
    "voigt_pairs",
    "wave_speed",
    "impedance",
    "christoffel_speeds",
    "laminate_phase_velocity",
]


def _check(k1: float, k2: float, f2: float, allow_zero: bool = False) -> None:
    for name, k in (("k1", k1), ("k2", k2)):
        if not np.isfinite(k) or k < 0 or (k == 0 and not allow_zero):
            valid = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"conductivity {name} must be finite and {valid}, got {k!r}")
    if not (0.0 <= f2 <= 1.0):
        raise ValueError(f"volume fraction must lie in [0, 1], got {f2!r}")


def arithmetic_mean(k1: float, k2: float, f2: float) -> float:
    """``(1-f2) k1 + f2 k2``: laminate along its layers, and the Voigt (upper) bound."""
    _check(k1, k2, f2, allow_zero=True)
    return (1.0 - f2) * k1 + f2 * k2


def harmonic_mean(k1: float, k2: float, f2: float) -> float:
    """``1/((1-f2)/k1 + f2/k2)``: laminate across its layers, and the Reuss (lower) bound."""
    _check(k1, k2, f2)
    return 1.0 / ((1.0 - f2) / k1 + f2 / k2)


voigt_bound = arithmetic_mean
reuss_bound = harmonic_mean


def laminate_conductivity(k1: float, k2: float, f2: float, dim: int = 2, normal: int = 0):
    """Exact K* of a laminate with layers normal to axis ``normal``.

    Args:
        k1: matrix conductivity.
        k2: layer (inclusion) conductivity.
        f2: volume fraction of phase 2.
        dim: 2 or 3.
        normal: axis normal to the layers.

    Returns:
        ``(dim, dim)`` diagonal tensor: harmonic mean across, arithmetic mean along.
    """
    if dim not in (2, 3) or not 0 <= normal < dim:
        raise ValueError(
            f"need dim in (2, 3) and 0 <= normal < dim, got dim={dim}, normal={normal}"
        )
    K = np.eye(dim) * arithmetic_mean(k1, k2, f2)
    K[normal, normal] = harmonic_mean(k1, k2, f2)
    return K


def hashin_shtrikman_bounds(k1: float, k2: float, f2: float, dim: int = 2) -> tuple[float, float]:
    """Hashin–Shtrikman bounds on the isotropic effective conductivity of a two-phase medium.

    Args:
        k1: conductivity of phase 1.
        k2: conductivity of phase 2.
        f2: volume fraction of phase 2.
        dim: 2 or 3.

    Returns:
        ``(lower, upper)``.
    """
    _check(k1, k2, f2)
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    f1 = 1.0 - f2
    lo_k, hi_k = min(k1, k2), max(k1, k2)
    f_lo = f1 if k1 <= k2 else f2  # fraction of the less conducting phase
    f_hi = 1.0 - f_lo
    if lo_k == hi_k:
        return lo_k, hi_k
    lower = lo_k + f_hi / (1.0 / (hi_k - lo_k) + f_lo / (dim * lo_k))
    upper = hi_k + f_lo / (1.0 / (lo_k - hi_k) + f_hi / (dim * hi_k))
    return lower, upper


def maxwell_garnett(k_matrix: float, k_inclusion: float, f: float, dim: int = 2) -> float:
    """Maxwell Garnett (Clausius–Mossotti) estimate; equals the HS bound on the matrix side."""
    _check(k_matrix, k_inclusion, f)
    beta = (k_inclusion - k_matrix) / (k_inclusion + (dim - 1) * k_matrix)
    return k_matrix * (1.0 + dim * f * beta / (1.0 - f * beta))


def square_array_cylinders(k_matrix: float, k_inclusion: float, f: float) -> float:
    """Conductivity of a square array of circular cylinders (transverse), Perrins et al. 1979.

    Rayleigh's multipole formula with the coefficients of Perrins, McKenzie & McPhedran (1979),
    eq. (8): accurate to better than 0.1 % for ``f <= 0.6`` at any contrast (their Table 1).

    Args:
        k_matrix: matrix conductivity (> 0).
        k_inclusion: cylinder conductivity (>= 0; 0 for holes).
        f: cylinder area fraction, ``0 <= f < π/4``.

    Returns:
        The isotropic effective conductivity.
    """
    _check(k_matrix, k_inclusion, f, allow_zero=True)
    if k_matrix <= 0:
        raise ValueError(f"matrix conductivity must be > 0, got {k_matrix!r}")
    if f >= np.pi / 4:
        raise ValueError(f"area fraction must be < π/4 (touching cylinders), got {f!r}")
    if k_inclusion == k_matrix:
        return float(k_matrix)
    T = (k_matrix + k_inclusion) / (k_matrix - k_inclusion)
    denom = T + f - 0.305827 * f**4 * T / (T**2 - 1.402958 * f**8) - 0.013362 * f**8
    return float(k_matrix * (1.0 - 2.0 * f / denom))


def keller_dual(K: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Keller's 2D duality: ``K*(k2, k1) = k1 k2 R K*(k1, k2)^{-1} Rᵀ`` with R a 90° rotation.

    Args:
        K: ``(2, 2)`` effective tensor of the medium with phases (k1, k2).
        k1: conductivity of phase 1.
        k2: conductivity of phase 2.

    Returns:
        The predicted tensor with the phases interchanged.
    """
    K = np.asarray(K, dtype=float)
    if K.shape != (2, 2):
        raise ValueError(f"Keller duality is 2D: K must be 2x2, got {K.shape}")
    R = np.array([[0.0, -1.0], [1.0, 0.0]])
    return k1 * k2 * R @ np.linalg.inv(K) @ R.T


# ------------------------------------------------------------------------------ elasticity
def voigt_pairs(dim: int) -> list[tuple[int, int]]:
    """Tensor index pairs in Voigt order: 2D ``(11, 22, 12)``, 3D ``(11, 22, 33, 23, 13, 12)``."""
    if dim == 2:
        return [(0, 0), (1, 1), (0, 1)]
    if dim == 3:
        return [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    raise ValueError(f"dim must be 2 or 3, got {dim!r}")


def isotropic_stiffness_tensor(E: float, nu: float, dim: int = 2) -> np.ndarray:
    """Fourth-order isotropic stiffness ``C_ijkl``, shape ``(d, d, d, d)`` (plane strain in 2D)."""
    if not (E > 0 and -1 < nu < 0.5):
        raise ValueError(f"need E > 0 and -1 < nu < 0.5, got E={E!r}, nu={nu!r}")
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    eye = np.eye(dim)
    return lam * np.einsum("ij,kl->ijkl", eye, eye) + mu * (
        np.einsum("ik,jl->ijkl", eye, eye) + np.einsum("il,jk->ijkl", eye, eye)
    )


def to_voigt(C: np.ndarray) -> np.ndarray:
    """Voigt matrix (engineering shear) of a fourth-order stiffness, ``(3, 3)`` or ``(6, 6)``."""
    dim = C.shape[0]
    pairs = voigt_pairs(dim)
    return np.array([[C[i, j, k, m] for (k, m) in pairs] for (i, j) in pairs])


def isotropic_stiffness(E: float, nu: float, dim: int = 2) -> np.ndarray:
    """Voigt stiffness of an isotropic phase (plane strain in 2D); ``C[-1, -1]`` = shear modulus."""
    return to_voigt(isotropic_stiffness_tensor(E, nu, dim))


def laminate_stiffness(C1: np.ndarray, C2: np.ndarray, f2: float, normal: int = 0) -> np.ndarray:
    """Exact effective stiffness of a two-phase laminate (Voigt, engineering shear).

    Each phase strain is ``E + sym(a_k ⊗ n)`` with jumps ``a_k`` chosen so that the traction
    ``σ n`` is continuous and ``Σ f_k a_k = 0`` (Hill's lamination formula, solved per load case).

    Args:
        C1: fourth-order stiffness of phase 1, ``(d, d, d, d)``.
        C2: fourth-order stiffness of phase 2.
        f2: volume fraction of phase 2 (layers).
        normal: axis normal to the layers.

    Returns:
        Voigt matrix ``(3, 3)`` or ``(6, 6)``.
    """
    if not 0 < f2 < 1:
        raise ValueError(f"volume fraction must lie in (0, 1), got {f2!r}")
    dim = C1.shape[0]
    f1 = 1.0 - f2
    n = np.eye(dim)[normal]
    Q1 = np.einsum("ipjq,p,q->ij", C1, n, n)
    Q2 = np.einsum("ipjq,p,q->ij", C2, n, n)
    pairs = voigt_pairs(dim)
    columns = []
    for i, j in pairs:
        E = np.zeros((dim, dim))
        E[i, j] = E[j, i] = 1.0 if i == j else 0.5
        rhs = np.einsum("ijkl,kl,j->i", C2 - C1, E, n)
        a1 = np.linalg.solve(Q1 + (f1 / f2) * Q2, rhs)
        a2 = -(f1 / f2) * a1
        eps1 = E + 0.5 * (np.outer(a1, n) + np.outer(n, a1))
        eps2 = E + 0.5 * (np.outer(a2, n) + np.outer(n, a2))
        sigma = f1 * np.einsum("ijkl,kl->ij", C1, eps1) + f2 * np.einsum("ijkl,kl->ij", C2, eps2)
        columns.append([sigma[k, m] for (k, m) in pairs])
    return np.array(columns).T


def voigt_reuss_stiffness(
    C1: np.ndarray, C2: np.ndarray, f2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Voigt (upper) and Reuss (lower) bounds on C* (Voigt matrices), any microstructure."""
    if not 0 <= f2 <= 1:
        raise ValueError(f"volume fraction must lie in [0, 1], got {f2!r}")
    upper = (1 - f2) * C1 + f2 * C2
    lower = np.linalg.inv((1 - f2) * np.linalg.inv(C1) + f2 * np.linalg.inv(C2))
    return upper, lower


# ---------------------------------------------------------------------------------------- waves
def _directions(n, dim: int) -> np.ndarray:
    n = np.atleast_2d(np.asarray(n, dtype=float))
    if n.shape[1] != dim:
        raise ValueError(f"directions must have {dim} components, got shape {n.shape}")
    norms = np.linalg.norm(n, axis=1)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError("directions must be finite and non-zero")
    return n / norms[:, None]


def _check_spd(A: np.ndarray, rho: float) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square (d, d) tensor, got shape {A.shape}")
    if not np.allclose(A, A.T, rtol=1e-10, atol=1e-14 * np.abs(A).max()):
        raise ValueError("A must be symmetric")
    if np.linalg.eigvalsh(A).min() <= 0:
        raise ValueError(f"A must be positive definite, eigenvalues {np.linalg.eigvalsh(A)}")
    if not (np.isfinite(rho) and rho > 0):
        raise ValueError(f"density must be finite and > 0, got {rho!r}")
    return A


def wave_speed(A: np.ndarray, rho: float, n) -> np.ndarray:
    """Phase speed ``c(n) = sqrt(n·A n / ρ)`` of ``ρ ü = ∇·(A∇u)`` in the directions ``n``.

    Args:
        A: SPD tensor ``(d, d)`` (e.g. a homogenised K*).
        rho: density (> 0).
        n: direction ``(d,)`` or directions ``(m, d)`` (normalised here).

    Returns:
        Speeds ``(m,)``.
    """
    A = _check_spd(A, rho)
    n = _directions(n, A.shape[0])
    return np.sqrt(np.einsum("mi,ij,mj->m", n, A, n) / rho)


def impedance(A: np.ndarray, rho: float, n) -> np.ndarray:
    """Characteristic impedance ``Z(n) = sqrt(ρ n·A n) = ρ c(n)``, shape ``(m,)``."""
    return rho * wave_speed(A, rho, n)


def christoffel_speeds(C: np.ndarray, rho: float, n) -> np.ndarray:
    """Phase speeds of elastic plane waves from the Christoffel tensor ``Γ_ik = C_ijkl n_j n_l/ρ``.

    Args:
        C: fourth-order stiffness ``(d, d, d, d)`` or a Voigt matrix (engineering shear).
        rho: density (> 0).
        n: direction ``(d,)`` or directions ``(m, d)``.

    Returns:
        Speeds ``(m, d)`` sorted descending (quasi-P first, then the quasi-S speeds).
    """
    C = np.asarray(C, dtype=float)
    if C.ndim == 2:
        dim = {3: 2, 6: 3}.get(C.shape[0])
        if dim is None or C.shape != (C.shape[0], C.shape[0]):
            raise ValueError(f"Voigt stiffness must be 3x3 or 6x6, got shape {C.shape}")
        full = np.zeros((dim,) * 4)
        pairs = voigt_pairs(dim)
        for a, (i, j) in enumerate(pairs):
            for b, (k, m) in enumerate(pairs):
                for p, q in {(i, j), (j, i)}:
                    for r, t in {(k, m), (m, k)}:
                        full[p, q, r, t] = C[a, b]
        C = full
    if C.ndim != 4 or len(set(C.shape)) != 1:
        raise ValueError(f"C must be (d, d, d, d) or Voigt, got shape {C.shape}")
    if not (np.isfinite(rho) and rho > 0):
        raise ValueError(f"density must be finite and > 0, got {rho!r}")
    n = _directions(n, C.shape[0])
    gamma = np.einsum("ijkl,mj,ml->mik", C, n, n) / rho
    values = np.linalg.eigvalsh(gamma)
    if values.min() <= 0:
        raise ValueError("C is not positive definite for these directions (Γ has eigenvalue <= 0)")
    return np.sqrt(values[:, ::-1])


def laminate_phase_velocity(
    k1: float, rho1: float, k2: float, rho2: float, f2: float, wavenumber, period: float = 1.0
) -> np.ndarray:
    """Exact phase velocity ``ω/κ`` of the first band of a two-layer periodic laminate.

    Scalar waves ``ρ ü = (k u')'`` across layers of thickness ``(1-f2)ε`` (phase 1) and
    ``f2 ε`` (phase 2), period ``ε``: Rytov's (1956) relation

    ``cos(κε) = cos(ω d1/c1) cos(ω d2/c2) - ½ (Z1/Z2 + Z2/Z1) sin(ω d1/c1) sin(ω d2/c2)``,

    ``c_i = sqrt(k_i/ρ_i)``, ``Z_i = sqrt(k_i ρ_i)``. As ``κε → 0`` the velocity tends to the
    homogenised ``sqrt(harmonic_mean(k)/⟨ρ⟩)``; it falls below it as the wavelength
    ``2π/κ`` approaches the period.

    Args:
        k1: stiffness (the coefficient ``k`` of the wave equation) of phase 1, > 0.
        rho1: density of phase 1, > 0.
        k2: stiffness of phase 2, > 0.
        rho2: density of phase 2, > 0.
        f2: volume fraction of phase 2, in (0, 1).
        wavenumber: ``κ`` (scalar or array), ``0 < κ ε <= π`` (the first Brillouin zone).
        period: ``ε``.

    Returns:
        Phase velocities, the shape of ``wavenumber``.
    """
    from scipy.optimize import brentq

    for name, value in (("k1", k1), ("rho1", rho1), ("k2", k2), ("rho2", rho2)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    if not 0 < f2 < 1:
        raise ValueError(f"volume fraction f2 must lie in (0, 1), got {f2!r}")
    kappa = np.asarray(wavenumber, dtype=float)
    phase = kappa * period
    if np.any(~(phase > 0)) or np.any(phase > np.pi * (1 + 1e-12)):
        raise ValueError(
            "wavenumber·period must lie in (0, π] (the first band), got "
            f"{phase.min():g}..{phase.max():g}"
        )
    d1, d2 = (1 - f2) * period, f2 * period
    c1, c2 = np.sqrt(k1 / rho1), np.sqrt(k2 / rho2)
    z = 0.5 * (np.sqrt(k1 * rho1) / np.sqrt(k2 * rho2) + np.sqrt(k2 * rho2) / np.sqrt(k1 * rho1))

    def rhs(w):
        a, b = w * d1 / c1, w * d2 / c2
        return np.cos(a) * np.cos(b) - z * np.sin(a) * np.sin(b)

    # the first band ends where rhs first reaches -1: bracket it on a fine scan
    travel = d1 / c1 + d2 / c2
    grid = np.linspace(0.0, 2 * np.pi / travel, 4001)[1:]
    values = rhs(grid)
    edge = grid[np.argmax(values <= -1 + 1e-12)] if np.any(values <= -1 + 1e-12) else grid[-1]
    out = np.empty(phase.shape)
    for idx, p in np.ndenumerate(phase):
        target = np.cos(p)
        w = brentq(lambda w, t=target: rhs(w) - t, 1e-14 / travel, edge, xtol=1e-15, rtol=1e-14)
        out[idx] = w / kappa[idx]
    return out
