r"""Transport coefficients of ionic hopping, with standard errors, from a :class:`HoppingRun`.

Reduced units as in :mod:`fe2hmm.micro.stochastic.hopping` (``a = ν = k_B = q = 1``,
temperatures ``T = kT/kT_ref``); ``d`` the dimension, ``z`` the coordination, ``N`` the sites,
``P`` the ions, ``c = P/N``, ``v₀`` the volume per site and ``t`` the production time.

- Single-ion diffusion coefficient (one ion on an empty lattice):
  ``D₀ = Γ z a²/(2d)``, ``Γ = exp(−E_a/T)`` (square ``Γ``, triangular ``1.5 Γ``, cubic ``Γ``).
- Tracer diffusion ``D* = ⟨|Δr_i|²⟩/(2d t)``: the least-squares slope (with intercept) of the
  tracer MSD over the samples with ``t_s >= fit_from · t`` (default the last 3/4 of the run),
  divided by ``2d``. The MSD becomes linear only after the back-correlated hops have decayed
  (its short-time slope is ``2d D₀(1−c)``); the fitted intercept absorbs that offset, which
  would bias the final value ``MSD(t)/(2dt)`` by ``O(1/t)``.
- Jump (collective) diffusion ``D_σ = ⟨|Σ_i Δr_i|²⟩/(2d P t)``, estimated from the
  increments of the centre-of-mass displacement over ``blocks`` equal time blocks:
  ``D_σ = Σ_b |ΔX_b|²/(2d P t)``. Without site energies the centre-of-mass displacement is a
  martingale (every bond between an ion and an empty site is crossed either way at the same
  rate, and ``Σ_k v_k = 0``), so its block increments are uncorrelated and the estimator is
  unbiased for any block length; using all ``S`` sampling intervals gives a relative error
  ``√(2/(d S))`` per lattice instead of ``√(2/d)`` from the final value alone. With site
  energies the increments are correlated over the relaxation time of the ions in the energy
  landscape: the default there is 8 blocks (choose them longer than that time). Under a
  field the mean drift ``X(t) Δt_b/t`` is subtracted from each increment (and the sum scaled
  by ``B/(B − 1)``).
- Chemical diffusion ``D_c = Φ D_σ`` with the thermodynamic factor
  ``Φ = c/(kT ∂c/∂μ) = c / ((1/N) Σ_i f_i (1 − f_i))``, ``f_i = 1/(1 + exp((ε_i − μ)/kT))``
  the Fermi–Dirac occupations of the (quenched) site energies at the chemical potential with
  ``Σ_i f_i = P`` — the grand-canonical, large-system value for the lattice gas with site
  energies, ``Φ = 1/(1 − c)`` without them.
- Correlation factor ``f = D*/D_uncorr`` with ``D_uncorr = ν_jump a²/(2d)`` and
  ``ν_jump = events/(P t)`` the measured hop frequency per ion: the tracer diffusion if
  successive hops of an ion were uncorrelated. Without site energies
  ``ν_jump → z Γ (N − P)/(N − 1)`` (the exact mean fraction of empty neighbours of an ion in
  the finite canonical lattice gas, ``→ 1 − c``), so ``f = D*/(D₀ (1 − c))``; the same
  definition holds with disorder (the usual one for correlated hopping).
- Haven ratio ``H_R = D*/D_σ``.
- Conductivity (Nernst–Einstein, from the equilibrium fluctuations)
  ``σ = n q² D_σ/(kT)``, ``n = c/v₀`` the ion density; drift conductivity under a field
  ``σ_drift = ⟨J⟩·E/|E|²`` with the mean current density ``J = q X(t)/(t N v₀)`` (``X`` the
  centre-of-mass displacement, i.e. the summed ion displacements); NaN without a field.

**Standard errors.** The ``R`` replicas are independent lattices, so every coefficient is
estimated per replica and its standard error is ``std/√R`` (``ddof = 1``; z-scores then follow
Student's t with ``R − 1`` degrees of freedom). Ratios (``f``, ``H_R``) are ratios of the
replica means with the delta method, ``Var(ā/b̄) ≈ (Var a − 2r Cov(a, b) + r² Var b)/(R b̄²)``,
``r = ā/b̄``. With disorder each replica has its own energy landscape, so the errors include
the sample-to-sample variation. NaN when ``R = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from fe2hmm.micro.stochastic.hopping import HoppingRun, ion_count, simulate_hopping
from fe2hmm.micro.stochastic.lattice import Lattice

__all__ = ["Transport", "hopping_transport", "thermodynamic_factor", "transport"]

_KEYS = (
    "tracer_diffusion",
    "jump_diffusion",
    "chemical_diffusion",
    "correlation_factor",
    "haven_ratio",
    "conductivity",
    "drift_conductivity",
)


@dataclass
class Transport:
    """Transport coefficients per condition (each an ``(m,)`` array), reduced units.

    Attributes:
        tracer_diffusion: ``D*`` (units ``a² ν``).
        jump_diffusion: ``D_σ`` (units ``a² ν``).
        chemical_diffusion: ``D_c = Φ D_σ`` (units ``a² ν``).
        correlation_factor: ``f = D*/D_uncorr``.
        haven_ratio: ``H_R = D*/D_σ``.
        conductivity: Nernst–Einstein ``σ = n q² D_σ/kT`` (units ``q² ν/(a^(d−2) kT_ref)``).
        drift_conductivity: ``⟨J⟩·E/|E|²`` (same units; NaN without a field).
        events: mean hops per lattice in the production run.
        events_per_second: all hops of the kernel call (equilibration included) per wall
            second.
        standard_errors: the same keys → ``(m,)`` standard errors.
        single_ion_diffusion: ``D₀ = Γ z/(2d)``.
        thermodynamic_factor: ``Φ`` (mean over the replicas).
    """

    tracer_diffusion: np.ndarray
    jump_diffusion: np.ndarray
    chemical_diffusion: np.ndarray
    correlation_factor: np.ndarray
    haven_ratio: np.ndarray
    conductivity: np.ndarray
    drift_conductivity: np.ndarray
    events: np.ndarray
    events_per_second: float
    standard_errors: dict[str, np.ndarray] = field(default_factory=dict)
    single_ion_diffusion: np.ndarray | None = None
    thermodynamic_factor: np.ndarray | None = None


def _mean_se(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the replica axis 1 of ``a (m, R)``."""
    R = a.shape[1]
    se = a.std(axis=1, ddof=1) / np.sqrt(R) if R > 1 else np.full(a.shape[0], np.nan)
    return a.mean(axis=1), se


