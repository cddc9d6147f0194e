"""The quadrature map and the explicit micro-model contract (tangent blocks, standard errors)."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.quadrature import QuadratureMap


class TwoOutputs(MicroModel):
    """flux = -2 g (depends on the gradient), source = -3 T (depends on the value only)."""

    input_shapes = {"gradient": (2,), "value": ()}
    output_shapes = {"flux": (2,), "source": ()}
    tangent_blocks = [("flux", "gradient"), ("source", "value")]

    def __init__(self, break_tangent: str | None = None):
        super().__init__()
        self.break_tangent = break_tangent

    def evaluate(self, inputs, parameters, *, tangents=True):
        n = self.check_batch(inputs, parameters)
        out = {"flux": -2.0 * inputs["gradient"], "source": -3.0 * inputs["value"]}
        tan = {}
        if tangents:
            tan["flux", "gradient"] = np.broadcast_to(-2.0 * np.eye(2), (n, 2, 2)).copy()
            tan["source", "value"] = np.full(n, -3.0)
            if self.break_tangent == "missing":
                del tan["source", "value"]
            elif self.break_tangent == "shape":
                tan["flux", "gradient"] = tan["flux", "gradient"].reshape(n, 4)
            elif self.break_tangent == "undeclared":
                tan["flux", "value"] = np.zeros((n, 2))
        return MicroResult(out, tan)


class NoisyConductor(MicroModel):
    """q = -k g + s ξ with ξ standard normal, fresh at every evaluation; standard error s."""

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}
    is_stochastic = True

    def __init__(self, noise: float, seed: int = 0, k: float = 1.0):
        super().__init__()
        self.noise, self.k = noise, k
        self.rng = np.random.default_rng(seed)

    def evaluate(self, inputs, parameters, *, tangents=True):
        n = self.check_batch(inputs, parameters)
        g = inputs["gradient"]
        out = {"flux": -self.k * g + self.noise * self.rng.standard_normal(g.shape)}
        tan = {("flux", "gradient"): np.broadcast_to(-self.k * np.eye(2), (n, 2, 2)).copy()}
        return MicroResult(
            out, tan if tangents else {}, standard_errors={"flux": np.full(g.shape, self.noise)}
        )


def _unit_square(n=4):
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    return mesh, V


def test_only_declared_tangent_blocks_are_allocated_and_enter_the_jacobian():
    mesh, V = _unit_square()
    T = fem.Function(V)
    T.interpolate(lambda x: 1 + x[0] ** 2 + x[1])
    closure = Closure(TwoOutputs(), mesh, {"gradient": ufl.grad(T), "value": T})
    assert set(closure.tangents) == {("flux", "gradient"), ("source", "value")}
    closure.update()
    v, dT = ufl.TestFunction(V), ufl.TrialFunction(V)
    F = (
        -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx
        + closure.outputs["source"] * v * closure.dx
    )
    J = fem.assemble_matrix(fem.form(closure.jacobian(F, T, dT))).to_dense()
    exact = fem.form((2.0 * ufl.inner(ufl.grad(dT), ufl.grad(v)) - 3.0 * dT * v) * closure.dx)
    np.testing.assert_allclose(J, fem.assemble_matrix(exact).to_dense(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("defect", "message"),
    [
        ("missing", "no tangent dsource/dvalue, a declared tangent block"),
        ("shape", "tangent dflux/dgradient has shape"),
        ("undeclared", "dflux/dvalue, which is not a declared tangent block"),
    ],
)
def test_a_defective_tangent_is_an_error_naming_the_block(defect, message):
    mesh, V = _unit_square()
    T = fem.Function(V)
    closure = Closure(TwoOutputs(defect), mesh, {"gradient": ufl.grad(T), "value": T})
    with pytest.raises(RuntimeError, match=message):
        closure.update()
    closure.update(tangents=False)  # values alone are fine


def test_standard_errors_reach_quadrature_functions():
    mesh, V = _unit_square()
    T = fem.Function(V)
    T.interpolate(lambda x: x[0])
    closure = Closure(NoisyConductor(0.25), mesh, {"gradient": ufl.grad(T)})
    assert set(closure.standard_errors) == {"flux"}
    closure.update()
    s = closure.point_values(closure.standard_errors["flux"])
    assert s.shape == (closure.num_points, 2)
    np.testing.assert_array_equal(s, 0.25)
    q = closure.point_values(closure.outputs["flux"])
    # the noise is in the outputs: q + g is pure noise with standard deviation 0.25
    resid = (q + np.array([1.0, 0.0])).ravel()
    assert 0.15 < resid.std() < 0.35


def test_a_stochastic_model_without_standard_errors_is_an_error():
    class Forgetful(NoisyConductor):
        def evaluate(self, inputs, parameters, *, tangents=True):
            result = super().evaluate(inputs, parameters, tangents=tangents)
            result.standard_errors = {}
            return result

    mesh, V = _unit_square()
    T = fem.Function(V)
    closure = Closure(Forgetful(0.1), mesh, {"gradient": ufl.grad(T)})
    with pytest.raises(RuntimeError, match="stochastic but returned no standard error of 'flux'"):
        closure.update()


def test_map_evaluates_expressions_and_parameters_and_rejects_bad_declarations():
    mesh, V = _unit_square()
    T = fem.Function(V)
    T.interpolate(lambda x: 2 * x[0] + x[1])
    x = ufl.SpatialCoordinate(mesh)
    qmap = QuadratureMap(
        mesh,
        {"gradient": ufl.grad(T)},
        {"flux": (2,)},
        {"phi": 0.1 + x[0]},
        {"phi": ()},
        quadrature_degree=2,
    )
    np.testing.assert_allclose(qmap.evaluate_inputs()["gradient"], [[2.0, 1.0]] * qmap.num_points)
    np.testing.assert_allclose(qmap.parameters["phi"], 0.1 + qmap.coordinates[:, 0], atol=1e-14)
    field = qmap.expression(T * T)
    values = 2 * qmap.coordinates[:, 0] + qmap.coordinates[:, 1]
    np.testing.assert_allclose(field(), values**2, rtol=1e-12)
    f = qmap.function(values, "T_at_points")
    np.testing.assert_array_equal(qmap.point_values(f), values)
    with pytest.raises(ValueError, match=r"tangent block \('flux', 'strain'\) names no"):
        QuadratureMap(
            mesh, {"gradient": ufl.grad(T)}, {"flux": (2,)}, tangent_blocks=[("flux", "strain")]
        )
    with pytest.raises(ValueError, match="standard error of 'stress': no such output"):
        QuadratureMap(mesh, {"gradient": ufl.grad(T)}, {"flux": (2,)}, standard_errors=["stress"])
    with pytest.raises(ValueError, match="quadrature_degree must be an integer >= 0"):
        QuadratureMap(mesh, {"gradient": ufl.grad(T)}, {"flux": (2,)}, quadrature_degree=-1)


def test_non_finite_micro_output_names_the_point():
    class Broken(TwoOutputs):
        def evaluate(self, inputs, parameters, *, tangents=True):
            result = super().evaluate(inputs, parameters, tangents=tangents)
            result.outputs["source"][3] = np.nan
            return result

    mesh, V = _unit_square()
    T = fem.Function(V)
    closure = Closure(Broken(), mesh, {"gradient": ufl.grad(T), "value": T}, name="broken")
    if closure.num_points > 3:
        with pytest.raises(MicroSolveError, match="non-finite source") as info:
            closure.update()
        assert info.value.point == 3 and info.value.coordinates is not None
