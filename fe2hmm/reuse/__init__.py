"""Reuse of micro results: persistent cache (surrogates and indicators are planned)."""

from fe2hmm.reuse.cache import PersistentCache

__all__ = ["PersistentCache"]
