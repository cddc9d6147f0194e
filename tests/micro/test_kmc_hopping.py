"""The lattice KMC engine (fe2hmm.micro.stochastic.hopping): plain-Python reference loops of the
same physics reproduce its trajectories (both methods) bitwise from the same random stream;
reproducible seeds;
the event rate and the stationary occupations against exact results; one-line input errors."""

import math

import numba
import numpy as np
import pytest

from fe2hmm.micro.stochastic.hopping import mean_rate, simulate_hopping, stream_states
from fe2hmm.micro.stochastic.lattice import lattice

_G = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class _Stream:
    """SplitMix64 (Steele, Lea & Flood 2014) in plain Python: x += G, output mix(x)."""

    def __init__(self, state):
        self.x = int(state)

    def bits(self):
        self.x = (self.x + _G) & _MASK
        return _mix(self.x) >> 11

    def unit(self):  # [0, 1)
        return self.bits() * 2.0**-53

    def unit_open(self):  # (0, 1]
        return (self.bits() + 1) * 2.0**-53

    def word(self):  # the whole 64-bit output
        self.x = (self.x + _G) & _MASK
        return _mix(self.x)


def _placement(rng, N, P):
    """The engine's initial placement: a partial Fisher–Yates shuffle; (perm, site -> ion)."""
    perm = list(range(N))
    occ = [-1] * N
    for p in range(P):
        q = p + int(rng.unit() * (N - p))
        perm[p], perm[q] = perm[q], perm[p]
        occ[perm[p]] = p
    return perm, occ


def _sample_until(t_next, s, times, disp, msd, com):
    """Record the samples due before ``t_next`` from the displacements; the next sample."""
    while s < times.size and times[s] < t_next:
        msd[s] = np.mean(np.sum(disp**2, axis=1))
        com[s] = disp.sum(axis=0)
        s += 1
    return s


def _stay(occ, occupied_time, dt):
    """Add ``dt`` to the occupied time of every occupied site."""
    for i, ion in enumerate(occ):
        if ion >= 0:
            occupied_time[i] += dt


def reference_run(lat, P, T, barrier, energies, field, duration, samples, state):
    """Rejection-free KMC written from the model, one event at a time (no data structures).

    Each event: the rates of all possible hops (ion on i, empty neighbour j, in the order site,
    direction), the waiting time -ln(u)/R, then the hop whose cumulative-rate interval holds
    u' R. Displacements accumulate the hop vectors (unwrapped). Sampled at s duration/S.
    """
    N, z, d = lat.sites, lat.coordination, lat.dim
    rng = _Stream(state)
    perm, occ = _placement(rng, N, P)
    disp = np.zeros((P, d))
    E = np.zeros(d) if field is None else np.asarray(field, float)
    eps = np.zeros(N) if energies is None else energies

    def rate(i, k):
        j = lat.neighbours[i, k]
        exponent = -(barrier + 0.5 * (eps[j] - eps[i])) + 0.5 * float(E @ lat.vectors[k])
        return math.exp(exponent / T)

    times = duration * np.arange(samples + 1) / samples
    msd, com = np.zeros(samples + 1), np.zeros((samples + 1, d))
    occupied_time = np.zeros(N)
    t, s, events = 0.0, 1, 0
    while True:
        moves = [
            (i, k)
            for i in range(N)
            if occ[i] >= 0
            for k in range(z)
            if occ[lat.neighbours[i, k]] < 0
        ]
        rates = np.array([rate(i, k) for i, k in moves])
        total = rates.sum()
        t_next = t - math.log(rng.unit_open()) / total
        s = _sample_until(t_next, s, times, disp, msd, com)
        if s > samples:
            break
        _stay(occ, occupied_time, t_next - t)
        r = rng.unit() * total
        chosen = int(np.searchsorted(np.cumsum(rates), r, side="right"))
        i, k = moves[min(chosen, len(moves) - 1)]
        j = lat.neighbours[i, k]
        disp[occ[i]] += lat.vectors[k]
        occ[j], occ[i] = occ[i], -1
        t = t_next
        events += 1
    _stay(occ, occupied_time, duration - t)
    return times, msd, com, events, occupied_time / duration


