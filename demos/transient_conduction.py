# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Transient heat conduction with micro-transient cells (parabolic HMM)
#
# A composite bar $\Omega = (0, 1)\times(0, 1/16)$ (fibres of conductivity $k_f = 10$ in a
# matrix $k_m = 1$, fibre area fraction $\varphi = 0.4$, storage $c = 1$ in both phases) is
# heated periodically at its left end, $T(0, t) = \sin^4(\omega t/2)$, held at $T = 0$ on the
# right and insulated elsewhere. The macro problem is
#
# $$ \langle c\rangle\,\partial_t T - \nabla\cdot \bar q = 0, $$
#
# and the flux $\bar q$ at every quadrature point comes from a **transient cell problem**:
# the periodic cell (physical size $\ell$) with fluctuation $w$,
# $c\,\partial_t w - \nabla\cdot k(G(t) + \nabla w) = 0$, driven by the macro gradient $G(t)$
# over the macro step, and $\bar q$ is the average of $-k(G + \nabla w)$ over the cell **and**
# the step (the micro window). The cell keeps its state from step to step — its *memory*. It
# relaxes on the time $\tau_\mathrm{relax} \propto \ell^2 c/k$: a step change of $G$ first
# meets the arithmetic mean $\langle k\rangle$ (the fluctuation has not formed yet) and only
# after a few $\tau_\mathrm{relax}$ the stationary $K^*$.
#
# The macro step is implicit: backward Euler (the gradient over the step is its end value) or
# Crank–Nicolson (linear in time); with the stationary closure $\bar q = -K^*G$ these are the
# usual θ-schemes.
#
# **What the demo shows and checks**
# 1. *Window tensors*: the step response averaged over a window $\tau$ goes from
#    $\langle k\rangle$ ($\tau \to 0$) to $K^*$ ($\tau\to\infty$), where
#    $\operatorname{tr}(K_\tau - K^*)\,\tau/\tau_\mathrm{relax}
#    \to \operatorname{tr}(\langle k\rangle - K^*)$ (the definition of $\tau_\mathrm{relax}$).
# 2. *Memory vs the stationary closure*: for $\tau_\mathrm{relax}/\Delta t$ from 4 down to
#    1/64 (cell size $\ell$ varied) the macro response (heat taken up, temperature field)
#    differs from the stationary closure by an amount that vanishes **linearly** in
#    $\tau_\mathrm{relax}/\Delta t$; at $\tau_\mathrm{relax} \gtrsim \Delta t$ the memory response
#    is visibly different (the heat uptake lags).
#    The HMM micro window $\tau \le \Delta t$ (restart from equilibrium with the gradient at
#    the start of the step, average over $\tau$) differs from the stationary closure by
#    $(K_\tau - K^*)(G_{n+1} - G_n) = O(\tau_\mathrm{relax}/\tau)$ per step; with
#    $\tau = \Delta t \gg \tau_\mathrm{relax}$ it equals the memory closure.
# 3. *Time-scheme orders*: with the memory closure, self-convergence under step halving is
#    first order for backward Euler and second order for Crank–Nicolson.
#
# Run: `python demos/transient_conduction.py [--json] [--no-plot]`, or
# `fe2hmm demo transient_conduction`, also under `mpiexec -n 2`.

# %%
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np

from fe2hmm.checks import integer, real
from fe2hmm.demos import (
    add_checkpoint,
    add_output_dir,
    checked_checkpoint,
    checked_output_dir,
    pyplot,
)

DEMO = "transient_conduction"


# %% [markdown]
# ## Command line
# Checked before dolfinx is imported or anything is computed: a bad value ends the run at once
# with one line naming the argument and its valid range (exit status 2).


