"""fe2hmm.macro.elasticity: small- and finite-strain elasticity closed by micro-models.

Level 3 (homogeneous cells = the single-scale UFL law), level 2 (Jacobian = finite difference
of the residual through F = I + ∇u; reactions balance the loads), load stepping with history
commits, and bad input (also run under ``mpiexec -n 2``).
"""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import jacobian_difference_error
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.macro import Dirichlet, FiniteStrainElasticity, SmallStrainElasticity
from fe2hmm.micro.cells.elasticity import ElasticityCellModel, lame_parameters
from fe2hmm.micro.cells.hyperelastic import HyperelasticCellModel
from fe2hmm.micro.interface import MicroModel, MicroResult, Stateful

pytestmark = pytest.mark.mpi

MATERIAL = (2.0, 0.3)  # E, nu of the homogeneous cells
LAM, MU = lame_parameters(*MATERIAL)


def _relative_l2(a, b):
    comm = b.function_space.mesh.comm
    num = comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(a - b, a - b) * ufl.dx)))
    den = comm.allreduce(fem.assemble_scalar(fem.form(ufl.inner(b, b) * ufl.dx)))
    return float(np.sqrt(num / den))


def _right_edge_ds(mesh, x_right):
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.isclose(x[0], x_right))
    tags = dmesh.meshtags(mesh, 1, facets, np.full(facets.size, 1, np.int32))
    return ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)


def _hooke(eps):
    return 2 * MU * eps + LAM * ufl.tr(eps) * ufl.Identity(2)


def test_small_strain_homogeneous_cells_reproduce_the_single_scale_solution():
    """Plate (0, 2) × (0, 1): u_x = 0 on the left edge, u_y = 0 at the bottom-left corner (a
    point condition), traction t = (1, 0.2) on the right edge, body force b = (0, -0.5). Cells
    of one material give C* = C to the cell solver's round-off, so FE² equals the UFL law to
    1e-10 (the Newton tolerance). Reactions balance the loads to 1e-9 relative:
    R_x (left edge) = -∫t_x ds - ∫b_x dx and R_y (corner) = -∫t_y ds - ∫b_y dx. P1 with one
    quadrature point per cell (exact for P1) keeps the number of cell solves small."""
    mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [2, 1]], [6, 3])
    ds = _right_edge_ds(mesh, 2.0)
    common = {
        "traction": [(ds, (1.0, 0.2))],
        "body_force": (0.0, -0.5),
        "bcs": [
            Dirichlet(0.0, lambda x: np.isclose(x[0], 0.0), component=0),
            Dirichlet(
                0.0, lambda x: np.isclose(x[0], 0.0) & np.isclose(x[1], 0.0), 1, entity_dim=0
            ),
        ],
        "quadrature_degree": 1,
    }
    model = ElasticityCellModel(rve="circle", matrix=MATERIAL, inclusion=MATERIAL, resolution=6)
    fe2 = SmallStrainElasticity(mesh, model, parameters={"volume_fraction": 0.3}, **common)
    result = fe2.solve()
    assert result.converged and result.iterations == 1  # linear closure
    single = SmallStrainElasticity(mesh, _hooke, **common)
    single.solve()
    assert _relative_l2(fe2.u, single.u) < 1e-10
    # loads: ∫t ds = (1, 0.2) × height 1, ∫b dx = (0, -0.5) × area 2
    for problem in (fe2, single):
        assert problem.reaction(0) == pytest.approx(-1.0, rel=1e-9)
        assert problem.reaction(1) == pytest.approx(-(0.2 - 1.0), rel=1e-9)
        assert problem.reaction(1, component=1) == problem.reaction(1)


class SaintVenantKirchhoff(MicroModel):
    """P = F S, S = λ tr(E) I + 2μ E, E = (FᵀF - I)/2, with the exact tangent ∂P/∂F (numpy)."""

    input_shapes = {"F": (2, 2)}
    output_shapes = {"P": (2, 2)}

    @staticmethod
    def _pk2(F):
        E = 0.5 * (np.einsum("nki,nkj->nij", F, F) - np.eye(2))
        return LAM * np.trace(E, axis1=1, axis2=2)[:, None, None] * np.eye(2) + 2 * MU * E

    def evaluate(self, inputs, parameters, *, tangents=True):
        F = inputs["F"]
        S = self._pk2(F)
        out = MicroResult({"P": np.einsum("nik,nkj->nij", F, S)})
        if tangents:
            A = np.zeros((F.shape[0], 2, 2, 2, 2))
            for k in range(2):
                for m in range(2):
                    dF = np.zeros((2, 2))
                    dF[k, m] = 1.0
                    dE = 0.5 * (np.einsum("ki,nkj->nij", dF, F) + np.einsum("nki,kj->nij", F, dF))
                    dS = LAM * np.trace(dE, axis1=1, axis2=2)[:, None, None] * np.eye(2)
                    dS = dS + 2 * MU * dE
                    A[:, :, :, k, m] = np.einsum("ik,nkj->nij", dF, S) + np.einsum(
                        "nik,nkj->nij", F, dS
                    )
            out.tangents["P", "F"] = A
        return out


