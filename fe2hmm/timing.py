r"""Time report of a (parallel) FE² run, with the serial fraction and Amdahl's bound.

Macro vs micro work per rank, communication and waiting, the measured serial fraction and the
Amdahl speed-up bound it implies.

With :math:`p` ranks, wall time :math:`W`, per-rank micro work :math:`M_r`, communication
:math:`C_r` and waiting :math:`B_r`, the time outside micro work and its synchronisation is
:math:`S = W - \overline{M} - \overline{C} - \overline{B}` (macro assembly and solve, input
evaluation, write-back: treated as not parallelised, which is conservative for the small macro
problems of FE²). The estimated one-rank time is :math:`T_1 = S + \sum_r M_r`, the serial
fraction :math:`f = S/T_1` and Amdahl's bound :math:`1/(f + (1-f)/p)` (limit :math:`1/f`).
Imbalance is :math:`\max_r M_r/\overline{M}`.
"""

from __future__ import annotations

from mpi4py import MPI

import numpy as np

__all__ = ["amdahl_speedup", "format_time_report", "model_speedup", "time_report"]


def amdahl_speedup(serial_fraction: float, ranks: float) -> float:
    """Amdahl's law ``1 / (f + (1 - f)/p)``; ``ranks = inf`` gives the limit ``1/f``."""
    f = float(serial_fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"serial fraction must lie in [0, 1], got {f!r}")
    if not ranks >= 1:
        raise ValueError(f"ranks must be >= 1, got {ranks!r}")
    parallel = 0.0 if np.isinf(ranks) else (1.0 - f) / ranks
    return 1.0 / (f + parallel) if f + parallel > 0 else float("inf")


def _stats(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"min": float(v.min()), "mean": float(v.mean()), "max": float(v.max())}


def time_report(closures, newton_results, wall: float, comm: MPI.Comm) -> dict:
    """Per-rank statistics of a run, gathered on every rank (collective).

    Args:
        closures: the run's :class:`~fe2hmm.closure.Closure` objects.
        newton_results: its :class:`~fe2hmm.newton.NewtonResult` objects (for the macro
            assembly/solve split and the per-iteration times).
        wall: this rank's wall time of the run (s).
        comm: the macro communicator.

    Returns:
        A JSON-serialisable dict: ``ranks``, ``wall``, ``micro``/``communication``/``waiting``
        /``macro_assemble``/``macro_solve`` as ``{min, mean, max}`` over ranks, ``imbalance``,
        ``serial_seconds``, ``estimated_one_rank_seconds``, ``serial_fraction``,
        ``amdahl_speedup`` (at this rank count), ``amdahl_limit``, and ``iterations``: per macro
        Newton iteration the micro/assemble/solve seconds as ``{min, mean, max}``.
    """
    closures, newton_results = list(closures), list(newton_results)
    local = {
        "micro": sum(c.timings.micro for c in closures),
        "communication": sum(c.timings.communication for c in closures),
        "waiting": sum(c.timings.waiting for c in closures),
        "macro_assemble": sum(r.seconds.get("assemble", 0.0) for r in newton_results),
        "macro_solve": sum(r.seconds.get("solve", 0.0) for r in newton_results),
        "wall": float(wall),
    }
    iterations = [it for r in newton_results for it in getattr(r, "iteration_seconds", [])]
    gathered = comm.allgather((local, iterations))
    per_rank = {k: [g[0][k] for g in gathered] for k in local}
    p = comm.size
    report = {"ranks": p, "wall": max(per_rank["wall"])}
    for key in ("micro", "communication", "waiting", "macro_assemble", "macro_solve"):
        report[key] = _stats(per_rank[key])
    mean_micro = report["micro"]["mean"]
    report["imbalance"] = report["micro"]["max"] / mean_micro if mean_micro > 0 else 1.0
    serial = max(
        report["wall"] - mean_micro - report["communication"]["mean"] - report["waiting"]["mean"],
        0.0,
    )
    one_rank = serial + sum(per_rank["micro"])
    f = serial / one_rank if one_rank > 0 else 1.0
    report.update(
        serial_seconds=serial,
        estimated_one_rank_seconds=one_rank,
        serial_fraction=f,
        amdahl_speedup=amdahl_speedup(f, p),
        amdahl_limit=amdahl_speedup(f, float("inf")),
    )
    n_it = min(len(g[1]) for g in gathered)
    report["iterations"] = [
        {k: _stats([g[1][i][k] for g in gathered]) for k in gathered[0][1][i]} for i in range(n_it)
    ]
    return report


