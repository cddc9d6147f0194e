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
import time
import zipfile
from pathlib import Path

import numpy as np

from fe2hmm.micro.interface import MicroResult, linear_outputs
from fe2hmm.reuse.wrapper import ReuseWrapper, then

__all__ = ["Cache", "PersistentCache"]

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


class Cache(ReuseWrapper):
    """Keep a micro-model's answers in a :class:`PersistentCache` directory.

    A linear model's entries are its tensors, keyed by the parameters (the files of earlier
    releases stay valid); a nonlinear stateless model's are outputs and tangents, keyed by the
    inputs and the parameters. Misses go to the inner model and are stored when solved.

    Args:
        model: the wrapped micro-model; it must define ``cache_identity()`` and be neither
            stochastic nor stateful.
        directory: the cache directory (created if missing).

    Raises:
        TypeError: a stochastic or stateful model.
        NotImplementedError: the model defines no cache identity.
    """

    restart_exact = True  # exact answers, kept on disk

    def __init__(self, model, directory: str | os.PathLike) -> None:
        super().__init__(model)
        if model.is_stochastic:
            raise TypeError(
                f"Cache cannot wrap the stochastic {type(model).__name__}: a stored sample would "
                "replace independent ones"
            )
        self.store = PersistentCache(directory, model.cache_identity())

    def _request(self, inputs: dict, parameters: dict, i: int) -> dict:
        request = {k: np.asarray(v[i]) for k, v in parameters.items()}
        if not self.is_linear:
            request.update({f"input:{k}": np.asarray(v[i]) for k, v in inputs.items()})
        return request

    def micro_tasks(self, inputs, parameters, *, tangents=True):
        """Tasks of the inner model for the points whose answers are not on disk."""
        n = self.check_batch(inputs, parameters)
        t0 = time.perf_counter()
        stats = self.statistics
        stats.points_requested += n
        stats.micro_requests += n
        linear = self.is_linear
        need_tangents = tangents or linear
        found: dict[int, dict] = {}
        for i in range(n):
            entry = self.store.get(self._request(inputs, parameters, i))
            if entry is not None and (not need_tangents or _has_tangents(entry, self)):
                found[i] = _entry_names(entry)
        stats.cache_hits += len(found)
        missing = np.array([i for i in range(n) if i not in found], dtype=int)
        sub = self.forward(
            {k: np.asarray(v)[missing] for k, v in inputs.items()},
            {k: np.asarray(v)[missing] for k, v in parameters.items()},
            missing,
            need_tangents,
        )
        stats.reuse_seconds += time.perf_counter() - t0

        def done(result: MicroResult) -> MicroResult:
            entries = dict(found)
            for m, i in enumerate(missing):
                entry = {f"d|{o}|{j}": t[m] for (o, j), t in result.tangents.items()}
                if not linear:
                    entry.update({f"out|{k}": v[m] for k, v in result.outputs.items()})
                self.store.put(self._request(inputs, parameters, int(i)), _file_names(entry))
                entries[int(i)] = entry
            blocks = self.tangent_blocks if need_tangents else []
            tangent_values = {
                key: np.stack([entries[i][f"d|{key[0]}|{key[1]}"] for i in range(n)])
                if n
                else np.empty((0, *self.output_shapes[key[0]], *self.input_shapes[key[1]]))
                for key in blocks
            }
            if linear:
                outputs = linear_outputs(tangent_values, inputs, self.output_shapes)
            else:
                outputs = {
                    k: np.stack([entries[i][f"out|{k}"] for i in range(n)])
                    if n
                    else np.empty((0, *shape))
                    for k, shape in self.output_shapes.items()
                }
            return MicroResult(outputs, tangent_values if tangents else {})

        return then(sub, done)


def _file_names(entry: dict) -> dict:
    """Entry names as stored: tensors ``out|in`` (the layout of the linear models' files)."""
    return {(k[2:] if k.startswith("d|") else k): v for k, v in entry.items()}


def _entry_names(stored: dict) -> dict:
    """Stored names back to ``d|out|in`` / ``out|name``."""
    return {(k if k.startswith("out|") else f"d|{k}"): v for k, v in stored.items()}


def _has_tangents(stored: dict, model) -> bool:
    names = set(_entry_names(stored))
    return all(f"d|{o}|{i}" in names for o, i in model.tangent_blocks)
