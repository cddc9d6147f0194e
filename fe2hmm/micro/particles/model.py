r"""Micro-model: the first Piola–Kirchhoff stress of a Lennard-Jones box under ``F``.

At every quadrature point the macro deformation gradient :math:`F` maps the reference lattice
box; the atoms relax (T = 0, FIRE) or are averaged over Langevin dynamics (T > 0), and the
virial Cauchy stress gives :math:`P = J\sigma F^{-\top}`. The tangent :math:`\partial P/\partial F`
is the central difference of :math:`P` (T = 0: to O(h²); T > 0: with common random numbers,
noisy — the standard errors of :math:`P` are returned).
"""

from __future__ import annotations

import time

import numpy as np

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.micro.particles.lattice import LATTICES, zero_pressure_lattice_constant
from fe2hmm.micro.particles.lj import perpendicular_widths
from fe2hmm.micro.particles.md import MIN_SKIN, lattice_box, relaxed_stresses, thermal_stresses

__all__ = ["LJStressModel"]


class LJStressModel(MicroModel):
    """``P(F)`` of a periodic LJ lattice box at each point (one box per point and evaluation).

    Input ``{"deformation_gradient": (d, d)}``, output ``{"stress": (d, d)}`` (first
    Piola–Kirchhoff, LJ units), tangent ``∂P/∂F`` ``(d, d, d, d)``. No per-point parameters.

    Args:
        lattice: ``"triangular"`` (2D) or ``"fcc"`` (3D).
        cutoff: LJ cutoff.
        cells: lattice cells per axis (default: the smallest box at least ``2·cutoff`` wide with
            room for compression to 0.8).
        temperature: ``T >= 0``; above 0 the stress is a Langevin time average (all boxes of
            an evaluation in one batched engine call).
        a: reference lattice constant (default: zero pressure at T = 0).
        step: finite-difference step of the tangent (default 1e-6 at T = 0, 1e-2 above).
        md_options: passed to :func:`~fe2hmm.micro.particles.md.thermal_stresses` (steps,
            equilibration, dt, friction, every, blocks, skin) and ``seed``: point ``i`` of the
            ``k``-th evaluation draws its noise from ``(seed, k, i)`` (fresh noise per
            evaluation, reproducible for the same call sequence); at T = 0 ``force_tolerance``
            of the FIRE relaxation (default 1e-10; all boxes relaxed in one parallel call).
    """

    is_stochastic = False

    def __init__(
        self,
        lattice: str = "triangular",
        cutoff: float = 2.5,
        cells=None,
        temperature: float = 0.0,
        a: float | None = None,
        step: float | None = None,
        **md_options,
    ) -> None:
        super().__init__()
        if lattice not in LATTICES:
            raise ValueError(f"unknown lattice {lattice!r}; valid: {sorted(LATTICES)}")
        if not (np.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        self.lattice, self.cutoff, self.temperature = lattice, float(cutoff), float(temperature)
        self.dim = LATTICES[lattice]
        self.a = zero_pressure_lattice_constant(lattice, cutoff) if a is None else float(a)
        if cells is None:
            unit = self.a * (np.array([1.0, np.sqrt(3.0)]) if self.dim == 2 else np.ones(3))
            cells = np.ceil(2.0 * self.cutoff / (0.8 * unit)).astype(int)
        self.reference = lattice_box(lattice, cells, self.a, cutoff)
        self.step = step if step is not None else (1e-6 if temperature == 0 else 1e-2)
        self.seed = int(md_options.pop("seed", 0))
        self.force_tolerance = float(md_options.pop("force_tolerance", 1e-10))
        self.md_options = md_options
        self.is_stochastic = temperature > 0
        self._evaluations = 0

    @property
    def input_shapes(self):
        """``{"deformation_gradient": (d, d)}``."""
        return {"deformation_gradient": (self.dim, self.dim)}

    @property
    def output_shapes(self):
        """``{"stress": (d, d)}`` (first Piola–Kirchhoff)."""
        return {"stress": (self.dim, self.dim)}

    def piola_stress(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(P, standard error of P)`` for one deformation gradient (one box, no tangent)."""
        result = self.evaluate({"deformation_gradient": np.asarray(F, float)[None]}, {},
                               tangents=False)  # fmt: skip
        errors = result.standard_errors.get("stress", np.zeros((1, self.dim, self.dim)))
        return result.outputs["stress"][0], errors[0]

    def _check_boxes(self, flat_F, Hs, per_point, Fs) -> None:
        """``det F > 0`` and every box wide enough, else ``MicroSolveError`` naming the point."""
        det = np.linalg.det(flat_F)
        bad = np.flatnonzero(~(det > 0))
        if bad.size:
            k = int(bad[0])
            raise _box_error(Fs, k, per_point, f"deformation gradient needs det F > 0, got "
                             f"det F = {det[k]:g}")  # fmt: skip
        reach = self.cutoff + (MIN_SKIN if self.temperature > 0 else 0.0)
        widths = perpendicular_widths(Hs)
        thin = np.flatnonzero(np.any(widths < 2 * reach, axis=-1))
        if thin.size:
            k = int(thin[0])
            raise _box_error(Fs, k, per_point, f"box too small for the cutoff: perpendicular "
                             f"widths {np.round(widths[k], 6)} must be >= {2 * reach:g} (minimum "
                             f"image); use more lattice cells")  # fmt: skip

    def _seed(self, point: int) -> int:
        """Seed of ``point`` in the current evaluation (new noise per evaluation, reproducible)."""
        sequence = np.random.SeedSequence([self.seed, self._evaluations, point])
        return int(sequence.generate_state(1, dtype=np.uint32)[0])

    def _perturbed(self, Fs: np.ndarray, tangents: bool) -> np.ndarray:
        """``(n, 1 + 2d², d, d)``: each ``F`` and, for the tangent, ``F ± h e_k⊗e_m``."""
        d = self.dim
        if not tangents:
            return Fs[:, None]
        dF = self.step * np.eye(d * d).reshape(d * d, d, d)
        return np.concatenate([Fs[:, None], Fs[:, None] + dF, Fs[:, None] - dF], axis=1)

    def evaluate(self, inputs, parameters, *, tangents=True):
        """Stress (and tangent by central differences) at every point.

        At T > 0 all boxes of all points (and their ``±h`` perturbations for the tangent, with
        the point's seed: common random numbers) advance together in one parallel call of the
        Verlet-list engine (:func:`~fe2hmm.micro.particles.md.thermal_stresses`).

        Raises:
            MicroSolveError: ``det F <= 0``, a box thinner than twice the cutoff, or a failed
                relaxation, naming the point.
        """
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        d = self.dim
        Fs = np.asarray(inputs["deformation_gradient"], dtype=float)
        every_F = self._perturbed(Fs, tangents)
        per_point = every_F.shape[1]
        t0 = time.perf_counter()
        flat_F = every_F.reshape(n * per_point, d, d)
        Hs = flat_F @ self.reference.H
        X = np.ascontiguousarray(np.einsum("mj,bij->bmi", self.reference.x, flat_F))
        self._check_boxes(flat_F, Hs, per_point, Fs)
        if n == 0:  # e.g. a rank without quadrature points
            sigma = sigma_error = np.zeros((0, d, d))
        elif self.temperature == 0:
            sigma, fmax = relaxed_stresses(X, Hs, self.cutoff, self.force_tolerance)
            failed = np.flatnonzero(~(fmax < self.force_tolerance))
            if failed.size:
                k = int(failed[0])
                raise _box_error(Fs, k, per_point, f"FIRE did not converge: max force "
                                 f"{fmax[k]:.3e} > {self.force_tolerance:g}")  # fmt: skip
            sigma_error = np.zeros_like(sigma)
        else:
            seeds = np.repeat([self._seed(i) for i in range(n)], per_point)
            runs = thermal_stresses(X, Hs, self.cutoff, self.temperature, seeds, **self.md_options)
            sigma = np.stack([run.stress for run in runs])
            sigma_error = np.stack([run.stress_error for run in runs])
        P, errors = _piola(flat_F, sigma, sigma_error)
        P, errors = P.reshape(n, per_point, d, d), errors.reshape(n, per_point, d, d)
        self._evaluations += 1
        self.statistics.micro_solves += n * per_point
        self.statistics.seconds += time.perf_counter() - t0
        outputs = {"stress": P[:, 0]}
        result_tangents = {}
        if tangents:
            h = self.step
            T = (P[:, 1 : 1 + d * d] - P[:, 1 + d * d :]) / (2 * h)  # (n, d², d, d)
            result_tangents[("stress", "deformation_gradient")] = np.moveaxis(
                T.reshape(n, d, d, d, d), (1, 2), (3, 4)
            )
        result = MicroResult(outputs, result_tangents)
        if self.temperature > 0:
            result.standard_errors = {"stress": errors[:, 0]}
        return result


def _box_error(Fs: np.ndarray, box: int, per_point: int, message: str) -> MicroSolveError:
    """The error of flat box ``box`` (``per_point`` boxes per point), naming its point."""
    point = box // per_point
    return MicroSolveError(f"LJ box at F = {Fs[point].tolist()}: {message}", point=point)


def _piola(F: np.ndarray, sigma: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P = Jσ F⁻ᵀ, its standard error)`` for stacks ``(m, d, d)``; σ entries independent."""
    J = np.linalg.det(F)[:, None, None]
    Finv_T = np.swapaxes(np.linalg.inv(F), 1, 2)
    return J * sigma @ Finv_T, J * np.sqrt(error**2 @ Finv_T**2)