def _ratio_se(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ā/b̄`` and its delta-method standard error over the replica axis 1."""
    R = a.shape[1]
    am, bm = a.mean(axis=1), b.mean(axis=1)
    r = am / bm
    if R < 2:
        return r, np.full(a.shape[0], np.nan)
    va, vb = a.var(axis=1, ddof=1), b.var(axis=1, ddof=1)
    cov = ((a - am[:, None]) * (b - bm[:, None])).sum(axis=1) / (R - 1)
    var = (va - 2 * r * cov + r**2 * vb) / (R * bm**2)
    return r, np.sqrt(np.maximum(var, 0.0))


def thermodynamic_factor(coverage: float, temperature: float, site_energies=None) -> float:
    r"""Thermodynamic factor ``Φ = c/(kT ∂c/∂μ)`` of the lattice gas with site energies.

    ``Φ = c / ((1/N) Σ_i f_i (1 − f_i))`` with the Fermi–Dirac occupations ``f_i`` at the
    chemical potential where ``(1/N) Σ_i f_i = c``; ``1/(1 − c)`` without site energies.

    Args:
        coverage: ``c`` in (0, 1).
        temperature: ``T > 0`` (units ``kT_ref``).
        site_energies: ``(N,)`` site energies (units ``kT_ref``) or None.
    """
    c, T = float(coverage), float(temperature)
    if site_energies is None or not np.any(np.asarray(site_energies) != 0):
        return 1.0 / (1.0 - c)
    e = np.asarray(site_energies, dtype=float)

    def occupations(mu):
        return 0.5 * (1.0 - np.tanh(0.5 * (e - mu) / T))  # 1/(1 + exp((e − µ)/T)), stable

    lo, hi = e.min() - 50 * T, e.max() + 50 * T
    mu = brentq(lambda m: occupations(m).mean() - c, lo, hi, xtol=1e-14 * (1 + abs(hi)))
    f = occupations(mu)
    return c / float(np.mean(f * (1.0 - f)))


def transport(
    run: HoppingRun,
    lattice: Lattice,
    coverage: float,
    temperature: ArrayLike,
    field: ArrayLike | None = None,
    barrier: float = 1.0,
    *,
    fit_from: float = 0.25,
    blocks: int | None = None,
) -> Transport:
    """Tracer, jump and chemical diffusion, correlation factor, Haven ratio and conductivities.

    Args:
        run: the output of :func:`~fe2hmm.micro.stochastic.hopping.simulate_hopping`.
        lattice: its lattice.
        coverage: its coverage (gives the same ion count).
        temperature: its temperatures, scalar or ``(m,)``.
        field: its field ``(d,)`` or None.
        barrier: its bare barrier ``E_a``.
        fit_from: the tracer MSD is fitted over ``t_s >= fit_from · t``, in ``[0, 1)``.
        blocks: time blocks of the jump-diffusion estimator, ``1 … S`` (default ``S`` without
            site energies, else ``min(8, S)``).

    Returns:
        The :class:`Transport` (definitions and errors: the module docstring).

    Raises:
        ValueError: arguments inconsistent with the run, or out of range.
    """
    if not isinstance(run, HoppingRun):
        raise TypeError(f"run must be a HoppingRun, got {type(run).__name__}")
    if not isinstance(lattice, Lattice):
        raise TypeError(f"lattice must be a Lattice, got {type(lattice).__name__}")
    m, R, S1 = run.times.shape
    S = S1 - 1
    N, d, z = lattice.sites, lattice.dim, lattice.coordination
    if run.com_displacement.shape[-1] != d or (run.sites and run.sites != N):
        raise ValueError(
            f"the {lattice.kind} lattice of {N} sites (d = {d}) is not the run's (N = "
            f"{run.sites}, d = {run.com_displacement.shape[-1]})"
        )
    P = ion_count(lattice, coverage)
    if P != run.particles:
        raise ValueError(
            f"coverage {coverage!r} gives {P} ions, the run has {run.particles} on {N} sites"
        )
    T = np.atleast_1d(np.asarray(temperature, dtype=float))
    if T.shape != (m,) or not np.all(np.isfinite(T) & (T > 0)):
        raise ValueError(
            f"temperature must be {m} finite values > 0 (the run's), got {temperature!r}"
        )
    if run.temperature is not None and not np.allclose(T, run.temperature, rtol=1e-12, atol=0):
        raise ValueError(
            f"temperature {T.tolist()} differs from the run's {run.temperature.tolist()}"
        )
    if not (np.isfinite(barrier) and barrier >= 0):
        raise ValueError(f"barrier must be finite and >= 0, got {barrier!r}")
    if run.temperature is not None and barrier != run.barrier:
        raise ValueError(f"barrier {barrier!r} differs from the run's {run.barrier!r}")
    E = None if field is None else np.asarray(field, dtype=float)
    if E is not None and (E.shape != (d,) or not np.all(np.isfinite(E))):
        raise ValueError(f"field must be None or a finite ({d},) vector, got {field!r}")
    if run.temperature is not None:
        mine = np.zeros(d) if E is None else E
        theirs = np.zeros(d) if run.field is None else run.field
        if not np.array_equal(mine, theirs):
            raise ValueError(f"field {field!r} differs from the run's {run.field!r}")
    if not (np.isfinite(fit_from) and 0 <= fit_from < 1):
        raise ValueError(f"fit_from must be in [0, 1), got {fit_from!r}")
    disordered = run.site_energies is not None and bool(np.any(run.site_energies))
    if blocks is None:
        blocks = min(8, S) if disordered else S
    if (
        isinstance(blocks, bool)
        or not isinstance(blocks, (int, np.integer))
        or not 1 <= blocks <= S
    ):
        raise ValueError(f"blocks must be an integer in [1, S = {S}], got {blocks!r}")
    drifting = E is not None and bool(np.any(E))
    if drifting and blocks < 2:
        raise ValueError(
            f"blocks must be >= 2 under a field (the drift is subtracted), got {blocks}"
        )

    t = run.times
    t_end = t[..., -1]
    X = run.com_displacement
    msd = run.tracer_msd
    if drifting:  # the MSD about the mean displacement of the ions
        msd = msd - np.sum((X / P) ** 2, axis=-1)
    s0 = min(int(np.ceil(fit_from * S - 1e-9)), S - 1)
    ts, ys = t[..., s0:], msd[..., s0:]
    tc = ts - ts.mean(axis=-1, keepdims=True)
    slope = (tc * (ys - ys.mean(axis=-1, keepdims=True))).sum(axis=-1) / (tc**2).sum(axis=-1)
    d_tracer = slope / (2 * d)

    edges = np.round(np.linspace(0, S, blocks + 1)).astype(int)
    dX = X[:, :, edges[1:]] - X[:, :, edges[:-1]]
    if drifting:
        dt = t[:, :, edges[1:]] - t[:, :, edges[:-1]]
        dX = dX - (X[:, :, -1] / t_end[..., None])[:, :, None, :] * dt[..., None]
    sq = np.sum(dX**2, axis=(-1, -2)) * (blocks / (blocks - 1) if drifting else 1.0)
    d_jump = sq / (2 * d * P * t_end)

    nu = run.events / (P * t_end)
    d_uncorr = nu / (2 * d)
    c = P / N
    phi = np.empty((m, R))
    for a in range(m):
        for r in range(R):
            energies = None if run.site_energies is None else run.site_energies[r]
            phi[a, r] = thermodynamic_factor(c, T[a], energies)
    n = P / (N * lattice.site_volume)
    values, errors = {}, {}
    values["tracer_diffusion"], errors["tracer_diffusion"] = _mean_se(d_tracer)
    values["jump_diffusion"], errors["jump_diffusion"] = _mean_se(d_jump)
    values["chemical_diffusion"], errors["chemical_diffusion"] = _mean_se(phi * d_jump)
    values["correlation_factor"], errors["correlation_factor"] = _ratio_se(d_tracer, d_uncorr)
    values["haven_ratio"], errors["haven_ratio"] = _ratio_se(d_tracer, d_jump)
    values["conductivity"], errors["conductivity"] = _mean_se(n * d_jump / T[:, None])
    if drifting:
        current = X[:, :, -1, :] / (t_end[..., None] * N * lattice.site_volume)
        values["drift_conductivity"], errors["drift_conductivity"] = _mean_se(
            current @ E / float(E @ E)
        )
    else:
        values["drift_conductivity"] = errors["drift_conductivity"] = np.full(m, np.nan)
    total = float(run.events.sum() + run.events.size * run.equilibration)
    return Transport(
        **values,
        events=run.events.mean(axis=1),
        events_per_second=total / run.seconds if run.seconds > 0 else float("nan"),
        standard_errors=errors,
        single_ion_diffusion=np.exp(-barrier / T) * z / (2 * d),
        thermodynamic_factor=phi.mean(axis=1),
    )


def hopping_transport(
    lattice: Lattice,
    coverage: float,
    temperature: ArrayLike,
    *,
    fit_from: float = 0.25,
    blocks: int | None = None,
    **simulate_kwargs,
) -> Transport:
    """:func:`~fe2hmm.micro.stochastic.hopping.simulate_hopping` and :func:`transport` in one.

    Args:
        lattice: the periodic lattice.
        coverage: ``c`` in (0, 1).
        temperature: scalar or ``(m,)``.
        fit_from: as :func:`transport`.
        blocks: as :func:`transport`.
        **simulate_kwargs: keyword arguments of ``simulate_hopping`` (``barrier``, ``disorder``,
            ``field``, ``events``, ``replicas``, ``seed``, …).
    """
    run = simulate_hopping(lattice, coverage, temperature, **simulate_kwargs)
    return transport(
        run,
        lattice,
        coverage,
        temperature,
        field=simulate_kwargs.get("field"),
        barrier=simulate_kwargs.get("barrier", 1.0),
        fit_from=fit_from,
        blocks=blocks,
    )
