"""Indicators: the a posteriori bound holds on a macro problem; the predictive indicator
tightens the surrogate near a sign change of the tangent."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm import analytic
from fe2hmm.macro import Dirichlet, SteadyDiffusion
from fe2hmm.micro.catalyst_pellet import CatalystPelletModel
from fe2hmm.micro.interface import LinearMicroModel
from fe2hmm.reuse.indicators import closure_error_indicator, tangent_sign_indicator
from fe2hmm.reuse.surrogate_model import ParameterSurrogateModel, ScalarSurrogateModel


class Graded(LinearMicroModel):
    """K*(φ) = Hashin–Shtrikman lower bound of a contrast-10 composite (smooth in φ, >= 1)."""

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}
    parameter_shapes = {"volume_fraction": ()}

    def effective_tensors(self, parameters):
        k = analytic.hashin_shtrikman_bounds(1.0, 10.0, float(parameters["volume_fraction"]))[0]
        return {("flux", "gradient"): -k * np.eye(2)}


def _fraction(x):
    return 0.05 + 0.6 * x[0]


def _solve(model, mesh):
    """-div(K*(phi) grad T) = 10 on the unit square, T = 0 on the boundary."""
    problem = SteadyDiffusion(
        mesh,
        model,
        parameters={"volume_fraction": _fraction(ufl.SpatialCoordinate(mesh))},
        source=10.0,
        bcs=[Dirichlet(0.0)],
    )
    problem.solve()
    return problem.T, problem.closure


@pytest.mark.mpi
def test_a_posteriori_indicator_bounds_the_error_reuse_adds():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 10, 10)
    T_exact, closure = _solve(Graded(), mesh)
    _, eta_exact = closure_error_indicator(closure, "flux")
    assert eta_exact == 0.0  # real solves everywhere: nothing to bound
    etas = []
    for tol in (1e-1, 1e-2, 1e-3):
        model = ParameterSurrogateModel(Graded(), tol)
        T, closure = _solve(model, mesh)
        eta_K, eta = closure_error_indicator(closure, "flux")
        local = fem.assemble_scalar(
            fem.form(ufl.inner(ufl.grad(T - T_exact), ufl.grad(T - T_exact)) * ufl.dx)
        )
        error = np.sqrt(mesh.comm.allreduce(local))
        # k_min = 1 (K* >= matrix conductivity): |grad(T - T_h)| <= eta / k_min
        assert 0 < error <= eta, (tol, error, eta)
        assert eta_K.x.array.min() >= 0.0
        etas.append(eta)
    assert etas[0] > etas[1] > etas[2]
    with pytest.raises(ValueError, match="unknown output"):
        closure_error_indicator(closure, "stress")


def test_tangent_sign_indicator_shapes():
    np.testing.assert_allclose(tangent_sign_indicator(np.array([2.0, -1.0, 0.5])), [1, -0.5, 0.25])
    T = np.array([np.diag([4.0, 1.0]), np.diag([4.0, -2.0])])
    np.testing.assert_allclose(tangent_sign_indicator(T), [0.25, -0.5])
    with pytest.raises(ValueError, match="shape"):
        tangent_sign_indicator(np.zeros((2, 2, 3)))


def test_scalar_surrogate_is_consistent_bounded_and_denser_near_the_sign_change():
    u = np.linspace(0.0, 1.5, 301)
    exact = CatalystPelletModel().evaluate({"concentration": u}, {})
    w, dw = exact.outputs["rate"], exact.tangents["rate", "concentration"]
    plain = ScalarSurrogateModel(CatalystPelletModel(), 1e-3, critical=-np.inf)
    sharp = ScalarSurrogateModel(CatalystPelletModel(), 1e-3, critical=0.05)
    for model in (plain, sharp):
        result = model.evaluate({"concentration": u}, {})
        value = result.outputs["rate"]
        bound = result.error_bounds["rate"]
        assert np.all(np.abs(value - w) <= bound + 1e-15)  # the bound holds at every point
        assert np.abs(value - w).max() <= 1e-3 * np.abs(w).max()
        # consistent tangent: the derivative of the served (C¹ piecewise-cubic) function
        h = 1e-6
        up = model.evaluate({"concentration": u[1:-1] + h}, {}).outputs["rate"]
        down = model.evaluate({"concentration": u[1:-1] - h}, {}).outputs["rate"]
        served = result.tangents["rate", "concentration"][1:-1]
        np.testing.assert_allclose((up - down) / (2 * h), served, atol=1e-7)
    # where ω' changes sign the indicator puts more nodes and a more accurate tangent
    near = np.abs(dw) < 0.05 * np.abs(dw).max()
    errors = {}
    for key, model in (("plain", plain), ("sharp", sharp)):
        _, slope, _ = model.surrogate.predict(u[near])
        errors[key] = np.abs(slope - dw[near]).max()
    assert errors["sharp"] < 0.1 * errors["plain"], errors
    assert len(sharp.surrogate) > len(plain.surrogate)
    assert sharp.statistics.surrogate_hits > 0 and sharp.statistics.micro_solves < 60


def test_scalar_surrogate_rejects_unsuitable_models():
    from fe2hmm.micro.cells.diffusion import DiffusionCellModel

    with pytest.raises(ValueError, match="one scalar input"):
        ScalarSurrogateModel(DiffusionCellModel(resolution=4))
    with pytest.raises(ValueError, match="tighten"):
        ScalarSurrogateModel(CatalystPelletModel(), tighten=0.5)
