"""MacroProblem used directly (fe2hmm.macro.problem): a residual of one's own, its solve,
functionals and reactions against exact values; the shared solver keywords."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from test_macro_diffusion import CubicFlux

from fe2hmm.closure import Closure
from fe2hmm.macro import (
    Dirichlet,
    MacroProblem,
    SteadyDiffusion,
    check_solver_options,
)
from fe2hmm.newton import NewtonSolver


def test_a_residual_of_ones_own_is_solved_exactly():
    """-Δu = 2 on the unit square with u = x(1 − x) on the boundary: P2 holds the solution, so
    the solve, the functional ∫u = 1/6 and the reaction Σ_boundary F_i = ∫Δu = −2 (interior
    residuals vanish, Σφ_i = 1) are exact up to round-off (1e-12 relative)."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    V = fem.functionspace(mesh, ("Lagrange", 2))
    u, v = fem.Function(V), ufl.TestFunction(V)
    F = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - 2.0 * v * ufl.dx
    problem = MacroProblem(F, u, [Dirichlet(lambda x: x[0] * (1.0 - x[0]))])
    result = problem.solve()
    assert result.converged and result.iterations == 1
    exact = fem.Function(V)
    exact.interpolate(lambda x: x[0] * (1.0 - x[0]))
    np.testing.assert_allclose(u.x.array, exact.x.array, atol=1e-12)
    assert problem.functional(u)() == pytest.approx(1.0 / 6.0, rel=1e-12)
    assert problem.reaction(0) == pytest.approx(-2.0, rel=1e-12)
    assert isinstance(problem.newton, NewtonSolver)


def test_a_closure_residual_takes_the_iterates_of_the_shipped_model():
    """The same residual written by hand (closure + default Jacobian with the chain-rule term)
    takes the same Newton iterates as SteadyDiffusion (residual norms to 1e-12 relative)."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 6, 6)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T, v = fem.Function(V), ufl.TestFunction(V)
    closure = Closure(CubicFlux(), mesh, {"gradient": ufl.grad(T)})
    q, dx = closure.outputs["flux"], closure.dx
    F = -ufl.inner(q, ufl.grad(v)) * dx - 4.0 * v * dx
    by_hand = MacroProblem(F, T, [Dirichlet(0.0)], [closure]).solve()
    shipped = SteadyDiffusion(mesh, CubicFlux(), source=4.0, bcs=[Dirichlet(0.0)]).solve()
    assert by_hand.converged and by_hand.iterations == shipped.iterations >= 3
    np.testing.assert_allclose(by_hand.residual_norms, shipped.residual_norms, rtol=1e-12)


def test_solver_options_defaults_and_checks():
    checked = check_solver_options({"rtol": 1e-8}, "Mine")
    assert checked == {
        "solver": NewtonSolver,
        "petsc_options": None,
        "petsc_options_prefix": None,
        "rtol": 1e-8,
        "atol": 1e-12,
        "max_iterations": 25,
    }
    assert check_solver_options({"max_iterations": 3.0}, "Mine")["max_iterations"] == 3
    bad = [
        ({"rtol": True}, ValueError, "Mine: rtol must be a finite number >= 0, got True"),
        ({"atol": float("nan")}, ValueError, "Mine: atol must be a finite number >= 0, got nan"),
        ({"max_iterations": 2.5}, ValueError, "Mine: max_iterations must be an integer >= 1"),
        ({"petsc_options_prefix": 3}, ValueError, "Mine: petsc_options_prefix must be a string"),
        ({"solver": "newton"}, TypeError, "Mine: solver must be a solver class, got str"),
        ({"linear_solver": "lu"}, TypeError, "Mine: unknown keyword argument 'linear_solver'"),
    ]
    for options, error, match in bad:
        with pytest.raises(error, match=match) as info:
            check_solver_options(options, "Mine")
        assert "\n" not in str(info.value)


def test_bad_pieces_are_named_before_any_work():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    u, v = fem.Function(V), ufl.TestFunction(V)
    F = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
    cases = [
        (lambda: MacroProblem(F, u.x.array), TypeError, "u must be a dolfinx.fem.Function"),
        (lambda: MacroProblem(F, u, [], ["closure"]), TypeError, r"closures\[0\] is a str"),
        (lambda: MacroProblem(F, u, [0.0]), TypeError, r"bcs\[0\] is a float"),
        (lambda: MacroProblem(F, u, rtol=-1.0), ValueError, "MacroProblem: rtol must be"),
    ]
    for build, error, match in cases:
        with pytest.raises(error, match=match):
            build()
