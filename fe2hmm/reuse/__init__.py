"""Reuse of micro results (adaptive HMM): wrappers that compose, and their building blocks.

A reuse policy is a ``MicroModel → MicroModel`` wrapper (:class:`ReuseWrapper`); wrap a model
in the policies you want, innermost first, and hand the result to the closure::

    model = Dedupe(Cache(DiffusionCellModel(...), "~/.cache/fe2hmm"))

See ``docs/reuse.md``. Indicators are in :mod:`fe2hmm.reuse.indicators`.
"""

from fe2hmm.reuse.cache import Cache, PersistentCache
from fe2hmm.reuse.dedupe import Dedupe
from fe2hmm.reuse.regression import ArrheniusRegressionModel, HyperelasticRegressionModel
from fe2hmm.reuse.surrogate import HermiteSurrogate, ParameterSurrogate, SurrogatePrediction
from fe2hmm.reuse.surrogate_model import ParameterSurrogateModel, ScalarSurrogateModel
from fe2hmm.reuse.tangent_surrogate import TangentSurrogateModel
from fe2hmm.reuse.wrapper import ReuseWrapper

__all__ = [
    "ArrheniusRegressionModel",
    "Cache",
    "Dedupe",
    "HermiteSurrogate",
    "HyperelasticRegressionModel",
    "ParameterSurrogate",
    "ParameterSurrogateModel",
    "PersistentCache",
    "ReuseWrapper",
    "ScalarSurrogateModel",
    "SurrogatePrediction",
    "TangentSurrogateModel",
]
