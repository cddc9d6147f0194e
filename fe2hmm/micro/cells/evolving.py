r"""Diffusion cells whose phase properties follow a per-point state (evolving microstructure).

The geometry of the cell is fixed; the conductivity of its phases is a function of a scalar
state :math:`s` carried by every macro quadrature point — a damage, a degree of reaction, a
temperature history. The closure re-queries the cell with the current state (see
:class:`fe2hmm.evolution.IrreversibleState` for a state that follows macro fields), so the
homogenised tensor :math:`K^*(s(x, t))` evolves with the macro solution and its history.

Because :math:`s` is one scalar parameter of a :class:`~fe2hmm.micro.interface.LinearMicroModel`,
the reuse layer applies unchanged: exact dedupe of equal states (:class:`~fe2hmm.reuse.Dedupe`),
the persistent cache (:class:`~fe2hmm.reuse.Cache`, with a ``cache_key``), and the
error-controlled surrogate over :math:`s` (:class:`~fe2hmm.reuse.ParameterSurrogateModel`,
seeded with ``initial_nodes`` at the ends and middle of :attr:`bounds`), which turns thousands
of distinct states into a handful of cell solves.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fe2hmm.micro.cells.diffusion import BOUNDARY_CONDITIONS, homogenize_diffusion
from fe2hmm.micro.cells.geometry import CellGeometry
from fe2hmm.micro.interface import LinearMicroModel
from fe2hmm.rve.cell import RVE

__all__ = ["StateDependentDiffusionCellModel"]


class StateDependentDiffusionCellModel(LinearMicroModel):
    """Micro-model: flux ``q = -K*(s) g`` of one cell whose phase conductivities depend on ``s``.

    Input ``{"gradient": (d,)}``, output ``{"flux": (d,)}``, per-point parameter
    ``{"state": ()}``; tangent ∂q/∂g = ``-K*(s)``.

    Args:
        conductivity: ``conductivity(s) -> {phase tag: k >= 0}`` (scalars or ``(d, d)``
            tensors) for a state value ``s``; must cover every phase of the cell.
        rve: generator name (see :func:`fe2hmm.rve.create`).
        volume_fraction: inclusion fraction of the (fixed) cell geometry.
        dim: 2 or 3.
        bounds: admissible state interval ``(low, high)``; states outside it are an error.
        bc: cell boundary condition (:data:`~fe2hmm.micro.cells.diffusion.BOUNDARY_CONDITIONS`).
        resolution: RVE mesh resolution (generator default if None).
        degree: Lagrange degree.
        rve_options: extra generator options.
        cache_key: a JSON-serialisable description of ``conductivity`` (e.g. its formula and
            coefficients); required for :class:`~fe2hmm.reuse.cache.Cache`, since a Python
            callable cannot identify a cache entry.

    Raises:
        ValueError: invalid generator, dimension, volume fraction, bounds or boundary condition.
    """

    def __init__(
        self,
        conductivity: Callable[[float], dict],
        rve: str = "circle",
        volume_fraction: float = 0.4,
        dim: int = 2,
        bounds: tuple[float, float] = (0.0, 1.0),
        bc: str = "periodic",
        resolution: int | None = None,
        degree: int = 1,
        rve_options: dict | None = None,
        cache_key: dict | None = None,
    ) -> None:
        super().__init__()
        if not callable(conductivity):
            raise TypeError(
                f"conductivity must be a callable state -> {{phase: k}}, got "
                f"{type(conductivity).__name__}"
            )
        self.geometry = CellGeometry(rve, dim, resolution, rve_options or {})
        self.volume_fraction = self.geometry.check_volume_fraction(volume_fraction)
        if bc not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown boundary condition {bc!r}; valid: {BOUNDARY_CONDITIONS}")
        low, high = (float(b) for b in bounds)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"bounds must be finite with low < high, got {bounds!r}")
        self.conductivity = conductivity
        self.dim = self.geometry.dim
        self.bounds = (low, high)
        self.bc, self.degree = bc, int(degree)
        self.cache_key = cache_key
        self._cell: RVE | None = None

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"gradient": (d,)}``."""
        return {"gradient": (self.dim,)}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"flux": (d,)}``."""
        return {"flux": (self.dim,)}

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"state": ()}``."""
        return {"state": ()}

    @property
    def cell(self) -> RVE:
        """The (fixed) cell geometry, generated on first use."""
        if self._cell is None:
            self._cell = self.geometry.create(self.volume_fraction, shared=False)  # one cell
        return self._cell

    def cache_identity(self) -> dict:
        """Geometry, discretisation and ``cache_key`` (required for the persistent cache)."""
        if self.cache_key is None:
            raise ValueError(
                "StateDependentDiffusionCellModel needs cache_key (a description of the "
                "conductivity law) to use the persistent cache"
            )
        return {
            # /2: cells mesh the nominal volume fractions (earlier entries hold other K*)
            "model": "StateDependentDiffusionCellModel/2",
            "rve": self.geometry.name,
            "rve_options": self.geometry.options,
            "volume_fraction": self.volume_fraction,
            "dim": self.dim,
            "bc": self.bc,
            "resolution": self.geometry.resolution,
            "degree": self.degree,
            "conductivity": self.cache_key,
        }

    def conductivity_tensor(self, state: float) -> np.ndarray:
        """K*(s), shape ``(d, d)``.

        Raises:
            ValueError: ``state`` outside :attr:`bounds`, or the law returned invalid values.
        """
        low, high = self.bounds
        if not (low <= state <= high):
            raise ValueError(f"state {state!r} outside the admissible interval [{low}, {high}]")
        phases = self.conductivity(float(state))
        if not isinstance(phases, dict):
            raise TypeError(
                f"conductivity({state}) must return {{phase: k}}, got {type(phases).__name__}"
            )
        solution = homogenize_diffusion(self.cell, phases, bc=self.bc, degree=self.degree)
        return solution.effective_tensor

    def effective_tensors(self, parameters: dict[str, np.ndarray]) -> dict:
        """``{("flux", "gradient"): -K*(s)}`` for one state ``s``."""
        return {("flux", "gradient"): -self.conductivity_tensor(float(parameters["state"]))}
