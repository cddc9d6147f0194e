# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Flow through a graded filter: Darcy closed by Stokes cells, against the resolved flow
#
# A filter $\Omega = (0, 1)^2$ (lengths in units of its width $L$) is packed with a square array
# of cylindrical grains of period $\varepsilon$ whose solid fraction grows across it,
# $\varphi(x) = 0.1 + 0.4\,x_1$: open on the left, dense on the right. Fluid (viscosity $\mu$)
# enters through the left side, held at pressure $p = \Delta p$, and leaves through the right
# half of the top, held at $p = 0$; the other sides are impermeable. The **homogenised** problem
# is Darcy flow,
#
# $$ \nabla\cdot u_0 = 0, \qquad u_0 = -\frac{K(\varphi(x))}{\mu}\nabla p_0, \qquad
#    K(\varphi) = \varepsilon^2 K^*(\varphi), $$
#
# with $p_0$ held on the open sides and $u_0\cdot n = 0$ on the walls, and $K^*(\varphi)$ from a
# periodic **Stokes cell** at every macro quadrature point
# (`fe2hmm.micro.cells.stokes.PermeabilityCellModel`, one cell solve per distinct $\varphi$
# through `fe2hmm.reuse.Dedupe`). The macro model is `fe2hmm.macro.DarcyFlow` (the pressure
# form, P2, on a mesh refined towards the end of the outlet, where the pressure jumps from held
# to free and the velocity is singular).
#
# **Resolved reference.** The Stokes equations in the pore space of the filter, every grain
# meshed (`fe2hmm.rve.resolved.solve_resolved_stokes`: Taylor–Hood, no slip on the grains, the
# pressure held on the open sides with no tangential velocity, symmetry planes on the walls),
# for $\varepsilon = 1/4, 1/8, 1/16$. Pressure and velocity scale as $\Delta p$ and
# $\varepsilon^2\Delta p/(\mu L)$; the FE² pressure does not depend on $\varepsilon$.
#
# **Checks** (exit status 1 if one fails): the Darcy Newton converges in one step; mass is
# conserved (the flow rates into the inlet and out of the outlet agree to $10^{-10}$, for the
# Darcy model as consistent fluxes, for the resolved flow exactly as Taylor–Hood conserves the
# mean divergence); the resolved flow rate, pressure and tile-averaged velocity approach the FE²
# ones at every refinement, the flow rate at first order (fitted rate $\ge 0.7$), and its
# Richardson extrapolation $2Q_{\varepsilon} - Q_{2\varepsilon}$ from the two finest runs is at
# least 3× closer to the FE² flow rate than $Q_\varepsilon$ (measured: 0.36 % from it with
# $\varepsilon = 1/8, 1/16$, 6.9× closer).
#
# Run: `python demos/porous_flow.py [--json]`, `fe2hmm demo porous_flow`, also under
# `mpiexec -n 2`.

# %%
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np

from fe2hmm.checks import integer, integer_list
from fe2hmm.demos import add_output_dir, checked_output_dir, pyplot

DEMO = "porous_flow"


# %% [markdown]
# ## Command line
# The arguments are checked before dolfinx is imported: a bad value ends the run at once with one
# line naming the argument and its valid range (exit status 2).


# %%
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Darcy flow through a graded filter closed by Stokes cells, against the "
        "resolved Stokes flow"
    )
    parser.add_argument(
        "--n",
        type=integer(1),
        default=32,
        help="macro cells per side before refinement (>= 1, a multiple of every 1/eps)",
    )
    parser.add_argument(
        "--refinements",
        type=integer(0, 10),
        default=6,
        help="refinements of the macro mesh towards the end of the outlet, 0..10 (default 6)",
    )
    parser.add_argument(
        "--resolution", type=integer(4), default=12, help="cell mesh: elements per edge (>= 4)"
    )
    parser.add_argument(
        "--eps",
        type=integer_list(1),
        default=[4, 8, 16],
        help="1/epsilon of the resolved runs: increasing integers >= 1, comma separated "
        "(default 4,8,16; none with --no-dns)",
    )
    parser.add_argument("--no-dns", action="store_true", help="solve the FE² problem only")
    add_output_dir(parser, DEMO)
    parser.add_argument("--no-plot", action="store_true", help="write no PNG figure")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    if any(b <= a for a, b in zip(args.eps, args.eps[1:], strict=False)):
        parser.error(f"argument --eps: expected increasing values, got {args.eps}")
    if not args.no_dns and any(args.n % e for e in args.eps):
        parser.error(
            f"argument --n: expected a multiple of every --eps value {args.eps} (the tile "
            f"averages need macro cells inside one tile each), got {args.n}"
        )
    args.output_dir = checked_output_dir(parser, args.output_dir, DEMO, MPI.COMM_WORLD.size)
    return args


