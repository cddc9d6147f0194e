"""fe2hmm.macro.continuation: pseudo-arclength continuation through folds.

The Bratu problem -Δu = λ eᵘ, u = 0 on ∂Ω: in 1D the exact branch
u(x) = 2 ln[cosh(θ/4) / cosh((x - 1/2) θ/2)], λ = θ² / (2 cosh²(θ/4)) with the fold at
θ tanh(θ/4) = 4, λ_c = 3.513830719…; on the unit square the published λ_c = 6.808124423
(Mohsen 2014; 6.80812 in Boyd 1986). A Dirichlet parameter, a closure with history, the
stopping rules and bad input (also run under ``mpiexec -n 2``).
"""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import same_function_values
from dolfinx import fem
from dolfinx import mesh as dmesh
from scipy.optimize import brentq
from ufl.algorithms.analysis import extract_constants

from fe2hmm.closure import Closure
from fe2hmm.errors import NewtonConvergenceError
from fe2hmm.macro import (
    ContinuationResult,
    Dirichlet,
    MacroProblem,
    SteadyDiffusion,
    continuation,
)
from fe2hmm.micro.interface import MicroResult, StatefulMicroModel

pytestmark = pytest.mark.mpi

THETA_C = brentq(lambda t: t * np.tanh(t / 4.0) - 4.0, 1.0, 10.0, xtol=1e-15)
LAMBDA_C_1D = THETA_C**2 / (2.0 * np.cosh(THETA_C / 4.0) ** 2)  # 3.5138307191251…
UMAX_C_1D = 2.0 * np.log(np.cosh(THETA_C / 4.0))  # 1.1868421…
LAMBDA_C_2D = 6.808124423  # Mohsen (2014), the unit square


def _lambda_of_umax(m):
    """The exact 1D branch parametrised by its maximum u(1/2) = m (both branches)."""
    theta = 4.0 * np.arccosh(np.exp(np.asarray(m) / 2.0))
    return theta**2 / (2.0 * np.cosh(theta / 4.0) ** 2)


def _max(problem):
    values = problem.u.x.array
    return problem.mesh.comm.allreduce(values.max() if values.size else -np.inf, op=MPI.MAX)


def _bratu(mesh, degree=2, source=None):
    V = fem.functionspace(mesh, ("Lagrange", degree))
    u, v = fem.Function(V), ufl.TestFunction(V)
    lam = fem.Constant(mesh, 0.0)
    rate = ufl.exp(u) if source is None else source
    F = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - lam * rate * v * ufl.dx
    return MacroProblem(F, u, [Dirichlet(0.0)]), lam


def test_bratu_1d_fold_and_both_branches_match_the_exact_solution():
    """P2 on 32 cells: the fold is found within 1e-6 of λ_c (measured 3.3e-7; the fold error
    falls as h⁴: 7.8e-5, 5.3e-6, 3.3e-7, 2.1e-8 on 8…64 cells, see the slow test), located to
    |dλ/ds| <= 1e-8. The branch goes on past it: λ falls while max u grows, and every point
    lies on the exact branch of its max u (λ within 1e-5 up to max u = 6; measured 1.2e-6)."""
    mesh = dmesh.create_interval(MPI.COMM_WORLD, 32, [0.0, 1.0])
    problem, lam = _bratu(mesh)
    result = continuation(problem, lam, 0.0, 10.0, step=0.5, max_points=25, monitor=_max)
    assert isinstance(result, ContinuationResult) and result.reason == "max_points"
    assert len(result.points) == 25 and len(result.folds) == 1
    fold = result.folds[0]
    assert fold.converged and abs(fold.tangent) <= 1e-8
    assert abs(fold.parameter - LAMBDA_C_1D) < 1e-6, fold.parameter - LAMBDA_C_1D
    assert abs(fold.monitor - UMAX_C_1D) < 1e-6, fold.monitor - UMAX_C_1D  # measured 2.1e-7
    after = result.points[fold.after + 1 :]
    assert len(after) > 5 and all(p.tangent < 0 for p in after)
    assert np.all(np.diff([p.parameter for p in after]) < 0)
    assert np.all(np.diff([p.monitor for p in after]) > 0)
    assert result.monitors[-1] > 6.0
    lam_c = result.parameters[fold.after], result.parameters[fold.after + 1]
    assert min(lam_c) < fold.parameter and max(lam_c) < fold.parameter  # the fold is a maximum
    shown = result.monitors < 6.0
    np.testing.assert_allclose(
        result.parameters[shown], _lambda_of_umax(result.monitors[shown]), atol=1e-5
    )
    assert np.all(np.diff([p.arclength for p in result.points]) > 0)


