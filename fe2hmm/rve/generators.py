"""Gmsh generators of periodic unit cells with phase tags.

Every generator builds the box ``[0, 1]^d`` with the OpenCASCADE kernel of gmsh, splits it into
phases by a boolean *fragment* (or *cut*, for voids), tags the phases with physical groups
(:data:`~fe2hmm.rve.cell.MATRIX` = 1, :data:`~fe2hmm.rve.cell.INCLUSION` = 2), makes the mesh
periodic with ``gmsh.model.mesh.setPeriodic`` (translations by the unit vectors) and converts it
to a rank-local dolfinx mesh of linear triangles/tetrahedra on ``MPI.COMM_SELF``. Nodes on
opposite faces of the box therefore coincide exactly up to the translation.

Geometric conventions:

* ``resolution`` is the target number of elements per unit length: the mesh size is
  ``h = 1 / resolution`` everywhere (``Mesh.MeshSizeMin = Mesh.MeshSizeMax = h``).
* Centred inclusions (``circle``, ``sphere``, ``fibre``, ``ellipse``, ``voids``) keep a fixed gap
  of ``0.02`` to the cell boundary: their radius (half extent for the ellipse) is at most
  :data:`MAX_RADIUS` ``= 0.48``, independent of the resolution, so the admissible volume
  fractions are static numbers (``pi 0.48^2 ≈ 0.724`` in 2D, ``4/3 pi 0.48^3 ≈ 0.463`` in 3D).
* ``random`` inclusions never cross the periodic boundary (a simplification: the cell is periodic
  but the microstructure is a non-periodic arrangement inside a margin).
* Volume fractions, nominal and meshed: a curved interface meshed by straight edges (flat faces)
  with its nodes on the exact curve encloses ``O((h/r)^2)`` less than the shape (1.7e-3 relative
  for the default circle, 1.9e-2 for the default sphere). After meshing, every curved inclusion
  (hole) of ``circle``, ``ellipse``, ``sphere``, ``fibre``, ``random`` and ``voids`` is scaled
  about its centre (the fibre transversely) to its exact volume, so its boundary nodes lie on the
  volume-preserving circle/ellipse/sphere; nodes on the box faces do not move (except the
  fibre's on its two end faces, moved alike in the transverse plane). The meshed
  fractions then equal the nominal ones to round-off, at the default resolutions for every
  admissible fraction (``random``: with its default ``min_gap``); ``laminate`` is exact anyway.
  On very coarse meshes the growth is limited to half the clearance (to the box and between
  inclusions) and skipped if it would crush a cell; then a warning is logged.
  :attr:`RVE.volume_fractions` always reports the meshed fractions (the integral of the cell
  tags) and :attr:`RVE.nominal_volume_fractions` the requested ones; effective tensors belong
  to the former (docs: "Volume fractions: nominal and meshed" in
  ``docs/theory/diffusion_cell_problem.md``).

gmsh hygiene: gmsh is initialised only if needed (never finalised), every cell is built in its
own fresh model which is removed afterwards, and all gmsh options touched are restored, so the
generators can be called hundreds of times in one process and interleaved with user gmsh work.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import numbers
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from fe2hmm import _compat  # noqa: F401  (dolfinx import order)

# isort: split

from mpi4py import MPI

import gmsh
from dolfinx.io import gmsh as _dolfinx_gmsh

from fe2hmm.rve.cell import INCLUSION, MATRIX, PHASE_NAMES, RVE, VOID
from fe2hmm.rve.limits import (
    _DEFAULT_RESOLUTION,
    DIMS,
    MAX_RADIUS,
    _ball_radius,
    _check_aspect_ratio,
    _check_dim,
    _check_fraction,
    _check_int,
    _check_name,
    _check_real,
    _check_resolution,
    _default_dim,
    _default_gap,
    _ellipse_extent,
    available,
    max_volume_fraction,
)

__all__ = [
    "GENERATORS",
    "MAX_RADIUS",
    "GeneratorInfo",
    "available",
    "circle",
    "create",
    "ellipse",
    "fibre",
    "laminate",
    "max_volume_fraction",
    "random_inclusions",
    "sphere",
    "voids",
]

#: Random sequential addition gives up after this many draws per inclusion ...
_ATTEMPTS_PER_INCLUSION: int = 2000
#: ... and starts afresh (same generator stream) after this many consecutive rejections.
_RESTART_AFTER: int = 200

#: Tolerance of the geometric queries (bounding boxes, centres of mass) on the unit box.
_GEOMETRY_TOL: float = 1e-6

#: Relative difference of meshed and nominal volume fractions above which a warning is logged.
_FRACTION_RTOL: float = 1e-4

_logger = logging.getLogger(__name__)
_lock = threading.RLock()
_model_counter = itertools.count()


# --------------------------------------------------------------------------------------------
# gmsh helpers shared by all generators
# --------------------------------------------------------------------------------------------


@contextmanager
def _gmsh_model(name: str, h: float) -> Iterator[None]:
    """Fresh gmsh model with our meshing options; everything is undone on exit."""
    with _lock:
        if not gmsh.isInitialized():
            # interruptible=False: do not replace Python's SIGINT handler (and work off the main
            # thread); readConfigFiles=False: results must not depend on a user's gmshrc.
            gmsh.initialize(readConfigFiles=False, interruptible=False)
        options = {
            "General.Terminal": 0,
            "General.NumThreads": 1,
            "Mesh.MeshSizeMin": h,
            "Mesh.MeshSizeMax": h,
            "Mesh.MeshSizeFactor": 1,
            "Mesh.MeshSizeFromCurvature": 0,
            "Mesh.Algorithm": 6,
            # Laplacian smoothing halves the speed of 2D meshing for a small gain in quality
            # (minimal triangle gamma 0.57 instead of 0.73 for a circle at resolution 32).
            "Mesh.Smoothing": 0,
            "Mesh.Algorithm3D": 1,
            "Mesh.ElementOrder": 1,
            "Mesh.RecombineAll": 0,
            "Mesh.SubdivisionAlgorithm": 0,
        }
        saved = {key: gmsh.option.getNumber(key) for key in options}
        previous = gmsh.model.getCurrent()
        model = f"fe2hmm_rve_{name}_{next(_model_counter)}"
        try:
            for key, value in options.items():
                gmsh.option.setNumber(key, value)
            gmsh.model.add(model)
            yield
        finally:
            if model in gmsh.model.list():
                gmsh.model.setCurrent(model)
                gmsh.model.remove()
            if previous in gmsh.model.list():
                gmsh.model.setCurrent(previous)
            for key, value in saved.items():
                gmsh.option.setNumber(key, value)


def _add_box(dim: int) -> int:
    """OCC unit square/cube; returns its tag."""
    occ = gmsh.model.occ
    return occ.addRectangle(0, 0, 0, 1, 1) if dim == 2 else occ.addBox(0, 0, 0, 1, 1, 1)


def _add_ball(dim: int, centre: np.ndarray, radius: float) -> int:
    """OCC disk (2D, in the plane z = 0) or ball (3D); returns its tag."""
    occ = gmsh.model.occ
    if dim == 2:
        return occ.addDisk(float(centre[0]), float(centre[1]), 0.0, radius, radius)
    return occ.addSphere(float(centre[0]), float(centre[1]), float(centre[2]), radius)


def _fragment(dim: int, inclusions: list[int]) -> dict[int, list[int]]:
    """Fragment the unit box by ``inclusions``; entity tags of each phase."""
    box = _add_box(dim)
    _, mapping = gmsh.model.occ.fragment([(dim, box)], [(dim, t) for t in inclusions])
    # mapping[0] holds every piece of the box, mapping[1:] the pieces of the inclusions.
    inclusion = sorted({t for piece in mapping[1:] for (d, t) in piece if d == dim})
    matrix = sorted({t for (d, t) in mapping[0] if d == dim} - set(inclusion))
    return {MATRIX: matrix, INCLUSION: inclusion}


def _cut(dim: int, holes: list[int]) -> dict[int, list[int]]:
    """Remove ``holes`` from the unit box; the remaining entity tags form the matrix."""
    box = _add_box(dim)
    out, _ = gmsh.model.occ.cut([(dim, box)], [(dim, t) for t in holes])
    return {MATRIX: sorted(t for (d, t) in out if d == dim)}


def _face_entities(dim: int, axis: int, value: float) -> list[int]:
    """Tags of the boundary entities (dimension ``dim - 1``) lying on the plane x_axis = value."""
    lo = [-_GEOMETRY_TOL] * 3
    hi = [1.0 + _GEOMETRY_TOL] * 3
    if dim == 2:
        lo[2], hi[2] = -_GEOMETRY_TOL, _GEOMETRY_TOL
    lo[axis], hi[axis] = value - _GEOMETRY_TOL, value + _GEOMETRY_TOL
    return [t for (_, t) in gmsh.model.getEntitiesInBoundingBox(*lo, *hi, dim - 1)]


def _signature(dim: int, tag: int) -> np.ndarray:
    """Translation-covariant fingerprint of an entity: centre of mass and mass."""
    occ = gmsh.model.occ
    return np.array([*occ.getCenterOfMass(dim, tag), occ.getMass(dim, tag)])


def _translation(axis: int) -> list[float]:
    """Row-major 4x4 affine matrix of the translation by the unit vector ``e_axis``."""
    affine = np.eye(4)
    affine[axis, 3] = 1.0
    return affine.ravel().tolist()


def _make_periodic(dim: int) -> None:
    """Declare every entity on the face x_i = 1 a translated copy of its partner on x_i = 0."""
    for axis in range(dim):
        lower = _face_entities(dim, axis, 0.0)
        upper = _face_entities(dim, axis, 1.0)
        shift = np.zeros(4)
        shift[axis] = 1.0
        keys = {t: _signature(dim - 1, t) for t in lower}
        slaves, masters = [], []
        for t in upper:
            sig = _signature(dim - 1, t) - shift
            match = [m for m, s in keys.items() if np.allclose(s, sig, atol=_GEOMETRY_TOL)]
            if len(match) != 1:
                raise RuntimeError(
                    f"fe2hmm internal error: boundary entity {t} on face x{axis}=1 has "
                    f"{len(match)} partners on x{axis}=0"
                )
            slaves.append(t)
            masters.append(match[0])
        if len(slaves) != len(lower):
            raise RuntimeError(
                f"fe2hmm internal error: faces x{axis}=0 and x{axis}=1 have {len(lower)} and "
                f"{len(upper)} boundary entities"
            )
        gmsh.model.mesh.setPeriodic(dim - 1, slaves, masters, _translation(axis))


class _Correction(NamedTuple):
    """How a generator corrects the volume of its meshed curved inclusions (or holes).

    Attributes:
        axes: the coordinate axes scaled about each inclusion's centre (all for disks, ellipses
            and balls; ``(0, 1)`` for the fibre along z).
        max_scale: returns the largest admissible scale of the inclusions, which keeps at
            least half the clearance to the cell boundary and between inclusions (evaluated
            when the mesh is corrected).
    """

    axes: tuple[int, ...]
    max_scale: Callable[[], float]


def _max_scale(radius: float, clearance: float) -> float:
    """Scale of ``radius`` that uses up half of ``clearance`` (1 when there is none)."""
    return 1.0 + 0.5 * max(clearance, 0.0) / radius


def _node_coordinates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates ``(n, 3)`` and tags ``(n,)`` of all mesh nodes, and the map tag -> row."""
    tags, coords, _ = gmsh.model.mesh.getNodes()
    tags = tags.astype(np.int64)
    index = np.zeros(int(tags.max()) + 1, dtype=np.int64)
    index[tags] = np.arange(tags.size)
    return coords.reshape(-1, 3), tags, index


