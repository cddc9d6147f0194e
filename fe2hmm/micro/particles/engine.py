r"""Verlet-list MD engine: one large box (atom-parallel) or many small boxes (box-parallel).

The same physics as :mod:`fe2hmm.micro.particles.lj` (cut-and-shifted LJ, minimum image in a
fixed triclinic box, BAOAB Langevin / velocity Verlet, unit masses), organised for speed:

- **Verlet lists** with a skin: pairs within ``r_c + skin`` are listed once (found with the
  fractional cell list when the box has 3 or more cells per axis, else all pairs) and reused
  until some atom has moved more than ``skin/2`` since the last build — then no pair inside
  ``r_c`` can be missing.
- :func:`run_box`: one box, half list, the atoms split into one chunk per thread
  (``numba.prange``) that accumulates forces into its own buffer, then reduced.
- :func:`run_boxes`: many independent boxes (the FE–MD workload: one box per quadrature point)
  in one call, parallel over boxes, each with a half list; box ``b`` draws its noise from
  ``seeds[b]`` only, so results do not depend on the thread schedule.

Both return the instantaneous ``Σ r⊗f + Σ v⊗v`` (stress × −V) and the kinetic energy every
``every`` steps. The number of threads is numba's (``NUMBA_NUM_THREADS``).
"""

from __future__ import annotations

import numba
import numpy as np

from fe2hmm.micro.particles.lj import lj_energy, perpendicular_widths

__all__ = ["run_box", "run_boxes"]


@numba.njit(cache=True, inline="always")
def _sep(sx, i, j, H):
    """Minimum image ``x_i − x_j`` from fractional coordinates: ``(r0, r1, r2, |r|²)``."""
    if sx.shape[1] == 2:
        s0 = sx[i, 0] - sx[j, 0]
        s1 = sx[i, 1] - sx[j, 1]
        s0 -= np.floor(s0 + 0.5)
        s1 -= np.floor(s1 + 0.5)
        r0 = H[0, 0] * s0 + H[0, 1] * s1
        r1 = H[1, 0] * s0 + H[1, 1] * s1
        return r0, r1, 0.0, r0 * r0 + r1 * r1
    s0 = sx[i, 0] - sx[j, 0]
    s1 = sx[i, 1] - sx[j, 1]
    s2 = sx[i, 2] - sx[j, 2]
    s0 -= np.floor(s0 + 0.5)
    s1 -= np.floor(s1 + 0.5)
    s2 -= np.floor(s2 + 0.5)
    r0 = H[0, 0] * s0 + H[0, 1] * s1 + H[0, 2] * s2
    r1 = H[1, 0] * s0 + H[1, 1] * s1 + H[1, 2] * s2
    r2 = H[2, 0] * s0 + H[2, 1] * s1 + H[2, 2] * s2
    return r0, r1, r2, r0 * r0 + r1 * r1 + r2 * r2


@numba.njit(cache=True, fastmath=True)
def _pair_loop(sx, H, rc2, shift, start, nbrs, lo, hi, f, virial):
    """Half-list pairs of atoms ``lo..hi-1``; returns their energy.

    Forces and the pair virial are accumulated into ``f`` and ``virial``.
    """
    d = sx.shape[1]
    e = 0.0
    v00 = v11 = v22 = v01 = v02 = v12 = 0.0
    for i in range(lo, hi):
        fx = fy = fz = 0.0
        for k in range(start[i], start[i + 1]):
            j = nbrs[k]
            r0, r1, r2, rr = _sep(sx, i, j, H)
            if rr < rc2:
                inv2 = 1.0 / rr
                inv6 = inv2 * inv2 * inv2
                fr = 24.0 * (2.0 * inv6 * inv6 - inv6) * inv2
                e += 4.0 * (inv6 * inv6 - inv6) - shift
                fx += fr * r0
                fy += fr * r1
                f[j, 0] -= fr * r0
                f[j, 1] -= fr * r1
                if d == 3:
                    fz += fr * r2
                    f[j, 2] -= fr * r2
                v00 += fr * r0 * r0
                v11 += fr * r1 * r1
                v22 += fr * r2 * r2
                v01 += fr * r0 * r1
                v02 += fr * r0 * r2
                v12 += fr * r1 * r2
        f[i, 0] += fx
        f[i, 1] += fy
        if d == 3:
            f[i, 2] += fz
    virial[0, 0] += v00
    virial[1, 1] += v11
    virial[0, 1] += v01
    virial[1, 0] += v01
    if d == 3:
        virial[2, 2] += v22
        virial[0, 2] += v02
        virial[2, 0] += v02
        virial[1, 2] += v12
        virial[2, 1] += v12
    return e


@numba.njit(cache=True)
def _fractional(x, Hinv, sx):
    n, d = x.shape
    for i in range(n):
        for a in range(d):
            acc = 0.0
            for b in range(d):
                acc += Hinv[a, b] * x[i, b]
            sx[i, a] = acc


