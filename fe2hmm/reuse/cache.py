"""A persistent on-disk cache of micro results, keyed by everything that determines them.

Each entry is one ``.npz`` file named by the SHA-256 of (a) the micro-model's identity — class,
fe2hmm version, the model's own ``cache_identity()`` (geometry generator, materials, resolution,
boundary condition, element degree, …) — and (b) the per-request parameters, bitwise. Changing
any of them gives another key: a stale entry can never be returned.

Writes are atomic: the data go to a temporary file unique to the writing process in the same
directory, are flushed and fsync'ed, then renamed over the final name (``os.replace``). A
crash mid-write leaves at most an orphaned temporary file, never a torn entry; concurrent
writers of the same key (MPI ranks) each rename a complete file. Reads that find an unreadable
file treat it as a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["PersistentCache"]

_log = logging.getLogger(__name__)


class PersistentCache:
    """Directory of micro results for one micro-model identity.

    Args:
        directory: cache directory (created if missing).
        identity: JSON-serialisable description of everything besides the per-request
            parameters that determines the micro answer.

    Attributes:
        hits: lookups answered from disk.
        misses: lookups not found (or unreadable).
    """

    def __init__(self, directory: str | os.PathLike, identity: dict) -> None:
        from fe2hmm import __version__

        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._identity = json.dumps(
                {"fe2hmm": __version__, **identity}, sort_keys=True, default=_jsonable
            )
        except TypeError as err:
            raise TypeError(f"cache identity must be JSON-serialisable: {err}") from None
        self.hits = 0
        self.misses = 0

    def key(self, parameters: dict[str, np.ndarray]) -> str:
        """Hex key of one request (identity + parameters, bitwise)."""
        h = hashlib.sha256(self._identity.encode())
        for name in sorted(parameters):
            value = np.ascontiguousarray(parameters[name], dtype=np.float64)
            h.update(name.encode())
            h.update(str(value.shape).encode())
            h.update(value.tobytes())
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def get(self, parameters: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """The stored arrays for these parameters, or ``None``."""
        path = self._path(self.key(parameters))
        try:
            with np.load(path, allow_pickle=False) as data:
                result = {name: data[name] for name in data.files}
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # never trust it
            _log.warning("ignoring unreadable cache entry %s (%s)", path, err)
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put(self, parameters: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> None:
        """Store arrays for these parameters atomically."""
        path = self._path(self.key(parameters))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in values.items()})
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.npz"))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
