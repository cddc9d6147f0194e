"""Progress bars for long runs that stay quiet in CI, in pipes and on MPI ranks other than 0."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

__all__ = ["progress", "progress_enabled"]

#: Below this many items no bar is shown (a bar for a handful of solves is noise).
MIN_ITEMS = 20


def progress_enabled() -> bool:
    """Whether progress bars are shown in this process.

    Shown only on MPI rank 0 (``COMM_WORLD``), when standard error is a terminal, ``CI`` is not
    set, and ``FE2HMM_PROGRESS`` is not ``0``. ``FE2HMM_PROGRESS=1`` forces them on (rank 0).
    """
    setting = os.environ.get("FE2HMM_PROGRESS", "")
    if setting == "0":
        return False
    if "mpi4py.MPI" in sys.modules:
        from mpi4py import MPI

        if MPI.COMM_WORLD.rank != 0:
            return False
    if setting == "1":
        return True
    if os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


def progress(items: Iterable, desc: str = "", total: int | None = None) -> Iterator:
    """Iterate over ``items`` with a ``tqdm`` bar when :func:`progress_enabled` (else plainly).

    Args:
        items: the iterable.
        desc: label of the bar.
        total: number of items when ``items`` has no ``len``.
    """
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if total is not None and total < MIN_ITEMS or not progress_enabled():
        return iter(items)
    try:
        from tqdm import tqdm
    except ImportError:
        return iter(items)
    return iter(tqdm(items, desc=desc, total=total, leave=False, file=sys.stderr))
