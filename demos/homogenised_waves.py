# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Waves in composites: homogenised wave equation, directional speeds, and where it breaks
#
# In the long-wavelength limit a periodic composite carries waves like a homogeneous medium:
#
# $$ \langle\rho\rangle\,\partial_t^2 u - \nabla\cdot(A_\mathrm{hom}\nabla u) = 0, $$
#
# with $A_\mathrm{hom} = K^*$ from the same periodic cell problem as conduction (for scalar
# waves; $C^*$ from the elasticity cell problem for elastic waves) and the volume-averaged
# density. A plane wave $e^{i(\kappa n\cdot x - \omega t)}$ then travels at the phase speed
# $c(n) = \sqrt{n\cdot A_\mathrm{hom} n/\langle\rho\rangle}$ with impedance
# $Z(n) = \sqrt{\langle\rho\rangle\, n\cdot A_\mathrm{hom} n}$; elastic waves at the
# eigen-speeds of the Christoffel tensor $\Gamma_{ik} = C^*_{ijkl}n_jn_l/\langle\rho\rangle$.
#
# **What the demo shows and checks**
# 1. Directional speeds and impedances from cell problems, as polar plots, for an inclined
#    elliptical-fibre cell and a laminate; for the laminate they must equal the exact values
#    (harmonic mean across, arithmetic mean along the layers); elastic laminate speeds against
#    Hill's exact laminate stiffness.
# 2. A macro wave simulation with $A_\mathrm{hom}$ at the quadrature points from the closure
#    (leapfrog, CFL-checked): a pulse in the inclined-fibre composite; arrival times along the
#    principal axes of $A_\mathrm{hom}$ in the ratio of the speeds; the discrete energy conserved.
# 3. A fully resolved laminate (every layer meshed) against the homogenised bar: the same
#    waveform for wavelengths $\gg \varepsilon$; for shorter ones the resolved waves slow down
#    (dispersion). The dispersion relation of the resolved laminate (Bloch–Floquet finite
#    elements on one period) is checked against Rytov's exact relation, and the wavelength at
#    which the phase velocity departs 1 % from the homogenised one is reported: there
#    homogenisation stops holding.
#
# Run: `python demos/homogenised_waves.py [--json] [--no-plot]`, or
# `fe2hmm demo homogenised_waves`, also under `mpiexec -n 2`.

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

DEMO = "homogenised_waves"


# %% [markdown]
# ## Command line
# Checked before dolfinx is imported or anything is computed: a bad value ends the run at once
# with one line naming the argument and its valid range (exit status 2).


# %%
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Homogenised waves, speeds and dispersion")
    parser.add_argument(
        "--nx", type=integer(4), default=64, help="macro cells per side of the plate (>= 4)"
    )
    parser.add_argument(
        "--resolution", type=integer(4), default=24, help="cell mesh resolution (>= 4)"
    )
    parser.add_argument(
        "--epsilon",
        type=real(0.0, 0.25, open_min=True),
        default=1 / 32,
        help="laminate period 1/N with N >= 4 (default 1/32)",
    )
    add_output_dir(parser, DEMO)
    add_checkpoint(parser)
    parser.add_argument("--no-plot", action="store_true", help="write no PNG figure")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    if abs(1 / args.epsilon - round(1 / args.epsilon)) > 1e-9:
        parser.error(f"argument --epsilon: expected 1/N with N >= 4, got {args.epsilon:g}")
    args.output_dir = checked_output_dir(parser, args.output_dir, DEMO, MPI.COMM_WORLD.size)
    args.checkpoint = checked_checkpoint(parser, args.checkpoint, MPI.COMM_WORLD.size)
    return args


if __name__ == "__main__":
    ARGS = parse_args()

# %%
import scipy.linalg
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

import fe2hmm  # noqa: F401  (imports dolfinx_solver first where that wheel is used)
from fe2hmm import analytic
from fe2hmm.checkpoint import Checkpoint
from fe2hmm.closure import Closure
from fe2hmm.micro.cells.diffusion import DiffusionCellModel, homogenize_diffusion
from fe2hmm.micro.cells.elasticity import homogenize_elasticity
from fe2hmm.reuse import Dedupe
from fe2hmm.rve import create as create_rve
from fe2hmm.rve.cell import INCLUSION, MATRIX
from fe2hmm.waves import WaveIntegrator, scalar_stiffness_form

