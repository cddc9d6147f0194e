# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Linear FE²: a fibre-composite plate with a hole under tension
#
# A plate $(0, 2)\times(0, 1)$ with a central hole of radius 0.2 is made of a unidirectional
# fibre composite (square array of fibres along z, fibre fraction 0.4; matrix $E = 3$,
# $\nu = 0.35$; fibres $E = 70$, $\nu = 0.22$; plane strain). It is pulled by a uniform
# traction $t = (1, 0)$ on the right edge and held at $u_x = 0$ on the left edge.
#
# **FE².** The macro stress at every quadrature point is $\bar\sigma = C^* : \bar\varepsilon$,
# with $C^*$ from the periodic elastic cell (one cell solve: the microstructure is uniform);
# the linear closure converges in one Newton step. The macro model is the library's
# `fe2hmm.macro.SmallStrainElasticity`; the DNS below is a plain dolfinx linear problem.
#
# **DNS.** The same plate with every fibre meshed (period $\varepsilon$, fibres cut by the hole
# left out), solved with the phase properties. Compared: the end displacement (global
# stiffness) and the stress concentration $\sigma_{xx}$ at the top of the hole, averaged over
# the $\varepsilon\times\varepsilon$ window above it (the DNS stress oscillates within cells).
#
# **Checks.** Newton in one step; end displacements of FE² and DNS within 3 %; windowed stress
# concentration within 15 % (homogenisation error O(ε) plus the hole's boundary layer).
#
# Run: `python demos/fibre_plate_hole.py [--eps-inv 10] [--json]`.

# %%
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np

from fe2hmm.checks import integer, real
from fe2hmm.demos import add_output_dir, checked_output_dir, pyplot

DEMO = "fibre_plate_hole"


# %% [markdown]
# ## Command line
# Checked before dolfinx is imported or anything is computed: a bad value ends the run at once
# with one line naming the argument and its valid range (exit status 2).


# %%
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Linear FE² of a fibre-composite plate with a hole"
    )
    parser.add_argument(
        "--eps-inv", type=integer(2), default=10, help="fibres per unit length (DNS, >= 2)"
    )
    parser.add_argument(
        "--h", type=real(0.0, 0.5, open_min=True), default=0.05, help="macro mesh size, in (0, 0.5]"
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
import gmsh
import ufl
from dolfinx import fem, io
from dolfinx import mesh as dmesh
from dolfinx.fem.petsc import LinearProblem
from dolfinx.io import gmsh as dgmsh

from fe2hmm._compat import geometry_dofmap
from fe2hmm.macro import Dirichlet, SmallStrainElasticity
from fe2hmm.micro.cells.elasticity import ElasticityCellModel, lame_parameters, voigt_to_tensor
from fe2hmm.reuse import Dedupe

MATRIX, FIBRE, FRACTION = (3.0, 0.35), (70.0, 0.22), 0.4
LENGTH, HEIGHT, HOLE = 2.0, 1.0, 0.2
CENTRE = np.array([1.0, 0.5])


def plate_mesh(comm, h: float, fibres_per_unit: int | None = None):
    """gmsh plate with a hole; with ``fibres_per_unit`` also every fibre (tag 2)."""
    if not gmsh.isInitialized():
        gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add(f"plate{fibres_per_unit}")
    occ = gmsh.model.occ
    plate = occ.addRectangle(0, 0, 0, LENGTH, HEIGHT)
    hole = occ.addDisk(*CENTRE, 0, HOLE, HOLE)
    body, _ = occ.cut([(2, plate)], [(2, hole)])
    fibres = []
    if fibres_per_unit:
        eps = 1.0 / fibres_per_unit
        r = np.sqrt(FRACTION / np.pi) * eps
        for i in range(int(LENGTH * fibres_per_unit)):
            for j in range(int(HEIGHT * fibres_per_unit)):
                c = np.array([(i + 0.5) * eps, (j + 0.5) * eps])
                if np.linalg.norm(c - CENTRE) > HOLE + r + 0.1 * eps:
                    fibres.append((2, occ.addDisk(c[0], c[1], 0, r, r)))
        out, out_map = occ.fragment(body, fibres)
        occ.synchronize()
        fibre_tags = [t for m in out_map[len(body) :] for (_, t) in m]
        matrix_tags = [t for (_, t) in out if t not in fibre_tags]
    else:
        occ.synchronize()
        matrix_tags, fibre_tags = [t for (_, t) in body], []
    gmsh.model.addPhysicalGroup(2, matrix_tags, 1)
    if fibre_tags:
        gmsh.model.addPhysicalGroup(2, fibre_tags, 2)
    gmsh.option.setNumber("Mesh.CharacteristicLengthMax", h)
    gmsh.option.setNumber("Mesh.CharacteristicLengthMin", h / 4)
    if not fibres_per_unit:  # macro mesh: refine towards the hole (DNS: uniform, h ~ eps/6)
        field = gmsh.model.mesh.field
        dist = field.add("Distance")
        edges = [t for (d, t) in gmsh.model.getBoundary(body, oriented=False) if d == 1]
        field.setNumbers(dist, "CurvesList", edges)
        thr = field.add("Threshold")
        field.setNumber(thr, "InField", dist)
        field.setNumber(thr, "SizeMin", h / 3)
        field.setNumber(thr, "SizeMax", h)
        field.setNumber(thr, "DistMin", 0.02)
        field.setNumber(thr, "DistMax", 0.3)
        field.setAsBackgroundMesh(thr)
    gmsh.model.mesh.generate(2)
    data = dgmsh.model_to_mesh(gmsh.model, comm, 0, gdim=2)
    gmsh.model.remove()
    return data.mesh, data.cell_tags


def boundary_setup(mesh, V):
    """u_x = 0 on the left edge, u_y = 0 at the bottom-left corner; ds of the loaded edge."""
    left = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.isclose(x[0], 0.0))
    corner = dmesh.locate_entities_boundary(
        mesh, 0, lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0)
    )
    bcs = [
        fem.dirichletbc(0.0, fem.locate_dofs_topological(V.sub(0), 1, left), V.sub(0)),
        fem.dirichletbc(0.0, fem.locate_dofs_topological(V.sub(1), 0, corner), V.sub(1)),
    ]
    return bcs, loaded_edge(mesh)


