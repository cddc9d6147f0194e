"""fe2hmm: Heterogeneous Multiscale Method and FE² for FEniCSx (dolfinx).

A macro problem is written as a UFL form; its constitutive data at quadrature points are computed
on demand by micro-models (periodic cell problems, particle and stochastic simulators) through a
:class:`~fe2hmm.closure.Closure`.
"""

from fe2hmm import _compat  # noqa: F401  (must precede every dolfinx import)

__version__ = "0.1.0"

__all__ = ["__version__"]