@numba.njit(cache=True)
def _neighbours(x, H, Hinv, rl2, ncell, use_cells):
    """CSR half neighbour list ``(start (n+1,), list)``: pairs ``j > i`` within ``sqrt(rl2)``.

    ``use_cells``: the stencil reach of :func:`_layout` (0: all pairs).

    With cells, the atoms are bucketed by cell (counting sort), so every neighbour cell is a
    contiguous run of a cell-sorted copy of the fractional coordinates.
    """
    n, d = x.shape
    sx = np.empty((n, d))
    _fractional(x, Hinv, sx)
    counts = np.zeros(n, dtype=np.int64)
    capacity = 64 * n
    pairs = np.empty(capacity, dtype=np.int64)
    m = 0
    if use_cells:
        total = 1
        for a in range(d):
            total *= ncell[a]
        cell_of = np.empty((n, d), dtype=np.int64)
        flat_of = np.empty(n, dtype=np.int64)
        cstart = np.zeros(total + 1, dtype=np.int64)
        for i in range(n):
            flat = 0
            for a in range(d):
                t = sx[i, a] - np.floor(sx[i, a])
                c = min(int(t * ncell[a]), ncell[a] - 1)
                cell_of[i, a] = c
                flat = flat * ncell[a] + c
            flat_of[i] = flat
            cstart[flat + 1] += 1
        for c in range(total):
            cstart[c + 1] += cstart[c]
        order = np.empty(n, dtype=np.int64)
        fill = cstart[:-1].copy()
        for i in range(n):
            order[fill[flat_of[i]]] = i
            fill[flat_of[i]] += 1
        sorted_sx = np.empty((n, d))
        for k in range(n):
            for a in range(d):
                sorted_sx[k, a] = sx[order[k], a]
        reach = use_cells  # 1: cells >= rl wide, ±1 stencil; 2: cells >= rl/2, ±2 stencil
        lo3 = -reach if d == 3 else 0
        hi3 = reach + 1 if d == 3 else 1
        for i in range(n):
            for ox in range(-reach, reach + 1):
                for oy in range(-reach, reach + 1):
                    for oz in range(lo3, hi3):
                        flat = (cell_of[i, 0] + ox) % ncell[0]
                        flat = flat * ncell[1] + (cell_of[i, 1] + oy) % ncell[1]
                        if d == 3:
                            flat = flat * ncell[2] + (cell_of[i, 2] + oz) % ncell[2]
                        for k in range(cstart[flat], cstart[flat + 1]):
                            j = order[k]
                            if j <= i:
                                continue
                            s0 = sx[i, 0] - sorted_sx[k, 0]
                            s1 = sx[i, 1] - sorted_sx[k, 1]
                            s0 -= np.floor(s0 + 0.5)
                            s1 -= np.floor(s1 + 0.5)
                            if d == 3:
                                s2 = sx[i, 2] - sorted_sx[k, 2]
                                s2 -= np.floor(s2 + 0.5)
                                r0 = H[0, 0] * s0 + H[0, 1] * s1 + H[0, 2] * s2
                                r1 = H[1, 0] * s0 + H[1, 1] * s1 + H[1, 2] * s2
                                r2 = H[2, 0] * s0 + H[2, 1] * s1 + H[2, 2] * s2
                                rr = r0 * r0 + r1 * r1 + r2 * r2
                            else:
                                r0 = H[0, 0] * s0 + H[0, 1] * s1
                                r1 = H[1, 0] * s0 + H[1, 1] * s1
                                rr = r0 * r0 + r1 * r1
                            if rr < rl2:
                                if m == capacity:
                                    capacity *= 2
                                    pairs = np.concatenate((pairs, np.empty_like(pairs)))
                                pairs[m] = j
                                m += 1
                                counts[i] += 1
    else:
        for i in range(n):
            for j in range(i + 1, n):
                if _sep(sx, i, j, H)[3] < rl2:
                    if m == capacity:
                        capacity *= 2
                        pairs = np.concatenate((pairs, np.empty_like(pairs)))
                    pairs[m] = j
                    m += 1
                    counts[i] += 1
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        start[i + 1] = start[i] + counts[i]
    return start, pairs[:m].copy()  # appended atom by atom: already in CSR order


@numba.njit(cache=True)
def _forces_half(x, H, Hinv, rc2, shift, start, nbrs, f, virial):
    """Forces (overwritten) and virial from a half list; returns the potential energy."""
    n, d = x.shape
    sx = np.empty((n, d))
    _fractional(x, Hinv, sx)
    f[:] = 0.0
    virial[:] = 0.0
    return _pair_loop(sx, H, rc2, shift, start, nbrs, 0, n, f, virial)


