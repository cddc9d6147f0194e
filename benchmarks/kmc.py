"""Benchmark: lattice kinetic Monte Carlo of ionic hopping, events per second, against peers.

The model everywhere: ions on a periodic L x L square lattice (spacing 1) at coverage c = 0.5,
hopping to empty nearest-neighbour sites with the rate ``exp(-(E_a + (e_j - e_i)/2)/T)``
(ν = 1, E_a = 1, T = 1); site energies ``e`` Gaussian of standard deviation W (W = 0: the
uniform lattice gas; W = 1: disorder).

- **single**: one 256 x 256 lattice (65 536 sites, 32 768 ions).
- **batched**: 256 lattices of 16 x 16 (the FE² workload: one small lattice per quadrature
  point), in one :func:`~fe2hmm.micro.stochastic.hopping.simulate_hopping` call.

Compared in the same run, on the same model:

- ``fe2hmm``: :func:`simulate_hopping` (numba, rejection-free BKL: the acceptance fast path for
  W = 0, the sum tree with disorder), one numba thread (per core) and, batched, all threads;
  warmed up first (compilation excluded); hops of the equilibration are counted as events.
- ``plain Python``: the same two algorithms written in plain Python in this file (acceptance for
  W = 0, sum tree for W > 0), on a small event count — the baseline.
- every peer given with ``--peer-python PATH`` (a Python that has kmos, kmcos or kMCpy):
  ``benchmarks/peer_kmc.py`` runs in that Python as a subprocess (how to install each peer and
  exactly what is timed: its docstring). Peers hold one lattice per model object, so their
  batch runs the lattices one after the other; the slow ones (kMCpy) run fewer lattices and
  events, the rate being events per second either way.

Goal (issue 14): >= 1e7 events/s per core uniform, >= 1e6 with disorder, faster than every
peer that runs.

kmos and kmcos take site disorder only as one site type per lattice site (``--peer-disorder``:
the 16 x 16 lattices, a ~17-min compilation per peer the first time; the 256² one is
unsupported).

Run: ``python benchmarks/kmc.py [--quick] [--peer-python PATH ...] [--peer-disorder]
[--threads P] [--json]``; ``--lattices`` prints instead fe2hmm's table over the square,
triangular and cubic lattices (uniform, disorder, field; ``{"lattices": [...]}`` with --json);
with ``--json`` the last line is ``{"single": {...}, "batched": {...}, "threads": P, ...}``
with events/s entries ``fe2hmm_uniform``, ``fe2hmm_disorder`` (one thread),
``fe2hmm_uniform_threads``, ``fe2hmm_disorder_threads`` (P threads), ``plain_uniform``,
``plain_disorder`` and ``<peer>_uniform``, ``<peer>_disorder`` (``null`` where unsupported).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
COVERAGE, TEMPERATURE, BARRIER, DISORDER = 0.5, 1.0, 1.0, 1.0


# ------------------------------------------------------------------ plain Python baseline
def _square_neighbours(L: int) -> list[list[int]]:
    """Neighbour table of the periodic L x L square lattice, site = x + L y (+x, -x, +y, -y)."""
    return [
        [(x + 1) % L + L * y, (x - 1) % L + L * y, x + L * ((y + 1) % L), x + L * ((y - 1) % L)]
        for y in range(L)
        for x in range(L)
    ]


def plain_uniform(L: int, events: int, seed: int) -> tuple[float, float]:
    """Plain-Python BKL of the uniform lattice gas (the engine's acceptance method).

    Returns the wall seconds of ``events`` hops and the simulated time.

    ``M`` (bonds with one end occupied: the possible hops) is kept by counting the occupied
    neighbours of the two sites of each hop; the time advances by ``-ln(u)/(M Γ)`` and the hop
    is a uniform (ion, direction) pair drawn again until its target is empty (c = 0.5: the
    ions are the walkers).
    """
    N = L * L
    nb = _square_neighbours(L)
    rnd = random.Random(seed)
    occ = [False] * N
    ions = rnd.sample(range(N), round(COVERAGE * N))
    for i in ions:
        occ[i] = True
    gamma = math.exp(-BARRIER / TEMPERATURE)
    M = sum(not occ[n] for i in ions for n in nb[i])
    P = len(ions)
    t = 0.0
    t0 = time.perf_counter()
    for _ in range(events):
        t -= math.log(1.0 - rnd.random()) / (M * gamma)
        while True:
            p = int(rnd.random() * P)
            i = ions[p]
            j = nb[i][int(rnd.random() * 4)]
            if not occ[j]:
                break
        occ[i] = False
        M += 2 * (sum(occ[n] for n in nb[i]) - sum(occ[n] for n in nb[j]))
        occ[j] = True
        ions[p] = j
    return time.perf_counter() - t0, t


def plain_disorder(L: int, events: int, seed: int, W: float) -> tuple[float, float]:
    """Plain-Python BKL with site energies (sum tree over the sites): seconds, simulated time."""
    N = L * L
    nb = _square_neighbours(L)
    rnd = random.Random(seed)
    occ = [False] * N
    for i in rnd.sample(range(N), round(COVERAGE * N)):
        occ[i] = True
    eps = [rnd.gauss(0.0, W) for _ in range(N)]
    rate = [
        [math.exp(-(BARRIER + 0.5 * (eps[j] - eps[i])) / TEMPERATURE) for j in nb[i]]
        for i in range(N)
    ]
    base = 1
    while base < N:
        base *= 2
    tree = [0.0] * (2 * base)

    def leaf(i):
        w = 0.0
        if occ[i]:
            r = rate[i]
            for k, j in enumerate(nb[i]):
                if not occ[j]:
                    w += r[k]
        p = base + i
        tree[p] = w
        p >>= 1
        while p:
            tree[p] = tree[2 * p] + tree[2 * p + 1]
            p >>= 1

    for i in range(N):
        leaf(i)
    t = 0.0
    t0 = time.perf_counter()
    for _ in range(events):
        total = tree[1]
        t -= math.log(1.0 - rnd.random()) / total
        u = rnd.random() * total
        p = 1
        while p < base:
            p *= 2
            if u >= tree[p]:
                u -= tree[p]
                p += 1
        i = p - base
        j = nb[i][-1]
        for k, n in enumerate(nb[i]):
            if not occ[n]:
                j = n
                u -= rate[i][k]
                if u < 0.0:
                    break
        occ[i], occ[j] = False, True
        touched = {i, j, *nb[i], *nb[j]}
        for s in touched:
            leaf(s)
    return time.perf_counter() - t0, t


def expected_time(L: int, events: int) -> float:
    """Mean simulated time of ``events`` hops of the uniform gas: ``events / ⟨R⟩``, with
    ``⟨R⟩ = z Γ P (N − P)/(N − 1)`` exactly (the uniform measure is stationary)."""
    N = L * L
    P = round(COVERAGE * N)
    return events / (4 * math.exp(-BARRIER / TEMPERATURE) * P * (N - P) / (N - 1))


# ------------------------------------------------------------------------------- fe2hmm
def fe2hmm_rate(L: int, lattices: int, W: float, events: int, threads: int, repeat: int):
    """Hops per second of one :func:`simulate_hopping` call (best of ``repeat``, warmed up)."""
    import numba

    from fe2hmm.micro.stochastic.hopping import simulate_hopping
    from fe2hmm.micro.stochastic.lattice import lattice

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    lat = lattice("square", L)
    kwargs = dict(barrier=BARRIER, disorder=W, replicas=lattices, samples=4)
    eq = events // 10 if W > 0 else 0
    simulate_hopping(lat, COVERAGE, [TEMPERATURE], events=1000, equilibration=100, **kwargs)
    best = 0.0
    for r in range(repeat):
        run = simulate_hopping(
            lat, COVERAGE, [TEMPERATURE], events=events, equilibration=eq, seed=r, **kwargs
        )
        hops = int(run.events.sum()) + run.equilibration * lattices
        best = max(best, hops / run.seconds)
    return best, run.method


LATTICE_TABLE = {  # kind: (L of one lattice, L of the 256 small ones)
    "square": (256, 16),
    "triangular": (256, 16),
    "cubic": (40, 6),
}


def lattice_table(threads: int, repeat: int, quick: bool) -> list[dict]:
    """fe2hmm alone on the three lattices: uniform, W = 1 and a field 0.1 along x.

    One large lattice on one thread, 256 small ones on one thread and on ``threads``; events
    per second of the kernel (``HoppingRun.seconds``, equilibration hops counted), best of
    ``repeat``, ``samples=64`` (the engine's default).
    """
    import numba

    from fe2hmm.micro.stochastic.hopping import simulate_hopping
    from fe2hmm.micro.stochastic.lattice import lattice

    rates = {"uniform": {}, "W = 1": {"disorder": 1.0}, "field 0.1": {"field": "x"}}
    rows = []
    for kind, (big, small) in LATTICE_TABLE.items():
        for label, extra in rates.items():
            row = {"lattice": kind, "rates": label}
            for column, L, B, n, p in (
                ("one", big, 1, 200_000 if quick else 4_000_000, 1),
                ("batched_1", small, 256, 2_000 if quick else 100_000, 1),
                (f"batched_{threads}", small, 256, 2_000 if quick else 100_000, threads),
            ):
                lat = lattice(kind, L)
                kw = dict(extra)
                if kw.get("field") == "x":
                    kw["field"] = np.r_[0.1, np.zeros(lat.dim - 1)]
                numba.set_num_threads(min(p, numba.config.NUMBA_NUM_THREADS))
                simulate_hopping(lat, COVERAGE, 1.0, events=500, replicas=B, **kw)  # warm-up
                best = 0.0
                for r in range(repeat):
                    run = simulate_hopping(lat, COVERAGE, 1.0, events=n, replicas=B, seed=r, **kw)
                    hops = int(run.events.sum()) + run.equilibration * B
                    best = max(best, hops / run.seconds)
                row[column] = best
                row["method"] = run.method
            rows.append(row)
    print(f"events/s, c = {COVERAGE}, T = 1, E_a = 1 (best of {repeat}); one = 1 lattice of "
          f"{', '.join(f'{k} {v[0]}' for k, v in LATTICE_TABLE.items())}; batched = 256 of "
          f"{', '.join(f'{k} {v[1]}' for k, v in LATTICE_TABLE.items())} (per axis)")  # fmt: skip
    print(f"{'lattice':>10} {'rates':>9} {'method':>10} {'one, 1 thr':>11} {'256, 1 thr':>11} "
          f"{f'256, {threads} thr':>11}")  # fmt: skip
    for row in rows:
        print(f"{row['lattice']:>10} {row['rates']:>9} {row['method']:>10} {row['one']:11.3e} "
              f"{row['batched_1']:11.3e} {row[f'batched_{threads}']:11.3e}")  # fmt: skip
    return rows


# --------------------------------------------------------------------------------- peers
PEER_BUDGET = {  # (hops per lattice, lattices) per case and rates; kMCpy is ~1e3x slower
    "kmcpy": {"single": (200, 1), "batched": (2000, 8)},
    "kmos": {"single": (2_000_000, 1), "batched": (20_000, 256), "batched_disorder": (50_000, 4)},
    "kmcos": {"single": (2_000_000, 1), "batched": (20_000, 256), "batched_disorder": (50_000, 4)},
}  # kmos/kmcos with disorder (--peer-disorder): ~45 s set-up per lattice, so only 4 lattices


def run_peer(
    python: str, peer: str, L: int, lattices: int, events: int, W: float, cell: bool
) -> dict:
    cmd = [
        python, str(HERE / "peer_kmc.py"), "--peer", peer, "--size", str(L), "--lattices",
        str(lattices), "--events", str(events), "--coverage", str(COVERAGE), "--temperature",
        str(TEMPERATURE), "--barrier", str(BARRIER), "--disorder", str(W), "--json",
    ] + (["--disorder-cell"] if cell else [])  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def detect_peers(python: str) -> list[str]:
    """The peers importable in ``python`` (a venv may hold several)."""
    code = "import importlib.util as u; print(*[n for n in NAMES if u.find_spec(n)])"
    code = code.replace("NAMES", repr(tuple(PEER_BUDGET)))
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    found = out.stdout.split()
    if not found:
        raise SystemExit(f"kmc.py: --peer-python {python} has none of {', '.join(PEER_BUDGET)}")
    return found


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="lattice KMC events/s: fe2hmm vs peers")
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI smoke test)")
    parser.add_argument("--peer-python", action="append", default=[], metavar="PATH",
                        help="a Python with kmos, kmcos or kmcpy (repeatable)")  # fmt: skip
    parser.add_argument(
        "--peer-disorder",
        action="store_true",
        help="kmos/kmcos with disorder on the 16 x 16 lattices: one site type per site (the first "
        "build compiles for ~17 min; set-up ~45 s per lattice)",
    )
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    parser.add_argument("--repeat", type=int, default=2, help="fe2hmm runs, best taken")
    parser.add_argument(
        "--lattices",
        action="store_true",
        help="instead: fe2hmm alone on the square, triangular and cubic lattices (uniform, "
        "disorder, field; one large lattice and 256 small ones)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    threads = args.threads or os.cpu_count() or 1
    q = args.quick
    if args.lattices:
        rows = lattice_table(threads, 1 if q else args.repeat + 1, q)
        if args.json:
            print(json.dumps({"lattices": rows, "threads": threads}))
        return {"lattices": rows}
    cases = {  # name: (L, lattices, fe2hmm hops per lattice uniform, with disorder)
        "single": (64 if q else 256, 1, 200_000 if q else 10_000_000, 100_000 if q else 4_000_000),
        "batched": (16, 16 if q else 256, 5_000 if q else 40_000, 2_000 if q else 20_000),
    }
    plain_events = 20_000 if q else 200_000
    peers = [(peer, p) for p in args.peer_python for peer in detect_peers(p)]
    results: dict = {"threads": threads, "coverage": COVERAGE, "temperature": TEMPERATURE,
                     "barrier": BARRIER, "disorder": DISORDER, "quick": q}  # fmt: skip
    rows = []
    for name, (L, B, n_uniform, n_disorder) in cases.items():
        entry: dict = {"size": L, "lattices": B}
        for label, W, n in (("uniform", 0.0, n_uniform), ("disorder", DISORDER, n_disorder)):
            rate, method = fe2hmm_rate(L, B, W, n, 1, 1 if q else args.repeat)
            entry[f"fe2hmm_{label}"] = rate
            rows.append((name, label, f"fe2hmm ({method}, 1 thread)", B * n, rate))
            if threads > 1 and B > 1:
                rate_p, _ = fe2hmm_rate(L, B, W, n, threads, 1 if q else args.repeat)
                entry[f"fe2hmm_{label}_threads"] = rate_p
                rows.append((name, label, f"fe2hmm ({method}, {threads} threads)", B * n, rate_p))
            m = min(plain_events, n)
            sec, t = plain_uniform(L, m, 1) if W == 0 else plain_disorder(L, m, 1, W)
            if W == 0 and abs(t / expected_time(L, m) - 1) > 0.1:  # the baseline's own check
                raise RuntimeError(f"plain Python loop: simulated time {t} is off")
            entry[f"plain_{label}"] = m / sec
            rows.append((name, label, "plain Python", m, m / sec))
            for peer, python in peers:
                budget = PEER_BUDGET[peer]
                n_peer, b_peer = budget.get(f"{name}_{label}", budget[name])
                if q:
                    n_peer, b_peer = max(n_peer // 20, 100), min(b_peer, 4)
                b_peer = min(b_peer, B)
                rep = run_peer(python, peer, L, b_peer, n_peer, W, args.peer_disorder)
                entry[f"{peer}_{label}"] = rep["events_per_second"]
                entry[f"{peer}_version"] = rep["version"]
                rows.append((name, label, f"{peer} {rep['version']}", rep["events"],
                             rep["events_per_second"]))  # fmt: skip
        results[name] = entry
    print(f"events/s, square lattice, c = {COVERAGE}, T = {TEMPERATURE}, E_a = {BARRIER}, "
          f"disorder W = {DISORDER}; single = 1 x {cases['single'][0]}^2, batched = "
          f"{cases['batched'][1]} x {cases['batched'][0]}^2")  # fmt: skip
    print(f"{'case':>8} {'rates':>9} {'code':<28} {'events':>10} {'events/s':>10} "
          f"{'fe2hmm x':>9}   (fe2hmm x = fe2hmm 1 thread / row)")  # fmt: skip
    for name, label, code, n, rate in rows:
        ours = results[name][f"fe2hmm_{label}"]
        ratio = f"{ours / rate:9.1f}" if rate and not code.startswith("fe2hmm") else f"{'-':>9}"
        shown = f"{rate:10.3e}" if rate else f"{'n/a':>10}"
        count = f"{n:>10d}" if rate else f"{'-':>10}"
        print(f"{name:>8} {label:>9} {code:<28} {count} {shown} {ratio}")
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
