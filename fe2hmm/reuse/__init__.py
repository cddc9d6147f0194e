"""Reuse of micro results (adaptive HMM): persistent cache, surrogates, indicators.

See ``docs/reuse.md``. Exact dedupe and the naive switch live in
:class:`fe2hmm.micro.interface.LinearMicroModel`; the elastic predictor of plastic cells in
:class:`fe2hmm.micro.cells.plasticity.PlasticCellModel`.
"""

from fe2hmm.reuse.cache import PersistentCache
from fe2hmm.reuse.surrogate import HermiteSurrogate, ParameterSurrogate, SurrogatePrediction

__all__ = ["HermiteSurrogate", "ParameterSurrogate", "PersistentCache", "SurrogatePrediction"]
