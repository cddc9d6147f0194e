r"""Lennard-Jones boxes under an imposed deformation: lattices, relaxation, virial stress.

A box holds ``n`` atoms (unit mass) at positions ``x`` ``(n, d)`` in the periodic cell ``H``
(columns = cell vectors). A macro deformation gradient ``F`` maps the reference box affinely,
``x ← F x``, ``H ← F H``; the atoms then relax at fixed box (non-affine relaxation, FIRE). The
Cauchy stress is the virial

.. math:: \sigma = -\frac{1}{V}\Big(\sum_i m\,v_i\otimes v_i + \sum_{i<j} r_{ij}\otimes f_{ij}\Big),

(tension positive; the kinetic part vanishes at T = 0) and the first Piola–Kirchhoff stress
:math:`P = J\sigma F^{-\top}`. Zero-temperature elastic constants follow by central differences
of the relaxed stress under small strains. Reduced LJ units (:mod:`fe2hmm.micro.particles.lj`).
"""

from __future__ import annotations

import numpy as np

from fe2hmm.micro.particles.lattice import LATTICES, zero_pressure_lattice_constant
from fe2hmm.micro.particles.lj import (
    check_box,
    forces,
    langevin,
    perpendicular_widths,
    relax,
    relax_boxes,
)

__all__ = [
    "LJBox",
    "ThermalStress",
    "elastic_constants",
    "lattice_box",
    "minimize",
    "relaxed_stresses",
    "thermal_lattice_constant",
    "thermal_stress",
    "thermal_stresses",
    "to_voigt",
]


class LJBox:
    """Atoms in a periodic box with a Lennard-Jones cutoff.

    Args:
        positions: ``(n, d)`` Cartesian positions.
        box: ``(d, d)`` box matrix, columns = cell vectors.
        cutoff: LJ cutoff ``r_c``.
        velocities: ``(n, d)`` (default zero).

    Raises:
        ValueError: shapes, a box with ``det <= 0``, or a box thinner than ``2 r_c``.
    """

    def __init__(self, positions, box, cutoff: float, velocities=None) -> None:
        x = np.array(positions, dtype=float)
        H = np.array(box, dtype=float)
        if x.ndim != 2 or x.shape[1] not in (2, 3) or H.shape != (x.shape[1],) * 2:
            raise ValueError(
                f"positions must be (n, d) with d in (2, 3) and box (d, d), got {x.shape}, "
                f"{H.shape}"
            )
        if not np.linalg.det(H) > 0:
            raise ValueError(f"box matrix must have a positive determinant, got {H.tolist()}")
        if not (np.isfinite(cutoff) and cutoff > 0):
            raise ValueError(f"cutoff must be a finite number > 0, got {cutoff!r}")
        check_box(H, cutoff)
        self.x, self.H, self.cutoff = x, H, float(cutoff)
        self.v = np.zeros_like(x) if velocities is None else np.array(velocities, dtype=float)

    @property
    def volume(self) -> float:
        """Box volume (area in 2D)."""
        return float(np.linalg.det(self.H))

    def deformed(self, F: np.ndarray) -> LJBox:
        """A copy mapped affinely by ``F`` (``det F > 0``); velocities are kept.

        Raises:
            ValueError: ``det F <= 0`` or the deformed box thinner than ``2 r_c``.
        """
        F = np.asarray(F, dtype=float)
        d = self.x.shape[1]
        if F.shape != (d, d):
            raise ValueError(f"F must be ({d}, {d}), got {F.shape}")
        if not np.linalg.det(F) > 0:
            raise ValueError(
                f"deformation gradient needs det F > 0, got det F = {np.linalg.det(F):g}"
            )
        return LJBox(self.x @ F.T, F @ self.H, self.cutoff, self.v.copy())

    def evaluate(self) -> tuple[float, np.ndarray, np.ndarray]:
        """``(potential energy, forces (n, d), pair virial Σ r_ij ⊗ f_ij (d, d))``."""
        return forces(self.x, self.H, self.cutoff)

    def stress(self) -> np.ndarray:
        """Instantaneous Cauchy stress ``(d, d)`` (virial + kinetic, tension positive)."""
        _, _, virial = self.evaluate()
        kinetic = self.v.T @ self.v
        return -(virial + kinetic) / self.volume


