"""Checks of arguments before any work: ranges, memory, time, contrasts, output paths.

Pure Python (no dolfinx, numba or gmsh), so the command line and the demos can refuse a bad
argument in well under a second; the library functions that own an argument (cell models, cell
problems) call the same functions, so both raise the same ``ValueError`` naming the argument.
Estimates are deliberately conservative and calibrated on this package's own runs (see each
function).

Command-line values: :func:`integer`, :func:`real`, :func:`integer_list` and :func:`real_list`
make the argparse ``type=`` callables of ``fe2hmm`` and of the demos. A bad value raises
``argparse.ArgumentTypeError("expected an integer >= 1, got '0'")`` (the valid range and the
value given), which argparse prefixes with the argument: ``argument --n: expected …``.

Environment: ``FE2HMM_MEMORY_LIMIT`` (bytes, or with a ``K``/``M``/``G`` suffix) replaces the
machine's available memory (``MemAvailable`` of ``/proc/meminfo``), e.g. for reproducible tests
or to leave room for other jobs.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MAX_CONTRAST",
    "MAX_MODULUS",
    "TIME_LIMIT",
    "available_memory",
    "cell_problem_bytes",
    "check_cell_size",
    "check_contrast",
    "check_fits",
    "check_isotropic",
    "check_writable",
    "installed_memory",
    "integer",
    "integer_list",
    "largest",
    "positive",
    "real",
    "real_list",
]

#: Refuse runs estimated to take longer than this (seconds, one core): about an hour.
TIME_LIMIT = 3600.0

#: Largest material value (conductivity, Young's modulus): its square is still finite.
MAX_MODULUS = 1e150

#: Largest ratio of any phase's value to the matrix's: beyond it the direct solve of a cell with
#: a stiff inclusion loses every digit (measured: 1e12 leaves 3 digits, 1e16 none).
MAX_CONTRAST = 1e10

#: Memory of the process before any cell is built (interpreter, dolfinx, gmsh, PETSc), bytes.
_BASE_BYTES = 3e8


def available_memory() -> int:
    """Bytes a run may use: ``FE2HMM_MEMORY_LIMIT`` if set, else the machine's available memory.

    Under ``mpiexec`` the machine's memory is shared by the ranks on the node (read from the
    launcher's environment, ``MPI_LOCALNRANKS`` of MPICH or ``OMPI_COMM_WORLD_LOCAL_SIZE`` of
    Open MPI; no collective call).

    Raises:
        ValueError: ``FE2HMM_MEMORY_LIMIT`` is not a positive number of bytes.
    """
    return _machine_memory("MemAvailable") // _local_ranks()


def installed_memory() -> int:
    """Bytes a rank may use by the machine's installed memory (``MemTotal``) or the limit.

    For the library's own checks: unlike :func:`available_memory` it does not change while the
    ranks run, so every rank of a node takes the same decision (a check that refused on one
    rank only would leave the others waiting in the next collective).
    """
    return _machine_memory("MemTotal") // _local_ranks()


def _local_ranks() -> int:
    for key in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        value = os.environ.get(key, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def _machine_memory(field: str) -> int:
    setting = os.environ.get("FE2HMM_MEMORY_LIMIT", "").strip()
    if setting:
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(setting[-1].upper(), 1)
        try:
            value = float(setting[:-1] if scale > 1 else setting) * scale
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"FE2HMM_MEMORY_LIMIT must be a positive size, got {setting!r}")
        return int(value)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        pages = "SC_AVPHYS_PAGES" if field == "MemAvailable" else "SC_PHYS_PAGES"
        return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 4 * 2**30


def largest(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """The largest integer ``n`` in ``[low, high]`` with ``fits(n)``, ``fits`` monotone.

    Returns:
        ``None`` when not even ``low`` fits.
    """
    if not fits(low):
        return None
    while low < high:  # bisection: fits(low) holds
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _largest_real(fits: Callable[[float], bool], low: float, high: float) -> float | None:
    """:func:`largest` for reals, to 4 significant digits (bisection of the logarithm)."""
    if not fits(low):
        return None
    lo, hi = math.log(low), math.log(high)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fits(math.exp(mid)) else (lo, mid)
    best = math.exp(lo)
    digits = 10 ** (math.floor(math.log10(best)) - 3)
    return math.floor(best / digits) * digits


def check_fits(
    name: str,
    value: int | float,
    need: Callable[[float], tuple[float, float]],
    low: float = 1,
    memory: int | None = None,
) -> None:
    """Refuse ``name=value`` if its estimated memory or time exceeds the machine.

    Args:
        name: the argument, as the message names it (e.g. ``"resolution"``, ``"--cells"``).
        value: its value.
        need: ``need(v) -> (bytes, seconds)`` with every other argument fixed; increasing in ``v``.
        low: smallest admissible value (for the largest one that fits); an ``int`` for an
            integer argument, a ``float`` for a real one.
        memory: bytes allowed (default :func:`available_memory`).

    Raises:
        ValueError: ``"{name}={value}: needs about … GiB of memory, more than the … GiB
            available; the largest {name} that fits is …"`` (or the same for the time limit).
    """
    memory = available_memory() if memory is None else memory
    nbytes, seconds = need(value)
    if nbytes <= memory and seconds <= TIME_LIMIT:
        return

    def fits(v: int) -> bool:
        b, s = need(v)
        return b <= memory and s <= TIME_LIMIT

    if isinstance(low, int):
        best = largest(fits, low, int(min(value, 2**62)))
    else:
        best = _largest_real(fits, low, float(value))
    hint = (
        f"the largest {name} that fits is {best if isinstance(best, int) else f'{best:.4g}'}"
        if best is not None
        else "the other arguments are too large already"
    )
    if nbytes > memory:
        what = f"needs about {nbytes / 2**30:.3g} GiB of memory, more than the "
        what += f"{memory / 2**30:.3g} GiB available"
    else:
        what = f"would take about {seconds / 3600:.3g} hours (limit {TIME_LIMIT / 3600:g})"
    shown = value if isinstance(value, int) else f"{value:g}"
    raise ValueError(f"{name}={shown}: {what}; {hint}")


def cell_problem_bytes(dim: int, resolution: float, degree: float, components: int) -> float:
    """Estimated peak memory (bytes) of meshing, assembling and factorising a cell problem.

    ``n = components * c (degree * resolution)**dim`` unknowns (``c`` = 1.2 in 2D, 0.9 in 3D,
    measured on the gmsh cells), ``components * C(degree + dim, dim)`` couplings per row twice
    over, and the fill of the sparse direct factorisation: ``200 n ln n`` bytes in 2D,
    ``700 n^(4/3)`` in 3D (MUMPS Cholesky, nested dissection; measured 1.0 GB for the 3D
    degree-2 elasticity cell at resolution 12, 36 000 unknowns, against 1.3 GB estimated).
    """
    nodes = (1.2 if dim == 2 else 0.9) * (degree * resolution) ** dim
    n = components * nodes
    per_cell = math.comb(int(degree) + dim, dim)
    nnz = n * components * per_cell * 2
    fill = 200.0 * n * math.log(max(n, 2.0)) if dim == 2 else 700.0 * n ** (4.0 / 3.0)
    quadrature = (degree + 1) ** dim  # tabulated basis of the generated kernels
    return _BASE_BYTES + fill + 40.0 * nnz + 800.0 * per_cell * quadrature * (dim + 1)


def check_cell_size(
    dim: int,
    resolution: int,
    degree: int,
    components: int,
    names=("resolution", "degree"),
    memory: int | None = None,
) -> None:
    """Refuse a cell problem that would not fit in memory, naming resolution or degree.

    The degree is blamed when degree 1 at this resolution fits; otherwise the resolution (or,
    if not even the coarsest resolution 2 fits at this degree, the degree).

    Args:
        dim: 2 or 3.
        resolution: elements per cell edge.
        degree: Lagrange degree.
        components: 1 (diffusion) or ``dim`` (elasticity).
        names: how the message names the two arguments.
        memory: bytes allowed; default :func:`available_memory` (library code passes
            :func:`installed_memory`, the same on every rank).

    Raises:
        ValueError: see :func:`check_fits`.
    """

    def by_resolution(r):
        return cell_problem_bytes(dim, r, degree, components), 0.0

    def by_degree(k):
        return cell_problem_bytes(dim, resolution, k, components), 0.0

    memory = available_memory() if memory is None else memory
    if by_resolution(resolution)[0] <= memory:
        return
    fine_at_degree_1 = cell_problem_bytes(dim, resolution, 1, components) <= memory
    if degree > 1 and (fine_at_degree_1 or by_resolution(2)[0] > memory):
        check_fits(names[1], degree, by_degree, low=1, memory=memory)
    check_fits(names[0], resolution, by_resolution, low=2, memory=memory)


def check_contrast(values: dict[str, float], matrix: float, name: str = "inclusion") -> None:
    """Refuse material values too large for double precision or too contrasted to the matrix.

    Args:
        values: ``{argument name: value}`` of every phase (conductivities, Young's moduli), >= 0.
        matrix: the matrix phase's value (> 0) that the others are compared with.
        name: the argument blamed for a contrast above :data:`MAX_CONTRAST`.

    Raises:
        ValueError: a value above :data:`MAX_MODULUS` (naming it) or a phase more than
            :data:`MAX_CONTRAST` times the matrix's value.
    """
    for key, value in values.items():
        if value > MAX_MODULUS:
            raise ValueError(
                f"{key}={value:g} is too large: at most {MAX_MODULUS:g} (choose other units)"
            )
    top = max(values.values())
    if matrix > 0 and top > MAX_CONTRAST * matrix:
        raise ValueError(
            f"{name}: contrast {top / matrix:.3g} to the matrix is above {MAX_CONTRAST:g}; the "
            "direct solve would lose every digit (the largest value for this matrix is "
            f"{MAX_CONTRAST * matrix:g})"
        )


def check_isotropic(E: float, nu: float, label: str = "") -> None:
    """Check Young's modulus and Poisson's ratio of an isotropic phase.

    Args:
        E: Young's modulus, in ``(0, MAX_MODULUS]``.
        nu: Poisson's ratio, in ``(-1, 0.5)``.
        label: e.g. ``" of phase 2"``, for the message.

    Raises:
        ValueError: ``E`` or ``nu`` outside its range (or not finite).
    """
    if not (math.isfinite(E) and E > 0):
        raise ValueError(
            f"Young's modulus{label} must be > 0, got {E!r} (model voids with the 'voids' RVE)"
        )
    if E > MAX_MODULUS:
        raise ValueError(
            f"Young's modulus{label} must be at most {MAX_MODULUS:g} (choose other units), "
            f"got {E!r}"
        )
    if not (math.isfinite(nu) and -1.0 < nu < 0.5):
        raise ValueError(f"Poisson's ratio{label} must lie in (-1, 0.5), got {nu!r}")


def check_writable(path: str | os.PathLike, *also: str, folder: bool = False) -> Path:
    """Check that a file (or a folder's files) can be written, creating nothing.

    A file's folder must exist; a folder (``folder=True``) may be missing, to be created with
    its missing parents when written: then its nearest existing parent must be a folder. The
    test is a probe file, removed at once (``os.access`` says yes to root even on ``/proc``).

    Args:
        path: the file, or the folder.
        also: suffixes of sibling files written too (e.g. ``".h5"`` next to an XDMF file).
        folder: ``path`` is a folder.

    Returns:
        ``path`` as a :class:`~pathlib.Path`, as given.

    Raises:
        ValueError: the folder does not exist (a file's) or is not a folder, a file is a folder,
            or it cannot be written (the caller names the argument).
    """
    if not str(path):
        raise ValueError(f"empty {'folder' if folder else 'file'} name")
    target = Path(path)
    if folder:
        full = Path(os.path.abspath(target))
        existing = full
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            where = "is" if existing == full else f"is inside {str(existing)!r}, which is"
            raise ValueError(f"{str(target)!r} {where} not a folder")
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError:
            raise ValueError(
                f"cannot write to {str(target)!r}: {str(existing)!r} is not writable; give a "
                "writable folder"
            ) from None
        return target
    parent = target.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist (create it first)"
        raise ValueError(f"folder {str(parent)!r} {what}")
    for file in (target, *(target.with_suffix(s) for s in also)):
        if file.is_dir():
            raise ValueError(f"{str(file)!r} is a folder, expected a file name")
        try:
            if file.exists():  # opened, not truncated; a FIFO without reader does not block
                os.close(os.open(file, os.O_WRONLY | os.O_NONBLOCK))
            else:  # a probe of a unique name: ranks checking the same path do not collide
                with tempfile.TemporaryFile(dir=parent):
                    pass
        except OSError as err:
            raise ValueError(f"cannot write {str(file)!r}: {err.strerror}") from None
    return target


# --- argparse ``type=`` callables -------------------------------------------------------------


def _bound(value: float) -> str:
    """A bound as the message shows it: ``1``, ``0.5``, ``2**64``, ``2**63 - 1``."""
    if not isinstance(value, int):
        return f"{value:g}"
    if value >= 10**6:
        k = value.bit_length()
        if value == 2 ** (k - 1):
            return f"2**{k - 1}"
        if 2**k - value < 1000:
            return f"2**{k} - {2**k - value}"
    return str(value)


def _interval(minimum, maximum, open_min: bool = False, open_max: bool = False) -> str:
    """``">= 1"``, ``"in (0, 0.5]"``, ``""`` (no bound)."""
    if minimum is None and maximum is None:
        return ""
    if maximum is None:
        return f"{'>' if open_min else '>='} {_bound(minimum)}"
    if minimum is None:
        return f"{'<' if open_max else '<='} {_bound(maximum)}"
    left, right = "(" if open_min else "[", ")" if open_max else "]"
    return f"in {left}{_bound(minimum)}, {_bound(maximum)}{right}"


def _inside(value, minimum, maximum, open_min: bool, open_max: bool) -> bool:
    if minimum is not None and (value <= minimum if open_min else value < minimum):
        return False
    return maximum is None or (value < maximum if open_max else value <= maximum)


def _refuse(what: str, text: str) -> argparse.ArgumentTypeError:
    shown = text if len(text) < 30 else text[:27] + "..."
    return argparse.ArgumentTypeError(f"expected {what}, got {shown!r}")


def integer(minimum: int | None = 1, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[minimum, maximum]`` (default: ``>= 1``).

    ``None`` leaves that side unbounded.

    Raises:
        argparse.ArgumentTypeError: ``"expected an integer in [0, 10], got '11'"``, when called.
    """
    what = " ".join(filter(None, ("an integer", _interval(minimum, maximum))))

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _refuse(what, text) from None
        if not _inside(value, minimum, maximum, False, False):
            raise _refuse(what, text)
        return value

    return parse


def positive(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number > 0 (not a bool), else a one-line error.

    The library-side twin of :func:`real` (``real(0, open_min=True)``) for arguments of
    functions and constructors.

    Raises:
        ValueError: ``"viscosity must be a finite number > 0, got 0.0"``.
    """
    if not (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def real(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in the interval (``open_*``: that bound excluded).

    ``None`` leaves that side unbounded (default: any finite number).

    Raises:
        argparse.ArgumentTypeError: ``"expected a finite number in (0, 1), got '1'"``, when
            called.
    """
    what = " ".join(
        filter(None, ("a finite number", _interval(minimum, maximum, open_min, open_max)))
    )

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and _inside(value, minimum, maximum, open_min, open_max)):
            raise _refuse(what, text)
        return value

    return parse


def _listed(item: Callable[[str], float], what: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        parts = [p.strip() for p in text.split(",")]
        try:
            if not all(parts):
                raise ValueError
            return [item(p) for p in parts]
        except (ValueError, argparse.ArgumentTypeError):
            raise _refuse(f"comma-separated {what}", text) from None

    return parse


def integer_list(minimum: int | None = 1, maximum: int | None = None) -> Callable[[str], list]:
    """An argparse ``type``: comma-separated integers, each in ``[minimum, maximum]``.

    Raises:
        argparse.ArgumentTypeError: ``"expected comma-separated integers >= 1, got 'abc'"``.
    """
    what = " ".join(filter(None, ("integers", _interval(minimum, maximum))))
    return _listed(integer(minimum, maximum), what)


def real_list(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> Callable[[str], list]:
    """An argparse ``type``: comma-separated finite numbers, each in the interval.

    Raises:
        argparse.ArgumentTypeError: ``"expected comma-separated finite numbers in (0, 1), …"``.
    """
    what = " ".join(
        filter(None, ("finite numbers", _interval(minimum, maximum, open_min, open_max)))
    )
    return _listed(real(minimum, maximum, open_min=open_min, open_max=open_max), what)