if __name__ == "__main__":
    ARGS = parse_args()

# %%
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

import fe2hmm  # noqa: F401  (imports dolfinx_solver first where that wheel is used)
from fe2hmm.macro import DarcyFlow, Dirichlet
from fe2hmm.micro.cells.stokes import PermeabilityCellModel
from fe2hmm.reuse import Dedupe
from fe2hmm.rve.morph import CellFamily
from fe2hmm.rve.resolved import darcy_errors, solve_resolved_stokes
from fe2hmm.rve.tiling import cell_tiles, tile_columns, tile_means

PHI0, PHI1 = 0.1, 0.5  # solid fraction at x1 = 0 and x1 = 1
PRESSURE_DROP = 1.0  # Δp; viscosity μ = 1
OUTLET_END = (0.5, 1.0)  # where the outlet (top, x1 > 1/2) meets the wall


def solid_fraction(x1):
    """Graded solid fraction of the grains (x1 a number, an array or a UFL coordinate)."""
    return PHI0 + (PHI1 - PHI0) * x1


def inlet(x):
    return np.isclose(x[0], 0.0)


def outlet(x):
    return np.isclose(x[1], 1.0) & (x[0] >= OUTLET_END[0] - 1e-12)


# %% [markdown]
# ## The homogenised problem
# `DarcyFlow` binds the cells' input `pressure_gradient` to $\nabla p_0$ and uses their output
# `velocity` in $F(p; v) = -\int u_0\cdot\nabla v\,dx$. The flow rate entering through a held
# boundary is the consistent flux, the residual summed over its dofs (`problem.reaction(i)`).
# The cells are unit cells (`cell_size=1`): the velocity is in units of
# $\varepsilon^2\Delta p/(\mu L)$, the one FE² solution serves every $\varepsilon$.


# %%
def macro_mesh(comm, n: int, refinements: int):
    """Unit square, ``n`` cells per side, refined ``refinements`` times towards the outlet end."""
    mesh = dmesh.create_unit_square(comm, n, n)
    for k in range(refinements):
        radius = 0.25 * 0.6**k
        mesh.topology.create_entities(1)
        edges = dmesh.locate_entities(
            mesh, 1, lambda x, r=radius: np.hypot(x[0] - OUTLET_END[0], x[1] - OUTLET_END[1]) < r
        )
        mesh = dmesh.refine(mesh, edges)[0]
    return mesh


def solve_darcy(mesh, resolution: int):
    model = Dedupe(PermeabilityCellModel(dim=2, resolution=resolution))
    x = ufl.SpatialCoordinate(mesh)
    problem = DarcyFlow(
        mesh,
        model,
        parameters={"volume_fraction": solid_fraction(x[0])},
        bcs=[Dirichlet(PRESSURE_DROP, inlet), Dirichlet(0.0, outlet)],
        degree=2,
    )
    result = problem.solve()
    return problem, model, result


# %% [markdown]
# ## The resolved flow
# One `voids` cell per column of tiles (morphed from a few reference meshes, so that the
# columns conform), at the solid fraction of the column's centre; the cell is scaled by
# $\varepsilon$ (`fe2hmm.rve.tiling.tile_columns`).


# %%
def solve_dns(comm, eps_inv: int, resolution: int):
    family = CellFamily("voids", 2, resolution)
    cells = [family.create(float(solid_fraction((j + 0.5) / eps_inv))) for j in range(eps_inv)]
    tiled = tile_columns(cells, comm)
    flow = solve_resolved_stokes(tiled, [(inlet, PRESSURE_DROP), (outlet, 0.0)])
    return tiled, flow


# %% [markdown]
# ## Figure
# The FE² pressure with the tile-averaged Darcy velocity (arrows), the resolved pressure and
# velocity magnitude at the finest $\varepsilon$ (the grains are the holes), and the relative
# differences against $\varepsilon$.


# %%
def _p1(f: fem.Function) -> fem.Function:
    """``f`` interpolated into P1 (scalar or vector) on its mesh, for plotting."""
    shape = f.function_space.value_shape
    element = ("Lagrange", 1, tuple(shape)) if len(shape) else ("Lagrange", 1)
    g = fem.Function(fem.functionspace(f.function_space.mesh, element))
    g.interpolate(f)
    return g