def loaded_edge(mesh):
    """The measure ds of the loaded (right) edge."""
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.isclose(x[0], LENGTH))
    tags = dmesh.meshtags(mesh, 1, facets, np.full(facets.size, 1, np.int32))
    return ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)


def end_displacement(u, ds):
    """Mean u_x over the loaded edge."""
    comm = u.function_space.mesh.comm
    num = comm.allreduce(fem.assemble_scalar(fem.form(u[0] * ds)), op=MPI.SUM)
    den = comm.allreduce(fem.assemble_scalar(fem.form(1.0 * ds)), op=MPI.SUM)
    return num / den


def window_average(expr, mesh, eps):
    """Average of ``expr`` over the eps x eps window centred above the top of the hole."""
    x = ufl.SpatialCoordinate(mesh)
    top = CENTRE[1] + HOLE
    inside = ufl.conditional(
        ufl.And(
            ufl.lt(abs(x[0] - CENTRE[0]), eps / 2),
            ufl.And(ufl.gt(x[1], top), ufl.lt(x[1], top + eps)),
        ),
        1.0,
        0.0,
    )
    comm = mesh.comm
    num = comm.allreduce(fem.assemble_scalar(fem.form(inside * expr * ufl.dx)), op=MPI.SUM)
    den = comm.allreduce(fem.assemble_scalar(fem.form(inside * ufl.dx)), op=MPI.SUM)
    return num / den


# %% [markdown]
# ## FE² (homogenised plate)


# %%
def solve_fe2(comm, h):
    mesh, _ = plate_mesh(comm, h)
    model = Dedupe(ElasticityCellModel(rve="circle", matrix=MATRIX, inclusion=FIBRE, resolution=32))
    # fe2hmm.macro.SmallStrainElasticity: sigma = C* : eps(u) from the cell at every point
    problem = SmallStrainElasticity(
        mesh,
        model,
        parameters={"volume_fraction": FRACTION},
        traction=[(loaded_edge(mesh), (1.0, 0.0))],
        bcs=[
            Dirichlet(0.0, lambda x: np.isclose(x[0], 0.0), component=0),  # u_x = 0 on the left
            Dirichlet(  # u_y = 0 at the bottom-left corner: no rigid-body translation
                0.0,
                lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0),
                component=1,
                entity_dim=0,
            ),
        ],
        degree=2,
        quadrature_degree=2,
        petsc_options_prefix="hole_fe2_",
    )
    result = problem.solve()
    C = model.model.stiffness(FRACTION)  # the cell model under the Dedupe wrapper
    return mesh, problem.u, result, C, model


def solve_dns(comm, h, fibres_per_unit):
    mesh, tags = plate_mesh(comm, h, fibres_per_unit)
    Q = fem.functionspace(mesh, ("DG", 0))
    lam, mu = fem.Function(Q), fem.Function(Q)
    for tag, mat in ((1, MATRIX), (2, FIBRE)):
        la, m = lame_parameters(*mat)
        cells = tags.find(tag)
        lam.x.array[cells], mu.x.array[cells] = la, m
    lam.x.scatter_forward()
    mu.x.scatter_forward()
    V = fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)

    def sigma(w):
        e = ufl.sym(ufl.grad(w))
        return 2 * mu * e + lam * ufl.tr(e) * ufl.Identity(2)

    bcs, ds = boundary_setup(mesh, V)
    problem = LinearProblem(
        ufl.inner(sigma(u), ufl.grad(v)) * ufl.dx,
        v[0] * ds,
        bcs=bcs,
        petsc_options_prefix="hole_dns_",
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": "mumps",
        },
    )
    uh = problem.solve()
    return mesh, uh, sigma, ds, V.dofmap.index_map.size_global * 2


