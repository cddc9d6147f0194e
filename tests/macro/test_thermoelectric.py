"""fe2hmm.macro.thermoelectric: Joule heating closed by micro-models, steady and transient.

The reference is a 1D thermistor (a thin strip losing heat laterally): on (0, 1), anode at
x = 0 (φ = V), cathode at x = 1 (φ = 0), T = 1 at both, k = 1, lateral cooling f = -β(T - 1),
Arrhenius conductivity σ(T) = exp(Ea (1 - 1/T)) with Ea = 10, β = 20. The current I = σ|φ'| is
constant, -T'' + β(T - 1) = I²/σ(T) and V = I ∫ dx/σ. Its exact first integral about the
symmetric maximum T_m gives, with G' = 1/σ and T = T_m - (T_m - 1) s²,

    1/2 = ∫₀¹ 2 √(T_m - 1) / √Q ds,    V = 2I ∫₀¹ 2 √(T_m - 1) / (σ(T) √Q) ds,
    Q = 2 I² (G(T_m) - G(T)) / (T_m - T) - β (T_m + T - 2)

(smooth integrands, Gauss–Legendre to round-off): I and V as functions of T_m. V(T_m) has a
maximum V_c = 1.45255942696 at T_m = 1.30487: the thermal-runaway threshold (a fold of the
branch in V). scipy's solve_bvp agrees to 1e-12 (checked below). Also run under ``mpiexec -n 2``.
"""

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from conftest import jacobian_difference_error
from dolfinx import fem
from dolfinx import mesh as dmesh
from scipy.integrate import solve_bvp
from scipy.optimize import brentq, minimize_scalar

from fe2hmm.errors import NewtonConvergenceError
from fe2hmm.macro import (
    Dirichlet,
    SteadyThermoElectric,
    ThermalRunawayError,
    TransientThermoElectric,
    continuation,
)
from fe2hmm.micro.interface import MicroModel, MicroResult

pytestmark = pytest.mark.mpi

EA, BETA = 10.0, 20.0
_S, _WS = np.polynomial.legendre.leggauss(60)
_S, _WS = 0.5 * (_S + 1.0), 0.5 * _WS
_R, _WR = np.polynomial.legendre.leggauss(30)
_R, _WR = 0.5 * (_R + 1.0), 0.5 * _WR


def _sigma(T):
    return np.exp(EA * (1.0 - 1.0 / T))


def _thermistor(Tm):
    """(I, V) of the 1D thermistor whose maximum temperature is ``Tm`` (first integral)."""
    T = Tm - (Tm - 1.0) * _S**2
    mean = (1.0 / _sigma(T[:, None] + (Tm - T)[:, None] * _R[None, :])) @ _WR  # (G(Tm)-G)/(Tm-T)

    def integrals(I):  # noqa: E741
        g = 2.0 * np.sqrt(Tm - 1.0) / np.sqrt(2.0 * I**2 * mean - BETA * (Tm + T - 2.0))
        return g @ _WS, (g / _sigma(T)) @ _WS

    lowest = np.sqrt(np.max(BETA * (Tm + T - 2.0) / (2.0 * mean))) * (1.0 + 1e-9)
    current = brentq(lambda i: integrals(i)[0] - 0.5, lowest, 1e4, xtol=1e-15, rtol=1e-15)
    return current, 2.0 * current * integrals(current)[1]


_FOLD = minimize_scalar(
    lambda Tm: -_thermistor(Tm)[1], bounds=(1.1, 1.6), method="bounded", options={"xatol": 1e-10}
)
T_FOLD, V_FOLD = float(_FOLD.x), float(-_FOLD.fun)  # 1.304865, 1.4525594269629


def _lower_branch(V):
    """(I, T_max) on the cold branch at voltage V < V_FOLD."""
    Tm = brentq(lambda Tm: _thermistor(Tm)[1] - V, 1.0 + 1e-12, T_FOLD, xtol=1e-15)
    return _thermistor(Tm)[0], Tm


def _law(T):
    return ufl.exp(EA * (1.0 - 1.0 / T))