# %%
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Parabolic HMM with micro-transient cells")
    parser.add_argument(
        "--nx", type=integer(2), default=64, help="macro cells along the bar (>= 2)"
    )
    parser.add_argument(
        "--steps", type=integer(2), default=40, help="macro steps per heating period (>= 2)"
    )
    parser.add_argument(
        "--periods",
        type=real(0.0, 100.0, open_min=True),
        default=1.0,
        help="heating periods simulated, in (0, 100] (at least one step)",
    )
    parser.add_argument(
        "--resolution", type=integer(2), default=16, help="cell mesh resolution (>= 2)"
    )
    add_output_dir(parser, DEMO)
    add_checkpoint(parser)
    parser.add_argument("--no-plot", action="store_true", help="write no PNG figure")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    if round(args.periods * args.steps) < 1:
        parser.error(
            f"argument --periods: expected at least one time step ({1 / args.steps:g} periods "
            f"with --steps {args.steps}), got {args.periods:g}"
        )
    args.output_dir = checked_output_dir(parser, args.output_dir, DEMO, MPI.COMM_WORLD.size)
    args.checkpoint = checked_checkpoint(parser, args.checkpoint, MPI.COMM_WORLD.size)
    return args


if __name__ == "__main__":
    ARGS = parse_args()

# %%
from dolfinx import fem
from dolfinx import mesh as dmesh

import fe2hmm  # noqa: F401  (imports dolfinx_solver first where that wheel is used)
from fe2hmm.macro import Dirichlet, TransientDiffusion
from fe2hmm.micro.cells.transient import TransientDiffusionCellModel

K_MATRIX, K_FIBRE = 1.0, 10.0
C_MATRIX, C_FIBRE = 1.0, 1.0
FRACTION = 0.4
PERIOD = 0.4  # period of the boundary heating (s)


def boundary_temperature(t: float) -> float:
    """Left-end temperature ``sin⁴(ωt/2)``: smooth start from the initial state ``T = 0``."""
    return math.sin(math.pi * t / PERIOD) ** 4


# %% [markdown]
# ## One transient macro run
#
# The step residual is $\int \langle c\rangle (T - T_n)/\Delta t\, v - \bar q\cdot\nabla v\,dx$,
# with $\bar q$ and $\langle c\rangle$ the closure's outputs; the closure's inputs are the
# gradients at the end and the start of the step (`fe2hmm.macro.TransientDiffusion`). Newton
# converges in one iteration (the closure is linear in the gradients). The heat taken up,
# $H(t) = \int \langle c\rangle T\,dx$, is recorded at every step.


# %%
def solve_bar(
    model: TransientDiffusionCellModel,
    dt: float,
    t_end: float,
    nx: int = 64,
    comm: MPI.Comm = MPI.COMM_WORLD,
    checkpoint: Path | None = None,
) -> dict:
    """March the bar to ``t_end`` with steps ``dt``; returns times, heat uptake and the field.

    ``checkpoint``: a folder for this run's checkpoint (resumed if it holds a step; a finished
    run is restored at its end).

    Returns:
        ``{"times" (n+1,), "heat" (n+1,), "T": final Function, "mesh", "closure",
        "steps": list of TimeStep}``.
    """
    mesh = dmesh.create_rectangle(
        comm, [[0.0, 0.0], [1.0, 1.0 / 16]], [nx, 1], dmesh.CellType.triangle
    )
    T_left = fem.Constant(mesh, 0.0)
    # fe2hmm.macro.TransientDiffusion binds the cell model's inputs `gradient` and
    # `previous_gradient` to grad T and grad T_n and takes its `storage` output as <c>
    problem = TransientDiffusion(
        mesh,
        model,
        dt=dt,
        parameters={"volume_fraction": FRACTION},
        bcs=[
            Dirichlet(T_left, lambda x: np.isclose(x[0], 0.0)),
            Dirichlet(0.0, lambda x: np.isclose(x[0], 1.0)),
        ],
        name="cells",
    )
    heat = problem.functional(problem.storage * problem.T)

    def before(t_old: float, t_new: float) -> None:
        T_left.value = boundary_temperature(t_new)

    n_steps = round(t_end / dt)
    if not math.isclose(n_steps * dt, t_end, rel_tol=1e-9):
        raise ValueError(f"t_end={t_end:g} is not a multiple of dt={dt:g}")
    times = np.linspace(0.0, t_end, n_steps + 1)
    # --checkpoint: T, T_n, the cells' carried states and the heat history after every step
    ckpt = problem.checkpoint(checkpoint) if checkpoint is not None else None
    resumed = ckpt is not None and ckpt.restore()
    problem.set_time_step(dt)
    problem.closure.update()  # the storage output exists before the first heat() evaluation
    history = ckpt.data["heat"] if resumed else [heat()]
    if ckpt is not None:
        ckpt.data["heat"] = history
    # each step: dt and model.set_time_step, then `before`; the cells' memory is committed
    steps = problem.march(
        times, before, after_step=lambda s: history.append(heat()), checkpoint=ckpt
    )
    T, closure = problem.T, problem.closure
    return {
        "times": times,
        "heat": np.array(history),
        "T": T,
        "mesh": mesh,
        "closure": closure,
        "steps": steps,
    }


