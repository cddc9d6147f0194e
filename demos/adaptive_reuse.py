# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Adaptive HMM: surrogates with error bounds, an a posteriori and a predictive indicator
#
# **Part A — graded composite, a posteriori indicator.** The graded fibre composite of
# `composite_conduction` is solved with its conductivity $K^*(\varphi)$ served by the
# error-controlled surrogate over the fibre fraction (`fe2hmm.reuse.ParameterSurrogateModel`).
# The surrogate returns an error bound with every prediction; the closure turns them into the
# per-cell indicator $\eta_K = \|b\|_{L^2(K)}$ of the flux error, and
# $\eta = (\sum_K \eta_K^2)^{1/2}$ bounds the residual of the macro equation with the *true*
# closure, so $\|\nabla(T - T_h)\|_{L^2} \le \eta/k_{min}$ ($k_{min} = 1$, the matrix
# conductivity, bounds $K^*$ from below). The table checks that bound against the difference to
# the run with a real cell solve at every distinct $\varphi$.
#
# **Part B — catalytic slab, predictive indicator.** A slab of porous catalyst pellets:
# $-D\Delta u + a\,\omega(u) = 0$ in $(0, 1)^2$, $u = 1$ on the boundary, where the pellet rate
# $\omega(u)$ and its tangent come from a micro reaction–diffusion problem with
# Langmuir–Hinshelwood kinetics (`CatalystPelletModel`). $\omega$ rises, peaks and falls: where
# $\omega'(u)$ changes sign the linearised macro operator $-D\Delta + a\omega'(u)$ can lose
# definiteness (multiple steady states of catalytic beds). The surrogate wrapper
# `ScalarSurrogateModel` serves $\omega$ and $\omega'$ from a cubic Hermite interpolant and, where
# the indicator $\iota = \omega'/\max|\omega'|$ falls below 0.05, divides its tolerance by 100.
# The table compares, at growing Damköhler number $a/D$, micro solves and the error of $u$
# against the run with a real pellet solve at every point, with and without the indicator.
#
# Run: `python demos/adaptive_reuse.py [--json]` or `fe2hmm demo adaptive_reuse`; also under
# `mpiexec -n 2`.

# %%
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np

from fe2hmm.checks import integer
from fe2hmm.demos import add_output_dir, checked_output_dir, pyplot

DEMO = "adaptive_reuse"


# %% [markdown]
# ## Command line
# Checked before dolfinx is imported or anything is computed: a bad value ends the run at once
# with one line naming the argument and its valid range (exit status 2).


# %%
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Adaptive HMM: surrogates and indicators")
    parser.add_argument("--n", type=integer(1), default=24, help="macro cells per side (>= 1)")
    parser.add_argument(
        "--resolution", type=integer(2), default=12, help="cell mesh resolution (>= 2)"
    )
    parser.add_argument(
        "--n-slab", type=integer(1), default=16, help="slab cells per side (part B, >= 1)"
    )
    add_output_dir(parser, DEMO)
    parser.add_argument("--no-plot", action="store_true", help="write no PNG figure")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    args.output_dir = checked_output_dir(parser, args.output_dir, DEMO, MPI.COMM_WORLD.size)
    return args


if __name__ == "__main__":
    ARGS = parse_args()

# %%
import ufl
from dolfinx import fem, io
from dolfinx import mesh as dmesh

from fe2hmm._compat import geometry_dofmap
from fe2hmm.closure import Closure
from fe2hmm.micro.catalyst_pellet import CatalystPelletModel
from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.newton import NewtonSolver
from fe2hmm.reuse import Dedupe, ParameterSurrogateModel
from fe2hmm.reuse.indicators import closure_error_indicator
from fe2hmm.reuse.surrogate_model import ScalarSurrogateModel

PHI0, PHI1, K_MATRIX, K_FIBRE, SOURCE = 0.1, 0.5, 1.0, 10.0, 10.0
U_BOUNDARY = 0.6  # reactant concentration on the slab boundary


