"""Checkpoint/restart (fe2hmm.checkpoint): round trips, refusals, atomic commits, and a demo
killed with SIGKILL at random moments that ends with bitwise the result of an uninterrupted run
(serially and on 2 ranks)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
from conftest import REPO, mpiexec, same_function_values
from dolfinx import fem
from dolfinx import mesh as dmesh

from fe2hmm.checkpoint import Checkpoint, ragged, unragged
from fe2hmm.micro.interface import Stateful


class _Counter(Stateful):
    """A toy history: committed per-point values of varying length."""

    def __init__(self):
        self.values = {0: np.arange(3.0), 2: np.ones((2, 2))}

    def commit(self):
        pass

    def rollback(self):
        pass

    def checkpoint_state(self):
        return {f"v{i}": v for i, v in self.values.items()}

    def restore_state(self, state):
        self.values = {int(k[1:]): v.copy() for k, v in state.items()}


class _NoCheckpoints(Stateful):
    def commit(self):
        pass

    def rollback(self):
        pass


def _function(comm=MPI.COMM_WORLD, n=4, degree=1):
    mesh = dmesh.create_unit_square(comm, n, n)
    V = fem.functionspace(mesh, ("Lagrange", degree))
    u = fem.Function(V)
    u.interpolate(lambda x: np.sin(3 * x[0]) + x[1] ** 2)
    return u


def _shared_dir(tmp_path):
    """One folder for all ranks (under rank 0's temporary folder)."""
    return MPI.COMM_WORLD.bcast(str(tmp_path / "ckpt"), root=0)


def test_ragged_round_trip():
    arrays = {3: np.arange(6.0).reshape(2, 3), 1: np.ones((1, 3)), 7: np.zeros((0, 3))}
    back = unragged(ragged(arrays))
    assert sorted(back) == [1, 3, 7]
    assert all(
        np.array_equal(back[i], arrays[i]) and back[i].shape == arrays[i].shape for i in back
    )
    assert unragged(ragged({})) == {}


def test_save_restore_round_trip_bitwise(tmp_path):
    """Functions, a checkpointable object and the user data come back bitwise; the step count
    continues; only the last committed step folder is kept."""
    folder = _shared_dir(tmp_path)
    u, history = _function(), _Counter()
    ckpt = Checkpoint(folder, {"u": u, "history": history})
    assert not ckpt.restore() and ckpt.step == 0
    ckpt.data["rows"] = [{"force": 0.1 + 0.2}]
    ckpt.save()
    u.x.array[:] *= np.pi
    history.values[0] = history.values[0] / 3.0
    ckpt.data["rows"].append({"force": 1 / 3})
    ckpt.save()
    expected_h = {k: v.copy() for k, v in history.values.items()}
    u2, history2 = _function(), _Counter()
    history2.values = {}
    again = Checkpoint(folder, {"u": u2, "history": history2})
    assert again.restore() and again.step == 2 and again.restored
    assert same_function_values(u2, u)
    same_history = sorted(history2.values) == [0, 2] and all(
        np.array_equal(history2.values[k], expected_h[k]) for k in expected_h
    )
    assert all(MPI.COMM_WORLD.allgather(same_history))
    assert again.data == {"rows": [{"force": 0.1 + 0.2}, {"force": 1 / 3}]}
    kept = sorted(p.name for p in Path(folder).iterdir() if p.is_dir())
    assert MPI.COMM_WORLD.allgather(kept) == [["step-000002"]] * MPI.COMM_WORLD.size, kept
    again.save()
    assert again.step == 3


def test_a_kill_before_the_commit_leaves_the_previous_step(tmp_path, monkeypatch):
    """Killed after the rank files of step 2 are written but before its commit record moves
    (simulated by an exception there; a stray temporary record too): the folder restores step
    1 bitwise."""
    import fe2hmm.checkpoint as module

    if MPI.COMM_WORLD.size > 1:
        pytest.skip("one rank raising inside a collective save would leave the other waiting")
    u = _function()
    ckpt = Checkpoint(tmp_path / "ckpt", {"u": u})
    ckpt.save()
    saved = _function()
    saved.x.array[:] = u.x.array
    u.x.array[:] = -7.0
    original = module._fsync_write

    def killed_at_commit(path, write):
        if path.name == "latest.json":
            path.with_name("latest.json.tmp").write_text("{half a reco")
            raise KeyboardInterrupt("killed before the commit")
        original(path, write)

    monkeypatch.setattr(module, "_fsync_write", killed_at_commit)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save()
    monkeypatch.undo()
    assert (tmp_path / "ckpt" / "step-000002" / "rank-0.npz").exists()  # written, not committed
    u2 = _function()
    back = Checkpoint(tmp_path / "ckpt", {"u": u2})
    assert back.restore() and back.step == 1
    assert same_function_values(u2, saved)
    back.save()  # the next save commits step 2 again and removes the others
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.is_dir()) == ["step-000002"]


