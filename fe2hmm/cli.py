"""The ``fe2hmm`` command line: ``homogenize``, ``md``, ``kmc``, ``demo``.

Contracts (DESIGN.md §5): ``--json`` prints one JSON object as the last line of standard output;
bad arguments exit with status 2 and a one-line message naming the argument, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fe2hmm._compat import import_jit_without_numba
from fe2hmm.checks import (
    available_memory,
    check_cell_size,
    check_contrast,
    check_fits,
    check_isotropic,
    check_writable,
    integer,
    integer_list,
    real,
    real_list,
)

__all__ = ["main", "list_demos"]


class _UsageError(Exception):
    """A bad command-line argument (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise _UsageError(message)


#: Largest count accepted by the parser (int64; the memory and time checks refuse far less).
_MAX_COUNT = 2**63 - 1


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
        ("stokes", "permeability K/L² of a periodic porous cell (Stokes flow, viscosity 1)"),
    ):
        p = hom_sub.add_parser(physics, help=help_text)
        stokes = physics == "stokes"
        p.add_argument(
            "--rve",
            default="circle",
            help="unit cell generator, or 'image' (with --image)"
            + ("; its inclusions (holes of 'voids') are the solid grains" if stokes else "")
            + " (default: circle)",
        )
        p.add_argument(
            "--image",
            default=None,
            help="with --rve image: phase labels (.npy, .raw, .tif; 0 = "
            + ("fluid, 1 = solid" if stokes else "matrix, 1 = inclusion")
            + "), one voxel element per pixel",
        )
        p.add_argument(
            "--image-shape",
            type=integer_list(2, _MAX_COUNT),
            default=None,
            help="N1,N2[,N3]: the array shape of a .raw image (C order)",
        )
        p.add_argument(
            "--image-dtype",
            default="uint8",
            help="the element type of a .raw image (a NumPy dtype; default: uint8)",
        )
        p.add_argument(
            "--dim", type=integer(2, 3), default=None, help="2 or 3 (default: 2; an image's own)"
        )
        p.add_argument(
            "--volume-fraction",
            type=real(),
            default=None,
            help=("solid" if stokes else "inclusion (or void)")
            + " volume fraction (default: 0.3; an image's own)",
        )
        if physics == "diffusion":
            p.add_argument(
                "--matrix",
                type=real(0.0, open_min=True),
                default=1.0,
                help="matrix conductivity > 0 (default: 1)",
            )
            p.add_argument(
                "--inclusion",
                type=real(0.0),
                default=10.0,
                help="inclusion conductivity >= 0 (default: 10)",
            )
        elif physics == "elasticity":
            p.add_argument("--matrix", default="1,0.3", help="matrix E,nu (default: 1,0.3)")
            p.add_argument("--inclusion", default="10,0.3", help="inclusion E,nu (default: 10,0.3)")
        if not stokes:
            p.add_argument("--bc", default="periodic", help="periodic | affine | traction")
        p.add_argument(
            "--resolution",
            type=integer(2, _MAX_COUNT),
            default=None,
            help="elements per cell edge (default: generator's)",
        )
        if stokes:
            p.add_argument(
                "--degree",
                type=integer(2, _MAX_COUNT),
                default=2,
                help="velocity degree >= 2 (Taylor-Hood; pressure one less; default: 2)",
            )
        else:
            p.add_argument(
                "--degree", type=integer(1, _MAX_COUNT), default=1, help="Lagrange degree"
            )
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
    el.add_argument(
        "--cutoff", type=real(1.2), default=2.5, help="LJ cutoff >= 1.2 sigma (default 2.5)"
    )
    el.add_argument("--temperature", type=real(0.0), default=0.0, help="T >= 0 (default 0)")
    el.add_argument(
        "--density",
        type=real(),
        default=None,
        help="number density (default: the zero-pressure lattice at T = 0)",
    )
    el.add_argument(
        "--cells", type=integer(1, _MAX_COUNT), default=None, help="lattice cells per axis"
    )
    el.add_argument(
        "--steps", type=integer(1, _MAX_COUNT), default=4000, help="MD steps per run (T > 0)"
    )
    # numpy int64 seeds, seed + 1 used too
    el.add_argument(
        "--seed", type=integer(0, 2**63 - 2), default=0, help="random seed >= 0 (T > 0)"
    )
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
        type=real(0.0, 1.0, open_min=True, open_max=True),
        required=True,
        help="fraction of occupied sites, 0 < C < 1",
    )
    hop.add_argument(
        "--temperature", type=real(0.0, open_min=True), required=True, help="T = kT/kT_ref > 0"
    )
    hop.add_argument(
        "--barrier", type=real(0.0), default=1.0, help="hop barrier E_a >= 0 (default 1)"
    )
    hop.add_argument(
        "--disorder",
        type=real(0.0),
        default=0.0,
        help="standard deviation W >= 0 of the Gaussian site energies (default 0)",
    )
    hop.add_argument(
        "--field",
        default=None,
        help="bias field: E (along x) or Ex,Ey[,Ez] (default none)",
    )
    hop.add_argument(
        "--size",
        type=integer(3, _MAX_COUNT),
        default=None,
        help="sites per edge L (default 32; cubic 12)",
    )
    hop.add_argument(
        "--steps",
        type=integer(1, _MAX_COUNT),
        default=100_000,
        help="KMC events (hops) per lattice after equilibration (default 100000)",
    )
    hop.add_argument(
        "--seed", type=integer(0, 2**64 - 1), default=0, help="random seed >= 0 (default 0)"
    )
    hop.add_argument(
        "--replicas",
        type=integer(2, _MAX_COUNT),
        default=8,
        help="independent lattices >= 2; standard errors from their spread (default 8)",
    )
    hop.add_argument("--json", action="store_true", help="print a JSON object last")

    demo = sub.add_parser("demo", help="run a demo (fe2hmm demo --list)")
    demo.add_argument("--list", action="store_true", help="list the demos")
    demo.add_argument("name", nargs="?", help="demo name")
    demo.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the demo")
    return parser