# scalar waves: stiffness k (e.g. shear modulus of antiplane waves) and density per phase
K_MATRIX, RHO_MATRIX = 1.0, 1.0
K_FIBRE, RHO_FIBRE = 10.0, 3.0
FRACTION = 0.4
ASPECT, ANGLE = 3.0, math.pi / 6  # inclined elliptical fibres ...
ELLIPSE_FRACTION = 0.25  # ... of area fraction 0.25 (0.31 is the most that fits at 3:1)


def phase_fraction(cell) -> float:
    """Meshed inclusion area fraction of a 2D cell (so that ⟨ρ⟩ matches the cell problem)."""
    mesh = cell.mesh
    Q = fem.functionspace(mesh, ("DG", 0))
    indicator = fem.Function(Q)
    tags = cell.cell_tags
    indicator.x.array[tags.indices[tags.values == INCLUSION]] = 1.0
    area = fem.assemble_scalar(fem.form(indicator * ufl.dx))
    return float(area / cell.volume)


def mean_density(f: float) -> float:
    """``⟨ρ⟩`` for an inclusion fraction ``f``."""
    return (1 - f) * RHO_MATRIX + f * RHO_FIBRE


# %% [markdown]
# ## 1. Directional speeds from cell problems


# %%
def directional(resolution: int) -> dict:
    """K* of the inclined-ellipse and laminate cells, speeds, impedances, elastic speeds."""
    angles = np.linspace(0, 2 * np.pi, 181)
    n = np.column_stack([np.cos(angles), np.sin(angles)])
    out = {"angles": angles}
    for name, fraction, options in (
        ("ellipse", ELLIPSE_FRACTION, {"aspect_ratio": ASPECT, "angle": ANGLE}),
        ("laminate", FRACTION, {}),
    ):
        cell = create_rve(name, volume_fraction=fraction, resolution=resolution, **options)
        K = homogenize_diffusion(cell, {MATRIX: K_MATRIX, INCLUSION: K_FIBRE}).effective_tensor
        K = 0.5 * (K + K.T)
        rho = mean_density(phase_fraction(cell))
        out[name] = {
            "K": K,
            "rho": rho,
            "speed": analytic.wave_speed(K, rho, n),
            "impedance": analytic.impedance(K, rho, n),
        }
    # elastic waves in the laminate (plane strain): Christoffel speeds of C*
    cell = create_rve("laminate", volume_fraction=FRACTION, resolution=resolution)
    materials = {MATRIX: (1.0, 0.3), INCLUSION: (10.0, 0.25)}
    C = homogenize_elasticity(cell, materials).effective_tensor
    rho = mean_density(FRACTION)
    exact = analytic.laminate_stiffness(
        analytic.isotropic_stiffness_tensor(*materials[MATRIX]),
        analytic.isotropic_stiffness_tensor(*materials[INCLUSION]),
        FRACTION,
    )
    out["elastic"] = {
        "C": C,
        "speeds": analytic.christoffel_speeds(C, rho, n),
        "exact": analytic.christoffel_speeds(exact, rho, n),
    }
    return out


# %% [markdown]
# ## 2. A pulse in the inclined-fibre composite, $A_\mathrm{hom}$ from the closure
#
# The closure binds `DiffusionCellModel` (the same cell as above) to the macro mesh; its
# tangent is $-K^*$, so $A_\mathrm{hom} = -$`closure.tangents["flux", "gradient"]`, one cell
# problem for the whole plate (one microstructure). The leapfrog step is half its critical
# step. Receivers sit at distance $r$ from the source along the two principal axes of
# $A_\mathrm{hom}$, where phase and ray speeds coincide, $\sqrt{\lambda_i/\langle\rho\rangle}$.


# %%
SAVE_EVERY = 25  # explicit steps between checkpoints (--checkpoint)


def wave_checkpoint(waves: WaveIntegrator, folder: Path | None) -> Checkpoint | None:
    """A checkpoint of an explicit run (u, v and the integrator's state), restored if any."""
    if folder is None:
        return None
    checkpoint = Checkpoint(folder, {"u": waves.u, "v": waves.v, "integrator": waves})
    checkpoint.restore()
    return checkpoint


