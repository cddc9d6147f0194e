"""Error-controlled surrogate over a scalar micro parameter; reuse statistics; progress bars."""

import numpy as np
import pytest
from conftest import MaxwellGarnett

from fe2hmm import analytic
from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.micro.interface import LinearMicroModel
from fe2hmm.progress import progress, progress_enabled
from fe2hmm.reuse import ParameterSurrogateModel
from fe2hmm.reuse.surrogate import ParameterSurrogate


def smooth(p):
    """A smooth tensor-valued T(p): Maxwell Garnett K*(φ) (contrast 10) and exp/sin terms."""
    return np.array([analytic.maxwell_garnett(1.0, 10.0, p), np.exp(p), np.sin(3.0 * p)])


def test_estimate_bounds_the_true_error_on_held_out_points_at_the_stated_rates():
    """Estimate |Q - L| = O(h²) bounds the error of the returned quadratic Q, which is O(h³)."""
    held_out = np.random.default_rng(3).uniform(0.1, 0.5, 400)
    truth = np.array([smooth(p) for p in held_out])
    estimates, errors, spacings = [], [], []
    for m in (5, 9, 17, 33, 65):
        s = ParameterSurrogate(tolerance=1.0)
        for p in np.linspace(0.1, 0.5, m):
            s.add(p, smooth(p))
        pred = s.predict(held_out)
        assert pred.trained.all()
        scale = np.abs(s.values).max()
        error = np.abs(pred.values - truth).max(axis=1) / scale
        assert np.all(error <= pred.estimates), m  # the bound holds at every held-out point
        estimates.append(pred.estimates.max())
        errors.append(error.max())
        spacings.append(0.4 / (m - 1))
    est_rate = np.polyfit(np.log(spacings), np.log(estimates), 1)[0]
    err_rate = np.polyfit(np.log(spacings), np.log(errors), 1)[0]
    assert 1.8 < est_rate < 2.3, est_rate
    assert err_rate > 2.7, err_rate


def test_serve_trains_adaptively_and_extends_outside_the_trained_range():
    calls = []

    def solve(p):
        calls.append(p)
        return smooth(p)

    s = ParameterSurrogate(tolerance=1e-4)
    requests = np.random.default_rng(0).uniform(0.1, 0.3, 300)
    values, estimates, solved = s.serve(requests, solve)
    assert estimates.max() <= 1e-4 and len(calls) < 30
    truth = np.array([smooth(p) for p in requests])
    assert np.abs(values - truth).max() / np.abs(s.values).max() <= 1e-4
    n = len(calls)
    assert not s.predict(np.array([0.45])).trained[0]
    values, estimates, _ = s.serve(np.array([0.2, 0.45]), solve)
    assert len(calls) > n and 0.45 in calls  # the new end is a real solve
    np.testing.assert_allclose(values[1], smooth(0.45), rtol=1e-14)
    assert s.predict(np.array([0.4])).trained[0]


def test_non_smooth_tensor_falls_back_to_exact_solves():
    """A kink (e.g. a percolation threshold) cannot be interpolated: bisection stops at the
    minimum spacing and the requests near it are solved exactly, never served inaccurately."""
    calls = []

    def kink(p):
        calls.append(p)
        return np.array([1.0 + abs(p - 0.3)])

    s = ParameterSurrogate(tolerance=1e-8, min_spacing=1e-4)
    requests = np.linspace(0.2, 0.4, 41)
    values, estimates, _ = s.serve(requests, kink)
    truth = 1.0 + np.abs(requests - 0.3)
    assert np.all(np.abs(values[:, 0] - truth) <= 1e-8 * np.abs(s.values).max() + 1e-15)
    assert estimates.max() <= 1e-8 and len(calls) < 200