@numba.njit(cache=True, parallel=True)
def _forces_half_threads(x, H, Hinv, rc2, shift, start, nbrs, f, fbuf, vbuf, ebuf):
    """Half-list forces over ``fbuf.shape[0]`` chunks of atoms; returns the potential energy.

    Each chunk accumulates into its own force buffer (no write conflicts); then reduced.
    """
    n, d = x.shape
    chunks = fbuf.shape[0]
    sx = np.empty((n, d))
    _fractional(x, Hinv, sx)
    for c in numba.prange(chunks):
        fbuf[c] = 0.0
        vbuf[c] = 0.0
        ebuf[c] = _pair_loop(
            sx, H, rc2, shift, start, nbrs, c * n // chunks, (c + 1) * n // chunks, fbuf[c],
            vbuf[c],
        )  # fmt: skip
    for i in numba.prange(n):
        for a in range(d):
            acc = 0.0
            for c in range(chunks):
                acc += fbuf[c, i, a]
            f[i, a] = acc
    return ebuf.sum()


@numba.njit(cache=True)
def _moved_too_far(x, x_list, limit2):
    n, d = x.shape
    for i in range(n):
        s = 0.0
        for a in range(d):
            s += (x[i, a] - x_list[i, a]) ** 2
        if s > limit2:
            return True
    return False


@numba.njit(cache=True)
def _run_half(x, v, H, rc, skin, ncell, use_cells, dt, gamma, T, steps, every, seed):
    """One box, serial, half list (the body of the box-parallel loop)."""
    np.random.seed(seed)  # noqa: NPY002  (numba's own generator, seeded per box)
    n, d = x.shape
    Hinv = np.linalg.inv(H)
    rc2, rl2 = rc * rc, (rc + skin) ** 2
    shift = lj_energy(rc2)
    c1 = np.exp(-gamma * dt)
    c2 = np.sqrt((1.0 - c1 * c1) * T)
    start, nbrs = _neighbours(x, H, Hinv, rl2, ncell, use_cells)
    x_list = x.copy()
    f = np.zeros((n, d))
    virial = np.zeros((d, d))
    energy = _forces_half(x, H, Hinv, rc2, shift, start, nbrs, f, virial)
    m = steps // every
    samples = np.zeros((m, d, d))
    kinetic = np.zeros(m)
    k = 0
    for step in range(1, steps + 1):
        for i in range(n):
            for a in range(d):
                v[i, a] += 0.5 * dt * f[i, a]
                x[i, a] += 0.5 * dt * v[i, a]
                if gamma > 0.0:
                    v[i, a] = c1 * v[i, a] + c2 * np.random.standard_normal()  # noqa: NPY002
                x[i, a] += 0.5 * dt * v[i, a]
        if _moved_too_far(x, x_list, 0.25 * skin * skin):
            start, nbrs = _neighbours(x, H, Hinv, rl2, ncell, use_cells)
            x_list[:] = x
        energy = _forces_half(x, H, Hinv, rc2, shift, start, nbrs, f, virial)
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
                kin += 0.5 * (samples[k, a, a] - virial[a, a])
            kinetic[k] = kin
            k += 1
    return samples, kinetic, energy


@numba.njit(cache=True, parallel=True)
def _run_boxes(X, V, Hs, rc, skin, ncells, use_cells, dt, gamma, T, steps, every, seeds):
    B, n, d = X.shape
    m = steps // every
    samples = np.zeros((B, m, d, d))
    kinetic = np.zeros((B, m))
    for b in numba.prange(B):
        s, kin, _ = _run_half(
            X[b], V[b], Hs[b], rc, skin, ncells[b], use_cells[b], dt, gamma, T, steps, every,
            seeds[b],
        )  # fmt: skip
        samples[b] = s
        kinetic[b] = kin
    return samples, kinetic


