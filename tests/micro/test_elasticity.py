"""Linear elastic cell problems (fe2hmm.micro.cells.elasticity) against exact results and bounds."""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm import analytic, rve
from fe2hmm.closure import Closure
from fe2hmm.micro.cells.elasticity import (
    ElasticityCellModel,
    ElasticityCellProblem,
    homogenize_elasticity,
    lame_parameters,
    voigt_to_tensor,
)
from fe2hmm.newton import NewtonSolver
from fe2hmm.reuse import Dedupe
from fe2hmm.rve.cell import INCLUSION, MATRIX
from fe2hmm.rve.morph import CellFamily

M1, M2 = (1.0, 0.3), (10.0, 0.2)  # (E, nu) of matrix and inclusion


def C_of(cell, m1=M1, m2=M2, **kw):
    return homogenize_elasticity(cell, {MATRIX: m1, INCLUSION: m2}, **kw)


def tensor(m, dim):
    return analytic.isotropic_stiffness_tensor(*m, dim)


@pytest.mark.parametrize("dim,normal", [(2, 0), (2, 1), (3, 2), (3, 0)])
def test_laminate_stiffness_exact(dim, normal):
    # P1 represents the exact piecewise-affine displacement of a laminate: exact to round-off
    cell = rve.create("laminate", dim=dim, volume_fraction=0.4, normal=normal, resolution=6)
    C = C_of(cell).effective_tensor
    ref = analytic.laminate_stiffness(tensor(M1, dim), tensor(M2, dim), 0.4, normal)
    np.testing.assert_allclose(C, ref, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("bc", ["periodic", "affine", "traction"])
@pytest.mark.parametrize("name,dim", [("circle", 2), ("sphere", 3)])
def test_isotropic_cell_returns_the_phase_tensor(name, dim, bc):
    cell = rve.create(name, dim=dim, volume_fraction=0.2, resolution=16 if dim == 2 else 6)
    sol = C_of(cell, M1, M1, bc=bc)
    np.testing.assert_allclose(
        sol.effective_tensor, analytic.isotropic_stiffness(*M1, dim), atol=1e-12
    )


@pytest.mark.parametrize(
    "name,options",
    [("circle", {}), ("voids", {}), ("ellipse", {"aspect_ratio": 2.0, "angle": 0.5})],
)
def test_bc_ordering_bounds_symmetry_and_hill_mandel(name, options):
    cell = rve.create(name, volume_fraction=0.25, resolution=24, **options)
    sols = {bc: C_of(cell, bc=bc) for bc in ("affine", "periodic", "traction")}
    C = {bc: s.effective_tensor for bc, s in sols.items()}
    for bc, s in sols.items():
        assert s.hill_mandel_error < 1e-11, bc  # <σ:ε> = Σ:E for every pair of load cases
        np.testing.assert_allclose(C[bc], C[bc].T, atol=1e-10 * np.abs(C[bc]).max())
        assert np.linalg.eigvalsh(C[bc]).min() > 0
    # energy ordering affine >= periodic >= traction (Loewner order)
    assert np.linalg.eigvalsh(C["affine"] - C["periodic"]).min() > -1e-10
    assert np.linalg.eigvalsh(C["periodic"] - C["traction"]).min() > -1e-10
    if name != "voids":  # Voigt/Reuss bounds hold for any two-phase microstructure
        f = sum(v for k, v in cell.volume_fractions.items() if k == INCLUSION)
        upper, lower = analytic.voigt_reuss_stiffness(
            analytic.isotropic_stiffness(*M1), analytic.isotropic_stiffness(*M2), f
        )
        assert np.linalg.eigvalsh(upper - C["affine"]).min() > -1e-2 * np.abs(upper).max()
        assert np.linalg.eigvalsh(C["traction"] - lower).min() > -1e-10


def test_square_and_cubic_symmetry():
    C = C_of(rve.create("circle", volume_fraction=0.4, resolution=32)).effective_tensor
    # square symmetry of a centred circle: C11 = C22, C16 = C26 = 0 (to mesh asymmetry)
    assert abs(C[0, 0] - C[1, 1]) < 1e-4 * C[0, 0]
    assert abs(C[0, 2]) < 1e-4 * C[0, 0] and abs(C[1, 2]) < 1e-4 * C[0, 0]
    # and it is not isotropic: C66 != (C11 - C12)/2 for a square array
    assert abs(C[2, 2] - 0.5 * (C[0, 0] - C[0, 1])) > 1e-2 * C[2, 2]
    C3 = C_of(rve.create("sphere", dim=3, volume_fraction=0.2, resolution=8)).effective_tensor
    d = np.diag(C3)
    assert np.ptp(d[:3]) < 2e-2 * d[0] and np.ptp(d[3:]) < 2e-2 * d[3]


def test_voigt_tensor_round_trip():
    C = analytic.isotropic_stiffness(2.0, 0.25, 3)
    np.testing.assert_allclose(analytic.to_voigt(voigt_to_tensor(C)), C)
    np.testing.assert_allclose(
        voigt_to_tensor(C), analytic.isotropic_stiffness_tensor(2.0, 0.25, 3)
    )
    with pytest.raises(ValueError, match="3x3"):
        voigt_to_tensor(np.eye(4))


@pytest.mark.parametrize(
    "materials,match",
    [
        ({MATRIX: (1.0, 0.5), INCLUSION: M2}, "0.5"),
        ({MATRIX: (1.0, -1.0), INCLUSION: M2}, "-1"),
        ({MATRIX: (0.0, 0.3), INCLUSION: M2}, "voids"),
        ({MATRIX: M1}, "phase"),
        ({MATRIX: M1, INCLUSION: 5.0}, "pair"),
    ],
)
def test_bad_materials(materials, match):
    cell = rve.create("circle", volume_fraction=0.2, resolution=8)
    with pytest.raises(ValueError, match=match):
        ElasticityCellProblem(cell, materials)


def test_micro_model_stress_is_C_colon_strain():
    model = Dedupe(ElasticityCellModel(rve="circle", matrix=M1, inclusion=M2, resolution=12))
    eps = np.array([[[0.01, 0.002], [0.002, -0.003]]] * 2)
    res = model.evaluate({"strain": eps}, {"volume_fraction": np.array([0.3, 0.3])})
    C = C_of(CellFamily("circle", 2, 12).create(0.3)).effective_tensor  # the model's cell
    voigt_strain = np.array([0.01, -0.003, 0.004])  # engineering shear
    sigma = C @ voigt_strain
    np.testing.assert_allclose(res.outputs["stress"][0][[0, 1, 0], [0, 1, 1]], sigma, rtol=1e-12)
    assert model.statistics.micro_solves == 1


@pytest.mark.mpi
def test_fe2_with_homogeneous_cells_reproduces_single_scale_solution():
    # level-3 test: FE² whose cells hold one material equals the plain UFL elasticity solve
    mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [2, 1]], [12, 6])
    V = fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    left = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.isclose(x[0], 0.0))
    bc = fem.dirichletbc(np.zeros(2), fem.locate_dofs_topological(V, 1, left), V)
    f = fem.Constant(mesh, np.array([0.0, -0.05]))
    v = ufl.TestFunction(V)

    u = fem.Function(V)
    model = ElasticityCellModel(rve="circle", matrix=M1, inclusion=M1, resolution=8)
    closure = Closure(model, mesh, {"strain": ufl.sym(ufl.grad(u))}, {"volume_fraction": 0.3})
    F = ufl.inner(closure.outputs["stress"], ufl.grad(v)) * closure.dx - ufl.dot(f, v) * closure.dx
    result = NewtonSolver(F, u, [bc], [closure], petsc_options_prefix="fe2el_").solve()
    assert result.converged and result.iterations == 1

    lam, mu = M1[0] * M1[1] / ((1 + M1[1]) * (1 - 2 * M1[1])), M1[0] / (2 * (1 + M1[1]))
    U = fem.Function(V)
    eps = ufl.sym(ufl.grad(U))
    sigma = 2 * mu * eps + lam * ufl.tr(eps) * ufl.Identity(2)
    F_ref = ufl.inner(sigma, ufl.grad(v)) * closure.dx - ufl.dot(f, v) * closure.dx
    NewtonSolver(F_ref, U, [bc], [], petsc_options_prefix="ref_el_").solve()
    err = mesh.comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(u - U, u - U) * ufl.dx)))
    ref = mesh.comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(U, U) * ufl.dx)))
    assert np.sqrt(err / ref) < 1e-10