def test_bad_settings_are_rejected():
    for bad in (0.0, -1e-3, np.nan, np.inf):
        with pytest.raises(ValueError, match="tolerance"):
            ParameterSurrogate(tolerance=bad)

    class TwoParameters(LinearMicroModel):
        input_shapes = {"g": (2,)}
        output_shapes = {"q": (2,)}
        parameter_shapes = {"a": (), "b": ()}

        def effective_tensors(self, parameters):
            return {("q", "g"): np.eye(2)}

    with pytest.raises(ValueError, match="one scalar parameter"):
        ParameterSurrogateModel(TwoParameters())
    with pytest.raises(TypeError, match="not linear"):
        from test_quadrature import TwoOutputs

        ParameterSurrogateModel(TwoOutputs())


def test_statistics_account_for_every_request():
    phi = np.random.default_rng(1).uniform(0.1, 0.5, 200)
    phi[100:] = phi[:100]  # every value twice: dedupe halves the requests
    g = np.ones((200, 2))
    naive = MaxwellGarnett()  # no wrapper: the naive baseline
    naive.evaluate({"gradient": g}, {"volume_fraction": phi})
    assert naive.statistics.micro_requests == 200 == naive.statistics.micro_solves

    model = ParameterSurrogateModel(MaxwellGarnett(), 1e-4)
    out = model.evaluate({"gradient": g}, {"volume_fraction": phi}).outputs["flux"]
    ref = naive.evaluate({"gradient": g}, {"volume_fraction": phi}).outputs["flux"]
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()
    st = model.statistics
    assert st.points_requested == 200 and st.micro_requests == 100
    solved_requests = st.micro_requests - st.surrogate_hits - st.cache_hits
    assert 0 < solved_requests <= st.micro_solves < 50  # 33 measured, instead of 100
    assert "from surrogate" in st.summary() and st.as_dict()["surrogate_hits"] == st.surrogate_hits


def test_real_cells_served_within_tolerance_against_the_exact_laminate():
    """Laminate cells: K*(φ) is exact on every conforming mesh, so the only error is the
    surrogate's; it stays below the tolerance and below its own estimate."""
    model = ParameterSurrogateModel(
        DiffusionCellModel(rve="laminate", matrix=1.0, inclusion=10.0, resolution=8), 1e-3
    )
    surrogate = model.surrogate
    phi = np.random.default_rng(2).uniform(0.1, 0.6, 150)
    g = np.ones((phi.size, 2))
    result = model.evaluate({"gradient": g}, {"volume_fraction": phi})
    K = -result.tangents["flux", "gradient"]
    exact = np.array([analytic.laminate_conductivity(1.0, 10.0, f) for f in phi])
    error = np.abs(K - exact).reshape(phi.size, -1).max(axis=1) / np.abs(exact).max()
    assert error.max() <= 1e-3
    assert np.all(error <= surrogate.predict(phi).estimates + 1e-12)
    assert model.statistics.micro_solves <= 25  # instead of 150
    # the output bounds follow from the tensor bounds: |ΔK g| <= sqrt(4) max|ΔK_ij| |g|
    np.testing.assert_allclose(
        result.error_bounds["flux"], 2.0 * result.tensor_errors * np.sqrt(2.0), rtol=1e-14
    )
    flux_error = np.linalg.norm(result.outputs["flux"] + np.einsum("nij,nj->ni", exact, g), axis=1)
    assert np.all(flux_error <= result.error_bounds["flux"] + 1e-12)


def test_progress_bars_are_quiet_in_ci_and_pipes(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("FE2HMM_PROGRESS", raising=False)
    assert not progress_enabled()
    monkeypatch.setenv("FE2HMM_PROGRESS", "0")
    assert not progress_enabled()
    items = list(range(50))
    assert list(progress(items)) == items
    monkeypatch.setenv("FE2HMM_PROGRESS", "1")
    from mpi4py import MPI

    assert progress_enabled() == (MPI.COMM_WORLD.rank == 0)  # never on other ranks
    assert list(progress(items)) == items