def pulse(nx: int, resolution: int, comm, folder: Path | None = None) -> dict:
    """Gaussian pulse at the centre of (-1, 1)²; arrival times along the principal axes.

    ``folder``: its checkpoint (saved every ``SAVE_EVERY`` steps and at the end; resumed).
    """
    mesh = dmesh.create_rectangle(comm, [[-1.0, -1.0], [1.0, 1.0]], [nx, nx])
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u_trial, v_test = ufl.TrialFunction(V), ufl.TestFunction(V)
    cells = DiffusionCellModel(
        "ellipse",
        matrix=K_MATRIX,
        inclusion=K_FIBRE,
        resolution=resolution,
        rve_options={"aspect_ratio": ASPECT, "angle": ANGLE},
    )
    closure = Closure(
        Dedupe(cells),  # one cell solve for the uniform microstructure
        mesh,
        {"gradient": ufl.grad(fem.Function(V))},
        {"volume_fraction": ELLIPSE_FRACTION},
    )
    closure.update()
    A = -closure.tangents["flux", "gradient"]
    rho = mean_density(phase_fraction(cells.cell(ELLIPSE_FRACTION)))
    K = -closure.point_values(closure.tangents["flux", "gradient"])[0]
    K = 0.5 * (K + K.T)
    values, vectors = np.linalg.eigh(K)
    mesh.topology.create_connectivity(1, 2)
    fixed = fem.locate_dofs_topological(V, 1, dmesh.exterior_facet_indices(mesh.topology))
    stiffness = scalar_stiffness_form(A, u_trial, v_test, closure.dx)
    probe = WaveIntegrator(stiffness, rho, V, 1.0, "leapfrog", fixed, closure.dx, check_cfl=False)
    dt = 0.5 * probe.critical_time_step
    waves = WaveIntegrator(stiffness, rho, V, dt, "leapfrog", fixed, closure.dx)
    width = max(0.06, 8.0 / nx)  # resolved by at least 4 cells
    waves.u.interpolate(lambda x: np.exp(-(x[0] ** 2 + x[1] ** 2) / width**2))
    waves.start()
    energy0 = waves.energy()
    checkpoint = wave_checkpoint(waves, folder)
    radius = 0.6
    receivers = [radius * vectors[:, i] for i in range(2)]
    coords = V.tabulate_dof_coordinates()[: V.dofmap.index_map.size_local, :2]
    nearest = []
    for r in receivers:
        dist = np.linalg.norm(coords - r, axis=1)
        local = (float(dist.min()), comm.rank) if dist.size else (np.inf, comm.rank)
        best = comm.allreduce(local, op=MPI.MINLOC)
        nearest.append(int(np.argmin(dist)) if best[1] == comm.rank else None)
    slow = math.sqrt(values.min() / rho)
    t_end = 1.3 * radius / slow
    series = {i: [] for i in range(2)}
    times = []
    snapshot = None
    if checkpoint is not None and checkpoint.restored:
        times, series = checkpoint.data["times"], checkpoint.data["series"]
        series = {int(i): values for i, values in series.items()}
        if "snapshot" in checkpoint.arrays:
            shown = checkpoint.arrays["snapshot"].copy()
            snapshot = (checkpoint.data["snapshot_time"], coords.copy(), shown)
    while waves.time < t_end:
        waves.step()
        times.append(waves.time)
        for i, dof in enumerate(nearest):
            local = float(waves.u.x.array[dof]) if dof is not None else -np.inf
            series[i].append(comm.allreduce(local, op=MPI.MAX))
        if snapshot is None and waves.time >= 0.5 * radius / slow:
            snapshot = (waves.time, coords.copy(), waves.u.x.array[: coords.shape[0]].copy())
        if checkpoint is not None and (len(times) % SAVE_EVERY == 0 or waves.time >= t_end):
            checkpoint.data.update(times=times, series=series)
            if snapshot is not None:
                checkpoint.data["snapshot_time"] = snapshot[0]
                checkpoint.arrays["snapshot"] = snapshot[2]
            checkpoint.save()
    drift = abs(waves.energy() - energy0) / energy0
    arrivals = []
    for i in range(2):  # time of the peak, refined by the parabola through its neighbours
        j = min(max(int(np.argmax(series[i])), 1), len(times) - 2)
        y0, y1, y2 = series[i][j - 1 : j + 2]
        shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) if y0 - 2 * y1 + y2 != 0 else 0.0
        arrivals.append(times[j] + shift * dt)
    speeds = np.sqrt(values / rho)
    return {
        "K": K,
        "rho": rho,
        "dt": dt,
        "critical_time_step": probe.critical_time_step,
        "steps": len(times),
        "energy_drift": drift,
        "arrivals": arrivals,
        "speeds": speeds,
        "times": np.array(times),
        "series": series,
        "snapshot": snapshot,
        "cell_problems": comm.allreduce(cells.statistics.micro_solves, op=MPI.SUM),
    }