def _svk_law(F):
    E = 0.5 * (F.T * F - ufl.Identity(2))
    return F * (LAM * ufl.tr(E) * ufl.Identity(2) + 2 * MU * E)


def test_finite_strain_jacobian_equals_a_finite_difference_and_matches_the_ufl_law():
    """The assembled Jacobian of the closed problem (chain rule through F = I + ∇u and the
    micro tangent ∂P/∂F) times a direction equals the central difference of the residual
    (h = 1e-5; measured 1e-10 relative, bound 1e-7). The same Saint Venant–Kirchhoff law as a
    numpy micro-model and in UFL give the same Newton history and solution (1e-10) under a 10 %
    stretch, with quadratic convergence."""
    mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [1, 1]], [4, 4])
    pull = lambda x: np.isclose(x[0], 1.0)  # noqa: E731
    bcs = [
        Dirichlet(0.0, lambda x: np.isclose(x[0], 0.0)),
        Dirichlet(0.1, pull, component=0),
        Dirichlet(0.0, pull, component=1),
    ]
    problem = FiniteStrainElasticity(
        mesh, SaintVenantKirchhoff(), bcs=bcs, degree=2, body_force=(0.0, -0.3), rtol=1e-12
    )
    assert problem.closure.model.input_shapes == {"F": (2, 2)}  # names found: the only ones
    u = problem.u
    u.interpolate(lambda x: np.vstack([0.1 * x[0] * x[1], -0.05 * np.sin(3 * x[0])]))
    state = u.x.array.copy()
    direction = fem.Function(u.function_space)
    direction.interpolate(lambda x: np.vstack([x[1] ** 2, x[0] * (1 - x[1])]))
    u.x.array[:] = state
    error, norm = jacobian_difference_error(problem, direction)
    assert error < 1e-7 * norm, (error, norm)

    u.x.array[:] = 0.0
    result = problem.solve()
    reference = FiniteStrainElasticity(
        mesh, _svk_law, bcs=bcs, degree=2, body_force=(0.0, -0.3), rtol=1e-12
    )
    expected = reference.solve()
    assert result.iterations == expected.iterations
    np.testing.assert_allclose(result.residual_norms[:3], expected.residual_norms[:3], rtol=1e-8)
    assert _relative_l2(u, reference.u) < 1e-10
    r = np.array(result.residual_norms) / result.residual_norms[0]
    assert all(b <= 10.0 * a**2 for a, b in zip(r, r[1:], strict=False) if b > 1e-12), r


def test_finite_strain_homogeneous_hyperelastic_cells_equal_the_ufl_neo_hookean_law():
    """Neo-Hookean cells of one material (condensed tangent) against W = μ/2 (tr C - 2 - 2 ln J)
    + λ/2 ln² J in UFL under a 5 % stretch: the same Newton iteration count and solutions equal
    to 1e-9 (the cells' own Newton tolerance, 1e-10, limits the agreement)."""
    mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [2, 1]], [4, 2])
    bcs = [
        Dirichlet(np.zeros(2), lambda x: np.isclose(x[0], 0.0)),
        Dirichlet(0.1, lambda x: np.isclose(x[0], 2.0), component=0),
    ]

    def neo_hooke(F):
        F = ufl.variable(F)
        J = ufl.det(F)
        W = MU / 2 * (ufl.tr(F.T * F) - 2 - 2 * ufl.ln(J)) + LAM / 2 * ufl.ln(J) ** 2
        return ufl.diff(W, F)

    model = HyperelasticCellModel(rve="circle", matrix=MATERIAL, inclusion=MATERIAL, resolution=4)
    fe2 = FiniteStrainElasticity(
        mesh, model, parameters={"volume_fraction": 0.2}, bcs=bcs, quadrature_degree=1, rtol=1e-11
    )
    single = FiniteStrainElasticity(mesh, neo_hooke, bcs=bcs, quadrature_degree=1, rtol=1e-11)
    result, expected = fe2.solve(), single.solve()
    assert result.converged and result.iterations == expected.iterations
    assert _relative_l2(fe2.u, single.u) < 1e-9
    assert fe2.reaction(1) == pytest.approx(single.reaction(1), rel=1e-8)
    assert fe2.reaction(1) > 0  # the support pulls in +x


class Spy(Stateful):
    def __init__(self):
        self.commits = self.rollbacks = 0

    def commit(self):
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1


