"""What the RVE generators accept, checked without gmsh or dolfinx.

Names, dimensions, resolutions and the admissible volume fractions: the checks a command line
runs before any heavy import or mesh.

:mod:`fe2hmm.rve.generators` validates its arguments with these same functions, so the two
cannot disagree.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["DIMS", "MAX_RADIUS", "available", "check_request", "max_volume_fraction"]

#: The generators and the dimensions each supports.
DIMS: dict[str, tuple[int, ...]] = {
    "circle": (2,),
    "sphere": (3,),
    "fibre": (3,),
    "ellipse": (2,),
    "laminate": (2, 3),
    "random": (2, 3),
    "voids": (2, 3),
}

#: Largest radius (half extent) of a centred inclusion: a gap of 0.02 to the cell boundary.
MAX_RADIUS: float = 0.48

#: Default ``resolution`` (elements per unit length) by dimension.
_DEFAULT_RESOLUTION: dict[int, int] = {2: 32, 3: 12}

#: Default minimal gap of random inclusions, in mesh sizes, by dimension (3D meshes are coarse:
#: 1.5 h = 0.125 at the default resolution 12 leaves hardly any room for 8 balls).
_DEFAULT_GAP_IN_H: dict[int, float] = {2: 1.5, 3: 1.0}

#: Densest packing of equal disks / balls (Thue, Kepler-Hales), used to bound random fractions.
_PACKING_DENSITY: dict[int, float] = {2: math.pi / math.sqrt(12.0), 3: math.pi / math.sqrt(18.0)}


# --------------------------------------------------------------------------------------------
# Validation helpers (pure Python: they run before gmsh is touched)
# --------------------------------------------------------------------------------------------


def _ball_measure(radius: float, dim: int) -> float:
    """Area of a disk (2D) or volume of a ball (3D)."""
    return math.pi * radius**2 if dim == 2 else 4.0 / 3.0 * math.pi * radius**3


def _ball_radius(measure: float, dim: int) -> float:
    """Inverse of :func:`_ball_measure`."""
    return (
        math.sqrt(measure / math.pi) if dim == 2 else (3.0 * measure / (4.0 * math.pi)) ** (1 / 3)
    )


def _check_real(name: str, arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: {arg}={value!r} is not a finite real number")
    return float(value)


def _check_int(name: str, arg: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: {arg}={value!r} is invalid; expected an integer >= {minimum}")
    return int(value)


def _check_dim(name: str, dim: Any) -> int:
    dims = DIMS[name]
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or int(dim) not in dims:
        allowed = " or ".join(str(d) for d in dims)
        raise ValueError(f"{name}: dim={dim!r} is not supported; allowed dim: {allowed}")
    return int(dim)


def _check_resolution(name: str, resolution: Any, dim: int) -> int:
    if resolution is None:
        return _DEFAULT_RESOLUTION[dim]
    return _check_int(name, "resolution", resolution, 2)


def _check_fraction(name: str, volume_fraction: Any, maximum: float, *, open_max: bool) -> float:
    f = _check_real(name, "volume_fraction", volume_fraction)
    if f <= 0.0 or f > maximum or (open_max and f >= maximum):
        interval = f"(0, {maximum:.6g})" if open_max else f"(0, {maximum:.6g}]"
        raise ValueError(
            f"{name}: volume_fraction={volume_fraction!r} is outside the allowed "
            f"interval {interval}"
        )
    return f


def _check_aspect_ratio(aspect_ratio: Any) -> float:
    ar = _check_real("ellipse", "aspect_ratio", aspect_ratio)
    if ar < 1.0:
        raise ValueError(
            f"ellipse: aspect_ratio={aspect_ratio!r} is invalid; expected >= 1 "
            "(rotate by angle=pi/2 instead)"
        )
    return ar


def _ellipse_extent(aspect_ratio: float, angle: float) -> float:
    """Largest half extent along x or y of the ellipse with semi-axes ``1`` and ``1/aspect``."""
    c2, s2, q = math.cos(angle) ** 2, math.sin(angle) ** 2, 1.0 / aspect_ratio**2
    return max(math.sqrt(c2 + s2 * q), math.sqrt(s2 + c2 * q))


def _default_gap(dim: int, resolution: int) -> float:
    return _DEFAULT_GAP_IN_H[dim] / resolution


def _random_max_fraction(dim: int, count: int, min_gap: float) -> float:
    """Necessary (not sufficient) bound on the fraction of ``count`` random balls.

    The centres live in a cube of edge ``s = 1 - 2 (r + g)`` and are ``d = 2 r + g`` apart, so
    the balls of radius ``d / 2`` around them are disjoint inside a cube of edge ``s + d = 1 - g``
    and cannot fill more than the densest packing density of it; in addition a single ball must
    fit (``r + g <= 1/2``).
    """
    packed = (_PACKING_DENSITY[dim] * (1.0 - min_gap) ** dim / count) / _ball_measure(1.0, dim)
    r_packing = packed ** (1.0 / dim) - 0.5 * min_gap
    r_fit = 0.5 - min_gap
    return count * _ball_measure(max(0.0, min(r_packing, r_fit)), dim)


def _check_name(name: Any) -> None:
    if name not in DIMS:
        raise ValueError(
            f"unknown RVE generator name={name!r}; valid names: {', '.join(sorted(DIMS))}"
        )


def _default_dim(name: str) -> int:
    dims = DIMS[name]
    return dims[0] if len(dims) == 1 else 2


def max_volume_fraction(name: str, dim: int | None = None, **options: Any) -> float:
    """Geometrically admissible maximal volume fraction of a generator.

    * centred disk/ball/fibre/voids: radius at most :data:`MAX_RADIUS` ``= 0.48`` (a fixed gap of
      0.02 to the cell boundary, independent of the resolution);
    * ellipse: its half extents along x and y at most 0.48 (depends on ``aspect_ratio`` and
      ``angle``);
    * laminate: 1 (exclusive: the value itself is not admissible);
    * random: a necessary packing bound given ``count``, ``min_gap`` (or ``resolution``, whose
      default gap is 1.5 mesh sizes in 2D, 1 in 3D); random sequential addition usually fails
      well below it (the inclusions must also keep off the cell boundary).

    Args:
        name: registry name (see :func:`available`).
        dim: dimension; ``None`` means the only one of a single-dimension generator, else 2.
        **options: geometry options of the generator that change the bound (``aspect_ratio``,
            ``angle`` for the ellipse; ``count``, ``min_gap``, ``resolution`` for random).

    Returns:
        The largest admissible volume fraction.

    Raises:
        ValueError: unknown name or unsupported dimension; for random a negative ``min_gap``
            or one that leaves no room for ``count`` inclusions.
    """
    _check_name(name)
    d = _default_dim(name) if dim is None else _check_dim(name, dim)
    if name in ("circle", "sphere", "fibre", "voids"):
        return _ball_measure(MAX_RADIUS, 2 if name == "fibre" else d)
    if name == "ellipse":
        ar = _check_aspect_ratio(options.get("aspect_ratio", 2.0))
        angle = _check_real("ellipse", "angle", options.get("angle", 0.0))
        a = MAX_RADIUS / _ellipse_extent(ar, angle)
        return math.pi * a * a / ar
    if name == "laminate":
        return 1.0
    # random
    count = _check_int("random", "count", options.get("count", 8), 1)
    gap = options.get("min_gap")
    if gap is None:
        res = _check_resolution("random", options.get("resolution"), d)
        gap = _default_gap(d, res)
    gap = _check_real("random", "min_gap", gap)
    if gap < 0.0:
        raise ValueError(f"random: min_gap={gap!r} is invalid; expected >= 0")
    fmax = _random_max_fraction(d, count, gap)
    if fmax <= 0.0:
        raise ValueError(f"random: min_gap={gap:.4g} leaves no room for {count} inclusions")
    return fmax


def available(dim: int | None = None) -> list[str]:
    """Names of the registered generators.

    Args:
        dim: if given, only the generators supporting this dimension.

    Returns:
        Sorted list of names.
    """
    return sorted(n for n, dims in DIMS.items() if dim is None or dim in dims)


def check_request(
    name: Any,
    *,
    dim: int | None = None,
    volume_fraction: Any,
    resolution: Any = None,
    **options: Any,
) -> tuple[int, int]:
    """Check a generator request as :func:`fe2hmm.rve.create` would, without meshing.

    Args:
        name: registry name.
        dim: dimension (``None``: the generator's default).
        volume_fraction: the requested fraction.
        resolution: elements per unit length (``None``: the default).
        **options: generator options; only those that change the admissible fraction are read
            (``aspect_ratio``, ``angle``, ``count``, ``min_gap``).

    Returns:
        ``(dim, resolution)`` with the defaults filled in.

    Raises:
        ValueError: the message the generator would raise (unknown name, unsupported
            dimension, bad resolution, fraction outside the admissible interval).
    """
    _check_name(name)
    d = _default_dim(name) if dim is None else _check_dim(name, dim)
    res = _check_resolution(name, resolution, d)
    bound = {k: v for k, v in options.items() if k in ("aspect_ratio", "angle", "count", "min_gap")}
    if name == "random":
        bound.setdefault("resolution", res)
    maximum = max_volume_fraction(name, d, **bound)
    _check_fraction(name, volume_fraction, maximum, open_max=name == "laminate")
    return d, res