# %% [markdown]
# ## 3. Resolved laminate against the homogenised bar; dispersion
#
# Layers normal to $x$ with period $\varepsilon$: phase 1 of thickness $0.6\varepsilon$, phase 2
# of $0.4\varepsilon$. The resolved bar meshes every layer (10 elements per period); the
# homogenised one uses $A_\mathrm{hom} = K^*_{11}$ of the laminate cell (the harmonic mean) and
# $\langle\rho\rangle$. The initial data are a right-going wave packet of carrier wavelength
# $\lambda$ (Gaussian envelope), $u_0(x)$ and $v_0 = -c_\mathrm{hom}u_0'$; both bars are run
# with Newmark to the same time and compared.


# %%
def bar(
    epsilon: float,
    wavelength: float,
    k_hom: float,
    comm,
    per_period: int = 10,
    folder: Path | None = None,
) -> dict:
    """Resolved and homogenised runs of one wave packet on (0, 12); relative L2 difference.

    ``folder``: where each run keeps its checkpoint (``resolved``, ``homogenised``; saved every
    ``SAVE_EVERY`` steps and at the end; resumed).
    """
    length, x0, travel = 12.0, 4.5, 2.0
    envelope = 1.5 * wavelength
    n_periods = round(length / epsilon)
    cells = n_periods * per_period
    rho_hom = mean_density(FRACTION)
    c_hom = math.sqrt(k_hom / rho_hom)
    t_end = travel / c_hom
    steps = math.ceil(t_end / (wavelength / (80 * c_hom)))  # 80 steps per carrier period
    results = {}
    for resolved in (True, False):
        mesh = dmesh.create_interval(comm, cells, [0.0, length])
        V = fem.functionspace(mesh, ("Lagrange", 1))
        Q = fem.functionspace(mesh, ("DG", 0))
        k, rho = fem.Function(Q), fem.Function(Q)
        n_local = mesh.topology.index_map(1).size_local
        mid = dmesh.compute_midpoints(mesh, 1, np.arange(n_local, dtype=np.int32))[:, 0]
        in_fibre = np.abs((mid / epsilon) % 1.0 - 0.5) < FRACTION / 2
        if resolved:
            k.x.array[:n_local] = np.where(in_fibre, K_FIBRE, K_MATRIX)
            rho.x.array[:n_local] = np.where(in_fibre, RHO_FIBRE, RHO_MATRIX)
        else:
            k.x.array[:] = k_hom
            rho.x.array[:] = rho_hom
        k.x.scatter_forward()
        rho.x.scatter_forward()
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        stiffness = k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
        ends = dmesh.locate_entities_boundary(
            mesh, 0, lambda x: (x[0] < 1e-12) | (x[0] > length - 1e-12)
        )
        dofs = fem.locate_dofs_topological(V, 0, ends)
        waves = WaveIntegrator(stiffness, rho, V, t_end / steps, "newmark", dofs)

        def packet(x, velocity=False):
            s, phase = (x[0] - x0) / envelope, 2 * np.pi * (x[0] - x0) / wavelength
            g = np.exp(-(s**2))
            if not velocity:
                return g * np.cos(phase)
            dg = g * (-2 * s / envelope * np.cos(phase) - 2 * np.pi / wavelength * np.sin(phase))
            return -c_hom * dg  # right-going: v = -c u'

        waves.u.interpolate(packet)
        waves.v.interpolate(lambda x: packet(x, True))
        waves.start()
        name = "resolved" if resolved else "homogenised"
        checkpoint = wave_checkpoint(waves, None if folder is None else folder / name)
        done = 0 if checkpoint is None else checkpoint.data.get("steps", 0)
        while done < steps:
            chunk = min(SAVE_EVERY, steps - done)
            waves.step(chunk)
            done += chunk
            if checkpoint is not None:
                checkpoint.data["steps"] = done
                checkpoint.save()
        waves.destroy()  # the PETSc solver and its options prefix; waves.u stays
        results[resolved] = waves.u
    n = results[True].function_space.dofmap.index_map.size_local
    diff = results[True].x.array[:n] - results[False].x.array[:n]
    ref = results[False].x.array[:n]
    num, den = comm.allreduce(float(diff @ diff)), comm.allreduce(float(ref @ ref))
    return {"epsilon": epsilon, "wavelength": wavelength, "difference": math.sqrt(num / den)}


