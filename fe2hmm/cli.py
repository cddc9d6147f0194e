"""The ``fe2hmm`` command line: ``homogenize``, ``md``, ``kmc``, ``demo``.

Contracts (DESIGN.md §5): ``--json`` prints one JSON object as the last line of standard output;
bad arguments exit with status 2 and a one-line message naming the argument, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "list_demos"]


class _UsageError(Exception):
    """A bad command-line argument (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise _UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _demo_dir() -> Path:
    import fe2hmm.demos

    return Path(fe2hmm.demos.__file__).parent


def list_demos() -> list[str]:
    """Names of the runnable demos (``demos/*.py`` without the suffix)."""
    return sorted(p.stem for p in _demo_dir().glob("*.py") if not p.stem.startswith("_"))


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fe2hmm",
        description="Heterogeneous Multiscale Method / FE² for FEniCSx: homogenize unit cells, "
        "run demos.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    hom = sub.add_parser("homogenize", help="effective tensor of a periodic unit cell")
    hom_sub = hom.add_subparsers(dest="physics", parser_class=_Parser)
    for physics, help_text in (
        ("diffusion", "effective conductivity/permeability K* (d x d)"),
        ("elasticity", "effective stiffness C* (Voigt notation, engineering shear)"),
    ):
        p = hom_sub.add_parser(physics, help=help_text)
        p.add_argument("--rve", default="circle", help="unit cell generator (default: circle)")
        p.add_argument("--dim", type=int, default=2, help="2 or 3 (default: 2)")
        p.add_argument(
            "--volume-fraction",
            type=_finite_float,
            default=0.3,
            help="inclusion (or void) volume fraction (default: 0.3)",
        )
        if physics == "diffusion":
            p.add_argument(
                "--matrix",
                type=_finite_float,
                default=1.0,
                help="matrix conductivity > 0 (default: 1)",
            )
            p.add_argument(
                "--inclusion",
                type=_finite_float,
                default=10.0,
                help="inclusion conductivity >= 0 (default: 10)",
            )
        else:
            p.add_argument("--matrix", default="1,0.3", help="matrix E,nu (default: 1,0.3)")
            p.add_argument("--inclusion", default="10,0.3", help="inclusion E,nu (default: 10,0.3)")
        p.add_argument("--bc", default="periodic", help="periodic | affine | traction")
        p.add_argument(
            "--resolution",
            type=_positive_int,
            default=None,
            help="elements per cell edge (default: generator's)",
        )
        p.add_argument("--degree", type=_positive_int, default=1, help="Lagrange degree")
        p.add_argument(
            "--output",
            default=None,
            help="write the cell mesh, phases and fluctuation fields to this XDMF file",
        )
        p.add_argument("--json", action="store_true", help="print a JSON object last")

    md = sub.add_parser("md", help="Lennard-Jones molecular dynamics micro-model on its own")
    md_sub = md.add_subparsers(dest="md_command", parser_class=_Parser)
    el = md_sub.add_parser(
        "elastic", help="stress and elastic constants C (Voigt) of an LJ lattice at T"
    )
    el.add_argument("--lattice", default="fcc", help="triangular (2D) | fcc (3D)")
    el.add_argument("--cutoff", type=_finite_float, default=2.5, help="LJ cutoff (default 2.5)")
    el.add_argument("--temperature", type=_finite_float, default=0.0, help="T >= 0 (default 0)")
    el.add_argument(
        "--density",
        type=_finite_float,
        default=None,
        help="number density (default: the zero-pressure lattice at T = 0)",
    )
    el.add_argument("--cells", type=_positive_int, default=None, help="lattice cells per axis")
    el.add_argument("--steps", type=_positive_int, default=4000, help="MD steps per run (T > 0)")
    el.add_argument("--seed", type=int, default=0, help="random seed (T > 0)")
    el.add_argument("--json", action="store_true", help="print a JSON object last")

    kmc = sub.add_parser("kmc", help="lattice kinetic Monte Carlo micro-model on its own")
    kmc_sub = kmc.add_subparsers(dest="kmc_command", parser_class=_Parser)
    hop = kmc_sub.add_parser(
        "hopping",
        help="diffusion coefficients and conductivity of hopping ions on a lattice",
        description="Kinetic Monte Carlo of ions hopping to empty nearest-neighbour sites of a "
        "periodic lattice (rate exp(-(E_a + (e_j - e_i)/2)/T), Gaussian site energies e of "
        "standard deviation W). Reduced units: lattice spacing 1, attempt frequency nu = 1, "
        "k_B = 1, charge q = 1, energies (barrier, disorder, field x spacing) in units of the "
        "reference kT, T = kT/kT_ref; times in units of 1/nu.",
    )
    hop.add_argument(
        "--lattice", default="square", help="square | triangular (2D) | cubic (3D) (default square)"
    )
    hop.add_argument(
        "--coverage",
        type=_finite_float,
        required=True,
        help="fraction of occupied sites, 0 < C < 1",
    )
    hop.add_argument("--temperature", type=_finite_float, required=True, help="T = kT/kT_ref > 0")
    hop.add_argument(
        "--barrier", type=_finite_float, default=1.0, help="hop barrier E_a >= 0 (default 1)"
    )
    hop.add_argument(
        "--disorder",
        type=_finite_float,
        default=0.0,
        help="standard deviation W >= 0 of the Gaussian site energies (default 0)",
    )
    hop.add_argument(
        "--field",
        default=None,
        help="bias field: E (along x) or Ex,Ey[,Ez] (default none)",
    )
    hop.add_argument(
        "--size", type=_positive_int, default=None, help="sites per edge L (default 32; cubic 12)"
    )
    hop.add_argument(
        "--steps",
        type=_positive_int,
        default=100_000,
        help="KMC events (hops) per lattice after equilibration (default 100000)",
    )
    hop.add_argument("--seed", type=int, default=0, help="random seed >= 0 (default 0)")
    hop.add_argument(
        "--replicas",
        type=_positive_int,
        default=8,
        help="independent lattices >= 2; standard errors from their spread (default 8)",
    )
    hop.add_argument("--json", action="store_true", help="print a JSON object last")

    demo = sub.add_parser("demo", help="run a demo (fe2hmm demo --list)")
    demo.add_argument("--list", action="store_true", help="list the demos")
    demo.add_argument("name", nargs="?", help="demo name")
    demo.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the demo")
    return parser


def _create_cell(args):
    """Validate --rve/--dim/--volume-fraction/--resolution and generate the cell."""
    from fe2hmm import rve

    if args.dim not in (2, 3):
        raise _UsageError(f"argument --dim: must be 2 or 3, got {args.dim}")
    if args.rve not in rve.available():
        raise _UsageError(f"argument --rve: unknown RVE {args.rve!r}; valid: {rve.available()}")
    if args.rve not in rve.available(args.dim):
        raise _UsageError(
            f"argument --rve: {args.rve!r} has no {args.dim}D version; "
            f"{args.dim}D RVEs: {rve.available(args.dim)}"
        )
    try:
        return rve.create(
            args.rve, dim=args.dim, volume_fraction=args.volume_fraction, resolution=args.resolution
        )
    except ValueError as err:
        text = str(err)
        arg = (
            "--volume-fraction"
            if "volume_fraction" in text
            else ("--resolution" if "resolution" in text else "--rve")
        )
        raise _UsageError(f"argument {arg}: {text}") from None


def _parse_material(text: str, argument: str) -> tuple[float, float]:
    from fe2hmm.micro.cells.elasticity import lame_parameters

    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        E, nu = (float(p) for p in parts)
    except ValueError:
        raise _UsageError(
            f"argument {argument}: expected E,nu (two numbers), got {text!r}"
        ) from None
    try:
        lame_parameters(E, nu)
    except ValueError as err:
        raise _UsageError(f"argument {argument}: {err}") from None
    return E, nu


def _homogenize_elasticity(args) -> dict:
    import numpy as np

    from fe2hmm.micro.cells.elasticity import homogenize_elasticity
    from fe2hmm.rve.cell import INCLUSION, MATRIX

    matrix = _parse_material(args.matrix, "--matrix")
    inclusion = _parse_material(args.inclusion, "--inclusion")
    bc = {"flux": "traction", "uniform-traction": "traction"}.get(args.bc, args.bc)
    if bc not in ("periodic", "affine", "traction"):
        raise _UsageError(
            f"argument --bc: unknown boundary condition {args.bc!r}; valid: periodic, affine, "
            "traction"
        )
    t0 = time.perf_counter()
    cell = _create_cell(args)
    solution = homogenize_elasticity(
        cell, {MATRIX: matrix, INCLUSION: inclusion}, bc=bc, degree=args.degree
    )
    seconds = time.perf_counter() - t0
    if args.output:
        solution.write_xdmf(args.output, cell.cell_tags)
    C = solution.effective_tensor
    return {
        "physics": "elasticity",
        "rve": args.rve,
        "dim": args.dim,
        "plane": "strain" if args.dim == 2 else None,
        "volume_fraction": args.volume_fraction,
        "matrix": list(matrix),
        "inclusion": list(inclusion),
        "bc": bc,
        "resolution": cell.parameters.get("resolution", args.resolution),
        "degree": args.degree,
        "notation": "Voigt "
        + ("(11, 22, 12)" if args.dim == 2 else "(11, 22, 33, 23, 13, 12)")
        + ", engineering shear strain",
        "effective_tensor": C.tolist(),
        "eigenvalues": sorted(float(x) for x in np.linalg.eigvalsh(0.5 * (C + C.T))),
        "hill_mandel_error": solution.hill_mandel_error,
        "dofs": int(solution.dofs),
        "seconds": seconds,
        "seconds_split": solution.seconds,
    }


def _homogenize_diffusion(args) -> dict:
    from fe2hmm import analytic
    from fe2hmm.micro.cells.diffusion import homogenize_diffusion
    from fe2hmm.rve.cell import INCLUSION, MATRIX

    if args.matrix <= 0:
        raise _UsageError(f"argument --matrix: conductivity must be > 0, got {args.matrix:g}")
    if args.inclusion < 0:
        raise _UsageError(
            f"argument --inclusion: conductivity must be >= 0, got {args.inclusion:g}"
        )
    bc = {"traction": "flux", "uniform-flux": "flux", "neumann": "flux"}.get(args.bc, args.bc)
    if bc not in ("periodic", "affine", "flux"):
        raise _UsageError(
            f"argument --bc: unknown boundary condition {args.bc!r}; valid: periodic, affine, "
            "traction (= flux)"
        )
    t0 = time.perf_counter()
    cell = _create_cell(args)
    solution = homogenize_diffusion(
        cell, {MATRIX: args.matrix, INCLUSION: args.inclusion}, bc=bc, degree=args.degree
    )
    seconds = time.perf_counter() - t0
    if args.output:
        solution.write_xdmf(args.output, cell.cell_tags)
    K = solution.effective_tensor
    report = {
        "physics": "diffusion",
        "rve": args.rve,
        "dim": args.dim,
        "volume_fraction": args.volume_fraction,
        "matrix": args.matrix,
        "inclusion": args.inclusion,
        "bc": bc,
        "resolution": cell.parameters.get("resolution", args.resolution),
        "degree": args.degree,
        "effective_tensor": K.tolist(),
        "eigenvalues": sorted(
            float(x) for x in __import__("numpy").linalg.eigvalsh(0.5 * (K + K.T))
        ),
        "dofs": int(solution.dofs),
        "seconds": seconds,
        "seconds_split": solution.seconds,
    }
    if args.inclusion > 0 and args.rve != "voids":
        lo, hi = analytic.hashin_shtrikman_bounds(
            args.matrix, args.inclusion, cell.volume_fractions.get(INCLUSION, 0.0), dim=args.dim
        )
        report["hashin_shtrikman_bounds"] = [lo, hi]
    return report


def _print_report(report: dict) -> None:
    K = report["effective_tensor"]
    name = "K*" if report["physics"] == "diffusion" else "C* (" + report["notation"] + ")"
    print(
        f"{report['rve']} cell, d={report['dim']}, volume fraction {report['volume_fraction']:g}, "
        f"bc={report['bc']}, {report['dofs']} dofs, {report['seconds']:.3f} s"
    )
    print(f"{name} =")
    for row in K:
        print("  [" + "  ".join(f"{x: .6f}" for x in row) + "]")
    if "hill_mandel_error" in report:
        print(f"Hill–Mandel: max |<σ:ε> - Σ:E| / max|C*| = {report['hill_mandel_error']:.1e}")
    if "hashin_shtrikman_bounds" in report:
        lo, hi = report["hashin_shtrikman_bounds"]
        print(f"Hashin–Shtrikman bounds (valid for isotropic cells): [{lo:.6f}, {hi:.6f}]")


def _md_elastic(args) -> dict:
    """``fe2hmm md elastic``: the LJ lattice's stress and C at a temperature."""
    import numpy as np

    from fe2hmm.micro.particles.lattice import LATTICES, zero_pressure_lattice_constant
    from fe2hmm.micro.particles.md import elastic_constants, lattice_box, to_voigt

    if args.lattice not in LATTICES:
        raise _UsageError(f"argument --lattice: unknown {args.lattice!r}; valid: triangular, fcc")
    if args.cutoff < 1.2:
        raise _UsageError(f"argument --cutoff: must be >= 1.2 (sigma), got {args.cutoff:g}")
    if args.temperature < 0:
        raise _UsageError(f"argument --temperature: must be >= 0, got {args.temperature:g}")
    if args.temperature > 0 and args.steps < 100:
        raise _UsageError(
            f"argument --steps: at T > 0 at least 100 steps (20 blocks of 5), got {args.steps}"
        )
    if args.density is not None and not args.density > 0:
        raise _UsageError(f"argument --density: must be > 0, got {args.density:g}")
    t0 = time.perf_counter()
    if args.density is None:
        a = zero_pressure_lattice_constant(args.lattice, args.cutoff)
    elif args.lattice == "triangular":
        a = (2.0 / (np.sqrt(3.0) * args.density)) ** 0.5
    else:
        a = (4.0 / args.density) ** (1.0 / 3.0)
    if args.lattice == "triangular":
        widths = a * np.array([1.0, np.sqrt(3.0)])
    else:
        widths = a * np.ones(3)
    cells = np.ceil(2.0 * args.cutoff / widths).astype(int) + 1
    if args.cells is not None:
        cells = np.full_like(cells, args.cells)
    try:
        box = lattice_box(args.lattice, cells, a, args.cutoff)
    except ValueError as err:
        raise _UsageError(f"argument --cells: {err}") from None
    if args.temperature == 0:
        sigma, C, sigma_err, C_err = elastic_constants(box)
    else:
        sigma, C, sigma_err, C_err = elastic_constants(
            box, 0.01, args.temperature, steps=args.steps, seed=args.seed
        )
    return {
        "lattice": args.lattice,
        "cutoff": args.cutoff,
        "temperature": args.temperature,
        "lattice_constant": float(a),
        "atoms": int(box.x.shape[0]),
        "stress": sigma.tolist(),
        "stress_error": sigma_err.tolist(),
        "C": to_voigt(C).tolist(),
        "C_error": to_voigt(C_err).tolist(),
        "units": "LJ reduced (epsilon = sigma = m = k_B = 1); C Voigt, engineering shear",
        "seconds": time.perf_counter() - t0,
    }


def _print_md(report: dict) -> None:
    print(
        f"{report['lattice']} LJ lattice, cutoff {report['cutoff']:g}, T = "
        f"{report['temperature']:g}, a = {report['lattice_constant']:.6f}, "
        f"{report['atoms']} atoms, {report['seconds']:.2f} s"
    )
    print("stress =")
    for row, err in zip(report["stress"], report["stress_error"], strict=True):
        print("  [" + "  ".join(f"{x: .6f}±{e:.1e}" for x, e in zip(row, err, strict=True)) + "]")
    print("C (Voigt) =")
    for row in report["C"]:
        print("  [" + "  ".join(f"{x: .5f}" for x in row) + "]")


_KMC_MEMORY = 4 * 2**30  # bytes: refuse runs estimated above this
_KMC_EVENTS = 4 * 10**9  # hops (steps x replicas, equilibration included): refuse above this
_KMC_SAMPLES = 64  # sampling intervals of the engine's default


def _kmc_bytes(dim: int, z: int, L: int, replicas: int, disorder: bool) -> int:
    """Estimated peak memory (bytes) of ``kmc hopping``.

    Lattice tables and their construction, one working set per live lattice (one per numba
    thread), per-replica site energies and samples.
    """
    N = L**dim
    table = N * (4 * z + 16 * dim + 8 * z * dim)  # neighbours, positions; integer temporaries
    threads = os.environ.get("NUMBA_NUM_THREADS", "")
    live = min(replicas, int(threads) if threads.isdigit() else (os.cpu_count() or 1))
    work = N * (8 + 12 * z + 96)  # occupations, hop counts, hop list or rates + sum tree
    per_replica = 8 * (_KMC_SAMPLES + 1) * (2 + dim) * 2 + (8 * N if disorder else 0)
    return table + live * work + replicas * per_replica


def _kmc_hopping(args) -> dict:
    """``fe2hmm kmc hopping``: transport coefficients of a lattice gas of hopping ions."""
    from fe2hmm.micro.stochastic.lattice import LATTICES

    dims = {"square": (2, 4), "triangular": (2, 6), "cubic": (3, 6)}
    if args.lattice not in LATTICES or args.lattice not in dims:
        raise _UsageError(
            f"argument --lattice: unknown {args.lattice!r}; valid: {', '.join(LATTICES)}"
        )
    dim, z = dims[args.lattice]
    if not 0 < args.coverage < 1:
        raise _UsageError(f"argument --coverage: must be in (0, 1), got {args.coverage:g}")
    if not args.temperature > 0:
        raise _UsageError(f"argument --temperature: must be > 0, got {args.temperature:g}")
    if args.barrier < 0:
        raise _UsageError(f"argument --barrier: must be >= 0, got {args.barrier:g}")
    if args.disorder < 0:
        raise _UsageError(f"argument --disorder: must be >= 0, got {args.disorder:g}")
    field = None
    if args.field is not None:
        parts = args.field.split(",")
        try:
            field = [_finite_float(p) for p in parts]
        except argparse.ArgumentTypeError:
            field = None
        if field is None or len(parts) not in (1, dim):
            raise _UsageError(
                f"argument --field: expected E or {dim} finite numbers "
                f"({'Ex,Ey' if dim == 2 else 'Ex,Ey,Ez'}), got {args.field!r}"
            )
        field = field + [0.0] * (dim - len(field))
    if not 0 <= args.seed < 2**64:
        raise _UsageError(f"argument --seed: must be in [0, 2**64), got {args.seed}")
    if args.replicas < 2:
        raise _UsageError(f"argument --replicas: at least 2 (standard errors), got {args.replicas}")
    size = args.size if args.size is not None else (12 if dim == 3 else 32)
    if size < 3:
        raise _UsageError(f"argument --size: must be >= 3, got {size}")
    equilibration = args.steps // 4 if args.disorder > 0 else 0
    hops = (args.steps + equilibration) * args.replicas
    if hops > _KMC_EVENTS:
        largest = _KMC_EVENTS // args.replicas * (4 if args.disorder > 0 else 1)
        largest //= 5 if args.disorder > 0 else 1
        raise _UsageError(
            f"argument --steps: {hops:.3g} hops in all exceed the limit of {_KMC_EVENTS:.0e} "
            f"(about an hour per core); the largest --steps for {args.replicas} replicas is "
            f"{largest}"
        )
    disorder = args.disorder > 0
    if _kmc_bytes(dim, z, size, args.replicas, disorder) > _KMC_MEMORY:
        limit = f"{_KMC_MEMORY / 2**30:g} GiB"
        need = _kmc_bytes(dim, z, size, args.replicas, disorder) / 2**30
        if _kmc_bytes(dim, z, 3, args.replicas, disorder) > _KMC_MEMORY:
            largest = args.replicas
            while largest > 2 and _kmc_bytes(dim, z, size, largest, disorder) > _KMC_MEMORY:
                largest = max(2, int(largest / 1.02))
            while _kmc_bytes(dim, z, size, largest + 1, disorder) <= _KMC_MEMORY:
                largest += 1
            raise _UsageError(
                f"argument --replicas: {args.replicas} replicas need about {need:.3g} GiB "
                f"(limit {limit}); the largest that fits is {largest}"
            )
        largest = size
        while _kmc_bytes(dim, z, largest, args.replicas, disorder) > _KMC_MEMORY:
            largest = max(3, int(largest / 1.02))
        while _kmc_bytes(dim, z, largest + 1, args.replicas, disorder) <= _KMC_MEMORY:
            largest += 1
        raise _UsageError(
            f"argument --size: L = {size} on the {args.lattice} lattice needs about {need:.3g} "
            f"GiB (limit {limit}); the largest L that fits is {largest}"
        )

    from fe2hmm.micro.stochastic.lattice import lattice
    from fe2hmm.micro.stochastic.transport import hopping_transport

    try:
        lat = lattice(args.lattice, size)
    except ValueError as err:
        raise _UsageError(f"argument --size: {err}") from None
    t0 = time.perf_counter()
    try:
        result = hopping_transport(
            lat,
            args.coverage,
            [args.temperature],
            barrier=args.barrier,
            disorder=args.disorder,
            field=field,
            events=args.steps,
            equilibration=equilibration,
            replicas=args.replicas,
            seed=args.seed,
        )
    except ValueError as err:  # the engine's own checks (e.g. too few ions for the lattice)
        text = str(err)
        arg = next(
            (
                f"--{name}"
                for name in ("coverage", "temperature", "barrier", "disorder", "field", "seed")
                if text.startswith(name) or text.startswith(f"({name}")
            ),
            "--coverage" if "ions" in text else "--temperature",
        )
        if text.startswith("(barrier"):  # the slowest rate underflows
            arg = "--disorder" if args.disorder > 0 else "--barrier"
        raise _UsageError(f"argument {arg}: {text}") from None
    seconds = time.perf_counter() - t0
    keys = (
        "tracer_diffusion",
        "jump_diffusion",
        "chemical_diffusion",
        "correlation_factor",
        "haven_ratio",
        "conductivity",
    )
    report = {key: float(getattr(result, key)[0]) for key in keys}
    report["standard_errors"] = {key: float(result.standard_errors[key][0]) for key in keys}
    if field is not None:
        report["drift_conductivity"] = float(result.drift_conductivity[0])
        report["standard_errors"]["drift_conductivity"] = float(
            result.standard_errors["drift_conductivity"][0]
        )
    report["events"] = int(round(float(result.events[0]) * args.replicas))  # all replicas
    report["events_per_second"] = float(result.events_per_second)
    report |= {
        "lattice": args.lattice,
        "size": size,
        "sites": int(lat.sites),
        "coverage": args.coverage,
        "temperature": args.temperature,
        "barrier": args.barrier,
        "disorder": args.disorder,
        "field": field,
        "steps": args.steps,
        "equilibration": equilibration,
        "replicas": args.replicas,
        "seed": args.seed,
        "units": "reduced: lattice spacing 1, nu = 1, k_B = 1, q = 1, energies in units of the "
        "reference kT",
        "seconds": seconds,
    }
    return report


def _print_kmc(report: dict) -> None:
    print(
        f"{report['lattice']} lattice L = {report['size']} ({report['sites']} sites), coverage "
        f"{report['coverage']:g}, T = {report['temperature']:g}, E_a = {report['barrier']:g}, "
        f"W = {report['disorder']:g}"
        + ("" if report["field"] is None else f", field {report['field']}")
        + f"; {report['replicas']} replicas x {report['steps']} hops; "
        f"{report['events_per_second']:.3g} events/s, {report['seconds']:.2f} s"
    )
    se = report["standard_errors"]
    for key in se:
        print(f"  {key:<20} {report[key]: .6e} ± {se[key]:.1e}")
    print(f"  ({report['units']})")


def _run_demo(name: str, argv: Sequence[str]) -> int:
    import runpy

    names = list_demos()
    if name not in names:
        raise _UsageError(f"argument name: unknown demo {name!r}; available: {', '.join(names)}")
    path = _demo_dir() / f"{name}.py"
    saved, saved_error = sys.argv, argparse.ArgumentParser.error
    sys.argv = [f"fe2hmm demo {name}", *argv]

    def one_line_error(parser, message):  # the demo's own argparse errors: one line, status 2
        raise _UsageError(f"demo {name}: {message}")

    argparse.ArgumentParser.error = one_line_error  # restored below; demos stay plain argparse
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
        argparse.ArgumentParser.error = saved_error
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fe2hmm`` command.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        Process exit status: 0 on success, 2 for bad arguments, 1 for a failed computation.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from fe2hmm import __version__

            print(__version__)
            return 0
        if args.command is None:
            parser.print_help()
            return 0
        if args.command == "demo":
            if args.list:
                for name in list_demos():
                    print(name)
                return 0
            if not args.name:
                raise _UsageError("argument name: give a demo name (see `fe2hmm demo --list`)")
            return _run_demo(args.name, args.args)
        if args.command == "md":
            if args.md_command != "elastic":
                raise _UsageError("argument md_command: choose elastic")
            report = _md_elastic(args)
            if args.json:
                print(json.dumps(report))
            else:
                _print_md(report)
            return 0
        if args.command == "kmc":
            if args.kmc_command != "hopping":
                raise _UsageError("argument kmc_command: choose hopping")
            report = _kmc_hopping(args)
            if args.json:
                print(json.dumps(report))
            else:
                _print_kmc(report)
            return 0
        if args.command == "homogenize":
            if args.physics is None:
                raise _UsageError("argument physics: choose diffusion or elasticity")
            if args.physics == "elasticity":
                report = _homogenize_elasticity(args)
            else:
                report = _homogenize_diffusion(args)
            if args.json:
                print(json.dumps(report))
            else:
                _print_report(report)
            return 0
    except _UsageError as err:
        print(f"fe2hmm: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the CLI never shows a traceback
        print(f"fe2hmm: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
