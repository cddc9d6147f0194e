"""Where micro solves run under MPI: owner-computes, pooled or serial (all on rank 0).

- ``"owner"`` (default): every rank solves the micro problems of its own quadrature points on
  ``COMM_SELF``; no communication besides the failure check.
- ``"pooled"``: the distinct micro problems of all ranks are deduplicated globally and handed
  out through an MPI one-sided counter (``MPI_Fetch_and_op``) in shrinking chunks (guided
  self-scheduling: remaining/(2p) tasks per reservation), so a rank that finishes early takes
  the next chunk — no rank idles while expensive problems remain.
  Results are gathered on every rank and land on the owning points exactly as in serial.
- ``"serial"``: the same global task list, all solved on rank 0 (the baseline of the scaling
  benchmark; it also shows what an undistributed micro layer costs).

Pooled and serial scheduling apply to models that split a batch into independent tasks
(:meth:`~fe2hmm.micro.interface.MicroModel.micro_tasks`): linear models (one task per point,
keyed by its parameters, so identical requests of different ranks are solved once), plastic
cells (a task carries the point's committed history, so any rank can solve it), and reuse
wrappers around them (the tasks are those of the points no reuse layer answered). The scheduler
knows tasks, never a concrete model.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager

from mpi4py import MPI

import numpy as np

from fe2hmm.errors import MicroStop, classify, located_class
from fe2hmm.micro.interface import MicroModel, MicroResult, TaskBatch

__all__ = [
    "SCHEDULERS",
    "STOP_GRACE_SECONDS",
    "check_scheduler",
    "register_local_ranks",
    "scheduled_evaluate",
    "stop_watchdog",
]

#: Scheduler names accepted by :class:`~fe2hmm.closure.Closure`.
SCHEDULERS = ("owner", "pooled", "serial")

#: Seconds a rank whose micro-model stopped the run (``SystemExit``, ``KeyboardInterrupt``)
#: waits for the other ranks to reach the collective that shares it before it aborts the MPI
#: job (they may be busy with long micro solves of their own).
STOP_GRACE_SECONDS = 5.0

_LOCAL_RANKS = MPI.Comm.Create_keyval()  # attribute: pids of this node's other ranks


def register_local_ranks(comm: MPI.Comm) -> None:
    """Remember the process ids of the other ranks of ``comm`` on this node.

    Collective the first time on a communicator; cached on it (a freed communicator forgets
    them). :func:`stop_watchdog` ends these processes when a stop is not shared in time.
    """
    if comm.size == 1 or comm.Get_attr(_LOCAL_RANKS) is not None:
        return
    host, pid = socket.gethostname(), os.getpid()
    ranks = comm.allgather((host, pid))
    comm.Set_attr(_LOCAL_RANKS, [p for h, p in ranks if h == host and p != pid])


def _local_ranks(comm: MPI.Comm) -> list[int]:
    return comm.Get_attr(_LOCAL_RANKS) or []


@contextmanager
def stop_watchdog(comm: MPI.Comm, error: BaseException | None):
    """Abort the MPI job if a stop is not shared within :data:`STOP_GRACE_SECONDS`.

    Wraps the collective that shares ``error``: when ``error`` is a stop (``SystemExit``,
    ``KeyboardInterrupt``, :class:`~fe2hmm.errors.MicroStop`) and the other ranks do not
    reach it in time, this rank prints the stop's message, kills the ranks on its node that
    :func:`register_local_ranks` recorded and calls ``MPI_Abort``. Does
    nothing for no error or an ``Exception`` (the ranks agree at the collective; a failed
    solve may be retried), or on one rank.
    """
    if comm.size == 1 or error is None or classify(error)[0] not in ("exit", "interrupt"):
        yield
        return

    def abort():
        print(
            f"fe2hmm: rank {comm.rank}: {error}; the other ranks did not respond within "
            f"{STOP_GRACE_SECONDS:g} s: aborting the MPI job",
            file=sys.stderr,
            flush=True,
        )
        # MPI_Abort alone is not enough: with MPICH's hydra the job sometimes went on until the
        # busy rank finished its solve (1 run in ~10). The other ranks on this node are ended
        # here; MPI_Abort ends those elsewhere.
        for pid in _local_ranks(comm):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # already gone
        comm.Abort(1)

    timer = threading.Timer(STOP_GRACE_SECONDS, abort)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def check_scheduler(name: str, model) -> str:
    """Validate a scheduler name for a model; returns the name."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
    if name != "owner" and not model.splits_into_tasks:
        raise ValueError(
            f"scheduler {name!r} needs a model that splits into tasks (micro_tasks(), as "
            f"linear and plastic cell models do); {type(model).__name__} does not: use "
            "scheduler='owner'"
        )
    return name