def reference_acceptance(lat, P, gamma, duration, samples, state):
    """The uniform lattice gas as the acceptance method defines it, from the lattice's neighbour
    table and a brute-force count of the possible hops at every event (no bookkeeping).

    Walkers: the ions (numbered by placement), or the vacancies in site order if 2P > N. Each
    event: the waiting time -ln(u)/(M Γ), then 64-bit words until the pair (walker = high 32
    bits × W >> 32, direction = low 32 bits × z >> 32, a word rejected when either product's
    low 32 bits fall below 2^32 mod W or 2^32 mod z) is a possible hop.
    """
    N, z = lat.sites, lat.coordination
    rng = _Stream(state)
    perm, occ = _placement(rng, N, P)
    vacancies = 2 * P > N
    walkers = [i for i in range(N) if occ[i] < 0] if vacancies else [perm[p] for p in range(P)]
    W = len(walkers)
    disp = np.zeros((P, lat.dim))
    times = duration * np.arange(samples + 1) / samples
    msd, com = np.zeros(samples + 1), np.zeros((samples + 1, lat.dim))
    occupied_time = np.zeros(N)
    t, s, events = 0.0, 1, 0
    while True:
        M = sum(occ[i] >= 0 and occ[lat.neighbours[i, k]] < 0 for i in range(N) for k in range(z))
        t_next = t - math.log(rng.unit_open()) / (M * gamma)
        s = _sample_until(t_next, s, times, disp, msd, com)
        if s > samples:
            break
        _stay(occ, occupied_time, t_next - t)
        while True:
            r = rng.word()
            mw, mk = (r >> 32) * W, (r & 0xFFFFFFFF) * z
            if mw % 2**32 < 2**32 % W or mk % 2**32 < 2**32 % z:  # Lemire's rejection
                continue
            w, k = mw >> 32, mk >> 32
            i = walkers[w]
            j = int(lat.neighbours[i, k])
            if (occ[j] >= 0) == vacancies:
                break
        src, dst, direction = (j, i, k ^ 1) if vacancies else (i, j, k)
        disp[occ[src]] += lat.vectors[direction]
        occ[dst], occ[src] = occ[src], -1
        walkers[w] = j
        t = t_next
        events += 1
    _stay(occ, occupied_time, duration - t)
    return times, msd, com, events, occupied_time / duration


def _assert_equals_reference(run, r, reference):
    """Lattice r of ``run`` against a reference loop: the same events (so the same hops),
    sample times to 1e-14, MSD, centre of mass and occupations to round-off."""
    times, msd, com, events, occ = reference
    assert events > 100
    assert run.events[0, r] == events
    assert np.allclose(run.times[0, r], times, rtol=1e-14, atol=0)
    assert np.allclose(run.tracer_msd[0, r], msd, rtol=1e-12, atol=1e-12)
    assert np.allclose(run.com_displacement[0, r], com, rtol=1e-12, atol=1e-12)
    assert np.allclose(run.occupation[0, r], occ, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "kind,size,coverage",
    [("square", 4, 0.4), ("square", 5, 0.72), ("triangular", 3, 0.5), ("cubic", 3, 0.7)],
)
def test_acceptance_path_reproduces_its_python_reference_bitwise(kind, size, coverage):
    """Uniform rates, ion walkers (c <= 1/2) and vacancy walkers (c > 1/2): the same events,
    samples and occupations as the reference, which recounts the possible hops at every event
    (so the engine's running count M, its computed neighbours and its walker bookkeeping are
    checked event by event)."""
    lat = lattice(kind, size)
    gamma, duration, S, R = math.exp(-0.5), 40.0, 8, 2
    run = simulate_hopping(
        lat,
        coverage,
        [1.0],
        barrier=0.5,
        duration=duration,
        samples=S,
        replicas=R,
        seed=11,
        occupation=True,
    )
    assert run.method == "acceptance"
    states = stream_states(11, R)
    for r in range(R):
        reference = reference_acceptance(lat, run.particles, gamma, duration, S, states[r])
        _assert_equals_reference(run, r, reference)


def test_banking_the_int32_hop_counts_changes_nothing(monkeypatch):
    """The hop counts are int32, moved into an int64 bank every 2^30 events; banking every 7
    events gives bitwise the same samples (both methods)."""
    from fe2hmm.micro.stochastic import hopping

    lat = lattice("square", 6)
    for kw in (dict(), dict(disorder=1.0)):
        a = simulate_hopping(lat, 0.4, 1.0, events=3000, samples=5, replicas=2, seed=2, **kw)
        monkeypatch.setattr(hopping, "_BANK_EVENTS", 7)
        b = simulate_hopping(lat, 0.4, 1.0, events=3000, samples=5, replicas=2, seed=2, **kw)
        monkeypatch.undo()
        assert np.array_equal(a.tracer_msd, b.tracer_msd) and np.array_equal(a.events, b.events)
        assert np.array_equal(a.com_displacement, b.com_displacement)
        assert a.tracer_msd[0, 0, -1] > 0


