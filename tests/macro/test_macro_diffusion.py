"""fe2hmm.macro.diffusion: steady and transient diffusion closed by micro-models.

Level 3 (FE² = single scale with homogeneous cells), level 2 (assembled Jacobian = finite
difference of the residual; reactions balance the sources), a transient run against the exact
backward-Euler amplification of a sine mode, and bad input (also run under ``mpiexec -n 2``).
"""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import jacobian_difference_error
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.macro import Dirichlet, SteadyDiffusion, TransientDiffusion
from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.micro.cells.elasticity import ElasticityCellModel
from fe2hmm.micro.interface import MicroModel, MicroResult

pytestmark = pytest.mark.mpi

K = 3.0  # conductivity of the homogeneous cells


def _relative_l2(a, b):
    comm = b.function_space.mesh.comm
    num = comm.allreduce(fem.assemble_scalar(fem.form((a - b) ** 2 * ufl.dx)))
    den = comm.allreduce(fem.assemble_scalar(fem.form(b**2 * ufl.dx)))
    return float(np.sqrt(num / den))


def _left_edge_ds(mesh):
    facets = dmesh.locate_entities_boundary(mesh, 1, lambda x: np.isclose(x[0], 0.0))
    tags = dmesh.meshtags(mesh, 1, facets, np.full(facets.size, 1, np.int32))
    return ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)


