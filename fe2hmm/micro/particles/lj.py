r"""Lennard-Jones pair interactions in a periodic, deformable (triclinic) box — numba kernels.

Reduced units throughout (:math:`\epsilon = \sigma = m = k_B = 1`). The potential is cut and
shifted: :math:`\phi(r) = 4(r^{-12} - r^{-6}) - \phi_\mathrm{LJ}(r_c)` for :math:`r < r_c`, 0
beyond (energy continuous at :math:`r_c`, force not). The box is the matrix ``H`` whose columns
are the cell vectors; positions are Cartesian, differences use the minimum image of the
fractional coordinates :math:`s = H^{-1}x`, which is exact when every perpendicular width of the
box is at least :math:`2 r_c` (checked by :func:`check_box`).

Neighbours are found with a cell list in fractional coordinates (``n_k = ⌊w_k / r_c⌋`` cells
along axis ``k`` of perpendicular width ``w_k``) when every ``n_k >= 3``, otherwise by all pairs.
The kernels are module-level pure functions on arrays (no Python objects inside).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "check_box",
    "forces",
    "langevin",
    "lj_energy",
    "lj_force_over_r",
    "perpendicular_widths",
]


@numba.njit(cache=True, inline="always")
def lj_energy(r2: float) -> float:
    """Unshifted LJ energy ``4(r⁻¹² − r⁻⁶)`` from ``r²``."""
    inv6 = 1.0 / (r2 * r2 * r2)
    return 4.0 * (inv6 * inv6 - inv6)


@numba.njit(cache=True, inline="always")
def lj_force_over_r(r2: float) -> float:
    """``−φ'(r)/r = 24(2r⁻¹² − r⁻⁶)/r²``: the force on ``i`` is this times ``x_i − x_j``."""
    inv2 = 1.0 / r2
    inv6 = inv2 * inv2 * inv2
    return 24.0 * (2.0 * inv6 * inv6 - inv6) * inv2