@pytest.mark.parametrize(
    "kind,size,coverage", [("square", 4, 0.4), ("triangular", 3, 0.5), ("cubic", 3, 0.3)]
)
def test_engine_reproduces_the_python_reference_bitwise(kind, size, coverage):
    """Disorder (W = 1) and a field, sum-tree path: the same events, sample times, MSD,
    centre-of-mass displacements and occupations as the reference from the same stream (to
    round-off of the rate sums; the hop choices are identical)."""
    lat = lattice(kind, size)
    field = np.full(lat.dim, 0.3)
    T, duration, S, R = 0.8, 120.0, 16, 3
    run = simulate_hopping(
        lat,
        coverage,
        [T],
        disorder=1.0,
        field=field,
        duration=duration,
        equilibration=0,
        samples=S,
        replicas=R,
        seed=9,
        occupation=True,
    )
    assert run.method == "tree"
    states = stream_states(9, R)
    for r in range(R):
        reference = reference_run(
            lat, run.particles, T, 1.0, run.site_energies[r], field, duration, S, states[r]
        )
        _assert_equals_reference(run, r, reference)


def test_acceptance_path_matches_the_tree_path_statistically():
    """The acceptance fast path (uniform rates) against the sum tree (which equals the reference):
    the same mean event rate, final tracer MSD and centre-of-mass variance within 4 combined
    standard errors (256 independent lattices each)."""
    lat = lattice("triangular", 6)
    kw = dict(events=4000, samples=4, replicas=256, barrier=0.5)
    a = simulate_hopping(lat, 0.5, 1.0, method="acceptance", seed=1, **kw)
    b = simulate_hopping(lat, 0.5, 1.0, method="tree", seed=2, **kw)
    assert (a.method, b.method) == ("acceptance", "tree")
    for q in (
        lambda run: run.events[0] / run.times[0, :, -1],
        lambda run: run.tracer_msd[0, :, -1],
        lambda run: np.sum(run.com_displacement[0, :, -1] ** 2, axis=-1),
    ):
        x, y = q(a), q(b)
        se = np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        assert abs(x.mean() - y.mean()) < 4 * se


def test_same_seed_same_run_whatever_the_threads_and_the_batch():
    """Bitwise equal runs for the same seed with 1 or 2 numba threads; lattice b depends only on
    (seed, b): the first condition of a two-temperature batch equals a one-temperature run;
    another seed gives another run."""
    lat = lattice("square", 8)
    kw = dict(events=5000, samples=8, replicas=4, disorder=0.5)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = simulate_hopping(lat, 0.3, [1.0, 2.0], seed=5, **kw)
    finally:
        numba.set_num_threads(threads)
    b = simulate_hopping(lat, 0.3, [1.0, 2.0], seed=5, **kw)
    c = simulate_hopping(lat, 0.3, 1.0, seed=5, **kw)
    d = simulate_hopping(lat, 0.3, [1.0, 2.0], seed=6, **kw)
    for name in ("times", "tracer_msd", "com_displacement", "events", "site_energies"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.tracer_msd[:1], c.tracer_msd) and np.array_equal(a.events[:1], c.events)
    assert not np.array_equal(a.tracer_msd, d.tracer_msd)
    assert not np.array_equal(a.site_energies, d.site_energies)
    assert not np.array_equal(a.tracer_msd[0, 0], a.tracer_msd[0, 1])  # replicas differ


@pytest.mark.parametrize("kind,size", [("square", 12), ("triangular", 10), ("cubic", 5)])
def test_event_rate_is_the_exact_mean_rate_of_the_lattice_gas(kind, size):
    """Without disorder the uniform measure is stationary (also under a field), so the events
    per unit time average to ⟨R⟩ = P (N−P)/(N−1) Σ_k Γ_k exactly: z-scores of 64 replicas
    below 4 (an event-count error of one hop in 10^4 would show)."""
    lat = lattice(kind, size)
    field = np.r_[0.4, np.zeros(lat.dim - 1)]
    for E in (None, field):
        run = simulate_hopping(
            lat, 0.6, 1.3, barrier=0.7, field=E, events=20000, replicas=64, samples=2, seed=3
        )
        rate = run.events[0] / run.times[0, :, -1]
        exact = mean_rate(lat, run.particles, 1.3, 0.7, E)[0]
        z = (rate.mean() - exact) / (rate.std(ddof=1) / np.sqrt(rate.size))
        assert abs(z) < 4, (E, rate.mean(), exact)
        assert abs(run.events.mean() / 20000 - 1) < 0.01  # the production run lasts events/⟨R⟩