class Arrhenius(MicroModel):
    """σ(T) = exp(Ea (1 - 1/T)) with its exact tangent σ Ea / T²: a homogeneous micro-model."""

    input_shapes = {"T": ()}
    output_shapes = {"sigma": ()}

    def evaluate(self, inputs, parameters, *, tangents=True):
        T = inputs["T"]
        with np.errstate(over="ignore"):  # a wild corrector iterate: inf is a MicroSolveError
            sigma = np.exp(EA * (1.0 - 1.0 / T))
        result = MicroResult({"sigma": sigma})
        if tangents:
            result.tangents["sigma", "T"] = sigma * EA / T**2
        return result


def _ends(value):
    return lambda x: np.isclose(x[0], value)


def _thermistor_model(n=128, model=_law, degree=2, quadrature_degree=4, cls=None, **kwargs):
    mesh = dmesh.create_interval(MPI.COMM_WORLD, n, [0.0, 1.0])
    cls = SteadyThermoElectric if cls is None else cls
    return cls(
        mesh,
        model,
        anode=_ends(0.0),
        cathode=_ends(1.0),
        electrode_temperature=1.0,
        source=lambda T: -BETA * (T - 1.0),
        degree=degree,
        quadrature_degree=quadrature_degree,
        atol=1e-10,  # the residual's round-off floor on 128 P2 cells is ~1e-12
        **kwargs,
    )


def test_the_reference_agrees_with_solve_bvp():
    """The first-integral reference against scipy's solve_bvp (tol 1e-9) at V = 1: I and T_max
    to 1e-9 (measured 2e-13)."""
    current, Tm = _lower_branch(1.0)

    def rhs(x, y):  # y = (T, T', ∫ 1/σ)
        return np.vstack([y[1], BETA * (y[0] - 1.0) - current**2 / _sigma(y[0]), 1 / _sigma(y[0])])

    x = np.linspace(0.0, 1.0, 101)
    y = np.vstack([np.ones_like(x), np.zeros_like(x), np.zeros_like(x)])
    bc = lambda a, b: np.array([a[0] - 1, b[0] - 1, a[2]])  # noqa: E731
    bvp = solve_bvp(rhs, bc, x, y, tol=1e-9, max_nodes=100000)
    assert bvp.status == 0
    assert abs(current * bvp.sol(1.0)[2] - 1.0) < 1e-9  # V = I ∫ dx/σ
    assert abs(bvp.sol(0.5)[0] - Tm) < 1e-9
    assert 1.45255 < V_FOLD < 1.45256 and 1.3048 < T_FOLD < 1.3049


def test_steady_states_match_the_thermistor_and_the_current_is_conserved():
    """P2 on 128 cells (quadrature degree 4) at V = 0.5, 1.0, 1.4 on the cold branch: the
    current within 1e-5 relative of the reference (measured 4.4e-11, 2.7e-9, 2.4e-6 — the error
    grows towards the fold, where dI/dV is unbounded) and T_max within 1e-6 (measured 1e-11,
    1.2e-10, 3.8e-7); the current entering through the anode equals the one leaving through the
    cathode to 1e-12 relative (measured <= 2e-14: charge conservation of the discrete
    solution)."""
    problem = _thermistor_model()
    for V in (0.5, 1.0, 1.4):
        problem.solve_incrementally(lambda t: setattr(problem.voltage, "value", t), [V])
        current, Tm = _lower_branch(V)
        anode, cathode = problem.current("anode"), problem.current("cathode")
        assert abs(anode - current) < 1e-5 * current, (V, anode - current)
        assert abs(problem.max_temperature() - Tm) < 1e-6, (V, problem.max_temperature() - Tm)
        assert abs(anode - cathode) < 1e-12 * current, (V, anode - cathode)
    phi, T = problem.fields()
    assert problem.mesh.comm.allreduce(phi.x.array.max(initial=-1.0), op=MPI.MAX) == 1.4
    assert problem.mesh.comm.allreduce(T.x.array.min(initial=9.0), op=MPI.MIN) == 1.0