def perpendicular_widths(H: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the box ``H`` (columns = cell vectors), ``(d,)``."""
    return 1.0 / np.linalg.norm(np.linalg.inv(H), axis=1)


def check_box(H: np.ndarray, cutoff: float) -> None:
    """Raise ``ValueError`` unless every perpendicular width is at least ``2·cutoff``."""
    widths = perpendicular_widths(H)
    if np.any(widths < 2 * cutoff):
        raise ValueError(
            f"box too small for the cutoff: perpendicular widths {np.round(widths, 6)} must be "
            f">= 2*cutoff = {2 * cutoff:g} (minimum image); use more lattice cells"
        )


@numba.njit(cache=True, inline="always")
def _pair(i, j, x, H, Hinv, rc2, shift, f, virial, d, ds, r):
    """Accumulate one pair; returns its energy (0 beyond the cutoff). ``ds``, ``r``: scratch."""
    for a in range(d):
        acc = 0.0
        for b in range(d):
            acc += Hinv[a, b] * (x[i, b] - x[j, b])
        ds[a] = acc - np.round(acc)
    r2 = 0.0
    for a in range(d):
        acc = 0.0
        for b in range(d):
            acc += H[a, b] * ds[b]
        r[a] = acc
        r2 += acc * acc
    if r2 >= rc2:
        return 0.0
    fr = lj_force_over_r(r2)
    for a in range(d):
        f[i, a] += fr * r[a]
        f[j, a] -= fr * r[a]
        for b in range(d):
            virial[a, b] += fr * r[a] * r[b]
    return lj_energy(r2) - shift


@numba.njit(cache=True)
def _forces_all_pairs(x, H, Hinv, rc2, shift):
    n, d = x.shape
    f = np.zeros((n, d))
    virial = np.zeros((d, d))
    energy = 0.0
    ds, r = np.empty(d), np.empty(d)
    for i in range(n):
        for j in range(i + 1, n):
            energy += _pair(i, j, x, H, Hinv, rc2, shift, f, virial, d, ds, r)
    return energy, f, virial


@numba.njit(cache=True)
def _forces_cells(x, H, Hinv, rc2, shift, ncell):
    n, d = x.shape
    f = np.zeros((n, d))
    virial = np.zeros((d, d))
    energy = 0.0
    total = 1
    for a in range(d):
        total *= ncell[a]
    head = -np.ones(total, dtype=np.int64)
    nxt = -np.ones(n, dtype=np.int64)
    cell_of = np.empty((n, d), dtype=np.int64)
    for i in range(n):
        flat = 0
        for a in range(d):
            s = 0.0
            for b in range(d):
                s += Hinv[a, b] * x[i, b]
            s -= np.floor(s)
            c = int(s * ncell[a])
            if c >= ncell[a]:
                c = ncell[a] - 1
            cell_of[i, a] = c
            flat = flat * ncell[a] + c
        nxt[i] = head[flat]
        head[flat] = i
    span = 3 if d == 3 else 1
    ds, r = np.empty(d), np.empty(d)
    for i in range(n):
        for dx_ in range(-1, 2):
            for dy_ in range(-1, 2):
                for dz_ in range(-(span // 3), span // 3 + 1):
                    flat = 0
                    shifts = (dx_, dy_, dz_)
                    for a in range(d):
                        c = (cell_of[i, a] + shifts[a]) % ncell[a]
                        flat = flat * ncell[a] + c
                    j = head[flat]
                    while j >= 0:
                        if j > i:
                            energy += _pair(i, j, x, H, Hinv, rc2, shift, f, virial, d, ds, r)
                        j = nxt[j]
    return energy, f, virial


def forces(x: np.ndarray, H: np.ndarray, cutoff: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Potential energy, forces and pair virial of LJ atoms in the periodic box ``H``.

    Args:
        x: positions ``(n, d)`` (any periodic image).
        H: box matrix ``(d, d)``, columns = cell vectors.
        cutoff: ``r_c`` (> 0, box widths >= ``2 r_c``).

    Returns:
        ``(energy, forces (n, d), virial (d, d))`` with ``virial = Σ_pairs r_ij ⊗ f_ij``
        (``r_ij = x_i − x_j``, ``f_ij`` the force on ``i`` from ``j``).
    """
    Hinv = np.linalg.inv(H)
    shift = float(lj_energy(cutoff * cutoff))
    ncell = np.floor(perpendicular_widths(H) / cutoff).astype(np.int64)
    cells = bool(np.all(ncell >= 3))
    return _evaluate(np.ascontiguousarray(x), H, Hinv, cutoff * cutoff, shift, ncell, cells)


@numba.njit(cache=True)
def _evaluate(x, H, Hinv, rc2, shift, ncell, cells):
    if cells:
        return _forces_cells(x, H, Hinv, rc2, shift, ncell)
    return _forces_all_pairs(x, H, Hinv, rc2, shift)


@numba.njit(cache=True)
def _langevin(x, v, H, rc2, shift, ncell, cells, dt, gamma, temperature, steps, seed, every):
    """BAOAB Langevin steps (velocity Verlet when ``gamma = 0``), unit masses.

    Returns ``(virial + kinetic samples (m, d, d), kinetic energies (m,), potential energies
    (m,))`` taken every ``every`` steps; ``x`` and ``v`` are advanced in place.
    """
    np.random.seed(seed)  # noqa: NPY002  (numba's own generator, seeded per call)
    n, d = x.shape
    Hinv = np.linalg.inv(H)
    c1 = np.exp(-gamma * dt)
    c2 = np.sqrt((1.0 - c1 * c1) * temperature)
    m = steps // every
    samples = np.zeros((m, d, d))
    kinetic = np.zeros(m)
    potential = np.zeros(m)
    energy, f, virial = _evaluate(x, H, Hinv, rc2, shift, ncell, cells)
    k = 0
    for step in range(1, steps + 1):
        for i in range(n):
            for a in range(d):
                v[i, a] += 0.5 * dt * f[i, a]
                x[i, a] += 0.5 * dt * v[i, a]
                if gamma > 0.0:
                    v[i, a] = c1 * v[i, a] + c2 * np.random.standard_normal()  # noqa: NPY002
                x[i, a] += 0.5 * dt * v[i, a]
        energy, f, virial = _evaluate(x, H, Hinv, rc2, shift, ncell, cells)
        for i in range(n):
            for a in range(d):
                v[i, a] += 0.5 * dt * f[i, a]
        if step % every == 0 and k < m:
            kin = 0.0
            for a in range(d):
                for b in range(d):
                    acc = 0.0
                    for i in range(n):
                        acc += v[i, a] * v[i, b]
                    samples[k, a, b] = virial[a, b] + acc
                kin += samples[k, a, a] - virial[a, a]
            kinetic[k] = 0.5 * kin
            potential[k] = energy
            k += 1
    return samples, kinetic, potential


def langevin(
    x: np.ndarray,
    v: np.ndarray,
    H: np.ndarray,
    cutoff: float,
    dt: float,
    gamma: float,
    temperature: float,
    steps: int,
    seed: int,
    every: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Advance ``x``, ``v`` (in place) by BAOAB Langevin dynamics; see :func:`_langevin`.

    Returns:
        ``(Σ r⊗f + Σ v⊗v samples (m, d, d), kinetic energies (m,), potential energies (m,))``.
    """
    ncell = np.floor(perpendicular_widths(H) / cutoff).astype(np.int64)
    cells = bool(np.all(ncell >= 3))
    shift = float(lj_energy(cutoff * cutoff))
    return _langevin(
        x, v, H, cutoff * cutoff, shift, ncell, cells, dt, gamma, temperature, steps, seed, every
    )