def _blame(err: Exception, names: dict[str, str], default: str) -> _UsageError:
    """The usage error of a library ``ValueError``, naming the argument it is about.

    The argument is the flag whose library name the message starts with (else mentions first;
    else ``default``).
    """
    text = str(err)
    arg = next((flag for name, flag in names.items() if text.startswith(name)), None)
    arg = arg or next((flag for name, flag in names.items() if name in text), default)
    return _UsageError(f"argument {arg}: {text}")


def _check_output(path: str | None, argument: str = "--output") -> None:
    """``--output FILE.xdmf``: its folder exists and FILE and FILE.h5 can be written."""
    if path is None:
        return
    try:
        check_writable(path, ".h5")
    except ValueError as err:
        raise _UsageError(f"argument {argument}: {err}") from None


def _check_homogenize(args, fields: Callable[[int], int]) -> int:
    """The checks of ``homogenize`` that need no mesh (and no dolfinx import).

    The output file, the cell request (an image read and checked), the cell's size.
    ``fields(dim)``: the unknowns per node, returned.
    """
    _check_output(getattr(args, "output", None))  # `homogenize stokes` writes no fields
    _resolve_cell_request(args, fields)
    components = fields(args.dim)
    if args.resolution is not None:
        try:
            check_cell_size(args.dim, args.resolution, args.degree, components)
        except ValueError as err:
            raise _blame(
                err, {"resolution": "--resolution", "degree": "--degree"}, "--resolution"
            ) from None
    return components