def test_the_runaway_threshold_is_the_fold_of_the_continuation():
    """Pseudo-arclength continuation in the voltage from V = 0 finds the thermal-runaway fold
    at V_c within 2e-5 of the reference (measured 7.9e-6 on 128 P2 cells; 1.1e-4, 7.9e-6,
    5.1e-7 on 64, 128, 256: h⁴, see the slow test), and passes it onto the hot branch where V
    falls while T_max rises."""
    problem = _thermistor_model()
    result = continuation(
        problem, problem.voltage, 0.0, 2.0, step=0.2, max_points=12, monitor=_max_temperature
    )
    assert len(result.folds) == 1
    fold = result.folds[0]
    assert fold.converged and abs(fold.parameter - V_FOLD) < 2e-5, fold.parameter - V_FOLD
    assert abs(fold.monitor - T_FOLD) < 1e-4  # measured 4.0e-5 (T_m is flat in V at the fold)
    after = result.points[fold.after + 1 :]
    assert len(after) >= 3 and np.all(np.diff([p.parameter for p in after]) < 0)
    assert np.all(np.diff([p.monitor for p in after]) > 0)
    assert after[-1].monitor > 1.5


def _max_temperature(problem):
    return problem.max_temperature()


@pytest.mark.slow
def test_the_fold_voltage_converges_as_h4():
    """V_c of P2 on 64, 128, 256 cells: errors 1.1e-4, 7.9e-6, 5.1e-7 (ratios 14.5, 15.6)."""
    errors = []
    for n in (64, 128, 256):
        problem = _thermistor_model(n)
        result = continuation(problem, problem.voltage, 0.0, 2.0, step=0.2, max_points=12)
        errors.append(abs(result.folds[0].parameter - V_FOLD))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[-1] < 1e-6 and np.all(ratios > 12.0), (errors, ratios)


