"""The macro solve through PETSc SNES: same iterates as the own Newton loop, errors, options."""

import gc

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from test_quadrature import NoisyConductor

from fe2hmm.closure import Closure
from fe2hmm.errors import MicroSolveError, NewtonConvergenceError
from fe2hmm.macro.snes import SNESSolver
from fe2hmm.micro.interface import MicroModel, MicroResult
from fe2hmm.newton import NewtonResult, NewtonSolver, solve_incrementally

# Both solvers assemble the same residual vector and Jacobian matrix (same forms, same dolfinx
# assemblers, same lifting) and solve with the same MUMPS factorisation, and both update
# u <- u - du: the arithmetic is the same, so the residual histories agree to round-off (they
# are measured bitwise equal here). 1e-10 relative leaves room for a different summation order
# (e.g. a MUMPS or BLAS build with threads) without hiding a different iterate, which would
# show at the 1e-2 level in the first steps of a quadratically converging Newton.
RTOL_NORMS = 1e-10


class CubicFlux(MicroModel):
    """q = -(1 + |g|²) g with its exact tangent dq/dg = -(1 + |g|²) I - 2 g⊗g.

    ``fail_calls``: the evaluations (1-based count over the model's life) at which it raises a
    MicroSolveError at local point 0 on rank ``fail_rank`` (like a diverging cell solver).
    """

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def __init__(self, fail_calls=(), fail_rank=0):
        super().__init__()
        self.calls = 0
        self.fail_calls, self.fail_rank = set(fail_calls), fail_rank

    def evaluate(self, inputs, parameters, *, tangents=True):
        self.calls += 1
        g = inputs["gradient"]
        if self.calls in self.fail_calls and MPI.COMM_WORLD.rank == self.fail_rank and len(g):
            raise MicroSolveError("cubic cell diverged", point=0)
        k = 1.0 + np.einsum("ni,ni->n", g, g)
        out = MicroResult({"flux": -k[:, None] * g})
        if tangents:
            out.tangents["flux", "gradient"] = -(
                k[:, None, None] * np.eye(2) + 2 * np.einsum("ni,nj->nij", g, g)
            )
        return out


def _problem(model, n=8):
    """-div q(grad u) = 10 on the unit square, u = 2x + y on the boundary."""
    domain = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    V = fem.functionspace(domain, ("Lagrange", 1))
    u, v = fem.Function(V), ufl.TestFunction(V)
    closure = Closure(model, domain, {"gradient": ufl.grad(u)}, quadrature_degree=2)
    load = fem.Constant(domain, 1.0)
    g = fem.Function(V)
    facets = dmesh.locate_entities_boundary(domain, 1, lambda x: np.full(x.shape[1], True))
    bc = fem.dirichletbc(g, fem.locate_dofs_topological(V, 1, facets))
    F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx
    F -= 10.0 * load * v * closure.dx

    def apply_load(t):
        load.value = t
        g.interpolate(lambda x: t * (2 * x[0] + x[1]))

    apply_load(1.0)
    return F, u, [bc], closure, apply_load


def _assert_same_norms(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a, b)
    np.testing.assert_allclose(a, b, rtol=RTOL_NORMS, atol=0)


@pytest.mark.mpi
def test_same_iterates_as_newton_solver():
    runs = {}
    for name, cls in (("newton", NewtonSolver), ("snes", SNESSolver)):
        model = CubicFlux()
        F, u, bcs, closure, _ = _problem(model)
        kwargs = {} if cls is SNESSolver else {"petsc_options_prefix": "test_snes_newton_"}
        result = cls(F, u, bcs, [closure], rtol=1e-12, atol=1e-13, **kwargs).solve()
        runs[name] = (result, u.x.array.copy(), model.calls)
    (rn, un, cn), (rs, us, cs) = runs["newton"], runs["snes"]
    assert isinstance(rs, NewtonResult) and rs.converged
    assert rs.iterations == rn.iterations >= 4  # genuinely nonlinear
    _assert_same_norms(rs.residual_norms, rn.residual_norms)
    assert cs == cn == rn.iterations + 1  # one closure update per iterate, no extra ones
    np.testing.assert_allclose(us, un, rtol=0, atol=1e-13 * np.abs(un).max())
    assert set(rs.seconds) == {"micro", "assemble", "solve"}
    assert len(rs.iteration_seconds) == rs.iterations + 1
    assert rs.noise_norms == rn.noise_norms == []  # deterministic closure: no noise rule