def model_for(ratio: float | None, dt: float, scheme: str, window=None, resolution: int = 16):
    """A cell model whose relaxation time is ``ratio·dt`` (cell size scaled accordingly)."""
    model = TransientDiffusionCellModel(
        "circle",
        matrix=(K_MATRIX, C_MATRIX),
        inclusion=(K_FIBRE, C_FIBRE),
        scheme=scheme,
        window=window,
        resolution=resolution,
    )
    if ratio is not None:
        unit = model.relaxation_time(FRACTION)  # at cell_size 1
        model.cell_size = math.sqrt(ratio * dt / unit)
    return model


def relative_difference(a: fem.Function, b: fem.Function) -> float:
    """``|a − b|/|b|`` of the nodal values (owned dofs; runs use identical meshes; collective)."""
    comm = a.function_space.mesh.comm
    n = a.function_space.dofmap.index_map.size_local
    num = comm.allreduce(float(np.sum((a.x.array[:n] - b.x.array[:n]) ** 2)), op=MPI.SUM)
    den = comm.allreduce(float(np.sum(b.x.array[:n] ** 2)), op=MPI.SUM)
    return float(np.sqrt(num / den))


def plot(outdir: Path, windows, window_traces, tau_unit, K_bar, K_star, stationary, runs, comm):
    """Window-tensor curve and heat-uptake time series (rank 0 writes the PNG)."""
    if comm.rank != 0:
        return None
    plt = pyplot()
    if plt is None:
        return None

    outdir.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    left.semilogx(windows / tau_unit, window_traces, "o-", label=r"$\mathrm{tr}\,K_\tau/2$")
    left.axhline(np.trace(K_bar) / 2, ls="--", c="gray", label=r"$\langle k\rangle$ (Voigt)")
    left.axhline(np.trace(K_star) / 2, ls=":", c="k", label=r"$K^*$ (stationary)")
    left.set(
        xlabel=r"averaging window $\tau/\tau_\mathrm{relax}$ (dimensionless)",
        ylabel=r"step-response conductivity (units of $k_m$)",
        title="window-averaged cell conductivity",
    )
    left.legend(loc="center right")  # the curve falls from upper left to lower right
    right.plot(stationary["times"], stationary["heat"], "k-", lw=2, label="stationary $K^*$")
    for ratio, run in runs.items():
        right.plot(run["times"], run["heat"], "--", label=rf"memory, $\tau_r/\Delta t$ = {ratio:g}")
    right.set(
        xlabel="time t (s)",
        ylabel=r"heat taken up $\int\langle c\rangle T\,dx$ (units of $c_m T_\mathrm{max} L^2$)",
        title="heat uptake of the bar: memory against stationary closure",
    )
    low, high = right.get_ylim()
    right.set_ylim(low, high + 0.3 * (high - low))  # head room for the legend
    right.legend(loc="upper left", fontsize=8, ncol=2)
    fig.suptitle(
        f"Parabolic HMM with micro-transient cells (fibre fraction {FRACTION}, "
        f"$k_f/k_m$ = {K_FIBRE / K_MATRIX:g}, heating period {PERIOD} s)"
    )
    path = outdir / "transient_conduction.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# %% [markdown]
# ## The three studies


