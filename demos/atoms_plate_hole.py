# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Atoms to continuum: a plate with a hole closed by molecular dynamics
#
# A quarter of a square plate $(0, 1)^2$ with a hole of radius 0.3 at the origin is made of a
# 2D Lennard-Jones crystal (triangular lattice, close-packed rows along $x$, cut-and-shifted
# LJ with $r_c = 2.5\sigma$; reduced units, stress in $\epsilon/\sigma^2$). Symmetry conditions
# hold $u_x = 0$ on $x = 0$ and $u_y = 0$ on $y = 0$; the right edge is pulled to
# $u_x = 0.01$ (1 % nominal stretch), the top is free. The macro problem is finite-strain
# equilibrium $\int P(F) : \nabla v \,\mathrm dX = 0$ with $F = I + \nabla u$ (P2, 3 quadrature
# points per triangle) and **no stress–strain law written by hand**: $P(F)$ at every quadrature
# point comes from a periodic box of 48 atoms deformed by $F$.
#
# **T = 0.** Three closures of the same lattice:
# 1. *Cauchy–Born*, written in UFL: $W(F) = \frac{1}{2\Omega_0}\sum_R \phi(|FR|)$ over the
#    lattice vectors $R$, $P = \partial W/\partial F$ (UFL differentiates it; independent of the
#    MD code);
# 2. *MD*: `LJStressModel` at every point: the box relaxed by FIRE, virial stress,
#    central-difference tangent;
# 3. *MD through the regression surrogate* (below), to measure what the fit alone costs.
#
# A perfect Bravais lattice under a homogeneous $F$ does not relax internally, so (1) and (2)
# must give the same macro solution to the Newton tolerance.
#
# **T > 0.** The boxes run Langevin dynamics; the stress is a time average with a block
# standard error. The reference lattice at each temperature is the zero-pressure one (thermal
# expansion measured by MD). Noisy stresses would stall the macro Newton at the noise level and
# ruin difference-quotient tangents, so the closure is the **hyperelastic regression
# surrogate** `HyperelasticRegressionModel`: a polynomial free energy $W(E)$ fitted by
# weighted least squares to the MD stresses at a Sobol design of strains (all boxes in one
# batched engine call); its $\chi^2$ per degree of freedom says whether the fit is within the
# noise, and its stress and exact tangent are smooth, so Newton converges quadratically.
# Spot checks run MD directly at converged macro points.
#
# **Checks.** MD-closed and Cauchy–Born macro solutions agree (displacement $< 10^{-8}$
# relative, reaction force $< 10^{-8}$); Newton quadratic at T = 0 and with the surrogate at
# T > 0; the surrogate at T = 0 is within 1e-3 of Cauchy–Born; at T > 0 $\chi^2 < 2$, the
# spot-check MD stresses agree with the surrogate within 4 standard errors plus the fit
# error; the reaction force falls with temperature (softening), consistent with the
# finite-difference $C_{11}(T)$ of MD with common random numbers.
#
# Run: `python demos/atoms_plate_hole.py [--h 0.1] [--temperatures 0.05,0.1,0.2]
# [--steps 8000] [--json] [--no-plot]`.

# %%
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np

from fe2hmm.checks import integer, real, real_list
from fe2hmm.demos import add_output_dir, checked_output_dir, pyplot

DEMO = "atoms_plate_hole"


# %% [markdown]
# ## Command line
# Checked before dolfinx is imported or anything is computed: a bad value ends the run at once
# with one line naming the argument and its valid range (exit status 2).


