r"""Periodic lattices for kinetic Monte Carlo: sites, neighbour tables and hop vectors.

Lengths are in units of the lattice spacing ``a = 1`` (the nearest-neighbour distance). The
``z`` hop directions come in opposite pairs, ``vectors[2p + 1] = −vectors[2p]``, so the reverse
of direction ``k`` is ``k ^ 1`` and ``Σ_k v_k ⊗ v_k = (z/d) I`` on all three lattices.

- ``"square"``: ``L × L`` sites, ``z = 4``, site ``i = x + L y`` at ``(x, y)``.
- ``"triangular"``: the rhombic periodic ``L × L`` cell spanned by ``a₁ = (1, 0)`` and
  ``a₂ = (1/2, √3/2)``, ``z = 6`` (hops ``±a₁, ±a₂, ±(a₂ − a₁)``), site ``i = u + L w`` at
  ``u a₁ + w a₂``, area per site ``√3/2``.
- ``"cubic"``: simple cubic ``L × L × L``, ``z = 6``, site ``i = x + L y + L² z``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

__all__ = ["LATTICES", "Lattice", "lattice"]

#: Supported lattice kinds.
LATTICES = ("square", "triangular", "cubic")

# integer hop offsets in the lattice coordinates (opposite pairs adjacent) and the primitive
# vectors (rows) mapping them to Cartesian coordinates
_OFFSETS = {
    "square": np.array([[1, 0], [-1, 0], [0, 1], [0, -1]]),
    "triangular": np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [-1, 1], [1, -1]]),
    "cubic": np.array(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
    ),
}
_PRIMITIVE = {
    "square": np.eye(2),
    "triangular": np.array([[1.0, 0.0], [0.5, np.sqrt(3.0) / 2.0]]),
    "cubic": np.eye(3),
}
_MAX_SITES = 1 << 26  # sites × directions stay well inside int32 move indices


@dataclass(frozen=True)
class Lattice:
    """A periodic lattice (built by :func:`lattice`).

    Attributes:
        kind: one of :data:`LATTICES`.
        size: ``L``, sites per axis.
        dim: spatial dimension ``d`` (2 or 3).
        sites: number of sites ``N = L^d``.
        neighbours: ``(N, z)`` int32, ``neighbours[i, k]`` the site reached from ``i`` by hop
            ``k``.
        vectors: ``(z, d)`` float hop vectors (units of ``a``), opposite pairs adjacent.
        site_volume: area (2D) or volume (3D) per site in units of ``a^d``: 1, √3/2, 1.
        positions: ``(N, d)`` Cartesian site positions in the periodic cell (units of ``a``).
    """

    kind: str
    size: int
    dim: int
    sites: int
    neighbours: np.ndarray
    vectors: np.ndarray
    site_volume: float
    positions: np.ndarray

    @property
    def coordination(self) -> int:
        """Number of nearest neighbours ``z``."""
        return int(self.vectors.shape[0])


def lattice(kind: str, size: int) -> Lattice:
    """The periodic ``kind`` lattice of ``size`` sites per axis.

    Args:
        kind: ``"square"`` (``L × L``, z = 4), ``"triangular"`` (``L × L`` rhombic cell, z = 6)
            or ``"cubic"`` (``L × L × L``, z = 6).
        size: ``L >= 3`` (so that the ``z`` neighbours of a site are distinct sites).

    Returns:
        The :class:`Lattice` (arrays read-only).

    Raises:
        ValueError: unknown ``kind``, or ``size`` not an integer ``>= 3`` (or too many sites).
        TypeError: ``kind`` not a string.
    """
    if not isinstance(kind, str):
        raise TypeError(f"lattice kind must be a string, one of {LATTICES}, got {kind!r}")
    if kind not in LATTICES:
        raise ValueError(f"unknown lattice kind {kind!r}; valid: {', '.join(LATTICES)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"lattice size must be an integer >= 3, got {size!r}")
    offsets = _OFFSETS[kind]
    dim = offsets.shape[1]
    L = int(size)
    if L < 3 or L**dim > _MAX_SITES:
        limit = int(round(_MAX_SITES ** (1.0 / dim)))
        raise ValueError(
            f"lattice size must be an integer in [3, {limit}] for the {kind} lattice, got {size!r}"
        )
    N = L**dim
    # site i = c_0 + L c_1 + L^2 c_2 (c the integer lattice coordinates)
    coords = np.array(list(itertools.product(range(L), repeat=dim)))[:, ::-1]
    weights = L ** np.arange(dim)
    neighbours = ((coords[:, None, :] + offsets[None, :, :]) % L) @ weights
    primitive = _PRIMITIVE[kind]
    arrays = {
        "neighbours": neighbours.astype(np.int32),
        "vectors": offsets @ primitive,
        "positions": coords @ primitive,
    }
    for value in arrays.values():
        value.setflags(write=False)
    return Lattice(
        kind=kind,
        size=L,
        dim=dim,
        sites=N,
        site_volume=float(abs(np.linalg.det(primitive))),
        **arrays,
    )
