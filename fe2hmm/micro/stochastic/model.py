r"""The ionic conductivity of a hopping lattice as a micro-model: ``σ*(T)`` with standard errors.

:class:`HoppingConductivityModel` closes a macro model whose conductivity depends on the local
temperature (a solid electrolyte under Joule heating): at each quadrature point it runs the
lattice kinetic Monte Carlo of :mod:`fe2hmm.micro.stochastic.hopping` at the point's
temperature — all points of a batch in one parallel call — and returns the Nernst–Einstein
conductivity :math:`\sigma = n q^2 D_\sigma/(kT)` from the collective (jump) diffusion
coefficient, with its standard error from the independent replicas
(:mod:`fe2hmm.micro.stochastic.transport`).

Units are the engine's reduced units: lattice spacing 1, attempt frequency ν = 1, k_B = 1,
q = 1, energies (``barrier``, ``disorder``) in units of a reference :math:`kT_\mathrm{ref}`,
the temperature as :math:`T/T_\mathrm{ref}`; σ is then in units of
:math:`q^2 \nu / (a^{d-2} k T_\mathrm{ref})`.

The model is stochastic and has no tangent: serve it through
:class:`fe2hmm.reuse.ArrheniusRegressionModel`, which fits :math:`\ln(\sigma T)` in
:math:`1/T` and gives the macro Newton iteration a smooth :math:`\sigma^*(T)` with its exact
tangent and error bars::

    kmc = HoppingConductivityModel("square", size=32, coverage=0.5, barrier=4.0, disorder=1.0)
    model = ArrheniusRegressionModel(kmc, temperature_range=(0.8, 1.6))
"""

from __future__ import annotations

import numpy as np

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.micro.stochastic.hopping import ion_count
from fe2hmm.micro.stochastic.lattice import LATTICES, lattice
from fe2hmm.micro.stochastic.transport import hopping_transport

__all__ = ["HoppingConductivityModel"]


class HoppingConductivityModel(MicroModel):
    r"""Ionic conductivity ``σ*(T)`` of a lattice gas of hopping ions (kinetic Monte Carlo).

    Input ``temperature`` ``()`` (:math:`T/T_\mathrm{ref}`, > 0); output ``conductivity``
    ``()`` with ``standard_errors``; no parameters, no tangent (stochastic: wrap it in
    :class:`~fe2hmm.reuse.regression.ArrheniusRegressionModel` for a macro Newton solve).
    One :meth:`evaluate` runs every point of the batch in one parallel engine call; the answer
    for a batch is reproducible (seeded from ``seed`` and the position in the batch).

    Args:
        kind: ``"square"``, ``"triangular"`` or ``"cubic"``.
        size: lattice sites per edge ``L`` (periodic ``L^d`` sites).
        coverage: fraction of occupied sites ``c`` in (0, 1).
        barrier: hop barrier ``E_a`` (units of the reference kT).
        disorder: standard deviation ``W`` of the Gaussian site energies (same units), >= 0.
        events: KMC events per lattice and replica after equilibration.
        replicas: independent lattices per point (the standard errors come from their spread).
        seed: the random seed.
        conductivity_unit: σ is returned in units of this conductivity (reduced units), > 0:
            e.g. the value at a reference temperature, so that a macro problem is solved in
            well-scaled variables.

    Raises:
        ValueError: a bad argument (named, with the valid range), before any simulation.
    """

    input_shapes = {"temperature": ()}
    output_shapes = {"conductivity": ()}
    is_stochastic = True

    def __init__(
        self,
        kind: str = "square",
        size: int = 32,
        coverage: float = 0.5,
        barrier: float = 4.0,
        disorder: float = 0.0,
        events: int = 200_000,
        replicas: int = 8,
        seed: int = 0,
        conductivity_unit: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in LATTICES:
            raise ValueError(f"kind must be one of {LATTICES}, got {kind!r}")
        self.lattice = lattice(kind, size)
        for label, value in (("barrier", barrier), ("disorder", disorder)):
            if isinstance(value, bool) or not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
        for label, value, low in (("events", events, 1), ("replicas", replicas, 2)):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if isinstance(conductivity_unit, bool) or not (
            np.isfinite(conductivity_unit) and conductivity_unit > 0
        ):
            raise ValueError(
                f"conductivity_unit must be a finite number > 0, got {conductivity_unit!r}"
            )
        self.conductivity_unit = float(conductivity_unit)
        self.kind, self.size = kind, int(size)
        self.coverage, self.barrier, self.disorder = (
            float(coverage),
            float(barrier),
            float(disorder),
        )
        self.events, self.replicas, self.seed = int(events), int(replicas), int(seed)
        self._run_options = dict(
            barrier=self.barrier,
            disorder=self.disorder,
            events=self.events,
            replicas=self.replicas,
        )
        ion_count(self.lattice, self.coverage)  # the engine's own coverage check, no run

    @property
    def tangent_blocks(self) -> list[tuple[str, str]]:
        """None: the noisy σ(T) has no tangent (fit it with an ArrheniusRegressionModel)."""
        return []

    def cache_identity(self) -> dict:
        """The lattice, composition, energies, run lengths and seed."""
        return {
            "model": type(self).__name__,
            "kind": self.kind,
            "size": self.size,
            "coverage": self.coverage,
            "barrier": self.barrier,
            "disorder": self.disorder,
            "events": self.events,
            "replicas": self.replicas,
            "seed": self.seed,
            "conductivity_unit": self.conductivity_unit,
        }

    def evaluate(self, inputs, parameters, *, tangents=True) -> MicroResult:
        """σ and its standard error at every point's temperature, in one engine call."""
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        T = np.asarray(inputs["temperature"], dtype=float).reshape(-1)
        bad = np.flatnonzero(~(T > 0))
        if bad.size:
            i = int(bad[0])
            raise MicroSolveError(
                f"{type(self).__name__}: temperature must be > 0, got {float(T[i])!r}", point=i
            )
        if n == 0:
            return MicroResult({"conductivity": np.zeros(0)}, {}, {"conductivity": np.zeros(0)})
        result = hopping_transport(
            self.lattice, self.coverage, T, seed=self.seed, **self._run_options
        )
        self.statistics.micro_solves += n
        self.statistics.seconds += float(result.events.sum()) / result.events_per_second
        sigma = np.asarray(result.conductivity, dtype=float) / self.conductivity_unit
        se = np.asarray(result.standard_errors["conductivity"], dtype=float)
        se = se / self.conductivity_unit
        return MicroResult({"conductivity": sigma}, {}, {"conductivity": se})
