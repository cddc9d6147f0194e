"""Finite-strain neo-Hookean cell problems and nonlinear FE² with the condensed tangent."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm import rve
from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.cells.elasticity import homogenize_elasticity, lame_parameters, voigt_to_tensor
from fe2hmm.micro.cells.hyperelastic import (
    HyperelasticCellModel,
    HyperelasticCellProblem,
    neo_hookean_stress,
)
from fe2hmm.newton import NewtonSolver

M1, M2 = (1.0, 0.3), (10.0, 0.2)
F_BAR = np.array([[1.1, 0.05], [-0.02, 0.95]])


@pytest.fixture(scope="module")
def cell():
    return rve.create("circle", volume_fraction=0.3, resolution=12)


def test_homogeneous_cell_returns_the_constitutive_law(cell):
    P, A, w, iterations = HyperelasticCellProblem(cell, {1: M1, 2: M1}).solve(F_BAR)
    np.testing.assert_allclose(P, neo_hookean_stress(F_BAR, *lame_parameters(*M1)), atol=1e-12)
    assert np.abs(w).max() < 1e-12 and iterations == 0


def test_condensed_tangent_equals_finite_difference_of_average_stress(cell):
    problem = HyperelasticCellProblem(cell, {1: M1, 2: M2})
    P, A, w, iterations = problem.solve(F_BAR)
    assert 1 <= iterations <= 8
    h = 1e-6
    A_fd = np.zeros((2, 2, 2, 2))
    for i in range(2):
        for j in range(2):
            dF = np.zeros((2, 2))
            dF[i, j] = h
            A_fd[:, :, i, j] = (
                problem.solve(F_BAR + dF, w)[0] - problem.solve(F_BAR - dF, w)[0]
            ) / (2 * h)
    # central differences: O(h^2) truncation + O(eps/h) round-off ~ 1e-10 relative
    assert np.abs(A - A_fd).max() < 1e-7 * np.abs(A).max()


def test_small_strain_limit_is_the_linear_cell_problem(cell):
    P0, A0, _, _ = HyperelasticCellProblem(cell, {1: M1, 2: M2}).solve(np.eye(2))
    C = voigt_to_tensor(homogenize_elasticity(cell, {1: M1, 2: M2}).effective_tensor)
    assert np.abs(P0).max() < 1e-14
    np.testing.assert_allclose(A0, C, atol=1e-10 * np.abs(C).max())


def test_inverted_macro_deformation_is_a_micro_solve_error(cell):
    with pytest.raises(MicroSolveError, match="det F"):
        HyperelasticCellProblem(cell, {1: M1, 2: M2}).solve(np.diag([1.0, -0.5]))


def _macro(comm, model):
    mesh = dmesh.create_rectangle(comm, [[0, 0], [2, 1]], [8, 4])
    V = fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    left = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.isclose(x[0], 0.0))
    right = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.isclose(x[0], 2.0))
    bcs = [
        fem.dirichletbc(np.zeros(2), fem.locate_dofs_topological(V, 1, left), V),
        fem.dirichletbc(np.array([0.3, 0.0]), fem.locate_dofs_topological(V, 1, right), V),
    ]
    u = fem.Function(V)
    v = ufl.TestFunction(V)
    closure = Closure(
        model,
        mesh,
        {"F": ufl.Identity(2) + ufl.grad(u)},
        {"volume_fraction": 0.3},
        quadrature_degree=1,
    )
    F = ufl.inner(closure.outputs["P"], ufl.grad(v)) * closure.dx
    return mesh, V, u, v, bcs, closure, F


@pytest.mark.mpi
def test_nonlinear_fe2_homogeneous_cells_equal_single_scale_and_converge_quadratically():
    model = HyperelasticCellModel(rve="circle", matrix=M1, inclusion=M1, resolution=8)
    mesh, V, u, v, bcs, closure, F = _macro(MPI.COMM_WORLD, model)
    result = NewtonSolver(F, u, bcs, [closure], rtol=1e-12, petsc_options_prefix="hfe2_").solve()
    assert result.converged

    lam, mu = lame_parameters(*M1)
    U = fem.Function(V)
    Fd = ufl.variable(ufl.Identity(2) + ufl.grad(U))
    J = ufl.det(Fd)
    psi = mu / 2 * (ufl.tr(Fd.T * Fd) - 2 - 2 * ufl.ln(J)) + lam / 2 * ufl.ln(J) ** 2
    F_ref = ufl.inner(ufl.diff(psi, Fd), ufl.grad(v)) * closure.dx
    ref = NewtonSolver(F_ref, U, bcs, [], rtol=1e-12, petsc_options_prefix="href_").solve()
    assert result.iterations == ref.iterations
    np.testing.assert_allclose(result.residual_norms[:3], ref.residual_norms[:3], rtol=1e-6)
    err = mesh.comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(u - U, u - U) * ufl.dx)))
    nrm = mesh.comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(U, U) * ufl.dx)))
    assert np.sqrt(err / nrm) < 1e-9


def test_nonlinear_fe2_heterogeneous_quadratic_convergence():
    model = HyperelasticCellModel(rve="circle", matrix=M1, inclusion=M2, resolution=8)
    _, _, u, _, bcs, closure, F = _macro(MPI.COMM_SELF, model)
    # the macro residual cannot go below the micro Newton tolerance (~1e-11 here): rtol 1e-9
    result = NewtonSolver(F, u, bcs, [closure], rtol=1e-9, petsc_options_prefix="hhet_").solve()
    r = np.array(result.residual_norms)
    assert result.converged and result.iterations <= 8, r
    tail = [(a, b) for a, b in zip(r, r[1:], strict=False) if a < 1e-2 and b > 1e-10]
    assert tail and all(b <= 10.0 * a**2 for a, b in tail), r
    # one distinct (F, phi) per quadrature point and iteration at most
    assert model.statistics.micro_solves <= closure.num_points * (result.iterations + 1)


@pytest.mark.mpi
def test_failed_micro_solve_names_macro_point():
    model = HyperelasticCellModel(rve="circle", matrix=M1, inclusion=M2, resolution=6)
    mesh, V, u, v, bcs, closure, F = _macro(MPI.COMM_WORLD, model)
    # a displacement that inverts the material (det F < 0) where x > 1.5
    u.interpolate(lambda x: np.vstack([np.where(x[0] > 1.5, -2.0 * (x[0] - 1.5), 0.0), 0 * x[1]]))
    with pytest.raises(MicroSolveError) as info:
        closure.update()
    err = info.value
    if err.coordinates is not None:
        assert err.coordinates[0] > 1.5 and "det F" in str(err)
    else:
        assert "other rank" in str(err)
