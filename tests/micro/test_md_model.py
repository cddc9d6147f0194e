"""The LJ stress micro-model: Cauchy–Born exactness at T = 0, consistent tangent, a macro Newton
solve closed by it, noisy stresses with standard errors at T > 0, named failures."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.particles import lattice as L
from fe2hmm.micro.particles.model import LJStressModel
from fe2hmm.newton import NewtonSolver


@pytest.mark.parametrize("lattice", ["triangular", "fcc"])
def test_zero_temperature_stress_is_cauchy_born_and_tangent_consistent(lattice):
    """A perfect Bravais lattice under homogeneous F does not relax internally: the MD stress
    equals the Cauchy–Born lattice sum to round-off (1e-12); the central-difference tangent
    (step 1e-6) equals the derivative of the Cauchy–Born stress to 1e-7."""
    model = LJStressModel(lattice)
    d = model.dim
    rng = np.random.default_rng(0)
    F = np.eye(d) + 0.03 * rng.normal(size=(2, d, d))
    result = model.evaluate({"deformation_gradient": F}, {})
    for i in range(2):
        exact = L.cauchy_born_stress(lattice, model.a, 2.5, F[i])
        assert np.allclose(result.outputs["stress"][i], exact, atol=1e-12 * np.abs(exact).max())
    h = 1e-5
    T = np.zeros((d,) * 4)
    for k in range(d):
        for m in range(d):
            dF = np.zeros((d, d))
            dF[k, m] = h
            T[:, :, k, m] = (
                L.cauchy_born_stress(lattice, model.a, 2.5, F[0] + dF)
                - L.cauchy_born_stress(lattice, model.a, 2.5, F[0] - dF)
            ) / (2 * h)
    tangent = result.tangents["stress", "deformation_gradient"][0]
    assert np.allclose(tangent, T, atol=1e-7 * np.abs(T).max())
    assert model.statistics.micro_solves == 2 * (1 + 2 * d * d)  # one box per F and F ± h


def _stretched_square(model, stretch, **newton_options):
    """Uniaxial stretch of a free unit square (2×2 P1 mesh, one point per cell)."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    V = fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    u, v = fem.Function(V), ufl.TestFunction(V)
    F_macro = ufl.Identity(2) + ufl.grad(u)
    closure = Closure(model, mesh, {"deformation_gradient": F_macro}, quadrature_degree=1)
    residual = ufl.inner(closure.outputs["stress"], ufl.grad(v)) * closure.dx
    fdim = mesh.topology.dim - 1
    left = dmesh.locate_entities_boundary(mesh, fdim, lambda x: np.isclose(x[0], 0.0))
    right = dmesh.locate_entities_boundary(mesh, fdim, lambda x: np.isclose(x[0], 1.0))
    corner = dmesh.locate_entities_boundary(
        mesh, 0, lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0)
    )
    bcs = [
        fem.dirichletbc(0.0, fem.locate_dofs_topological(V.sub(0), fdim, left), V.sub(0)),
        fem.dirichletbc(stretch, fem.locate_dofs_topological(V.sub(0), fdim, right), V.sub(0)),
        fem.dirichletbc(0.0, fem.locate_dofs_topological(V.sub(1), 0, corner), V.sub(1)),
    ]
    # a unique options prefix: a test builds a second solver while the first is alive
    newton = NewtonSolver(residual, u, bcs, [closure], **newton_options)
    return newton, closure


def test_macro_newton_with_the_md_closure_converges_quadratically():
    """Uniaxial stretch (3 %) of a free square (2D triangular lattice, T = 0): Newton with the
    MD tangent converges quadratically, and the lateral faces are traction free (P_yy = 0)."""
    newton, closure = _stretched_square(LJStressModel("triangular"), 0.03)
    result = newton.solve()
    assert result.converged and result.iterations <= 5
    norms = np.array(result.residual_norms)  # measured: 3.2, 1.7e-2, 3.3e-5, 1.2e-10
    assert np.all(norms[1:] / norms[:-1] ** 2 < 1.0), norms  # quadratic: ρ_{k+1} <= C ρ_k²
    P = closure.point_values(closure.outputs["stress"])
    assert np.abs(P[:, 1, 1]).max() < 1e-6 * np.abs(P[:, 0, 0]).max()
    assert np.all(P[:, 0, 0] > 0)


def test_finite_temperature_returns_standard_errors_and_failures_name_the_point():
    model = LJStressModel("triangular", temperature=0.05, steps=1000, equilibration=200)
    F = np.stack([np.eye(2), np.diag([1.01, 1.0])])
    result = model.evaluate({"deformation_gradient": F}, {}, tangents=False)
    errors = result.standard_errors["stress"]
    assert np.all(errors[:, 0, 0] > 0)
    # the tensile strain raises P_xx by much more than its noise
    rise = result.outputs["stress"][1, 0, 0] - result.outputs["stress"][0, 0, 0]
    assert rise > 3 * errors[:, 0, 0].max()
    bad = np.stack([np.eye(2), np.diag([1.0, -1.0])])
    with pytest.raises(MicroSolveError, match="det F > 0") as info:
        LJStressModel("triangular").evaluate({"deformation_gradient": bad}, {})
    assert info.value.point == 1
    squeezed = np.stack([np.eye(2), np.eye(2), np.diag([0.5, 1.0])])
    with pytest.raises(MicroSolveError, match="box too small for the cutoff") as info:
        LJStressModel("triangular").evaluate({"deformation_gradient": squeezed}, {})
    assert info.value.point == 2


