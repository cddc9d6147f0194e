"""Closure engine and macro Newton: consistency with plain UFL forms (level-2 tests)."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from dolfinx.fem.petsc import LinearProblem

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import LinearMicroModel, MicroModel, MicroResult
from fe2hmm.newton import NewtonSolver
from fe2hmm.reuse import Dedupe

K_ANISO = np.array([[2.0, 0.5], [0.5, 1.0]])


class ConstantTensor(LinearMicroModel):
    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def effective_tensors(self, parameters):
        return {("flux", "gradient"): -K_ANISO}


class PowerLaw(MicroModel):
    """q = -(1 + |g|^2) g, a nonlinear conductor with its exact tangent."""

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def evaluate(self, inputs, parameters, *, tangents=True):
        n = self.check_batch(inputs, parameters)
        g = inputs["gradient"]
        s = 1.0 + np.einsum("ni,ni->n", g, g)
        out = {"flux": -s[:, None] * g}
        tan = {}
        if tangents:
            tan["flux", "gradient"] = -(
                s[:, None, None] * np.eye(2) + 2.0 * np.einsum("ni,nj->nij", g, g)
            )
        self.statistics.points_requested += n
        return MicroResult(out, tan)


def _problem(n, comm=MPI.COMM_WORLD):
    mesh = dmesh.create_unit_square(comm, n, n)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.full(x.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    return mesh, V, bc


def _l2(expr, mesh):
    local = fem.assemble_scalar(fem.form(expr**2 * ufl.dx(domain=mesh)))
    return np.sqrt(mesh.comm.allreduce(local, op=MPI.SUM))


def _manufactured(mesh):
    x = ufl.SpatialCoordinate(mesh)
    u_ex = ufl.sin(ufl.pi * x[0]) * ufl.sin(ufl.pi * x[1])
    f = -ufl.div(ufl.as_matrix(K_ANISO.tolist()) * ufl.grad(u_ex))
    return u_ex, f


@pytest.mark.mpi
def test_constant_closure_equals_plain_ufl_and_manufactured_rate():
    errors = []
    for n in (8, 16, 32):
        mesh, V, bc = _problem(n)
        u_ex, f = _manufactured(mesh)
        T = fem.Function(V)
        v = ufl.TestFunction(V)
        closure = Closure(ConstantTensor(), mesh, {"gradient": ufl.grad(T)}, quadrature_degree=4)
        F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx - f * v * closure.dx
        result = NewtonSolver(F, T, [bc], [closure], petsc_options_prefix=f"c{n}_").solve()
        assert result.converged and result.iterations == 1  # linear closure: one Newton step
        u, w = ufl.TrialFunction(V), ufl.TestFunction(V)
        dx4 = ufl.dx(metadata={"quadrature_degree": 4})
        K = ufl.as_matrix(K_ANISO.tolist())
        ref = LinearProblem(
            ufl.inner(K * ufl.grad(u), ufl.grad(w)) * dx4,
            f * w * dx4,
            bcs=[bc],
            petsc_options_prefix=f"r{n}_",
            petsc_options={
                "ksp_type": "preonly",
                "pc_type": "lu",
                "pc_factor_mat_solver_type": "mumps",
            },
        ).solve()
        # same discrete problem: identical to solver round-off
        assert _l2(T - ref, mesh) <= 1e-11 * _l2(ref, mesh)
        errors.append(_l2(T - u_ex, mesh))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(rates > 1.9), rates  # P1: second order in L2


@pytest.mark.mpi
def test_nonlinear_closure_matches_ufl_and_converges_quadratically():
    mesh, V, bc = _problem(16)
    x = ufl.SpatialCoordinate(mesh)
    f = 20.0 * ufl.sin(ufl.pi * x[0]) * x[1]
    v = ufl.TestFunction(V)

    T = fem.Function(V)
    closure = Closure(PowerLaw(), mesh, {"gradient": ufl.grad(T)}, quadrature_degree=2)
    F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx - f * v * closure.dx
    result = NewtonSolver(F, T, [bc], [closure], rtol=1e-13, petsc_options_prefix="nl1_").solve()

    U = fem.Function(V)
    dxq = ufl.dx(metadata={"quadrature_degree": 2})
    g = ufl.grad(U)
    F_ufl = (1 + ufl.inner(g, g)) * ufl.inner(g, ufl.grad(v)) * dxq - f * v * dxq
    ref = NewtonSolver(F_ufl, U, [bc], [], rtol=1e-13, petsc_options_prefix="nl2_").solve()

    assert result.converged and ref.converged
    assert result.iterations == ref.iterations
    # the residual histories agree: the closure's Jacobian equals the UFL derivative
    np.testing.assert_allclose(result.residual_norms[:3], ref.residual_norms[:3], rtol=1e-8)
    assert _l2(T - U, mesh) <= 1e-10 * _l2(U, mesh)
    r = np.array(result.residual_norms)
    # quadratic convergence: r_{k+1} <= C r_k^2 once in the asymptotic regime
    tail = [(a, b) for a, b in zip(r, r[1:], strict=False) if a < 1e-2 and b > 1e-14]
    assert tail, r
    assert all(b <= 10.0 * a**2 for a, b in tail), r

    # time accounting: one closure update per residual evaluation, stages non-negative and
    # inside the Newton solve's own wall time
    t = closure.timings.as_dict()
    assert t["updates"] == len(result.residual_norms)
    assert all(t[k] >= 0.0 for k in ("evaluate_inputs", "micro", "write_back"))
    assert set(result.seconds) == {"micro", "assemble", "solve"}
    assert all(value > 0.0 for value in result.seconds.values())
    stages = t["evaluate_inputs"] + t["micro"] + t["write_back"]
    assert stages <= result.seconds["micro"] * (1 + 1e-9)


def test_closure_rejects_bad_bindings():
    mesh, V, _ = _problem(2)
    T = fem.Function(V)
    with pytest.raises(ValueError, match="needs inputs"):
        Closure(ConstantTensor(), mesh, {"grad": ufl.grad(T)})
    with pytest.raises(ValueError, match="UFL shape"):
        Closure(ConstantTensor(), mesh, {"gradient": T})
    with pytest.raises(TypeError, match="MicroModel"):
        Closure(object(), mesh, {"gradient": ufl.grad(T)})
    with pytest.raises(ValueError, match="quadrature_degree"):
        Closure(ConstantTensor(), mesh, {"gradient": ufl.grad(T)}, quadrature_degree=-1)


class FailsRight(LinearMicroModel):
    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}
    parameter_shapes = {"x": ()}

    def effective_tensors(self, parameters):
        if parameters["x"] > 0.7:
            raise RuntimeError("cell solver diverged")
        return {("flux", "gradient"): -np.eye(2)}


@pytest.mark.mpi
@pytest.mark.timeout(120)  # a hang on one rank would show up here
def test_micro_failure_names_point_and_macro_coordinates():
    mesh, V, _ = _problem(4)
    T = fem.Function(V)
    x = ufl.SpatialCoordinate(mesh)
    closure = Closure(FailsRight(), mesh, {"gradient": ufl.grad(T)}, {"x": x[0]})
    with pytest.raises(MicroSolveError) as info:
        closure.update()
    err = info.value
    if err.coordinates is not None:  # the rank(s) owning a failing point
        assert err.coordinates[0] > 0.7
        assert "x = (" in str(err) and "cell solver diverged" in str(err)
        np.testing.assert_allclose(closure.coordinates[err.point], err.coordinates)
    else:  # other ranks are told, and do not hang
        assert "other rank" in str(err)


class NaNModel(ConstantTensor):
    def effective_tensors(self, parameters):
        return {("flux", "gradient"): np.full((2, 2), np.nan)}


def test_non_finite_micro_output_is_an_error_not_propagated():
    mesh, V, _ = _problem(2)
    T = fem.Function(V)
    closure = Closure(NaNModel(), mesh, {"gradient": ufl.grad(T)})
    with pytest.raises(MicroSolveError, match="non-finite"):
        closure.update()


def test_parameter_sources_and_validation():
    mesh, V, _ = _problem(3)
    T = fem.Function(V)
    x = ufl.SpatialCoordinate(mesh)
    c1 = Closure(FailsRight(), mesh, {"gradient": ufl.grad(T)}, {"x": x[0] * 0.5})
    c2 = Closure(FailsRight(), mesh, {"gradient": ufl.grad(T)}, {"x": lambda p: 0.5 * p[0]})
    np.testing.assert_allclose(c1.parameters["x"], c2.parameters["x"], atol=1e-14)
    np.testing.assert_allclose(c1.parameters["x"], 0.5 * c1.coordinates[:, 0], atol=1e-14)
    with pytest.raises(ValueError, match="callable returned shape"):
        Closure(FailsRight(), mesh, {"gradient": ufl.grad(T)}, {"x": lambda p: p})
    with pytest.raises(ValueError, match="not finite"):
        Closure(
            FailsRight(),
            mesh,
            {"gradient": ufl.grad(T)},
            {"x": lambda p: np.full(p.shape[1], np.nan)},
        )
    with pytest.raises(ValueError, match="unknown parameter"):
        c1.set_parameter("y", 1.0)


def test_linear_model_dedupes_and_reuses_tensors():
    mesh, V, _ = _problem(4)
    T = fem.Function(V)
    x = ufl.SpatialCoordinate(mesh)
    naive = FailsRight()
    closure = Closure(naive, mesh, {"gradient": ufl.grad(T)}, {"x": 0.25 + 0 * x[0]})
    closure.update()
    assert naive.statistics.micro_solves == closure.num_points  # no wrapper: one per point
    model = Dedupe(FailsRight())  # the closure's reuse, in one line
    closure = Closure(model, mesh, {"gradient": ufl.grad(T)}, {"x": 0.25 + 0 * x[0]})
    closure.update()
    closure.update()
    assert model.statistics.micro_solves == 1  # one distinct parameter, tensors reused
    assert model.statistics.points_requested == 2 * closure.num_points
    closure.set_parameter("x", lambda p: np.round(p[0], 1) * 0.5)
    closure.update()
    values = np.unique(closure.parameters["x"])
    # new values are solved once each; 0.25 (if present on this rank) is remembered
    assert model.statistics.micro_solves == 1 + values.size - int(np.isin(0.25, values))
