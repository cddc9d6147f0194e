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
from fe2hmm.micro.particles.md import lattice_box, minimize, thermal_stresses

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
        temperature: ``T >= 0``; above 0 the stress is a Langevin time average
            (Langevin, all boxes of an evaluation in one batched engine call).
        a: reference lattice constant (default: zero pressure at T = 0).
        step: finite-difference step of the tangent (default 1e-6 at T = 0, 1e-2 above).
        md_options: passed to :func:`~fe2hmm.micro.particles.md.thermal_stresses` (steps,
            equilibration, dt, friction, every, blocks, skin) and ``seed``: point ``i`` of the
            ``k``-th evaluation draws its noise from ``(seed, k, i)`` (fresh noise per
            evaluation, reproducible for the same call sequence).
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
        """``(P, standard error of P)`` for one deformation gradient (one box)."""
        box = self.reference.deformed(F)
        if self.temperature == 0:
            minimize(box)
            return _piola(F, box.stress(), np.zeros((self.dim, self.dim)))
        run = thermal_stresses(
            box.x[None], box.H[None], self.cutoff, self.temperature, [self._seed(0)],
            **self.md_options,
        )[0]  # fmt: skip
        return _piola(F, run.stress, run.stress_error)

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
        P = np.empty((n, per_point, d, d))
        errors = np.zeros((n, per_point, d, d))
        boxes = []
        for i in range(n):
            try:
                for j in range(per_point):
                    box = self.reference.deformed(every_F[i, j])  # checks det F and box size
                    if self.temperature == 0:
                        minimize(box)
                        P[i, j], _ = _piola(every_F[i, j], box.stress(), errors[i, j])
                    else:
                        boxes.append(box)
            except (ValueError, RuntimeError) as err:
                raise MicroSolveError(f"LJ box at F = {Fs[i].tolist()}: {err}", point=i) from err
        if self.temperature > 0:
            seeds = np.repeat([self._seed(i) for i in range(n)], per_point)
            runs = thermal_stresses(
                np.stack([b.x for b in boxes]), np.stack([b.H for b in boxes]), self.cutoff,
                self.temperature, seeds, **self.md_options,
            )  # fmt: skip
            for k, run in enumerate(runs):
                i, j = divmod(k, per_point)
                P[i, j], errors[i, j] = _piola(every_F[i, j], run.stress, run.stress_error)
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


def _piola(F: np.ndarray, sigma: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P = Jσ F⁻ᵀ, its standard error)``; entries of σ treated as independent."""
    J = np.linalg.det(F)
    Finv_T = np.linalg.inv(F).T
    return J * sigma @ Finv_T, J * np.sqrt(error**2 @ Finv_T**2)