# %%
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Plate with a hole closed by LJ molecular dynamics"
    )
    parser.add_argument(
        "--h",
        type=real(0.0, 0.5, open_min=True),
        default=0.1,
        help="macro mesh size away from the hole, in (0, 0.5]",
    )
    parser.add_argument(
        "--temperatures",
        type=real_list(0.0, 0.3, open_min=True, open_max=True),
        default=[0.05, 0.1, 0.2],
        help="T > 0 values, comma separated, each in (0, 0.3) (the crystal melts near 0.4; "
        "default 0.05,0.1,0.2)",
    )
    parser.add_argument(
        "--steps", type=integer(1000), default=8000, help="MD production steps per box at T > 0"
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
from dolfinx import fem
from dolfinx.io import gmsh as dgmsh

from fe2hmm.macro import Dirichlet, FiniteStrainElasticity
from fe2hmm.micro.particles import lattice as L
from fe2hmm.micro.particles.md import thermal_lattice_constant
from fe2hmm.micro.particles.model import LJStressModel
from fe2hmm.reuse.regression import HyperelasticRegressionModel, strain_components

LATTICE, CUTOFF, CELLS = "triangular", 2.5, (6, 4)
SIDE, HOLE, STRETCH = 1.0, 0.3, 0.01
QUADRATURE_DEGREE = 2


def plate_mesh(comm, h: float):
    """Quarter plate ``(0, 1)²`` minus the disk of radius 0.3 at the origin, refined at the hole."""
    if not gmsh.isInitialized():
        gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("quarter_plate")
    occ = gmsh.model.occ
    body, _ = occ.cut(
        [(2, occ.addRectangle(0, 0, 0, SIDE, SIDE))], [(2, occ.addDisk(0, 0, 0, HOLE, HOLE))]
    )
    occ.synchronize()
    gmsh.model.addPhysicalGroup(2, [t for (_, t) in body], 1)
    field = gmsh.model.mesh.field
    dist = field.add("Distance")
    curves = [t for (d, t) in gmsh.model.getBoundary(body, oriented=False) if d == 1]
    # the hole's arc is the only boundary curve whose centre of mass lies inside the hole radius
    arc = [t for t in curves if np.hypot(*occ.getCenterOfMass(1, t)[:2]) < HOLE]
    field.setNumbers(dist, "CurvesList", arc)
    thr = field.add("Threshold")
    field.setNumber(thr, "InField", dist)
    field.setNumber(thr, "SizeMin", h / 3)
    field.setNumber(thr, "SizeMax", h)
    field.setNumber(thr, "DistMin", 0.05)
    field.setNumber(thr, "DistMax", 0.5)
    field.setAsBackgroundMesh(thr)
    gmsh.option.setNumber("Mesh.CharacteristicLengthMax", h)
    gmsh.model.mesh.generate(2)
    data = dgmsh.model_to_mesh(gmsh.model, comm, 0, gdim=2)
    gmsh.model.remove()
    return data.mesh


# %% [markdown]
# ## The macro problem, for any stress $P(F)$


# %%
class Plate:
    """P2 displacement on the quarter plate, symmetry and pulled-edge conditions.

    Every closure (MD, surrogate) or UFL law gets its own `fe2hmm.macro.FiniteStrainElasticity`
    on the same mesh and conditions: equilibrium ∫ P(F) : ∇v dX = 0 with F = I + ∇u.
    """

    def __init__(self, mesh):
        self.mesh = mesh
        self.V = fem.functionspace(mesh, ("Lagrange", 2, (2,)))
        self.bcs = [
            Dirichlet(0.0, lambda x: np.isclose(x[0], 0.0), component=0),  # symmetry
            Dirichlet(0.0, lambda x: np.isclose(x[1], 0.0), component=1),  # symmetry
            Dirichlet(STRETCH * SIDE, lambda x: np.isclose(x[0], SIDE), component=0),  # pulled
        ]
        # w: 1 in x at the pulled edge's nodes: the reaction is the residual tested with w
        self.w = fem.Function(self.V)
        self.w.interpolate(lambda x: np.vstack([np.isclose(x[0], SIDE) * 1.0, 0.0 * x[0]]))

    def problem(self, model, prefix):
        """The macro problem closed by ``model`` (a micro-model or a UFL law ``P(F)``)."""
        return FiniteStrainElasticity(
            self.mesh,
            model,
            bcs=self.bcs,
            degree=2,
            quadrature_degree=QUADRATURE_DEGREE,
            rtol=1e-11,
            petsc_options_prefix=prefix,
        )

    def solve(self, problem, u0=None):
        """Newton from ``u0`` (default zero); returns ``(u, result, reaction)``."""
        if u0 is not None:
            problem.u.x.array[:] = u0.x.array
        result = problem.solve()
        reaction = problem.functional(ufl.inner(problem.stress, ufl.grad(self.w)))()
        return problem.u, result, reaction

    def solve_closed(self, model, prefix):
        problem = self.problem(model, prefix)
        u, result, reaction = self.solve(problem)
        return u, result, reaction, problem.closure


def relative_l2(a, b):
    comm = a.function_space.mesh.comm
    num = comm.allreduce(
        fem.assemble_scalar(fem.form(ufl.inner(a - b, a - b) * ufl.dx)), op=MPI.SUM
    )
    den = comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(b, b) * ufl.dx)), op=MPI.SUM)
    return float(np.sqrt(num / den))