def test_refusals_name_the_problem(tmp_path):
    folder = _shared_dir(tmp_path)
    u = _function()
    with pytest.raises(TypeError, match="'h' is a dict: expected a dolfinx.fem.Function"):
        Checkpoint(folder, {"u": u, "h": {}})
    with pytest.raises(TypeError, match="_NoCheckpoints does not support checkpoints"):
        Checkpoint(folder, {"u": u, "h": _NoCheckpoints()})
    with pytest.raises(ValueError, match="name 'a/b'"):
        Checkpoint(folder, {"a/b": u})
    with pytest.raises(ValueError, match="not a folder"):
        Checkpoint("/proc/version/x", {"u": u})
    Checkpoint(folder, {"u": u}).save()
    with pytest.raises(ValueError, match=r"objects differ: the file has \['u'\], this run"):
        Checkpoint(folder, {"u": u, "history": _Counter()}).restore()
    with pytest.raises(ValueError, match="Function 'u' has 6 dofs per cell .*, the file"):
        Checkpoint(folder, {"u": _function(degree=2)}).restore()
    with pytest.raises(ValueError, match="another mesh or partition"):
        Checkpoint(folder, {"u": _function(n=5)}).restore()
    MPI.COMM_WORLD.barrier()
    if MPI.COMM_WORLD.rank == 0:
        path = tmp_path / "ckpt" / "latest.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "ranks": 3}))
    MPI.COMM_WORLD.barrier()
    with pytest.raises(ValueError, match="written by 3 ranks, .* restart with mpiexec -n 3"):
        Checkpoint(folder, {"u": u}).restore()


# --------------------------------------------------------------- SIGKILL at random moments
DEMOS = {  # demo: (arguments, ranks to test): every stepping driver, serial and on 2 ranks
    "porous_plasticity": (["--json", "--no-plot"], [2]),  # load steps, plastic histories
    "transient_conduction": (["--nx", "32", "--json", "--no-plot"], [1]),  # 15 marches
    "evolving_microstructure": (["--nx", "32", "--steps", "30", "--json", "--no-plot"], [2]),
    "solid_electrolyte": (["--nx", "16", "--json", "--no-plot"], [1]),  # continuation
    "homogenised_waves": (["--json", "--no-plot"], [1]),  # explicit leapfrog and Newmark
}


def _launch(args, nprocs):
    cmd = [sys.executable, *args]
    if nprocs > 1:
        cmd = [mpiexec(), "-n", str(nprocs), *cmd]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
        start_new_session=True,  # its own process group: one killpg reaches every rank
    )


def _result(out: str):
    summary = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return {k: v for k, v in summary.items() if k not in ("seconds", "time_report")}


class _Reader:
    """Drains a process's output in a thread (a full pipe would stall the demo)."""

    def __init__(self, proc):
        import threading

        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        self.thread.join(timeout=60)
        return "".join(self.lines)