def _noisy_poisson(cls, seed, **options):
    """-div q = 1 on the unit square, T = 0 on the boundary, q = -∇T + 0.05 ξ (fresh noise)."""
    domain = dmesh.create_unit_square(MPI.COMM_WORLD, 8, 8)
    V = fem.functionspace(domain, ("Lagrange", 1))
    T, v = fem.Function(V), ufl.TestFunction(V)
    model = NoisyConductor(0.05, seed=seed)
    closure = Closure(model, domain, {"gradient": ufl.grad(T)})
    F = -ufl.inner(closure.outputs["flux"], ufl.grad(v)) * closure.dx - v * closure.dx
    facets = dmesh.locate_entities_boundary(domain, 1, lambda x: np.full(x.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    return cls(F, T, [bc], [closure], **options), model


@pytest.mark.mpi
def test_noise_rule_stops_at_the_same_iterate_as_newton_solver():
    seed = 11 + MPI.COMM_WORLD.rank
    runs = {}
    for cls in (NewtonSolver, SNESSolver):
        solver, model = _noisy_poisson(cls, seed, max_iterations=8)
        runs[cls] = (solver.solve(), solver.u.x.array.copy(), model.rng.standard_normal())
    (rn, un, next_n), (rs, us, next_s) = runs[NewtonSolver], runs[SNESSolver]
    assert rs.converged and rn.converged
    assert rs.iterations == rn.iterations <= 2
    _assert_same_norms(rs.residual_norms, rn.residual_norms)
    _assert_same_norms(rs.noise_norms, rn.noise_norms)
    assert len(rs.noise_norms) == len(rs.residual_norms)
    # stopped by the noise rule, far above atol
    assert 1e-6 < rs.residual_norms[-1] <= 2.0 * rs.noise_norms[-1]
    assert next_s == next_n  # the same number of micro evaluations (random draws)
    np.testing.assert_allclose(us, un, rtol=0, atol=1e-13 * np.abs(un).max())


@pytest.mark.mpi
def test_noise_rule_switched_off_chases_the_noise_like_newton_solver():
    seed = 5 + MPI.COMM_WORLD.rank
    errors = {}
    for cls in (NewtonSolver, SNESSolver):
        solver, _ = _noisy_poisson(cls, seed, max_iterations=3, noise_tolerance=0.0)
        with pytest.raises(NewtonConvergenceError, match="noise") as info:
            solver.solve()
        errors[cls] = info.value
    en, es = errors[NewtonSolver], errors[SNESSolver]
    assert len(es.residual_norms) == 4  # before each of the 3 steps and after
    _assert_same_norms(es.residual_norms, en.residual_norms)
    _assert_same_norms(es.noise_norms, en.noise_norms)
    assert es.reason == PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT


@pytest.mark.mpi
@pytest.mark.parametrize("linesearch", ["bt", "cp"])
def test_line_searches_evaluating_trial_points_still_converge_quadratically(linesearch):
    # the residual at a trial point updates the closures there; PETSc's line searches end
    # with the residual at the accepted iterate, so the Jacobian gets its tangents
    model = CubicFlux()
    F, u, bcs, closure, _ = _problem(model)
    options = {"snes_linesearch_type": linesearch}
    result = SNESSolver(F, u, bcs, [closure], petsc_options=options, atol=1e-11).solve()
    r = np.asarray(result.residual_norms)
    assert result.converged and result.iterations <= 8 and r[-1] < 1e-11
    assert model.calls > result.iterations + 1  # trial points were evaluated
    # quadratic (the tangent is that of the iterate) for reductions above round-off
    rho = r / r[0]
    constants = [rho[k + 1] / rho[k] ** 2 for k in range(2, len(r) - 1) if r[k + 1] > 1e-12]
    assert constants and max(constants) < 10.0, constants


@pytest.mark.mpi
def test_jacobian_at_a_point_without_an_update_updates_the_closures_first():
    model = CubicFlux()
    F, u, bcs, closure, _ = _problem(model)
    solver = SNESSolver(F, u, bcs, [closure])
    snes, problem = solver.snes, solver.problem
    x1, x2 = problem.x.duplicate(), problem.x.duplicate()
    x1.set(0.0)
    x2.set(1.0)
    snes.computeFunction(x1, problem.b)
    assert model.calls == 1
    snes.computeJacobian(x2, problem.A, problem.P_mat)
    assert model.calls == 2  # the tangents are those of x2
    np.testing.assert_array_equal(u.x.array, 1.0)
    snes.computeJacobian(x2, problem.A, problem.P_mat)
    assert model.calls == 2  # already up to date
    for x in (x1, x2):
        x.destroy()


@pytest.mark.mpi
def test_load_stepping_with_cuts_after_a_micro_failure_matches_newton_solver():
    # the micro-model fails once (3rd evaluation = 2nd iterate of the first step); the step is
    # rolled back and halved, with SNES as with the own Newton loop
    runs = {}
    for cls in (NewtonSolver, SNESSolver):
        model = CubicFlux(fail_calls={3})
        F, u, bcs, closure, apply_load = _problem(model)
        kwargs = {} if cls is SNESSolver else {"petsc_options_prefix": "test_snes_cut_"}
        solver = cls(F, u, bcs, [closure], rtol=1e-12, atol=1e-13, **kwargs)
        steps = solve_incrementally(solver, apply_load, [0.5, 1.0])
        runs[cls] = (steps, u.x.array.copy())
    (sn, un), (ss, us) = runs[NewtonSolver], runs[SNESSolver]
    assert [s.load for s in ss] == [s.load for s in sn] == [0.25, 0.5, 1.0]
    assert [s.cuts for s in ss] == [s.cuts for s in sn] == [1, 1, 0]  # per target
    for a, b in zip(ss, sn, strict=True):
        _assert_same_norms(a.residual_norms, b.residual_norms)
    np.testing.assert_allclose(us, un, rtol=0, atol=1e-13 * np.abs(un).max())


@pytest.mark.mpi
@pytest.mark.parametrize("call", [1, 3], ids=["initial-residual", "line-search-residual"])
def test_micro_failure_surfaces_as_micro_solve_error_and_the_solver_stays_usable(call):
    model = CubicFlux(fail_calls={call}, fail_rank=MPI.COMM_WORLD.size - 1)
    F, u, bcs, closure, _ = _problem(model)
    solver = SNESSolver(F, u, bcs, [closure])
    with pytest.raises(MicroSolveError) as info:  # on every rank
        solver.solve()
    if MPI.COMM_WORLD.rank == MPI.COMM_WORLD.size - 1:
        assert "cubic cell diverged" in str(info.value) and info.value.point == 0
    # PETSc was left in a clean state: the same solver solves afterwards
    u.x.array[:] = 0.0
    assert solver.solve().converged


@pytest.mark.mpi
def test_other_exceptions_of_a_closure_update_are_re_raised():
    F, u, bcs, closure, _ = _problem(CubicFlux())
    solver = SNESSolver(F, u, bcs, [closure])

    class Broken(Exception):
        pass

    def broken(tangents=True):
        raise Broken("bug in an update")

    closure.update = broken  # collective: raises on every rank
    with pytest.raises(Broken, match="bug in an update"):
        solver.solve()


@pytest.mark.mpi
def test_divergence_raises_newton_convergence_error_with_the_norms():
    F, u, bcs, closure, _ = _problem(CubicFlux())
    newton = NewtonSolver(F, u, bcs, [closure], max_iterations=2, petsc_options_prefix="tsd_")
    with pytest.raises(NewtonConvergenceError) as reference:
        newton.solve()
    u.x.array[:] = 0.0
    solver = SNESSolver(F, u, bcs, [closure], max_iterations=2)
    with pytest.raises(NewtonConvergenceError, match="DIVERGED_MAX_IT") as info:
        solver.solve()
    assert info.value.reason == PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
    assert len(info.value.residual_norms) == 3  # before each of the 2 steps and after
    _assert_same_norms(info.value.residual_norms, reference.value.residual_norms)
    # a failed linear solve is a divergence too
    u.x.array[:] = 0.0
    cg = {"ksp_type": "cg", "pc_type": "none", "ksp_max_it": 1}
    solver = SNESSolver(F, u, bcs, [closure], petsc_options=cg)
    with pytest.raises(NewtonConvergenceError, match="DIVERGED_LINEAR_SOLVE"):
        solver.solve()


def _ours(prefix):
    return sorted(k for k in PETSc.Options().getAll() if k.startswith(prefix))


@pytest.mark.mpi
def test_options_prefix_unique_and_options_removed():
    F, u, bcs, closure, _ = _problem(CubicFlux(), n=2)
    a = SNESSolver(F, u, bcs, [closure])
    b = SNESSolver(F, u, bcs, [closure])
    pa, pb = a.petsc_options_prefix, b.petsc_options_prefix
    assert pa != pb and not pa.startswith(pb) and not pb.startswith(pa)
    assert MPI.COMM_WORLD.allgather(pa) == [pa] * MPI.COMM_WORLD.size
    assert a.snes.getOptionsPrefix() == pa and a.problem.A.getOptionsPrefix() == f"{pa}A_"
    with pytest.raises(ValueError, match="overlaps"):
        SNESSolver(F, u, bcs, [closure], petsc_options_prefix=pa)
    with pytest.raises(ValueError, match="overlaps"):
        SNESSolver(F, u, bcs, [closure], petsc_options_prefix=f"{pa}A_")
    with pytest.raises(ValueError, match="empty"):
        SNESSolver(F, u, bcs, [closure], petsc_options_prefix="")
    # the options reached the objects, yet none is left in the global database ...
    assert a.snes.getKSP().getPC().getType() == "lu"
    assert a.snes.getLineSearch().getType() == "basic"
    assert a.snes.getTolerances()[:2] == (1e-10, 1e-12)
    assert _ours(pa) == _ours(pb) == []
    # ... except during the solve, where a lazily read option (MUMPS, at factorisation) works
    seen = []
    opts = PETSc.Options()
    opts["test_snes_mine_pc_type"] = "jacobi"  # the user's own entry: overridden, then restored
    c = SNESSolver(
        F,
        u,
        bcs,
        [closure],
        petsc_options_prefix="test_snes_mine_",
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": "mumps",
            "mat_mumps_icntl_14": 77,
        },
    )
    c.snes.setMonitor(lambda snes, it, norm: seen.append(_ours("test_snes_mine_")))
    assert c.solve().converged
    assert "test_snes_mine_ksp_type" in seen[0]
    assert _ours("test_snes_mine_") == ["test_snes_mine_pc_type"]
    assert opts.getString("test_snes_mine_pc_type") == "jacobi"
    opts.delValue("test_snes_mine_pc_type")
    assert c.snes.getKSP().getPC().getType() == "lu"
    assert c.snes.getKSP().getPC().getFactorMatrix().getMumpsIcntl(14) == 77
    # destroyed solvers free their prefix
    del a
    gc.collect()
    again = SNESSolver(F, u, bcs, [closure], petsc_options_prefix=pa)
    again.destroy()
    with pytest.raises(RuntimeError, match="destroyed"):
        again.solve()
    again = SNESSolver(F, u, bcs, [closure], petsc_options_prefix=pa)
    assert _ours(pa) == [] and _ours(pb) == []


def test_bad_arguments_are_rejected_before_any_collective_call():
    F, u, bcs, closure, _ = _problem(CubicFlux(), n=2)
    with pytest.raises(ValueError, match="rtol"):
        SNESSolver(F, u, bcs, [closure], rtol=-1.0)
    with pytest.raises(ValueError, match="max_iterations"):
        SNESSolver(F, u, bcs, [closure], max_iterations=0)
    with pytest.raises(ValueError, match="noise_tolerance must be a finite number >= 0"):
        SNESSolver(F, u, bcs, [closure], noise_tolerance=-1.0)
    with pytest.raises(TypeError, match="Function"):
        SNESSolver(F, u.x, bcs, [closure])


def _plastic_plate(cls, model, prefix):
    """The porous elasto-plastic plate of tests/micro/test_plasticity.py, pulled at x = 2."""
    domain = dmesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [2, 1]], [4, 2])
    V = fem.functionspace(domain, ("Lagrange", 1, (2,)))
    left = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    right = fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 2.0))
    pull = fem.Constant(domain, np.zeros(2))
    bcs = [fem.dirichletbc(np.zeros(2), left, V), fem.dirichletbc(pull, right, V)]
    u, v = fem.Function(V), ufl.TestFunction(V)
    closure = Closure(model, domain, {"strain": ufl.sym(ufl.grad(u))}, {"volume_fraction": 0.2}, 1)
    F = ufl.inner(closure.outputs["stress"], ufl.grad(v)) * closure.dx
    # atol above the ~1e-11 residual noise the micro Newton tolerance leaves
    solver = cls(F, u, bcs, [closure], rtol=1e-9, atol=1e-9, petsc_options_prefix=prefix)

    def apply_load(t):
        pull.value[:] = [0.04 * t, 0.0]

    return solver, apply_load


