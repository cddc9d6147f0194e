r"""Cells of one family by morphing a few reference meshes: no gmsh in the hot path.

The cells of a generator family (``circle``, ``sphere``, ``fibre``, ``ellipse``, ``voids``,
``laminate`` at one resolution and one set of options) differ only in the size of their centred
inclusion. :class:`CellFamily` meshes a *reference* cell once and makes the cell of any other
volume fraction by moving its nodes: the inclusion (hole) is scaled about the centre by
:math:`\sigma`, the matrix is stretched along each ray from the centre, linearly between the
interface and the box, and the box faces do not move. Topology, phase tags and the periodic
node pairs are the reference's, so a cell problem built on one cell of the family serves all of
them (sparsity pattern, periodic map, compiled forms and the symbolic factorisation are reused:
see :class:`fe2hmm.micro.cells.diffusion.DiffusionCellProblem`).

Which reference. With the inclusion's half extent :math:`e` (radius; half the layer thickness
for ``laminate``) and the gap :math:`g = 1/2 - e` to the box, a morph from :math:`e_0` to
:math:`e` stretches the inclusion by :math:`e/e_0` and the gap by :math:`g/g_0`. The references
sit on a fixed ladder, equally spaced in :math:`u = \ln(e/g)`, at spacing
:math:`2\ln S`: the nearest rung is never more than :math:`\ln S` away in :math:`u`, and both
stretches (of opposite sense) stay within :math:`[1/S, S]` (:data:`MAX_STRETCH` ``S = 1.25``).
The ladder depends on nothing but the family, so the cell of a volume fraction is the same
whatever was requested before it (results do not depend on the order of requests or on the MPI
partition).

Meshed = nominal volume fractions: the generators scale each meshed inclusion to its exact
volume; scaling it by :math:`\sigma = (f / f_0)^{1/k}` (:math:`k` scaled axes) keeps that to
round-off. A morph that would invert or crush an element (not seen within the ladder's bound)
falls back to meshing the cell with gmsh.

The morphed cells share one mesh object: each :class:`~fe2hmm.rve.cell.RVE` of the family carries
its node coordinates (:attr:`~fe2hmm.rve.cell.RVE.node_coordinates`) and writes them into the
shared mesh with :meth:`~fe2hmm.rve.cell.RVE.place_nodes` (cell problems do so before they
assemble). Use :func:`fe2hmm.rve.create` for an independent cell.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from fe2hmm._compat import geometry_dofmap
from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE, VOID
from fe2hmm.rve.limits import MAX_RADIUS, _ellipse_extent

__all__ = ["MAX_STRETCH", "MORPHABLE", "CellFamily"]

#: Largest stretch (and compression) of the inclusion and of the gap in a morph.
MAX_STRETCH: float = 1.25

#: Generators whose cells can be morphed (centred inclusions, layers).
MORPHABLE: tuple[str, ...] = ("circle", "sphere", "fibre", "ellipse", "voids", "laminate")

#: A morphed element whose volume falls below this fraction of the reference's is refused.
_CRUSHED: float = 0.2


class _Shape(NamedTuple):
    """How a family's inclusion grows: the scaled axes, ``f = unit * extent**k``, the shape norm."""

    axes: tuple[int, ...]
    unit: float  # volume fraction at half extent 1
    max_extent: float
    norm: Any  # (m, len(axes)) offsets -> (m,) shape norm, 1 on the unit-extent shape


def _shape(name: str, dim: int, options: dict[str, Any]) -> _Shape:
    if name in ("circle", "sphere", "voids"):
        unit = math.pi if dim == 2 else 4.0 / 3.0 * math.pi
        return _Shape(tuple(range(dim)), unit, MAX_RADIUS, lambda d: np.linalg.norm(d, axis=1))
    if name == "fibre":
        return _Shape((0, 1), math.pi, MAX_RADIUS, lambda d: np.linalg.norm(d, axis=1))
    if name == "ellipse":
        ar = float(options.get("aspect_ratio", 2.0))
        theta = float(options.get("angle", 0.0))
        ext = _ellipse_extent(ar, theta)  # half extent along x/y of semi-axes (1, 1/ar)
        c, s = math.cos(theta), math.sin(theta)

        def norm(d: np.ndarray) -> np.ndarray:  # semi-axes (1/ext, 1/(ar ext)): extent 1
            q1 = (d[:, 0] * c + d[:, 1] * s) * ext
            q2 = (-d[:, 0] * s + d[:, 1] * c) * ext * ar
            return np.hypot(q1, q2)

        return _Shape((0, 1), math.pi / (ar * ext * ext), MAX_RADIUS, norm)
    if name == "laminate":
        normal = int(options.get("normal", 0))
        return _Shape((normal,), 2.0, 0.5, lambda d: np.abs(d[:, 0]))
    raise ValueError(f"cannot morph {name!r} cells; morphable generators: {MORPHABLE}")


