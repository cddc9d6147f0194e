"""Fully resolved meshes tiled from unit cells: the reference (DNS) of a homogenised problem.

:func:`tile_columns` tiles the unit square (cube) with ``n^d`` copies of periodic cells scaled
by ``ε = 1/n``, one cell mesh per column along ``x₁`` (so that a microstructure graded along
``x₁`` — e.g. a fibre fraction ``φ(x₁)`` — is resolved column by column). Neighbouring tiles
conform when every cell mesh has the same nodes on its faces, which the gmsh generators give
for equal resolutions (and morphed cells, :mod:`fe2hmm.rve.morph`, keep); this is checked.
:func:`first_order_corrector` builds ``ε w(x/ε)`` on the tiled mesh from the cells' own
fluctuations, for the corrected energy error of a homogenised solution. :func:`tile_means`
averages a field over each tile (e.g. the superficial velocity of a resolved flow).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from mpi4py import MPI

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as _dmesh

from fe2hmm._compat import geometry_dofmap
from fe2hmm.errors import raise_on_every_rank
from fe2hmm.rve.cell import RVE

__all__ = ["TiledMesh", "cell_tiles", "first_order_corrector", "tile_columns", "tile_means"]

#: Nodes of neighbouring cells closer than this (relative to the tiled square) are merged.
MERGE_TOLERANCE = 1e-9

_CELL_TYPES = {2: "triangle", 3: "tetrahedron"}


class TiledMesh(NamedTuple):
    """A mesh tiled from unit cells (see :func:`tile_columns`).

    Attributes:
        mesh: the conforming P1 simplex mesh of the unit square (cube), distributed.
        tags: phase tag of each rank-local cell, shape ``(num_local_cells,)``.
        column: column (index into the tiled ``cells``) of each rank-local cell.
        source_cell: index of each rank-local cell in its column's cell mesh.
        tile: integer position ``(j, i₂[, i₃])`` of each rank-local cell's tile, shape
            ``(num_local_cells, d)``.
        eps: tile size ``1/n``.
    """

    mesh: _dmesh.Mesh
    tags: np.ndarray
    column: np.ndarray
    source_cell: np.ndarray
    tile: np.ndarray
    eps: float


def tile_columns(cells: Sequence[RVE], comm: MPI.Comm) -> TiledMesh:
    """The unit square (cube) tiled by ``n^d`` cells, column ``j`` (along ``x₁``) of ``cells[j]``.

    Args:
        cells: ``n`` unit cells on ``(0, 1)^d`` of one dimension ``d`` (2 or 3), one per column
            from left to right, whose meshes have the same nodes on their faces; morphed cells
            (:mod:`fe2hmm.rve.morph`) of one family may share a mesh. 2D gmsh cells of one
            resolution conform; in 3D gmsh triangulates the box faces of different geometries
            differently, so take the columns from one reference mesh (a
            :class:`~fe2hmm.rve.morph.CellFamily` whose ``max_stretch`` puts every fraction on
            one rung).
        comm: communicator of the tiled mesh (built on rank 0 and distributed).

    Returns:
        The tiled mesh with the phase tag and origin (column, cell, tile) of each rank-local
        cell.

    Raises:
        ValueError: no cells, cells of mixed dimensions, or cells that are not unit cells.
        RuntimeError: the cell meshes do not conform on their faces.

    Note:
        Collective on ``comm``.
    """
    cells = list(cells)
    if not cells:
        raise ValueError("tile_columns needs at least one cell")
    d = cells[0].dim
    for j, cell in enumerate(cells):
        if (
            cell.dim != d
            or d not in _CELL_TYPES
            or not (np.allclose(cell.lower, 0.0) and np.allclose(cell.upper, 1.0))
        ):
            raise ValueError(
                f"cells[{j}] must be a {d}D unit cell on (0, 1)^{d} like cells[0] (2D or 3D), "
                f"got dim {cell.dim}, box {cell.lower} .. {cell.upper}"
            )
    n = len(cells)
    columns = []
    for cell in cells:
        cell.place_nodes()  # a morphed cell shares its mesh with its family: its own nodes
        columns.append(
            {
                "x": cell.mesh.geometry.x[:, :d].copy(),
                "cells": geometry_dofmap(cell.mesh).copy(),
                "tags": _cell_tag_array(cell),
            }
        )
    _check_conforming(columns, d)
    # tiles in the order of np.ndindex over (i_d, ..., i_2, j): column j varies fastest
    tiles = np.array([t[::-1] for t in np.ndindex(*([n] * d))], dtype=np.int64)
    sizes = np.array([col["cells"].shape[0] for col in columns])
    tile_cells = sizes[tiles[:, 0]]
    origin_tile = np.repeat(np.arange(len(tiles)), tile_cells)
    origin_source = np.concatenate([np.arange(sizes[t[0]]) for t in tiles])
    if comm.rank == 0:
        xs, cs, ts = [], [], []
        offset = 0
        for tile in tiles:
            col = columns[tile[0]]
            xs.append((col["x"] + tile) / n)
            cs.append(col["cells"] + offset)
            ts.append(col["tags"])
            offset += col["x"].shape[0]
        x = np.concatenate(xs)
        topology = np.concatenate(cs)
        tags = np.concatenate(ts)
        key = np.round(x / MERGE_TOLERANCE).astype(np.int64)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        x = x[first]
        topology = inverse.reshape(-1)[topology]
    else:
        x = np.zeros((0, d))
        topology = np.zeros((0, d + 1), dtype=np.int64)
        tags = np.zeros(0, dtype=np.int32)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", _CELL_TYPES[d], 1, shape=(d,)))
    mesh = _dmesh.create_mesh(comm, topology.astype(np.int64), domain, x)
    original = np.asarray(mesh.topology.original_cell_index)
    all_tags = comm.bcast(tags if comm.rank == 0 else None, root=0)
    tile = tiles[origin_tile[original]]
    return TiledMesh(
        mesh, all_tags[original], tile[:, 0].copy(), origin_source[original], tile, 1.0 / n
    )


def first_order_corrector(tiled: TiledMesh, fluctuations: Sequence) -> fem.Function:
    """``χ(x) = ε w_j(x/ε)`` on the tiled mesh: each column's cell fluctuations, scaled.

    The first-order two-scale approximation of the resolved field is then ``T₀ + χ·∇T₀``
    (``χ`` has one component per unit macro gradient). ``χ`` is broken (discontinuous
    Lagrange, degree 1) because neighbouring columns have different cells.

    Args:
        tiled: the mesh :func:`tile_columns` made.
        fluctuations: per column, the solution of its cell's diffusion problem
            (:class:`~fe2hmm.micro.cells.diffusion.DiffusionCellSolution`, degree 1), solved on
            the tiled cell; ``None`` for a column with no cell on this rank.

    Returns:
        The DG1 vector function ``χ``, shape ``(d,)`` per point.

    Raises:
        ValueError: not one degree-1 solution per column, or a cell that is not the column's
            (on every rank).

    Note:
        Collective.
    """
    mesh, d = tiled.mesh, tiled.mesh.topology.dim
    n_columns = int(round(1.0 / tiled.eps))
    if len(fluctuations) != n_columns:
        raise ValueError(
            f"need one cell solution per column ({n_columns}), got {len(fluctuations)}"
        )
    C = fem.functionspace(mesh, ("DG", 1, (d,)))
    chi = fem.Function(C)
    n_cells = mesh.topology.index_map(d).size_local
    dofs = C.dofmap.list[:n_cells]  # (n_cells, d + 1), block size d
    x = C.tabulate_dof_coordinates()[:, :d]
    values = chi.x.array.reshape(-1, d)
    error = None
    for j, solution in enumerate(fluctuations):
        sel = np.flatnonzero(tiled.column == j)
        if sel.size == 0:
            continue
        if solution is None:
            error = f"column {j} has cells on this rank but no cell solution"
            break
        fields = solution.fluctuations  # places the cell's nodes (a morphed cell)
        V = fields[0].function_space
        if V.element.basix_element.degree != 1:
            error = f"the cell solution of column {j} must be of degree 1"
            break
        W = np.column_stack([w.x.array for w in fields])  # (n_nodes, d)
        source = tiled.source_cell[sel]
        y = x[dofs[sel]] / tiled.eps - tiled.tile[sel][:, None, :]  # (k, d + 1, d)
        cell_dofs = V.dofmap.list[source]  # (k, d + 1)
        cell_x = V.tabulate_dof_coordinates()[:, :d][cell_dofs]  # (k, d + 1, d)
        # the vertex order within a cell may differ: match each DG dof to its cell node
        distance = np.linalg.norm(y[:, :, None, :] - cell_x[:, None, :, :], axis=-1)
        nearest = distance.argmin(axis=2)
        if distance.min(axis=2).max() > 1e-8:
            error = f"a tiled node of column {j} is not a node of its cell's mesh"
            break
        picked = np.take_along_axis(cell_dofs, nearest, axis=1)  # (k, d + 1)
        values[dofs[sel].reshape(-1)] = tiled.eps * W[picked.reshape(-1)]
    # every rank raises, none is left in scatter_forward
    raise_on_every_rank(mesh.comm, error, ValueError, lambda r: f"first_order_corrector (rank {r})")
    chi.x.scatter_forward()
    return chi


def tile_means(
    expression: ufl.core.expr.Expr, mesh: _dmesh.Mesh, tiles: np.ndarray, n: int
) -> np.ndarray:
    """The mean of ``expression`` over each of the ``n^d`` tiles of the unit square (cube).

    Args:
        expression: a scalar or vector UFL expression on ``mesh``.
        mesh: a mesh of the unit square (cube); where it has holes (a resolved pore space)
            the expression counts as zero, so a velocity's mean is the superficial one.
        tiles: integer tile position ``(i₁, …, i_d)`` of each local cell of ``mesh``
            (:attr:`TiledMesh.tile` for a tiled mesh), shape ``(num_local_cells, d)``; a cell
            belongs to one tile.
        n: tiles per side.

    Returns:
        Means ``(n^d,)`` or ``(n^d, k)`` for a vector of ``k`` components, the tiles in the order
        of ``np.ravel_multi_index(tile.T, (n,)*d)``, the same on every rank.

    Note:
        Collective.
    """
    d = mesh.topology.dim
    shape = ufl.shape(expression)
    k = int(np.prod(shape)) if shape else 1
    D = fem.functionspace(mesh, ("DG", 0, (k,)) if shape else ("DG", 0))
    w = ufl.TestFunction(D)
    integrals = fem.assemble_vector(fem.form(ufl.inner(expression, w) * ufl.dx(domain=mesh)))
    n_cells = mesh.topology.index_map(d).size_local
    per_cell = integrals.array.reshape(-1, k)[D.dofmap.list[:n_cells, 0]]
    index = np.ravel_multi_index(np.asarray(tiles, dtype=np.int64).T, (n,) * d)
    sums = np.zeros((n**d, k))
    np.add.at(sums, index, per_cell)
    means = mesh.comm.allreduce(sums, op=MPI.SUM) * n**d  # tile volume n^-d
    return means if shape else means[:, 0]


def cell_tiles(mesh: _dmesh.Mesh, n: int) -> np.ndarray:
    """The tile ``(i₁, …, i_d)`` of each local cell of a mesh of the unit square (cube).

    Args:
        mesh: a mesh whose cells each lie in one of the ``n^d`` tiles (e.g. a uniform mesh
            with a multiple of ``n`` cells per side, or one refined from it).
        n: tiles per side.

    Returns:
        Integer positions, shape ``(num_local_cells, d)`` (for :func:`tile_means`).

    Raises:
        ValueError: a cell straddles two tiles (on every rank).

    Note:
        Collective.
    """
    d = mesh.topology.dim
    cells = np.arange(mesh.topology.index_map(d).size_local, dtype=np.int32)
    x = mesh.geometry.x[_dmesh.entities_to_geometry(mesh, d, cells)][:, :, :d] * n
    lower = np.floor(x.mean(axis=1)).astype(np.int64)
    inside = np.all((x >= lower[:, None, :] - 1e-9) & (x <= lower[:, None, :] + 1 + 1e-9))
    if not mesh.comm.allreduce(bool(inside), op=MPI.LAND):
        raise ValueError(f"a cell of the mesh straddles two of the {n}^{d} tiles")
    return lower


def _cell_tag_array(cell: RVE) -> np.ndarray:
    n = cell.mesh.topology.index_map(cell.dim).size_local
    tags = np.zeros(n, dtype=np.int32)
    tags[cell.cell_tags.indices] = cell.cell_tags.values
    return tags


def _check_conforming(columns: list[dict], d: int) -> None:
    def face(col, axis, value):
        x = col["x"]
        pts = x[np.isclose(x[:, axis], value, atol=1e-12)][:, [a for a in range(d) if a != axis]]
        return pts[np.lexsort(pts.T[::-1])] if pts.size else pts

    for axis in range(d):
        ref = face(columns[0], axis, 0.0)
        for col in columns:
            for value in (0.0, 1.0):
                f = face(col, axis, value)
                if f.shape != ref.shape or not np.allclose(f, ref, atol=1e-10):
                    raise RuntimeError("cell meshes of the columns do not conform on their faces")