def _canonical_occupations(energies, P, T):
    """Exact ⟨n_i⟩ of P exclusive particles on sites with energies ε_i (canonical ensemble):
    x_i e_{P−1}(x without i)/e_P(x), x_i = exp(−ε_i/T), e_k the elementary symmetric sums."""
    x = np.exp(-(energies - energies.min()) / T)

    def esp(values):
        e = np.zeros(P + 1)
        e[0] = 1.0
        for v in values:
            e[1:] = e[1:] + v * e[:-1]
        return e

    total = esp(x)[P]
    return np.array([x[i] * esp(np.delete(x, i))[P - 1] / total for i in range(x.size)])


def test_stationary_occupations_are_the_canonical_equilibrium():
    """Detailed balance with disorder: time-averaged site occupations after equilibration equal
    the exact canonical (Fermi–Dirac-like) occupations of the same site energies. 32 replicas
    share one landscape (W = 1.5, T = 1, 16 sites, 6 ions): per-site z-scores below 4.5 and
    mean z² below 2.5 (χ² with 16 terms would exceed that with probability 1e-3)."""
    lat = lattice("square", 4)
    eps = 1.5 * np.random.default_rng(4).standard_normal(lat.sites)
    run = simulate_hopping(
        lat,
        6 / 16,
        1.0,
        site_energies=eps,
        events=40000,
        equilibration=4000,
        replicas=32,
        samples=2,
        seed=8,
        occupation=True,
    )
    occ = run.occupation[0]
    assert np.allclose(occ.sum(axis=1), 6.0)
    exact = _canonical_occupations(eps, 6, 1.0)
    z = (occ.mean(axis=0) - exact) / (occ.std(axis=0, ddof=1) / np.sqrt(occ.shape[0]))
    assert np.abs(z).max() < 4.5 and np.mean(z**2) < 2.5, z
    assert exact.max() - exact.min() > 0.5  # the landscape matters


def test_equilibration_and_measured_horizon_with_disorder():
    """With disorder the production time is events/(rate measured in the second half of the
    equilibration): about `events` hops are done; sample times are equally spaced from 0."""
    lat = lattice("cubic", 4)
    run = simulate_hopping(lat, 0.5, 1.0, disorder=1.0, events=20000, replicas=8, samples=10)
    assert run.equilibration == 5000
    assert np.allclose(np.diff(run.times, axis=-1), run.times[..., 1:2])
    assert np.all(run.times[..., 0] == 0) and np.all(run.tracer_msd[..., 0] == 0)
    assert abs(run.events.mean() / 20000 - 1) < 0.05


def test_bad_input_gives_one_line_errors():
    lat = lattice("square", 4)
    cases = [
        (dict(coverage=0.01), "coverage must give between 1 and N - 1 = 15 ions"),
        (dict(coverage=0.99), r"c in \[0.03125, 0.96875\)"),
        (dict(coverage=float("nan")), "coverage"),
        (dict(temperature=0.0), "temperature must be a finite number > 0"),
        (dict(temperature=[1.0, np.inf]), "temperature"),
        (dict(temperature=[[1.0]]), "1D array"),
        (dict(barrier=-1.0), "barrier must be finite and >= 0"),
        (dict(disorder=np.nan), "disorder must be finite"),
        (dict(field=[1.0]), r"field must be None or a finite \(2,\) vector"),
        (dict(events=0), "events must be an integer >= 1"),
        (dict(events=10.5), "events must be an integer"),
        (dict(equilibration=-1), "equilibration must be an integer >= 0"),
        (dict(samples=0), "samples must be an integer >= 1"),
        (dict(replicas=True), "replicas must be an integer"),
        (dict(seed=-1), r"seed must be an integer in \[0, 2\*\*64\)"),
        (dict(duration=0.0), "duration must be finite and > 0"),
        (dict(method="fast"), "method must be one of"),
        (dict(method="acceptance", disorder=1.0), "method='acceptance' needs equal rates"),
        (dict(site_energies=np.zeros(5)), r"site_energies must be \(16,\)"),
        (dict(site_energies=np.zeros(16), disorder=1.0), "either disorder or site_energies"),
        (dict(barrier=100.0, temperature=0.1), "underflow"),
    ]
    for kwargs, message in cases:
        args = {"coverage": 0.5, "temperature": 1.0, **kwargs}
        with pytest.raises(ValueError, match=message) as info:
            simulate_hopping(lat, args.pop("coverage"), args.pop("temperature"), **args)
        assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="lattice must be a Lattice"):
        simulate_hopping("square", 0.5, 1.0)
