"""Fully resolved meshes tiled from unit cells: the reference (DNS) of a homogenised problem.

:func:`tile_columns` tiles the unit square with ``n × n`` copies of 2D periodic cells scaled by
``ε = 1/n``, one cell mesh per column (so that a microstructure graded along ``x₁`` — e.g. a
fibre fraction ``φ(x₁)`` — is resolved column by column). Neighbouring columns conform when
every cell mesh has the same node distribution on its edges, which the gmsh generators give
for equal resolutions; this is checked.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpi4py import MPI

import basix.ufl
import numpy as np
import ufl
from dolfinx import mesh as _dmesh

from fe2hmm._compat import geometry_dofmap
from fe2hmm.rve.cell import RVE

__all__ = ["tile_columns"]

#: Nodes of neighbouring cells closer than this (relative to the tiled square) are merged.
MERGE_TOLERANCE = 1e-9


def tile_columns(cells: Sequence[RVE], comm: MPI.Comm) -> tuple[_dmesh.Mesh, np.ndarray]:
    """The unit square tiled by ``n × n`` cells, column ``j`` made of ``cells[j]``.

    Args:
        cells: ``n`` 2D unit cells on ``(0, 1)²`` (one per column, left to right) whose meshes
            have the same nodes on their edges; morphed cells (:mod:`fe2hmm.rve.morph`) of one
            family may share a mesh.
        comm: communicator of the tiled mesh (built on rank 0 and distributed).

    Returns:
        ``(mesh, tags)``: the conforming P1 triangle mesh and the phase tag of each rank-local
        cell, shape ``(num_local_cells,)`` (:data:`~fe2hmm.rve.cell.MATRIX`,
        :data:`~fe2hmm.rve.cell.INCLUSION`).

    Raises:
        ValueError: no cells, or cells that are not 2D unit cells.
        RuntimeError: the cell meshes do not conform along their edges.

    Note:
        Collective on ``comm``.
    """
    cells = list(cells)
    if not cells:
        raise ValueError("tile_columns needs at least one cell")
    for j, cell in enumerate(cells):
        if cell.dim != 2 or not (np.allclose(cell.lower, 0.0) and np.allclose(cell.upper, 1.0)):
            raise ValueError(
                f"cells[{j}] must be a 2D unit cell on (0, 1)^2, got dim {cell.dim}, "
                f"box {cell.lower} .. {cell.upper}"
            )
    n = len(cells)
    columns = []
    for cell in cells:
        cell.place_nodes()  # a morphed cell shares its mesh with its family: its own nodes
        columns.append(
            {
                "x": cell.mesh.geometry.x[:, :2].copy(),
                "cells": geometry_dofmap(cell.mesh).copy(),
                "tags": _cell_tag_array(cell),
            }
        )
    _check_conforming(columns)
    if comm.rank == 0:
        xs, cs, ts = [], [], []
        offset = 0
        for i in range(n):
            for j, col in enumerate(columns):
                xs.append((col["x"] + [j, i]) / n)
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
        x = np.zeros((0, 2))
        topology = np.zeros((0, 3), dtype=np.int64)
        tags = np.zeros(0, dtype=np.int32)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", "triangle", 1, shape=(2,)))
    mesh = _dmesh.create_mesh(comm, topology.astype(np.int64), domain, x)
    original = mesh.topology.original_cell_index
    all_tags = comm.bcast(tags if comm.rank == 0 else None, root=0)
    return mesh, all_tags[original]


def _cell_tag_array(cell: RVE) -> np.ndarray:
    n = cell.mesh.topology.index_map(2).size_local
    tags = np.zeros(n, dtype=np.int32)
    tags[cell.cell_tags.indices] = cell.cell_tags.values
    return tags


def _check_conforming(columns: list[dict]) -> None:
    def edge(col, axis, value):
        pts = col["x"][np.isclose(col["x"][:, axis], value, atol=1e-12)][:, 1 - axis]
        return np.sort(pts)

    ref = edge(columns[0], 0, 0.0)
    for col in columns:
        for axis in (0, 1):
            for value in (0.0, 1.0):
                e = edge(col, axis, value)
                if e.shape != ref.shape or not np.allclose(e, ref, atol=1e-10):
                    raise RuntimeError("cell meshes of the columns do not conform on their edges")