# %% [markdown]
# ## Cauchy–Born in UFL
#
# $W(F) = \frac{1}{2\Omega_0}\sum_R \phi(|FR|)$ with $\phi$ cut and shifted at $r_c$; the sum
# runs over all lattice vectors up to $1.3\,r_c$ with a conditional at $r_c$, so shells that
# enter or leave the cutoff under the deformation are counted exactly.


# %%
def cauchy_born_stress(a: float):
    R = L.lattice_vectors(LATTICE, a, 1.3 * CUTOFF)
    _, omega = L.primitive_vectors(LATTICE, a)
    shift = 4.0 * (CUTOFF**-12 - CUTOFF**-6)

    def stress(F):
        F = ufl.variable(F)
        W = 0
        for Rv in R:
            r = ufl.sqrt(ufl.inner(F * ufl.as_vector(Rv.tolist()), F * ufl.as_vector(Rv.tolist())))
            W += ufl.conditional(ufl.lt(r, CUTOFF), 4.0 * (r**-12 - r**-6) - shift, 0.0)
        return ufl.diff(W / (2.0 * omega), F)

    return stress


def quadratic(norms) -> bool:
    """Scale-free quadratic convergence and convergence.

    ``ρ_{k+1} ρ_0 <= 100 ρ_k²`` wherever ``ρ_{k+1}`` is above round-off (1e-11 ρ_0): linear
    convergence at any rate fails this within a few steps.
    """
    r = np.asarray(norms)
    above = r[1:] > 1e-11 * r[0]
    return bool(np.all((r[1:] * r[0])[above] <= 100.0 * r[:-1][above] ** 2)) and r[-1] < 1e-8 * r[0]


# %% [markdown]
# ## Finite temperature: zero-pressure lattice, regression closure, spot checks


# %%
def finite_temperature(plate, T, steps, strain_range, u0, say):
    t0 = time.perf_counter()
    a_T, p_T, p_se = thermal_lattice_constant(LATTICE, CUTOFF, T, CELLS, steps=steps)
    md_options = {
        "cells": CELLS,
        "a": a_T,
        "steps": steps,
        "equilibration": steps // 4,
        "blocks": 10,
    }
    model = LJStressModel(LATTICE, CUTOFF, temperature=T, seed=int(1000 * T), **md_options)
    surrogate = HyperelasticRegressionModel(model, strain_range, degree=6, samples=128, seed=1)
    problem = plate.problem(surrogate, f"md_T{T:g}_")
    u, result, reaction = plate.solve(problem, u0)  # start from the T = 0 solution
    closure = problem.closure
    # spot checks: MD directly at the converged F of the most and least strained points
    F = closure.evaluate_inputs()["deformation_gradient"]
    strain = np.abs(strain_components(F)).max(axis=1) if F.size else np.zeros(0)
    picks = np.array([np.argmax(strain), np.argmin(strain)] if F.size else [], dtype=int)
    check = model.evaluate({"deformation_gradient": F[picks]}, {}, tangents=False)
    served = surrogate.evaluate({"deformation_gradient": F[picks]}, {}, tangents=False)
    err = np.hypot(check.standard_errors["stress"], surrogate.standard_errors(F[picks]))
    gap = np.abs(check.outputs["stress"] - served.outputs["stress"])
    # independent stiffness: central differences of MD at F = I, common random numbers
    fd = model.evaluate({"deformation_gradient": np.eye(2)[None]}, {})
    C11_fd = float(fd.tangents["stress", "deformation_gradient"][0, 0, 0, 0, 0])
    C11_fit = float(surrogate.evaluate({"deformation_gradient": np.eye(2)[None]}, {}).tangents[
        "stress", "deformation_gradient"][0, 0, 0, 0, 0])  # fmt: skip
    comm = plate.mesh.comm
    sigmas = float((gap / np.maximum(err, 1e-300)).max()) if picks.size else 0.0
    record = {
        "temperature": T,
        "lattice_constant": a_T,
        "pressure_at_reference": [p_T, p_se],
        "reaction": reaction,
        "newton_residuals": result.residual_norms,
        "chi2": surrogate.chi2,
        "design_boxes": int(surrogate.design.shape[0]),
        "refits": surrogate.refits,
        "C11_fit": C11_fit,
        "C11_md_difference": C11_fd,
        "spot_check_sigmas": comm.allreduce(sigmas, op=MPI.MAX),
        "md_boxes": model.statistics.micro_solves,
        "seconds": time.perf_counter() - t0,
        "converged": result.converged,
    }
    say(
        f"T = {T:<5g} a = {a_T:.5f} (p = {p_T:+.4f} ± {p_se:.4f})  reaction {reaction:.5f}  "
        f"chi2 {surrogate.chi2:.2f}  C11 fit {C11_fit:.2f} / MD {C11_fd:.2f}  Newton "
        f"{len(result.residual_norms) - 1} its  {model.statistics.micro_solves} boxes  "
        f"{record['seconds']:.1f} s"
    )
    return record


