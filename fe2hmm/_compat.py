"""The one place where environment differences are handled.

The PyPI binary wheel ``dolfinx-solver-real`` ships DOLFINx together with its own PETSc and MPI
and must be imported (module ``dolfinx_solver``) before ``dolfinx`` or ``petsc4py``. The FEniCS
Docker image and conda installs have no such module. Everything in fe2hmm that touches dolfinx
imports this module first, so both environments work unchanged.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = [
    "HAS_DOLFINX_SOLVER_WHEEL",
    "geometry_dofmap",
    "import_jit_without_numba",
    "require_dolfinx",
]

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


def import_jit_without_numba() -> None:
    """Import DOLFINx's form compiler (FFCx) with numba hidden, in a process that runs no numba.

    FFCx imports numba on start-up only to offer numba-typed kernel helpers; that import costs
    ~0.3 s of the ~1.4 s that a one-shot ``fe2hmm homogenize`` takes. With numba hidden FFCx does
    without those helpers (``ffcx.codegeneration.utils.empty_void_pointer``, for user kernels
    written in numba) for the rest of the process; numba itself stays importable. Nothing happens
    when numba or FFCx is imported already. Only for entry points that run no user code.
    """
    if "numba" in sys.modules or "ffcx.codegeneration.utils" in sys.modules:
        return
    sys.modules["numba"] = None  # `import numba` raises ImportError while this entry is None
    try:
        import ffcx.codegeneration.utils  # noqa: F401
    finally:
        if "numba" in sys.modules and sys.modules["numba"] is None:
            del sys.modules["numba"]
