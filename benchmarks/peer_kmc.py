"""Peers for benchmarks/kmc.py: the same lattice-gas hopping model in kmos, kmcos and kMCpy.

Standalone on purpose (no fe2hmm import): run it with the Python of a venv that has ONE peer.

The model, identical in every code: a periodic L x L square lattice (spacing 1), ``round(c N)``
ions placed at random on the ``N = L²`` sites, each hopping to an empty nearest-neighbour site
with the rate ``exp(-(E_a + (e_j - e_i)/2)/T)`` (ν = 1; site energies ``e`` Gaussian of standard
deviation ``W``, all zero for ``W = 0``). Each code runs ``--events`` hops on each of
``--lattices`` independent lattices one after the other (these codes hold one lattice per
model object), after a warm-up of ``min(events, 10000)`` hops on the first lattice; only the
hopping loops are timed (set-up, code generation and compilation excluded and reported apart).

- **kmos** (PyPI ``python-kmos`` 0.5.1; Fortran code generated from the model, built by f2py
  with meson; needs ``gfortran``, and ``meson`` on ``PATH``, i.e. the venv's ``bin``)::

      python3.12 -m venv /tmp/venv_kmos && /tmp/venv_kmos/bin/pip install python-kmos
      apt-get install gfortran

  The ``local_smart`` backend (the default); one site per unit cell, four hop processes, one
  rate constant. kmos rate constants are per process type, so site-energy disorder needs one
  site type per lattice site: with ``--disorder-cell`` (and ``L <= 16``) the unit cell is the
  whole ``L x L`` lattice, ``4 L²`` processes with the rate expressions
  ``exp(-(Ea + (e{x}_{y} - e{x'}_{y'})/2)/T)`` of ``L²`` energy parameters, set per lattice
  (the same energies as the kMCpy peer; L = 16 compiles for ~17 min once, then each lattice
  takes ~45 s of set-up in kmos, ~1.5 s in kmcos); otherwise ``--disorder W > 0`` is reported
  as unsupported. Built models are cached in ``$TMPDIR/fe2hmm_peer_kmc/``.
- **kmcos** (PyPI ``kmcos`` 1.1.0, a kmos fork of 2022; same model code): its build calls
  ``numpy.f2py.compile`` and ``numpy.distutils`` (gone in NumPy 2 and Python 3.12), and NumPy
  1.26's f2py generates wrappers gfortran rejects, so only Python 3.11 + NumPy 1.23 builds it::

      python3.11 -m venv /tmp/venv_kmcos && /tmp/venv_kmcos/bin/pip install "kmcos[minimal]" \
          "numpy==1.23.5" "scipy<1.12"

- **kMCpy** (PyPI ``kmcpy`` 0.3.0, pure Python + numba): events are the ``2N`` nearest-neighbour
  bonds (``Event((i, j), ())``, a hop swaps the two occupations); the rate is a user
  ``BaseModel.compute_probability`` (zero unless exactly one end is occupied), so disorder is
  supported. kMCpy's own dependency search is O(events²); the equal result (events sharing a
  site) is set from its ``site_to_events`` map. Timed: kMCpy's own event loop
  ``KMC.propose`` + ``KMC.update`` (what ``KMC.run`` does per event, without its Tracker)::

      python3.12 -m venv /tmp/venv_kmcpy && /tmp/venv_kmcpy/bin/pip install kmcpy

Run: ``PYTHON benchmarks/peer_kmc.py [--peer auto|kmos|kmcos|kmcpy] [--size L] [--lattices B]
[--events N] [--coverage C] [--temperature T] [--barrier EA] [--disorder W] [--disorder-cell]
[--json]``; the last
line with ``--json`` is ``{"peer", "version", "supported", "events", "seconds",
"events_per_second", "setup_seconds", "build_seconds", ...}``.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DISTRIBUTIONS = {"kmos": "python-kmos", "kmcos": "kmcos", "kmcpy": "kmcpy"}
MAX_DISORDER_CELL = 16  # kmos/kmcos with disorder: one site type per site, 4 L² processes


def detect_peer() -> str:
    """The first peer importable in this Python."""
    for name in ("kmcpy", "kmos", "kmcos"):
        if importlib.util.find_spec(name) is not None:
            return name
    raise SystemExit("peer_kmc.py: none of kmos, kmcos, kmcpy is importable in this Python")


def initial_occupation(L: int, coverage: float, seed: int) -> np.ndarray:
    """Random placement of ``round(c N)`` ions (bool per site, site = x + L y)."""
    N = L * L
    rng = np.random.default_rng(seed)
    return rng.permutation(N) < int(round(coverage * N))


@contextlib.contextmanager
def _quiet(log=None):
    """Silence the peers' set-up prints; with ``log``, also the compilers' (file descriptor 1)."""
    if log is None:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    with open(log, "w") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            with contextlib.redirect_stdout(sink):
                yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _kmos_project(peer: str, L: int | None, rate: float):
    """The kmos Project: one site per unit cell and rate ``rate`` (``L`` None), or, for site
    disorder, an ``L x L`` unit cell with one site type per lattice site, parameters ``E_a``,
    ``T``, ``e{x}_{y}`` and the rate expression ``exp(-(E_a + (e_j - e_i)/2)/T)`` per hop."""
    types = __import__(f"{peer}.types", fromlist=["Project"])
    pt = types.Project()
    pt.set_meta(author="fe2hmm", email="none@example.org", model_name="lattice_gas",
                model_dimension=2)  # fmt: skip
    pt.add_species(name="empty")
    pt.add_species(name="ion")
    pt.species_list.default_species = "empty"
    layer = pt.add_layer(name="default")
    cell = 1 if L is None else L
    pt.lattice.cell = np.diag([float(cell), float(cell), 10.0])
    for y in range(cell):
        for x in range(cell):
            pos = f"{x / cell} {y / cell} 0.5"
            layer.sites.append(types.Site(name=f"s{x}_{y}", pos=pos, default_species="empty"))
    if L is None:
        pt.add_parameter(name="k", value=rate)
    else:
        pt.add_parameter(name="Ea", value=1.0)
        pt.add_parameter(name="T", value=1.0)
        for y in range(cell):
            for x in range(cell):
                pt.add_parameter(name=f"e{x}_{y}", value=0.0, adjustable=True)
    for y in range(cell):
        for x in range(cell):
            centre = pt.lattice.generate_coord(f"s{x}_{y}.(0,0,0).default")
            for name, (dx, dy) in (("e", (1, 0)), ("w", (-1, 0)), ("n", (0, 1)), ("s", (0, -1))):
                X, Y = x + dx, y + dy
                target = pt.lattice.generate_coord(
                    f"s{X % cell}_{Y % cell}.({X // cell},{Y // cell},0).default"
                )
                expr = "k" if L is None else f"exp(-(Ea+(e{X % cell}_{Y % cell}-e{x}_{y})/2)/T)"
                pt.add_process(
                    name=f"hop{x}_{y}_{name}",
                    conditions=[
                        types.Condition(species="ion", coord=centre),
                        types.Condition(species="empty", coord=target),
                    ],
                    actions=[
                        types.Action(species="empty", coord=centre),
                        types.Action(species="ion", coord=target),
                    ],
                    rate_constant=expr,
                )
    return pt


def _kmos_build(peer: str, L: int | None, rate: float) -> tuple[Path, float]:
    """Generate and compile the kmos/kmcos model once (cached); returns (directory, seconds)."""
    what = f"k{rate:.12e}" if L is None else f"disorder{L}"
    tag = f"{peer}-py{sys.version_info[0]}{sys.version_info[1]}-{what}"
    root = Path(tempfile.gettempdir()) / "fe2hmm_peer_kmc" / tag
    if any(root.glob("kmc_model*.so")):
        return root, 0.0
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # kmos' species module asks on stdin whether to download thermochemical tables: answer no.
    saved_input, builtins.input = builtins.input, lambda *a, **k: "n"
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    cwd = os.getcwd()
    try:
        with _quiet(root / "build.log"):
            cli = __import__(f"{peer}.cli", fromlist=["main"])
            pt = _kmos_project(peer, L, rate)
            os.chdir(root)
            pt.save("lattice_gas.xml")
            cli.main("export lattice_gas.xml build -b local_smart")
    finally:
        builtins.input = saved_input
        os.chdir(cwd)
    build = root / "build"
    for item in build.iterdir():
        item.rename(root / item.name)
    if not any(root.glob("kmc_model*.so")):
        raise SystemExit(f"peer_kmc.py: {peer} did not build kmc_model (see {root})")
    return root, time.perf_counter() - t0


def run_kmos(peer: str, args, rate: float) -> dict:
    """kmos / kmcos ``local_smart`` model: ``do_steps`` timed, lattice by lattice."""
    disorder = args.disorder > 0
    model_dir, build_seconds = _kmos_build(peer, args.size if disorder else None, rate)
    sys.path.insert(0, str(model_dir))
    cwd = os.getcwd()
    os.chdir(model_dir)  # KMC_Model reads kmc_settings from the working directory
    try:
        with _quiet():
            run = __import__(f"{peer}.run", fromlist=["KMC_Model"])
    finally:
        os.chdir(cwd)
    L, setup, seconds, sim_time = args.size, 0.0, 0.0, 0.0
    for b in range(args.lattices):
        t0 = time.perf_counter()
        if disorder:  # this lattice's site energies (same stream as the kMCpy peer)
            energies = np.random.default_rng(10_000 + args.seed + b).normal(0, args.disorder, L * L)
            values = {"Ea": args.barrier, "T": args.temperature}
            values |= {f"e{s % L}_{s // L}": float(e) for s, e in enumerate(energies)}
            for name, value in values.items():
                run.settings.parameters[name]["value"] = value
        with _quiet():
            model = run.KMC_Model(
                print_rates=False,
                banner=False,
                size=(1, 1) if disorder else (L, L),
                random_seed=args.seed + b + 1,
            )
        ion = model.proclist.ion
        for k in np.flatnonzero(initial_occupation(L, args.coverage, args.seed + b)):
            if disorder:  # one unit cell, one site type per site
                site = getattr(model.lattice, f"default_s{k % L}_{k // L}")
                model._put([0, 0, 0, int(site)], ion)
            else:
                model._put([int(k % L), int(k // L), 0, 1], ion)
        model._adjust_database()
        if b == 0:
            model.do_steps(min(args.events, 10_000))  # warm-up (caches, page faults)
        t_before = float(model.base.get_kmc_time())
        t1 = time.perf_counter()
        model.do_steps(args.events)
        seconds += time.perf_counter() - t1
        setup += t1 - t0
        sim_time += float(model.base.get_kmc_time()) - t_before
        with _quiet():
            model.deallocate()
    return {
        "backend": "local_smart",
        "seconds": seconds,
        "setup_seconds": setup,
        "build_seconds": build_seconds,
        "simulated_time": sim_time / args.lattices,
    }


def run_kmcpy(args) -> dict:
    """kMCpy's ``KMC.propose`` + ``KMC.update`` loop with a lattice-gas ``BaseModel``."""
    import logging
    from types import SimpleNamespace

    from kmcpy.event import Event, EventLib
    from kmcpy.models.base import BaseModel
    from kmcpy.simulator.kmc import KMC
    from kmcpy.simulator.state import State

    logging.disable(logging.CRITICAL)

    class LatticeGas(BaseModel):
        """Site exclusion, rate exp(-(E_a + (e_j - e_i)/2)/T) for an ion on i, j empty."""

        def __init__(self, energies, temperature, barrier):
            super().__init__(name="lattice_gas")
            self.energies = [float(e) for e in energies]
            self.temperature, self.barrier = float(temperature), float(barrier)

        def compute_probability(self, event, runtime_config=None, simulation_state=None):
            i, j = event.mobile_ion_indices
            occ = simulation_state.occupations
            if occ[i] == occ[j]:
                return 0.0
            if occ[j]:
                i, j = j, i
            e = self.energies
            return math.exp(-(self.barrier + 0.5 * (e[j] - e[i])) / self.temperature)

        def as_dict(self):
            return {"energies": self.energies, "T": self.temperature, "E_a": self.barrier}

        @classmethod
        def from_dict(cls, d):
            return cls(d["energies"], d["T"], d["E_a"])

    L = args.size
    N = L * L
    setup, seconds, sim_time = 0.0, 0.0, 0.0
    for b in range(args.lattices):
        t0 = time.perf_counter()
        lib = EventLib()
        for s in range(N):
            x, y = s % L, s // L
            for t in ((x + 1) % L + L * y, x + L * ((y + 1) % L)):
                lib.add_event(Event((s, t), ()))
        touch = lib.site_to_events
        lib.event_dependencies = [
            sorted(set(touch[e.mobile_ion_indices[0]] + touch[e.mobile_ion_indices[1]]))
            for e in lib.events
        ]
        rng = np.random.default_rng(10_000 + args.seed + b)
        energies = rng.normal(0.0, args.disorder, N) if args.disorder > 0 else np.zeros(N)
        occupation = initial_occupation(L, args.coverage, args.seed + b).astype(int).tolist()
        config = SimpleNamespace(runtime_config=SimpleNamespace())
        model = LatticeGas(energies, args.temperature, args.barrier)
        with _quiet():
            kmc = KMC(
                structure=None,
                model=model,
                event_lib=lib,
                config=config,
                simulation_state=State(occupation),
            )
        kmc.rng = np.random.default_rng(args.seed + b + 1)
        events = lib.events
        if b == 0:
            for _ in range(min(args.events, 1000)):  # warm-up (numba compiles _propose)
                event, dt = kmc.propose(events)
                kmc.update(event, dt)
        t_before = kmc.simulation_state.time
        t1 = time.perf_counter()
        for _ in range(args.events):
            event, dt = kmc.propose(events)
            kmc.update(event, dt)
        seconds += time.perf_counter() - t1
        setup += t1 - t0
        sim_time += kmc.simulation_state.time - t_before
    return {
        "seconds": seconds,
        "setup_seconds": setup,
        "build_seconds": 0.0,
        "simulated_time": sim_time / args.lattices,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="kmos / kmcos / kMCpy lattice-gas peer")
    parser.add_argument("--peer", choices=("auto", *DISTRIBUTIONS), default="auto")
    parser.add_argument("--size", type=int, default=256, help="L (L x L square lattice)")
    parser.add_argument("--lattices", type=int, default=1, help="independent lattices, in turn")
    parser.add_argument("--events", type=int, default=1_000_000, help="hops per lattice")
    parser.add_argument("--coverage", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--barrier", type=float, default=1.0)
    parser.add_argument("--disorder", type=float, default=0.0, help="site-energy std W")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--disorder-cell",
        action="store_true",
        help="kmos/kmcos with disorder: build the L x L-site unit cell model (L <= 16; the "
        "first build of L = 16 compiles for ~17 min)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name in ("size", "lattices", "events"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    peer = detect_peer() if args.peer == "auto" else args.peer
    report = {
        "peer": peer,
        "version": importlib.metadata.version(DISTRIBUTIONS[peer]),
        "python": ".".join(map(str, sys.version_info[:3])),
        "size": args.size,
        "lattices": args.lattices,
        "coverage": args.coverage,
        "disorder": args.disorder,
        "events": args.events * args.lattices,
    }
    if (
        peer in ("kmos", "kmcos")
        and args.disorder > 0
        and not (args.disorder_cell and args.size <= MAX_DISORDER_CELL)
    ):
        report |= {
            "supported": False,
            "reason": f"rate constants are per process type: site disorder needs one site type "
            f"per lattice site ({4 * args.size**2} processes to generate and compile; built "
            f"with --disorder-cell for L <= {MAX_DISORDER_CELL})",
            "seconds": None,
            "events_per_second": None,
        }
    else:
        rate = math.exp(-args.barrier / args.temperature)
        result = run_kmcpy(args) if peer == "kmcpy" else run_kmos(peer, args, rate)
        report |= {"supported": True, **result}
        report["events_per_second"] = report["events"] / result["seconds"]
    rate = report["events_per_second"]
    shown = f"{rate:.3e} events/s" if rate else f"unsupported ({report['reason']})"
    print(f"{peer} {report['version']}: {args.lattices} x {args.size}^2, W = {args.disorder:g}: "
          f"{shown}")  # fmt: skip
    if args.json:
        print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
