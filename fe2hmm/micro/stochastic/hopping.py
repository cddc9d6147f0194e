r"""Lattice kinetic Monte Carlo of ionic hopping: many independent lattices in one numba call.

**Model.** ``P`` ions on the ``N`` sites of a periodic :class:`~.lattice.Lattice` with site
exclusion (at most one ion per site, no other interaction). An ion on site ``i`` hops to an
empty nearest-neighbour site ``j = i + v_k`` with the Arrhenius rate

.. math:: \Gamma_{ij} = \nu \exp\!\Big(-\frac{E_a + (\varepsilon_j - \varepsilon_i)/2}{kT}\Big)
          \exp\!\Big(\frac{q\,E\cdot(r_j - r_i)}{2kT}\Big).

- ``E_a`` the bare barrier; without disorder and field every hop has the rate
  ``Γ = ν exp(−E_a/kT)``.
- ``ε_i`` quenched site energies (Gaussian, standard deviation ``W``). The barrier is shifted by
  half the energy difference (the saddle sits midway between the two site energies), so
  ``Γ_ij/Γ_ji = exp(−(ε_j − ε_i)/kT)``: detailed balance with the equilibrium
  ``∝ exp(−Σ_i n_i ε_i/kT)`` of the lattice gas (site occupations ``n_i``) — the stationary
  state is the canonical ensemble of non-interacting fermions on the sites (Fermi–Dirac
  occupations in the grand-canonical limit). Large downhill differences can make the
  effective barrier ``E_a + Δε/2`` negative (a rate above ``ν``); that is part of the model.
- ``E`` a uniform (bias) field: the rates are tilted by ``exp(±qE a/2kT)`` along it (the
  symmetric split keeps the uniform measure stationary for ``W = 0``).

**Reduced units.** Lattice spacing ``a = 1``, attempt frequency ``ν = 1``, ``k_B = 1``,
charge ``q = 1``. Energies (barrier, disorder ``W``, site energies, field × ``a``) are in
units of a reference ``kT_ref`` and the temperature ``T`` is ``kT/kT_ref``; so
``Γ = exp(−E_a/T)`` and times are in units of ``1/ν``.

**Algorithm.** Rejection-free kinetic Monte Carlo (Bortz–Kalos–Lebowitz "n-fold way"): from the
total rate ``R`` of all possible hops, the time advances by ``−ln(u)/R`` (an exponential
increment, ``u`` uniform in (0, 1]) and one hop is chosen with probability ``Γ_ij/R``.

- *Uniform lattice gas* (no site energies, no field; ``method="acceptance"``): every possible
  hop has the rate ``Γ``, so ``R = M Γ`` for the ``M`` possible hops (the bonds with one end
  occupied), a number kept exactly by counting the occupied neighbours of the two sites of
  each hop. The hop is drawn uniformly among the ``M`` by acceptance: a uniform pair (walker,
  direction), drawn again until it is a possible hop, where the walkers are the minority
  species — the ions (the pair is a hop if the neighbour is empty) or, when ``2P > N``, the
  vacancies (if it is occupied; the ion there moves into the vacancy). Uniform among the
  pairs and kept only when possible, the pair is uniform among the ``M`` hops, so this is the
  same process as picking from a list of them; at most 2 draws per event on average, and no
  list or neighbour table to update (neighbours computed from packed lattice coordinates).
- *General rates* (``method="tree"``): a sum tree (binary tree of partial sums) over the sites,
  a leaf holding the total rate of the hops out of its site. A hop is selected by descending
  the tree with ``u R`` (O(log N)) and a linear scan over the ``z`` directions of the chosen
  site; after a hop the leaves of the two sites and of their occupied neighbours are
  recomputed from the rates (never updated by differences, so no round-off accumulates).
  The chosen hop is the one whose cumulative-rate interval, with hops ordered by site and
  then direction, contains ``u R`` — the same choice as a linear search, up to round-off of
  the partial sums.

**Random numbers.** Every lattice has its own SplitMix64 stream (Steele, Lea & Flood 2014),
started from ``(seed, lattice index)``: the same seed gives bitwise the same run whatever the
number of numba threads. Each event draws the time increment first, then the choice of the
hop: one number (``tree``), or one 64-bit word per attempted pair (``acceptance``: the walker
from its high 32 bits, the direction from its low 32 bits, each by Lemire's multiply-and-shift
with rejection, so exactly uniform). The
initial placement is a partial Fisher–Yates shuffle of the sites.

**Batch.** ``m = len(temperature)`` conditions × ``R`` replicas are ``B = m R`` independent
lattices (lattice index ``b = c R + r``) advanced in one call, parallel over lattices. With
disorder, replica ``r`` has its own realisation of the site energies, the same at every
temperature.

**Sampling.** After ``equilibration`` events (not recorded), the production run lasts the
physical time ``t_end`` and is sampled at ``S + 1`` equally spaced times
``t_s = s t_end/S``: the displacement ``Δr_i`` of every ion, unwrapped across the periodic
boundary (exact integer hop counts per direction pair), gives the tracer MSD
``(1/P) Σ_i |Δr_i|²`` and the centre-of-mass displacement ``Σ_i Δr_i``. ``t_end`` is
``duration`` if given, else ``events/⟨R⟩`` so that about ``events`` hops are done: ``⟨R⟩ =
P (N − P)/(N − 1) Σ_k Γ_k`` exactly for the lattice gas without site energies (the uniform
measure is stationary, also under a field), otherwise the event rate measured over the second
half of the equilibration (per lattice). ``HoppingRun.events`` counts the hops actually done.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import ArrayLike

from fe2hmm.micro.stochastic.lattice import LATTICES, Lattice
from fe2hmm.progress import announce_compilation

announce_compilation()  # one line on stderr while the kernels below first compile

__all__ = ["METHODS", "HoppingRun", "ion_count", "mean_rate", "simulate_hopping", "stream_states"]

#: Event-selection methods of :func:`simulate_hopping`.
METHODS = ("auto", "acceptance", "tree")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_STREAM = 0xD1342543DE82EF95  # odd multiplier separating the lattice streams
_MASK64 = (1 << 64) - 1
_U53 = 1.0 / 9007199254740992.0  # 2^-53
_BANK_EVENTS = 1 << 30  # hop counts are int32, banked into int64 at least this often
_MAX_EXPONENT = 700.0  # |ln Γ| bound: rates stay normal float64 numbers


# --------------------------------------------------------------------------- random numbers
@numba.njit(cache=True)
def _mix(z):
    """SplitMix64 output function (a bijection of uint64)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def _unit(x):
    """Uniform number in [0, 1) from the stream state ``x`` (already advanced)."""
    return float(_mix(x) >> np.uint64(11)) * _U53