# %%
def main(args: argparse.Namespace) -> dict:
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    dt = PERIOD / args.steps
    t_end = round(args.periods * args.steps) * dt
    checks: dict[str, bool] = {}

    # 1. window tensors of the cell
    probe = model_for(None, dt, "backward_euler", resolution=args.resolution)
    tau_unit = probe.relaxation_time(FRACTION)
    K_bar = probe.window_tensor(FRACTION, 0.0)
    K_star = probe.effective_tensor(FRACTION)
    windows = tau_unit * np.logspace(-2, 3, 11)
    window_traces = [float(np.trace(probe.window_tensor(FRACTION, w))) / 2 for w in windows]
    excess = (np.trace(probe.window_tensor(FRACTION, windows[-1])) - np.trace(K_star)) * (
        windows[-1] / tau_unit
    )
    say(
        f"cell (phi={FRACTION}, resolution {args.resolution}): <k> = {K_bar[0, 0]:.4f}, "
        f"K* = {K_star[0, 0]:.4f}, tau_relax = {tau_unit:.3e} s at cell size 1"
    )
    say(f"{'tau/tau_relax':>14} {'tr K_tau/2':>11}")
    for w, kt in zip(windows, window_traces, strict=True):
        say(f"{w / tau_unit:>14.3g} {kt:>11.5f}")
    limit = np.trace(K_bar - K_star)
    checks["window_limits"] = bool(
        abs(window_traces[0] - np.trace(K_bar) / 2) < 0.02 * limit
        and abs(excess - limit) < 1e-2 * limit
    )
    say(
        f"tr(K_tau - K*) tau/tau_relax at tau = 1e3 tau_relax: {excess:.5f} "
        f"(tr(<k> - K*) = {limit:.5f})"
    )

    def folder(name: str) -> Path | None:  # one checkpoint folder per run (--checkpoint)
        return None if args.checkpoint is None else args.checkpoint / name

    # 2. memory vs stationary closure
    stationary = solve_bar(model_for(None, dt, "backward_euler", math.inf, args.resolution),
                           dt, t_end, args.nx, comm, folder("stationary"))  # fmt: skip
    ratios = [4.0, 1.0, 0.25, 1 / 16, 1 / 64]
    memory_rows = []
    runs = {}
    for r in ratios:
        run = solve_bar(
            model_for(r, dt, "backward_euler", resolution=args.resolution),
            dt,
            t_end,
            args.nx,
            comm,
            folder(f"memory_{r:g}"),
        )
        runs[r] = run
        size = math.sqrt(r * dt / tau_unit)
        heat_diff = float(
            np.abs(run["heat"] - stationary["heat"]).max() / np.abs(stationary["heat"]).max()
        )
        memory_rows.append(
            {
                "relaxation_over_step": r,
                "cell_size": size,
                "heat_difference": heat_diff,
                "field_difference": relative_difference(run["T"], stationary["T"]),
            }
        )
    # the HMM micro window: restart from equilibrium each step, average over tau <= dt
    fast = runs[ratios[-1]]
    window_rows = []
    for fraction_of_step in (1.0, 0.25, 1 / 16):
        windowed_model = model_for(ratios[-1], dt, "backward_euler", resolution=args.resolution)
        windowed_model.window = fraction_of_step * dt
        windowed = solve_bar(
            windowed_model, dt, t_end, args.nx, comm, folder(f"window_{fraction_of_step:g}")
        )
        scale = np.abs(stationary["heat"]).max()
        window_rows.append(
            {
                "window_over_relaxation": fraction_of_step / ratios[-1],
                "vs_stationary": float(np.abs(windowed["heat"] - stationary["heat"]).max() / scale),
                "vs_memory": float(np.abs(windowed["heat"] - fast["heat"]).max() / scale),
            }
        )
    diffusion_length = math.sqrt(K_star[0, 0] / C_MATRIX * dt)  # per step, homogenised
    say(f"\ndiffusion length per step sqrt(K* dt/<c>) = {diffusion_length:.3f} (bar length 1)")
    say(f"{'tau_relax/dt':>12} {'cell size':>10} {'max |dH|/max H':>15} {'|T - T_stat|/|T|':>17}")
    for row in memory_rows:
        say(
            f"{row['relaxation_over_step']:>12.4g} {row['cell_size']:>10.3f} "
            f"{row['heat_difference']:>15.3e} {row['field_difference']:>17.3e}"
        )
    slope = np.polyfit(
        np.log([row["relaxation_over_step"] for row in memory_rows[2:]]),
        np.log([row["heat_difference"] for row in memory_rows[2:]]),
        1,
    )[0]
    say(f"observed order of the memory effect in tau_relax/dt: {slope:.2f} (expected 1)")
    say(f"\nHMM window at tau_relax/dt = {ratios[-1]:.4g} (max |dH|/max H):")
    say(f"{'tau/tau_relax':>14} {'vs stationary':>14} {'vs memory':>10}")
    for row in window_rows:
        say(
            f"{row['window_over_relaxation']:>14.4g} {row['vs_stationary']:>14.3e} "
            f"{row['vs_memory']:>10.3e}"
        )
    window_slope = np.polyfit(
        np.log([row["window_over_relaxation"] for row in window_rows]),
        np.log([row["vs_stationary"] for row in window_rows]),
        1,
    )[0]
    say(f"window error vs stationary ~ (tau_relax/tau)^{-window_slope:.2f} (expected 1)")
    checks["stationary_limit"] = bool(0.85 < slope < 1.15)
    checks["memory_matters"] = memory_rows[0]["heat_difference"] > 0.05
    checks["window_recovers_stationary"] = bool(-1.15 < window_slope < -0.85)
    checks["full_window_is_memory"] = (
        window_rows[0]["vs_memory"] < 0.2 * window_rows[0]["vs_stationary"]
    )

    # 3. orders of the macro time schemes (memory closure, tau_relax fixed at the coarsest dt)
    order_rows = []
    base = PERIOD / 10
    for scheme in ("backward_euler", "crank_nicolson"):
        cell_model = model_for(1.0, base, scheme, resolution=args.resolution)
        size = cell_model.cell_size
        finals = []
        for level in range(5):
            step_model = model_for(None, base, scheme, resolution=args.resolution)
            step_model.cell_size = size
            step_model._modes = cell_model._modes  # the same cell: reuse its modes
            finals.append(
                solve_bar(
                    step_model,
                    base / 2**level,
                    PERIOD,
                    args.nx,
                    comm,
                    folder(f"{scheme}_{level}"),
                )
            )
        errors = [
            abs(run["heat"][-1] - finals[-1]["heat"][-1]) / np.abs(finals[-1]["heat"]).max()
            for run in finals[:-1]
        ]
        # self-convergence: e(dt) - e(dt/2) halves (BE) or quarters (CN) per level
        diffs = np.abs(np.diff([run["heat"][-1] for run in finals]))
        order = float(np.log2(diffs[-2] / diffs[-1]))
        order_rows.append({"scheme": scheme, "errors": [float(e) for e in errors], "order": order})
        say(f"{scheme:>15}: H(t_end) errors vs dt/16 {np.array(errors)} -> order {order:.2f}")
    checks["backward_euler_order"] = bool(0.8 < order_rows[0]["order"] < 1.2)
    checks["crank_nicolson_order"] = bool(1.8 < order_rows[1]["order"] < 2.3)

    if not args.no_plot:
        shown = {r: runs[r] for r in ratios[:3]}
        path = plot(
            args.output_dir, windows, window_traces, tau_unit, K_bar, K_star,
            stationary, shown, comm,
        )  # fmt: skip
        if path is not None:
            say(f"wrote {path}")
    summary = {
        "dt": dt,
        "relaxation_time_unit_cell": tau_unit,
        "mean_conductivity": float(K_bar[0, 0]),
        "effective_conductivity": float(K_star[0, 0]),
        "memory": memory_rows,
        "memory_order": float(slope),
        "window": window_rows,
        "scheme_orders": {row["scheme"]: row["order"] for row in order_rows},
        "seconds": comm.allreduce(time.perf_counter() - t_start, op=MPI.MAX),
    }
    if args.json:
        say(json.dumps(summary))
    if not all(checks.values()):
        say(f"CHECK FAILED: {[k for k, ok in checks.items() if not ok]}")
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main(ARGS)