def _resolve_cell_request(args, fields: Callable[[int], int]) -> None:
    """Fill ``--dim``/``--volume-fraction`` defaults, or read and check ``--image`` (no dolfinx).

    For ``--rve image`` the image decides the dimension, the fractions and the resolution: a
    given ``--dim`` that differs, or a given ``--volume-fraction`` or ``--resolution``, is an
    error (nothing the user asked for is replaced).
    """
    if args.rve != "image":
        for flag in ("--image", "--image-shape"):
            if getattr(args, flag[2:].replace("-", "_")) is not None:
                raise _UsageError(f"argument {flag}: needs --rve image, got --rve {args.rve}")
        args.dim = 2 if args.dim is None else args.dim
        args.volume_fraction = 0.3 if args.volume_fraction is None else args.volume_fraction
        args.labels = None
        return
    import numpy as np

    from fe2hmm.rve.image import read_labels  # NumPy (and Pillow for TIFF) only

    if args.image is None:
        raise _UsageError("argument --image: --rve image needs --image FILE (.npy, .raw, .tif)")
    for flag, value in (
        ("--volume-fraction", args.volume_fraction),
        ("--resolution", args.resolution),
    ):
        if value is not None:
            raise _UsageError(
                f"argument {flag}: an image cell takes its fractions and voxels from the image, "
                f"got {flag} {value}"
            )
    try:
        dtype = np.dtype(args.image_dtype)
    except TypeError:
        raise _UsageError(
            f"argument --image-dtype: expected a NumPy dtype such as uint8, got "
            f"{args.image_dtype!r}"
        ) from None
    try:
        shape = None if args.image_shape is None else tuple(args.image_shape)
        labels = read_labels(args.image, shape=shape, dtype=dtype)
    except ValueError as err:
        flag = "--image-shape" if "shape" in str(err) else "--image"
        raise _UsageError(f"argument {flag}: {err}") from None
    if args.dim is not None and args.dim != labels.ndim:
        raise _UsageError(
            f"argument --dim: the image is {labels.ndim}D (shape {labels.shape}), got --dim "
            f"{args.dim}"
        )
    if labels.max() > 1:
        raise _UsageError(
            f"argument --image: labels 0 and 1 only on the command line (--matrix, --inclusion), "
            f"got labels up to {labels.max()}; more phases through the API (fe2hmm.rve.image)"
        )
    args.dim = labels.ndim
    args.labels = labels
    args.volume_fraction = float((labels != 0).sum() / labels.size)
    equivalent = float(labels.size) ** (1.0 / labels.ndim)  # a cube of as many voxels
    try:
        check_cell_size(args.dim, equivalent, args.degree, fields(args.dim))
    except ValueError as err:
        raise _UsageError(f"argument --image: {err} (the image's voxels)") from None


def _image_keys(args) -> dict:
    """The report's keys of an image cell: the file and its shape (none for a generator)."""
    if args.labels is None:
        return {}
    return {"image": str(args.image), "image_shape": list(args.labels.shape)}


def _create_cell(args, components: int):
    """Validate --rve/--volume-fraction (and the size at the default resolution), mesh the cell."""
    from fe2hmm import rve

    if args.labels is not None:
        from fe2hmm.rve.image import image_cell

        return image_cell(args.labels, name="image")

    if args.rve not in rve.available():
        raise _UsageError(f"argument --rve: unknown RVE {args.rve!r}; valid: {rve.available()}")
    if args.rve not in rve.available(args.dim):
        raise _UsageError(
            f"argument --rve: {args.rve!r} has no {args.dim}D version; "
            f"{args.dim}D RVEs: {rve.available(args.dim)}"
        )
    names = {"volume_fraction": "--volume-fraction", "resolution": "--resolution"}
    try:  # fe2hmm.rve.limits: no gmsh or dolfinx import before the request is known to be good
        _, resolution = rve.check_request(
            args.rve, dim=args.dim, volume_fraction=args.volume_fraction, resolution=args.resolution
        )
        check_cell_size(args.dim, resolution, args.degree, components)
        return rve.create(
            args.rve, dim=args.dim, volume_fraction=args.volume_fraction, resolution=args.resolution
        )
    except ValueError as err:
        raise _blame(err, names | {"degree": "--degree"}, "--rve") from None


def _parse_material(text: str, argument: str) -> tuple[float, float]:
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
        check_isotropic(E, nu)
    except ValueError as err:
        raise _UsageError(f"argument {argument}: {err}") from None
    return E, nu


def _check_contrast(matrix: float, inclusion: float) -> None:
    try:
        check_contrast({"matrix": matrix, "inclusion": inclusion}, matrix, "inclusion")
    except ValueError as err:
        raise _blame(
            err, {"matrix": "--matrix", "inclusion": "--inclusion"}, "--inclusion"
        ) from None