@numba.njit(cache=True)
def _unit_open(x):
    """Uniform number in (0, 1] (for the logarithm of a waiting time)."""
    return float((_mix(x) >> np.uint64(11)) + np.uint64(1)) * _U53


def _mix_py(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_states(seed: int, count: int) -> np.ndarray:
    """Initial SplitMix64 states of lattices ``0 … count−1`` for ``seed``, ``(count,)`` uint64.

    State ``b`` is ``mix(mix(seed) XOR (b + 1) C)`` with an odd constant ``C`` (mod 2^64); the
    stream then yields ``mix(x + G), mix(x + 2G), …`` (``G`` the golden-ratio increment).
    """
    key = _mix_py(int(seed) & _MASK64)
    states = [_mix_py(key ^ (((b + 1) * _STREAM) & _MASK64)) for b in range(count)]
    return np.array(states, dtype=np.uint64)


# --------------------------------------------------------------------------- shared kernels
# The event loops are written out in one function each: helpers taking arrays would cost
# reference-count updates on every call, and these loops run ~10^7 times per second.
@numba.njit(cache=True)
def _place(N, P, x, occ):
    """Random initial placement (partial Fisher–Yates shuffle); returns the stream state."""
    perm = np.arange(N).astype(np.int32)
    occ[:] = -1
    for p in range(P):
        x += _GOLDEN
        q = p + int(_unit(x) * (N - p))
        perm[p], perm[q] = perm[q], perm[p]
        occ[perm[p]] = p
    return x


@numba.njit(cache=True)
def _bank(counts, banked):
    """Move the int32 hop counts into their int64 bank (so that they never overflow)."""
    P, h = counts.shape
    for p in range(P):
        for q in range(h):
            banked[p, q] += counts[p, q]
            counts[p, q] = 0


@numba.njit(cache=True)
def _sample(s, counts, banked, vectors, msd, com):
    """Tracer MSD and centre-of-mass displacement at sample ``s`` from the hop counts."""
    P, h = counts.shape
    d = vectors.shape[1]
    total = 0.0
    for a in range(d):
        com[s, a] = 0.0
    for p in range(P):
        r2 = 0.0
        for a in range(d):
            v = 0.0
            for q in range(h):
                v += (banked[p, q] + counts[p, q]) * vectors[2 * q, a]
            com[s, a] += v
            r2 += v * v
        total += r2
    msd[s] = total / P


@numba.njit(cache=True)
def _start(horizon, n_eq, t_half, t_eq, target, rate, times, counts, banked, since, occ_time):
    """Begin the production run; returns its duration ``t_end``.

    ``t_end``: ``horizon`` if given, else ``target`` events at the event rate measured over the
    second half of the equilibration (or the current total rate ``rate``). Resets the hop
    counts and the occupation clocks, records sample 0 and the sample times.
    """
    if horizon > 0.0:
        t_end = horizon
    elif n_eq >= 2 and t_eq > t_half:
        t_end = target * (t_eq - t_half) / (n_eq - n_eq // 2)
    else:
        t_end = target / rate
    S = times.size - 1
    for s in range(S + 1):
        times[s] = t_end * s / S
    counts[:] = 0
    banked[:] = 0
    since[:] = 0.0
    occ_time[:] = 0.0
    return t_end


@numba.njit(cache=True)
def _finish(occ, empty, t_end, since, occ_time):
    """Time-averaged occupations (if tracked; ``occ[i] != empty`` marks an occupied site)."""
    if occ_time.size:
        for i in range(occ.size):
            if occ[i] != empty:
                occ_time[i] += t_end - since[i]
        occ_time /= t_end


# --------------------------------------------------------------------------- acceptance method
@numba.njit(inline="always")
def _up(a, L):
    return a + 1 if a + 1 < L else 0


@numba.njit(inline="always")
def _down(a, L):
    return a - 1 if a > 0 else L - 1


@numba.njit(inline="always")
def _hop(kind, k, a, b, c, L):
    """Lattice coordinates reached from ``(a, b, c)`` by hop ``k``.

    The offsets of :mod:`.lattice`; ``kind`` the index in ``LATTICES`` (square, triangular,
    cubic).
    """
    if k == 0:
        return _up(a, L), b, c
    if k == 1:
        return _down(a, L), b, c
    if k == 2:
        return a, _up(b, L), c
    if k == 3:
        return a, _down(b, L), c
    if kind == 1:  # triangular: ±(a₂ − a₁)
        if k == 4:
            return _down(a, L), _up(b, L), c
        return _up(a, L), _down(b, L), c
    if k == 4:
        return a, b, _up(c, L)
    return a, b, _down(c, L)


@numba.njit(inline="always")
def _occupied_around(occ, kind, z, a, b, c, L):
    """The number of occupied neighbours of the site at ``(a, b, c)``."""
    n = 0
    for q in range(z):
        a2, b2, c2 = _hop(kind, q, a, b, c, L)
        n += occ[a2 + L * (b2 + L * c2)]
    return n


@numba.njit(cache=True)
def _run_acceptance(
    kind, L, vectors, P, gamma, x, n_eq, horizon, target, times, msd, com, occ_time, bank_every
):
    """One uniform lattice gas (every possible hop at the rate ``gamma``); returns the events.

    BKL with ``R = M Γ``, ``M`` the bonds with one end occupied (the possible hops), kept by
    counting the occupied neighbours of the two sites of each hop. The hop is drawn uniformly
    among the ``M`` by acceptance: a uniform (walker, direction) pair, one 64-bit draw (walker
    from the high 32 bits, direction from the low 32, each exactly uniform by Lemire's
    multiply-and-shift with rejection), until the neighbour is empty (walkers
    the ions) or occupied (walkers the vacancies, when ``2P > N``); at most 2 draws per event
    on average. No neighbour table: the walkers' lattice coordinates are packed in a uint32
    (``bits`` per axis) and the neighbours computed, which keeps the working set (occupations
    int8, walkers, int32 hop counts) ~7 bytes per site, inside L2 up to ~256² sites.
    """
    z, d = vectors.shape
    N = L**d
    S = times.size - 1
    track = occ_time.size > 0
    ion = np.empty(N, dtype=np.int32)  # site -> ion (-1 empty); read with vacancy walkers only
    counts = np.zeros((P, z // 2), dtype=np.int32)
    banked = np.zeros((P, z // 2), dtype=np.int64)
    since = np.zeros(N if track else 0)
    x = _place(N, P, x, ion)
    occ = np.empty(N, dtype=np.int8)
    for i in range(N):
        occ[i] = 1 if ion[i] >= 0 else 0
    vacancies = 2 * P > N
    want = 1 if vacancies else 0  # the neighbour's occupation that makes a pair a hop
    flip = 1 if vacancies else 0  # the ion moves along k ^ flip
    W = N - P if vacancies else P
    bits = 16 if d == 2 else 10  # L <= 8192 in 2D, <= 406 in 3D (lattice._MAX_SITES)
    mask = (1 << bits) - 1
    walker = np.empty(W, dtype=np.uint32)
    w = 0
    for i in range(N):
        packed = (i % L) | (((i // L) % L) << bits) | ((i // (L * L)) << (2 * bits))
        if vacancies and ion[i] < 0:
            walker[w] = packed
            w += 1
        elif not vacancies and ion[i] >= 0:
            walker[ion[i]] = packed
    M = 0
    for i in range(N):
        if occ[i]:
            M += z - _occupied_around(occ, kind, z, i % L, (i // L) % L, i // (L * L), L)
    Wu = np.uint64(W)
    zu = np.uint64(z)
    low = np.uint64(0xFFFFFFFF)
    half = np.uint64(32)
    # Lemire's rejection thresholds 2^32 mod W and 2^32 mod z: exactly uniform walker and
    # direction from 32-bit halves (rejected with probability < W / 2^32)
    two32 = np.uint64(1) << half
    reject_w = (two32 - Wu) % Wu
    reject_k = (two32 - zu) % zu
    producing = n_eq == 0
    t = 0.0
    t_half = 0.0
    s = 1
    eq = 0
    events = 0
    fresh = 0  # events since the hop counts were last banked
    if producing:
        _start(horizon, 0, 0.0, 0.0, target, M * gamma, times, counts, banked, since, occ_time)
        _sample(0, counts, banked, vectors, msd, com)
    while True:
        x += _GOLDEN
        t_next = t - math.log(_unit_open(x)) / (M * gamma)
        if producing:
            while s <= S and times[s] < t_next:
                _sample(s, counts, banked, vectors, msd, com)
                s += 1
            if s > S:
                break
        while True:
            x += _GOLDEN
            r = _mix(x)
            mw = (r >> half) * Wu
            mk = (r & low) * zu
            if (mw & low) < reject_w or (mk & low) < reject_k:
                continue
            w = np.int64(mw >> half)
            k = np.int64(mk >> half)
            packed = np.int64(walker[w])
            a = packed & mask
            b = (packed >> bits) & mask
            c = packed >> (2 * bits)
            a2, b2, c2 = _hop(kind, k, a, b, c, L)
            j = a2 + L * (b2 + L * c2)
            if occ[j] == want:
                break
        i = a + L * (b + L * c)
        walker[w] = a2 | (b2 << bits) | (c2 << (2 * bits))
        if vacancies:  # the ion on j moves into the vacancy on i
            src, dst = j, i
            occ[src] = 0
            M += 2 * (
                _occupied_around(occ, kind, z, a2, b2, c2, L)
                - _occupied_around(occ, kind, z, a, b, c, L)
            )
            pid = np.int64(ion[j])
            ion[j] = -1
            ion[i] = pid
        else:  # ion w moves from i to the empty j
            src, dst = i, j
            occ[src] = 0
            M += 2 * (
                _occupied_around(occ, kind, z, a, b, c, L)
                - _occupied_around(occ, kind, z, a2, b2, c2, L)
            )
            pid = w
        occ[dst] = 1
        kk = k ^ flip
        counts[pid, kk >> 1] += 1 - 2 * (kk & 1)
        fresh += 1
        if fresh == bank_every:
            _bank(counts, banked)
            fresh = 0
        if producing and track:
            occ_time[src] += t_next - since[src]
            since[dst] = t_next
        t = t_next
        if producing:
            events += 1
        else:
            eq += 1
            if eq == n_eq // 2:
                t_half = t
            if eq == n_eq:
                total = M * gamma
                _start(
                    horizon, n_eq, t_half, t, target, total, times, counts, banked, since, occ_time
                )
                _sample(0, counts, banked, vectors, msd, com)
                producing = True
                fresh = 0
                t = 0.0
    _finish(occ, 0, times[S], since, occ_time)
    return events


# --------------------------------------------------------------------------- sum-tree method
@numba.njit(cache=True)
def _rates(nb, vectors, energies, barrier, field, T):
    """Hop rates ``(N, z)`` of one lattice (whether the target is empty or not)."""
    N, z = nb.shape
    d = vectors.shape[1]
    tilt = np.zeros(z)
    for k in range(z):
        for a in range(d):
            tilt[k] += 0.5 * field[a] * vectors[k, a]
    rate = np.empty((N, z))
    for i in range(N):
        for k in range(z):
            de = 0.5 * (energies[nb[i, k]] - energies[i]) if energies.size else 0.0
            rate[i, k] = math.exp((tilt[k] - barrier - de) / T)
    return rate


@numba.njit(cache=True)
def _run_tree(
    nb, vectors, P, rate, x, n_eq, horizon, target, times, msd, com, occ_time, bank_every
):
    """One lattice with general hop rates ``rate (N, z)``; returns the events.

    ``tree[base + i]`` holds the total rate out of site ``i`` (0 if empty), every inner node
    the sum of its two children, ``tree[1]`` the total rate ``R``. Selection descends with
    ``r = u R``; round-off guards: a subtree of zero rate is never entered, and a remainder
    beyond the last open direction of the chosen site picks that direction.
    """
    N, z = nb.shape
    S = times.size - 1
    track = occ_time.size > 0
    occ = np.empty(N, dtype=np.int32)
    counts = np.zeros((P, z // 2), dtype=np.int32)
    banked = np.zeros((P, z // 2), dtype=np.int64)
    since = np.zeros(N if track else 0)
    base = 1
    while base < N:
        base <<= 1
    tree = np.zeros(2 * base)
    dirty = np.empty(2 * z + 1, dtype=np.int64)
    x = _place(N, P, x, occ)
    for i in range(N):
        if occ[i] >= 0:
            w = 0.0
            for k in range(z):
                if occ[nb[i, k]] < 0:
                    w += rate[i, k]
            tree[base + i] = w
    for p in range(base - 1, 0, -1):
        tree[p] = tree[2 * p] + tree[2 * p + 1]
    producing = n_eq == 0
    t = 0.0
    t_half = 0.0
    s = 1
    eq = 0
    events = 0
    fresh = 0  # events since the hop counts were last banked
    if producing:
        _start(horizon, 0, 0.0, 0.0, target, tree[1], times, counts, banked, since, occ_time)
        _sample(0, counts, banked, vectors, msd, com)
    while True:
        total = tree[1]
        x += _GOLDEN
        t_next = t - math.log(_unit_open(x)) / total
        if producing:
            while s <= S and times[s] < t_next:
                _sample(s, counts, banked, vectors, msd, com)
                s += 1
            if s > S:
                break
        x += _GOLDEN
        r = _unit(x) * total
        p = 1
        while p < base:
            p <<= 1
            if not (r < tree[p] or tree[p + 1] <= 0.0):
                r -= tree[p]
                p += 1
        i = p - base
        k = -1
        for q in range(z):
            if occ[nb[i, q]] < 0:
                k = q
                if r < rate[i, q]:
                    break
                r -= rate[i, q]
        j = nb[i, k]
        pid = occ[i]
        occ[i] = -1
        occ[j] = pid
        counts[pid, k >> 1] += 1 - 2 * (k & 1)
        fresh += 1
        if fresh == bank_every:
            _bank(counts, banked)
            fresh = 0
        if producing and track:
            occ_time[i] += t_next - since[i]
            since[j] = t_next
        # leaves to recompute: i (now empty), j, and the occupied neighbours of i and j
        nd = 1
        dirty[0] = j
        for q in range(z):
            l = nb[i, q]  # noqa: E741
            if occ[l] >= 0 and l != j:
                dirty[nd] = l
                nd += 1
            l = nb[j, q]  # noqa: E741
            if occ[l] >= 0:
                dirty[nd] = l
                nd += 1
        p = base + i
        tree[p] = 0.0
        p >>= 1
        while p >= 1:
            tree[p] = tree[2 * p] + tree[2 * p + 1]
            p >>= 1
        for a in range(nd):
            l = dirty[a]  # noqa: E741
            w = 0.0
            for q in range(z):
                if occ[nb[l, q]] < 0:
                    w += rate[l, q]
            p = base + l
            tree[p] = w
            p >>= 1
            while p >= 1:
                tree[p] = tree[2 * p] + tree[2 * p + 1]
                p >>= 1
        t = t_next
        if producing:
            events += 1
        else:
            eq += 1
            if eq == n_eq // 2:
                t_half = t
            if eq == n_eq:
                total = tree[1]
                _start(
                    horizon, n_eq, t_half, t, target, total, times, counts, banked, since, occ_time
                )
                _sample(0, counts, banked, vectors, msd, com)
                producing = True
                fresh = 0
                t = 0.0
    _finish(occ, -1, times[S], since, occ_time)
    return events


# --------------------------------------------------------------------------- batch
@numba.njit(parallel=True, cache=True)
def _run_batch(
    kind,
    nb,
    vectors,
    P,
    acceptance,
    gammas,
    temps,
    energies,
    eidx,
    barrier,
    field,
    states,
    n_eq,
    horizons,
    target,
    times,
    msd,
    com,
    occupation,
    events,
    bank_every,
):
    """Advance ``B`` independent lattices, parallel over lattices (row ``b`` of every array).

    ``kind``: the lattice's index in ``LATTICES``, ``L`` from ``nb``'s ``N = L^d``;
    ``energies (R, N)`` (or ``(1, 0)``: none) with row ``eidx[b]`` for lattice ``b``;
    ``occupation (B, N)`` or ``(B, 0)`` (not tracked).
    """
    B = states.size
    N, z = nb.shape
    d = vectors.shape[1]
    L = round(N ** (1.0 / d))
    for b in numba.prange(B):
        if acceptance:
            events[b] = _run_acceptance(
                kind,
                L,
                vectors,
                P,
                gammas[b],
                states[b],
                n_eq,
                horizons[b],
                target,
                times[b],
                msd[b],
                com[b],
                occupation[b],
                bank_every,
            )
        else:
            rate = _rates(nb, vectors, energies[eidx[b]], barrier, field, temps[b])
            events[b] = _run_tree(
                nb,
                vectors,
                P,
                rate,
                states[b],
                n_eq,
                horizons[b],
                target,
                times[b],
                msd[b],
                com[b],
                occupation[b],
                bank_every,
            )


# --------------------------------------------------------------------------- Python API
@dataclass
class HoppingRun:
    """Sampled trajectories of a batch of ``m`` conditions × ``R`` replicas.

    Attributes:
        times: ``(m, R, S+1)`` physical sample times ``t_s = s t_end/S`` (units ``1/ν``).
        tracer_msd: ``(m, R, S+1)`` mean over the ions of ``|Δr_i(t_s)|²`` (units ``a²``).
        com_displacement: ``(m, R, S+1, d)`` ``Σ_i Δr_i(t_s)`` (units ``a``).
        particles: the number of ions ``P`` per lattice.
        events: ``(m, R)`` int64 hops done in the production run.
        seconds: wall time of the kernel call (s).
        sites: ``N``, sites per lattice.
        temperature: ``(m,)`` the temperatures ``T = kT/kT_ref``.
        barrier: ``E_a`` (units ``kT_ref``).
        field: ``(d,)`` the field (units ``kT_ref/(q a)``), or None.
        site_energies: ``(R, N)`` the site energies of each replica (units ``kT_ref``), or None.
        occupation: ``(m, R, N)`` time-averaged site occupations of the production run (if
            requested), or None.
        equilibration: hops per lattice before the production run (not sampled).
        method: ``"acceptance"`` or ``"tree"``.
        lattice: the :class:`~.lattice.Lattice`.
    """

    times: np.ndarray
    tracer_msd: np.ndarray
    com_displacement: np.ndarray
    particles: int
    events: np.ndarray
    seconds: float
    sites: int = 0
    temperature: np.ndarray | None = None
    barrier: float = 1.0
    field: np.ndarray | None = None
    site_energies: np.ndarray | None = None
    occupation: np.ndarray | None = None
    equilibration: int = 0
    method: str = "acceptance"
    lattice: Lattice | None = None

    @property
    def coverage(self) -> float:
        """The actual coverage ``P/N``."""
        return self.particles / self.sites if self.sites else float("nan")


def _integer(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _real(name: str, value, low: float, strict: bool) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not (np.isfinite(x) and (x > low if strict else x >= low)):
        raise ValueError(
            f"{name} must be finite and {'>' if strict else '>='} {low}, got {value!r}"
        )
    return x


def ion_count(lattice: Lattice, coverage) -> int:
    """The number of ions ``round(c N)``, checked to lie in ``[1, N − 1]``.

    Raises:
        ValueError: ``coverage`` not a finite number in (0, 1), or too small / too large for
            the lattice size (the message names the valid range).
    """
    N = lattice.sites
    lo, hi = 0.5 / N, 1.0 - 0.5 / N
    try:
        c = float(coverage)
    except (TypeError, ValueError):
        c = float("nan")
    P = int(round(c * N)) if np.isfinite(c) else 0
    if not (0.0 < c < 1.0) or not 1 <= P <= N - 1:
        raise ValueError(
            f"coverage must give between 1 and N - 1 = {N - 1} ions (round(c N)) on the "
            f"{lattice.kind} lattice of {N} sites, i.e. c in [{lo:.6g}, {hi:.6g}), got "
            f"{coverage!r}"
        )
    return P


def mean_rate(lattice: Lattice, particles: int, temperature, barrier: float, field) -> np.ndarray:
    """Exact mean total hop rate ``⟨R⟩`` of the lattice gas without site energies, ``(m,)``.

    The uniform measure is stationary (also under a field), so an ion sees each neighbour
    empty with probability ``(N − P)/(N − 1)``:
    ``⟨R⟩ = P (N − P)/(N − 1) Σ_k exp((E·v_k/2 − E_a)/T)``.
    """
    T = np.atleast_1d(np.asarray(temperature, dtype=float))
    E = np.zeros(lattice.dim) if field is None else np.asarray(field, dtype=float)
    tilt = 0.5 * lattice.vectors @ E
    rates = np.exp((tilt[None, :] - barrier) / T[:, None]).sum(axis=1)
    N, P = lattice.sites, particles
    return P * (N - P) / (N - 1) * rates


def simulate_hopping(
    lattice: Lattice,
    coverage: float,
    temperature: ArrayLike,
    *,
    barrier: float = 1.0,
    disorder: float = 0.0,
    field: ArrayLike | None = None,
    events: int = 100_000,
    equilibration: int | None = None,
    samples: int = 64,
    replicas: int = 8,
    seed: int = 0,
    site_energies: ArrayLike | None = None,
    duration: float | None = None,
    method: str = "auto",
    occupation: bool = False,
) -> HoppingRun:
    """Kinetic Monte Carlo of ions hopping on ``m × R`` independent lattices (one numba call).

    Args:
        lattice: the periodic lattice (:func:`~fe2hmm.micro.stochastic.lattice.lattice`).
        coverage: ``c`` in (0, 1); the number of ions is ``P = round(c N)``, in ``[1, N − 1]``.
        temperature: ``T = kT/kT_ref``, scalar or ``(m,)``, finite and ``> 0``.
        barrier: bare hop barrier ``E_a >= 0`` (units ``kT_ref``).
        disorder: standard deviation ``W >= 0`` of the Gaussian site energies (units
            ``kT_ref``); replica ``r`` gets the realisation of
            ``numpy.random.default_rng((seed, 1, r))``, the same at every temperature.
        field: ``(d,)`` bias field ``E`` (units ``kT_ref/(q a)``) or None.
        events: expected hops per lattice in the production run (it lasts ``events/⟨R⟩``).
        equilibration: hops per lattice before the production run; default 0 without site
            energies (the random initial placement is already an equilibrium sample, also
            stationary under a field), else ``events // 4``.
        samples: ``S``, the number of sampling intervals (``S + 1`` samples from ``t = 0``).
        replicas: ``R`` independent lattices per temperature.
        seed: integer in ``[0, 2^64)``; lattice ``b = c R + r`` uses the stream of
            ``(seed, b)``.
        site_energies: ``(N,)`` or ``(R, N)`` site energies (units ``kT_ref``) instead of the
            Gaussian ``disorder``.
        duration: physical time of the production run (instead of ``events/⟨R⟩``).
        method: ``"acceptance"`` (uniform rates only), ``"tree"`` or ``"auto"``
            (acceptance when all rates are equal).
        occupation: also return the time-averaged occupation of every site.

    Returns:
        The :class:`HoppingRun`.

    Raises:
        ValueError: a bad value (the message names it and the valid range).
        TypeError: ``lattice`` not a :class:`~.lattice.Lattice`.
    """
    if not isinstance(lattice, Lattice):
        raise TypeError(f"lattice must be a Lattice (from lattice()), got {type(lattice).__name__}")
    N, d = lattice.sites, lattice.dim
    P = ion_count(lattice, coverage)
    T = np.asarray(temperature, dtype=float) if _is_numeric(temperature) else None
    if T is None or T.ndim > 1 or T.size == 0 or not np.all(np.isfinite(T) & (T > 0)):
        raise ValueError(
            f"temperature must be a finite number > 0 or a non-empty 1D array of them, "
            f"got {temperature!r}"
        )
    T = np.atleast_1d(T)
    barrier = _real("barrier", barrier, 0.0, strict=False)
    disorder = _real("disorder", disorder, 0.0, strict=False)
    E = None
    if field is not None:
        E = np.asarray(field, dtype=float) if _is_numeric(field) else None
        if E is None or E.shape != (d,) or not np.all(np.isfinite(E)):
            raise ValueError(
                f"field must be None or a finite ({d},) vector for the {lattice.kind} lattice, "
                f"got {field!r}"
            )
    events = _integer("events", events, 1)
    if equilibration is not None:
        equilibration = _integer("equilibration", equilibration, 0)
    samples = _integer("samples", samples, 1)
    replicas = _integer("replicas", replicas, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if duration is not None:
        duration = _real("duration", duration, 0.0, strict=True)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    energies = None
    if site_energies is not None:
        if disorder > 0:
            raise ValueError(
                f"give either disorder or site_energies, not both (disorder = {disorder!r})"
            )
        energies = np.asarray(site_energies, dtype=float) if _is_numeric(site_energies) else None
        if energies is None or energies.shape not in ((N,), (replicas, N)):
            shape = None if energies is None else energies.shape
            raise ValueError(
                f"site_energies must be ({N},) or (replicas, {N}) = ({replicas}, {N}), got "
                f"shape {shape}"
            )
        if not np.all(np.isfinite(energies)):
            raise ValueError("site_energies must be finite, got non-finite values")
        energies = np.ascontiguousarray(np.broadcast_to(energies, (replicas, N)))
    elif disorder > 0:
        energies = np.stack(
            [
                disorder * np.random.default_rng((int(seed), 1, r)).standard_normal(N)
                for r in range(replicas)
            ]
        )
    uniform = energies is None and (E is None or not np.any(E))
    if method == "acceptance" and not uniform:
        raise ValueError(
            "method='acceptance' needs equal rates for all hops (no disorder, site energies "
            "or field); use 'tree' or 'auto'"
        )
    acceptance = method == "acceptance" or (method == "auto" and uniform)
    spread = 0.0 if energies is None else 0.5 * float(np.ptp(energies, axis=1).max())
    tilt = 0.0 if E is None else 0.5 * float(np.abs(lattice.vectors @ E).max())
    worst = (barrier + spread + tilt) / float(T.min())
    if worst > _MAX_EXPONENT:
        raise ValueError(
            f"(barrier + spread of site energies/2 + field a/2)/T = {worst:.4g} must be <= "
            f"{_MAX_EXPONENT:g} (rates below exp(-{_MAX_EXPONENT:g}) underflow)"
        )
    if equilibration is None:
        equilibration = 0 if energies is None else events // 4
    m, R, S = T.size, replicas, samples
    B = m * R
    temps = np.repeat(T, R)
    if duration is not None:
        horizons = np.full(B, duration)
    elif energies is None:
        horizons = np.repeat(events / mean_rate(lattice, P, T, barrier, E), R)
    else:
        horizons = np.zeros(B)  # measured during the equilibration
    gammas = np.exp(-barrier / temps)
    nb = np.ascontiguousarray(lattice.neighbours)
    vectors = np.ascontiguousarray(lattice.vectors, dtype=float)
    table = np.zeros((1, 0)) if energies is None else energies
    eidx = np.zeros(B, dtype=np.int64) if energies is None else np.tile(np.arange(R), m)
    times = np.empty((B, S + 1))
    msd = np.empty((B, S + 1))
    com = np.empty((B, S + 1, d))
    occ = np.empty((B, N if occupation else 0))
    done = np.empty(B, dtype=np.int64)
    states = stream_states(seed, B)
    Evec = np.zeros(d) if E is None else E
    start = time.perf_counter()
    _run_batch(
        LATTICES.index(lattice.kind),
        nb,
        vectors,
        P,
        acceptance,
        gammas,
        temps,
        table,
        eidx,
        barrier,
        Evec,
        states,
        equilibration,
        horizons,
        float(events),
        times,
        msd,
        com,
        occ,
        done,
        _BANK_EVENTS,
    )
    seconds = time.perf_counter() - start
    return HoppingRun(
        times=times.reshape(m, R, S + 1),
        tracer_msd=msd.reshape(m, R, S + 1),
        com_displacement=com.reshape(m, R, S + 1, d),
        particles=P,
        events=done.reshape(m, R),
        seconds=seconds,
        sites=N,
        temperature=T,
        barrier=barrier,
        field=E,
        site_energies=energies,
        occupation=occ.reshape(m, R, N) if occupation else None,
        equilibration=equilibration,
        method="acceptance" if acceptance else "tree",
        lattice=lattice,
    )


def _is_numeric(value) -> bool:
    try:
        return np.asarray(value).dtype.kind in "iuf"
    except (TypeError, ValueError):
        return False
