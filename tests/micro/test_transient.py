"""Micro-transient diffusion cells: exact modal time integration against direct time stepping,
stationary and instantaneous limits, tangents, memory bookkeeping and input validation."""

import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import ufl
from dolfinx import fem

from fe2hmm import analytic
from fe2hmm.micro.cells.diffusion import homogenize_diffusion
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.transient import TransientDiffusionCellModel, cell_modes
from fe2hmm.rve import create
from fe2hmm.rve.cell import INCLUSION, MATRIX
from fe2hmm.rve.morph import CellFamily

PROPS = {MATRIX: (1.0, 1.0), INCLUSION: (10.0, 3.0)}


@pytest.fixture(scope="module")
def circle():
    """The cell TransientDiffusionCellModel("circle", resolution=12) morphs for φ = 0.4."""
    return CellFamily("circle", 2, 12).create(0.4)


def reduced_system(cell, props):
    """Independent assembly of the periodic cell system ``M ẇ + A w + B G = 0`` and ``K̄|Y|``."""
    V = fem.functionspace(cell.mesh, ("Lagrange", 1))
    Q = fem.functionspace(cell.mesh, ("DG", 0))
    k, c = fem.Function(Q), fem.Function(Q)
    tags = cell.cell_tags
    for phase, (kp, cp) in props.items():
        k.x.array[tags.indices[tags.values == phase]] = kp
        c.x.array[tags.indices[tags.values == phase]] = cp
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    n = V.dofmap.index_map.size_local
    A = fem.assemble_matrix(fem.form(k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx))
    M = fem.assemble_matrix(fem.form(c * u * v * ufl.dx))
    A = A.to_scipy().tocsr()[:n, :n]
    M = M.to_scipy().tocsr()[:n, :n]
    X = V.tabulate_dof_coordinates()[:n, :2]
    pmap = PeriodicDofMap(V, cell.lower, cell.upper)
    return (
        pmap.reduce_matrix(A).to_scipy(),
        pmap.reduce_matrix(M).to_scipy(),
        pmap.reduce_vector(A @ X),
        X.T @ (A @ X),
        cell.volume,
    )


def direct_average_flux(system, w0, gradient, length, steps):
    """Backward Euler micro steps with a time-dependent gradient; flux averaged over the window
    by the rectangle rule at the step ends (first order), and the end state."""
    A, M, B, KY, volume = system
    dt = length / steps
    lu = spla.splu((M + dt * A).tocsc())
    w, total = w0.copy(), 0.0
    for i in range(steps):
        G = gradient((i + 1) * dt)
        w = lu.solve(M @ w - dt * (B @ G))
        total = total - (KY @ G + B.T @ w) / volume * dt
    return total / length, w


def richardson(system, w0, gradient, length, steps):
    """Second-order result from ``steps`` and ``2 steps`` (both errors are O(dt))."""
    q1, w1 = direct_average_flux(system, w0, gradient, length, steps)
    q2, w2 = direct_average_flux(system, w0, gradient, length, 2 * steps)
    return 2 * q2 - q1, 2 * w2 - w1


def test_modes_give_the_stationary_tensor_and_the_window_limits(circle):
    modes = cell_modes(circle, PROPS)
    K = homogenize_diffusion(circle, {p: k for p, (k, _) in PROPS.items()}).effective_tensor
    # both are the same discrete cell problem: equal to round-off
    assert np.allclose(modes.effective_tensor, K, rtol=0, atol=1e-10 * np.abs(K).max())
    assert modes.dropped_weight < 1e-9
    # τ → 0: the fluctuation has not formed, the flux sees the arithmetic mean <k>
    assert np.allclose(modes.window_tensor(0.0), modes.mean_conductivity, atol=1e-12)
    assert np.allclose(modes.window_tensor(math.inf), K, atol=1e-10)
    # monotone relaxation between the two (the response is a sum of decaying exponentials)
    traces = [np.trace(modes.window_tensor(t)) for t in np.logspace(-4, 1, 12)]
    assert np.all(np.diff(traces) < 0)


def test_laminate_means_are_exact_and_tail_defines_the_relaxation_time():
    cell = create("laminate", dim=2, volume_fraction=0.3, resolution=16)
    props = {MATRIX: (1.0, 2.0), INCLUSION: (5.0, 0.5)}
    model = TransientDiffusionCellModel("laminate", props[MATRIX], props[INCLUSION], resolution=16)
    modes = cell_modes(cell, props)
    k_mean = analytic.arithmetic_mean(1.0, 5.0, 0.3)
    assert np.allclose(modes.mean_conductivity, k_mean * np.eye(2), atol=1e-12)
    assert modes.mean_storage == pytest.approx(0.7 * 2.0 + 0.3 * 0.5, rel=1e-12)
    # laminate K* is exact in FE (harmonic across, arithmetic along the layers)
    exact = analytic.laminate_conductivity(1.0, 5.0, 0.3, dim=2, normal=0)
    assert np.allclose(modes.effective_tensor, exact, atol=1e-10)
    tau = model.relaxation_time(0.3)
    long = 1e4 * tau
    own, _ = model.modes(0.3)
    tail = np.trace(model.window_tensor(0.3, long) - own.effective_tensor) * long / tau
    assert tail == pytest.approx(np.trace(own.mean_conductivity - own.effective_tensor), 1e-3)
    # τ_relax scales with the square of the cell size
    model.cell_size = 0.1
    assert model.relaxation_time(0.3) == pytest.approx(0.01 * tau, rel=1e-12)