def test_load_stepping_follows_the_load_and_commits_histories():
    """A linear plate pulled by a Constant: the reaction is linear in the load factor (to
    1e-10), `load` follows the converged targets (also when unloading), and the given
    histories are committed once per increment; the closures' stateful models are the default
    histories (none for a UFL law)."""
    mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [2, 1]], [6, 3])
    pull = fem.Constant(mesh, np.zeros(2))
    problem = SmallStrainElasticity(
        mesh,
        _hooke,
        bcs=[
            Dirichlet(np.zeros(2), lambda x: np.isclose(x[0], 0.0)),
            Dirichlet(pull, lambda x: np.isclose(x[0], 2.0)),
        ],
    )
    assert problem.histories == []
    spy = Spy()

    def apply(t):
        pull.value[:] = [0.01 * t, 0.0]

    forces = []
    for target in (0.5, 1.0, 0.25):
        steps = problem.solve_incrementally(apply, [target], histories=[spy])
        assert problem.load == target and steps[-1].load == target
        forces.append(problem.reaction(1, component=0))
    assert spy.commits == 3 and spy.rollbacks == 0
    np.testing.assert_allclose(np.array(forces) / forces[1], [0.5, 1.0, 0.25], rtol=1e-10)
    force = problem.reaction(1)  # both components of a vector condition
    assert force.shape == (2,) and force[0] == pytest.approx(forces[-1], rel=1e-14)


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda m: SmallStrainElasticity(m, HyperelasticCellModel(resolution=4)), ValueError,
         r"SmallStrainElasticity binds the inputs \['strain'\].*declares \['F'\]"),
        (lambda m: FiniteStrainElasticity(m, _TwoInputs()), ValueError,
         r"has inputs \['F', 'T'\] and outputs \['P'\]; give names="),
        (lambda m: FiniteStrainElasticity(m, SaintVenantKirchhoff(), names=("F", "stress")),
         ValueError, r"uses the output 'stress'; SaintVenantKirchhoff declares \['P'\]"),
        (lambda m: FiniteStrainElasticity(m, SaintVenantKirchhoff(), names="F"), ValueError,
         "names must be a pair of strings, got 'F'"),
        (lambda m: SmallStrainElasticity(m, _hooke, body_force=(1.0, 0.0, 0.0)), ValueError,
         r"body_force must be 2 finite numbers, got array\(\[1., 0., 0.\]\)"),
        (lambda m: SmallStrainElasticity(m, _hooke, traction=[(ufl.ds, ufl.as_vector([1.0]))]),
         ValueError, r"traction\[0\] must have shape \(2,\), got \(1,\)"),
        (lambda m: SmallStrainElasticity(m, _hooke, traction=[(1.0, 0.0)]), ValueError,
         r"traction\[0\] must be a pair \(ds measure, traction vector\)"),
        (lambda m: SmallStrainElasticity(m, _hooke, bcs=[Dirichlet(0.0, component=2)]),
         ValueError, "Dirichlet component must be 0..1, got 2"),
        (lambda m: SmallStrainElasticity(m, _hooke, bcs=[Dirichlet((0.0, 0.0, 0.0))]),
         ValueError, r"2-component space must have shape \(2,\), got \(3,\)"),
        (lambda m: SmallStrainElasticity(m, _hooke, bcs=[Dirichlet(0.0, entity_dim=2)]),
         ValueError, r"Dirichlet entity_dim must be in \[0, 1\], got 2"),
        (lambda m: SmallStrainElasticity(m, _hooke, bcs=[Dirichlet(fem.Constant(m, 1.0))]),
         ValueError, r"a Constant of shape \(\) does not fit a space with 2 component"),
        (lambda m: SmallStrainElasticity(m, lambda e: 1.0), TypeError,
         "the constitutive law must return a UFL expression, got float"),
        (lambda m: SmallStrainElasticity(m, _hooke, atol=float("inf")), ValueError,
         "SmallStrainElasticity: atol must be a finite number >= 0, got inf"),
        (lambda m: FiniteStrainElasticity(m, SaintVenantKirchhoff(), prefix="a_"), TypeError,
         "FiniteStrainElasticity: unknown keyword argument 'prefix'"),
    ],
)  # fmt: skip
def test_bad_input_is_named_in_one_line(build, error, match):
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    with pytest.raises(error, match=match) as info:
        build(mesh)
    assert "\n" not in str(info.value)


def test_dirichlet_values_from_functions_and_callables():
    """A callable value on one component and a Function on the whole space are imposed
    exactly at the constrained dofs."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 3, 3)
    V = fem.functionspace(mesh, ("Lagrange", 1, (2,)))
    g = fem.Function(V)
    g.interpolate(lambda x: np.vstack([x[1], -x[1]]))
    problem = SmallStrainElasticity(
        mesh,
        _hooke,
        bcs=[
            Dirichlet(g, lambda x: np.isclose(x[0], 0.0)),
            Dirichlet(lambda x: 0.1 * x[1], lambda x: np.isclose(x[0], 1.0), component=0),
        ],
    )
    problem.solve()
    X = problem.V.tabulate_dof_coordinates()
    u = problem.u.x.array.reshape(-1, 2)
    left, right = np.isclose(X[:, 0], 0.0), np.isclose(X[:, 0], 1.0)
    np.testing.assert_allclose(u[left], np.column_stack([X[left, 1], -X[left, 1]]), atol=1e-14)
    np.testing.assert_allclose(u[right, 0], 0.1 * X[right, 1], atol=1e-14)


class _TwoInputs(MicroModel):
    input_shapes = {"F": (2, 2), "T": ()}
    output_shapes = {"P": (2, 2)}

    def evaluate(self, inputs, parameters, *, tangents=True):  # pragma: no cover - not called
        raise NotImplementedError