def _committed(folder) -> int:
    """Steps committed in all the checkpoint folders under ``folder`` (one per demo run)."""
    total = 0
    for record in folder.rglob("latest.json"):
        try:
            total += json.loads(record.read_text())["step"]
        except (OSError, ValueError):  # replaced while read
            pass
    return total


@pytest.mark.slow
@pytest.mark.parametrize(
    "demo,nprocs", [(demo, n) for demo, (_, ranks) in DEMOS.items() for n in ranks]
)
def test_demo_killed_at_random_moments_resumes_to_the_same_result(tmp_path, demo, nprocs):
    """A demo with --checkpoint, SIGKILLed (its whole process group) at random moments — once
    during start-up, then three times a random delay (0–0.5 s) after 1–3 newly committed steps,
    i.e. inside a step's solves or a save — and started again with the same folder until it
    finishes: its JSON summary (every number but the wall times) equals an uninterrupted
    run's bitwise."""
    if MPI.COMM_WORLD.size > 1:
        pytest.skip("launches its own processes")
    args = [str(REPO / f"demos/{demo}.py"), *DEMOS[demo][0]]
    ref = _launch([*args, "--output-dir", str(tmp_path / "reference")], nprocs)
    t0 = time.perf_counter()
    out, _ = ref.communicate(timeout=600)
    wall = time.perf_counter() - t0
    assert ref.returncode == 0, out
    expected = _result(out)
    rng = random.Random(f"{demo}-{nprocs}")
    folder = tmp_path / "ckpt"
    kills, saved_at_kills = 0, []
    for attempt in range(5):
        run = [*args, "--output-dir", str(tmp_path / "run"), "--checkpoint", str(folder)]
        proc = _launch(run, nprocs)
        reader = _Reader(proc)
        if attempt < 4:
            if attempt == 0:  # imports, meshes, compilation: before the first step
                time.sleep(rng.uniform(0.1, 0.3) * wall)
            else:
                target = _committed(folder) + rng.randint(1, 3)
                start = time.perf_counter()
                while proc.poll() is None and _committed(folder) < target:
                    if time.perf_counter() - start > 600:
                        break
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.5))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
                saved_at_kills.append(_committed(folder))
        proc.wait(timeout=600)
        out = reader.text()
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, out
    assert proc.returncode == 0, out
    assert kills >= 3 and max(saved_at_kills) > 0, (kills, saved_at_kills)
    assert _result(out) == expected


def _transient(folder, times, model):
    """The bar of the transient demo with memory cells, marched through ``times`` with a
    checkpoint in ``folder`` (restored first)."""
    from fe2hmm.macro import Dirichlet, TransientDiffusion

    mesh = dmesh.create_rectangle(
        MPI.COMM_WORLD, [[0.0, 0.0], [1.0, 1.0 / 16]], [12, 1], dmesh.CellType.triangle
    )
    left = fem.Constant(mesh, 0.0)
    problem = TransientDiffusion(
        mesh,
        model,
        dt=times[1] - times[0],
        parameters={"volume_fraction": 0.4},
        bcs=[
            Dirichlet(left, lambda x: np.isclose(x[0], 0.0)),
            Dirichlet(0.0, lambda x: np.isclose(x[0], 1.0)),
        ],
    )
    heat = problem.functional(problem.storage * problem.T)
    ckpt = problem.checkpoint(folder)
    ckpt.restore()
    ckpt.data.setdefault("heat", [])

    def before(t_old, t_new):
        left.value = np.sin(np.pi * t_new) ** 2

    problem.march(
        times, before, after_step=lambda s: ckpt.data["heat"].append(heat()), checkpoint=ckpt
    )
    return problem, ckpt