@pytest.mark.parametrize("scheme", ["backward_euler", "crank_nicolson"])
def test_memory_closure_equals_direct_time_stepping_over_two_steps(circle, scheme):
    """Two macro steps with carried state; the gradient is constant (BE) or linear (CN) over
    each step. Tolerance 2e-4: Richardson-extrapolated BE micro steps (error O(δt²))."""
    system = reduced_system(circle, PROPS)
    model = TransientDiffusionCellModel(
        "circle", PROPS[MATRIX], PROPS[INCLUSION], scheme=scheme, resolution=12
    )
    modes, _ = model.modes(0.4)
    tau = model.relaxation_time(0.4)
    dt = 0.7 * tau
    model.set_time_step(dt)
    G = np.array([[0.3, -0.2], [1.0, 0.5], [-0.4, 0.8]])  # G_0, G_1, G_2
    A, M, B, _, _ = system
    # equilibrium with G_0 (c-weighted mean irrelevant for the flux)
    w = -spla.spsolve((A + 1e-12 * M).tocsc(), B @ G[0])
    fluxes_direct, fluxes_model = [], []
    phi = np.full(1, 0.4)
    for n in range(2):
        if scheme == "backward_euler":
            path = lambda t, n=n: G[n + 1]  # noqa: E731
        else:
            path = lambda t, n=n: G[n] + (t / dt) * (G[n + 1] - G[n])  # noqa: E731
        q, w = richardson(system, w, path, dt, 400)
        fluxes_direct.append(q)
        result = model.evaluate(
            {"gradient": G[n + 1][None], "previous_gradient": G[n][None]}, {"volume_fraction": phi}
        )
        model.commit()
        fluxes_model.append(result.outputs["flux"][0])
    scale = np.abs(fluxes_direct).max()
    assert np.allclose(fluxes_model, fluxes_direct, atol=2e-4 * scale)
    assert result.outputs["storage"][0] == pytest.approx(modes.mean_storage)


def test_hmm_window_restarts_from_equilibrium_and_averages_over_tau(circle):
    system = reduced_system(circle, PROPS)
    A, M, B, _, _ = system
    model = TransientDiffusionCellModel("circle", PROPS[MATRIX], PROPS[INCLUSION], resolution=12)
    tau = model.relaxation_time(0.4)
    model.window = 2 * tau
    model.set_time_step(10 * tau)
    G0, G1 = np.array([1.0, 0.0]), np.array([0.5, 1.0])
    w0 = -spla.spsolve((A + 1e-12 * M).tocsc(), B @ G0)
    q, _ = richardson(system, w0, lambda t: G1, 2 * tau, 400)
    for _ in range(2):  # no state: the same answer every step, commit or not
        out = model.evaluate(
            {"gradient": G1[None], "previous_gradient": G0[None]}, {"volume_fraction": [0.4]}
        )
        model.commit()
        assert np.allclose(out.outputs["flux"][0], q, atol=2e-4 * np.abs(q).max())
    # the documented formula q = -K* G1 - (K_τ - K*)(G1 - G0)
    K_star, K_tau = model.effective_tensor(0.4), model.window_tensor(0.4, 2 * tau)
    assert np.allclose(out.outputs["flux"][0], -K_star @ G1 - (K_tau - K_star) @ (G1 - G0))


@pytest.mark.parametrize(
    "scheme,window", [("backward_euler", None), ("crank_nicolson", None), ("crank_nicolson", 0.3)]
)
def test_tangents_are_the_derivatives_of_the_outputs(scheme, window):
    model = TransientDiffusionCellModel(
        "circle", PROPS[MATRIX], PROPS[INCLUSION], scheme=scheme, window=window, resolution=8
    )
    tau = model.relaxation_time(0.3)
    model.window = None if window is None else window * tau
    model.set_time_step(tau)
    rng = np.random.default_rng(1)
    G1, G0 = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    phi = {"volume_fraction": np.full(4, 0.3)}
    model.evaluate({"gradient": G1, "previous_gradient": G0}, phi)
    model.commit()  # a non-equilibrium carried state
    base = model.evaluate({"gradient": G1, "previous_gradient": G0}, phi)
    for name in ("gradient", "previous_gradient"):
        for j in range(2):
            inputs = {"gradient": G1.copy(), "previous_gradient": G0.copy()}
            inputs[name][:, j] += 1.0  # linear model: a unit difference is the derivative
            out = model.evaluate(inputs, phi).outputs["flux"]
            fd = out - base.outputs["flux"]
            assert np.allclose(base.tangents["flux", name][:, :, j], fd, atol=1e-12)