def bloch_phase_velocity(kappa: np.ndarray, epsilon: float, per_period: int = 80) -> np.ndarray:
    """First-band phase velocity of the resolved (P1, consistent mass) laminate, Bloch–Floquet."""
    h = epsilon / per_period
    x = (np.arange(per_period) + 0.5) * h / epsilon
    fibre = np.abs(x - 0.5) < FRACTION / 2
    k = np.where(fibre, K_FIBRE, K_MATRIX)
    rho = np.where(fibre, RHO_FIBRE, RHO_MATRIX)
    n = per_period + 1
    K = np.zeros((n, n))
    M = np.zeros((n, n))
    for e in range(per_period):
        idx = [e, e + 1]
        K[np.ix_(idx, idx)] += k[e] / h * np.array([[1, -1], [-1, 1]])
        M[np.ix_(idx, idx)] += rho[e] * h / 6 * np.array([[2, 1], [1, 2]])
    speeds = []
    for q in np.atleast_1d(kappa):
        P = np.zeros((n, per_period), dtype=complex)
        P[:per_period, :per_period] = np.eye(per_period)
        P[per_period, 0] = np.exp(1j * q * epsilon)  # u(ε) = e^{iκε} u(0)
        Kb, Mb = P.conj().T @ K @ P, P.conj().T @ M @ P
        omega2 = scipy.linalg.eigh(Kb, Mb, eigvals_only=True)[0]
        speeds.append(math.sqrt(max(omega2, 0.0)) / q)
    return np.array(speeds)