def test_bratu_2d_unit_square_fold():
    """P2 on a 16×16 unit square: λ_c within 2e-4 of 6.808124423 (measured 8.7e-5; 1.4e-3 on
    8×8, 5.5e-6 on 32×32: h⁴, and Richardson's extrapolation of 16 and 32 gives 6.8081245)."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 16, 16)
    problem, lam = _bratu(mesh)
    result = continuation(problem, lam, 0.0, 10.0, step=0.5, max_points=16, monitor=_max)
    assert len(result.folds) == 1 and result.folds[0].converged
    assert abs(result.folds[0].parameter - LAMBDA_C_2D) < 2e-4, result.folds[0].parameter
    assert result.points[-1].parameter < result.folds[0].parameter - 0.2  # the upper branch
    assert result.points[-1].monitor > 1.25 * result.folds[0].monitor


@pytest.mark.slow
def test_bratu_fold_converges_as_h4():
    """The fold of the P2 discretisation converges to the exact/published λ_c as h⁴ (ratios
    15–16 measured in 1D and 2D); the finest errors are 2.1e-8 (1D, 64 cells) and 5.5e-6 (2D,
    32×32)."""
    for build, exact, sizes, finest in (
        (lambda n: dmesh.create_interval(MPI.COMM_WORLD, n, [0.0, 1.0]), LAMBDA_C_1D,
         (16, 32, 64), 5e-8),
        (lambda n: dmesh.create_unit_square(MPI.COMM_WORLD, n, n), LAMBDA_C_2D,
         (8, 16, 32), 1e-5),
    ):  # fmt: skip
        errors = []
        for n in sizes:
            problem, lam = _bratu(build(n))
            result = continuation(problem, lam, 0.0, 10.0, step=0.5, max_points=12)
            errors.append(abs(result.folds[0].parameter - exact))
        ratios = np.array(errors[:-1]) / np.array(errors[1:])
        assert errors[-1] < finest and np.all(ratios > 12.0), (errors, ratios)


def test_a_dirichlet_parameter_and_landing_on_stop():
    """-u'' = eᵘ with u = λ on both ends is Bratu with μ = e^λ (w = u - λ): the fold lies at
    λ = ln λ_c. The parameter enters only through the Dirichlet values (∂G/∂λ from the lifted
    residual); the upper branch comes back past the start (μ -> 0). Stopping at λ = 1 lands
    there exactly, on the exact lower branch."""
    mesh = dmesh.create_interval(MPI.COMM_WORLD, 32, [0.0, 1.0])
    V = fem.functionspace(mesh, ("Lagrange", 2))
    u, v = fem.Function(V), ufl.TestFunction(V)
    lam = fem.Constant(mesh, 0.0)
    F = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - ufl.exp(u) * v * ufl.dx
    problem = MacroProblem(F, u, [Dirichlet(lam)])
    result = continuation(problem, lam, -1.0, 3.0, step=0.2, max_points=30, monitor=_max)
    assert len(result.folds) == 1
    assert abs(result.folds[0].parameter - np.log(LAMBDA_C_1D)) < 1e-6  # measured 9.4e-8
    # on the upper branch μ = e^λ -> 0, so λ comes back below the start
    assert result.reason == "start" and result.points[-1].parameter < -1.0
    assert result.points[-1].monitor > result.folds[0].monitor

    u.x.array[:] = 0.0
    result = continuation(problem, lam, -1.0, 1.0, step=0.3, monitor=_max)
    assert result.reason == "stop" and not result.folds
    assert result.points[-1].parameter == 1.0 and float(lam.value) == 1.0
    mu = np.exp(1.0)  # w'' + μ eʷ = 0: the lower branch of μ, max u = 1 + max w
    theta = brentq(lambda t: t - np.sqrt(2 * mu) * np.cosh(t / 4), 0.0, THETA_C)
    landed = result.points[-1].monitor - (1.0 + 2.0 * np.log(np.cosh(theta / 4)))
    assert abs(landed) < 1e-6, landed  # measured 1.9e-8


class ExpRate(StatefulMicroModel):
    """eᵘ and its tangent as a micro-model with a (trivial) history that counts its protocol."""

    input_shapes = {"u": ()}
    output_shapes = {"rate": ()}

    def __init__(self):
        super().__init__()
        self.commits = self.rollbacks = 0

    def evaluate(self, inputs, parameters, *, tangents=True):
        rate = np.exp(inputs["u"])
        result = MicroResult({"rate": rate})
        if tangents:
            result.tangents["rate", "u"] = rate.copy()
        return result

    def commit(self):
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1


def test_a_closure_is_updated_at_every_iterate_and_its_history_committed_per_point():
    """Bratu with eᵘ from a micro-model through a closure follows the same points as the UFL
    form on the closure's quadrature rule (λ and the monitor to 1e-9: the same iterates up to
    round-off), which requires the closure update before every residual assembly and the
    chain-rule Jacobian. The history is committed once per accepted point."""
    mesh = dmesh.create_interval(MPI.COMM_WORLD, 16, [0.0, 1.0])
    model = ExpRate()
    V = fem.functionspace(mesh, ("Lagrange", 2))
    u, v = fem.Function(V), ufl.TestFunction(V)
    closure = Closure(model, mesh, {"u": u}, quadrature_degree=4)
    lam = fem.Constant(mesh, 0.0)
    F = ufl.inner(ufl.grad(u), ufl.grad(v)) * closure.dx - lam * closure.outputs["rate"] * v * (
        closure.dx
    )
    fe2 = MacroProblem(F, u, [Dirichlet(0.0)], [closure])
    assert fe2.histories == [model]
    reference, lam_ref = _bratu(mesh)
    reference.F = (
        ufl.inner(ufl.grad(reference.u), ufl.grad(reference.v)) * closure.dx
        - lam_ref * ufl.exp(reference.u) * reference.v * closure.dx
    )
    kwargs = {"step": 0.5, "max_points": 12, "monitor": _max}
    a = continuation(fe2, lam, 0.0, 10.0, **kwargs)
    b = continuation(reference, lam_ref, 0.0, 10.0, **kwargs)
    assert len(a.folds) == len(b.folds) == 1
    np.testing.assert_allclose(a.parameters, b.parameters, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.monitors, b.monitors, rtol=1e-9)
    assert abs(a.folds[0].parameter - b.folds[0].parameter) < 1e-9
    assert model.commits == len(a.points)


def test_the_step_falls_below_min_step_with_the_points_so_far():
    """A corrector allowed one iteration cannot converge on a step of this size: the step is
    halved down to min_step, then NewtonConvergenceError carries the result so far and u keeps
    the last point."""
    mesh = dmesh.create_interval(MPI.COMM_WORLD, 8, [0.0, 1.0])
    problem, lam = _bratu(mesh, degree=1)
    with pytest.raises(NewtonConvergenceError, match="fell below min_step") as info:
        continuation(problem, lam, 0.0, 3.0, step=1.0, min_step=0.25, max_iterations=1)
    assert "\n" not in str(info.value)
    result = info.value.result
    assert len(result.points) == 1 and result.points[0].parameter == 0.0
    assert float(lam.value) == 0.0 and np.allclose(problem.u.x.array, 0.0)


def _one_line(info):
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda p, c: continuation("p", c, 0.0, 1.0), TypeError,
         "problem must be a MacroProblem, got str"),
        (lambda p, c: continuation(p, 1.0, 0.0, 1.0), TypeError,
         "parameter must be a dolfinx.fem.Constant, got float"),
        (lambda p, c: continuation(p, fem.Constant(p.mesh, 1.0), 0.0, 1.0), ValueError,
         "the parameter appears neither in the residual nor as a Dirichlet value"),
        (lambda p, c: continuation(p, fem.Constant(p.mesh, (1.0, 2.0)), 0.0, 1.0), ValueError,
         r"parameter must be a scalar Constant, got shape \(2,\)"),
        (lambda p, c: continuation(p, c, 1.0, 1.0), ValueError,
         "stop must differ from start"),
        (lambda p, c: continuation(p, c, 0.0, float("inf")), ValueError,
         "stop must be finite"),
        (lambda p, c: continuation(p, c, 0.0, 1.0, step=-0.1), ValueError,
         "step must be > 0, got -0.1"),
        (lambda p, c: continuation(p, c, 0.0, 1.0, step=0.1, max_step=0.05), ValueError,
         "need min_step <= step <= max_step"),
        (lambda p, c: continuation(p, c, 0.0, 1.0, max_points=0), ValueError,
         "max_points must be an integer >= 1, got 0"),
        (lambda p, c: continuation(p, c, 0.0, 1.0, max_angle=90), ValueError,
         r"max_angle must be in \(0, 90\) degrees"),
        (lambda p, c: continuation(p, c, 0.0, 1.0, monitor=3), TypeError,
         "monitor must be callable, got int"),
        (lambda p, c: continuation(p, c, 0.0, 1.0, histories=[1]), TypeError,
         r"histories\[0\] is a int, not a fe2hmm Stateful"),
    ],
)  # fmt: skip
def test_bad_input_is_named_in_one_line(call, error, match):
    mesh = dmesh.create_interval(MPI.COMM_WORLD, 4, [0.0, 1.0])
    problem, lam = _bratu(mesh, degree=1)
    with pytest.raises(error, match=match) as info:
        call(problem, lam)
    _one_line(info)
    assert problem._newton is None  # no work done


def test_another_solver_is_refused():
    from fe2hmm.macro.snes import SNESSolver

    mesh = dmesh.create_interval(MPI.COMM_WORLD, 4, [0.0, 1.0])
    lam = fem.Constant(mesh, 1.0)
    problem = SteadyDiffusion(
        mesh, lambda g: -g, source=lam, bcs=[Dirichlet(0.0)], solver=SNESSolver
    )
    with pytest.raises(NotImplementedError, match="works on fe2hmm's NewtonSolver") as info:
        continuation(problem, lam, 0.0, 1.0)
    _one_line(info)
    problem.newton.destroy()


def test_a_branch_interrupted_and_resumed_from_a_checkpoint_is_the_same_branch(tmp_path):
    """Bratu 1D through its fold with a checkpoint, interrupted after point 12 (an exception in
    after_point, before that point is saved): fresh objects restored from the folder finish
    the branch with bitwise the points, the fold (and its state) and the final u of an
    uninterrupted run; a finished branch restores as it was."""
    folder = MPI.COMM_WORLD.bcast(str(tmp_path / "ckpt"), root=0)

    def follow(after_point=None):
        mesh = dmesh.create_interval(MPI.COMM_WORLD, 16, [0.0, 1.0])
        problem, lam = _bratu(mesh)
        ckpt = problem.checkpoint(folder)
        ckpt.restore()
        result = continuation(
            problem, lam, 0.0, 10.0, step=0.5, max_points=20, monitor=_max,
            after_point=after_point, checkpoint=ckpt,
        )  # fmt: skip
        return problem, result

    mesh = dmesh.create_interval(MPI.COMM_WORLD, 16, [0.0, 1.0])
    plain, lam = _bratu(mesh)
    expected = continuation(plain, lam, 0.0, 10.0, step=0.5, max_points=20, monitor=_max)

    def interrupt(point):
        if point.arclength > 0 and len(seen) == 12:
            raise KeyboardInterrupt("killed")
        seen.append(point)

    seen = []
    with pytest.raises(KeyboardInterrupt):
        follow(interrupt)
    problem, result = follow()
    assert result.reason == expected.reason == "max_points"
    assert result.points == expected.points and len(result.folds) == len(expected.folds) == 1
    a, b = result.folds[0], expected.folds[0]
    assert (a.parameter, a.monitor, a.tangent, a.after) == (
        b.parameter,
        b.monitor,
        b.tangent,
        b.after,
    )
    assert np.array_equal(a.state, b.state)
    assert same_function_values(problem.u, plain.u)
    finished, again = follow()  # finished: nothing more to do, the last point restored
    assert again.points == expected.points
    lam_of = [c for c in extract_constants(finished.F) if np.shape(c.value) == ()]
    assert [float(c.value) for c in lam_of] == [expected.points[-1].parameter]
