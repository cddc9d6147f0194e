"""Checkpoint/restart of stepped macro runs: atomic, one file per rank, at committed steps.

A :class:`Checkpoint` holds named objects — macro :class:`dolfinx.fem.Function` objects and
*checkpointable* objects (``checkpoint_state() -> {name: array}`` and
``restore_state(arrays)``: the micro-models with history, evolving states, macro problems) —
and a JSON-serialisable :attr:`Checkpoint.data` dict for what the run accumulates (per-step
outputs) and rank-local :attr:`Checkpoint.arrays` (a driver's own vectors).
:meth:`Checkpoint.save` writes them after a committed step; :meth:`Checkpoint.restore`
loads the last committed step of the directory, if there is one. Drivers take a checkpoint and
skip the steps it has already done (:func:`fe2hmm.timestepping.march`,
:func:`fe2hmm.macro.continuation.continuation`,
:meth:`fe2hmm.macro.MacroProblem.solve_incrementally`).

Layout of the directory ``DIR``::

    DIR/latest.json               the commit record: {"format", "step", "ranks", "objects",
                                  "data"}
    DIR/step-000007/rank-0.npz    per rank, for each Function "<name>": "c/<name>" (the mesh's
    DIR/step-000007/rank-1.npz    original input index of every local cell, ghosts included)
                                  and "f/<name>" (its values cell by cell: (cells, dofs per
                                  cell, block size)); "s/<name>/<key>" (an object's arrays);
                                  "a/<key>" (the rank's Checkpoint.arrays)

Atomicity: every rank writes its file under a temporary name, flushes it (``fsync``) and renames
it; after a barrier rank 0 replaces ``latest.json`` the same way (the commit), and only then
removes older step folders. A run killed at any moment (SIGKILL included) leaves
``latest.json`` naming a step whose files are all complete: the previous one until the commit,
the new one after it.

Restoring needs the same number of ranks and the same partition of the same mesh: every rank
checks that it holds the same cells (by original input index) and restores each Function cell
by cell through the original indices, so the values land on the right dofs even if the local
numbering of cells or dofs differed; another partition is refused (the mesh partitioners are
deterministic for a given mesh, rank count and partitioner). Files hold raw float64 values: a
restored run continues bitwise from the committed state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fe2hmm.checks import check_writable
from fe2hmm.errors import raise_on_every_rank

__all__ = ["Checkpoint", "ragged", "unragged"]

FORMAT = 1
_STEP = re.compile(r"^step-(\d{6,})$")


def ragged(arrays: Mapping[int, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays of one kind per point (shapes may differ between points) as three flat arrays.

    Args:
        arrays: point index -> array (all of one ``ndim``).

    Returns:
        ``{"points": (n,) int64, "shapes": (n, ndim) int64, "values": flat float64}``
        (points sorted).
    """
    points = np.array(sorted(arrays), dtype=np.int64)
    items = [np.asarray(arrays[int(i)], dtype=float) for i in points]
    ndim = items[0].ndim if items else 0
    shapes = np.array([a.shape for a in items], dtype=np.int64).reshape(len(items), ndim)
    values = np.concatenate([a.ravel() for a in items]) if items else np.zeros(0)
    return {"points": points, "shapes": shapes, "values": values}


