"""Persistent cache of micro results: keys, staleness, atomicity, MPI concurrency."""

import os
import signal
import subprocess
import sys
import time

from mpi4py import MPI

import numpy as np
import pytest
from conftest import serial_only

from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.reuse import Cache, Dedupe
from fe2hmm.reuse.cache import PersistentCache


def test_round_trip_and_keys(tmp_path):
    cache = PersistentCache(tmp_path, {"model": "m", "E": 1.0})
    p = {"phi": np.array(0.3)}
    assert cache.get(p) is None
    cache.put(p, {"K": np.eye(2) * 2.5})
    np.testing.assert_array_equal(cache.get(p)["K"], np.eye(2) * 2.5)
    assert cache.get({"phi": np.nextafter(0.3, 1.0)}) is None  # keys are bitwise
    assert cache.get({"phi": np.array(0.31)}) is None
    other = PersistentCache(tmp_path, {"model": "m", "E": 2.0})  # another identity
    assert other.get(p) is None
    assert cache.hits == 1 and len(cache) == 1


def _model(**kw):
    args = {"rve": "circle", "matrix": 1.0, "inclusion": 10.0, "resolution": 10} | kw
    return DiffusionCellModel(**args)


def test_model_reuses_entries_and_never_serves_stale_ones(tmp_path):
    directory = tmp_path / f"rank{MPI.COMM_WORLD.rank}"
    phi = {"volume_fraction": np.array([0.2, 0.3, 0.2, 0.4])}
    g = {"gradient": np.ones((4, 2))}
    first = Dedupe(Cache(_model(), directory))
    r1 = first.evaluate(g, phi)
    assert first.statistics.micro_solves == 3 and first.statistics.cache_hits == 0
    again = Dedupe(Cache(_model(), directory))
    r2 = again.evaluate(g, phi)
    assert again.statistics.micro_solves == 0 and again.statistics.cache_hits == 3
    np.testing.assert_array_equal(r1.outputs["flux"], r2.outputs["flux"])
    # the other order: the cache sees every point (4 hits), dedupe nothing left to merge
    other_order = Cache(Dedupe(_model()), directory)
    other_order.evaluate(g, phi)
    assert other_order.statistics.cache_hits == 4 and other_order.statistics.micro_solves == 0
    for changed in ({"inclusion": 5.0}, {"resolution": 12}, {"bc": "affine"}):
        m = Dedupe(Cache(_model(**changed), directory))
        m.evaluate(g, phi)
        assert m.statistics.micro_solves == 3 and m.statistics.cache_hits == 0, changed


def test_nonlinear_model_entries_are_keyed_by_inputs_too(tmp_path):
    from test_quadrature import TwoOutputs

    class Identified(TwoOutputs):
        def cache_identity(self):
            return {"model": "TwoOutputs/1"}

    inputs = {"gradient": np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]]), "value": np.ones(3)}
    first = Cache(Identified(), tmp_path)
    r1 = first.evaluate(inputs, {})
    again = Cache(Identified(), tmp_path)
    r2 = again.evaluate(inputs, {})
    assert again.statistics.cache_hits == 3
    for key in r1.outputs:
        np.testing.assert_array_equal(r1.outputs[key], r2.outputs[key])
    np.testing.assert_array_equal(r2.tangents["flux", "gradient"], r1.tangents["flux", "gradient"])
    moved = {"gradient": inputs["gradient"] + 10.0, "value": inputs["value"]}
    third = Cache(Identified(), tmp_path)
    third.evaluate(moved, {})
    assert third.statistics.cache_hits == 0  # other inputs, other keys


def test_cache_refuses_models_it_cannot_serve_exactly(tmp_path):
    from test_quadrature import NoisyConductor, TwoOutputs

    from fe2hmm.micro.cells.plasticity import PlasticCellModel

    with pytest.raises(TypeError, match="stochastic"):
        Cache(NoisyConductor(0.1), tmp_path)
    with pytest.raises(TypeError, match="has history"):
        Cache(PlasticCellModel(resolution=4), tmp_path)
    with pytest.raises(NotImplementedError, match="cache identity"):
        Cache(TwoOutputs(), tmp_path)


def test_unreadable_entry_is_a_miss(tmp_path):
    cache = PersistentCache(tmp_path, {"model": "m"})
    p = {"phi": np.array(0.5)}
    cache.put(p, {"K": np.ones(3)})
    path = tmp_path / f"{cache.key(p)}.npz"
    path.write_bytes(path.read_bytes()[:20])  # torn file (as a non-atomic writer would leave)
    assert cache.get(p) is None


WRITER = """
import numpy as np, sys
from fe2hmm.reuse.cache import PersistentCache
cache = PersistentCache(sys.argv[1], {"model": "big"})
i = 0
while True:
    cache.put({"i": np.array(float(i % 4))}, {"data": np.random.rand(2_000_000)})
    i += 1
"""


@serial_only
def test_killed_writer_leaves_no_torn_entry(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    try:
        deadline = time.time() + 120
        while len(list(tmp_path.glob("*.npz"))) < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.13)  # most likely in the middle of writing a 16 MB entry
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    cache = PersistentCache(tmp_path, {"model": "big"})
    entries = list(tmp_path.glob("*.npz"))
    assert entries
    for i in range(4):
        got = cache.get({"i": np.array(float(i))})
        assert got is None or got["data"].shape == (2_000_000,)
    assert cache.misses + cache.hits == 4 and cache.hits >= 1


@pytest.mark.mpi
def test_concurrent_writers_of_the_same_keys(tmp_path_factory):
    comm = MPI.COMM_WORLD
    directory = comm.bcast(str(tmp_path_factory.mktemp("shared")) if comm.rank == 0 else None)
    cache = PersistentCache(directory, {"model": "shared"})
    for i in range(20):
        cache.put({"i": np.array(float(i))}, {"v": np.full(10_000, float(i))})
    comm.barrier()
    for i in range(20):
        got = cache.get({"i": np.array(float(i))})
        np.testing.assert_array_equal(got["v"], np.full(10_000, float(i)))
