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

from fe2hmm.progress import announce_compilation

announce_compilation()  # one line on stderr while the kernels below first compile

__all__ = [
    "check_box",
    "forces",
    "langevin",
    "lj_energy",
    "lj_force_over_r",
    "perpendicular_widths",
    "relax",
    "relax_boxes",
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
    """Distances between opposite faces of the box ``H`` (columns = cell vectors), ``(d,)``.

    A stack of boxes ``(..., d, d)`` gives ``(..., d)``.
    """
    return 1.0 / np.linalg.norm(np.linalg.inv(H), axis=-1)


def check_box(H: np.ndarray, cutoff: float) -> None:
    """Raise ``ValueError`` unless every perpendicular width is at least ``2·cutoff``."""
    widths = perpendicular_widths(H)
    if np.any(widths < 2 * cutoff):
        raise ValueError(
            f"box too small for the cutoff: perpendicular widths {np.round(widths, 6)} must be "
            f">= 2*cutoff = {2 * cutoff:g} (minimum image); use more lattice cells"
        )


def _cell_layout(H: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Cells per axis ``⌊w_k / r_c⌋`` and whether the cell list applies (>= 3 on every axis).

    ``H`` ``(d, d)`` gives ``((d,), bool)``; a stack ``(..., d, d)`` gives ``((..., d), (...))``.
    """
    ncells = np.floor(perpendicular_widths(H) / cutoff).astype(np.int64)
    return ncells, np.all(ncells >= 3, axis=-1)


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
    ncell, cells = _cell_layout(H, cutoff)
    return _evaluate(np.ascontiguousarray(x), H, Hinv, cutoff * cutoff, shift, ncell, bool(cells))


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
    ncell, cells = _cell_layout(H, cutoff)
    shift = float(lj_energy(cutoff * cutoff))
    return _langevin(x, v, H, cutoff * cutoff, shift, ncell, bool(cells), dt, gamma, temperature,
                     steps, seed, every)  # fmt: skip


@numba.njit(cache=True)
def _fire(x, H, Hinv, rc2, shift, ncell, cells, tolerance, max_steps):
    """FIRE relaxation at fixed box (in place); returns ``(steps, max |f|, virial)``.

    Bitzek et al., PRL 97, 170201 (2006): dt 0.002 → at most 0.02, α 0.1, ×1.1 / ×0.99 after
    5 downhill steps, velocities zeroed and dt halved uphill.
    """
    dt, dt_max, alpha0 = 0.002, 0.02, 0.1
    alpha, positive = alpha0, 0
    v = np.zeros_like(x)
    _, f, virial = _evaluate(x, H, Hinv, rc2, shift, ncell, cells)
    for step in range(max_steps + 1):
        fmax = np.abs(f).max()
        if fmax < tolerance or step == max_steps:
            return step, fmax, virial
        power = np.sum(f * v)
        if power > 0.0:
            norm_v = np.sqrt(np.sum(v * v))
            norm_f = np.sqrt(np.sum(f * f))
            v = (1.0 - alpha) * v + alpha * f * (norm_v / norm_f)
            positive += 1
            if positive > 5:
                dt = min(1.1 * dt, dt_max)
                alpha *= 0.99
        else:
            v[:] = 0.0
            dt, alpha, positive = 0.5 * dt, alpha0, 0
        v += dt * f
        x += dt * v
        _, f, virial = _evaluate(x, H, Hinv, rc2, shift, ncell, cells)
    return max_steps, np.abs(f).max(), virial


@numba.njit(cache=True, parallel=True)
def _relax_boxes(X, Hs, rc2, shift, ncells, cells, tolerance, max_steps):
    B, n, d = X.shape
    steps = np.zeros(B, dtype=np.int64)
    fmax = np.zeros(B)
    virials = np.zeros((B, d, d))
    for b in numba.prange(B):
        Hinv = np.linalg.inv(Hs[b])
        s, m, vir = _fire(X[b], Hs[b], Hinv, rc2, shift, ncells[b], cells[b], tolerance, max_steps)
        steps[b], fmax[b] = s, m
        virials[b] = vir
    return steps, fmax, virials


def relax(
    x: np.ndarray, H: np.ndarray, cutoff: float, tolerance: float = 1e-10, max_steps: int = 20000
) -> tuple[int, float, np.ndarray]:
    """FIRE relaxation of one box at fixed ``H`` (``x`` in place).

    Returns:
        ``(steps, largest force component, pair virial (d, d))``; converged when the force is
        below ``tolerance`` (the caller decides what not converging means).
    """
    ncell, cells = _cell_layout(H, cutoff)
    return _fire(x, H, np.linalg.inv(H), cutoff * cutoff, float(lj_energy(cutoff * cutoff)),
                 ncell, bool(cells), float(tolerance), int(max_steps))  # fmt: skip


def relax_boxes(
    X: np.ndarray, Hs: np.ndarray, cutoff: float, tolerance: float = 1e-10, max_steps: int = 20000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FIRE relaxation of ``B`` boxes in one call, parallel over boxes (``X`` in place).

    Args:
        X: positions ``(B, n, d)`` (C-contiguous, modified).
        Hs: box matrices ``(B, d, d)``, each at least ``2·cutoff`` wide.
        cutoff: LJ cutoff.
        tolerance: force tolerance.
        max_steps: FIRE steps per box before giving up.

    Returns:
        ``(steps (B,), largest force component (B,), pair virials (B, d, d))``.
    """
    ncells, cells = _cell_layout(Hs, cutoff)
    return _relax_boxes(X, Hs, cutoff * cutoff, float(lj_energy(cutoff * cutoff)), ncells, cells,
                        float(tolerance), int(max_steps))  # fmt: skip
