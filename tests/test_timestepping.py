"""Macro time stepping (`fe2hmm.timestepping.march`): orders of the schemes with the
micro-transient closure, history commit/rollback, and input validation."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import MaxwellGarnett
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError
from fe2hmm.macro import Dirichlet, TransientDiffusion
from fe2hmm.micro.cells.transient import TransientDiffusionCellModel
from fe2hmm.micro.interface import Stateful
from fe2hmm.newton import NewtonSolver
from fe2hmm.timestepping import march

PERIOD = 0.4  # of the boundary heating (s), as in demos/transient_conduction.py


def _cell(scheme):
    """Fibre fraction 0.4 (conductivity 10 / 1, storage 1) in circle cells."""
    return TransientDiffusionCellModel(
        "circle", matrix=(1.0, 1.0), inclusion=(10.0, 1.0), scheme=scheme, resolution=8
    )


def _heat_uptake(model, dt, nx=16):
    """The bar (0, 1) x (0, 1/16) of the transient demo over one heating period: T(0, t) =
    sin^4(pi t / PERIOD), T(1, t) = 0; returns the final heat uptake and the Newton counts."""
    mesh = dmesh.create_rectangle(
        MPI.COMM_WORLD, [[0.0, 0.0], [1.0, 1.0 / 16]], [nx, 1], dmesh.CellType.triangle
    )
    left = fem.Constant(mesh, 0.0)
    problem = TransientDiffusion(
        mesh,
        model,
        dt=dt,
        parameters={"volume_fraction": 0.4},
        bcs=[
            Dirichlet(left, lambda x: np.isclose(x[0], 0.0)),
            Dirichlet(0.0, lambda x: np.isclose(x[0], 1.0)),
        ],
    )

    def before(t_old, t_new):
        left.value = np.sin(np.pi * t_new / PERIOD) ** 4

    steps = problem.march(np.linspace(0.0, PERIOD, round(PERIOD / dt) + 1), before)
    return problem.functional(problem.storage * problem.T)(), [s.iterations for s in steps]


@pytest.mark.parametrize("scheme,expected", [("backward_euler", 1.0), ("crank_nicolson", 2.0)])
def test_time_scheme_orders_with_the_memory_closure(scheme, expected):
    """Self-convergence of the heat uptake after one heating period under step halving (20 to
    320 steps; the cell's relaxation time equals the coarsest step, so the memory terms are
    active). Tolerance ±0.15 on the order from the two finest differences: the BE estimate
    approaches 1 from below (0.71, 0.86, 0.93 over the levels)."""
    base = PERIOD / 20
    reference = _cell(scheme)
    cell_size = np.sqrt(base / reference.relaxation_time(0.4))  # tau_relax = base
    heats = []
    for level in range(5):
        model = _cell(scheme)
        model.cell_size = cell_size
        heat, iterations = _heat_uptake(model, base / 2**level)
        heats.append(heat)
        assert all(i == 1 for i in iterations)  # linear closure
    diffs = np.abs(np.diff(heats))
    order = np.log2(diffs[-2] / diffs[-1])
    assert abs(order - expected) < 0.15, (heats, order)


class Spy(Stateful):
    def __init__(self):
        self.commits = self.rollbacks = 0

    def commit(self):
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1


def test_failed_step_rolls_back_histories_and_keeps_the_last_state():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T, T_n, v = fem.Function(V), fem.Function(V), ufl.TestFunction(V)
    model = MaxwellGarnett(fail_above=0.5)
    closure = Closure(model, mesh, {"gradient": ufl.grad(T)}, {"volume_fraction": 0.2})
    q = closure.outputs["flux"]
    dt = fem.Constant(mesh, 0.1)
    F = (T - T_n) / dt * v * closure.dx - ufl.dot(q, ufl.grad(v)) * closure.dx - v * closure.dx
    newton = NewtonSolver(F, T, closures=[closure], petsc_options_prefix="march_test_")
    spy = Spy()
    seen = []

    def before(t_old, t_new):
        if t_new > 0.25:
            closure.set_parameter("volume_fraction", 0.8)  # the "cell solver" now diverges

    with pytest.raises(MicroSolveError, match="diverged"):
        march(newton, T_n, [0.0, 0.1, 0.2, 0.3], before, [spy], seen.append)
    assert (spy.commits, spy.rollbacks) == (2, 1)
    assert [round(s.time, 12) for s in seen] == [0.1, 0.2]
    # u_n holds the state after the last converged step: T = 0.2 everywhere (source 1, no BCs)
    assert np.allclose(T_n.x.array, 0.2, atol=1e-10)


def test_times_are_validated():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    T, v = fem.Function(V), ufl.TestFunction(V)
    newton = NewtonSolver(T * v * ufl.dx, T, petsc_options_prefix="march_times_")
    with pytest.raises(ValueError, match="at least two"):
        march(newton, fem.Function(V), [0.0])
    with pytest.raises(ValueError, match=r"t\[1\]=0.2 >= t\[2\]=0.1"):
        march(newton, fem.Function(V), [0.0, 0.2, 0.1])