def say(*args):
    if MPI.COMM_WORLD.rank == 0:
        print(*args)


def l2(f, comm) -> float:
    return float(np.sqrt(comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(f, f) * ufl.dx)))))


# %% [markdown]
# ## Part A: the graded composite


# %%
def conduction(mesh, model):
    """−∇·(K*(φ)∇T) = f, T = 0 on ∂Ω, with φ = 0.1 + 0.4 x₁."""
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T, v = fem.Function(V, name="T"), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(mesh)
    closure = Closure(
        model,
        mesh,
        {"gradient": ufl.grad(T)},
        {"volume_fraction": PHI0 + (PHI1 - PHI0) * x[0]},
        name="conduction",
    )
    F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx - SOURCE * v * closure.dx
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda p: np.full(p.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    NewtonSolver(F, T, [bc], [closure]).solve()
    return T, closure


def part_a(comm, n: int, resolution: int, tolerances, outdir: Path):
    mesh = dmesh.create_unit_square(comm, n, n)
    exact_model = Dedupe(DiffusionCellModel(rve="circle", inclusion=K_FIBRE, resolution=resolution))
    T_exact, _ = conduction(mesh, exact_model)
    rows = []
    say(f"Part A: graded composite, {n}x{n} macro mesh, circle cells at resolution {resolution}")
    say(
        f"{'tolerance':>9} {'solves':>6} {'eta (bound)':>11} {'|grad(T-T_h)|':>13} "
        f"{'bound holds':>11} {'|T-T_h|/|T|':>11}"
    )
    exact_solves = comm.allreduce(exact_model.statistics.micro_solves)
    for tol in tolerances:
        cells = DiffusionCellModel(rve="circle", inclusion=K_FIBRE, resolution=resolution)
        model = ParameterSurrogateModel(cells, tol)
        T, closure = conduction(mesh, model)
        eta_K, eta = closure_error_indicator(closure, "flux")
        error_h1 = l2(ufl.grad(T - T_exact), comm)
        row = {
            "tolerance": tol,
            "micro_solves": comm.allreduce(model.statistics.micro_solves),
            "eta": eta,
            "gradient_error": error_h1,
            "bound_holds": bool(error_h1 <= eta / K_MATRIX),
            "relative_l2_error": l2(T - T_exact, comm) / l2(T_exact, comm),
        }
        rows.append(row)
        say(
            f"{tol:>9.0e} {row['micro_solves']:>6d} {eta:>11.2e} {error_h1:>13.2e} "
            f"{'yes' if row['bound_holds'] else 'NO':>11} {row['relative_l2_error']:>11.1e}"
        )
    say(f"  (real cell solve at every distinct φ: {exact_solves} solves)")
    outdir.mkdir(parents=True, exist_ok=True)
    with io.XDMFFile(comm, str(outdir / "composite_indicator.xdmf"), "w") as f:
        f.write_mesh(mesh)
        f.write_function(eta_K)  # indicator of the last (tightest) tolerance
    return rows, exact_solves, eta_K


# %% [markdown]
# ## Part B: the catalytic slab


# %%
def slab(mesh, model, damkohler: float, u0=None):
    """−Δu + Da ω(u) = 0 in (0, 1)², u = 1 on ∂Ω; returns (u, closure, Newton result)."""
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = fem.Function(V, name="u"), ufl.TestFunction(V)
    u.x.array[:] = U_BOUNDARY if u0 is None else u0.x.array
    closure = Closure(model, mesh, {"concentration": u}, name="pellets")
    F = ufl.inner(ufl.grad(u), ufl.grad(v)) * closure.dx
    F += damkohler * closure.outputs["rate"] * v * closure.dx
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda p: np.full(p.shape[1], True))
    bc = fem.dirichletbc(U_BOUNDARY, fem.locate_dofs_topological(V, 1, facets), V)
    result = NewtonSolver(F, u, [bc], [closure], rtol=1e-11, atol=1e-13).solve()
    return u, closure, result