def format_time_report(report: dict) -> str:
    """A human-readable table of :func:`time_report` (print it on rank 0)."""
    lines = [
        f"time report: {report['ranks']} rank(s), wall {report['wall']:.3f} s",
        f"{'':>16} {'min':>9} {'mean':>9} {'max':>9}",
    ]
    for key in ("micro", "communication", "waiting", "macro_assemble", "macro_solve"):
        s = report[key]
        lines.append(f"{key:>16} {s['min']:>9.3f} {s['mean']:>9.3f} {s['max']:>9.3f}")
    lines.append(
        f"imbalance (max/mean micro) {report['imbalance']:.2f}; serial part "
        f"{report['serial_seconds']:.3f} s of an estimated one-rank "
        f"{report['estimated_one_rank_seconds']:.3f} s: serial fraction "
        f"{report['serial_fraction']:.4f}; Amdahl bound {report['amdahl_speedup']:.2f}x at "
        f"{report['ranks']} ranks, {report['amdahl_limit']:.1f}x in the limit"
    )
    if report["iterations"]:
        lines.append("per macro iteration (max over ranks): micro / assemble / solve [s]")
        for i, it in enumerate(report["iterations"]):
            lines.append(
                f"  {i:>3}: "
                + " / ".join(
                    f"{it[k]['max']:.3f}" for k in ("micro", "assemble", "solve") if k in it
                )
            )
    return "\n".join(lines)


def model_speedup(
    ranks: int,
    *,
    tasks: int,
    task_seconds: float,
    serial_seconds: float,
    updates: int = 1,
    scheduler: str = "pooled",
    owner_tasks: int | None = None,
    imbalance: float = 1.0,
    latency: float = 5e-6,
    atomic_seconds: float = 2e-6,
    task_bytes: float = 0.0,
    bandwidth: float = 5e9,
) -> float:
    """Predicted speed-up ``T_1/T_p`` of a micro-dominated FE² run (a performance model).

    ``T_1 = S + U N c``. Owner-computes: ``T_p = S + U (n_own c I + α log₂p)`` with
    ``n_own = ceil(owner_tasks/p)`` capped at ``tasks`` (ranks repeat problems another rank also
    solves). Pooled: ``T_p = S + U (max(ceil(N/p) c, N t_a) + α log₂p + N b/β)``: dynamic
    scheduling removes the imbalance but serialises one atomic per task on the counter rank and
    gathers all ``N b`` bytes of tasks/results on every rank.

    Args:
        ranks: ``p``.
        tasks: distinct micro problems per update ``N``.
        task_seconds: mean seconds per micro solve ``c``.
        serial_seconds: non-parallelised seconds of the run ``S`` (macro part, measured).
        updates: closure updates with micro work ``U``.
        scheduler: ``"owner"`` or ``"pooled"``.
        owner_tasks: points per update before dedupe (owner-computes; default ``tasks``).
        imbalance: owner-computes max/mean work per rank ``I`` (measured).
        latency: collective latency per tree level ``α`` (s).
        atomic_seconds: one fetch-and-add on the counter rank ``t_a`` (s).
        task_bytes: bytes exchanged per task ``b`` (task + result).
        bandwidth: bytes/s a rank receives ``β``.
    """
    p = int(ranks)
    if p < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks!r}")
    one = serial_seconds + updates * tasks * task_seconds
    sync = latency * np.log2(p) if p > 1 else 0.0
    if scheduler == "owner":
        points = tasks if owner_tasks is None else owner_tasks
        per_rank = min(-(-points // p), tasks) if p > 1 else tasks
        parallel = per_rank * task_seconds * (imbalance if p > 1 else 1.0) + sync
    elif scheduler == "pooled":
        compute = max(-(-tasks // p) * task_seconds, tasks * atomic_seconds if p > 1 else 0.0)
        parallel = compute + sync + (tasks * task_bytes / bandwidth if p > 1 else 0.0)
    else:
        raise ValueError(f"scheduler must be 'owner' or 'pooled', got {scheduler!r}")
    return one / (serial_seconds + updates * parallel)