def _distribute(solve, ntasks: int, comm: MPI.Comm, scheduler: str, timings):
    """Solve tasks ``0..ntasks-1`` under ``scheduler``; every rank gets every result.

    Returns ``(results {task: result}, failures [(rank, task, kind, message)])``, ``kind`` as
    in :func:`~fe2hmm.errors.classify` (any exception of a task is caught and shared: a
    ``SystemExit`` or ``KeyboardInterrupt`` on one rank must not leave the others waiting).
    """
    results: dict[int, object] = {}
    failure = stopped = None
    solve_seconds = 0.0
    counter = _Counter(comm) if scheduler == "pooled" else None
    serial = iter(range(ntasks) if comm.rank == 0 else range(0))
    reserved: list[int] = []
    taken = 0  # the counter's value at the last reservation
    while True:
        if counter is None:
            i = next(serial, None)
        else:
            if not reserved:
                # guided self-scheduling: chunks of (remaining)/(2p) tasks, at least one, so
                # the counter is touched O(p log N) times and the last chunks stay small
                chunk = max(1, (ntasks - taken) // (2 * comm.size))
                taken = counter.next(chunk)
                reserved = list(range(taken, min(taken + chunk, ntasks)))
                taken += chunk
            i = reserved.pop(0) if reserved else None
        if i is None or i >= ntasks:
            break
        ts = time.perf_counter()
        try:
            results[i] = solve(i)
        except BaseException as err:  # noqa: BLE001 - reported to every rank below
            failure = (i, *classify(err))
            if failure[1] in ("exit", "interrupt"):
                stopped = MicroStop(err, message=f"micro task {i} of {ntasks}: {failure[2]}")
        finally:
            solve_seconds += time.perf_counter() - ts
        if failure is not None:
            if counter is not None:
                counter.next(ntasks)  # drain: the other ranks take no further chunks
            break
    t2 = time.perf_counter()
    with stop_watchdog(comm, stopped):
        comm.Barrier()  # waiting for the slowest rank
        t3 = time.perf_counter()
        if counter is not None:
            counter.free()
        shared = comm.allgather((results, failure))
    t4 = time.perf_counter()
    if timings is not None:
        timings.solve_seconds += solve_seconds
        timings.waiting += t3 - t2
        timings.communication += t4 - t3
    merged: dict[int, object] = {}
    for part, _ in shared:
        merged.update(part)
    failures = [(r, *f) for r, (_, f) in enumerate(shared) if f is not None]
    return merged, failures


def _raise_task_failure(rank, kind, message, owner, point, comm, parameters=None):
    """Raise a failed task's error on every rank: located on its owner, a pointer elsewhere.

    ``kind`` ``"error"``: a :class:`~fe2hmm.errors.MicroSolveError`; ``"bug"``: a
    :class:`~fe2hmm.errors.MicroModelError`; ``"exit"``/``"interrupt"``: a
    :class:`MicroStop` on every rank (the closure ends the run with it).
    """
    if owner == comm.rank:
        text = message + (f" (solved by rank {rank})" if rank != comm.rank else "")
        if kind in ("error", "bug"):
            raise located_class(kind)(text, point=point, parameters=parameters)
        raise MicroStop.of_kind(kind, text, point=point, parameters=parameters)
    text = f"a micro solve of rank {owner}'s points {_VERB[kind]} on rank {rank}: {message}"
    if kind in ("error", "bug"):
        raise located_class(kind)(text, rank=comm.rank)
    raise MicroStop.of_kind(kind, text, rank=comm.rank)


_VERB = {
    "error": "failed",
    "bug": "failed",
    "exit": "stopped the run",
    "interrupt": "was interrupted",
}
_SEVERITY = {"interrupt": 0, "exit": 1, "bug": 2, "error": 3}  # which failure every rank raises


def scheduled_evaluate(
    model: MicroModel,
    inputs: dict[str, np.ndarray],
    parameters: dict[str, np.ndarray],
    tangents: bool,
    comm: MPI.Comm,
    scheduler: str,
    timings=None,
) -> MicroResult:
    """Evaluate a task-splitting model with its tasks distributed under ``scheduler``.

    Collective on ``comm``. Points answered locally (by a reuse layer, an exact shortcut)
    never leave their rank; the tasks of all ranks are gathered, tasks with equal ``key``
    (identical requests on different ranks) are solved once, solved where the scheduler puts
    them, and the results returned to the owning points. A batch that needs further rounds
    (its ``finish`` returns another :class:`~fe2hmm.micro.interface.TaskBatch`) takes part in
    as many collective rounds as the rank that needs the most.

    Raises:
        MicroSolveError: on every rank if a task failed; on the owning rank it names the point.
        MicroStop: on every rank if a task raised ``SystemExit``, ``KeyboardInterrupt`` or
            another non-``Exception`` (on the owning rank naming the point).
    """
    error = None
    try:
        batch = model.micro_tasks(inputs, parameters, tangents=tangents)
    except BaseException as err:  # noqa: BLE001 - every rank must still reach the allgather
        batch, error = None, err
    while True:
        t0 = time.perf_counter()
        if error is not None:
            payload = (None, classify(error))
        else:
            payload = (batch.tasks if isinstance(batch, TaskBatch) else None, None)
        with stop_watchdog(comm, error):
            gathered = comm.allgather(payload)
        t1 = time.perf_counter()
        broken = [r for r, (_, failure) in enumerate(gathered) if failure is not None]
        if broken:
            r = min(broken, key=lambda r: _SEVERITY[gathered[r][1][0]])
            kind, message = gathered[r][1]
            if error is not None and classify(error)[0] == kind:
                raise error
            text = f"preparing micro tasks {_VERB[kind]} on rank {r}: {message}"
            if kind in ("error", "bug"):
                raise located_class(kind)(text, rank=comm.rank)
            raise MicroStop.of_kind(kind, text, rank=comm.rank)
        if all(part is None for part, _ in gathered):
            return batch  # every rank has its result
        owner = [r for r, (part, _) in enumerate(gathered) for _ in (part or [])]
        flat = [task for part, _ in gathered for task in (part or [])]
        # identical requests of different ranks: one task (first occurrence) serves all
        keys = [getattr(task, "key", None) for task in flat]
        first: dict = {}
        unique = [
            first.setdefault(k, i) == i if k is not None else True for i, k in enumerate(keys)
        ]
        solved = [i for i in range(len(flat)) if unique[i]]
        if timings is not None:
            timings.communication += t1 - t0
        results, failures = _distribute(
            lambda j, flat=flat, solved=solved: model.solve_task(flat[solved[j]]),
            len(solved),
            comm,
            scheduler,
            timings,
        )
        if failures:
            # a stop (SystemExit, KeyboardInterrupt) anywhere ends the run on every rank
            rank, j, kind, message = min(failures, key=lambda f: _SEVERITY[f[2]])
            i = solved[j]
            _raise_task_failure(rank, kind, message, owner[i], int(flat[i].point), comm)
        by_task = {solved[j]: r for j, r in results.items()}
        mine = {
            flat[i].point: by_task[i if keys[i] is None else first[keys[i]]]
            for i in range(len(flat))
            if owner[i] == comm.rank
        }
        try:
            batch = batch.finish(mine) if isinstance(batch, TaskBatch) else batch
        except BaseException as err:  # noqa: BLE001 - reported to every rank in the next round
            error = err


class _Counter:
    """A shared task counter on rank 0 of ``comm`` (one-sided fetch-and-add).

    When all ranks share memory (one node) the window is a shared-memory window, so the atomic
    needs no progress on rank 0 (MPI passive-target operations on a distributed window wait
    until the target enters the MPI library, i.e. until rank 0 finishes its current solve).
    """

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        size = MPI.INT64_T.Get_size() if comm.rank == 0 else 0
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        shared = comm.allreduce(node.size) == comm.size * comm.size
        node.Free()
        if shared:
            self.window = MPI.Win.Allocate_shared(size, MPI.INT64_T.Get_size(), comm=comm)
        else:
            self.window = MPI.Win.Allocate(size, comm=comm)
        if comm.rank == 0:
            self.window.Lock(0)
            np.frombuffer(self.window.tomemory(), dtype=np.int64)[0] = 0
            self.window.Unlock(0)
        comm.Barrier()
        # one passive-target epoch for the counter's lifetime: no lock protocol per access
        self.window.Lock_all(MPI.MODE_NOCHECK)

    def next(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive tasks; returns the first one's index."""
        add, old = np.full(1, count, dtype=np.int64), np.zeros(1, dtype=np.int64)
        self.window.Fetch_and_op(add, old, 0, 0, MPI.SUM)
        self.window.Flush(0)
        return int(old[0])

    def free(self) -> None:
        self.window.Unlock_all()
        self.window.Free()