def unragged(packed: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
    """The inverse of :func:`ragged`: point index -> array."""
    out, start = {}, 0
    for i, shape in zip(packed["points"], packed["shapes"], strict=True):
        size = int(np.prod(shape))
        out[int(i)] = packed["values"][start : start + size].reshape(tuple(shape)).copy()
        start += size
    return out


def _fsync_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpoint:
    """Atomic per-step checkpoints of a macro run in a directory (see the module docstring).

    Args:
        directory: the checkpoint folder (created with its missing parents; checked writable
            first).
        objects: name -> :class:`dolfinx.fem.Function` or an object with
            ``checkpoint_state()`` and ``restore_state(arrays)``. Names: letters, digits,
            ``_``, ``-``, ``.``.
        comm: the run's communicator (default: the first Function's mesh communicator, else
            ``MPI.COMM_WORLD``).

    Attributes:
        directory: the folder.
        step: committed steps so far (0 before the first :meth:`save`; after :meth:`restore`,
            the restored step).
        data: JSON-serialisable values saved with every step (rank 0's copy is written;
            restored on every rank).
        arrays: rank-local NumPy arrays saved with every step (each rank its own, e.g. a
            driver's vectors over the rank's dofs); restored on the same rank.
        restored: whether :meth:`restore` found a committed step.

    Raises:
        TypeError: an object is neither a Function nor checkpointable (before any work).
        ValueError: a bad name, or ``directory`` cannot be written.
    """

    def __init__(self, directory: str | os.PathLike, objects: Mapping[str, Any], comm=None):
        from dolfinx import fem

        self.directory = check_writable(directory, folder=True)
        self._functions: dict[str, fem.Function] = {}
        self._states: dict[str, Any] = {}
        for name, obj in objects.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
                raise ValueError(f"checkpoint object name {name!r}: use letters, digits, _ - .")
            if isinstance(obj, fem.Function):
                self._functions[name] = obj
            elif callable(getattr(obj, "checkpoint_state", None)) and callable(
                getattr(obj, "restore_state", None)
            ):
                if not getattr(obj, "supports_checkpoints", True):
                    raise TypeError(
                        f"checkpoint object {name!r}: {type(obj).__name__} does not support "
                        "checkpoints (it implements no checkpoint_state/restore_state)"
                    )
                self._states[name] = obj
            else:
                raise TypeError(
                    f"checkpoint object {name!r} is a {type(obj).__name__}: expected a "
                    "dolfinx.fem.Function or an object with checkpoint_state() and "
                    "restore_state(arrays)"
                )
        if comm is None:
            if self._functions:
                comm = next(iter(self._functions.values())).function_space.mesh.comm
            else:
                from mpi4py import MPI

                comm = MPI.COMM_WORLD
        self.comm = comm
        self.step = 0
        self.data: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.restored = False
        error = None
        if comm.rank == 0:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                error = f"{type(err).__name__}: {err}"
        where = f"checkpoint directory {str(self.directory)!r}"
        raise_on_every_rank(comm, error, ValueError, lambda r: where)

    # ------------------------------------------------------------------ files
    @staticmethod
    def _layout(f) -> tuple[np.ndarray, np.ndarray, int]:
        """A Function's local cells (original indices, ghosts included), their dofs, block size."""
        mesh = f.function_space.mesh
        dofmap = f.function_space.dofmap
        cells = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)
        dofs = np.asarray(dofmap.list)
        return cells[: dofs.shape[0]], dofs, dofmap.bs

    def _file(self, step: int, rank: int | None = None) -> Path:
        rank = self.comm.rank if rank is None else rank
        return self.directory / f"step-{step:06d}" / f"rank-{rank}.npz"

    # ------------------------------------------------------------------ drivers
    def steps_done(self, key: str, path: list[float], start: int = 0) -> int:
        """The steps of ``path`` already done (:attr:`step`), checked against the path saved.

        A driver calls it before stepping: ``path`` is its whole path (``times`` of a march,
        with ``start=1`` for the initial time; ``loads`` of a load path), recorded in
        :attr:`data` under ``key`` so that a restart along another path is refused.

        Raises:
            ValueError: more steps done than ``path`` has, or the steps done went along another
                path (another command line or set-up).
        """
        done = self.step
        if done > len(path) - start:
            raise ValueError(
                f"the checkpoint has {done} steps done, more than the {len(path) - start} "
                f"{key} steps given"
            )
        saved = self.data.get(key)
        if done and (saved is None or saved[: done + start] != path[: done + start]):
            raise ValueError(
                f"the checkpoint's {done} steps went along other {key} ({saved}, given "
                f"{path}): restart with the same {key}, or use another folder"
            )
        self.data[key] = list(path)
        return done

    # ------------------------------------------------------------------ save / restore
    def save(self) -> None:
        """Write the current state as the next committed step (:attr:`step` + 1).

        Raises:
            OSError: the step could not be written — the folder is not writable, :attr:`data`
                is not JSON-serialisable, an object's ``checkpoint_state`` failed — on every
                rank, naming the first rank it failed on.

        Note:
            Collective on :attr:`comm`.
        """
        step = self.step + 1
        error = None
        try:  # whatever fails on one rank is raised on every rank (no rank left waiting)
            arrays: dict[str, np.ndarray] = {}
            for name, f in self._functions.items():
                cells, dofs, bs = self._layout(f)
                arrays[f"c/{name}"] = cells
                arrays[f"f/{name}"] = f.x.array.reshape(-1, bs)[dofs]
            for name, obj in self._states.items():
                for key, value in obj.checkpoint_state().items():
                    arrays[f"s/{name}/{key}"] = np.asarray(value)
            for key, value in self.arrays.items():
                arrays[f"a/{key}"] = np.asarray(value)
            record = json.dumps(
                {
                    "format": FORMAT,
                    "step": step,
                    "ranks": self.comm.size,
                    "objects": sorted([*self._functions, *self._states]),
                    "data": self.data,
                }
            )
            folder = self._file(step).parent
            folder.mkdir(exist_ok=True)
            _fsync_write(self._file(step), lambda f: np.savez(f, **arrays))
        except Exception as err:  # noqa: BLE001  (gathered and raised on every rank below)
            error = f"{type(err).__name__}: {err}"
        raise_on_every_rank(
            self.comm, error, OSError, lambda r: f"checkpoint step {step} not written (rank {r})"
        )
        self.comm.barrier()  # every rank's file is complete before the commit
        error = None
        if self.comm.rank == 0:
            try:
                _fsync_write(self.directory / "latest.json", lambda f: f.write(record.encode()))
                _fsync_dir(self.directory)
                for old in self.directory.iterdir():
                    m = _STEP.match(old.name)
                    if m and int(m.group(1)) != step and old.is_dir():
                        shutil.rmtree(old, ignore_errors=True)
            except Exception as err:  # noqa: BLE001  (raised on every rank below)
                error = f"{type(err).__name__}: {err}"
        raise_on_every_rank(
            self.comm, error, OSError, lambda r: f"checkpoint step {step} not committed (rank {r})"
        )
        self.step = step

    def restore(self) -> bool:
        """Load the last committed step of :attr:`directory`, if any.

        Returns:
            True if a step was restored (then :attr:`step`, :attr:`data`, every Function and
            every object hold its state), False for an empty folder (nothing changes).

        Raises:
            ValueError: the files do not match this run — another number of ranks, another
                partition or mesh, other objects or sizes — or are damaged, or an object's
                ``restore_state`` failed (on every rank, naming the mismatch and the rank).

        Note:
            Collective on :attr:`comm`.
        """
        record, error = None, None
        if self.comm.rank == 0:
            path = self.directory / "latest.json"
            try:
                record = json.loads(path.read_text()) if path.exists() else None
                missing = set() if record is None else {"step", "ranks", "data"} - set(record)
                if missing:
                    raise KeyError(f"no {', '.join(sorted(missing))}")
                if record is not None and not isinstance(record["step"], int):
                    raise TypeError(f"step {record['step']!r} is not an integer")
            except (OSError, ValueError, KeyError, TypeError) as err:
                error = f"{str(path)!r} is not a commit record ({type(err).__name__}: {err})"
        record, error = self.comm.bcast((record, error), root=0)
        if error is not None:
            raise ValueError(f"checkpoint {str(self.directory)!r} cannot be restored: {error}")
        if record is None:
            return False
        step = record["step"]
        if record.get("format") != FORMAT:
            error = f"format {record.get('format')!r}, this fe2hmm reads {FORMAT}"
        elif record["ranks"] != self.comm.size:
            error = (
                f"written by {record['ranks']} ranks, this run has {self.comm.size}: restart "
                f"with mpiexec -n {record['ranks']}"
            )
        loaded = None
        if error is None:
            try:
                with np.load(self._file(step)) as npz:
                    loaded = {k: npz[k] for k in npz.files}
                error = self._check(loaded, record.get("objects", []))
            except Exception as err:  # noqa: BLE001  (a missing or damaged file, on any rank)
                error = f"{type(err).__name__}: {err}"
        where = f"checkpoint {str(self.directory)!r} step {step}"
        raise_on_every_rank(
            self.comm, error, ValueError, lambda r: f"{where} cannot be restored (rank {r})"
        )
        assert loaded is not None
        error = None
        try:
            for name, f in self._functions.items():
                cells, dofs, bs = self._layout(f)
                row = {int(c): i for i, c in enumerate(loaded[f"c/{name}"])}
                order = np.array([row[int(c)] for c in cells], dtype=np.int64)
                f.x.array.reshape(-1, bs)[dofs] = loaded[f"f/{name}"][order]
            for name, obj in self._states.items():
                prefix = f"s/{name}/"
                obj.restore_state(
                    {k[len(prefix) :]: v for k, v in loaded.items() if k.startswith(prefix)}
                )
        except Exception as err:  # noqa: BLE001  (raised on every rank below)
            error = f"{type(err).__name__}: {err}"
        raise_on_every_rank(
            self.comm, error, ValueError, lambda r: f"{where}: restoring failed on rank {r}"
        )
        self.arrays = {k[2:]: v for k, v in loaded.items() if k.startswith("a/")}
        self.step = step
        self.data = record["data"]
        self.restored = True
        return True

    def _check(self, loaded: dict[str, np.ndarray], objects: list[str]) -> str | None:
        names = sorted([*self._functions, *self._states])
        if objects != names:
            return f"objects differ: the file has {objects}, this run {names}"
        for name, f in self._functions.items():
            cells, dofs, bs = self._layout(f)
            saved = loaded[f"c/{name}"]
            if saved.size != cells.size or not np.array_equal(np.sort(saved), np.sort(cells)):
                return (
                    f"Function {name!r}: the rank holds {cells.size} cells, the file "
                    f"{saved.size} or others (another mesh or partition)"
                )
            if loaded[f"f/{name}"].shape != (*dofs.shape, bs):
                return (
                    f"Function {name!r} has {dofs.shape[1]} dofs per cell (block size {bs}), the "
                    f"file {loaded[f'f/{name}'].shape[1:]} (another space)"
                )
        return None
