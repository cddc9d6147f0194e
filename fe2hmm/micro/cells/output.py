"""Writing cell-problem fields (mesh, phase tags, fluctuations) to XDMF for ParaView."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dolfinx import fem
from dolfinx import mesh as _dmesh

__all__ = ["write_cell_fields"]


def write_cell_fields(
    filename: str | Path,
    fields: Sequence[fem.Function],
    cell_tags: _dmesh.MeshTags | None = None,
) -> None:
    """Write a cell mesh, its phase tags and Lagrange fields to one XDMF file.

    XDMF stores functions of the mesh's geometric degree, so fields of higher degree are
    interpolated to degree 1 (scalar or vector) first.

    Args:
        filename: output ``.xdmf`` path (an ``.h5`` file is written beside it); its directory is
            created if missing.
        fields: Lagrange functions on the cell mesh (all on one mesh), written under their names.
        cell_tags: phase tags, written as ``"phase"`` (e.g. ``rve.cell_tags``).
    """
    from dolfinx import io

    if not fields:
        raise ValueError("write_cell_fields needs at least one field")
    mesh = fields[0].function_space.mesh
    degree = mesh.geometry.cmap.degree
    written = []
    for w in fields:
        if w.function_space.element.basix_element.degree != degree:
            shape = w.function_space.value_shape
            target = fem.Function(fem.functionspace(mesh, ("Lagrange", degree, shape)), name=w.name)
            target.interpolate(w)
            written.append(target)
        else:
            written.append(w)
    path = Path(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.XDMFFile(mesh.comm, str(path), "w") as out:
        out.write_mesh(mesh)
        if cell_tags is not None:
            cell_tags.name = "phase"
            out.write_meshtags(cell_tags, mesh.geometry)
        for w in written:
            out.write_function(w)