def test_homogeneous_micro_model_reproduces_the_law_to_round_off():
    """FE² with the Arrhenius micro-model (σ and its exact tangent at the same quadrature points)
    gives the UFL-law solution to 1e-12 (measured: bitwise equal) with the same Newton iterates
    (quadratic convergence through the chain rule ∂F/∂σ · dσ/dT); a continuation run through
    the fold follows the same points (λ and T_max to 1e-9)."""
    law = _thermistor_model(32, degree=1, quadrature_degree=2, voltage=1.3)
    fe2 = _thermistor_model(32, model=Arrhenius(), degree=1, quadrature_degree=2, voltage=1.3)
    assert law.closure is None and fe2.closure is not None
    a, b = law.solve(), fe2.solve()
    assert a.iterations == b.iterations <= 6
    np.testing.assert_allclose(b.residual_norms, a.residual_norms, rtol=1e-6, atol=1e-13)
    np.testing.assert_allclose(fe2.u.x.array, law.u.x.array, rtol=1e-12, atol=1e-12)
    assert fe2.current() == pytest.approx(law.current(), rel=1e-12)

    runs = []
    for problem in (law, fe2):
        problem.u.x.array[:] = 0.0
        problem.set_temperature(1.0)
        runs.append(
            continuation(
                problem, problem.voltage, 0.0, 2.0, step=0.3, max_points=12,
                monitor=_max_temperature,
            )
        )  # fmt: skip
    np.testing.assert_allclose(runs[1].parameters, runs[0].parameters, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(runs[1].monitors, runs[0].monitors, rtol=1e-9)
    assert len(runs[0].folds) == len(runs[1].folds) == 1


def test_jacobian_equals_a_finite_difference_of_the_residual():
    """The assembled Jacobian (∂F/∂u plus the closure's chain-rule term) applied to a direction
    equals the central difference of the residual (closure re-evaluated) with h = 1e-5 to 1e-7
    relative (truncation O(h²) and round-off O(ε/h) leave 1.8e-9 measured; a missing dσ/dT
    term is an O(1) error)."""
    problem = _thermistor_model(16, model=Arrhenius(), degree=2, voltage=1.2)
    u = problem.u
    state_of = fem.Function(problem.V)
    state_of.interpolate(
        lambda x: np.vstack([1 - x[0] + 0.1 * np.sin(3 * x[0]), 1 + x[0] * (1 - x[0])])
    )
    state = state_of.x.array.copy()
    direction = fem.Function(problem.V)
    direction.interpolate(lambda x: np.vstack([np.cos(2 * x[0]), 0.5 + x[0] ** 2]))
    u.x.array[:] = state
    error, norm = jacobian_difference_error(problem, direction)
    assert error < 1e-7 * norm, (error, norm)


def test_transient_relaxes_below_the_threshold_and_runs_away_above_it():
    """Backward Euler from T = 1 (c = 1, P2 on 32 cells). At V = 1.3 < V_c (Δt = 0.05) the state
    relaxes monotonically to the steady cold state (T_max to 1e-8 at t = 3; measured 7e-12).
    At V = 1.6 > V_c (Δt = 0.01) no cold state exists: the temperature rises ever faster
    through the largest cold-branch temperature T_c = 1.305 (the fold's, for any V) and the
    march stops with
    ThermalRunawayError at T_max > 1.4 (t ≈ 0.18). Without a limit the fixed step cannot follow
    the explosive phase (T jumps towards the hot branch above T = 25 within ~0.02): Newton
    fails (measured after T_max = 2.3) and says so."""
    steady = _thermistor_model(32, voltage=1.3)
    steady.solve()
    transient = _thermistor_model(32, cls=TransientThermoElectric, dt=0.05, voltage=1.3)
    hottest = []

    def record(step):
        hottest.append(transient.max_temperature())

    steps = transient.march(np.linspace(0.0, 3.0, 61), after_step=record)
    assert len(steps) == 60 and np.all(np.diff(hottest) >= -1e-12)
    assert abs(hottest[-1] - steady.max_temperature()) < 1e-8, hottest[-1]

    transient.set_initial_temperature(1.0)
    transient.voltage.value = 1.6
    hottest.clear()
    times = np.linspace(0.0, 1.0, 101)
    with pytest.raises(
        ThermalRunawayError, match="thermal runaway: max T = .* exceeds 1.4"
    ) as info:
        transient.march(times, after_step=record, max_temperature=1.4)
    _one_line(info)
    error = info.value
    assert error.temperature > 1.4 and len(error.steps) == len(hottest) < 30
    assert error.time == pytest.approx(0.01 * len(hottest))
    assert np.all(np.diff(hottest) > 0) and max(hottest[:-1]) <= 1.4 < hottest[-1]
    assert np.all(np.diff(np.diff(hottest)[-8:]) > 0)  # ever faster at the end
    assert any(t > T_FOLD for t in hottest[:-1])

    transient.set_initial_temperature(1.0)
    with pytest.raises(NewtonConvergenceError, match="Newton did not converge") as info:
        transient.march(times)
    assert transient.max_temperature() > T_FOLD  # u_n: the last converged step


def test_temperature_conditions_and_a_boundary_heat_flux_on_a_strip():
    """A 2D strip with Newton cooling g = -h (T - 1) on its long sides (boundary_flux, a callable
    of T) and T held by temperature_bcs on the cathode only: the current is conserved (anode =
    cathode to 1e-10; measured 2e-12) and the heat balance holds: the Joule heat
    ∫σ|∇φ|² dx = V·I leaves through the cooled sides and the held cathode (reaction), to 1e-9
    relative (measured 2e-12)."""
    mesh = dmesh.create_rectangle(MPI.COMM_WORLD, [[0.0, 0.0], [1.0, 0.1]], [24, 3])
    facets = dmesh.locate_entities_boundary(
        mesh, 1, lambda x: np.isclose(x[1], 0.0) | np.isclose(x[1], 0.1)
    )
    tags = dmesh.meshtags(mesh, 1, facets, np.full(facets.size, 1, np.int32))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)
    problem = SteadyThermoElectric(
        mesh,
        _law,
        anode=_ends(0.0),
        cathode=_ends(1.0),
        voltage=1.0,
        temperature_bcs=[Dirichlet(1.0, _ends(1.0))],
        boundary_flux=[(ds, lambda T: -1.0 * (T - 1.0))],
        initial_temperature=1.0,
    )
    assert len(problem.bcs) == 3
    problem.solve()
    anode, cathode = problem.current("anode"), problem.current("cathode")
    assert abs(anode - cathode) < 1e-10 * anode  # measured 2e-12
    joule = problem.functional(problem.joule_heat)()
    assert joule == pytest.approx(1.0 * anode, rel=1e-9)
    cooled = problem.functional(problem.T - 1.0, ds)()
    held = problem.reaction(2, component=1)  # heat leaving through the cathode is -held
    assert joule == pytest.approx(cooled - held, rel=1e-9)
    assert problem.max_temperature() > 1.0