def part_b(comm, n: int, damkohlers, tolerance: float):
    mesh = dmesh.create_unit_square(comm, n, n)
    say(
        f"\nPart B: catalytic slab, {n}x{n} mesh, pellets φ = 2, β = 4, u = {U_BOUNDARY} on the "
        f"boundary; ω' changes sign at u ≈ 0.36; surrogate tolerance {tolerance:g}"
    )
    say(
        f"{'':>29}| {'exact':>6} | {'no indicator':^26} | {'with indicator':^26}\n"
        f"{'Da':>5} {'u_min':>6} {'points':>6} {'critical':>8} | {'solves':>6} | "
        f"{'solves':>6} {'u error':>8} {'dω/du err':>10} | {'solves':>6} {'u error':>8} "
        f"{'dω/du err':>10}"
    )
    exact = CatalystPelletModel()
    plain = ScalarSurrogateModel(CatalystPelletModel(), tolerance, critical=-np.inf)
    predictive = ScalarSurrogateModel(CatalystPelletModel(), tolerance, critical=0.05)
    rows, previous = [], {}
    for da in damkohlers:
        counts, solutions = {}, {}
        for key, model in (("exact", exact), ("plain", plain), ("predictive", predictive)):
            before = model.statistics.micro_solves
            u, closure, _ = slab(mesh, model, da, previous.get(key))
            counts[key] = comm.allreduce(model.statistics.micro_solves - before)
            solutions[key] = u
            if key == "exact":  # ω' from real solves at the points of the exact solution
                u_points = closure.evaluate_inputs()["concentration"]
                slope = closure.point_values(closure.tangents["rate", "concentration"])
                scale = comm.allreduce(float(np.abs(slope).max()), op=MPI.MAX)
                near = np.abs(slope) < 0.05 * scale  # near the sign change of ω'
                points = comm.allreduce(closure.num_points)
                critical = comm.allreduce(int(near.sum()))
        previous = solutions
        ref = solutions["exact"]
        err = {k: l2(solutions[k] - ref, comm) / l2(ref, comm) for k in ("plain", "predictive")}
        # each surrogate's tangent error near the sign change, relative to max |ω'|
        slope_err = {}
        for key, model in (("plain", plain), ("predictive", predictive)):
            _, predicted, _ = model.surrogate.predict(u_points[near])
            local = float(np.abs(predicted - slope[near]).max(initial=0.0))
            slope_err[key] = comm.allreduce(local, op=MPI.MAX) / scale
        u_min = comm.allreduce(float(ref.x.array.min()), op=MPI.MIN)
        rows.append(
            {
                "damkohler": da,
                "u_min": u_min,
                "points": points,
                "critical_points": critical,
                "exact_solves": counts["exact"],
                "plain_solves": counts["plain"],
                "plain_error": err["plain"],
                "plain_slope_error": slope_err["plain"],
                "indicator_solves": counts["predictive"],
                "indicator_error": err["predictive"],
                "indicator_slope_error": slope_err["predictive"],
            }
        )
        say(
            f"{da:>5g} {u_min:>6.3f} {points:>6d} {critical:>8d} | {counts['exact']:>6d} | "
            f"{counts['plain']:>6d} {err['plain']:>8.1e} {slope_err['plain']:>10.1e} | "
            f"{counts['predictive']:>6d} {err['predictive']:>8.1e} "
            f"{slope_err['predictive']:>10.1e}"
        )
    nodes = predictive.surrogate.nodes
    near_nodes = int(np.sum(np.abs(nodes - 0.36) < 0.1))
    say(
        f"  surrogate nodes: {len(plain.surrogate)} without the indicator, {nodes.size} with it "
        f"({near_nodes} within 0.1 of the sign change of ω')"
    )
    pellets = {  # for the figure: ω' at the points of the last exact solution, the nodes
        "u": np.ravel(u_points),
        "slope": np.ravel(slope),
        "scale": scale,
        "nodes_plain": np.array(plain.surrogate.nodes),
        "nodes_indicator": np.array(nodes),
        "damkohler": damkohlers[-1],
    }
    counts = {"nodes_plain": len(plain.surrogate), "nodes_indicator": int(nodes.size)}
    return rows, counts, pellets


