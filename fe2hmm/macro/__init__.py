"""Macro models: reusable UFL macro problems closed by micro-models, and their solvers.

The extension point for users' own macro models (see ``docs/macro_models.md``):
:class:`MacroProblem` holds a residual with its closures, Dirichlet conditions and Newton solver;
the shipped models derive from it —

- :class:`SteadyDiffusion`, :class:`TransientDiffusion` (:mod:`fe2hmm.macro.diffusion`);
- :class:`DarcyFlow` (:mod:`fe2hmm.macro.darcy`);
- :class:`SmallStrainElasticity`, :class:`FiniteStrainElasticity`
  (:mod:`fe2hmm.macro.elasticity`).
"""

from fe2hmm.macro.continuation import (
    ContinuationPoint,
    ContinuationResult,
    Fold,
    continuation,
)
from fe2hmm.macro.darcy import DarcyFlow
from fe2hmm.macro.diffusion import SteadyDiffusion, TransientDiffusion
from fe2hmm.macro.elasticity import FiniteStrainElasticity, SmallStrainElasticity
from fe2hmm.macro.problem import Dirichlet, MacroProblem, SolverOptions, check_solver_options
from fe2hmm.macro.thermoelectric import (
    SteadyThermoElectric,
    ThermalRunawayError,
    TransientThermoElectric,
)

__all__ = [
    "DarcyFlow",
    "Dirichlet",
    "MacroProblem",
    "SteadyDiffusion",
    "TransientDiffusion",
    "SmallStrainElasticity",
    "FiniteStrainElasticity",
    "SolverOptions",
    "check_solver_options",
    "SteadyThermoElectric",
    "TransientThermoElectric",
    "ThermalRunawayError",
    "continuation",
    "ContinuationResult",
    "ContinuationPoint",
    "Fold",
]