@numba.njit(cache=True)
def _run_threads(x, v, H, rc, skin, ncell, use_cells, dt, gamma, T, steps, every, seed, chunks):
    """One box, half list, forces split over ``chunks`` thread buffers."""
    np.random.seed(seed)  # noqa: NPY002
    n, d = x.shape
    Hinv = np.linalg.inv(H)
    rc2, rl2 = rc * rc, (rc + skin) ** 2
    shift = lj_energy(rc2)
    c1 = np.exp(-gamma * dt)
    c2 = np.sqrt((1.0 - c1 * c1) * T)
    start, nbrs = _neighbours(x, H, Hinv, rl2, ncell, use_cells)
    x_list = x.copy()
    f = np.zeros((n, d))
    fbuf = np.zeros((chunks, n, d))
    vbuf = np.zeros((chunks, d, d))
    ebuf = np.zeros(chunks)
    _forces_half_threads(x, H, Hinv, rc2, shift, start, nbrs, f, fbuf, vbuf, ebuf)
    m = steps // every
    samples = np.zeros((m, d, d))
    kinetic = np.zeros(m)
    k = 0
    for step in range(1, steps + 1):
        for i in range(n):
            for a in range(d):
                v[i, a] += 0.5 * dt * f[i, a]
                x[i, a] += 0.5 * dt * v[i, a]
                if gamma > 0.0:
                    v[i, a] = c1 * v[i, a] + c2 * np.random.standard_normal()  # noqa: NPY002
                x[i, a] += 0.5 * dt * v[i, a]
        if _moved_too_far(x, x_list, 0.25 * skin * skin):
            start, nbrs = _neighbours(x, H, Hinv, rl2, ncell, use_cells)
            x_list[:] = x
        _forces_half_threads(x, H, Hinv, rc2, shift, start, nbrs, f, fbuf, vbuf, ebuf)
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
                    vir = 0.0
                    for c in range(chunks):
                        vir += vbuf[c, a, b]
                    samples[k, a, b] = vir + acc
                    if a == b:
                        kin += 0.5 * acc
            kinetic[k] = kin
            k += 1
    return samples, kinetic


def _layout(H: np.ndarray, cutoff: float, skin: float) -> tuple[np.ndarray, int]:
    """Cells per axis and the stencil reach of the neighbour search.

    2: cells at least half the list radius wide, ±2 stencil; 1: cells of the list radius, ±1;
    0: too few cells, all pairs.
    """
    widths = perpendicular_widths(H)
    half = np.floor(widths / (0.5 * (cutoff + skin))).astype(np.int64)
    if np.all(half >= 5):
        return half, 2
    full = np.floor(widths / (cutoff + skin)).astype(np.int64)
    return full, (1 if np.all(full >= 3) else 0)


def _check(cutoff: float, skin: float, dt: float, gamma: float, T: float, steps: int) -> None:
    for name, value, ok in (
        ("cutoff", cutoff, cutoff > 0),
        ("skin", skin, skin >= 0),
        ("dt", dt, dt > 0),
        ("friction", gamma, gamma >= 0),
        ("temperature", T, T >= 0),
    ):
        if not (np.isfinite(value) and ok):
            bound = "> 0" if name in ("cutoff", "dt") else ">= 0"
            raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")


def run_box(
    x: np.ndarray,
    v: np.ndarray,
    H: np.ndarray,
    cutoff: float,
    dt: float,
    steps: int,
    friction: float = 0.0,
    temperature: float = 0.0,
    seed: int = 0,
    every: int = 1,
    skin: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance one box (in place), forces parallel over chunks of atoms.

    Arguments as :func:`run_boxes` for a single box ``x (n, d)``, ``v``, ``H (d, d)``, ``seed``.

    Returns:
        ``(Σ r⊗f + Σ v⊗v every ``every`` steps (m, d, d), kinetic energies (m,))``.
    """
    _check(cutoff, skin, dt, friction, temperature, steps)
    from fe2hmm.micro.particles.lj import check_box

    check_box(H, cutoff + skin)
    ncell, cells = _layout(H, cutoff, skin)
    return _run_threads(x, v, H, cutoff, skin, ncell, cells, dt, friction, temperature,
                        int(steps), int(every), int(seed), numba.get_num_threads())  # fmt: skip


def run_boxes(
    X: np.ndarray,
    V: np.ndarray,
    H: np.ndarray,
    cutoff: float,
    dt: float,
    steps: int,
    friction: float = 0.0,
    temperature: float = 0.0,
    seeds: np.ndarray | None = None,
    every: int = 1,
    skin: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance ``B`` independent boxes (in place), parallel over boxes.

    Args:
        X: positions ``(B, n, d)``.
        V: velocities ``(B, n, d)``.
        H: box matrices ``(B, d, d)``.
        cutoff: LJ cutoff.
        dt: time step.
        steps: number of steps.
        friction: Langevin friction (0: velocity Verlet, NVE).
        temperature: thermostat temperature.
        seeds: one seed per box (default ``0 … B−1``).
        every: sampling interval.
        skin: Verlet-list skin.

    Returns:
        ``(samples (B, m, d, d), kinetic energies (B, m))``.
    """
    _check(cutoff, skin, dt, friction, temperature, steps)
    from fe2hmm.micro.particles.lj import check_box

    B = X.shape[0]
    ncells = np.empty((B, X.shape[2]), dtype=np.int64)
    use = np.empty(B, dtype=np.int64)
    for b in range(B):
        check_box(H[b], cutoff + skin)
        ncells[b], use[b] = _layout(H[b], cutoff, skin)
    seeds = np.arange(B, dtype=np.int64) if seeds is None else np.asarray(seeds, dtype=np.int64)
    return _run_boxes(X, V, H, cutoff, skin, ncells, use, dt, friction, temperature, int(steps),
                      int(every), seeds)  # fmt: skip
