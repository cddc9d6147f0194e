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

Pooled and serial scheduling apply to :class:`~fe2hmm.micro.interface.LinearMicroModel` (one
task per distinct parameter set) and to models that split a batch into independent tasks
(:meth:`~fe2hmm.micro.interface.MicroModel.micro_tasks`, e.g. plastic cells: a task carries the
point's committed history, so any rank can solve it).
"""

from __future__ import annotations

import time

from mpi4py import MPI

import numpy as np

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import LinearMicroModel, MicroModel, MicroResult

__all__ = [
    "SCHEDULERS",
    "check_scheduler",
    "scheduled_evaluate",
    "scheduled_tensors",
    "splits_into_tasks",
]

#: Scheduler names accepted by :class:`~fe2hmm.closure.Closure`.
SCHEDULERS = ("owner", "pooled", "serial")


def splits_into_tasks(model) -> bool:
    """Whether ``model`` implements :meth:`~fe2hmm.micro.interface.MicroModel.micro_tasks`."""
    return type(model).micro_tasks is not MicroModel.micro_tasks


def check_scheduler(name: str, model) -> str:
    """Validate a scheduler name for a model; returns the name."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
    if name != "owner" and not (isinstance(model, LinearMicroModel) or splits_into_tasks(model)):
        raise ValueError(
            f"scheduler {name!r} needs a LinearMicroModel or a model with micro_tasks(); "
            f"{type(model).__name__} has neither: use scheduler='owner'"
        )
    return name


def _distribute(solve, ntasks: int, comm: MPI.Comm, scheduler: str, timings):
    """Solve tasks ``0..ntasks-1`` under ``scheduler``; every rank gets every result.

    Returns ``(results {task: result}, failures [(rank, task, message)])``.
    """
    results: dict[int, object] = {}
    failure = None
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
        except MicroSolveError as err:
            failure = (i, err.message)
        except Exception as err:  # noqa: BLE001 - reported to every rank below
            failure = (i, f"{type(err).__name__}: {err}")
        finally:
            solve_seconds += time.perf_counter() - ts
        if failure is not None:
            break
    t2 = time.perf_counter()
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


def _raise_task_failure(rank, message, owner, point, comm, parameters=None):
    """Raise a failed task's error on every rank: located on its owner, a pointer elsewhere."""
    if owner == comm.rank:
        raise MicroSolveError(
            message + (f" (solved by rank {rank})" if rank != comm.rank else ""),
            point=point,
            parameters=parameters,
        )
    raise MicroSolveError(
        f"a micro solve of rank {owner}'s points failed on rank {rank}: {message}",
        rank=comm.rank,
    )


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

    Collective on ``comm``. Points answered locally (e.g. by an exact predictor) never leave
    their rank; tasks (with their history) are gathered, solved where the scheduler puts
    them, and the results returned to the owning points.

    Raises:
        MicroSolveError: on every rank if a task failed; on the owning rank it names the point.
    """
    t0 = time.perf_counter()
    error = None
    try:
        batch = model.micro_tasks(inputs, parameters, tangents=tangents)
    except Exception as err:  # noqa: BLE001 - every rank must still reach the allgather
        batch, error = None, err
    gathered = comm.allgather(
        (None, f"{type(error).__name__}: {error}") if error else (batch.tasks, None)
    )
    t1 = time.perf_counter()
    broken = [r for r, (_, message) in enumerate(gathered) if message is not None]
    if broken:
        if error is not None:
            raise error
        raise MicroSolveError(
            f"preparing micro tasks failed on rank {broken[0]}: {gathered[broken[0]][1]}",
            rank=comm.rank,
        )
    owner = [r for r, (part, _) in enumerate(gathered) for _ in part]
    flat = [task for part, _ in gathered for task in part]
    if timings is not None:
        timings.communication += t1 - t0  # includes the local predictor checks (cheap)
    results, failures = _distribute(
        lambda i: model.solve_task(flat[i]), len(flat), comm, scheduler, timings
    )
    if failures:
        rank, i, message = failures[0]
        _raise_task_failure(rank, message, owner[i], int(flat[i].point), comm)
    mine = {flat[i].point: results[i] for i in range(len(flat)) if owner[i] == comm.rank}
    return batch.finish(mine)


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


def scheduled_tensors(
    model: LinearMicroModel,
    parameters: dict[str, np.ndarray],
    n: int,
    comm: MPI.Comm,
    scheduler: str,
    timings=None,
) -> tuple[dict, np.ndarray | None]:
    """Effective tensors of this rank's ``n`` points, solved under ``scheduler``.

    Collective on ``comm``. Returns ``(tensors, tensor_errors)`` as
    :meth:`LinearMicroModel.tensors` and ``last_tensor_errors``.

    Raises:
        MicroSolveError: on every rank if a task failed; on the rank owning the failed
            parameter set it names that rank's first point using it.
    """
    rows = model.parameter_rows(parameters, n)
    if model.reuse:
        keys = model.dedupe_keys(rows)
    else:  # naive baseline: one task per point, no dedupe
        keys = np.column_stack([np.full(n, comm.rank), np.arange(n)]).astype(float)
    t0 = time.perf_counter()
    local_keys, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    gathered = comm.allgather((local_keys, rows[first], first))
    all_keys = np.concatenate([g[0] for g in gathered])
    all_rows = np.concatenate([g[1] for g in gathered])
    owner = np.concatenate([np.full(len(g[0]), r) for r, g in enumerate(gathered)])
    owner_point = np.concatenate([g[2] for g in gathered])
    task_keys, task_first, task_of = np.unique(
        all_keys, axis=0, return_index=True, return_inverse=True
    )
    ntasks = len(task_keys)
    start = sum(len(g[0]) for g in gathered[: comm.rank])
    mapping = task_of.reshape(-1)[start : start + len(local_keys)]  # this rank's sets -> tasks
    t1 = time.perf_counter()
    model.statistics.micro_requests += len(first)

    if model.surrogate is not None and model.reuse:
        # collective surrogate training: identical nodes on every rank, node solves round-robin
        per_task, errors = model.serve_by_surrogate(
            all_rows[task_first, 0], _round_robin_solve(model, comm)
        )
        tensors_of_task = dict(enumerate(per_task))
    else:
        errors = None

        def solve(i: int) -> dict:
            j = int(task_first[i])
            return model._solve(model.row_parameters(all_rows[j]), int(owner_point[j]))

        tensors_of_task, failures = _distribute(solve, ntasks, comm, scheduler, timings)
        if timings is not None:
            timings.communication += t1 - t0
        if failures:
            rank, i, message = failures[0]
            j = int(task_first[i])
            _raise_task_failure(
                rank,
                message,
                int(owner[j]),
                int(owner_point[j]),
                comm,
                model.row_parameters(all_rows[j]),
            )
    # global tasks -> this rank's distinct parameter sets -> its points
    inverse = inverse.reshape(-1)
    result = {}
    if ntasks:
        sample = tensors_of_task[0]
        for key in sample:
            if len(mapping):
                stacked = np.stack([tensors_of_task[int(t)][key] for t in mapping])
            else:
                stacked = np.empty((0, *np.shape(sample[key])))
            result[key] = stacked[inverse]
    tensor_errors = None if errors is None else errors[mapping][inverse]
    return result, tensor_errors


def _round_robin_solve(model: LinearMicroModel, comm: MPI.Comm):
    """A collective ``p -> tensors`` solve for surrogate training.

    Rank ``k mod size`` solves the k-th call and broadcasts the tensors, so a surrogate trained
    with it is identical on every rank.
    """
    (name,) = model.parameter_shapes
    counter = [0]

    def solve(p: float) -> dict:
        root = counter[0] % comm.size
        counter[0] += 1
        payload = None
        if comm.rank == root:
            try:
                tensors = model._solve(model.row_parameters(np.array([p])), 0)
                payload = ({key: np.asarray(t) for key, t in tensors.items()}, None)
            except MicroSolveError as err:
                payload = (None, err.message)
        tensors, message = comm.bcast(payload, root=root)
        if message is not None:
            raise MicroSolveError(f"surrogate training solve at {name}={p!r} failed: {message}")
        return tensors

    return solve