def _gathered(comm, f: fem.Function):
    """On rank 0: vertex coordinates ``(n, 3, 2)`` and P1 values ``(n, 3[, d])`` of all cells."""
    g = _p1(f)
    mesh = g.function_space.mesh
    n = mesh.topology.index_map(2).size_local
    xyz = mesh.geometry.x[dmesh.entities_to_geometry(mesh, 2, np.arange(n, dtype=np.int32))]
    bs = g.function_space.dofmap.index_map_bs
    values = g.x.array.reshape(-1, bs)[g.function_space.dofmap.list[:n]]
    parts = comm.gather((xyz[:, :, :2], values if bs > 1 else values[..., 0]), root=0)
    if comm.rank != 0:
        return None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _tripcolor(fig, ax, triangles, values, label, cmap="viridis", vmax=None):
    from matplotlib.tri import Triangulation

    xyz = triangles.reshape(-1, 2)
    tri = Triangulation(xyz[:, 0], xyz[:, 1], np.arange(xyz.shape[0]).reshape(-1, 3))
    art = ax.tripcolor(tri, values.reshape(-1), shading="gouraud", cmap=cmap, vmax=vmax)
    fig.colorbar(art, ax=ax, label=label, shrink=0.85)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$ ($L$)")
    ax.set_ylabel("$x_2$ ($L$)")


def plot(outdir: Path, problem, rows, finest, n: int, comm) -> Path | None:
    """The four panels (see above) as ``porous_flow.png``; collective, drawn on rank 0.

    ``n``: macro cells per side before refinement (the arrows' tiles must hold whole cells).
    """
    mesh = problem.p.function_space.mesh
    n_arrows = rows[-1]["eps_inv"] if rows else int(np.gcd(n, 16))
    arrows = tile_means(problem.velocity, mesh, cell_tiles(mesh, n_arrows), n_arrows)
    p0 = _gathered(comm, problem.p)
    dns = None
    if finest is not None:
        eps_inv, flow = finest
        dns = (eps_inv, _gathered(comm, flow.pressure), _gathered(comm, flow.velocity))
    plt = pyplot()
    if comm.rank != 0 or plt is None:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(12, 10), constrained_layout=True)
    ax = axes[0, 0]
    _tripcolor(fig, ax, p0[0], p0[1], r"$p_0$ ($\Delta p$)")
    # tiles in the order of np.ravel_multi_index over (i1, i2), as np.ndindex gives them
    centres = (np.array(list(np.ndindex(n_arrows, n_arrows))) + 0.5) / n_arrows
    ax.quiver(centres[:, 0], centres[:, 1], arrows[:, 0], arrows[:, 1], color="w", scale=None)
    ax.set_title("FE²: Darcy pressure, tile-mean velocity (arrows)")
    if dns is not None:
        eps_inv, (xp, pv), (xu, uv) = dns
        _tripcolor(fig, axes[0, 1], xp, pv, r"$p_\varepsilon$ ($\Delta p$)")
        axes[0, 1].set_title(f"resolved Stokes flow, $\\varepsilon$ = 1/{eps_inv}: pressure")
        speed = np.linalg.norm(uv, axis=-1) * eps_inv**2
        _tripcolor(
            fig, axes[1, 0], xu, speed, r"$|u_\varepsilon|$ ($\varepsilon^2\Delta p/\mu L$)",
            cmap="magma", vmax=np.percentile(speed, 99.5),
        )  # fmt: skip
        axes[1, 0].set_title(
            f"resolved speed, $\\varepsilon$ = 1/{eps_inv} (colours capped: 99.5th pct.)"
        )
        ax = axes[1, 1]
        eps = np.array([1.0 / r["eps_inv"] for r in rows])
        for key, label, style in (
            ("flow_rate_error", "flow rate $|Q_\\varepsilon - Q_0|/Q_0$", "o-"),
            ("pressure_l2_error", "pressure $L^2$", "s-"),
            ("velocity_error", "tile-mean velocity", "^-"),
        ):
            ax.loglog(eps, [r[key] for r in rows], style, label=label)
        ax.loglog(eps, rows[-1]["flow_rate_error"] * eps / eps[-1], "k--", lw=0.8, label="slope 1")
        ax.set_xticks(eps, [f"1/{r['eps_inv']}" for r in rows])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set(xlabel="$\\varepsilon$ (grain period / filter width)", ylabel="relative difference")
        ax.set_title("resolved flow against FE²")
        ax.legend(fontsize=8)
    else:
        for ax in axes.flat[1:]:
            ax.set_axis_off()
    fig.suptitle(
        f"Graded filter: solid fraction {PHI0} → {PHI1} along $x_1$, inlet left, outlet on the "
        "right half of the top"
    )
    path = outdir / "porous_flow.png"
    outdir.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# %% [markdown]
# ## Run