@pytest.mark.mpi
def test_plastic_cells_two_load_steps_match_newton_solver():
    from fe2hmm.micro.cells.plasticity import PlasticCellModel

    runs = {}
    for cls, prefix in ((NewtonSolver, "test_snes_plate_newton_"), (SNESSolver, None)):
        model = PlasticCellModel(rve="voids", matrix=(1.0, 0.3, 0.01, 0.1), resolution=6)
        solver, apply_load = _plastic_plate(cls, model, prefix)
        steps = solve_incrementally(solver, apply_load, [0.5, 1.0], histories=[model])
        runs[cls] = (steps, solver.u.x.array.copy(), model.equivalent_plastic_strain())
    (sn, un, pn), (ss, us, ps) = runs[NewtonSolver], runs[SNESSolver]
    assert [s.load for s in ss] == [s.load for s in sn] == [0.5, 1.0]
    for a, b in zip(ss, sn, strict=True):
        assert a.iterations == b.iterations >= 2
        _assert_same_norms(a.residual_norms, b.residual_norms)
    assert MPI.COMM_WORLD.allreduce(ps.max() if ps.size else 0.0, op=MPI.MAX) > 0  # yielded
    np.testing.assert_allclose(us, un, rtol=0, atol=1e-13 * np.abs(un).max())
    np.testing.assert_allclose(ps, pn, rtol=0, atol=1e-13 * max(np.abs(pn).max(), 1.0))
