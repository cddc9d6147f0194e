"""PETSc options prefixes and options of fe2hmm's solvers: unique, checked, set only while used.

Like dolfinx's ``fem/petsc.py``, every fe2hmm solver that configures PETSc objects from the
options database has an options prefix of its own, and its options are not left behind in
PETSc's global database. One mechanism serves :class:`fe2hmm.newton.NewtonSolver` and
:class:`fe2hmm.macro.snes.SNESSolver`:

- :func:`claim_prefix` reserves a prefix for a new solver: ``None`` generates
  ``<stem><k>_`` (the same on all ranks), a given prefix is checked — a non-empty string, the
  same on all ranks, not overlapping (being, starting or being started by) the prefix of a live
  solver, since PETSc would then read one solver's options for the other's objects (e.g. a
  Jacobian prefix ``<prefix>A_``). :func:`release_prefix` frees it when the solver is destroyed.
- :func:`options_set` puts a solver's options into the database under their full names only
  for the duration of a ``with`` block — around ``setFromOptions`` and around the solves, since
  some options are read lazily (MUMPS' ``mat_mumps_icntl_*`` at the first factorisation, inside
  the first solve) — and removes them afterwards, restoring a value that was there before.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

__all__ = ["claim_prefix", "live_prefixes", "options_set", "release_prefix"]

_live_prefixes: set[str] = set()
_prefix_counter = itertools.count()


def live_prefixes() -> frozenset[str]:
    """The options prefixes held by live fe2hmm solvers on this rank.

    Returns:
        The prefixes claimed by :func:`claim_prefix` and not yet released.
    """
    return frozenset(_live_prefixes)


def _overlapping(prefix: str, others: Iterable[str]) -> list[str]:
    """The prefixes in ``others`` that ``prefix`` is, starts or is started by."""
    return sorted(o for o in others if prefix.startswith(o) or o.startswith(prefix))


def _unique_prefix(comm: MPI.Comm, stem: str) -> str:
    """A ``<stem><k>_`` prefix, the same on all ranks of ``comm``, overlapping no live prefix.

    Raises:
        RuntimeError: on every rank, when a live prefix is a start of ``stem`` itself (no
            ``<stem><k>_`` could be free).

    Note:
        Collective on ``comm``.
    """
    global _prefix_counter
    if comm.allreduce(any(stem.startswith(p) for p in _live_prefixes), op=MPI.LOR):
        raise RuntimeError(
            f"cannot generate an options prefix {stem}<k>_: a live solver's prefix covers all "
            f"of them ({sorted(p for p in _live_prefixes if stem.startswith(p))} on some rank)"
        )
    k = comm.allreduce(next(_prefix_counter), op=MPI.MAX)
    while comm.allreduce(bool(_overlapping(f"{stem}{k}_", _live_prefixes)), op=MPI.LOR):
        k += 1
    _prefix_counter = itertools.count(k + 1)
    return f"{stem}{k}_"


def claim_prefix(comm: MPI.Comm, prefix: str | None, stem: str) -> str:
    """Reserve the options prefix of a new solver: a generated unique one, or a given one checked.

    The checks are combined over the ranks before raising, so every rank raises the same error
    and none is left in a collective call.

    Args:
        comm: the solver's communicator.
        prefix: ``None`` generates ``<stem><k>_``; a given prefix must be a non-empty string,
            the same on all ranks of ``comm``, and must not overlap (be, start or be started by)
            the prefix of a live solver.
        stem: start of a generated prefix, e.g. ``"fe2hmm_newton_"``.

    Returns:
        The prefix, live (refused to other solvers) until :func:`release_prefix`.

    Raises:
        TypeError: ``prefix`` is neither a string nor ``None`` (on some rank).
        ValueError: ``prefix`` is empty, differs between ranks or overlaps a live prefix.
        RuntimeError: no ``<stem><k>_`` can be generated (a live prefix is a start of ``stem``).

    Note:
        Collective on ``comm``.
    """
    error: tuple[str, str] | None = None
    if prefix is not None and not isinstance(prefix, str):
        error = ("TypeError", f"must be a str or None, got {type(prefix).__name__}")
        prefix = None
    elif prefix == "":
        error = ("ValueError", "cannot be empty (dolfinx requires one)")
    taken = _overlapping(prefix, _live_prefixes) if prefix else []
    gathered = comm.allgather((error, prefix, taken))
    errors = [e for e, _, _ in gathered if e is not None]
    if errors:
        kind, message = min(errors)  # TypeError before ValueError, the same on every rank
        raise (TypeError if kind == "TypeError" else ValueError)(f"petsc_options_prefix {message}")
    given = {p for _, p, _ in gathered}
    if len(given) != 1:
        raise ValueError(
            "petsc_options_prefix must be the same on all ranks, got "
            + ", ".join(sorted(repr(p) for p in given))
        )
    if prefix is None:
        prefix = _unique_prefix(comm, stem)
    else:
        taken = sorted({p for _, _, t in gathered for p in t})
        if taken:
            raise ValueError(
                f"petsc_options_prefix {prefix!r} overlaps the prefix of a live fe2hmm solver "
                f"({', '.join(map(repr, taken))}); give another one, or None for a unique one"
            )
    _live_prefixes.add(prefix)
    return prefix


def release_prefix(prefix: str | None) -> None:
    """Free a prefix claimed by :func:`claim_prefix` (no-op for ``None`` or a free prefix).

    Args:
        prefix: the prefix of a solver being destroyed.
    """
    if prefix is not None:
        _live_prefixes.discard(prefix)


@contextlib.contextmanager
def options_set(prefix: str, options: Mapping[str, Any]) -> Iterator[None]:
    """Put ``options`` under ``prefix`` into PETSc's global database for the ``with`` block.

    Afterwards each entry is removed by its full name (petsc4py's ``delValue`` ignores pushed
    prefixes), or set back to the value it had before the block.

    Args:
        prefix: the solver's options prefix.
        options: option names without the prefix (e.g. ``"pc_type"``) and their values
            (``None`` for a flag without a value).

    Yields:
        Nothing; the options are in the database while the block runs, also if it raises.
    """
    names = {f"{prefix}{k}": v for k, v in options.items()}
    opts = PETSc.Options()
    before = {n: opts.getString(n, None) for n in names if opts.hasName(n)}
    for name, value in names.items():
        opts[name] = value
    try:
        yield
    finally:
        for name in names:
            if name in before:
                opts[name] = before[name]
            else:
                opts.delValue(name)