def _homogenize_elasticity(args) -> dict:
    matrix = _parse_material(args.matrix, "--matrix")
    inclusion = _parse_material(args.inclusion, "--inclusion")
    _check_contrast(matrix[0], inclusion[0])
    bc = {"flux": "traction", "uniform-traction": "traction"}.get(args.bc, args.bc)
    if bc not in ("periodic", "affine", "traction"):
        raise _UsageError(
            f"argument --bc: unknown boundary condition {args.bc!r}; valid: periodic, affine, "
            "traction"
        )
    components = _check_homogenize(args, lambda dim: dim)
    import_jit_without_numba()  # a one-shot cell solve runs no numba: 0.3 s less start-up
    t0 = time.perf_counter()
    cell = _create_cell(args, components)  # checks the request before any heavy import
    import numpy as np

    from fe2hmm.micro.cells.elasticity import homogenize_elasticity
    from fe2hmm.rve.cell import INCLUSION, MATRIX

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
        **_image_keys(args),
        "dim": args.dim,
        "plane": "strain" if args.dim == 2 else None,
        "volume_fraction": args.volume_fraction,
        "volume_fractions": cell.named_volume_fractions,
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
    _check_contrast(args.matrix, args.inclusion)
    bc = {"traction": "flux", "uniform-flux": "flux", "neumann": "flux"}.get(args.bc, args.bc)
    if bc not in ("periodic", "affine", "flux"):
        raise _UsageError(
            f"argument --bc: unknown boundary condition {args.bc!r}; valid: periodic, affine, "
            "traction (= flux)"
        )
    components = _check_homogenize(args, lambda dim: 1)
    import_jit_without_numba()  # a one-shot cell solve runs no numba: 0.3 s less start-up
    t0 = time.perf_counter()
    cell = _create_cell(args, components)  # checks the request before any heavy import
    from fe2hmm import analytic
    from fe2hmm.micro.cells.diffusion import homogenize_diffusion
    from fe2hmm.rve.cell import INCLUSION, MATRIX

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
        **_image_keys(args),
        "dim": args.dim,
        "volume_fraction": args.volume_fraction,
        "volume_fractions": cell.named_volume_fractions,
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


def _homogenize_stokes(args) -> dict:
    """``homogenize stokes``: the permeability of the cell's pore space (the matrix phase)."""
    components = _check_homogenize(args, lambda dim: dim + 1)  # velocity and pressure
    import_jit_without_numba()  # a one-shot cell solve runs no numba: 0.3 s less start-up
    t0 = time.perf_counter()
    cell = _create_cell(args, components)  # the request checked before meshing
    import numpy as np

    from fe2hmm.micro.cells.stokes import StokesCellProblem

    result = StokesCellProblem(cell, degree=args.degree).solve()
    seconds = time.perf_counter() - t0
    K = result.permeability
    return {
        "physics": "stokes",
        "rve": args.rve,
        **_image_keys(args),
        "dim": args.dim,
        "volume_fraction": args.volume_fraction,
        "volume_fractions": cell.named_volume_fractions,
        "viscosity": 1.0,
        "resolution": cell.parameters.get("resolution", args.resolution),
        "degree": args.degree,
        "effective_tensor": K.tolist(),
        "eigenvalues": sorted(float(x) for x in np.linalg.eigvalsh(K)),
        "dofs": int(result.dofs),
        "seconds": seconds,
        "seconds_split": result.seconds,
    }


def _print_report(report: dict) -> None:
    K = report["effective_tensor"]
    name = {"diffusion": "K*", "stokes": "K/L² (permeability / cell size², viscosity 1)"}.get(
        report["physics"]
    ) or ("C* (" + report["notation"] + ")")
    fraction = "solid fraction" if report["physics"] == "stokes" else "volume fraction"
    where = f", bc={report['bc']}" if "bc" in report else ""
    print(
        f"{report['rve']} cell, d={report['dim']}, {fraction} {report['volume_fraction']:g}"
        f"{where}, {report['dofs']} dofs, {report['seconds']:.3f} s"
    )
    print(f"{name} =")
    for row in K:
        print("  [" + "  ".join(f"{x: .6f}" for x in row) + "]")
    if "hill_mandel_error" in report:
        print(f"Hill–Mandel: max |<σ:ε> - Σ:E| / max|C*| = {report['hill_mandel_error']:.1e}")
    if "hashin_shtrikman_bounds" in report:
        lo, hi = report["hashin_shtrikman_bounds"]
        print(f"Hashin–Shtrikman bounds (valid for isotropic cells): [{lo:.6f}, {hi:.6f}]")