def lattice_box(lattice: str, cells, a: float | None = None, cutoff: float = 2.5) -> LJBox:
    """A perfect lattice in a box of ``cells`` conventional cells.

    ``"triangular"``: rectangular cells ``a × a√3`` with 2 atoms (``a`` = nearest-neighbour
    distance); ``"fcc"``: cubic cells of edge ``a`` with 4 atoms.

    Args:
        lattice: ``"triangular"`` or ``"fcc"``.
        cells: cells per direction (int or one per axis).
        a: lattice constant; default the zero-pressure one at T = 0 for ``cutoff``.
        cutoff: LJ cutoff.
    """
    if lattice not in LATTICES:
        raise ValueError(f"unknown lattice {lattice!r}; valid: {sorted(LATTICES)}")
    d = LATTICES[lattice]
    cells = np.broadcast_to(np.asarray(cells, dtype=int), (d,))
    if np.any(cells < 1):
        raise ValueError(f"cells must be >= 1, got {cells.tolist()}")
    if a is None:
        a = zero_pressure_lattice_constant(lattice, cutoff)
    if lattice == "triangular":
        edges = a * np.array([1.0, np.sqrt(3.0)])
        basis = np.array([[0.0, 0.0], [0.5, 0.5]])
    else:
        edges = a * np.ones(3)
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=float)
    grid = np.stack(np.meshgrid(*[np.arange(c) for c in cells], indexing="ij"), -1).reshape(-1, d)
    frac = (grid[:, None, :] + basis[None, :, :]).reshape(-1, d)
    return LJBox(frac * edges, np.diag(edges * cells), cutoff)


def relaxed_stresses(
    positions: np.ndarray,
    boxes: np.ndarray,
    cutoff: float,
    force_tolerance: float = 1e-10,
    max_steps: int = 20000,
) -> tuple[np.ndarray, np.ndarray]:
    """Relax ``B`` boxes (FIRE, one parallel call) and return their Cauchy stresses.

    Args:
        positions: ``(B, n, d)``, C-contiguous; relaxed in place.
        boxes: box matrices ``(B, d, d)``.
        cutoff: LJ cutoff.
        force_tolerance: FIRE stops when the largest force component is below it.
        max_steps: FIRE steps per box.

    Returns:
        ``(σ (B, d, d), largest remaining force component (B,))``; a box has converged when its
        force is below ``force_tolerance`` (the caller decides what failing means).
    """
    _, fmax, virials = relax_boxes(positions, boxes, cutoff, force_tolerance, max_steps)
    return -virials / np.linalg.det(boxes)[:, None, None], fmax


def minimize(box: LJBox, force_tolerance: float = 1e-10, max_steps: int = 20000) -> int:
    """Relax the atoms at fixed box by FIRE (Bitzek et al., PRL 97, 170201, 2006).

    Args:
        box: relaxed in place.
        force_tolerance: stop when the largest force component is below it.
        max_steps: give up after this many steps.

    Returns:
        The number of steps taken.

    Raises:
        RuntimeError: not converged within ``max_steps`` (names the residual force).
    """
    steps, fmax, _ = relax(box.x, box.H, box.cutoff, force_tolerance, max_steps)
    if not fmax < force_tolerance:
        raise RuntimeError(
            f"FIRE did not converge in {max_steps} steps: max force {fmax:.3e} "
            f"> {force_tolerance:g}"
        )
    return int(steps)


def to_voigt(C: np.ndarray) -> np.ndarray:
    """Voigt matrix (engineering shear: ``C66`` is the shear modulus) of ``C_ijkl``."""
    from fe2hmm.analytic import to_voigt as _to_voigt

    return _to_voigt(C)


