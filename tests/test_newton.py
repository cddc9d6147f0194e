"""Macro Newton: stopping within the noise of stochastic closures; the history protocol."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from test_quadrature import NoisyConductor

from fe2hmm.closure import Closure
from fe2hmm.errors import NewtonConvergenceError
from fe2hmm.micro.interface import Stateful
from fe2hmm.newton import NewtonSolver, solve_incrementally
from fe2hmm.timestepping import march


def _poisson(model, n=8, **options):
    """-div q = 1 on the unit square, T = 0 on the boundary, q from ``model``."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T, v = fem.Function(V), ufl.TestFunction(V)
    closure = Closure(model, mesh, {"gradient": ufl.grad(T)})
    F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx - v * closure.dx
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.full(x.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    return NewtonSolver(F, T, [bc], [closure], **options), closure


@pytest.mark.mpi
def test_noise_norm_is_the_expected_residual_noise():
    """At the noise-free solution F = B ξ s exactly (B = ∂F/∂q): E|F|² = σ_F². Checked against
    400 independent evaluations to 4 standard errors of the sample mean (seeded)."""
    newton, closure = _poisson(NoisyConductor(0.0))
    newton.solve()  # the exact discrete solution of the noise-free problem
    closure.model.noise = 0.05
    closure.model.rng = np.random.default_rng(MPI.COMM_WORLD.rank + 7)
    squares = []
    for _ in range(400):
        closure.update()
        squares.append(newton._residual() ** 2)
    sigma = newton.noise_norm()
    squares = np.array(squares)
    mean, sem = squares.mean(), squares.std(ddof=1) / np.sqrt(squares.size)
    assert sigma > 0
    assert abs(mean - sigma**2) < 4 * sem, (mean, sigma**2, sem)


@pytest.mark.mpi
def test_newton_stops_within_the_noise_instead_of_chasing_it():
    newton, _ = _poisson(NoisyConductor(0.05, seed=MPI.COMM_WORLD.rank), max_iterations=8)
    result = newton.solve()
    assert result.converged and result.iterations <= 2, result.residual_norms
    assert result.residual_norms[-1] <= 2.0 * result.noise_norms[-1]
    assert len(result.noise_norms) == len(result.residual_norms)
    # with the rule switched off the same problem cannot converge: the residual stays at the
    # noise (|F| ≈ σ_F, far above atol = 1e-12)
    chasing, _ = _poisson(
        NoisyConductor(0.05, seed=MPI.COMM_WORLD.rank), max_iterations=4, noise_tolerance=0
    )
    with pytest.raises(NewtonConvergenceError, match="noise") as info:
        chasing.solve()
    norms, noise = np.array(info.value.residual_norms), np.array(info.value.noise_norms)
    assert np.all(norms[1:] > 0.3 * noise[1:]), (norms, noise)


def test_deterministic_closures_have_no_noise_rule():
    newton, closure = _poisson(NoisyConductor(0.0))
    closure.model.is_stochastic = False  # the instance, after the closure was built with errors
    result = newton.solve()
    assert result.converged and result.iterations == 1
    assert newton.noise_norm() == 0.0  # the standard errors are all zero
    with pytest.raises(ValueError, match="noise_tolerance must be a finite number >= 0"):
        _poisson(NoisyConductor(0.0), noise_tolerance=-1.0)


def test_histories_must_follow_the_stateful_protocol():
    newton, _ = _poisson(NoisyConductor(0.0))

    class DuckTyped:
        def commit(self):
            pass

        def rollback(self):
            pass

    with pytest.raises(TypeError, match=r"histories\[0\] is a DuckTyped, not a fe2hmm Stateful"):
        solve_incrementally(newton, lambda t: None, [1.0], histories=[DuckTyped()])

    class Counter(Stateful):
        def commit(self):
            pass

        def rollback(self):
            pass

    with pytest.raises(TypeError, match=r"histories\[1\] is a int"):
        march(newton, fem.Function(newton.u.function_space), [0.0, 1.0], histories=[Counter(), 3])