# %% [markdown]
# ## Figure
# $\sigma_{xx}$ of FE² and DNS near the hole on one colour scale, and both along the vertical
# line above the hole with the $\varepsilon$-window averages that the check compares.


# %%
def cell_values(expr, mesh):
    """DG0 interpolant of a scalar UFL expression (at the cell midpoints)."""
    Q = fem.functionspace(mesh, ("DG", 0))
    f = fem.Function(Q)
    f.interpolate(fem.Expression(expr, Q.element.interpolation_points))
    return f


def gathered_cells(f):
    """Triangle corners ``(cells, 3, 2)`` and DG0 values of ``f`` on rank 0 (else ``None``)."""
    mesh = f.function_space.mesh
    n = mesh.topology.index_map(2).size_local
    corners = mesh.geometry.x[geometry_dofmap(mesh)[:n]][:, :, :2]
    values = f.x.array[f.function_space.dofmap.list[:n, 0]]
    gathered = mesh.comm.gather((corners, values), root=0)
    if mesh.comm.rank != 0:
        return None
    return np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered])


def line_values(f, points):
    """Values of ``f`` at ``points`` ``(n, 3)`` on rank 0 (NaN outside the mesh; else ``None``)."""
    from dolfinx import geometry

    mesh = f.function_space.mesh
    tree = geometry.bb_tree(mesh, mesh.topology.dim)
    colliding = geometry.compute_colliding_cells(
        mesh, geometry.compute_collisions_points(tree, points), points
    )
    found = np.array([i for i in range(len(points)) if len(colliding.links(i))], dtype=np.int64)
    values = np.full(len(points), np.nan)
    if found.size:
        cells = np.array([colliding.links(i)[0] for i in found], dtype=np.int32)
        values[found] = f.eval(points[found], cells)[:, 0]
    gathered = mesh.comm.gather(values, root=0)
    if mesh.comm.rank != 0:
        return None
    combined = np.full(len(points), np.nan)
    for v in gathered:
        combined[np.isnan(combined)] = v[np.isnan(combined)]
    return combined


def plot(outdir: Path, fe2, dns, eps: float, comm):
    """PNG of σ_xx, FE² against DNS (rank 0 writes it); returns its path or ``None``."""
    fields, lines = [], []
    top = CENTRE[1] + HOLE
    y = np.linspace(top, HEIGHT, 400)
    points = np.column_stack([np.full(y.size, CENTRE[0]), y, np.zeros(y.size)])
    for mesh, expr, _ in (fe2, dns):
        f = cell_values(expr, mesh)
        fields.append(gathered_cells(f))
        lines.append(line_values(f, points))
    if comm.rank != 0:
        return None
    plt = pyplot()
    if plt is None:
        return None
    from matplotlib.tri import Triangulation

    fig, axes = plt.subplots(
        1, 3, figsize=(17, 6), layout="constrained", gridspec_kw={"width_ratios": [1, 1, 0.8]}
    )
    values = np.concatenate([v for _, v in fields])
    low, high = np.percentile(values, [0.5, 99.5])
    for ax, (corners, v), title in zip(
        axes[:2],
        fields,
        ("FE² (homogenised, $C^*$ from one cell)", "DNS (every fibre meshed)"),
        strict=True,
    ):
        tri = Triangulation(
            corners[:, :, 0].ravel(),
            corners[:, :, 1].ravel(),
            np.arange(corners.shape[0] * 3).reshape(-1, 3),
        )
        art = ax.tripcolor(tri, facecolors=v, cmap="viridis", vmin=low, vmax=high)
        ax.plot([CENTRE[0]] * 2, [top, HEIGHT], "w--", lw=1)
        ax.set(
            aspect="equal",
            xlim=(CENTRE[0] - 0.5, CENTRE[0] + 0.5),
            ylim=(0, HEIGHT),
            xlabel="x (plate heights H)",
            ylabel="y (plate heights H)",
            title=f"$\\sigma_{{xx}}$, {title}",
        )
    fig.colorbar(art, ax=axes[:2], label=r"$\sigma_{xx}$ (units of the applied traction)")
    ax = axes[2]
    ax.plot(lines[1], y, color="tab:orange", lw=1, label=f"DNS, $\\varepsilon$ = {eps:g}")
    ax.plot(lines[0], y, "k-", lw=2, label="FE²")
    for (_, _, average), colour, name in ((fe2, "k", "FE²"), (dns, "tab:orange", "DNS")):
        ax.plot([average] * 2, [top, top + eps], color=colour, lw=5, alpha=0.6,
                label=f"{name}, average over the $\\varepsilon$-window: {average:.3f}")  # fmt: skip
    ax.axvline(1.0, color="0.6", ls=":", lw=1, label="applied traction")
    ax.set(
        xlabel=r"$\sigma_{xx}$ (units of the applied traction)",
        ylabel="y above the hole (plate heights H)",
        title="along the dashed line x = 1 (top of the hole up)",
        ylim=(top, HEIGHT),
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, ncol=2)
    fig.suptitle(
        "Fibre-composite plate with a hole under unit traction: FE² against DNS "
        f"(fibre fraction {FRACTION}, $E_f/E_m$ = {FIBRE[0] / MATRIX[0]:.3g})"
    )
    path = outdir / "fibre_plate_hole.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# %% [markdown]