# %%
def plot(outdir: Path, data: dict, wave: dict, dispersion: dict, comm):
    """Polar plots, pulse snapshot and receiver series, dispersion (rank 0 writes the PNG)."""
    snapshot = comm.gather(wave["snapshot"], root=0)
    if comm.rank != 0:
        return None
    plt = pyplot()
    if plt is None:
        return None

    outdir.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(16, 10), layout="constrained")
    angles = data["angles"]
    polar_legend = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.1), "fontsize": 8, "ncol": 2}
    ax = fig.add_subplot(2, 3, 1, projection="polar")
    for name in ("ellipse", "laminate"):
        ax.plot(angles, data[name]["speed"], label=f"{name} cell")
    ax.set_title("scalar phase speed c(n)\n(radius: units of $\\sqrt{k_m/\\rho_m}$)")
    ax.legend(**polar_legend)
    ax = fig.add_subplot(2, 3, 2, projection="polar")
    for name in ("ellipse", "laminate"):
        ax.plot(angles, data[name]["impedance"], label=f"{name} cell")
    ax.set_title("impedance Z(n)\n(radius: units of $\\sqrt{k_m \\rho_m}$)")
    ax.legend(**polar_legend)
    ax = fig.add_subplot(2, 3, 3, projection="polar")
    speeds = data["elastic"]["speeds"]
    ax.plot(angles, speeds[:, 0], label="quasi-P")
    ax.plot(angles, speeds[:, 1], label="quasi-S")
    ax.set_title("elastic laminate, Christoffel speeds\n(radius: units of $\\sqrt{E_m/\\rho_m}$)")
    ax.legend(**polar_legend)
    for ax in fig.axes:  # angle of the propagation direction n, from the x1 axis
        ax.set_rlabel_position(100)
        ax.tick_params(axis="y", labelsize=7)

    ax = fig.add_subplot(2, 3, 4)
    t, xy, values = snapshot[0]
    xy = np.concatenate([s[1] for s in snapshot])
    values = np.concatenate([s[2] for s in snapshot])
    limit = float(np.abs(values).max())
    sc = ax.tricontourf(
        xy[:, 0], xy[:, 1], values, levels=np.linspace(-limit, limit, 31), cmap="RdBu_r"
    )
    fig.colorbar(sc, ax=ax, label="displacement u (units of the initial peak)", format="%.2f")
    _, vectors = np.linalg.eigh(wave["K"])
    for i in range(2):  # the receivers sit at radius 0.6 on the principal axes of K*
        r = 0.6 * vectors[:, i]
        ax.plot(*r, "k^", ms=7)
        ax.annotate(f"receiver {i + 1}", r, textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set(
        aspect="equal",
        xlabel="$x_1$ (plate half-widths)",
        ylabel="$x_2$ (plate half-widths)",
        title=f"pulse through inclined fibres, t = {t:.2f}",
    )
    ax = fig.add_subplot(2, 3, 5)
    for i in range(2):
        line = ax.plot(wave["times"], wave["series"][i], label=f"receiver {i + 1}")[0]
        ax.axvline(wave["arrivals"][i], color=line.get_color(), ls=":", lw=1)
    ax.set(
        xlabel="time t (units of $L\\sqrt{\\rho_m/k_m}$)",
        ylabel="displacement u at the receiver",
        title="receivers on the principal axes (dotted: arrival)",
    )
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.3 * (high - low))  # head room for the legend
    ax.legend(loc="upper left", fontsize=8)
    ax = fig.add_subplot(2, 3, 6)
    ratio = dispersion["wavelength_over_period"]
    ax.semilogx(ratio, dispersion["rytov"] / dispersion["homogenised"], "k-", label="Rytov (exact)")
    ax.semilogx(
        ratio, dispersion["bloch_fe"] / dispersion["homogenised"], "o", label="resolved FE (Bloch)"
    )
    ax.axhline(0.99, ls=":", c="gray", label="1 % below $c_\\mathrm{hom}$")
    ax.set(
        xlabel=r"wavelength / cell size $\lambda/\varepsilon$",
        ylabel=r"phase velocity / $c_\mathrm{hom}$",
        title="laminate dispersion (1 % line: where it fails)",
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        "Homogenised waves: directional speeds from cell problems, a pulse closed by $K^*$, "
        "and where homogenisation stops holding"
    )
    path = outdir / "homogenised_waves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# %%