class CellFamily:
    """The cells of one generator family, morphed from reference meshes on a fixed ladder.

    Args:
        name: generator name, one of :data:`MORPHABLE`.
        dim: spatial dimension.
        resolution: elements per unit length of the reference meshes (``None``: the default).
        options: further generator options (``aspect_ratio``, ``angle``, ``normal``).
        max_stretch: ``S`` of the ladder (> 1): no morph stretches or compresses the inclusion
            or the gap by more than it.
        reference_fraction: instead of the ladder, one reference mesh at this volume fraction
            for every cell (no bound on the stretch; inverted or crushed elements are still
            refused). For meshes tiled from many cells in 3D, whose faces must conform
            (:func:`fe2hmm.rve.tiling.tile_columns`).

    Attributes:
        references: the reference cells meshed so far, by ladder rung.
        morphed: number of cells made by morphing; ``meshed`` the number meshed by gmsh
            (references and fall-backs).

    Raises:
        ValueError: a generator that cannot be morphed, or ``max_stretch <= 1``.
    """

    def __init__(
        self,
        name: str,
        dim: int,
        resolution: int | None = None,
        options: dict[str, Any] | None = None,
        max_stretch: float = MAX_STRETCH,
        reference_fraction: float | None = None,
    ) -> None:
        if not (max_stretch > 1.0 and math.isfinite(max_stretch)):
            raise ValueError(f"max_stretch must be a finite number > 1, got {max_stretch!r}")
        if reference_fraction is not None:
            from fe2hmm.rve.limits import _check_fraction, max_volume_fraction

            reference_fraction = _check_fraction(
                name,
                reference_fraction,
                max_volume_fraction(name, int(dim), **(options or {})),
                open_max=name == "laminate",
            )
        self.reference_fraction = reference_fraction
        self.name, self.dim, self.resolution = name, int(dim), resolution
        self.options = dict(options or {})
        self.max_stretch = float(max_stretch)
        self._shape = _shape(name, self.dim, self.options)
        self.references: dict[int, RVE] = {}
        self._reference_data: dict[int, tuple] = {}
        self.morphed = 0
        self.meshed = 0

    # -- the ladder ---------------------------------------------------------------------------

    def _extent(self, volume_fraction: float) -> float:
        return (volume_fraction / self._shape.unit) ** (1.0 / len(self._shape.axes))

    def rung(self, volume_fraction: float) -> int:
        """Ladder rung of the reference that serves ``volume_fraction`` (0 for a fixed one)."""
        if self.reference_fraction is not None:
            return 0
        e = self._extent(volume_fraction)
        u = math.log(e / (0.5 - e))
        return round(u / (2.0 * math.log(self.max_stretch)))

    def reference_volume_fraction(self, rung: int) -> float:
        """Volume fraction of the reference cell of a rung (clipped to the generator's limit)."""
        if self.reference_fraction is not None:
            return float(self.reference_fraction)
        from fe2hmm.rve.limits import max_volume_fraction

        u = 2.0 * math.log(self.max_stretch) * rung
        e = min(0.5 / (1.0 + math.exp(-u)), self._shape.max_extent)
        fmax = max_volume_fraction(self.name, self.dim, **self.options)  # round-off at the clip
        return min(self._shape.unit * e ** len(self._shape.axes), fmax)

    # -- cells --------------------------------------------------------------------------------

    def _mesh(self, volume_fraction: float) -> RVE:
        from fe2hmm.rve.generators import create

        self.meshed += 1
        return create(
            self.name,
            dim=self.dim,
            volume_fraction=volume_fraction,
            resolution=self.resolution,
            **self.options,
        )

    def _reference(self, rung: int) -> tuple:
        if rung not in self._reference_data:
            ref = self._mesh(self.reference_volume_fraction(rung))
            self.references[rung] = ref
            mesh, shape = ref.mesh, self._shape
            x = mesh.geometry.x.copy()
            ref.node_coordinates = x  # the shared mesh's nodes belong to whichever cell placed them
            axes = list(shape.axes)
            delta = x[:, axes] - 0.5
            rho = shape.norm(delta)
            to_box = np.max(np.abs(delta), axis=1)
            dofmap = geometry_dofmap(mesh)
            tags = np.asarray(ref.cell_tags.values)
            cells = np.asarray(ref.cell_tags.indices)
            if INCLUSION in ref.nominal_volume_fractions:  # interface: the inclusion's outer nodes
                rho_c = float(rho[np.unique(dofmap[cells[tags == INCLUSION]])].max())
                inclusion = INCLUSION
            else:  # voids: the hole's boundary, the matrix's innermost nodes
                rho_c = float(rho.min())
                inclusion = VOID
            fraction = ref.volume_fractions[inclusion]
            volumes = _cell_volumes(x, dofmap, self.dim)
            # the box along each node's ray, the matrix nodes and the box faces: per reference
            inside = np.where(to_box > 0.0, to_box, 1.0)
            rho_box = np.where(to_box > 0.0, rho * 0.5 / inside, np.inf)
            outside = rho > rho_c
            on_box = np.isclose(to_box, 0.5, rtol=0.0, atol=1e-12)
            self._reference_data[rung] = (
                ref, x, delta, rho, rho_box, outside, on_box, rho_c, fraction, volumes, dofmap
            )  # fmt: skip
        return self._reference_data[rung]

    def create(self, volume_fraction: float) -> RVE:
        """The cell of one volume fraction, morphed from its rung's reference.

        Args:
            volume_fraction: the inclusion (void) fraction, admissible for the generator.

        Returns:
            An RVE sharing its rung's mesh, with its own :attr:`~RVE.node_coordinates` placed
            in it; its meshed volume fractions are the nominal ones to round-off.

        Raises:
            ValueError: an inadmissible volume fraction (checked by the generator's limits).
        """
        from fe2hmm.rve.limits import _check_fraction, max_volume_fraction

        f = _check_fraction(
            self.name,
            volume_fraction,
            max_volume_fraction(self.name, self.dim, **self.options),
            open_max=self.name == "laminate",
        )
        reference = self._reference(self.rung(f))
        ref, x, delta, rho, rho_box, outside, on_box, rho_c, f_ref, volumes, dofmap = reference
        axes = list(self._shape.axes)
        sigma = (f / f_ref) ** (1.0 / len(axes))
        new_rho = sigma * rho
        r_out, b_out = rho[outside], rho_box[outside]
        new_rho[outside] = sigma * rho_c + (r_out - rho_c) * (b_out - sigma * rho_c) / (
            b_out - rho_c
        )
        scale = np.divide(new_rho, rho, out=np.ones_like(rho), where=rho > 0.0)
        moved = x.copy()
        moved[:, axes] = 0.5 + delta * scale[:, None]
        moved[on_box] = x[on_box]  # box faces exactly as in the reference (periodic pairs)
        after = _cell_volumes(moved, dofmap, self.dim)
        if np.any(after * volumes <= 0.0) or np.any(np.abs(after) < _CRUSHED * np.abs(volumes)):
            if self.reference_fraction is not None:
                raise ValueError(
                    f"{self.name}: the cell of volume_fraction={f!r} morphed from the reference "
                    f"at {self.reference_fraction!r} inverts or crushes elements; use a closer "
                    "reference_fraction"
                )
            return self._mesh(f)  # pragma: no cover - not reached within the ladder's stretch
        phase = INCLUSION if INCLUSION in ref.nominal_volume_fractions else VOID
        parameters = dict(ref.parameters, volume_fraction=f)
        parameters["reference_volume_fraction"] = ref.parameters["volume_fraction"]
        cell = replace(
            ref,
            nominal_volume_fractions={MATRIX: 1.0 - f, phase: f},
            parameters=parameters,
            node_coordinates=moved,
        )
        cell.place_nodes()
        self.morphed += 1
        return cell


def _cell_volumes(x: np.ndarray, dofmap: np.ndarray, dim: int) -> np.ndarray:
    """Signed volumes times ``dim!`` of linear simplices, shape ``(num_cells,)``."""
    p = x[dofmap]
    e = p[:, 1:, :dim] - p[:, :1, :dim]  # edge vectors from the first vertex
    if dim == 2:
        return e[:, 0, 0] * e[:, 1, 1] - e[:, 0, 1] * e[:, 1, 0]
    return np.einsum("ij,ij->i", e[:, 0], np.cross(e[:, 1], e[:, 2]))
