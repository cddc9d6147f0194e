"""fe2hmm: Heterogeneous Multiscale Method and FE² for FEniCSx (dolfinx).

A macro problem is written as a UFL form; its constitutive data at quadrature points are computed
on demand by micro-models (periodic cell problems, particle and stochastic simulators) through a
:class:`~fe2hmm.closure.Closure`. The main classes are importable from the top level; they load
lazily so that ``import fe2hmm`` (and the CLI's ``--help``) stay cheap.
"""

import importlib

# Every fe2hmm submodule import runs this file first: _compat loads the dolfinx wheel's
# bootstrap (mpi4py.MPI before the compiled bindings) where that wheel is installed.
from fe2hmm import _compat  # noqa: F401

__version__ = "0.1.0"

_LAZY = {
    "Closure": "fe2hmm.closure",
    "NewtonSolver": "fe2hmm.newton",
    "NewtonResult": "fe2hmm.newton",
    "MicroModel": "fe2hmm.micro.interface",
    "LinearMicroModel": "fe2hmm.micro.interface",
    "MicroResult": "fe2hmm.micro.interface",
    "StatefulMicroModel": "fe2hmm.micro.interface",
    "QuadratureMap": "fe2hmm.quadrature",
    "Dedupe": "fe2hmm.reuse",
    "Cache": "fe2hmm.reuse",
    "ParameterSurrogateModel": "fe2hmm.reuse",
    "DiffusionCellModel": "fe2hmm.micro.cells.diffusion",
    "DiffusionCellProblem": "fe2hmm.micro.cells.diffusion",
    "homogenize_diffusion": "fe2hmm.micro.cells.diffusion",
    "ElasticityCellModel": "fe2hmm.micro.cells.elasticity",
    "ElasticityCellProblem": "fe2hmm.micro.cells.elasticity",
    "homogenize_elasticity": "fe2hmm.micro.cells.elasticity",
    "HyperelasticCellModel": "fe2hmm.micro.cells.hyperelastic",
    "HyperelasticCellProblem": "fe2hmm.micro.cells.hyperelastic",
    "TransientDiffusionCellModel": "fe2hmm.micro.cells.transient",
    "StateDependentDiffusionCellModel": "fe2hmm.micro.cells.evolving",
    "IrreversibleState": "fe2hmm.evolution",
    "march": "fe2hmm.timestepping",
    "MicroSolveError": "fe2hmm.errors",
    "NonPeriodicMeshError": "fe2hmm.errors",
    "NewtonConvergenceError": "fe2hmm.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fe2hmm' has no attribute {name!r}")