#: ``md elastic``: (dimension, atoms per conventional cell, smallest zero-pressure lattice
#: constant over all cutoffs) of each lattice; the Langevin time step and Verlet skin.
_MD_LATTICES = {"triangular": (2, 2, 1.11), "fcc": (3, 4, 1.54)}
_MD_DT, _MD_SKIN = 0.005, 0.3
#: Closest nearest-neighbour distance accepted for ``--density`` (sigma).
_MD_CLOSEST = 0.8
#: Seconds per pair interaction and step (the Verlet-list engine on one core, measured 1-2e-8).
_MD_PAIR_SECONDS = 2e-8
#: Force evaluations assumed for a FIRE relaxation at T = 0; equilibration steps at T > 0.
_MD_FIRE_STEPS, _MD_EQUILIBRATION = 200, 1000


def _md_need(lattice: str, cells, a: float, cutoff: float, evaluations: float):
    """Estimated ``(bytes, seconds)`` of ``md elastic``.

    The reference box and its ``d(d+1)`` strained copies, each with positions, velocities,
    forces, cell lists (about 200 bytes per atom) and a Verlet list of int32 (1.5 x the
    neighbours within cutoff + skin); ``evaluations`` force evaluations of every pair.
    """
    d, per_cell, _ = _MD_LATTICES[lattice]
    widths = [a, a * 3**0.5] if d == 2 else [a] * 3
    if cells is None:
        cells = [math.ceil(2.0 * cutoff / w) + 1 for w in widths]
    elif isinstance(cells, (int, float)):
        cells = [cells] * d
    atoms = per_cell * math.prod(float(c) for c in cells)
    density = per_cell / math.prod(widths)
    reach = cutoff + _MD_SKIN
    neighbours = density * (math.pi * reach**2 if d == 2 else 4.0 / 3.0 * math.pi * reach**3)
    boxes = 1 + d * (d + 1)
    nbytes = 3e8 + boxes * atoms * (200.0 + 6.0 * neighbours)
    seconds = evaluations * boxes * atoms * 0.5 * neighbours * _MD_PAIR_SECONDS
    return nbytes, seconds


def _md_lattice_constant(lattice: str, density: float) -> float:
    """Lattice constant of the given number density (triangular: nearest-neighbour distance)."""
    if lattice == "triangular":
        return (2.0 / (3.0**0.5 * density)) ** 0.5
    return (4.0 / density) ** (1.0 / 3.0)


def _md_check_sizes(args) -> None:
    """Refuse ``md elastic`` boxes or runs beyond the machine's memory or an hour.

    Names ``--cells``, ``--density``, ``--cutoff`` or ``--steps`` with the largest value that fits.
    """
    _, _, a0 = _MD_LATTICES[args.lattice]
    density = args.density
    evaluations = _MD_FIRE_STEPS if args.temperature == 0 else 100 + _MD_EQUILIBRATION

    def lattice_constant(rho):
        return a0 if rho is None else _md_lattice_constant(args.lattice, rho)

    try:
        if args.cells is not None:
            a = lattice_constant(density)
            # the narrowest box width must be >= 2 cutoff (minimum image; the library checks it
            # again): the zero-pressure lattice is at most as wide as nearest neighbours at 2^(1/6)
            widest = a if density is not None else 2 ** (1 / 6) * (2**0.5 if a0 > 1.2 else 1.0)
            if args.cells * widest < 2 * args.cutoff:
                raise _UsageError(
                    f"argument --cells: box too small for the cutoff: {args.cells} cells are "
                    f"{args.cells * widest:.4g} wide or less, below 2*cutoff = "
                    f"{2 * args.cutoff:g} (minimum image); use at least "
                    f"{math.ceil(2 * args.cutoff / widest)} cells"
                )
            check_fits(
                "cells",
                args.cells,
                lambda c: _md_need(args.lattice, c, a, args.cutoff, evaluations),
            )
        else:
            d, per_cell, _ = _MD_LATTICES[args.lattice]
            default_density = per_cell / (a0**d * (3**0.5 if d == 2 else 1.0))
            if density is not None and density > default_density:
                check_fits(
                    "density",
                    density,
                    lambda rho: _md_need(
                        args.lattice, None, lattice_constant(rho), args.cutoff, evaluations
                    ),
                    low=default_density,
                )
            check_fits(
                "cutoff",
                args.cutoff,
                lambda rc: _md_need(args.lattice, None, lattice_constant(density), rc, evaluations),
                low=1.2,
            )
        if args.temperature > 0:
            a = lattice_constant(density)
            check_fits(
                "steps",
                args.steps,
                lambda n: _md_need(args.lattice, args.cells, a, args.cutoff, n + _MD_EQUILIBRATION),
                low=100,
            )
    except ValueError as err:
        names = {name: f"--{name}" for name in ("cells", "density", "cutoff", "steps")}
        raise _blame(err, names, "--cutoff") from None


