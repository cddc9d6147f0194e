"""The KMC conductivity as a micro-model (fe2hmm.micro.stochastic.model): σ*(T) with
standard errors against the exact lattice gas, batching, reproducibility, units, the contract
(stochastic, no tangent, standard errors into the closure), bad input."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import mesh as dmesh

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.stochastic.model import HoppingConductivityModel

C, EA = 0.5, 4.0


def exact(T, c=C, barrier=EA):
    """σ = n q² D_σ/kT with D_σ = Γ(1 − c), n = c (square lattice, reduced units)."""
    T = np.asarray(T, dtype=float)
    return c * (1.0 - c) * np.exp(-barrier / T) / T


def _small(**kwargs):
    options = dict(size=12, coverage=C, barrier=EA, events=20_000, replicas=8, seed=1)
    options.update(kwargs)
    return HoppingConductivityModel("square", **options)


def test_conductivity_matches_the_exact_lattice_gas_within_its_standard_errors():
    """Without disorder σ = c(1 − c) e^{−E_a/T}/T exactly; three temperatures in one batch
    lie within 4 standard errors (seed fixed; the SE comes from 8 replicas, so z follows a t
    distribution with 7 degrees of freedom: |z| > 4 has probability 5e-3 per point)."""
    model = _small()
    T = np.array([0.8, 1.0, 1.5])
    result = model.evaluate({"temperature": T}, {})
    sigma, se = result.outputs["conductivity"], result.standard_errors["conductivity"]
    assert sigma.shape == se.shape == (3,) and np.all(se > 0)
    assert np.all(se / sigma < 0.1)
    z = (sigma - exact(T)) / se
    assert np.all(np.abs(z) < 4), z
    assert model.statistics.micro_solves == 3 and model.statistics.seconds > 0


def test_batches_are_reproducible_and_units_scale_exactly():
    T = {"temperature": np.array([0.9, 1.2])}
    first = _small().evaluate(T, {})
    again = _small().evaluate(T, {})
    np.testing.assert_array_equal(first.outputs["conductivity"], again.outputs["conductivity"])
    other = _small(seed=2).evaluate(T, {})
    assert not np.array_equal(first.outputs["conductivity"], other.outputs["conductivity"])
    scaled = _small(conductivity_unit=exact(1.0)).evaluate(T, {})
    np.testing.assert_allclose(
        scaled.outputs["conductivity"] * exact(1.0), first.outputs["conductivity"], rtol=1e-14
    )
    np.testing.assert_allclose(
        scaled.standard_errors["conductivity"] * exact(1.0),
        first.standard_errors["conductivity"],
        rtol=1e-14,
    )


def test_the_contract_and_standard_errors_in_the_closure():
    """Stochastic, no tangent block, a cache identity; in a closure the standard errors land in
    their quadrature function beside the conductivity."""
    model = _small(events=2_000, replicas=4)
    assert model.is_stochastic and model.tangent_blocks == []
    identity = model.cache_identity()
    assert identity["model"] == "HoppingConductivityModel" and identity["barrier"] == EA
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    x = ufl.SpatialCoordinate(mesh)
    closure = Closure(model, mesh, {"temperature": 1.0 + 0.5 * x[0]}, quadrature_degree=1)
    closure.update(tangents=True)
    sigma = closure.outputs["conductivity"].x.array
    se = closure.standard_errors["conductivity"].x.array
    assert sigma.size == se.size > 0 and np.all(sigma > 0) and np.all(se > 0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kind="hexagonal"), "kind must be one of"),
        (dict(barrier=-1.0), "barrier must be a finite number >= 0, got -1.0"),
        (dict(disorder=float("nan")), "disorder must be a finite number >= 0"),
        (dict(events=0), "events must be an integer >= 1, got 0"),
        (dict(replicas=1), "replicas must be an integer >= 2, got 1"),
        (dict(seed=-3), "seed must be an integer >= 0, got -3"),
        (dict(conductivity_unit=0.0), "conductivity_unit must be a finite number > 0"),
        (dict(coverage=1.0), "coverage"),
    ],
)
def test_bad_arguments_are_named_before_any_simulation(kwargs, match):
    options = dict(kind="square", size=8)
    options.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        HoppingConductivityModel(**options)
    assert "\n" not in str(info.value)


def test_a_bad_temperature_names_its_point():
    with pytest.raises(MicroSolveError, match="quadrature point 1") as info:
        _small(events=100).evaluate({"temperature": np.array([1.0, -0.5])}, {})
    assert "temperature must be > 0, got -0.5" in str(info.value)