@pytest.mark.parametrize("m1,m2", [(M1, M2), (M2, M1), ((3.0, 0.35), (70.0, 0.22))])
@pytest.mark.parametrize("f", [0.2, 0.5])
def test_hill_hashin_bounds_on_transverse_bulk_modulus(m1, m2, f):
    # Hill (1964): the Hashin bounds on the plane-strain (transverse) bulk modulus of a fibre
    # composite hold for any transverse geometry; for square symmetry k = (C11 + C12) / 2.
    # Tolerance 2e-3: P1 cells are stiffer than the exact cell by O(h^2) (~1e-3 at res 32),
    # which matters where the square array nearly attains a bound (dilute, CCA-like).
    cell = rve.create("circle", volume_fraction=f, resolution=32)
    dx = ufl.Measure("dx", domain=cell.mesh, subdomain_data=cell.cell_tags)
    fm = fem.assemble_scalar(fem.form(1.0 * dx(INCLUSION)))  # meshed (polygonal) fraction
    C = C_of(cell, m1, m2).effective_tensor
    k = 0.5 * (C[0, 0] + C[0, 1])
    (l1, mu1), (l2, mu2) = lame_parameters(*m1), lame_parameters(*m2)
    k1, k2 = l1 + mu1, l2 + mu2
    b1 = k1 + fm / (1 / (k2 - k1) + (1 - fm) / (k1 + mu1))
    b2 = k2 + (1 - fm) / (1 / (k1 - k2) + fm / (k2 + mu2))
    lower, upper = min(b1, b2), max(b1, b2)
    assert lower * (1 - 2e-3) <= k <= upper * (1 + 2e-3), (lower, k, upper)
