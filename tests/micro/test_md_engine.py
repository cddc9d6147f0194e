"""The Verlet-list engine (one box atom-parallel, many boxes box-parallel) against the reference
kernels: identical trajectories, complete neighbour lists after rebuilds, per-box seeds."""

import numpy as np
import pytest

from fe2hmm.micro.particles.engine import run_box, run_boxes
from fe2hmm.micro.particles.lj import forces, langevin
from fe2hmm.micro.particles.md import lattice_box


def _start(lattice, cells, temperature, seed=0):
    box = lattice_box(lattice, cells, cutoff=2.5)
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=np.sqrt(temperature), size=box.x.shape)
    return box, v - v.mean(axis=0)


@pytest.mark.parametrize("lattice,cells", [("fcc", 4), ("triangular", (6, 4))])
def test_engine_reproduces_the_reference_trajectory(lattice, cells):
    """NVE, 50 steps: positions equal to round-off and the same stress samples (1e-9)."""
    box, v0 = _start(lattice, cells, 0.2)
    x_ref, v_ref = box.x.copy(), v0.copy()
    s_ref, k_ref, _ = langevin(x_ref, v_ref, box.H, 2.5, 0.002, 0.0, 0.0, 50, 1, 5)
    x1, v1 = box.x.copy(), v0.copy()
    s1, k1 = run_box(x1, v1, box.H, 2.5, 0.002, 50, every=5)
    X, V = np.stack([box.x] * 3), np.stack([v0] * 3)
    S, K = run_boxes(X, V, np.stack([box.H] * 3), 2.5, 0.002, 50, every=5)
    scale = np.abs(s_ref).max()
    assert np.allclose(x1, x_ref, atol=1e-10) and np.allclose(X[2], x_ref, atol=1e-10)
    assert np.allclose(s1, s_ref, atol=1e-9 * scale) and np.allclose(S[1], s_ref, atol=1e-9 * scale)
    assert np.allclose(k1, k_ref) and np.allclose(K[0], k_ref)


def test_neighbour_lists_stay_complete_through_rebuilds():
    """A hot run (T = 1.5, 600 steps: atoms move more than the skin 0.3, so the list is
    rebuilt): the last sampled virial equals a from-scratch evaluation at the final positions."""
    box, v0 = _start("fcc", 4, 1.5)
    x, v = box.x.copy(), v0.copy()
    samples, _ = run_box(x, v, box.H, 2.5, 0.004, 600, friction=1.0, temperature=1.5, every=600)
    _, _, virial = forces(x, box.H, 2.5)
    assert np.allclose(samples[-1], virial + v.T @ v, atol=1e-8 * np.abs(virial).max())
    assert np.abs(x - box.x).max() > 0.3  # beyond the skin: rebuilds happened


def test_batched_boxes_follow_their_own_seeds():
    """Box b depends only on seeds[b]: reversing the boxes reverses the results exactly."""
    box, _ = _start("triangular", (6, 4), 0.0)
    X = np.stack([box.x] * 4)
    H = np.stack([box.H] * 4)
    seeds = np.array([3, 1, 4, 1])
    a, _ = run_boxes(X.copy(), np.zeros_like(X), H, 2.5, 0.005, 200, 1.0, 0.2, seeds, every=20)
    b, _ = run_boxes(
        X.copy(), np.zeros_like(X), H, 2.5, 0.005, 200, 1.0, 0.2, seeds[::-1].copy(), every=20
    )
    assert np.array_equal(a, b[::-1])
    assert np.array_equal(a[1], a[3]) and not np.array_equal(a[0], a[1])


def test_engine_rejects_bad_input():
    box, v = _start("fcc", 4, 0.1)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        run_box(box.x.copy(), v, box.H, 2.5, 0.0, 10)
    with pytest.raises(ValueError, match="temperature must be finite and >= 0"):
        run_box(box.x.copy(), v, box.H, 2.5, 0.01, 10, friction=1.0, temperature=-1.0)
    with pytest.raises(ValueError, match="box too small"):
        run_box(box.x.copy(), v, box.H, 2.5, 0.01, 10, skin=1.0)