def test_march_resumed_from_a_checkpoint_equals_the_uninterrupted_march(tmp_path):
    """Transient diffusion closed by memory cells (TransientDiffusionCellModel, window=None:
    the carried modal states are the history): 3 of 8 steps, then fresh objects restored from
    the folder march to the end — u, u_n, the cells' states and the per-step heat uptake equal
    an uninterrupted march bitwise."""
    from fe2hmm.micro.cells.transient import TransientDiffusionCellModel

    def model():
        return TransientDiffusionCellModel(
            "circle", matrix=(1.0, 1.0), inclusion=(10.0, 1.0), window=None, resolution=6
        )

    times = np.linspace(0.0, 0.4, 9)
    full, full_ckpt = _transient(_shared_dir(tmp_path / "a"), times, model())
    part, _ = _transient(_shared_dir(tmp_path / "b"), times[:4], model())
    assert part.checkpoint(_shared_dir(tmp_path / "b")).restore()
    resumed_model = model()
    resumed, ckpt = _transient(_shared_dir(tmp_path / "b"), times, resumed_model)
    assert ckpt.step == full_ckpt.step == 8
    assert same_function_values(resumed.u, full.u)
    assert same_function_values(resumed.u_n, full.u_n)
    assert full.histories[0]._state is not None and resumed_model._state.size > 0
    assert np.array_equal(resumed_model._state, full.histories[0]._state)
    assert ckpt.data["heat"] == full_ckpt.data["heat"] and len(ckpt.data["heat"]) == 8


def test_problem_checkpoint_takes_learning_reuse_layers_or_refuses_them(tmp_path):
    """Reuse layers in a closure's stack: exact ones (Dedupe) need no state; a surrogate that
    saves what it learnt (ParameterSurrogateModel) is held automatically and restores to the
    same nodes, tensors and answers; a layer that learns without saving is refused by name."""
    from conftest import MaxwellGarnett

    from fe2hmm.macro import Dirichlet, SteadyDiffusion
    from fe2hmm.reuse import Dedupe, ParameterSurrogateModel
    from fe2hmm.reuse.wrapper import ReuseWrapper

    class Learning(ReuseWrapper):  # a pass-through that claims to learn
        pass

    mesh = dmesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    folder = _shared_dir(tmp_path)

    def problem(model):
        return SteadyDiffusion(
            mesh, model, parameters={"volume_fraction": 0.3}, bcs=[Dirichlet(0.0)]
        )

    with pytest.raises(TypeError, match=r"closures\[0\]: Learning learns during the run"):
        problem(Dedupe(Learning(MaxwellGarnett()))).checkpoint(folder)
    ckpt = problem(Dedupe(MaxwellGarnett())).checkpoint(folder)
    assert sorted([*ckpt._functions, *ckpt._states]) == ["problem", "u"]

    trained = ParameterSurrogateModel(MaxwellGarnett(), 1e-4, initial_nodes=(0.0, 0.6))
    trained.serve(np.array([0.1, 0.37, 0.52]))
    ckpt = problem(trained).checkpoint(folder)
    assert sorted(ckpt._states) == ["problem", "reuse0.0"]
    ckpt.save()
    fresh = ParameterSurrogateModel(MaxwellGarnett(), 1e-4)
    back = problem(fresh).checkpoint(folder)
    assert back.restore()
    assert np.array_equal(fresh.surrogate.nodes, trained.surrogate.nodes)
    assert np.array_equal(fresh.surrogate.values, trained.surrogate.values)
    assert fresh.statistics.micro_solves == trained.statistics.micro_solves > 2
    p = np.array([0.2, 0.45])
    (a, ea), (b, eb) = trained.serve(p), fresh.serve(p)
    assert all(np.array_equal(a[k], b[k]) for k in a) and np.array_equal(ea, eb)