def _signed_volumes(dim: int, entities: list[int], x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Signed volumes times ``dim!`` of the linear simplices meshed on ``entities``."""
    out = []
    for tag in entities:
        for nodes in gmsh.model.mesh.getElements(dim, tag)[2]:
            p = x[index[nodes.astype(np.int64)], :dim].reshape(-1, dim + 1, dim)
            out.append(np.linalg.det(p[:, 1:] - p[:, :1]))
    return np.concatenate(out) if out else np.zeros(0)


def _hole_boundaries(dim: int, matrix: list[int]) -> list[int]:
    """The (dim-1)-entities bounding the holes: matrix boundary entities off the box faces."""
    inner = []
    for _, tag in gmsh.model.getBoundary([(dim, t) for t in matrix], oriented=False):
        box = np.reshape(gmsh.model.getBoundingBox(dim - 1, abs(tag)), (2, 3))[:, :dim]
        if np.all(box[0] > _GEOMETRY_TOL) and np.all(box[1] < 1.0 - _GEOMETRY_TOL):
            inner.append(abs(tag))
    return inner


def _correct_volumes(dim: int, phases: dict[int, list[int]], correction: _Correction) -> None:
    """Scale every meshed inclusion (hole) about its centre to the volume of its exact shape.

    The boundary nodes of a curved inclusion lie on the exact curve/surface, so its inscribed
    polygon/polyhedron is smaller than the shape by ``O((h/r)^2)``. Scaling all nodes of the
    inclusion (for a hole: of its boundary) by ``sigma = (V_exact / V_mesh)^(1/k)`` along the
    ``k`` axes of ``correction`` makes the meshed volume exact (up to round-off): the boundary
    nodes then lie on the shape scaled by ``sigma``, the volume-preserving one. ``sigma`` is
    clipped to ``correction.max_scale()``; the matrix cells next to the interface are stretched by
    ``(sigma - 1) r``, a few per cent of ``h`` at most. If that would invert a cell or halve its
    volume (very coarse meshes), the mesh is left as it is. Either way the RVE reports the
    fractions of the final mesh.
    """
    occ = gmsh.model.occ
    x, node_tags, index = _node_coordinates()
    axes = list(correction.axes)
    max_scale = correction.max_scale()
    groups = []  # (node tags, centre, exact volume, meshed volume)
    if phases.get(INCLUSION):
        for tag in phases[INCLUSION]:
            nodes = gmsh.model.mesh.getNodes(dim, tag, includeBoundary=True)[0]
            meshed = abs(_signed_volumes(dim, [tag], x, index)).sum() / math.factorial(dim)
            groups.append((nodes, occ.getCenterOfMass(dim, tag), occ.getMass(dim, tag), meshed))
    else:
        boundaries = _hole_boundaries(dim, phases[MATRIX])
        if not boundaries:
            return
        nodes = np.unique(
            np.concatenate(
                [gmsh.model.mesh.getNodes(dim - 1, b, includeBoundary=True)[0] for b in boundaries]
            )
        )
        masses = np.array([occ.getMass(dim - 1, b) for b in boundaries])
        centres = np.array([occ.getCenterOfMass(dim - 1, b) for b in boundaries])
        matrix = abs(_signed_volumes(dim, phases[MATRIX], x, index)).sum() / math.factorial(dim)
        exact = 1.0 - sum(occ.getMass(dim, t) for t in phases[MATRIX])
        groups.append((nodes, masses @ centres / masses.sum(), exact, 1.0 - matrix))
    entities = phases[MATRIX] + phases.get(INCLUSION, [])
    before = _signed_volumes(dim, entities, x, index)
    moved = x.copy()
    for nodes, centre, exact, meshed in groups:
        if not meshed > 0.0:
            continue
        sigma = min(max_scale, (exact / meshed) ** (1.0 / len(axes)))
        rows = index[nodes.astype(np.int64)]
        c = np.asarray(centre)[axes]
        moved[np.ix_(rows, axes)] = c + sigma * (x[np.ix_(rows, axes)] - c)
    after = _signed_volumes(dim, entities, moved, index)
    if np.any(after * before <= 0.0) or np.any(np.abs(after) < 0.5 * np.abs(before)):
        _logger.debug("volume correction skipped: it would invert or crush a cell")
        return
    for row in np.flatnonzero(np.any(moved != x, axis=1)):
        gmsh.model.mesh.setNode(int(node_tags[row]), moved[row].tolist(), [])


def _generate(
    name: str,
    dim: int,
    resolution: int,
    build: Callable[[], dict[int, list[int]]],
    nominal: dict[int, float],
    parameters: dict[str, Any],
    correction: _Correction | None = None,
) -> RVE:
    """Run ``build`` (OCC geometry → phase entities) in a fresh model, mesh it, return the RVE.

    With a ``correction`` the meshed inclusions are scaled to their exact volumes
    (:func:`_correct_volumes`) before the mesh is handed to dolfinx.
    """
    with _gmsh_model(name, 1.0 / resolution):
        phases = build()
        gmsh.model.occ.synchronize()
        for tag, entities in phases.items():
            if entities:
                gmsh.model.addPhysicalGroup(dim, entities, tag, name=PHASE_NAMES[tag])
        _make_periodic(dim)
        gmsh.model.mesh.generate(dim)
        if correction is not None:
            _correct_volumes(dim, phases, correction)
        data = _dolfinx_gmsh.model_to_mesh(gmsh.model, MPI.COMM_SELF, 0, gdim=dim)
    data.cell_tags.name = "phases"
    cell = RVE(
        mesh=data.mesh,
        cell_tags=data.cell_tags,
        lower=np.zeros(dim),
        upper=np.ones(dim),
        name=name,
        nominal_volume_fractions=nominal,
        parameters=parameters,
    )
    meshed = cell.volume_fractions
    off = {t: meshed[t] for t, f in nominal.items() if abs(meshed[t] - f) > _FRACTION_RTOL * f}
    if off:
        _logger.warning(
            "%s cell at resolution %d: meshed volume fractions %s differ from the nominal %s "
            "(the mesh is too coarse to correct); effective properties belong to the meshed ones",
            name,
            resolution,
            off,
            {t: nominal[t] for t in off},
        )
    return cell


def _centred_ball(
    name: str, dim: int, volume_fraction: float, resolution: int, *, void: bool
) -> RVE:
    radius = _ball_radius(volume_fraction, dim)
    centre = np.full(dim, 0.5)

    def build() -> dict[int, list[int]]:
        ball = _add_ball(dim, centre, radius)
        return _cut(dim, [ball]) if void else _fragment(dim, [ball])

    phase = VOID if void else INCLUSION
    fractions = {MATRIX: 1.0 - volume_fraction, phase: volume_fraction}
    parameters: dict[str, Any] = {"volume_fraction": volume_fraction, "resolution": resolution}
    if void:
        parameters["dim"] = dim
    correction = _Correction(tuple(range(dim)), lambda: _max_scale(radius, 0.5 - radius))
    return _generate(name, dim, resolution, build, fractions, parameters, correction)


# --------------------------------------------------------------------------------------------
# Public generators
# --------------------------------------------------------------------------------------------


def circle(volume_fraction: float, resolution: int = 32) -> RVE:
    """2D cell with one centred circular inclusion of radius ``sqrt(f / pi)``.

    The meshed polygon is scaled to the disk's area (meshed fraction = ``f`` to round-off; see
    the module notes for very coarse meshes).

    Args:
        volume_fraction: area fraction ``f`` of the inclusion, in ``(0, pi 0.48^2 ≈ 0.724]``.
        resolution: elements per unit length (mesh size ``1 / resolution``), at least 2.

    Returns:
        The periodic cell, phases :data:`MATRIX` and :data:`INCLUSION`.

    Raises:
        ValueError: invalid volume fraction or resolution.
    """
    res = _check_resolution("circle", resolution, 2)
    f = _check_fraction("circle", volume_fraction, max_volume_fraction("circle", 2), open_max=False)
    return _centred_ball("circle", 2, f, res, void=False)


def sphere(volume_fraction: float, resolution: int = 12) -> RVE:
    """3D cell with one centred spherical inclusion of radius ``(3 f / (4 pi))^(1/3)``.

    The meshed polyhedron is scaled to the ball's volume (meshed fraction = ``f`` to round-off;
    see the module notes for very coarse meshes).

    Args:
        volume_fraction: volume fraction ``f`` of the ball, in ``(0, 4/3 pi 0.48^3 ≈ 0.463]``.
        resolution: elements per unit length (mesh size ``1 / resolution``), at least 2.

    Returns:
        The periodic cell, phases :data:`MATRIX` and :data:`INCLUSION`.

    Raises:
        ValueError: invalid volume fraction or resolution.
    """
    res = _check_resolution("sphere", resolution, 3)
    f = _check_fraction("sphere", volume_fraction, max_volume_fraction("sphere", 3), open_max=False)
    return _centred_ball("sphere", 3, f, res, void=False)


def fibre(volume_fraction: float, resolution: int = 12) -> RVE:
    """3D cell with a centred circular cylinder along z through the whole cell (periodic in z).

    The meshed fibre is scaled transversely (x, y about the axis) to the cylinder's volume
    (meshed fraction = ``f`` to round-off; see the module notes for very coarse meshes).

    Args:
        volume_fraction: volume fraction ``f = pi r^2`` of the fibre, in ``(0, ≈0.724]``.
        resolution: elements per unit length (mesh size ``1 / resolution``), at least 2.

    Returns:
        The periodic cell, phases :data:`MATRIX` and :data:`INCLUSION`.

    Raises:
        ValueError: invalid volume fraction or resolution.
    """
    res = _check_resolution("fibre", resolution, 3)
    f = _check_fraction("fibre", volume_fraction, max_volume_fraction("fibre", 3), open_max=False)
    radius = math.sqrt(f / math.pi)

    def build() -> dict[int, list[int]]:
        cylinder = gmsh.model.occ.addCylinder(0.5, 0.5, 0.0, 0.0, 0.0, 1.0, radius)
        return _fragment(3, [cylinder])

    fractions = {MATRIX: 1.0 - f, INCLUSION: f}
    parameters = {"volume_fraction": f, "resolution": res}
    correction = _Correction((0, 1), lambda: _max_scale(radius, 0.5 - radius))
    return _generate("fibre", 3, res, build, fractions, parameters, correction)


def ellipse(
    volume_fraction: float, aspect_ratio: float = 2.0, angle: float = 0.0, resolution: int = 32
) -> RVE:
    """2D cell with one centred elliptical inclusion.

    The semi-axes are ``a`` (along the direction at ``angle`` radians from x) and
    ``b = a / aspect_ratio``, with ``pi a b = f``. The ellipse must stay within
    :data:`MAX_RADIUS` of the centre along x and y. The meshed polygon is scaled to the ellipse's
    area (meshed fraction = ``f`` to round-off; see the module notes for very coarse meshes).

    Args:
        volume_fraction: area fraction ``f``, in ``(0, max_volume_fraction("ellipse", 2, ...)]``.
        aspect_ratio: ``a / b >= 1`` (use ``angle = pi/2`` for an ellipse elongated along y).
        angle: orientation of the major axis, radians from the x axis.
        resolution: elements per unit length (mesh size ``1 / resolution``), at least 2.

    Returns:
        The periodic cell, phases :data:`MATRIX` and :data:`INCLUSION`.

    Raises:
        ValueError: invalid volume fraction, aspect ratio, angle or resolution.
    """
    res = _check_resolution("ellipse", resolution, 2)
    ar = _check_aspect_ratio(aspect_ratio)
    theta = _check_real("ellipse", "angle", angle)
    fmax = max_volume_fraction("ellipse", 2, aspect_ratio=ar, angle=theta)
    f = _check_fraction("ellipse", volume_fraction, fmax, open_max=False)
    a = math.sqrt(f * ar / math.pi)
    b = a / ar

    def build() -> dict[int, list[int]]:
        occ = gmsh.model.occ
        disk = occ.addDisk(0.5, 0.5, 0.0, a, b)
        if theta != 0.0:
            occ.rotate([(2, disk)], 0.5, 0.5, 0.0, 0.0, 0.0, 1.0, theta)
        return _fragment(2, [disk])

    fractions = {MATRIX: 1.0 - f, INCLUSION: f}
    parameters = {"volume_fraction": f, "aspect_ratio": ar, "angle": theta, "resolution": res}
    extent = a * _ellipse_extent(ar, theta)
    correction = _Correction((0, 1), lambda: _max_scale(extent, 0.5 - extent))
    return _generate("ellipse", 2, res, build, fractions, parameters, correction)


def laminate(
    volume_fraction: float, dim: int = 2, normal: int = 0, resolution: int | None = None
) -> RVE:
    """Layered cell: the inclusion is the centred slab ``|x_normal - 1/2| <= f/2``.

    The mesh conforms to the two planar interfaces, so phase volumes are exact.

    Args:
        volume_fraction: thickness ``f`` of the inclusion layer, in ``(0, 1)``.
        dim: 2 or 3.
        normal: axis (0, 1 or 2 in 3D) normal to the layers.
        resolution: elements per unit length; ``None`` means 32 in 2D and 12 in 3D.

    Returns:
        The periodic cell, phases :data:`MATRIX` and :data:`INCLUSION`.

    Raises:
        ValueError: invalid volume fraction, dimension, normal or resolution.
    """
    d = _check_dim("laminate", dim)
    res = _check_resolution("laminate", resolution, d)
    f = _check_fraction(
        "laminate", volume_fraction, max_volume_fraction("laminate", d), open_max=True
    )
    if (
        isinstance(normal, bool)
        or not isinstance(normal, numbers.Integral)
        or normal not in range(d)
    ):
        raise ValueError(f"laminate: normal={normal!r} is invalid; expected an axis in 0..{d - 1}")
    axis = int(normal)

    def build() -> dict[int, list[int]]:
        corner, size = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
        corner[axis], size[axis] = 0.5 - 0.5 * f, f
        occ = gmsh.model.occ
        if d == 2:
            slab = occ.addRectangle(corner[0], corner[1], 0.0, size[0], size[1])
        else:
            slab = occ.addBox(*corner, *size)
        return _fragment(d, [slab])

    fractions = {MATRIX: 1.0 - f, INCLUSION: f}
    parameters = {"volume_fraction": f, "dim": d, "normal": axis, "resolution": res}
    return _generate("laminate", d, res, build, fractions, parameters)


def _place_random(
    count: int, radius: float, gap: float, dim: int, seed: int | None, volume_fraction: float
) -> np.ndarray:
    """Random sequential addition of ``count`` centres; raises ValueError when jammed."""
    rng = np.random.default_rng(seed)
    lo, hi = radius + gap, 1.0 - radius - gap
    distance = 2.0 * radius + gap
    centres = np.empty((count, dim))
    placed, attempts, rejections, max_attempts = 0, 0, 0, _ATTEMPTS_PER_INCLUSION * count
    while placed < count:
        if attempts >= max_attempts:
            raise ValueError(
                f"random: placed only {placed} of count={count} inclusions of radius "
                f"{radius:.4g} (volume_fraction={volume_fraction!r}, dim={dim}, "
                f"min_gap={gap:.4g}) after {max_attempts} attempts; use a smaller "
                "volume_fraction, fewer inclusions (count), a smaller min_gap or another seed"
            )
        attempts += 1
        if rejections >= _RESTART_AFTER:  # jammed: start a new configuration
            placed, rejections = 0, 0
        candidate = rng.uniform(lo, hi, size=dim)
        if placed == 0 or np.min(np.linalg.norm(centres[:placed] - candidate, axis=1)) >= distance:
            centres[placed] = candidate
            placed += 1
            rejections = 0
        else:
            rejections += 1
    return centres


def _random_clearance(centres: np.ndarray, radius: float) -> float:
    """Half the smallest gap between two inclusions, or the smallest gap to the cell boundary.

    Growing every radius by half of it keeps at least half of every gap.
    """
    to_box = float(np.min(np.minimum(centres, 1.0 - centres))) - radius
    if len(centres) < 2:
        return to_box
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    distance[np.diag_indices(len(centres))] = np.inf
    return min(to_box, 0.5 * (float(distance.min()) - 2.0 * radius))


def random_inclusions(
    volume_fraction: float,
    count: int = 8,
    seed: int | None = 0,
    min_gap: float | None = None,
    dim: int = 2,
    resolution: int | None = None,
) -> RVE:
    """Cell with ``count`` equal, non-overlapping disks (2D) or balls (3D) at random positions.

    Centres are drawn by random sequential addition with ``numpy.random.default_rng(seed)``
    (restarted from scratch after 200 consecutive rejections, within ``2000 * count`` draws);
    inclusions stay fully inside the cell (they never cross the periodic boundary, a
    simplification) and keep a surface distance of at least ``min_gap`` from each other and from
    the cell boundary. The result is reproducible for a given seed. Each meshed inclusion is
    scaled to its exact volume (by at most half the clearance), so the meshed fraction is ``f``
    to round-off unless inclusions drawn very close together on a coarse mesh limit the growth.

    Args:
        volume_fraction: total inclusion fraction ``f``, in ``(0, max_volume_fraction(...)]``
            (a necessary packing bound: random addition usually jams well below it).
        count: number of inclusions, at least 1.
        seed: seed of ``numpy.random.default_rng`` (``None``: not reproducible).
        min_gap: minimal gap; ``None`` means 1.5 mesh sizes in 2D and 1 mesh size in 3D.
            In 3D at the default resolution 12 this still limits 8 balls to ``f`` of about 0.1;
            raise the resolution (smaller gap) or lower ``count`` for more.
        dim: 2 or 3.
        resolution: elements per unit length; ``None`` means 32 in 2D and 12 in 3D.

    Returns:
        The periodic cell, phases :data:`MATRIX` and :data:`INCLUSION`.

    Raises:
        ValueError: invalid arguments, or the inclusions could not be placed within
            ``2000 * count`` random draws.
    """
    d = _check_dim("random", dim)
    res = _check_resolution("random", resolution, d)
    n = _check_int("random", "count", count, 1)
    if seed is not None:
        seed = _check_int("random", "seed", seed, 0)
    gap = _default_gap(d, res) if min_gap is None else _check_real("random", "min_gap", min_gap)
    fmax = max_volume_fraction("random", d, count=n, min_gap=gap, resolution=res)  # gap >= 0
    f = _check_fraction("random", volume_fraction, fmax, open_max=False)
    radius = _ball_radius(f / n, d)
    centres = _place_random(n, radius, gap, d, seed, volume_fraction)

    def build() -> dict[int, list[int]]:
        return _fragment(d, [_add_ball(d, c, radius) for c in centres])

    fractions = {MATRIX: 1.0 - f, INCLUSION: f}
    parameters = {
        "volume_fraction": f,
        "count": n,
        "seed": seed,
        "min_gap": gap,
        "dim": d,
        "resolution": res,
    }
    correction = _Correction(
        tuple(range(d)), lambda: _max_scale(radius, _random_clearance(centres, radius))
    )
    return _generate("random", d, res, build, fractions, parameters, correction)


def voids(volume_fraction: float, dim: int = 2, resolution: int | None = None) -> RVE:
    """Porous cell: a centred circular (2D) or spherical (3D) hole that is not meshed.

    Only the matrix is meshed (tag :data:`MATRIX`); the void fraction is reported under the key
    :data:`VOID` ``= 0`` of ``volume_fractions`` (the unmeshed rest of the box). The hole's
    surface nodes are scaled to the exact hole volume (meshed fraction = ``f`` to round-off; see
    the module notes for very coarse meshes).

    Args:
        volume_fraction: void fraction ``f``, in ``(0, ≈0.724]`` (2D) or ``(0, ≈0.463]`` (3D).
        dim: 2 or 3.
        resolution: elements per unit length; ``None`` means 32 in 2D and 12 in 3D.

    Returns:
        The periodic cell with the single phase :data:`MATRIX`.

    Raises:
        ValueError: invalid volume fraction, dimension or resolution.
    """
    d = _check_dim("voids", dim)
    res = _check_resolution("voids", resolution, d)
    f = _check_fraction("voids", volume_fraction, max_volume_fraction("voids", d), open_max=False)
    return _centred_ball("voids", d, f, res, void=True)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


class GeneratorInfo(NamedTuple):
    """Registry entry of a generator.

    Attributes:
        function: the generator function.
        dims: supported dimensions.
        max_volume_fraction: admissible maximum by dimension for the default options (see
            :func:`max_volume_fraction` for other options).
    """

    function: Callable[..., RVE]
    dims: tuple[int, ...]
    max_volume_fraction: dict[int, float]


GENERATORS: dict[str, GeneratorInfo] = {
    "circle": GeneratorInfo(circle, DIMS["circle"], {}),
    "sphere": GeneratorInfo(sphere, DIMS["sphere"], {}),
    "fibre": GeneratorInfo(fibre, DIMS["fibre"], {}),
    "ellipse": GeneratorInfo(ellipse, DIMS["ellipse"], {}),
    "laminate": GeneratorInfo(laminate, DIMS["laminate"], {}),
    "random": GeneratorInfo(random_inclusions, DIMS["random"], {}),
    "voids": GeneratorInfo(voids, DIMS["voids"], {}),
}
"""Registry: name → (function, allowed dims, max volume fraction by dim at default options)."""

for _name, _info in GENERATORS.items():
    _info.max_volume_fraction.update({d: max_volume_fraction(_name, d) for d in _info.dims})
del _name, _info


def create(
    name: str,
    *,
    dim: int | None = None,
    volume_fraction: float,
    resolution: int | None = None,
    **options: Any,
) -> RVE:
    """Generate a cell by registry name.

    Args:
        name: one of :func:`available` (``circle``, ``ellipse``, ``fibre``, ``laminate``,
            ``random``, ``sphere``, ``voids``).
        dim: dimension; ``None`` means the only one of a single-dimension generator, else 2.
        volume_fraction: inclusion (or void) volume fraction.
        resolution: elements per unit length; ``None`` means the generator default (32 in 2D,
            12 in 3D).
        **options: further generator arguments (``aspect_ratio``, ``angle``, ``normal``,
            ``count``, ``seed``, ``min_gap``).

    Returns:
        The periodic cell, with ``name`` set to the registry name.

    Raises:
        ValueError: unknown name, unsupported dimension, unknown option or invalid values.
    """
    _check_name(name)
    info = GENERATORS[name]
    d = _default_dim(name) if dim is None else _check_dim(name, dim)
    accepted = set(inspect.signature(info.function).parameters) - {"volume_fraction", "dim"}
    accepted.discard("resolution")
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none"
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; valid options: {valid}")
    kwargs: dict[str, Any] = dict(options, volume_fraction=volume_fraction)
    kwargs["resolution"] = _DEFAULT_RESOLUTION[d] if resolution is None else resolution
    if len(info.dims) > 1:
        kwargs["dim"] = d
    return info.function(**kwargs)