# %% [markdown]
# ## Figure
# Part A: the per-cell indicator $\eta_K$ of the tightest tolerance over the plate, and the bound
# $\eta$ against the true gradient error at each tolerance. Part B: the pellet tangent
# $\omega'(u)$ at the points of the exact solution with the nodes each surrogate placed (the
# indicator crowds them where $\omega'$ changes sign), and the error of the served tangent there.


# %%
def plot(outdir: Path, rows_a, exact_a, eta_K, rows_b, pellets, comm):
    """PNG of both parts (rank 0); returns its path, or ``None`` if none was written."""
    mesh = eta_K.function_space.mesh
    ncell = mesh.topology.index_map(2).size_local
    corners = mesh.geometry.x[geometry_dofmap(mesh)[:ncell]][:, :, :2]
    cell_eta = eta_K.x.array[eta_K.function_space.dofmap.list[:ncell, 0]]
    gathered = comm.gather((corners, cell_eta, pellets["u"], pellets["slope"]), root=0)
    if comm.rank != 0:
        return None
    plt = pyplot()
    if plt is None:
        return None
    from matplotlib.colors import LogNorm
    from matplotlib.tri import Triangulation

    corners = np.concatenate([g[0] for g in gathered])
    cell_eta = np.concatenate([g[1] for g in gathered])
    u = np.concatenate([g[2] for g in gathered])
    slope = np.concatenate([g[3] for g in gathered])
    outdir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(12.5, 9.5), constrained_layout=True)

    ax = axes[0, 0]
    tri = Triangulation(
        corners[:, :, 0].ravel(),
        corners[:, :, 1].ravel(),
        np.arange(corners.shape[0] * 3).reshape(-1, 3),
    )
    tri.set_mask(cell_eta <= 0)  # cells served by real solves only: no bound, left blank
    art = ax.tripcolor(tri, facecolors=cell_eta, norm=LogNorm(), cmap="magma")
    fig.colorbar(art, ax=ax, label=r"$\eta_K$ (units of $f L^2$)")
    ax.set(
        aspect="equal",
        xlabel="$x_1$ (plate widths $L$)",
        ylabel="$x_2$ (plate widths $L$)",
        title=f"A: per-cell indicator $\\eta_K$, tolerance {rows_a[-1]['tolerance']:g}",
    )

    ax = axes[0, 1]
    tol = np.array([r["tolerance"] for r in rows_a])
    ax.loglog(tol, [r["eta"] / K_MATRIX for r in rows_a], "o-", label=r"bound $\eta / k_{min}$")
    ax.loglog(
        tol,
        [r["gradient_error"] for r in rows_a],
        "s-",
        label=r"true error $\|\nabla(T - T_h)\|_{L^2}$",
    )
    for r in rows_a:
        ax.annotate(
            f"{r['micro_solves']} solves",
            (r["tolerance"], r["gradient_error"]),
            textcoords="offset points",
            xytext=(0, -16),
            ha="center",
            fontsize=8,
        )
    ax.set(
        xlabel="surrogate tolerance (relative)",
        ylabel="error (units of $f L^2 / k_m$)",
        title=f"A: a posteriori bound (exact closure: {exact_a} cell solves)",
    )
    ax.invert_xaxis()
    ax.margins(x=0.12, y=0.15)
    ax.legend(loc="upper right", fontsize=9)

    ax = axes[1, 0]
    order = np.argsort(u)
    scale = pellets["scale"]
    ax.axhspan(
        -0.05,
        0.05,
        color="tab:orange",
        alpha=0.2,
        lw=0,
        label=r"critical band $|\omega'| < 0.05 \max|\omega'|$",
    )
    ax.plot(
        u[order],
        slope[order] / scale,
        ".",
        ms=3,
        color="k",
        label=f"real pellet solves (Da = {pellets['damkohler']:g})",
    )
    ax.plot(
        pellets["nodes_plain"],
        np.full(pellets["nodes_plain"].size, 1.12),
        "v",
        color="tab:blue",
        label=f"surrogate nodes, no indicator ({pellets['nodes_plain'].size})",
    )
    ax.plot(
        pellets["nodes_indicator"],
        np.full(pellets["nodes_indicator"].size, 1.24),
        "v",
        color="tab:red",
        label=f"surrogate nodes, with indicator ({pellets['nodes_indicator'].size})",
    )
    ax.set(
        xlabel="reactant concentration $u$ (units of the feed)",
        ylabel=r"$\omega'(u) / \max|\omega'|$",
        title="B: pellet rate tangent and where the surrogates sampled it",
        ylim=(-0.6, 1.4),
    )
    ax.legend(loc="center right", fontsize=8)

    ax = axes[1, 1]
    crit = [r for r in rows_b if r["critical_points"]]
    da = [r["damkohler"] for r in crit]
    ax.semilogy(
        da, [r["plain_slope_error"] for r in crit], "o-", color="tab:blue", label="no indicator"
    )
    ax.semilogy(
        da,
        [r["indicator_slope_error"] for r in crit],
        "s-",
        color="tab:red",
        label="with indicator",
    )
    for r in crit:
        ax.annotate(
            f"{r['critical_points']} critical points",
            (r["damkohler"], r["plain_slope_error"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    ax.set(
        xlabel="Damköhler number Da (dimensionless)",
        ylabel=r"max error of served $\omega'$ / $\max|\omega'|$",
        title="B: tangent error in the critical band",
    )
    low, high = ax.get_ylim()
    ax.set_ylim(low / 3, high * 10)  # room for the labels and the legend
    ax.margins(x=0.15)
    ax.legend(loc="upper right", fontsize=9)
    fig.suptitle(
        "Adaptive HMM: surrogate error bounds (A, graded composite) and the predictive "
        "indicator (B, catalytic slab)"
    )
    path = outdir / "adaptive_reuse.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# %% [markdown]
# ## Run


# %%
def main(args: argparse.Namespace):
    comm = MPI.COMM_WORLD
    t0 = time.perf_counter()
    rows_a, exact_a, eta_K = part_a(
        comm, args.n, args.resolution, (1e-1, 1e-2, 1e-3), args.output_dir
    )
    rows_b, nodes, pellets = part_b(comm, args.n_slab, (20.0, 60.0, 100.0, 150.0), 1e-3)
    checks = {
        "bound_holds": all(r["bound_holds"] for r in rows_a),
        "eta_decreases": all(a["eta"] > b["eta"] for a, b in zip(rows_a, rows_a[1:], strict=False)),
        "fewer_solves_than_exact": all(r["micro_solves"] < exact_a for r in rows_a),
        "indicator_sharpens_tangent": all(
            r["indicator_slope_error"] < r["plain_slope_error"]
            for r in rows_b
            if r["critical_points"]
        ),
    }
    say("checks: " + ", ".join(f"{k}={'ok' if v else 'FAILED'}" for k, v in checks.items()))
    if not args.no_plot:
        path = plot(args.output_dir, rows_a, exact_a, eta_K, rows_b, pellets, comm)
        if path is not None:
            say(f"wrote {path}")
    seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    say(f"{seconds:.1f} s")
    if args.json:
        say(json.dumps({"composite": rows_a, "slab": rows_b, **nodes, "checks": checks}))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(ARGS))