def _one_line(info):
    message = str(info.value)
    assert "\n" not in message
    return message


class NoTangent(Arrhenius):
    tangent_blocks = []


class TwoOutputs(Arrhenius):
    output_shapes = {"sigma": (), "extra": ()}


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"model": NoTangent()}, ValueError,
         r"NoTangent declares no tangent block \('sigma', 'T'\); Newton's Jacobian needs dσ/dT"),
        ({"model": TwoOutputs()}, ValueError,
         r"binds the inputs \['temperature'\].*declares \['T'\]"),
        ({"model": TwoOutputs(), "names": ("T", "missing")}, ValueError,
         r"uses the output 'missing'; TwoOutputs declares \['extra', 'sigma'\]"),
        ({"names": "T"}, ValueError, "names must be a pair of strings, got 'T'"),
        ({"model": 3.0}, TypeError, "model must be a fe2hmm MicroModel or a UFL constitutive law"),
        ({"model": lambda T: ufl.as_vector([T, T])}, ValueError,
         r"the conductivity must be scalar, the law returned UFL shape \(2,\)"),
        ({"anode": "left"}, TypeError,
         "anode must be a marker x -> bool or local facet indices"),
        ({"cathode": lambda x: np.isclose(x[0], 7.0)}, ValueError,
         "the cathode selects no boundary facet"),
        ({"cathode": _ends(0.0)}, ValueError, r"anode and cathode share \d+ facet"),
        ({"voltage": "high"}, TypeError, "voltage must be a number, got str"),
        ({"voltage": float("nan")}, ValueError, "voltage must be finite, got nan"),
        ({"electrode_temperature": None, "temperature_bcs": [Dirichlet(1.0, component=1)]},
         ValueError, "temperature_bcs.0. is on the temperature already"),
        ({"temperature_bcs": [1.0]}, TypeError, r"temperature_bcs\[0\] is a float"),
        ({"source": lambda T: "hot"}, TypeError, r"source\(T\) must return a scalar UFL"),
        ({"thermal_conductivity": ufl.as_vector([1.0, 2.0])}, ValueError,
         r"thermal_conductivity must be scalar, got UFL shape \(2,\)"),
        ({"boundary_flux": [1.0]}, ValueError,
         r"boundary_flux\[0\] must be a pair \(ds measure, inflow g\), got 1.0"),
        ({"degree": 0}, ValueError, "degree must be an integer >= 1, got 0"),
        ({"rtol": -1.0}, ValueError, "SteadyThermoElectric: rtol must be a finite number >= 0"),
        ({"tol": 1.0}, TypeError, "SteadyThermoElectric: unknown keyword argument 'tol'"),
    ],
)  # fmt: skip
def test_bad_input_is_named_in_one_line(kwargs, error, match):
    mesh = dmesh.create_interval(MPI.COMM_WORLD, 4, [0.0, 1.0])
    arguments = {
        "model": _law,
        "anode": _ends(0.0),
        "cathode": _ends(1.0),
        "electrode_temperature": 1.0,
        **kwargs,
    }
    model = arguments.pop("model")
    with pytest.raises(error, match=match) as info:
        SteadyThermoElectric(mesh, model, **arguments)
    _one_line(info)


def test_bad_transient_input_and_use_are_named():
    mesh = dmesh.create_interval(MPI.COMM_WORLD, 4, [0.0, 1.0])
    common = {"anode": _ends(0.0), "cathode": _ends(1.0), "electrode_temperature": 1.0}
    with pytest.raises(ValueError, match="TransientThermoElectric: dt must be a finite number > 0"):
        TransientThermoElectric(mesh, _law, dt=0.0, **common)
    problem = TransientThermoElectric(mesh, _law, dt=0.1, **common)
    with pytest.raises(ValueError, match="electrode must be 'anode' or 'cathode', got 'left'"):
        problem.current("left")
    with pytest.raises(ValueError, match="max_temperature must be finite, got nan"):
        problem.march([0.0, 0.1], max_temperature=float("nan"))
