"""The one place where environment differences are handled.

The PyPI binary wheel ``dolfinx-solver-real`` ships DOLFINx together with its own PETSc and MPI
and must be imported (module ``dolfinx_solver``) before ``dolfinx`` or ``petsc4py``. The FEniCS
Docker image and conda installs have no such module. Everything in fe2hmm that touches dolfinx
imports this module first, so both environments work unchanged.
"""

from __future__ import annotations

import importlib.util

__all__ = ["HAS_DOLFINX_SOLVER_WHEEL", "geometry_dofmap", "require_dolfinx"]

HAS_DOLFINX_SOLVER_WHEEL: bool = importlib.util.find_spec("dolfinx_solver") is not None

if HAS_DOLFINX_SOLVER_WHEEL:
    import dolfinx_solver  # noqa: F401  (orders mpi4py.MPI ahead of the compiled bindings)


def require_dolfinx() -> None:
    """Import dolfinx or fail with an explanation of how to install it.

    Raises:
        ImportError: when no dolfinx installation is importable.
    """
    if importlib.util.find_spec("dolfinx") is None:
        raise ImportError(
            "fe2hmm needs DOLFINx >= 0.10. Install the PyPI wheel with "
            "`pip install 'fe2hmm[dolfinx]'` (it brings dolfinx-solver-real), or use the FEniCS "
            "Docker image (ghcr.io/fenics/dolfinx/dolfinx) where dolfinx is preinstalled."
        )


require_dolfinx()


def geometry_dofmap(mesh):
    """Geometry dofmap ``(num_cells, nodes_per_cell)`` of a single-cell-type mesh.

    dolfinx 0.10 has ``mesh.geometry.dofmap``; 0.11 deprecates it for ``dofmaps[0]``.
    """
    geometry = mesh.geometry
    if hasattr(type(geometry), "dofmaps"):
        dofmaps = geometry.dofmaps
        return (dofmaps() if callable(dofmaps) else dofmaps)[0]
    return geometry.dofmap
