"""The cell geometry of a micro-model: a validated RVE generator, one cell per volume fraction.

Cell micro-models take the RVE by generator name (:func:`fe2hmm.rve.create`) and build one
cell — and on it one cell problem — per distinct volume fraction φ. :class:`CellGeometry`
checks the generator arguments when the model is constructed (one-line ``ValueError``, before
any meshing) and, for the generators of :data:`fe2hmm.rve.morph.MORPHABLE`, makes the cells by
morphing a few reference meshes (:class:`fe2hmm.rve.morph.CellFamily`: gmsh runs once per
ladder rung, not per φ). :class:`CellProblems` is the per-φ cache of the problems built on its
cells; :class:`MeshProblems` keeps one stateless problem per mesh, which serves every morphed
cell of that mesh.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE

__all__ = ["DIMENSIONS", "CellGeometry", "CellProblems", "MeshProblems", "SharedMeshProblem"]

#: Spatial dimensions of cell micro-models.
DIMENSIONS = (2, 3)

#: Generators whose cells mesh no inclusion phase (the inclusion is a hole).
_WITHOUT_INCLUSION = frozenset({"voids"})

ProblemT = TypeVar("ProblemT")


@dataclass(frozen=True)
class CellGeometry:
    """Validated arguments of an RVE generator; :meth:`create` meshes the cell of one φ.

    Args:
        name: generator name (see :func:`fe2hmm.rve.available`), e.g. ``"circle"``.
        dim: spatial dimension, one of :data:`DIMENSIONS`, supported by the generator.
        resolution: elements per unit length; ``None`` for the generator default.
        options: further generator options (e.g. ``aspect_ratio``), copied.
        morph: make the cells of morphable generators by morphing reference meshes (one gmsh
            run per rung of :class:`fe2hmm.rve.morph.CellFamily`'s ladder; the cells share a
            mesh and carry their own node coordinates); ``False`` meshes every cell with gmsh.

    Raises:
        ValueError: unsupported dimension, unknown generator (for this dimension) or a
            resolution that is not an integer >= 2. Raised on construction, before any meshing.
    """

    name: str
    dim: int = 2
    resolution: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    morph: bool = True
    _family: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from fe2hmm import rve as rve_module

        if isinstance(self.dim, bool) or self.dim not in DIMENSIONS:
            raise ValueError(f"dim must be 2 or 3, got {self.dim!r}")
        object.__setattr__(self, "dim", int(self.dim))
        valid = rve_module.available(self.dim)
        if self.name not in valid:
            raise ValueError(f"unknown {self.dim}D RVE generator {self.name!r}; valid: {valid}")
        res = self.resolution
        if res is not None and (
            isinstance(res, bool) or not isinstance(res, numbers.Integral) or res < 2
        ):
            raise ValueError(f"resolution must be None or an integer >= 2, got {res!r}")
        object.__setattr__(self, "options", dict(self.options or {}))
        object.__setattr__(self, "morph", bool(self.morph))

    @property
    def family(self):
        """The :class:`fe2hmm.rve.morph.CellFamily` that morphs the cells, or ``None``."""
        from fe2hmm.rve.morph import MORPHABLE, CellFamily

        if self._family is None and self.morph and self.name in MORPHABLE:
            family = CellFamily(self.name, self.dim, self.resolution, self.options)
            object.__setattr__(self, "_family", family)
        return self._family

    @property
    def phases(self) -> tuple[int, ...]:
        """Phase tags the generator meshes: :data:`MATRIX` and, except for voids, INCLUSION."""
        return (MATRIX,) if self.name in _WITHOUT_INCLUSION else (MATRIX, INCLUSION)

    def check_volume_fraction(self, volume_fraction: float) -> float:
        """Check a volume fraction against the generator's admissible interval, without meshing.

        The interval is ``(0, f_max]`` with ``f_max`` from :func:`fe2hmm.rve.max_volume_fraction`
        (for these options), open at 1 (no matrix left).

        Args:
            volume_fraction: the inclusion (or void) volume fraction φ.

        Returns:
            ``φ`` as a float.

        Raises:
            ValueError: φ not a finite number in the admissible interval.
        """
        from fe2hmm import rve as rve_module

        try:
            f = float(volume_fraction)
        except (TypeError, ValueError):
            f = math.nan
        options = dict(self.options, resolution=self.resolution)
        fmax = rve_module.max_volume_fraction(self.name, self.dim, **options)
        if not (math.isfinite(f) and 0.0 < f <= fmax and f < 1.0):
            interval = "(0, 1)" if fmax >= 1.0 else f"(0, {fmax:.6g}]"
            raise ValueError(
                f"{self.name}: volume_fraction={volume_fraction!r} is outside the allowed "
                f"interval {interval}"
            )
        return f

    def create(self, volume_fraction: float, *, shared: bool = True) -> RVE:
        """The cell of one volume fraction (rank-local).

        Args:
            volume_fraction: the inclusion (void) fraction φ.
            shared: allow a morphed cell that shares its mesh with the family (:attr:`family`);
                ``False`` meshes an independent cell with :func:`fe2hmm.rve.create`.

        Raises:
            ValueError: invalid volume fraction or generator options (before meshing).
        """
        from fe2hmm import rve as rve_module

        if shared and self.family is not None:
            self.check_volume_fraction(volume_fraction)
            return self.family.create(float(volume_fraction))
        return rve_module.create(
            self.name,
            dim=self.dim,
            volume_fraction=float(volume_fraction),
            resolution=self.resolution,
            **self.options,
        )


class CellProblems(Generic[ProblemT]):
    """One cell problem per distinct volume fraction, built on first request and kept.

    Keys are ``float(volume_fraction)``: equal fractions share a problem, any other fraction
    gets its own cell (the exact-match dedupe of the model's parameter).

    Args:
        geometry: the cells.
        build: ``build(rve) -> problem``, called once per volume fraction with its fresh cell.
        shares_mesh: ``build`` takes what it needs from the cell before it returns (e.g. modes),
            so its cell may be a morphed one sharing the family's mesh; ``False`` (problems that
            assemble on their cell later) gives each volume fraction its own mesh.
    """

    def __init__(
        self,
        geometry: CellGeometry,
        build: Callable[[RVE], ProblemT],
        *,
        shares_mesh: bool = False,
    ) -> None:
        self.geometry = geometry
        self._build = build
        self._shared = bool(shares_mesh)
        self._problems: dict[float, ProblemT] = {}

    def __call__(self, volume_fraction: float) -> ProblemT:
        """The problem of one volume fraction (meshes its cell and builds it the first time)."""
        key = float(volume_fraction)
        if key not in self._problems:
            self._problems[key] = self._build(self.geometry.create(key, shared=self._shared))
        return self._problems[key]

    def __contains__(self, volume_fraction: object) -> bool:
        """Whether the problem of this volume fraction is already built."""
        try:
            return float(volume_fraction) in self._problems  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def __len__(self) -> int:
        """Number of problems built."""
        return len(self._problems)

    def __iter__(self) -> Iterator[float]:
        """The volume fractions whose problems are built, in build order."""
        return iter(self._problems)

    def clear(self) -> None:
        """Forget every problem (the next request rebuilds it)."""
        self._problems.clear()


class MeshProblems(Generic[ProblemT]):
    """One stateless cell problem per cell mesh, handed each cell of that mesh in turn.

    The morphed cells of a family share a mesh (:mod:`fe2hmm.rve.morph`): the problem built on
    the first of them serves the others through ``problem.for_cell(cell)``, which reuses what
    the topology fixes (function space, forms, periodic map, pattern, symbolic factorisation).
    A cell with a mesh of its own gets a problem of its own (not kept).

    Args:
        build: ``build(rve) -> problem``; the problem has ``for_cell(rve)``.
    """

    def __init__(self, build: Callable[[RVE], ProblemT]) -> None:
        self._build = build
        self._problems: dict[int, tuple[Any, ProblemT]] = {}  # id(mesh) -> (mesh, problem)

    def __call__(self, cell: RVE) -> ProblemT:
        """The problem on ``cell``."""
        if cell.node_coordinates is None:
            return self._build(cell)
        entry = self._problems.get(id(cell.mesh))
        if entry is None:
            problem = self._build(cell)
            self._problems[id(cell.mesh)] = (cell.mesh, problem)
            return problem
        return entry[1].for_cell(cell)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        """Number of meshes with a problem."""
        return len(self._problems)


class SharedMeshProblem:
    """Base of cell problems that serve every cell of their mesh (:class:`MeshProblems`).

    A subclass keeps its cell in ``self.rve`` and builds what the topology and the phases fix
    (function space, forms, periodic map, patterns, factorisation) once, in objects that a
    shallow copy shares; its ``solve`` places the cell's nodes before it assembles.
    """

    rve: RVE

    def for_cell(self, cell: RVE):
        """The same problem on another cell of this mesh (a morphed cell of the family).

        The copy shares everything built from the topology; only the node coordinates differ.

        Raises:
            ValueError: ``cell`` has another mesh.
        """
        if cell.mesh is not self.rve.mesh:
            raise ValueError("for_cell needs a cell of the same mesh (a cell of the same family)")
        other = copy.copy(self)
        other.rve = cell
        return other
