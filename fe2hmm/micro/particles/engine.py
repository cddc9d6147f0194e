r"""Verlet-list MD engine: one large box (atom-parallel) or many small boxes (box-parallel).

The same physics as :mod:`fe2hmm.micro.particles.lj` (cut-and-shifted LJ, minimum image in a
fixed triclinic box, BAOAB Langevin / velocity Verlet, unit masses), organised for speed:

- **Verlet lists** with a skin: pairs within ``r_c + skin`` are listed once and reused until
  some atom has moved more than ``skin/2`` since the last build — then no pair inside ``r_c``
  can be missing.
- **Rebuilds** wrap the atoms into the box and sort them by cell (counting sort, as LAMMPS'
  ``atom_modify sort``), so neighbour cells are contiguous runs of memory. Every listed pair
  stores the periodic image it was found with (one of 27, packed with the neighbour index):
  since every box width is at least ``2 (r_c + skin)``, that image stays the minimum image
  until the next rebuild, and the force loop needs neither ``floor`` nor fractional
  coordinates. Lists are found with a half stencil of cells (cells at least half the list
  radius wide, ±2; or the list radius, ±1), or with all pairs in boxes with too few cells.
  The caller's atom order and unwrapped positions are restored on return.
- :func:`run_box`: one box, half list built in parallel (one chunk of cells per thread, each
  into its own buffer, then concatenated: the same list as a serial build), forces split
  into chunks of equal pair counts, each accumulating into its own buffer, then reduced.
- :func:`run_boxes`: many independent boxes (the FE–MD workload: one box per quadrature point)
  in one call, parallel over boxes, each serial with a half list; box ``b`` draws its noise from
  ``seeds[b]`` only, so results do not depend on the thread schedule. Noise is drawn in the
  caller's atom order, so the sorting does not change the random sequence.

Both return the instantaneous ``Σ r⊗f + Σ v⊗v`` (stress × −V) and the kinetic energy every
``every`` steps. The number of threads is numba's (``NUMBA_NUM_THREADS``).
"""

from __future__ import annotations

import numba
import numpy as np

from fe2hmm.micro.particles.lj import lj_energy, perpendicular_widths
from fe2hmm.progress import announce_compilation

announce_compilation()  # one line on stderr while the kernels below first compile

__all__ = ["run_box", "run_boxes"]

_SHIFT = 5  # packed pair: (j << _SHIFT) | image code, code = 9 (w0+1) + 3 (w1+1) + (w2+1)
_MASK = (1 << _SHIFT) - 1


