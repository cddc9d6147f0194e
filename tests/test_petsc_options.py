"""PETSc options hygiene of both macro solvers: unique prefixes, options only while in use."""

import gc

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.macro.snes import SNESSolver
from fe2hmm.newton import NewtonSolver
from fe2hmm.petsc_options import claim_prefix, live_prefixes, options_set, release_prefix

SOLVERS = [NewtonSolver, SNESSolver]
MUMPS = {
    "ksp_type": "gmres",  # iterates (and monitors) once on top of the exact LU
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
    "mat_mumps_icntl_14": 77,  # read at the first factorisation, inside the first solve
}


def _ours(prefix):
    return sorted(k for k in PETSc.Options().getAll() if k.startswith(prefix))


def _poisson(n=4):
    """-Δu = 1 on the unit square, u = 0 on the boundary (linear: one Newton step)."""
    domain = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    V = fem.functionspace(domain, ("Lagrange", 1))
    u, v = fem.Function(V), ufl.TestFunction(V)
    F = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - v * ufl.dx
    facets = dmesh.locate_entities_boundary(domain, 1, lambda x: np.full(x.shape[1], True))
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    return F, u, [bc]


def _ksp(solver):
    return solver.ksp if isinstance(solver, NewtonSolver) else solver.snes.getKSP()


@pytest.mark.mpi
def test_generated_prefixes_are_unique_and_the_same_on_all_ranks():
    comm = MPI.COMM_WORLD
    a, b = claim_prefix(comm, None, "test_stem_"), claim_prefix(comm, None, "test_stem_")
    try:
        assert a != b and not a.startswith(b) and not b.startswith(a)
        assert a.startswith("test_stem_") and a.endswith("_")
        assert comm.allgather((a, b)) == [(a, b)] * comm.size
        assert {a, b} <= live_prefixes()
    finally:
        release_prefix(a)
        release_prefix(b)
    assert not {a, b} & live_prefixes()
    F, u, bcs = _poisson()
    newton, snes = NewtonSolver(F, u, bcs), SNESSolver(F, u, bcs)
    other = NewtonSolver(F, u, bcs)
    prefixes = [s.petsc_options_prefix for s in (newton, other, snes)]
    assert prefixes[0].startswith("fe2hmm_newton_") and prefixes[2].startswith("fe2hmm_snes_")
    assert len(set(prefixes)) == 3 and set(prefixes) <= live_prefixes()
    assert newton.ksp.getOptionsPrefix() == prefixes[0]


@pytest.mark.mpi
@pytest.mark.parametrize("first", SOLVERS)
@pytest.mark.parametrize("second", SOLVERS)
def test_an_overlapping_prefix_is_rejected_with_a_one_line_value_error(first, second):
    F, u, bcs = _poisson()
    live = first(F, u, bcs, petsc_options_prefix="test_overlap_")
    for taken in ("test_overlap_", "test_overlap_A_", "test_"):
        with pytest.raises(ValueError, match="overlaps the prefix of a live fe2hmm solver") as e:
            second(F, u, bcs, petsc_options_prefix=taken)
        assert "\n" not in str(e.value) and "'test_overlap_'" in str(e.value)
    assert live.petsc_options_prefix == "test_overlap_"
    assert "test_" not in live_prefixes()  # the refused prefix was not claimed


@pytest.mark.mpi
@pytest.mark.parametrize("cls", SOLVERS)
def test_bad_prefixes_raise_on_every_rank(cls):
    F, u, bcs = _poisson()
    with pytest.raises(ValueError, match="cannot be empty"):
        cls(F, u, bcs, petsc_options_prefix="")
    with pytest.raises(TypeError, match="must be a str or None, got int"):
        cls(F, u, bcs, petsc_options_prefix=3)
    comm = MPI.COMM_WORLD
    if comm.size > 1:
        with pytest.raises(ValueError, match="must be the same on all ranks"):
            cls(F, u, bcs, petsc_options_prefix=f"test_rank{comm.rank}_")
    assert not any(p.startswith("test_rank") for p in live_prefixes())


@pytest.mark.mpi
@pytest.mark.parametrize("cls", SOLVERS)
def test_options_only_in_the_database_while_configuring_and_solving(cls):
    F, u, bcs = _poisson()
    prefix = f"test_hygiene_{cls.__name__}_"
    opts = PETSc.Options()
    opts[f"{prefix}ksp_type"] = "cg"  # the user's own entry: overridden, then restored
    solver = cls(F, u, bcs, petsc_options=MUMPS, petsc_options_prefix=prefix)
    ksp = _ksp(solver)
    assert ksp.getType() == "gmres" and ksp.getPC().getType() == "lu"  # the options reached it
    assert _ours(prefix) == [f"{prefix}ksp_type"] and opts.getString(f"{prefix}ksp_type") == "cg"
    seen = []
    ksp.setMonitor(lambda ksp, it, rnorm: seen.append(_ours(prefix)))
    assert solver.solve().converged
    # present during the linear solve (SNESSolver adds its snes_* defaults) ...
    assert seen and {f"{prefix}{k}" for k in MUMPS} <= set(seen[0])
    # ... where MUMPS read ICNTL(14) at the factorisation (its default is 20)
    assert ksp.getPC().getFactorMatrix().getMumpsIcntl(14) == 77
    assert _ours(prefix) == [f"{prefix}ksp_type"]  # ... and gone afterwards
    assert opts.getString(f"{prefix}ksp_type") == "cg"
    opts.delValue(f"{prefix}ksp_type")
    assert _ours(prefix) == []


@pytest.mark.mpi
@pytest.mark.parametrize("cls", SOLVERS)
def test_the_prefix_is_released_when_the_solver_is_destroyed(cls):
    F, u, bcs = _poisson()
    prefix = f"test_release_{cls.__name__}_"
    solver = cls(F, u, bcs, petsc_options_prefix=prefix)
    assert prefix in live_prefixes()
    solver.destroy()
    solver.destroy()  # idempotent
    assert prefix not in live_prefixes()
    with pytest.raises(RuntimeError, match="destroyed"):
        solver.solve()
    again = cls(F, u, bcs, petsc_options_prefix=prefix)
    del again  # garbage collection destroys too
    gc.collect()
    assert prefix not in live_prefixes()
    assert cls(F, u, bcs, petsc_options_prefix=prefix).solve().converged
    gc.collect()
    assert prefix not in live_prefixes() and _ours(prefix) == []


def test_options_set_restores_the_database_also_after_an_error():
    opts = PETSc.Options()
    opts["test_set_b"] = "before"
    with pytest.raises(RuntimeError, match="inside"):
        with options_set("test_set_", {"a": 1, "b": "during", "flag": None}):
            assert opts.getInt("test_set_a") == 1 and opts.getString("test_set_b") == "during"
            assert opts.hasName("test_set_flag")
            raise RuntimeError("inside")
    assert _ours("test_set_") == ["test_set_b"] and opts.getString("test_set_b") == "before"
    opts.delValue("test_set_b")