def test_homogeneous_cell_and_stationary_window_give_the_theta_scheme_flux():
    model = TransientDiffusionCellModel(
        "circle", (2.0, 1.0), (2.0, 1.0), scheme="crank_nicolson", resolution=8
    )
    model.set_time_step(1e-3)
    G1, G0 = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])
    out = model.evaluate({"gradient": G1, "previous_gradient": G0}, {"volume_fraction": [0.3]})
    assert np.allclose(out.outputs["flux"], -2.0 * (G1 + G0) / 2, atol=1e-12)
    stationary = TransientDiffusionCellModel(
        "circle", PROPS[MATRIX], PROPS[INCLUSION], window=math.inf, resolution=8
    )
    stationary.set_time_step(1.0)
    out = stationary.evaluate({"gradient": G1, "previous_gradient": G0}, {"volume_fraction": [0.3]})
    assert np.allclose(out.outputs["flux"][0], -stationary.effective_tensor(0.3) @ G1[0])


def test_memory_vanishes_linearly_as_the_cell_relaxes_faster_than_the_step():
    """A gradient ramp: the memory closure's deviation from -K*G is O(τ_relax/Δt)."""
    model = TransientDiffusionCellModel("circle", PROPS[MATRIX], PROPS[INCLUSION], resolution=8)
    tau = model.relaxation_time(0.3)
    K_star = model.effective_tensor(0.3)
    deviations = []
    for ratio in (0.1, 0.01, 0.001):
        model.reset()
        model.set_time_step(tau / ratio)
        for n in range(3):
            G1, G0 = np.array([[n + 1.0, 0.0]]), np.array([[float(n), 0.0]])
            out = model.evaluate(
                {"gradient": G1, "previous_gradient": G0}, {"volume_fraction": [0.3]}
            )
            model.commit()
        deviations.append(np.abs(out.outputs["flux"][0] + K_star @ G1[0]).max())
    rates = np.log10(np.array(deviations[:-1]) / deviations[1:])
    assert np.allclose(rates, 1.0, atol=0.05), deviations


def test_evaluation_is_pure_until_commit_and_rollback_keeps_the_memory():
    model = TransientDiffusionCellModel("circle", PROPS[MATRIX], PROPS[INCLUSION], resolution=8)
    model.set_time_step(model.relaxation_time(0.3))
    args = ({"gradient": [[1.0, 0.0]], "previous_gradient": [[0.0, 0.0]]},)
    phi = {"volume_fraction": [0.3]}
    first = model.evaluate(*args, phi).outputs["flux"]
    again = model.evaluate(*args, phi).outputs["flux"]
    assert np.array_equal(first, again)
    model.rollback()
    assert np.array_equal(model.evaluate(*args, phi).outputs["flux"], first)
    model.commit()
    after = model.evaluate(*args, phi).outputs["flux"]
    assert not np.allclose(after, first)  # the cell has partly relaxed towards K* G
    with pytest.raises(RuntimeError, match="changed under the carried micro state"):
        model.evaluate(*args, {"volume_fraction": [0.35]})


def test_bad_input_is_rejected_with_the_value_named():
    with pytest.raises(ValueError, match="storage > 0"):
        TransientDiffusionCellModel(matrix=(1.0, 0.0))
    with pytest.raises(ValueError, match="conductivity > 0"):
        TransientDiffusionCellModel(inclusion=(-1.0, 1.0))
    with pytest.raises(ValueError, match="two numbers"):
        TransientDiffusionCellModel(matrix=1.0)
    with pytest.raises(ValueError, match="unknown scheme 'bdf2'"):
        TransientDiffusionCellModel(scheme="bdf2")
    with pytest.raises(ValueError, match="window must be"):
        TransientDiffusionCellModel(window=0.0)
    with pytest.raises(ValueError, match="cell_size"):
        TransientDiffusionCellModel(cell_size=-1.0)
    model = TransientDiffusionCellModel(window=0.5, resolution=8)
    with pytest.raises(RuntimeError, match="set_time_step"):
        model.evaluate(
            {"gradient": [[1.0, 0]], "previous_gradient": [[0, 0]]}, {"volume_fraction": [0.3]}
        )
    with pytest.raises(ValueError, match="longer than the macro step"):
        model.set_time_step(0.1)
    with pytest.raises(ValueError, match="time step must be"):
        model.set_time_step(float("nan"))
    with pytest.raises(ValueError, match="max_dofs=10"):
        cell_modes(create("circle", volume_fraction=0.3, resolution=8), PROPS, max_dofs=10)