def _md_elastic(args) -> dict:
    """``fe2hmm md elastic``: the LJ lattice's stress and C at a temperature."""
    if args.lattice not in _MD_LATTICES:
        raise _UsageError(f"argument --lattice: unknown {args.lattice!r}; valid: triangular, fcc")
    if args.temperature > (0.05 / _MD_DT) ** 2:
        raise _UsageError(
            f"argument --temperature: at most {(0.05 / _MD_DT) ** 2:g}: thermal motion of "
            f"sqrt(T) x dt per step would exceed 0.05 sigma at the time step dt = {_MD_DT:g}, "
            f"got {args.temperature:g}"
        )
    if args.temperature > 0 and args.steps < 100:
        raise _UsageError(
            f"argument --steps: at T > 0 at least 100 steps (20 blocks of 5), got {args.steps}"
        )
    if args.density is not None:
        # nearest-neighbour distance r: within the cutoff (else C = 0 trivially), and >= 0.8
        # sigma (phi(0.8) = 43 epsilon; the FIRE relaxation fails at r = 0.66)
        def density(r):
            return 1.0 / (r * r * 3**0.5 / 2) if args.lattice == "triangular" else 2**0.5 / r**3

        low, high = density(args.cutoff), density(_MD_CLOSEST)
        if not low < args.density <= high:
            raise _UsageError(
                f"argument --density: must be in ({low:.4g}, {high:.4g}] (nearest neighbours "
                f"between {_MD_CLOSEST:g} sigma and the cutoff), got {args.density:g}"
            )
    _md_check_sizes(args)
    t0 = time.perf_counter()
    import numpy as np

    from fe2hmm.micro.particles.lattice import zero_pressure_lattice_constant
    from fe2hmm.micro.particles.md import elastic_constants, lattice_box, to_voigt

    if args.density is None:
        a = zero_pressure_lattice_constant(args.lattice, args.cutoff)
    else:
        a = _md_lattice_constant(args.lattice, args.density)
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


#: Hops of the KMC engine in an hour (one core, conservatively).
_KMC_HOURLY_HOPS = 4e9
#: ``|ln rate|`` bound of the engine (``fe2hmm.micro.stochastic.hopping._MAX_EXPONENT``).
_KMC_MAX_EXPONENT = 700.0
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
    work = N * (8 + 14 * z + 96)  # occupations, hop counts and their bank, rates + sum tree
    per_replica = 8 * (_KMC_SAMPLES + 1) * (2 + dim) * 2 + (8 * N if disorder else 0)
    return table + live * work + replicas * per_replica