# %% [markdown]
# ## Figure


# %%
def plot(outdir: Path, closure_md, records, reaction0, comm):
    """P_xx at the quadrature points, softening, Newton histories (rank 0 writes the PNG)."""
    X = closure_md.coordinates
    P = closure_md.point_values(closure_md.outputs["stress"])
    gathered = comm.gather((X[:, :2], P[:, 0, 0]), root=0)
    if comm.rank != 0:
        return None
    plt = pyplot()
    if plt is None:
        return None

    X = np.concatenate([g[0] for g in gathered])
    Pxx = np.concatenate([g[1] for g in gathered])
    outdir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained")
    sc = axes[0].scatter(X[:, 0], X[:, 1], c=Pxx, s=4, cmap="viridis")
    fig.colorbar(sc, ax=axes[0], label=r"$P_{xx}$ (LJ units $\epsilon/\sigma^2$), MD at T = 0")
    axes[0].set(
        aspect="equal",
        xlabel="x (plate widths)",
        ylabel="y (plate widths)",
        title=f"first Piola–Kirchhoff stress, stretch {STRETCH:g}",
    )
    temps = [0.0] + [r["temperature"] for r in records]
    reactions = [reaction0] + [r["reaction"] for r in records]
    axes[1].plot(temps, np.array(reactions) / reaction0, "o-", label="reaction force (plate)")
    C0 = L.lattice_stiffness(LATTICE, L.zero_pressure_lattice_constant(LATTICE, CUTOFF), CUTOFF)[
        0, 0, 0, 0
    ]
    axes[1].plot(temps, [1.0] + [r["C11_md_difference"] / C0 for r in records], "s--",
                 label=r"$C_{11}(T)/C_{11}(0)$, MD differences")  # fmt: skip
    axes[1].set(
        xlabel=r"temperature T (LJ units $\epsilon/k_B$)",
        ylabel="relative to T = 0",
        title="thermal softening",
    )
    low, high = axes[1].get_ylim()
    axes[1].set_ylim(low - 0.35 * (high - low), high)  # room for the legend below the data
    axes[1].legend(loc="lower left", fontsize=8)
    for r in records:
        axes[2].semilogy(r["newton_residuals"], "o-", label=f"T = {r['temperature']:g} (surrogate)")
    axes[2].semilogy(records[0]["newton_residuals_T0"], "k^-", label="T = 0 (MD at every point)")
    axes[2].set(
        xlabel="Newton iteration",
        ylabel="residual norm (LJ force units)",
        title="macro Newton: quadratic convergence",
        xticks=range(max(len(r["newton_residuals"]) for r in records) + 1),
    )
    axes[2].legend(loc="upper right", fontsize=8)
    fig.suptitle(
        f"Plate with a hole closed by Lennard-Jones MD ({LATTICE} lattice, cutoff {CUTOFF} σ)"
    )
    path = outdir / "atoms_plate_hole.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# %% [markdown]
# ## Run