def test_functions_are_restored_cell_by_cell_through_the_original_indices(tmp_path):
    """The rank file keys a Function's values by the original cell index: with its cell rows
    shuffled (as another local cell numbering would store them) the restore is unchanged."""
    folder = _shared_dir(tmp_path)
    u = _function(degree=2)
    ckpt = Checkpoint(folder, {"u": u})
    ckpt.save()
    path = Path(folder) / "step-000001" / f"rank-{MPI.COMM_WORLD.rank}.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    order = np.random.default_rng(MPI.COMM_WORLD.rank).permutation(arrays["c/u"].size)
    arrays["c/u"], arrays["f/u"] = arrays["c/u"][order], arrays["f/u"][order]
    assert arrays["f/u"].shape == (order.size, 6, 1)
    np.savez(path, **arrays)
    u2 = _function(degree=2)
    u2.x.array[:] = 0.0
    assert Checkpoint(folder, {"u": u2}).restore()
    assert same_function_values(u2, u)


class _FailsOnLastRank(_Counter):
    """Fails to save (or to restore) on the last rank only: the others must not wait."""

    def __init__(self, when):
        super().__init__()
        self.when = when

    def checkpoint_state(self):
        if self.when == "save" and MPI.COMM_WORLD.rank == MPI.COMM_WORLD.size - 1:
            raise RuntimeError("disk quota")
        return super().checkpoint_state()

    def restore_state(self, state):
        if self.when == "restore" and MPI.COMM_WORLD.rank == MPI.COMM_WORLD.size - 1:
            raise KeyError("v9")
        super().restore_state(state)


def test_a_failure_on_one_rank_or_a_damaged_file_is_raised_on_every_rank(tmp_path):
    """An object failing on the last rank only, a damaged commit record, a damaged rank file:
    every rank raises (no rank left waiting in a collective), naming the rank and the cause."""
    folder = _shared_dir(tmp_path)
    last = MPI.COMM_WORLD.size - 1
    u = _function()
    with pytest.raises(OSError, match=rf"not written \(rank {last}\): RuntimeError: disk quota"):
        Checkpoint(folder, {"u": u, "h": _FailsOnLastRank("save")}).save()
    Checkpoint(folder, {"u": u, "h": _FailsOnLastRank("restore")}).save()
    with pytest.raises(ValueError, match=rf"restoring failed on rank {last}: KeyError"):
        Checkpoint(folder, {"u": u, "h": _FailsOnLastRank("restore")}).restore()
    MPI.COMM_WORLD.barrier()
    if MPI.COMM_WORLD.rank == last:  # damage the last rank's file
        (Path(folder) / "step-000001" / f"rank-{last}.npz").write_bytes(b"PK\x03\x04 truncated")
    MPI.COMM_WORLD.barrier()
    with pytest.raises(ValueError, match=rf"step 1 cannot be restored \(rank {last}\)"):
        Checkpoint(folder, {"u": u, "h": _Counter()}).restore()
    MPI.COMM_WORLD.barrier()
    if MPI.COMM_WORLD.rank == 0:
        (Path(folder) / "latest.json").write_text('{"step": 1}')
    MPI.COMM_WORLD.barrier()
    with pytest.raises(ValueError, match="is not a commit record .*no data, ranks"):
        Checkpoint(folder, {"u": u}).restore()


def test_a_march_restarted_along_other_times_is_refused(tmp_path):
    """The steps done are checked against the driver's path: other times (another --steps or
    --dt) or fewer times than steps done are refused, before any step."""
    folder = _shared_dir(tmp_path)
    ckpt = Checkpoint(folder, {"u": _function()})
    assert ckpt.steps_done("times", [0.0, 0.1, 0.2, 0.3], start=1) == 0
    ckpt.save()
    ckpt.save()
    again = Checkpoint(folder, {"u": _function()})
    assert again.restore() and again.steps_done("times", [0.0, 0.1, 0.2, 0.3], start=1) == 2
    with pytest.raises(ValueError, match=r"steps went along other times .*restart with the same"):
        again.steps_done("times", [0.0, 0.05, 0.1, 0.15], start=1)
    with pytest.raises(ValueError, match="2 steps done, more than the 1 times steps given"):
        again.steps_done("times", [0.0, 0.1], start=1)
    assert again.steps_done("times", [0.0, 0.1, 0.2, 0.3, 0.4], start=1) == 2  # extended: ok
