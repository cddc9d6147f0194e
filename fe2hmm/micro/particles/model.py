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
from fe2hmm.micro.particles.md import LJBox, lattice_box, minimize, thermal_stress

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
            (:func:`~fe2hmm.micro.particles.md.thermal_stress`, options in ``md_options``).
        a: reference lattice constant (default: zero pressure at T = 0).
        step: finite-difference step of the tangent (default 1e-6 at T = 0, 1e-2 above).
        md_options: passed to ``thermal_stress`` (steps, equilibration, dt, seed, …).
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
        self.md_options = md_options
        self.is_stochastic = temperature > 0

    @property
    def input_shapes(self):
        """``{"deformation_gradient": (d, d)}``."""
        return {"deformation_gradient": (self.dim, self.dim)}

    @property
    def output_shapes(self):
        """``{"stress": (d, d)}`` (first Piola–Kirchhoff)."""
        return {"stress": (self.dim, self.dim)}

    def piola_stress(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(P, standard error of P)`` for one deformation gradient."""
        box = self.reference.deformed(F)
        if self.temperature == 0:
            minimize(box)
            sigma, error = box.stress(), np.zeros((self.dim, self.dim))
        else:
            result = thermal_stress(
                LJBox(box.x, box.H, box.cutoff), self.temperature, **self.md_options
            )
            sigma, error = result.stress, result.stress_error
        J = np.linalg.det(F)
        Finv_T = np.linalg.inv(F).T
        # independent entries: var(P_ij) = J² Σ_k var(σ_ik) (F⁻ᵀ)_kj²
        return J * sigma @ Finv_T, J * np.sqrt(error**2 @ Finv_T**2)

    def evaluate(self, inputs, parameters, *, tangents=True):
        """Stress (and tangent by central differences) at every point.

        Raises:
            MicroSolveError: ``det F <= 0``, a box thinner than twice the cutoff, or a failed
                relaxation, naming the point.
        """
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        d = self.dim
        Fs = np.asarray(inputs["deformation_gradient"], dtype=float)
        P = np.empty((n, d, d))
        errors = np.empty((n, d, d))
        T = np.zeros((n, d, d, d, d)) if tangents else None
        t0 = time.perf_counter()
        for i in range(n):
            try:
                P[i], errors[i] = self.piola_stress(Fs[i])
                if tangents:
                    for k in range(d):
                        for m in range(d):
                            dF = np.zeros((d, d))
                            dF[k, m] = self.step
                            plus, _ = self.piola_stress(Fs[i] + dF)
                            minus, _ = self.piola_stress(Fs[i] - dF)
                            T[i, :, :, k, m] = (plus - minus) / (2 * self.step)
            except (ValueError, RuntimeError) as err:
                raise MicroSolveError(f"LJ box at F = {Fs[i].tolist()}: {err}", point=i) from err
            self.statistics.micro_solves += 1
        self.statistics.seconds += time.perf_counter() - t0
        result = MicroResult(
            {"stress": P}, {("stress", "deformation_gradient"): T} if tangents else {}
        )
        if self.temperature > 0:
            result.standard_errors = {"stress": errors}
        return result