# ## Run


# %%
def main(args: argparse.Namespace):
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    eps = 1.0 / args.eps_inv

    t0 = time.perf_counter()
    mesh, u, result, C, model = solve_fe2(comm, args.h)
    fe2_seconds = time.perf_counter() - t0
    ds = loaded_edge(mesh)
    Ct = voigt_to_tensor(C)
    eps_u = ufl.sym(ufl.grad(u))
    i, j, k, m = ufl.indices(4)
    sig = ufl.as_tensor(ufl.as_tensor(Ct.tolist())[i, j, k, m] * eps_u[k, m], (i, j))
    fe2_end = end_displacement(u, ds)
    fe2_scf = window_average(sig[0, 0], mesh, eps)
    say(
        f"FE²: C* = {np.array2string(C, precision=4)}; Newton {result.iterations} step, "
        f"{model.statistics.micro_solves} cell solve(s), {fe2_seconds:.1f} s"
    )

    t1 = time.perf_counter()
    mesh_d, u_d, sigma_d, ds_d, dns_dofs = solve_dns(comm, eps / 6, args.eps_inv)
    dns_seconds = time.perf_counter() - t1
    dns_end = end_displacement(u_d, ds_d)
    dns_scf = window_average(sigma_d(u_d)[0, 0], mesh_d, eps)
    say(f"DNS: {dns_dofs} dofs, {dns_seconds:.1f} s")
    say(
        f"end displacement: FE² {fe2_end:.5f}  DNS {dns_end:.5f}  "
        f"(rel. diff {abs(fe2_end - dns_end) / abs(dns_end):.2%})"
    )
    say(
        f"σ_xx over the ε-window at the top of the hole (applied 1): FE² {fe2_scf:.3f}  "
        f"DNS {dns_scf:.3f}  (rel. diff {abs(fe2_scf - dns_scf) / abs(dns_scf):.2%})"
    )

    outdir = args.output_dir
    outdir.mkdir(parents=True, exist_ok=True)
    P1 = fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    u1 = fem.Function(P1, name="u")
    u1.interpolate(u)
    with io.XDMFFile(comm, str(outdir / "fe2.xdmf"), "w") as f:
        f.write_mesh(mesh)
        f.write_function(u1)
    with io.XDMFFile(comm, str(outdir / "dns.xdmf"), "w") as f:
        f.write_mesh(mesh_d)
        f.write_function(u_d)

    if not args.no_plot:
        fe2 = (mesh, sig[0, 0], fe2_scf)
        path = plot(outdir, fe2, (mesh_d, sigma_d(u_d)[0, 0], dns_scf), eps, comm)
        if path is not None:
            say(f"wrote {path}")

    checks = {
        "newton_one_step": result.iterations == 1,
        "end_displacement_3pct": abs(fe2_end - dns_end) < 0.03 * abs(dns_end),
        "stress_concentration_15pct": abs(fe2_scf - dns_scf) < 0.15 * abs(dns_scf),
    }
    say("checks: " + ", ".join(f"{k}={'ok' if v else 'FAILED'}" for k, v in checks.items()))
    summary = {
        "eps": eps,
        "effective_stiffness": C.tolist(),
        "fe2_end_displacement": fe2_end,
        "dns_end_displacement": dns_end,
        "fe2_stress_concentration": fe2_scf,
        "dns_stress_concentration": dns_scf,
        "dns_dofs": dns_dofs,
        "fe2_seconds": fe2_seconds,
        "dns_seconds": dns_seconds,
        "checks": checks,
    }
    if args.json:
        say(json.dumps(summary))
    if not all(checks.values()):
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main(ARGS)