def test_homogeneous_cells_reproduce_the_single_scale_solution_and_reactions_balance():
    """FE² with cells of one material (K* = k I to the cell solver's round-off, ~1e-14) equals
    the single-scale problem with the UFL law q = -k ∇T to 1e-10 (the Newton tolerance). The
    held boundary takes up what the source and the prescribed inflow put in: reaction =
    -(∫f dx + ∫g ds), to the Newton tolerance (1e-9 relative; measured 1e-15). One quadrature
    point per cell keeps the number of cell solves small."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 6, 6)
    x = ufl.SpatialCoordinate(mesh)
    ds = _left_edge_ds(mesh)
    common = {
        "source": 1.0 + x[0] * x[1],
        "boundary_flux": [(ds, 0.5)],  # inflow through x = 0
        "bcs": [Dirichlet(0.0, lambda p: ~np.isclose(p[0], 0.0))],  # T = 0 elsewhere
        "quadrature_degree": 1,
    }
    model = DiffusionCellModel(rve="circle", matrix=K, inclusion=K, resolution=4)
    fe2 = SteadyDiffusion(mesh, model, parameters={"volume_fraction": 0.1 + 0.3 * x[1]}, **common)
    result = fe2.solve()
    assert result.converged and result.iterations == 1  # linear closure
    single = SteadyDiffusion(mesh, lambda g: -K * g, **common)
    assert single.closure is None and single.solve().converged
    assert _relative_l2(fe2.T, single.T) < 1e-10

    put_in = fe2.functional(1.0 + x[0] * x[1])() + fe2.functional(0.5, ds)()
    for problem in (fe2, single):
        assert problem.reaction(0) == pytest.approx(-put_in, rel=1e-9)


class LinearFlux(MicroModel):
    """q = -k g: a homogeneous conductor as a (solve-free) micro-model."""

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def __init__(self, k):
        super().__init__()
        self.k = k

    def evaluate(self, inputs, parameters, *, tangents=True):
        g = inputs["gradient"]
        out = MicroResult({"flux": -self.k * g})
        if tangents:
            out.tangents["flux", "gradient"] = np.broadcast_to(
                -self.k * np.eye(2), (g.shape[0], 2, 2)
            ).copy()
        return out


class CubicFlux(MicroModel):
    """q = -(1 + |g|²) g with its exact tangent -(1 + |g|²) I - 2 g ⊗ g (nonlinear)."""

    input_shapes = {"gradient": (2,)}
    output_shapes = {"flux": (2,)}

    def evaluate(self, inputs, parameters, *, tangents=True):
        g = inputs["gradient"]
        s = 1.0 + np.einsum("ni,ni->n", g, g)
        out = MicroResult({"flux": -s[:, None] * g})
        if tangents:
            T = -s[:, None, None] * np.eye(2) - 2.0 * np.einsum("ni,nj->nij", g, g)
            out.tangents["flux", "gradient"] = T
        return out


def test_jacobian_equals_a_finite_difference_of_the_residual():
    """The Jacobian the solver assembles (∂F/∂T plus the chain-rule term through the closure's
    tangent) applied to a direction equals the central difference of the residual with h =
    1e-5: truncation O(h²) and round-off O(ε/h) leave 1.8e-10 relative (measured; 6.5e-10 at
    h = 1e-4, 2.1e-9 at 1e-6), so 1e-7 is a safe bound that an error in the chain rule (an
    O(1) difference) cannot pass. Newton then converges quadratically (ρ_{k+1} <= 10 ρ_k²;
    measured constants <= 0.3, 6 iterations)."""
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 6, 6)
    problem = SteadyDiffusion(mesh, CubicFlux(), source=4.0, bcs=[Dirichlet(0.0)], degree=2)
    T = problem.T
    T.interpolate(lambda p: np.sin(3 * p[0]) * np.cos(2 * p[1]))
    state = T.x.array.copy()
    direction = fem.Function(T.function_space)
    direction.interpolate(lambda p: p[0] * (1 - p[1]) + 0.5 * p[1] ** 2)
    T.x.array[:] = state
    error, norm = jacobian_difference_error(problem, direction)
    assert error < 1e-7 * norm, (error, norm)

    T.x.array[:] = 0.0
    result = problem.solve()
    r = np.array(result.residual_norms) / result.residual_norms[0]
    assert result.converged and result.iterations <= 8, r
    assert all(b <= 10.0 * a**2 for a, b in zip(r[1:], r[2:], strict=False) if b > 1e-10), r


def test_the_solver_is_a_choice():
    """`solver=SNESSolver` (fe2hmm.macro.snes) drops in for the own Newton loop: the same
    iterates (residual norms to 1e-10 relative; its own tests find them bitwise equal)."""
    from fe2hmm.macro.snes import SNESSolver

    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 6, 6)
    results = []
    for solver in (None, SNESSolver):
        extra = {} if solver is None else {"solver": solver}
        problem = SteadyDiffusion(mesh, CubicFlux(), source=4.0, bcs=[Dirichlet(0.0)], **extra)
        results.append(problem.solve())
        if solver is not None:
            assert isinstance(problem.newton, SNESSolver)
            problem.newton.destroy()
    newton, snes = results
    assert newton.converged and snes.converged and snes.iterations == newton.iterations
    np.testing.assert_allclose(snes.residual_norms, newton.residual_norms, rtol=1e-10)
    with pytest.raises(TypeError, match="solver must be a solver class, got str"):
        SteadyDiffusion(mesh, CubicFlux(), solver="snes")


def test_transient_sine_mode_decays_with_the_backward_euler_amplification():
    """c ∂_t T = ∇·(k ∇T) on (0, 1) × (0, 1/8), T = 0 at x = 0, 1, insulated elsewhere,
    T(x, 0) = sin(πx), closed by a homogeneous micro-model (k = 3) with storage c = 0.5 (a
    solve-free model: the closure, not the cell, is under test here). Backward Euler
    maps the mode exactly to a_n = (1 + (k/c) π² Δt)^(-n) sin(πx); what is left is the P2 space
    error (measured 5.1e-6 relative for 32 cells), so 1e-4 is a bound with a margin of 20 that
    tells backward Euler (a_20 = 5.6e-3) from the exact decay exp(-(k/c) π² t) (2.7e-3, a
    relative difference of 1.08) by four orders of magnitude."""
    mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0.0, 0.0], [1.0, 0.125]], [32, 2])
    c, dt, n = 0.5, 0.005, 20
    problem = TransientDiffusion(
        mesh,
        LinearFlux(K),
        dt=dt,
        storage=c,
        bcs=[Dirichlet(0.0, lambda p: np.isclose(p[0], 0.0) | np.isclose(p[0], 1.0))],
        degree=2,
    )
    problem.u_n.interpolate(lambda p: np.sin(np.pi * p[0]))
    seen = []
    steps = problem.march(np.linspace(0.0, n * dt, n + 1), after_step=seen.append)
    assert len(steps) == len(seen) == n and all(s.iterations == 1 for s in steps)

    amplitude = (1.0 + K / c * np.pi**2 * dt) ** -n
    x = ufl.SpatialCoordinate(mesh)
    exact = amplitude * ufl.sin(ufl.pi * x[0])
    error = np.sqrt(
        mesh.comm.allreduce(fem.assemble_scalar(fem.form((problem.T - exact) ** 2 * ufl.dx)))
    )
    size = np.sqrt(mesh.comm.allreduce(fem.assemble_scalar(fem.form(exact**2 * ufl.dx))))
    assert error < 1e-4 * size, error / size
    assert abs(amplitude / np.exp(-K / c * np.pi**2 * n * dt) - 1) > 0.3
    np.testing.assert_array_equal(problem.u_n.x.array, problem.T.x.array)
    assert problem.dt.value == pytest.approx(dt, rel=1e-12)


def test_transient_storage_and_time_step_come_from_the_model():
    """A model with a `storage` output supplies c; `set_time_step` reaches the model."""

    class WithStorage(CubicFlux):
        output_shapes = {"flux": (2,), "storage": ()}

        def __init__(self):
            super().__init__()
            self.dt = None

        def set_time_step(self, dt):
            self.dt = dt

        def evaluate(self, inputs, parameters, *, tangents=True):
            out = super().evaluate(inputs, parameters, tangents=tangents)
            out.outputs["storage"] = np.full(inputs["gradient"].shape[0], 2.0)
            return out

    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    model = WithStorage()
    problem = TransientDiffusion(mesh, model, dt=0.1)
    assert problem.storage is problem.closure.outputs["storage"]
    problem.set_time_step(0.25)
    assert model.dt == 0.25 and problem.dt.value == 0.25
    with pytest.raises(ValueError, match="storage=2.0 given, but WithStorage outputs 'storage'"):
        TransientDiffusion(mesh, model, dt=0.1, storage=2.0)


def _one_line(info):
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda m: SteadyDiffusion(m, ElasticityCellModel(resolution=4)), ValueError,
         r"SteadyDiffusion binds the inputs \['gradient'\].*declares \['strain'\]"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), degree=0), ValueError,
         "degree must be an integer >= 1, got 0"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), quadrature_degree=-1), ValueError,
         "quadrature_degree must be an integer >= 0, got -1"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), source=ufl.as_vector([1.0, 0.0])), ValueError,
         r"source must be scalar, got UFL shape \(2,\)"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), source=float("nan")), ValueError,
         "source must be finite, got nan"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), boundary_flux=[1.0]), ValueError,
         r"boundary_flux\[0\] must be a pair \(ds measure, inflow g\), got 1.0"),
        (lambda m: SteadyDiffusion(m, 3.0), TypeError,
         "model must be a fe2hmm MicroModel or a UFL constitutive law"),
        (lambda m: SteadyDiffusion(m, lambda g: -g, parameters={"volume_fraction": 0.2}),
         ValueError, r"parameters \['volume_fraction'\] need a micro-model"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), bcs=[Dirichlet(0.0, component=1)]),
         ValueError, r"Dirichlet component must be None \(scalar unknown\), got 1"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), bcs=[Dirichlet((1.0, 2.0))]), ValueError,
         r"Dirichlet value for a scalar \(sub\)space must be a number, got shape \(2,\)"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), bcs=["left"]), TypeError,
         "bcs.0. is a str; expected a fe2hmm.macro.Dirichlet or a dolfinx.fem.DirichletBC"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), rtol=-1.0), ValueError,
         "rtol must be a finite number >= 0, got -1.0"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), max_iterations=0), ValueError,
         "SteadyDiffusion: max_iterations must be an integer >= 1, got 0"),
        (lambda m: TransientDiffusion(m, CubicFlux(), dt=0.1, tol=1e-8), TypeError,
         "TransientDiffusion: unknown keyword argument 'tol'; the solver keywords are solver, "
         "petsc_options, petsc_options_prefix, rtol, atol, max_iterations"),
        (lambda m: SteadyDiffusion(m, CubicFlux(), petsc_options="lu"), ValueError,
         "SteadyDiffusion: petsc_options must be a dict of PETSc options, got str"),
        (lambda m: TransientDiffusion(m, CubicFlux(), dt=0.0), ValueError,
         "TransientDiffusion: dt must be a finite number > 0, got 0.0"),
        (lambda m: TransientDiffusion(m, CubicFlux(), dt="short"), TypeError,
         "TransientDiffusion: dt must be a number, got str"),
    ],
)  # fmt: skip
def test_bad_input_is_named_in_one_line(build, error, match):
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    with pytest.raises(error, match=match) as info:
        build(mesh)
    _one_line(info)


def test_bad_use_after_construction_is_named():
    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 2, 2)
    problem = SteadyDiffusion(mesh, lambda g: -g, source=1.0, bcs=[Dirichlet(0.0)])
    problem.F = problem.F - 1.0 * problem.v * problem.dx  # allowed before the solver exists
    problem.solve()
    with pytest.raises(RuntimeError, match="cannot change after the solver was built") as info:
        problem.F = problem.F
    _one_line(info)
    with pytest.raises(ValueError, match=r"bc must be an index in \[0, 0\], got 1") as info:
        problem.reaction(1)
    with pytest.raises(ValueError, match=r"integrand must be scalar") as info:
        problem.functional(ufl.grad(problem.T))
    with pytest.raises(ValueError, match="dt must be a finite number > 0, got -1"):
        TransientDiffusion(mesh, lambda g: -g, dt=1.0).set_time_step(-1)