# %%
def main(args: argparse.Namespace) -> dict:
    temperatures = args.temperatures
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    plate = Plate(plate_mesh(comm, args.h))
    a0 = L.zero_pressure_lattice_constant(LATTICE, CUTOFF)

    t0 = time.perf_counter()
    u_cb, res_cb, reaction_cb = plate.solve(plate.problem(cauchy_born_stress(a0), "cb_"))
    t_cb = time.perf_counter() - t0
    t0 = time.perf_counter()
    md = LJStressModel(LATTICE, CUTOFF, cells=CELLS)
    u_md, res_md, reaction_md, closure_md = plate.solve_closed(md, "md_T0_")
    t_md = time.perf_counter() - t0
    points = comm.allreduce(closure_md.num_points, op=MPI.SUM)
    boxes = comm.allreduce(md.statistics.micro_solves, op=MPI.SUM)
    F = closure_md.evaluate_inputs()["deformation_gradient"]
    local = np.abs(strain_components(F)).max(axis=0) if F.size else np.zeros(3)
    peak = np.empty(3)
    comm.Allreduce(local, peak, op=MPI.MAX)
    md_vs_cb = relative_l2(u_md, u_cb)
    surrogate0 = HyperelasticRegressionModel(
        LJStressModel(LATTICE, CUTOFF, cells=CELLS), 1.5 * peak, degree=6
    )
    u_s0, _, reaction_s0, _ = plate.solve_closed(surrogate0, "md_fit_T0_")
    fit_vs_cb = relative_l2(u_s0, u_cb)
    say(f"{points} quadrature points; peak |E11|, |E22|, |E12| = {np.round(peak, 4).tolist()}")
    say(f"T = 0  Cauchy–Born (UFL)  reaction {reaction_cb:.8f}, {t_cb:.1f} s")
    say(
        f"T = 0  MD at every point  reaction {reaction_md:.8f}, {boxes} boxes, {t_md:.1f} s; "
        f"|u_MD - u_CB|/|u_CB| = {md_vs_cb:.1e}; Newton residuals "
        + " ".join(f"{r:.1e}" for r in res_md.residual_norms)
    )
    say(
        f"T = 0  MD regression      reaction {reaction_s0:.8f}; |u - u_CB|/|u_CB| = "
        f"{fit_vs_cb:.1e} (fit residual {surrogate0.residual:.1e})"
    )

    records = []
    for T in temperatures:
        records.append(finite_temperature(plate, T, args.steps, 1.5 * peak, u_md, say))
    C0 = float(L.lattice_stiffness(LATTICE, a0, CUTOFF)[0, 0, 0, 0])
    for r in records:
        r["softening"] = 1.0 - r["reaction"] / reaction_md
        fit, fd = 1 - r["C11_fit"] / C0, 1 - r["C11_md_difference"] / C0
        say(
            f"T = {r['temperature']:<5g} reaction falls {r['softening']:.1%}; C11 falls "
            f"{fit:.1%} (fit) / {fd:.1%} (MD differences)"
        )
    if records:
        records[0]["newton_residuals_T0"] = res_md.residual_norms
    reactions = [reaction_md] + [r["reaction"] for r in records]
    checks = {
        "md_equals_cauchy_born": md_vs_cb < 1e-8
        and abs(reaction_md - reaction_cb) < 1e-8 * abs(reaction_cb),
        "newton_quadratic_T0": quadratic(res_md.residual_norms) and res_md.converged,
        "surrogate_T0_within_1e-3": fit_vs_cb < 1e-3
        and abs(reaction_s0 - reaction_cb) < 1e-3 * abs(reaction_cb),
        "newton_quadratic_with_surrogate": all(
            quadratic(r["newton_residuals"]) and r["converged"] for r in records
        ),
        "fit_within_noise": all(r["chi2"] < 2.0 for r in records),
        "spot_checks_agree": all(r["spot_check_sigmas"] <= 4.0 for r in records),
        "softening": all(b < a for a, b in zip(reactions, reactions[1:], strict=False)),
    }
    if not args.no_plot:
        path = plot(args.output_dir, closure_md, records, reaction_md, comm)
        if path is not None:
            say(f"wrote {path}")
    summary = {
        "quadrature_points": points,
        "peak_strain": peak.tolist(),
        "reaction_cauchy_born": reaction_cb,
        "reaction_md": reaction_md,
        "md_vs_cauchy_born_l2": md_vs_cb,
        "surrogate_vs_cauchy_born_l2": fit_vs_cb,
        "newton_residuals_md": res_md.residual_norms,
        "md_boxes_T0": boxes,
        "finite_temperature": records,
        "checks": checks,
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