def main(args: argparse.Namespace) -> dict:
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    checks = {}

    # 1. directional speeds
    data = directional(args.resolution)
    lam = data["laminate"]
    exact_across = math.sqrt(analytic.harmonic_mean(K_MATRIX, K_FIBRE, FRACTION) / lam["rho"])
    exact_along = math.sqrt(analytic.arithmetic_mean(K_MATRIX, K_FIBRE, FRACTION) / lam["rho"])
    across, along = lam["speed"][0], lam["speed"][45]
    speed_error = max(abs(across / exact_across - 1), abs(along / exact_along - 1))
    elastic_error = float(
        np.abs(data["elastic"]["speeds"] - data["elastic"]["exact"]).max()
        / data["elastic"]["exact"].max()
    )
    ell = data["ellipse"]
    say(f"laminate (f={FRACTION}): c across {across:.6f} (exact {exact_across:.6f}), "
        f"along {along:.6f} (exact {exact_along:.6f})")  # fmt: skip
    say(f"elastic laminate: Christoffel speeds vs Hill's exact stiffness, max rel. error "
        f"{elastic_error:.1e}")  # fmt: skip
    say(
        f"inclined ellipses: c between {ell['speed'].min():.4f} and {ell['speed'].max():.4f}, "
        f"Z between {ell['impedance'].min():.4f} and {ell['impedance'].max():.4f}"
    )
    checks["laminate_speeds_exact"] = speed_error < 1e-9
    checks["elastic_laminate_speeds_exact"] = elastic_error < 1e-9

    # 2. pulse with A_hom from the closure
    def folder(name: str) -> Path | None:  # one checkpoint folder per run (--checkpoint)
        return None if args.checkpoint is None else args.checkpoint / name

    wave = pulse(args.nx, args.resolution, comm, folder("pulse"))
    arrival_ratio = wave["arrivals"][0] / wave["arrivals"][1]
    speed_ratio = wave["speeds"][1] / wave["speeds"][0]
    say(
        f"\npulse: dt = {wave['dt']:.4f} (0.5 x critical {wave['critical_time_step']:.4f}), "
        f"{wave['steps']} leapfrog steps, {wave['cell_problems']} cell problem(s); "
        f"energy drift {wave['energy_drift']:.1e}"
    )
    say(
        f"arrival-time ratio along the principal axes {arrival_ratio:.3f} vs speed ratio "
        f"{speed_ratio:.3f} ({abs(arrival_ratio / speed_ratio - 1):.1%})"
    )
    checks["energy_conserved"] = wave["energy_drift"] < 1e-10
    checks["arrivals_follow_speeds"] = abs(arrival_ratio / speed_ratio - 1) < 0.05

    # 3. resolved vs homogenised laminate, dispersion
    k_hom = float(lam["K"][0, 0])
    rows = [
        bar(args.epsilon, r * args.epsilon, k_hom, comm, folder=folder(f"bar_{r:g}"))
        for r in (32.0, 16.0, 8.0, 4.0, 2.5)
    ]
    say(f"\nresolved laminate (eps = 1/{round(1 / args.epsilon)}) vs homogenised bar:")
    say(f"{'wavelength/eps':>15} {'rel. L2 difference':>19}")
    for row in rows:
        say(f"{row['wavelength'] / row['epsilon']:>15.1f} {row['difference']:>19.3e}")
    checks["long_waves_agree"] = rows[0]["difference"] < 0.05
    checks["short_waves_disperse"] = rows[-1]["difference"] > 5 * rows[0]["difference"]
    ratios = np.array([128, 64, 32, 16, 8, 6, 4, 3, 2.5, 2.0])
    kappa = 2 * np.pi / (ratios * args.epsilon)
    rho_hom = mean_density(FRACTION)
    c_hom = math.sqrt(k_hom / rho_hom)
    rytov = analytic.laminate_phase_velocity(
        K_MATRIX, RHO_MATRIX, K_FIBRE, RHO_FIBRE, FRACTION, kappa, args.epsilon
    )
    bloch = bloch_phase_velocity(kappa, args.epsilon)
    say(f"\n{'lambda/eps':>10} {'Rytov/c_hom':>12} {'Bloch FE/c_hom':>15}")
    for r, a, b in zip(ratios, rytov / c_hom, bloch / c_hom, strict=True):
        say(f"{r:>10.1f} {a:>12.6f} {b:>15.6f}")
    fine = np.linspace(2.0, 128.0, 4000)
    slow = analytic.laminate_phase_velocity(
        K_MATRIX, RHO_MATRIX, K_FIBRE, RHO_FIBRE, FRACTION, 2 * np.pi / (fine * args.epsilon),
        args.epsilon,
    ) / c_hom  # fmt: skip
    onset = float(fine[slow >= 0.99].min())
    say(f"phase velocity 1 % below c_hom for wavelengths below {onset:.1f} cells")
    checks["bloch_matches_rytov"] = float(np.abs(bloch / rytov - 1).max()) < 2e-3
    checks["long_wave_limit"] = abs(rytov[0] / c_hom - 1) < 1e-3
    if not args.no_plot:
        path = plot(
            args.output_dir, data, wave,
            {"wavelength_over_period": ratios, "rytov": rytov, "bloch_fe": bloch,
             "homogenised": c_hom},
            comm,
        )  # fmt: skip
        if path is not None:
            say(f"wrote {path}")
    summary = {
        "laminate_speed_across": across,
        "laminate_speed_along": along,
        "laminate_speed_error": speed_error,
        "elastic_speed_error": elastic_error,
        "ellipse_speed_range": [float(ell["speed"].min()), float(ell["speed"].max())],
        "energy_drift_leapfrog": wave["energy_drift"],
        "arrival_ratio": arrival_ratio,
        "speed_ratio": float(speed_ratio),
        "resolved_vs_homogenised": rows,
        "dispersion_1pct_wavelength_over_cell": onset,
        "checks": {key: bool(value) for key, value in checks.items()},
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