@numba.njit(cache=True)
def _setup(x, v, H):
    """Internal state: 3-column copies (2D: z = 0, H padded with 1), image table, permutation.

    Returns ``(H3, Hinv3, xs, vs, img, perm, slot, table)``: ``xs``/``vs`` the sorted, wrapped
    positions and velocities; ``img`` the box images removed by wrapping (fractional);
    ``perm[k]`` the caller's index of sorted atom ``k`` and ``slot`` its inverse; ``table[c]``
    the Cartesian shift ``H w`` of image code ``c``.
    """
    n, d = x.shape
    H3 = np.eye(3)
    H3[:d, :d] = H
    Hinv3 = np.linalg.inv(H3)
    xs = np.zeros((n, 3))
    vs = np.zeros((n, 3))
    xs[:, :d] = x
    vs[:, :d] = v
    img = np.zeros((n, 3))
    perm = np.arange(n)
    slot = np.arange(n)
    table = np.zeros((27, 3))
    for c in range(27):
        w0 = c // 9 - 1
        w1 = (c // 3) % 3 - 1
        w2 = c % 3 - 1
        for a in range(3):
            table[c, a] = H3[a, 0] * w0 + H3[a, 1] * w1 + H3[a, 2] * w2
    return H3, Hinv3, xs, vs, img, perm, slot, table


@numba.njit(cache=True)
def _restore(x, v, xs, vs, img, perm, H3):
    """Write the internal state back in the caller's order, unwrapped."""
    n, d = x.shape
    for k in range(n):
        o = perm[k]
        for a in range(d):
            x[o, a] = xs[k, a] + (
                H3[a, 0] * img[k, 0] + H3[a, 1] * img[k, 1] + H3[a, 2] * img[k, 2]
            )
            v[o, a] = vs[k, a]


@numba.njit(cache=True)
def _wrap_sort(xs, vs, img, perm, slot, H3, Hinv3, ncell, cells):
    """Wrap atoms into the box and (``cells``) sort them by cell; returns ``(cstart, t)``.

    ``cstart`` (cells + 1): the sorted atoms of flat cell ``c`` are ``cstart[c]:cstart[c+1]``
    (all pairs: ``[0, n]``); ``t (3, n)`` the wrapped fractional coordinates (in ``[0, 1)``).
    """
    n = xs.shape[0]
    t = np.empty((3, n))
    for i in range(n):
        s0 = Hinv3[0, 0] * xs[i, 0] + Hinv3[0, 1] * xs[i, 1] + Hinv3[0, 2] * xs[i, 2]
        s1 = Hinv3[1, 0] * xs[i, 0] + Hinv3[1, 1] * xs[i, 1] + Hinv3[1, 2] * xs[i, 2]
        s2 = Hinv3[2, 0] * xs[i, 0] + Hinv3[2, 1] * xs[i, 1] + Hinv3[2, 2] * xs[i, 2]
        w0, w1, w2 = np.floor(s0), np.floor(s1), np.floor(s2)
        if w0 != 0.0 or w1 != 0.0 or w2 != 0.0:
            for a in range(3):
                xs[i, a] -= H3[a, 0] * w0 + H3[a, 1] * w1 + H3[a, 2] * w2
            img[i, 0] += w0
            img[i, 1] += w1
            img[i, 2] += w2
        t[0, i], t[1, i], t[2, i] = s0 - w0, s1 - w1, s2 - w2
    if not cells:
        cstart = np.zeros(2, dtype=np.int64)
        cstart[1] = n
        return cstart, t
    total = ncell[0] * ncell[1] * ncell[2]
    flat_of = np.empty(n, dtype=np.int64)
    cstart = np.zeros(total + 1, dtype=np.int64)
    for i in range(n):
        flat = 0
        for a in range(3):
            c = min(max(int(t[a, i] * ncell[a]), 0), ncell[a] - 1)
            flat = flat * ncell[a] + c
        flat_of[i] = flat
        cstart[flat + 1] += 1
    for c in range(total):
        cstart[c + 1] += cstart[c]
    fill = cstart[:-1].copy()
    new = np.empty(n, dtype=np.int64)  # new[i]: sorted position of current atom i (stable)
    for i in range(n):
        new[i] = fill[flat_of[i]]
        fill[flat_of[i]] += 1
    for arr in (xs, vs, img):
        old = arr.copy()
        for i in range(n):
            arr[new[i]] = old[i]
    old = t.copy()
    for i in range(n):
        t[:, new[i]] = old[:, i]
    old_perm = perm.copy()
    for i in range(n):
        perm[new[i]] = old_perm[i]
    for k in range(n):
        slot[perm[k]] = k
    return cstart, t


@numba.njit(cache=True)
def _stencil(c, ncell, reach, gs, codes):
    """Half stencil of flat cell ``c`` (itself first): neighbour cells and image codes.

    The upper half of the offsets (``oz > 0``, or ``oz = 0`` and ``oy > 0``, or ``oz = oy = 0``
    and ``ox >= 0``); with at least ``2 reach + 1`` cells per axis every pair of cells is
    met exactly once. Returns the number of entries.
    """
    nx, ny, nz = ncell[0], ncell[1], ncell[2]
    cx = c // (ny * nz)
    cy = (c // nz) % ny
    cz = c % nz
    q = 0
    for oz in range(0, reach[2] + 1):
        gz, wz = cz + oz, 0
        if gz >= nz:
            gz, wz = gz - nz, 1
        for oy in range(-reach[1] if oz > 0 else 0, reach[1] + 1):
            gy, wy = cy + oy, 0
            if gy < 0:
                gy, wy = gy + ny, -1
            elif gy >= ny:
                gy, wy = gy - ny, 1
            for ox in range(-reach[0] if (oz > 0 or oy > 0) else 0, reach[0] + 1):
                gx, wx = cx + ox, 0
                if gx < 0:
                    gx, wx = gx + nx, -1
                elif gx >= nx:
                    gx, wx = gx - nx, 1
                gs[q] = (gx * ny + gy) * nz + gz
                codes[q] = (wx + 1) * 9 + (wy + 1) * 3 + (wz + 1)
                q += 1
    return q


@numba.njit(cache=True)
def _fill_cells(xs, table, rl2, ncell, reach, cstart, clo, chi, counts, buf, row):
    """Half-list pairs of the atoms of cells ``clo..chi-1`` into ``buf[row]``.

    Sets ``counts`` of those atoms; returns the number of pairs (written only up to the
    capacity ``buf.shape[1]``: the caller retries with a larger buffer).
    """
    cap = buf.shape[1]
    size = (2 * reach[0] + 1) * (2 * reach[1] + 1) * (2 * reach[2] + 1)
    gs = np.empty(size, dtype=np.int64)
    codes = np.empty(size, dtype=np.int64)
    m = 0
    for c in range(clo, chi):
        if cstart[c] == cstart[c + 1]:
            continue
        q = _stencil(c, ncell, reach, gs, codes)
        for i in range(cstart[c], cstart[c + 1]):
            x0, x1, x2 = xs[i, 0], xs[i, 1], xs[i, 2]
            cnt = 0
            for s in range(q):
                g, code = gs[s], codes[s]
                t0, t1, t2 = x0 - table[code, 0], x1 - table[code, 1], x2 - table[code, 2]
                packed = code
                for j in range(i + 1 if s == 0 else cstart[g], cstart[g + 1]):
                    r0 = t0 - xs[j, 0]
                    r1 = t1 - xs[j, 1]
                    r2 = t2 - xs[j, 2]
                    if r0 * r0 + r1 * r1 + r2 * r2 < rl2:
                        if m < cap:
                            buf[row, m] = (j << _SHIFT) | packed
                        m += 1
                        cnt += 1
            counts[i] = cnt
    return m


@numba.njit(cache=True, fastmath=True)
def _fill_all(t, H3, rl2, lo, hi, counts, buf, row):
    """All-pairs version of :func:`_fill_cells` for atoms ``lo..hi-1`` (pairs ``j > i``).

    ``t (3, n)``: wrapped fractional coordinates. Two passes per atom: the minimum-image
    distances to all ``j > i`` (a branch-free loop the compiler vectorises), then the pairs
    within the list radius with their image codes.
    """
    n = t.shape[1]
    cap = buf.shape[1]
    rr = np.empty(n)
    a0, a1, a2 = t[0], t[1], t[2]
    h00, h01, h02 = H3[0, 0], H3[0, 1], H3[0, 2]
    h10, h11, h12 = H3[1, 0], H3[1, 1], H3[1, 2]
    h20, h21, h22 = H3[2, 0], H3[2, 1], H3[2, 2]
    m = 0
    for i in range(lo, hi):
        t0, t1, t2 = a0[i], a1[i], a2[i]
        for j in range(i + 1, n):
            s0 = t0 - a0[j]
            s1 = t1 - a1[j]
            s2 = t2 - a2[j]
            s0 -= np.floor(s0 + 0.5)
            s1 -= np.floor(s1 + 0.5)
            s2 -= np.floor(s2 + 0.5)
            r0 = h00 * s0 + h01 * s1 + h02 * s2
            r1 = h10 * s0 + h11 * s1 + h12 * s2
            r2 = h20 * s0 + h21 * s1 + h22 * s2
            rr[j] = r0 * r0 + r1 * r1 + r2 * r2
        cnt = 0
        for j in range(i + 1, n):
            if rr[j] < rl2:
                s0 = t0 - a0[j]
                s1 = t1 - a1[j]
                s2 = t2 - a2[j]
                # the image w in {-1, 0, 1}^3 (|s| < 1); comparisons always give a valid code
                code = (
                    13 + 9 * (int(s0 > 0.5) - int(s0 < -0.5)) + 3 * (int(s1 > 0.5) - int(s1 < -0.5))
                )
                code += int(s2 > 0.5) - int(s2 < -0.5)
                if m < cap:
                    buf[row, m] = (j << _SHIFT) | code
                m += 1
                cnt += 1
        counts[i] = cnt
    return m


@numba.njit(cache=True)
def _chunk_bounds(cstart, n, chunks, cells):
    """Chunk boundaries of the build.

    Cells of about equal atom counts, or (all pairs) atoms of about equal pair counts (``j > i``:
    a triangle).
    """
    bounds = np.empty(chunks + 1, dtype=np.int64)
    bounds[0] = 0
    if cells:
        total = cstart.size - 1
        c = 0
        for k in range(1, chunks):
            target = k * n // chunks
            while c < total and cstart[c] < target:
                c += 1
            bounds[k] = c
        bounds[chunks] = total
    else:
        for k in range(1, chunks):
            bounds[k] = min(n, int(n - n * np.sqrt(1.0 - k / chunks)))
        bounds[chunks] = n
    return bounds


@numba.njit(cache=True)
def _fill_chunk(xs, t, H3, table, rl2, ncell, reach, cstart, cells, bounds, k, counts, buf):
    if cells:
        return _fill_cells(xs, table, rl2, ncell, reach, cstart, bounds[k], bounds[k + 1],
                           counts, buf, k)  # fmt: skip
    return _fill_all(t, H3, rl2, bounds[k], bounds[k + 1], counts, buf, k)


@numba.njit(cache=True)
def _build(xs, t, H3, table, rl2, ncell, reach, cstart, cells):
    """Serial CSR half list ``(start (n+1,), packed pairs)`` of the sorted atoms."""
    n = xs.shape[0]
    bounds = _chunk_bounds(cstart, n, 1, cells)
    counts = np.empty(n, dtype=np.int64)
    cap = 48 * n + 64
    while True:
        buf = np.empty((1, cap), dtype=np.int32)
        m = _fill_chunk(xs, t, H3, table, rl2, ncell, reach, cstart, cells, bounds, 0, counts, buf)
        if m <= cap:
            break
        cap = m
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        start[i + 1] = start[i] + counts[i]
    return start, buf[0, :m].copy()


@numba.njit(cache=True, parallel=True)
def _fill_threads(xs, t, H3, table, rl2, ncell, reach, cstart, cells, bounds, counts, buf, used):
    for k in numba.prange(bounds.size - 1):
        used[k] = _fill_chunk(xs, t, H3, table, rl2, ncell, reach, cstart, cells, bounds, k, counts,
                              buf)  # fmt: skip


@numba.njit(cache=True)
def _build_threads(xs, t, H3, table, rl2, ncell, reach, cstart, cells, chunks):
    """:func:`_build` with one chunk per thread into its own buffer; the same list."""
    n = xs.shape[0]
    bounds = _chunk_bounds(cstart, n, chunks, cells)
    counts = np.empty(n, dtype=np.int64)
    used = np.zeros(chunks, dtype=np.int64)
    cap = 48 * (n // chunks + 1) + 64
    while True:
        buf = np.empty((chunks, cap), dtype=np.int32)
        _fill_threads(xs, t, H3, table, rl2, ncell, reach, cstart, cells, bounds, counts, buf, used)
        if used.max() <= cap:
            break
        cap = used.max()
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        start[i + 1] = start[i] + counts[i]
    offset = np.zeros(chunks + 1, dtype=np.int64)
    for k in range(chunks):
        offset[k + 1] = offset[k] + used[k]
    nbrs = np.empty(start[n], dtype=np.int32)
    for k in range(chunks):  # a plain copy: no second fork/join per rebuild
        nbrs[offset[k] : offset[k + 1]] = buf[k, : used[k]]
    return start, nbrs


@numba.njit(cache=True, fastmath=True)
def _pair_loop(xs, table, rc2, shift, start, nbrs, lo, hi, f, virial):
    """Half-list pairs of atoms ``lo..hi-1``; returns their energy.

    Forces and the pair virial ``(3, 3)`` are accumulated into ``f`` and ``virial``.
    """
    e = 0.0
    v00 = v11 = v22 = v01 = v02 = v12 = 0.0
    for i in range(lo, hi):
        x0, x1, x2 = xs[i, 0], xs[i, 1], xs[i, 2]
        fx = fy = fz = 0.0
        for k in range(start[i], start[i + 1]):
            p = nbrs[k]
            j = p >> _SHIFT
            c = p & _MASK
            r0 = x0 - xs[j, 0] - table[c, 0]
            r1 = x1 - xs[j, 1] - table[c, 1]
            r2 = x2 - xs[j, 2] - table[c, 2]
            rr = r0 * r0 + r1 * r1 + r2 * r2
            if rr < rc2:
                inv2 = 1.0 / rr
                inv6 = inv2 * inv2 * inv2
                fr = 24.0 * (2.0 * inv6 * inv6 - inv6) * inv2
                e += 4.0 * (inv6 * inv6 - inv6) - shift
                g0, g1, g2 = fr * r0, fr * r1, fr * r2
                fx += g0
                fy += g1
                fz += g2
                f[j, 0] -= g0
                f[j, 1] -= g1
                f[j, 2] -= g2
                v00 += g0 * r0
                v11 += g1 * r1
                v22 += g2 * r2
                v01 += g0 * r1
                v02 += g0 * r2
                v12 += g1 * r2
        f[i, 0] += fx
        f[i, 1] += fy
        f[i, 2] += fz
    virial[0, 0] += v00
    virial[1, 1] += v11
    virial[2, 2] += v22
    virial[0, 1] += v01
    virial[1, 0] += v01
    virial[0, 2] += v02
    virial[2, 0] += v02
    virial[1, 2] += v12
    virial[2, 1] += v12
    return e


@numba.njit(cache=True)
def _forces(xs, table, rc2, shift, start, nbrs, f, virial):
    """Forces (overwritten) and virial from a half list; returns the potential energy."""
    f[:] = 0.0
    virial[:] = 0.0
    return _pair_loop(xs, table, rc2, shift, start, nbrs, 0, xs.shape[0], f, virial)


@numba.njit(cache=True)
def _pair_bounds(start, chunks):
    """Atom boundaries of ``chunks`` chunks of about equal pair counts."""
    n = start.size - 1
    bounds = np.empty(chunks + 1, dtype=np.int64)
    bounds[0] = 0
    i = 0
    for k in range(1, chunks):
        target = k * start[n] // chunks
        while i < n and start[i] < target:
            i += 1
        bounds[k] = i
    bounds[chunks] = n
    return bounds


@numba.njit(cache=True, parallel=True)
def _forces_threads(xs, table, rc2, shift, start, nbrs, bounds, f, virial, fbuf, vbuf, ebuf):
    """Half-list forces over ``fbuf.shape[0]`` chunks of atoms; returns the potential energy.

    Each chunk accumulates into its own force buffer (no write conflicts); then reduced.
    """
    n = xs.shape[0]
    chunks = fbuf.shape[0]
    for c in numba.prange(chunks):
        fbuf[c] = 0.0
        vbuf[c] = 0.0
        ebuf[c] = _pair_loop(xs, table, rc2, shift, start, nbrs, bounds[c], bounds[c + 1],
                             fbuf[c], vbuf[c])  # fmt: skip
    for i in range(n):  # serial: one fork/join per step, not two
        for a in range(3):
            acc = 0.0
            for c in range(chunks):
                acc += fbuf[c, i, a]
            f[i, a] = acc
    virial[:] = 0.0
    for c in range(chunks):
        virial += vbuf[c]
    return ebuf.sum()


@numba.njit(cache=True)
def _moved_too_far(x, x_list, limit2):
    n = x.shape[0]
    for i in range(n):
        s = 0.0
        for a in range(3):
            s += (x[i, a] - x_list[i, a]) ** 2
        if s > limit2:
            return True
    return False


@numba.njit(cache=True)
def _kick_drift(xs, vs, f, slot, d, dt, gamma, c1, c2):
    """B A O A of BAOAB; the noise is drawn in the caller's atom order (``slot``)."""
    n = xs.shape[0]
    for o in range(n):
        i = slot[o]
        for a in range(d):
            vs[i, a] += 0.5 * dt * f[i, a]
            xs[i, a] += 0.5 * dt * vs[i, a]
            if gamma > 0.0:
                vs[i, a] = c1 * vs[i, a] + c2 * np.random.standard_normal()  # noqa: NPY002
            xs[i, a] += 0.5 * dt * vs[i, a]


@numba.njit(cache=True)
def _kick(vs, f, d, dt):
    for i in range(vs.shape[0]):
        for a in range(d):
            vs[i, a] += 0.5 * dt * f[i, a]


@numba.njit(cache=True)
def _sample(vs, virial, d, samples, kinetic, k):
    kin = 0.0
    for a in range(d):
        for b in range(d):
            acc = 0.0
            for i in range(vs.shape[0]):
                acc += vs[i, a] * vs[i, b]
            samples[k, a, b] = virial[a, b] + acc
            if a == b:
                kin += 0.5 * acc
    kinetic[k] = kin


@numba.njit(cache=True)
def _run_half(x, v, H, rc, skin, ncell, reach, dt, gamma, T, steps, every, seed):
    """One box, serial, half list (the body of the box-parallel loop)."""
    np.random.seed(seed)  # noqa: NPY002  (numba's own generator, seeded per box)
    n, d = x.shape
    H3, Hinv3, xs, vs, img, perm, slot, table = _setup(x, v, H)
    cells = reach[0] > 0
    rc2, rl2 = rc * rc, (rc + skin) ** 2
    shift = lj_energy(rc2)
    c1 = np.exp(-gamma * dt)
    c2 = np.sqrt((1.0 - c1 * c1) * T)
    cstart, t = _wrap_sort(xs, vs, img, perm, slot, H3, Hinv3, ncell, cells)
    start, nbrs = _build(xs, t, H3, table, rl2, ncell, reach, cstart, cells)
    x_list = xs.copy()
    f = np.zeros((n, 3))
    virial = np.zeros((3, 3))
    energy = _forces(xs, table, rc2, shift, start, nbrs, f, virial)
    m = steps // every
    samples = np.zeros((m, d, d))
    kinetic = np.zeros(m)
    k = 0
    for step in range(1, steps + 1):
        _kick_drift(xs, vs, f, slot, d, dt, gamma, c1, c2)
        if _moved_too_far(xs, x_list, 0.25 * skin * skin):
            cstart, t = _wrap_sort(xs, vs, img, perm, slot, H3, Hinv3, ncell, cells)
            start, nbrs = _build(xs, t, H3, table, rl2, ncell, reach, cstart, cells)
            x_list[:] = xs
        energy = _forces(xs, table, rc2, shift, start, nbrs, f, virial)
        _kick(vs, f, d, dt)
        if step % every == 0 and k < m:
            _sample(vs, virial, d, samples, kinetic, k)
            k += 1
    _restore(x, v, xs, vs, img, perm, H3)
    return samples, kinetic, energy


@numba.njit(cache=True, parallel=True)
def _run_boxes(X, V, Hs, rc, skin, ncells, reaches, dt, gamma, T, steps, every, seeds):
    B, n, d = X.shape
    m = steps // every
    samples = np.zeros((B, m, d, d))
    kinetic = np.zeros((B, m))
    for b in numba.prange(B):
        s, kin, _ = _run_half(
            X[b], V[b], Hs[b], rc, skin, ncells[b], reaches[b], dt, gamma, T, steps, every,
            seeds[b],
        )  # fmt: skip
        samples[b] = s
        kinetic[b] = kin
    return samples, kinetic


@numba.njit(cache=True)
def _run_threads(x, v, H, rc, skin, ncell, reach, dt, gamma, T, steps, every, seed, chunks):
    """One box, half list built and evaluated over ``chunks`` threads."""
    np.random.seed(seed)  # noqa: NPY002
    n, d = x.shape
    H3, Hinv3, xs, vs, img, perm, slot, table = _setup(x, v, H)
    cells = reach[0] > 0
    rc2, rl2 = rc * rc, (rc + skin) ** 2
    shift = lj_energy(rc2)
    c1 = np.exp(-gamma * dt)
    c2 = np.sqrt((1.0 - c1 * c1) * T)
    cstart, t = _wrap_sort(xs, vs, img, perm, slot, H3, Hinv3, ncell, cells)
    start, nbrs = _build_threads(xs, t, H3, table, rl2, ncell, reach, cstart, cells, chunks)
    bounds = _pair_bounds(start, chunks)
    x_list = xs.copy()
    f = np.zeros((n, 3))
    virial = np.zeros((3, 3))
    fbuf = np.zeros((chunks, n, 3))
    vbuf = np.zeros((chunks, 3, 3))
    ebuf = np.zeros(chunks)
    _forces_threads(xs, table, rc2, shift, start, nbrs, bounds, f, virial, fbuf, vbuf, ebuf)
    m = steps // every
    samples = np.zeros((m, d, d))
    kinetic = np.zeros(m)
    k = 0
    for step in range(1, steps + 1):
        _kick_drift(xs, vs, f, slot, d, dt, gamma, c1, c2)
        if _moved_too_far(xs, x_list, 0.25 * skin * skin):
            cstart, t = _wrap_sort(xs, vs, img, perm, slot, H3, Hinv3, ncell, cells)
            start, nbrs = _build_threads(xs, t, H3, table, rl2, ncell, reach, cstart, cells, chunks)
            bounds = _pair_bounds(start, chunks)
            x_list[:] = xs
        _forces_threads(xs, table, rc2, shift, start, nbrs, bounds, f, virial, fbuf, vbuf, ebuf)
        _kick(vs, f, d, dt)
        if step % every == 0 and k < m:
            _sample(vs, virial, d, samples, kinetic, k)
            k += 1
    _restore(x, v, xs, vs, img, perm, H3)
    return samples, kinetic


def _layout(H: np.ndarray, cutoff: float, skin: float) -> tuple[np.ndarray, np.ndarray]:
    """Cells per axis and the stencil reach per axis of the neighbour search, both ``(3,)``.

    Reach 2: cells at least half the list radius wide, ±2 stencil (at least 5 cells per axis);
    1: cells of the list radius, ±1 (at least 3); 0: too few cells, all pairs. 2D boxes get one
    cell and reach 0 along z.
    """
    widths = perpendicular_widths(H)
    d = len(widths)
    half = np.floor(widths / (0.5 * (cutoff + skin))).astype(np.int64)
    full = np.floor(widths / (cutoff + skin)).astype(np.int64)
    ncell, reach = np.ones(3, dtype=np.int64), np.zeros(3, dtype=np.int64)
    if np.all(half >= 5):
        ncell[:d], reach[:d] = half, 2
    elif np.all(full >= 3):
        ncell[:d], reach[:d] = full, 1
    return ncell, reach


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


def _check_size(n: int) -> None:
    if n >= 1 << (31 - _SHIFT):  # packed pairs are int32
        raise ValueError(f"at most {(1 << (31 - _SHIFT)) - 1} atoms per box, got {n}")


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
    _check_size(x.shape[0])
    ncell, reach = _layout(H, cutoff, skin)
    return _run_threads(x, v, H, cutoff, skin, ncell, reach, dt, friction, temperature,
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
    _check_size(X.shape[1])
    ncells = np.empty((B, 3), dtype=np.int64)
    reaches = np.empty((B, 3), dtype=np.int64)
    for b in range(B):
        check_box(H[b], cutoff + skin)
        ncells[b], reaches[b] = _layout(H[b], cutoff, skin)
    seeds = np.arange(B, dtype=np.int64) if seeds is None else np.asarray(seeds, dtype=np.int64)
    return _run_boxes(X, V, H, cutoff, skin, ncells, reaches, dt, friction, temperature, int(steps),
                      int(every), seeds)  # fmt: skip
