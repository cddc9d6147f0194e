"""Progress of long runs: bars, and a one-line notice while numba compiles fe2hmm's kernels.

The bars stay quiet in CI, in pipes and on MPI ranks other than 0. The notice appears on the
first run only: the kernels are cached on disk (``cache=True``) and later runs load them in a
fraction of a second.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator

__all__ = ["announce_compilation", "progress", "progress_enabled"]

#: Below this many items no bar is shown (a bar for a handful of solves is noise).
MIN_ITEMS = 20


def _is_rank_zero() -> bool:
    if "mpi4py.MPI" in sys.modules:
        from mpi4py import MPI

        return MPI.COMM_WORLD.rank == 0
    return True


def progress_enabled() -> bool:
    """Whether progress bars are shown in this process.

    Shown only on MPI rank 0 (``COMM_WORLD``), when standard error is a terminal, ``CI`` is not
    set, and ``FE2HMM_PROGRESS`` is not ``0``. ``FE2HMM_PROGRESS=1`` forces them on (rank 0).
    """
    setting = os.environ.get("FE2HMM_PROGRESS", "")
    if setting == "0":
        return False
    if not _is_rank_zero():
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


_notice_lock = threading.Lock()
_notice = {"installed": False, "shown": False}


def announce_compilation() -> None:
    """Print one line on standard error when numba starts compiling one of fe2hmm's kernels.

    Installs (once per process; later calls do nothing) a listener of numba's ``numba:compile``
    event, which numba fires only when a kernel is not in its on-disk cache (``__pycache__``
    next to the module, or ``NUMBA_CACHE_DIR``) and is about to be compiled — so the notice
    appears on the first run after installing or changing fe2hmm, once, and never when the
    cached kernels load. Modules with numba kernels call this at import. Printed on MPI rank 0
    only; ``FE2HMM_PROGRESS=0`` silences it.
    """
    with _notice_lock:
        if _notice["installed"]:
            return
        _notice["installed"] = True
    from numba.core import event

    class _Notice(event.Listener):
        def on_start(self, ev) -> None:
            func = getattr(ev.data.get("dispatcher"), "py_func", None)
            module = getattr(func, "__module__", "") or ""
            if not module.startswith("fe2hmm.") or _notice["shown"]:
                return
            _notice["shown"] = True
            if os.environ.get("FE2HMM_PROGRESS", "") == "0" or not _is_rank_zero():
                return
            package = module.rsplit(".", 1)[0]
            print(
                f"fe2hmm: compiling the numba kernels of {package} (first run only, up to a "
                "minute; cached on disk afterwards) ...",
                file=sys.stderr,
                flush=True,
            )

        def on_end(self, ev) -> None:
            pass

    event.register("numba:compile", _Notice())
