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


def _sheared(box, shear=0.3):
    S = np.eye(3)
    S[0, 1] = shear
    return box.x @ S.T, S @ box.H


@pytest.mark.parametrize("case", ["fcc", "triclinic", "triangular"])
def test_cell_path_reproduces_the_reference_langevin_trajectory(case):
    """Boxes large enough for the ±2 cell stencil (atoms wrapped and sorted by cell at every
    rebuild): Langevin runs equal the reference kernel to round-off — the noise is drawn in the
    caller's atom order and the caller's order and unwrapped positions come back."""
    from fe2hmm.micro.particles.engine import _layout

    lattice, cells = ("triangular", (12, 7)) if case == "triangular" else ("fcc", 5)
    box, v0 = _start(lattice, 6 if case == "triclinic" else cells, 0.6, seed=1)
    x0, H = _sheared(box) if case == "triclinic" else (box.x, box.H)
    assert _layout(H, 2.5, 0.3)[1].max() == 2  # the cell path
    x_ref, v_ref = x0.copy(), v0.copy()
    s_ref, k_ref, _ = langevin(x_ref, v_ref, H, 2.5, 0.005, 1.0, 0.6, 60, 7, 10)
    x1, v1 = x0.copy(), v0.copy()
    s1, k1 = run_box(x1, v1, H, 2.5, 0.005, 60, 1.0, 0.6, seed=7, every=10, skin=0.1)
    X, V = np.stack([x0] * 2), np.stack([v0] * 2)
    S, K = run_boxes(X, V, np.stack([H] * 2), 2.5, 0.005, 60, 1.0, 0.6, [7, 7], 10, skin=0.1)
    assert np.abs(x_ref - x0).max() > 0.05  # moved more than skin/2: rebuilt (and re-sorted)
    scale = np.abs(s_ref).max()
    for x, v, s, k in ((x1, v1, s1, k1), (X[1], V[1], S[1], K[1])):
        assert np.allclose(x, x_ref, atol=1e-9) and np.allclose(v, v_ref, atol=1e-8)
        assert np.allclose(s, s_ref, atol=1e-8 * scale) and np.allclose(k, k_ref)


def test_cell_path_lists_stay_complete_through_rebuilds():
    """Hot run in a cell-path box (wrapping across the faces, re-sorting): the last virial
    equals a from-scratch evaluation at the returned (unwrapped, caller-ordered) positions."""
    box, v0 = _start("fcc", 5, 1.5)
    x, v = box.x.copy(), v0.copy()
    samples, _ = run_box(x, v, box.H, 2.5, 0.004, 400, friction=1.0, temperature=1.5, every=400)
    _, _, virial = forces(x, box.H, 2.5)
    assert np.allclose(samples[-1], virial + v.T @ v, atol=1e-8 * np.abs(virial).max())
    widths = np.diag(box.H)
    assert np.any(x < 0) or np.any(x > widths)  # some atoms left the box: unwrapped on return


@pytest.mark.parametrize(
    "case", ["fcc-cells", "fcc-all-pairs", "fcc-reach-1", "triclinic-cells", "triangular-cells"]
)
def test_parallel_neighbour_build_equals_serial_and_brute_force(case):
    """The chunked build (2 or 3 chunks) gives the serial list exactly, and that list holds
    every pair within the list radius once, with its minimum image."""
    from fe2hmm.micro.particles import engine as E

    lattice, cells = ("triangular", (12, 7)) if case.startswith("triangular") else ("fcc", 7)
    if case == "fcc-all-pairs":
        cells = 4
    box = lattice_box(lattice, cells, cutoff=2.5)
    x, H = _sheared(box) if case.startswith("triclinic") else (box.x, box.H)
    x = x + np.random.default_rng(3).normal(scale=0.3, size=x.shape)  # some leave the box
    rl = 2.8
    ncell, reach = E._layout(H, 2.5, rl - 2.5)
    if case == "fcc-reach-1":
        ncell, reach = np.array([3, 3, 3]), np.array([1, 1, 1])  # cells of >= rl
    assert (reach.max() > 0) == (case != "fcc-all-pairs")
    H3, Hinv3, xs, vs, img, perm, slot, table = E._setup(x, np.zeros_like(x), H)
    cstart, t = E._wrap_sort(xs, vs, img, perm, slot, H3, Hinv3, ncell, reach[0] > 0)
    assert np.array_equal(np.sort(perm), np.arange(len(x))) and np.array_equal(
        perm[slot], np.arange(len(x))
    )
    start, nbrs = E._build(xs, t, H3, table, rl * rl, ncell, reach, cstart, reach[0] > 0)
    for chunks in (2, 3):
        s2, n2 = E._build_threads(
            xs, t, H3, table, rl * rl, ncell, reach, cstart, reach[0] > 0, chunks
        )
        assert np.array_equal(start, s2) and np.array_equal(nbrs, n2)
    i = np.repeat(np.arange(len(x)), np.diff(start))
    j, code = nbrs >> E._SHIFT, nbrs & E._MASK
    listed = {(min(a, b), max(a, b)) for a, b in zip(perm[i], perm[j], strict=True)}
    assert len(listed) == len(nbrs)  # each pair once
    r_list = xs[i] - xs[j] - table[code]
    d = x.shape[1]
    Hinv = np.linalg.inv(H)
    ds = (x[:, None] - x[None]) @ Hinv.T
    ds -= np.round(ds)
    rr = ((ds @ H.T) ** 2).sum(-1)
    a, b = np.nonzero(np.triu(rr < rl * rl, 1))
    assert listed == set(zip(a.tolist(), b.tolist(), strict=True))
    assert np.allclose((r_list[:, :d] ** 2).sum(-1), rr[perm[i], perm[j]])
