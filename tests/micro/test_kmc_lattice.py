"""Periodic lattices of the KMC engine (fe2hmm.micro.stochastic.lattice): neighbour tables
against the geometry, hop vectors, site volumes, and one-line errors for bad input."""

import dataclasses
import itertools

import numpy as np
import pytest

from fe2hmm.micro.stochastic.lattice import LATTICES, Lattice, lattice

EXPECTED = {"square": (2, 4, 1.0), "triangular": (2, 6, np.sqrt(3) / 2), "cubic": (3, 6, 1.0)}


@pytest.mark.parametrize("kind", LATTICES)
@pytest.mark.parametrize("size", [3, 4, 7])
def test_neighbours_are_the_periodic_nearest_neighbours(kind, size):
    """Each hop k leads from site i to the site at r_i + v_k modulo the periodic cell; the z
    neighbours are distinct and differ from i; hop k is undone by hop k ^ 1."""
    lat = lattice(kind, size)
    d, z, volume = EXPECTED[kind]
    N = size**d
    assert (lat.kind, lat.size, lat.dim, lat.sites, lat.coordination) == (kind, size, d, N, z)
    assert lat.neighbours.shape == (N, z) and lat.neighbours.dtype == np.int32
    assert lat.vectors.shape == (z, d) and lat.positions.shape == (N, d)
    assert np.isclose(lat.site_volume, volume)
    cell = size * (np.eye(d) if kind != "triangular" else np.array([[1, 0], [0.5, np.sqrt(3) / 2]]))
    # r_j − r_i − v_k is a translation of the periodic cell (integer in the cell basis)
    shift = lat.positions[lat.neighbours] - lat.positions[:, None, :] - lat.vectors[None]
    frac = shift @ np.linalg.inv(cell)
    assert np.allclose(frac, np.round(frac), atol=1e-12)
    for i in range(N):
        assert len(set(lat.neighbours[i])) == z and i not in lat.neighbours[i]
    back = lat.neighbours[lat.neighbours, np.arange(z)[None, :] ^ 1]
    assert np.array_equal(back, np.broadcast_to(np.arange(N)[:, None], (N, z)))
    # all sites distinct modulo the cell, and the volume per site
    frac_pos = (lat.positions @ np.linalg.inv(cell)) % 1.0
    assert len({tuple(np.round(p * size).astype(int) % size) for p in frac_pos}) == N
    assert np.isclose(abs(np.linalg.det(cell)) / N, volume)


@pytest.mark.parametrize("kind", LATTICES)
def test_hop_vectors_have_unit_length_and_isotropic_second_moment(kind):
    """|v_k| = a = 1, opposite pairs, Σ_k v_k ⊗ v_k = (z/d) I (so D₀ = Γ z a²/(2d))."""
    lat = lattice(kind, 5)
    V = lat.vectors
    assert np.allclose(np.linalg.norm(V, axis=1), 1.0)
    assert np.allclose(V[0::2], -V[1::2])
    assert np.allclose(V.T @ V, lat.coordination / lat.dim * np.eye(lat.dim))


def test_triangular_lattice_is_made_of_triangles():
    """Every bond of the triangular lattice has exactly two common neighbours (2N triangles)."""
    lat = lattice("triangular", 6)
    sets = [set(row) for row in lat.neighbours]
    triangles = {
        tuple(sorted((i, j, k)))
        for i in range(lat.sites)
        for j, k in itertools.combinations(sets[i], 2)
        if k in sets[j]
    }
    assert len(triangles) == 2 * lat.sites
    assert all(len(sets[i] & sets[j]) == 2 for i in range(lat.sites) for j in sets[i])


def test_lattice_is_frozen_and_read_only():
    lat = lattice("square", 4)
    assert isinstance(lat, Lattice)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lat.size = 5
    with pytest.raises(ValueError, match="read-only"):
        lat.neighbours[0, 0] = 1


def test_bad_input_gives_one_line_errors():
    cases = [
        (("hexagonal", 4), ValueError, "unknown lattice kind 'hexagonal'; valid: square, tri"),
        (("square", 2), ValueError, r"lattice size must be an integer in \[3, 8192\]"),
        (("cubic", 1000), ValueError, r"in \[3, 406\] for the cubic lattice, got 1000"),
        (("square", 4.0), ValueError, "lattice size must be an integer >= 3, got 4.0"),
        (("square", True), ValueError, "lattice size must be an integer"),
        ((3, 4), TypeError, "lattice kind must be a string"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message) as info:
            lattice(*args)
        assert "\n" not in str(info.value)