def _kmc_check_rates(args, field: list[float] | None) -> None:
    """Refuse rates below exp(-700) before the lattice is built, naming the argument to change.

    The engine checks ``(barrier + spread of site energies/2 + field a/2)/T <= 700`` with the
    drawn energies; ``(barrier + |field|_max/2 + W)/T`` is the cheap estimate checked first.
    """
    tilt = 0.0 if field is None else 0.5 * max(abs(x) for x in field)
    terms = {"--barrier": args.barrier, "--field": tilt, "--disorder": args.disorder}
    worst = sum(terms.values()) / args.temperature
    if worst <= _KMC_MAX_EXPONENT:
        return
    if sum(terms.values()) <= _KMC_MAX_EXPONENT:  # fine at the reference T = 1
        arg = "--temperature"
        hint = f"the smallest T for these energies is {sum(terms.values()) / _KMC_MAX_EXPONENT:.4g}"
    else:
        arg = max(terms, key=terms.get)
        hint = "rates below exp(-700) underflow"
    raise _UsageError(
        f"argument {arg}: (barrier + |field|/2 + disorder)/T = {worst:.4g} must be <= "
        f"{_KMC_MAX_EXPONENT:g}; {hint}"
    )


def _kmc_check_sizes(args, dim: int, z: int, size: int) -> None:
    """Refuse runs beyond the machine's memory or an hour of hops.

    Names ``--size`` (else ``--replicas``) for memory, ``--steps`` for time (steps x replicas,
    equilibration included).
    """
    disorder = args.disorder > 0

    def need(L, replicas, steps):
        hops = (steps + (steps // 4 if disorder else 0)) * replicas
        return _kmc_bytes(dim, z, L, replicas, disorder), hops / _KMC_HOURLY_HOPS * 3600

    try:
        if need(3, args.replicas, 1)[0] <= available_memory():  # else the replicas are too many
            check_fits("size", size, lambda L: need(L, args.replicas, 1), low=3)
        check_fits("replicas", args.replicas, lambda r: need(size, r, 1), low=2)
        check_fits("steps", args.steps, lambda n: need(size, args.replicas, n), low=1)
    except ValueError as err:
        names = {name: f"--{name}" for name in ("size", "replicas", "steps")}
        raise _blame(err, names, "--size") from None


def _kmc_hopping(args) -> dict:
    """``fe2hmm kmc hopping``: transport coefficients of a lattice gas of hopping ions."""
    from fe2hmm.micro.stochastic.lattice import LATTICES

    dims = {"square": (2, 4), "triangular": (2, 6), "cubic": (3, 6)}
    if args.lattice not in LATTICES or args.lattice not in dims:
        raise _UsageError(
            f"argument --lattice: unknown {args.lattice!r}; valid: {', '.join(LATTICES)}"
        )
    dim, z = dims[args.lattice]
    field = None
    if args.field is not None:
        try:
            field = real_list()(args.field)
        except argparse.ArgumentTypeError:
            field = None
        if field is None or len(field) not in (1, dim):
            raise _UsageError(
                f"argument --field: expected E or {dim} finite numbers "
                f"({'Ex,Ey' if dim == 2 else 'Ex,Ey,Ez'}), got {args.field!r}"
            )
        field = field + [0.0] * (dim - len(field))
    size = args.size if args.size is not None else (12 if dim == 3 else 32)
    equilibration = args.steps // 4 if args.disorder > 0 else 0
    _kmc_check_rates(args, field)
    _kmc_check_sizes(args, dim, z, size)

    from fe2hmm.micro.stochastic.hopping import simulate_hopping
    from fe2hmm.micro.stochastic.lattice import lattice
    from fe2hmm.micro.stochastic.transport import hopping_transport

    try:
        lat = lattice(args.lattice, size)
    except ValueError as err:
        raise _UsageError(f"argument --size: {err}") from None
    t0 = time.perf_counter()
    # load the engine's compiled kernel (~0.6 s from numba's disk cache) on a 3^d lattice
    # first, so that events_per_second is the engine's rate, not the cache's
    simulate_hopping(lattice(args.lattice, 3), 0.5, [1.0], events=1, replicas=1, samples=1)
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
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # e.g. a micro-model's stop, naming its point
        return 1
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
                raise _UsageError("argument physics: choose diffusion, elasticity or stokes")
            if args.physics == "elasticity":
                report = _homogenize_elasticity(args)
            elif args.physics == "stokes":
                report = _homogenize_stokes(args)
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
