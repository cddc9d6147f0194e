"""Catalyst pellet micro-model: effectiveness-factor limit, consistent tangent, errors."""

import numpy as np
import pytest

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.catalyst_pellet import CatalystPelletModel


def test_first_order_limit_is_the_effectiveness_factor_at_second_order():
    """β = 0: ω(u) = u tanh(φ)/φ exactly (Aris 1975); finite differences converge as h²."""
    u, phi = 0.7, 2.0
    errors = []
    for nodes in (21, 41, 81, 161):
        rate, slope, _ = CatalystPelletModel(thiele=phi, adsorption=0.0, nodes=nodes).solve_point(u)
        errors.append(abs(rate - u * np.tanh(phi) / phi))
        assert slope == pytest.approx(np.tanh(phi) / phi, rel=1e-2)
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(rates - 2.0) < 0.05), rates


@pytest.mark.parametrize("u", [0.05, 0.36, 1.2])
def test_tangent_is_the_derivative_of_the_discrete_rate(u):
    model = CatalystPelletModel()
    h = 1e-6
    fd = (model.solve_point(u + h)[0] - model.solve_point(u - h)[0]) / (2 * h)
    assert model.solve_point(u)[1] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_rate_is_non_monotone_and_batched_evaluate_counts_solves():
    model = CatalystPelletModel()
    u = np.array([0.1, 0.3, 0.5, 1.0])
    result = model.evaluate({"concentration": u}, {})
    slope = result.tangents["rate", "concentration"]
    assert slope[0] > 0 and slope[-1] < 0  # ω' changes sign (inhibition by adsorption)
    assert model.statistics.micro_solves == 4


def test_bad_input_is_rejected_with_the_point():
    for kwargs, match in (
        ({"thiele": 0.0}, "thiele"),
        ({"adsorption": -1.0}, "adsorption"),
        ({"nodes": 2}, "nodes"),
    ):
        with pytest.raises(ValueError, match=match):
            CatalystPelletModel(**kwargs)
    with pytest.raises(MicroSolveError, match="concentration") as info:
        CatalystPelletModel().evaluate({"concentration": np.array([0.2, -0.1])}, {})
    assert info.value.point == 1