def elastic_constants(
    box: LJBox, strain: float = 1e-5, temperature: float = 0.0, **md_options
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stress and stiffness of a box by central differences of the stress.

    At ``temperature = 0`` the relaxed (FIRE) Cauchy stress is differentiated under the small
    strains ``±strain (e_k ⊗ e_l)_sym`` (error O(strain²)). At ``temperature > 0`` the
    time-averaged stress of :func:`thermal_stresses` (all boxes in one engine call) is
    differentiated with **common random
    numbers** (the same seed for ``+`` and ``−``), so most of the thermal noise cancels; the
    error of ``C`` is the block standard error of the paired differences. Use a larger strain
    there (e.g. 0.01: the noise of the difference quotient scales like 1/strain).

    Args:
        box: the reference state (not modified; relaxed first at T = 0).
        strain: strain amplitude.
        temperature: ``T`` (reduced), >= 0.
        md_options: passed to :func:`thermal_stresses` (steps, equilibration, dt, friction,
            every, blocks, skin) and ``seed`` (one seed for all boxes).

    Returns:
        ``(σ (d, d), C (d, d, d, d), σ error, C error)`` (errors zero at T = 0).
    """
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if not (np.isfinite(strain) and strain > 0):
        raise ValueError(f"strain must be > 0, got {strain!r}")
    d = box.x.shape[1]
    reference = LJBox(box.x.copy(), box.H.copy(), box.cutoff)
    if temperature == 0:
        minimize(reference)
    pairs = [(k, m) for k in range(d) for m in range(k, d)]
    boxes = [LJBox(reference.x.copy(), reference.H.copy(), reference.cutoff)]
    for k, m in pairs:
        E = np.zeros((d, d))
        E[k, m] = E[m, k] = strain
        boxes += [reference.deformed(np.eye(d) + E), reference.deformed(np.eye(d) - E)]
    if temperature == 0:
        runs = None
        stresses, fmax = relaxed_stresses(
            np.stack([b.x for b in boxes]), np.stack([b.H for b in boxes]), box.cutoff
        )
        if not np.all(fmax < 1e-10):
            raise RuntimeError(f"FIRE did not converge: max force {fmax.max():.3e} > 1e-10")
        sigma_error = np.zeros((d, d))
    else:  # all boxes in one engine call, one seed: common random numbers
        options = dict(md_options)
        seed = int(options.pop("seed", 0))
        runs = thermal_stresses(
            np.stack([b.x for b in boxes]), np.stack([b.H for b in boxes]), box.cutoff,
            temperature, np.full(len(boxes), seed), **options,
        )  # fmt: skip
        stresses = [r.stress for r in runs]
        sigma_error = runs[0].stress_error
    sigma0 = stresses[0]
    C = np.zeros((d,) * 4)
    C_error = np.zeros((d,) * 4)
    blocks = md_options.get("blocks", 20)
    for p, (k, m) in enumerate(pairs):
        plus, minus = stresses[1 + 2 * p], stresses[2 + 2 * p]
        factor = 1.0 if k == m else 0.5  # (k, m) and (m, k) share the shear 2·strain
        slope = factor * (plus - minus) / (2 * strain)
        error = np.zeros((d, d))
        if runs is not None:
            paired = ThermalStress(
                runs[1 + 2 * p].samples - runs[2 + 2 * p].samples,
                np.ones(runs[1 + 2 * p].samples.shape[0]),
                blocks,
            )
            error = factor * paired.stress_error / (2 * strain)
        C[:, :, k, m] = C[:, :, m, k] = slope
        C_error[:, :, k, m] = C_error[:, :, m, k] = error
    return sigma0, C, sigma_error, C_error


class ThermalStress:
    """Time-averaged virial stress of a Langevin run.

    Attributes:
        stress: mean Cauchy stress ``(d, d)``.
        stress_error: standard error of the mean from block averages ``(d, d)``.
        temperature: mean kinetic temperature ``Σ v²/(n d)`` and its standard error.
        pressure: mean pressure ``−tr σ / d`` and its standard error (from block means of the
            pressure itself: the diagonal stresses fluctuate together, so combining their
            separate errors as if independent would underestimate it).
        samples: instantaneous stresses after equilibration ``(m, d, d)``.
    """

    def __init__(self, samples: np.ndarray, temperatures: np.ndarray, blocks: int) -> None:
        m = samples.shape[0] // blocks * blocks
        if m < blocks or blocks < 2:
            raise ValueError(f"need at least 2 blocks of samples, got {samples.shape[0]} samples")
        means = samples[:m].reshape(blocks, -1, *samples.shape[1:]).mean(axis=1)
        t_means = temperatures[:m].reshape(blocks, -1).mean(axis=1)
        self.samples = samples
        self.stress = means.mean(axis=0)
        self.stress_error = means.std(axis=0, ddof=1) / np.sqrt(blocks)
        self.temperature = (float(t_means.mean()), float(t_means.std(ddof=1) / np.sqrt(blocks)))
        p_means = -np.trace(means, axis1=-2, axis2=-1) / samples.shape[-1]
        self.pressure = (float(p_means.mean()), float(p_means.std(ddof=1) / np.sqrt(blocks)))


def thermal_stress(
    box: LJBox,
    temperature: float,
    steps: int = 4000,
    equilibration: int = 1000,
    dt: float = 0.005,
    friction: float = 1.0,
    seed: int = 0,
    every: int = 5,
    blocks: int = 20,
) -> ThermalStress:
    """Canonical (NVT) time average of the virial stress by BAOAB Langevin dynamics.

    BAOAB (Leimkuhler & Matthews 2013) samples the canonical ensemble with an O(dt²)
    configurational error; velocities start from the Maxwell distribution of ``seed``.

    Args:
        box: the (deformed) box; not modified.
        temperature: ``T`` (reduced), > 0.
        steps: production steps (averaged).
        equilibration: steps discarded first.
        dt: time step.
        friction: Langevin friction ``γ``.
        seed: random seed (runs are reproducible; the same seed gives common random numbers
            across deformations).
        every: sampling interval (steps).
        blocks: blocks for the standard error.

    Raises:
        ValueError: ``temperature <= 0`` or non-positive step counts.
    """
    _check_md(temperature, steps, equilibration, dt, every, blocks)
    x, H = box.x.copy(), box.H
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=np.sqrt(temperature), size=x.shape)
    v -= v.mean(axis=0)
    if equilibration:
        langevin(x, v, H, box.cutoff, dt, friction, temperature, equilibration, seed, every)
    samples, kinetic, _ = langevin(
        x, v, H, box.cutoff, dt, friction, temperature, steps, seed + 1, every
    )
    n, d = x.shape
    return ThermalStress(-samples / box.volume, 2 * kinetic / (n * d), blocks)


#: smallest Verlet skin :func:`thermal_stresses` reduces to for narrow boxes.
MIN_SKIN = 0.05


def _check_md(
    temperature: float, steps: int, equilibration: int, dt: float, every: int, blocks: int
):
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be > 0 (use elastic_constants at T = 0), got {temperature!r}"
        )
    if steps < blocks * every or equilibration < 0 or dt <= 0:
        raise ValueError(
            f"need steps >= blocks*every ({blocks * every}), equilibration >= 0, dt > 0; got "
            f"steps={steps}, equilibration={equilibration}, dt={dt}"
        )


def thermal_stresses(
    positions: np.ndarray,
    boxes: np.ndarray,
    cutoff: float,
    temperature: float,
    seeds,
    steps: int = 4000,
    equilibration: int = 1000,
    dt: float = 0.005,
    friction: float = 1.0,
    every: int = 5,
    blocks: int = 20,
    skin: float = 0.3,
) -> list[ThermalStress]:
    """:func:`thermal_stress` for ``B`` boxes at once: one parallel call of the Verlet-list engine.

    Box ``b`` starts from Maxwell velocities of ``seeds[b]`` and draws its Langevin noise from
    ``seeds[b]`` only, so equal seeds give common random numbers across boxes and the result of
    a box does not depend on the others or on the thread schedule
    (:func:`~fe2hmm.micro.particles.engine.run_boxes`).

    Args:
        positions: ``(B, n, d)`` (not modified).
        boxes: box matrices ``(B, d, d)``.
        cutoff: LJ cutoff.
        temperature: ``T`` (reduced), > 0.
        seeds: one integer seed per box ``(B,)``.
        steps: production steps (averaged).
        equilibration: steps discarded first.
        dt: time step.
        friction: Langevin friction ``γ``.
        every: sampling interval (steps).
        blocks: blocks for the standard errors.
        skin: Verlet-list skin; reduced to fit boxes narrower than ``2 (r_c + skin)`` (a smaller
            skin only means more list rebuilds), at least :data:`MIN_SKIN`.

    Returns:
        One :class:`ThermalStress` per box.
    """
    from fe2hmm.micro.particles.engine import run_boxes

    _check_md(temperature, steps, equilibration, dt, every, blocks)
    X = np.array(positions, dtype=float)
    Hs = np.asarray(boxes, dtype=float)
    seeds = np.asarray(seeds, dtype=np.int64)
    B, n, d = X.shape
    if Hs.shape != (B, d, d) or seeds.shape != (B,):
        raise ValueError(
            f"need boxes ({B}, {d}, {d}) and seeds ({B},), got {Hs.shape} and {seeds.shape}"
        )
    if B == 0:
        return []
    V = np.stack([np.random.default_rng(s).normal(scale=np.sqrt(temperature), size=(n, d))
                  for s in seeds])  # fmt: skip
    V -= V.mean(axis=1, keepdims=True)
    narrowest = float(perpendicular_widths(Hs).min())
    skin = min(float(skin), 0.5 * narrowest - cutoff)
    if not skin >= MIN_SKIN:
        raise ValueError(
            f"box too small for the cutoff: narrowest perpendicular width {narrowest:.6g} must be "
            f">= 2*(cutoff + {MIN_SKIN:g}) = {2 * (cutoff + MIN_SKIN):g} for the Verlet-list "
            f"engine; use more lattice cells"
        )
    if equilibration:
        run_boxes(X, V, Hs, cutoff, dt, equilibration, friction, temperature, seeds, every, skin)
    samples, kinetic = run_boxes(
        X, V, Hs, cutoff, dt, steps, friction, temperature, seeds + 1, every, skin
    )
    volumes = np.linalg.det(Hs)
    return [
        ThermalStress(-samples[b] / volumes[b], 2 * kinetic[b] / (n * d), blocks) for b in range(B)
    ]


def thermal_lattice_constant(
    lattice: str,
    cutoff: float,
    temperature: float,
    cells,
    replicas: int = 4,
    tolerance: float = 2.0,
    max_iterations: int = 8,
    seed: int = 0,
    **md_options,
) -> tuple[float, float, float]:
    """The lattice constant at which the mean pressure vanishes at temperature ``T``.

    Newton iteration ``a ← a (1 + p / (d K))`` on the MD pressure ``p = −tr σ / d`` (the mean
    of ``replicas`` independent boxes), with the zero-temperature Born bulk modulus ``K``, from
    the zero-pressure lattice at T = 0; it stops when ``|p|`` is within ``tolerance`` standard
    errors.

    Args:
        lattice: ``"triangular"`` or ``"fcc"``.
        cutoff: LJ cutoff.
        temperature: ``T > 0``.
        cells: lattice cells per axis of each box.
        replicas: independent boxes averaged per iterate.
        tolerance: stop at ``|p| <= tolerance · se(p)``.
        max_iterations: iterates before giving up.
        seed: first seed (iterate ``k`` uses new seeds).
        md_options: passed to :func:`thermal_stresses`.

    Returns:
        ``(a, p, se(p))`` at the last iterate.

    Raises:
        RuntimeError: not converged in ``max_iterations``.
    """
    from fe2hmm.micro.particles.lattice import lattice_stiffness

    a = zero_pressure_lattice_constant(lattice, cutoff)
    d = LATTICES[lattice]
    C = lattice_stiffness(lattice, a, cutoff)
    bulk = float(np.einsum("iijj->", C)) / d**2
    for k in range(max_iterations):
        box = lattice_box(lattice, cells, a, cutoff)
        seeds = seed + 1000 * k + np.arange(replicas)
        runs = thermal_stresses(
            np.stack([box.x] * replicas), np.stack([box.H] * replicas), cutoff, temperature,
            seeds, **md_options,
        )  # fmt: skip
        mean = float(np.mean([r.pressure[0] for r in runs]))
        se = float(np.sqrt(sum(r.pressure[1] ** 2 for r in runs))) / replicas
        if abs(mean) <= tolerance * se:
            return float(a), mean, float(se)
        a *= 1.0 + mean / (d * bulk)
    raise RuntimeError(
        f"no zero-pressure lattice constant at T = {temperature:g} after {max_iterations} "
        f"iterations: a = {a:.6f}, p = {mean:.3g} ± {se:.2g}"
    )