def test_finite_temperature_boxes_are_batched_and_independent_of_each_other():
    """All boxes of an evaluation run in one engine call: point 0's stress is the same whether
    it is evaluated alone or with others (its noise comes from its own seed), fresh models with
    the same seed reproduce each other, and a second evaluation draws new noise."""
    options = {"temperature": 0.05, "steps": 500, "equilibration": 100, "seed": 7}
    F = np.stack([np.eye(2), np.diag([1.01, 0.99]), np.eye(2) + 0.01 * np.ones((2, 2))])
    together = LJStressModel("triangular", **options).evaluate({"deformation_gradient": F}, {})
    alone_model = LJStressModel("triangular", **options)
    alone = alone_model.evaluate({"deformation_gradient": F[:1]}, {})
    assert np.array_equal(together.outputs["stress"][0], alone.outputs["stress"][0])
    assert np.array_equal(
        together.tangents["stress", "deformation_gradient"][0],
        alone.tangents["stress", "deformation_gradient"][0],
    )
    again = alone_model.evaluate({"deformation_gradient": F[:1]}, {}, tangents=False)
    assert not np.array_equal(again.outputs["stress"][0], alone.outputs["stress"][0])
    assert alone_model.statistics.micro_solves == (1 + 8) + 1
    for model in (alone_model, LJStressModel("triangular")):  # a rank without points
        empty = model.evaluate({"deformation_gradient": np.zeros((0, 2, 2))}, {})
        assert empty.outputs["stress"].shape == (0, 2, 2)
        assert empty.tangents["stress", "deformation_gradient"].shape == (0, 2, 2, 2, 2)


@pytest.mark.slow
def test_noisy_md_stalls_newton_and_the_regression_surrogate_restores_quadratic_convergence():
    """T = 0.1, 1 % stretch, zero-pressure lattice at T. Raw MD stresses (fresh noise at every
    evaluation, tangent from common-random-number differences): without the noise rule the
    residual stalls at the noise level after one step (measured 0.86 → 0.061, 0.054, 0.042,
    0.063, …), which is the predicted σ_F; the noise rule stops there. The hyperelastic
    regression surrogate of the same MD: 0.87 → 9.3e-4 → 1.6e-7 → 9e-15 (quadratic)."""
    from fe2hmm.errors import NewtonConvergenceError
    from fe2hmm.micro.particles.md import thermal_lattice_constant
    from fe2hmm.reuse.regression import HyperelasticRegressionModel

    a, _, _ = thermal_lattice_constant("triangular", 2.5, 0.1, (6, 4), steps=4000, blocks=10)
    options = {"temperature": 0.1, "a": a, "cells": (6, 4), "steps": 4000, "blocks": 10}
    # the noise rule off: Newton chases the noise and stalls at its level
    newton, _ = _stretched_square(
        LJStressModel("triangular", **options), 0.01, max_iterations=5, noise_tolerance=0
    )
    with pytest.raises(NewtonConvergenceError) as info:
        newton.solve()
    norms = np.array(info.value.residual_norms)
    noise = np.array(info.value.noise_norms)
    assert np.all(norms[1:] > 1e-2 * norms[0]), norms  # stuck at the noise floor
    # ... and the floor is the predicted residual noise σ_F (E|F|² = σ_F² at the solution)
    assert np.all((norms[1:] > 0.2 * noise[1:]) & (norms[1:] < 5.0 * noise[1:])), (norms, noise)
    # the default rule stops there instead: converged within the noise after one step
    newton, _ = _stretched_square(LJStressModel("triangular", **options), 0.01, max_iterations=5)
    result = newton.solve()
    assert result.converged and result.iterations <= 2, result.residual_norms
    assert result.residual_norms[-1] <= 2.0 * result.noise_norms[-1]
    surrogate = HyperelasticRegressionModel(
        LJStressModel("triangular", **options), 0.015, degree=4, samples=64
    )
    newton, _ = _stretched_square(surrogate, 0.01)
    result = newton.solve()
    r = np.array(result.residual_norms)
    assert result.converged and r[-1] < 1e-12 and len(r) <= 6, r
    assert np.all((r[1:] * r[0])[r[1:] > 1e-11 * r[0]] <= 100 * r[:-1][r[1:] > 1e-11 * r[0]] ** 2)
    assert surrogate.chi2 < 2.5