# %%
def main(args: argparse.Namespace):
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    t0 = time.perf_counter()
    mesh = macro_mesh(comm, args.n, args.refinements)
    problem, model, newton = solve_darcy(mesh, args.resolution)
    seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    inflow, outflow = problem.reaction(0), -problem.reaction(1)
    balance = abs(inflow - outflow) / abs(inflow)
    solves = comm.allreduce(model.statistics.micro_solves, op=MPI.SUM)
    points = comm.allreduce(problem.closure.num_points, op=MPI.SUM)
    say(
        f"FE²: {mesh.topology.index_map(2).size_global} macro cells (P2), {points} quadrature "
        f"points, {solves} Stokes cells solved, Newton {newton.iterations} step(s), "
        f"{seconds:.1f} s"
    )
    say(
        f"FE² flow rate Q0 = {inflow:.6e} (units of eps^2 dp/mu per unit depth); "
        f"inflow - outflow: {balance:.1e} of it (limit 1e-10)"
    )
    ok = newton.converged and newton.iterations == 1 and balance < 1e-10
    summary = {
        "macro_cells": mesh.topology.index_map(2).size_global,
        "quadrature_points": points,
        "cell_problems_solved": solves,
        "newton_iterations": newton.iterations,
        "fe2_seconds": seconds,
        "flow_rate": inflow,
        "mass_balance": balance,
    }
    rows, finest = [], None
    for eps_inv in [] if args.no_dns else args.eps:
        t1 = time.perf_counter()
        tiled, flow = solve_dns(comm, eps_inv, args.resolution)
        dns_seconds = comm.allreduce(time.perf_counter() - t1, op=MPI.MAX)
        q_in, q_out = (q * eps_inv**2 for q in flow.inflow)  # in units of eps^2 dp/mu
        errors = darcy_errors(tiled, flow, problem.p, problem.velocity / eps_inv**2)
        rows.append(
            {
                "eps_inv": eps_inv,
                "dns_dofs": flow.dofs,
                "dns_seconds": dns_seconds,
                "flow_rate": q_in,
                "mass_balance": abs(q_in + q_out) / abs(q_in),
                "flow_rate_error": abs(q_in - inflow) / inflow,
                **errors,
            }
        )
        finest = (eps_inv, flow)
    if rows:
        say(
            f"\n{'eps':>6} {'DNS dofs':>9} {'DNS time':>8} {'Q_eps':>11} {'Q error':>9} "
            f"{'p L2':>9} {'u tiles':>9} {'balance':>8}"
        )
        for r in rows:
            say(
                f"1/{r['eps_inv']:<4d} {r['dns_dofs']:>9d} {r['dns_seconds']:>6.1f} s "
                f"{r['flow_rate']:>11.5e} {r['flow_rate_error']:>9.2e} "
                f"{r['pressure_l2_error']:>9.2e} {r['velocity_error']:>9.2e} "
                f"{r['mass_balance']:>8.1e}"
            )
        ok = ok and all(r["mass_balance"] < 1e-10 for r in rows)
        for key in ("flow_rate_error", "pressure_l2_error", "velocity_error"):
            ok = ok and all(b[key] < a[key] for a, b in zip(rows, rows[1:], strict=False))
        if len(rows) > 1:
            rate = float(
                -np.polyfit(
                    np.log([r["eps_inv"] for r in rows]),
                    np.log([r["flow_rate_error"] for r in rows]),
                    1,
                )[0]
            )
            a, b = rows[-2], rows[-1]
            ratio = b["eps_inv"] / a["eps_inv"]  # Richardson for a first-order error
            extrapolated = (ratio * b["flow_rate"] - a["flow_rate"]) / (ratio - 1)
            gap = abs(extrapolated - inflow) / inflow
            gain = b["flow_rate_error"] / gap
            say(
                f"flow-rate difference: fitted rate {rate:.2f} (theory 1, check >= 0.7); "
                f"Richardson from 1/{a['eps_inv']}, 1/{b['eps_inv']}: {extrapolated:.5e}, "
                f"{gap:.2e} from Q0, {gain:.1f}x closer than 1/{b['eps_inv']} (check >= 3)"
            )
            summary.update(flow_rate_rate=rate, extrapolated_flow_rate=extrapolated)
            summary["extrapolated_gap"] = gap
            ok = ok and rate >= 0.7 and gain >= 3.0
    summary["rows"] = rows
    if not args.no_plot:
        path = plot(Path(args.output_dir), problem, rows, finest, args.n, comm)
        if path is not None:
            say(f"wrote {path}")
    if args.json:
        say(json.dumps(summary))
    if not ok:
        say("CHECK FAILED: see the table above")
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main(ARGS)
