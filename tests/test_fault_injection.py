"""Fault injection: a micro-model failing on one rank, at a chosen point and closure update, by
raising, calling ``sys.exit``, being interrupted, segfaulting — every rank ends, quickly, with
the point named; under every scheduler (the model is tests/_fault_injection.py).

In-process cases run serially and under ``mpiexec -n 2`` (``make test``); the cases that end
the process (exit, interrupt, segfault, a rank still busy) run the script under
``mpiexec -n 2`` from the serial suite and time the end from the fault.
"""

import re
import time

from mpi4py import MPI

import pytest
from _fault_injection import FaultyConductor, solve
from conftest import REPO, run_python, serial_only

from fe2hmm.errors import MicroModelError, MicroSolveError

pytestmark = pytest.mark.mpi

SCHEDULES = [("owner", False), ("owner", True), ("pooled", True), ("serial", True)]
IDS = ["owner-plain", "owner-tasks", "pooled", "serial"]
#: every rank must have ended this long after the fault (issue 15: "within 10 s")
END_SECONDS = 10.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("scheduler", "tasks"), SCHEDULES, ids=IDS)
@pytest.mark.parametrize(
    ("how", "expected", "shown"),
    [
        ("raise", MicroSolveError, "ValueError: injected failure"),
        ("bug", MicroModelError, "TypeError: injected bug"),
    ],
)
def test_a_failure_on_one_rank_is_the_same_class_on_every_rank_naming_the_point(
    how, expected, shown, scheduler, tasks
):
    """A failed solve is a MicroSolveError on every rank (a cut-back may retry it everywhere);
    a programming error a MicroModelError everywhere (no cut-back catches it)."""
    comm = MPI.COMM_WORLD
    faulty = comm.size - 1
    model = FaultyConductor(how, rank=faulty, point=2, update=2, tasks=tasks)
    with pytest.raises(expected) as info:
        solve(model, scheduler)
    text = str(info.value)
    assert model.updates == 2  # the fault came at the chosen closure update, on every rank
    if comm.rank == faulty:
        assert shown in text
        assert re.search(rf"quadrature point 2 at x = \(\S+, \S+\) on rank {faulty}", text)
    else:
        assert re.search(rf"(rank {faulty}'s points|other rank\(s\) {faulty};)", text), text
    if expected is MicroModelError:
        assert not isinstance(info.value, MicroSolveError)


@pytest.mark.timeout(120)
@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="the stop ends the process: see below")
@pytest.mark.parametrize(("scheduler", "tasks"), SCHEDULES, ids=IDS)
@pytest.mark.parametrize(
    ("how", "expected", "shown"),
    [
        ("exit", SystemExit, "SystemExit(3)"),
        ("interrupt", KeyboardInterrupt, "KeyboardInterrupt()"),
    ],
)
def test_a_stop_in_a_micro_model_is_not_taken_for_a_failed_solve(
    how, expected, shown, scheduler, tasks
):
    """sys.exit/KeyboardInterrupt in a model: no Newton cut-back catches it (they catch
    MicroSolveError); it leaves as SystemExit/KeyboardInterrupt naming the point."""
    model = FaultyConductor(how, rank=0, point=2, update=2, tasks=tasks)
    with pytest.raises(expected) as info:
        solve(model, scheduler)
    text = str(info.value.args[0])
    assert text.startswith("fe2hmm: closure 'diffusion': ") and shown in text
    assert re.search(r"quadrature point 2 at x = \(\S+, \S+\) on rank 0", text)


def _run(*args, timeout=90):
    """Run the fault script on 2 ranks; returns (returncode, output, seconds after the fault)."""
    out = run_python([REPO / "tests" / "_fault_injection.py", *args], nprocs=2, timeout=timeout)
    end = time.time()
    text = out.stdout + out.stderr
    fault = re.search(r"FAULT (\d+\.\d+)", text)
    assert fault, f"the fault did not fire:\n{text[-3000:]}"
    return out.returncode, text, end - float(fault.group(1))


@serial_only
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "args",
    [
        ["--how", "exit", "--plain"],
        ["--how", "exit"],
        ["--how", "exit", "--scheduler", "pooled"],
        ["--how", "interrupt", "--scheduler", "serial"],
    ],
    ids=["exit-owner-plain", "exit-owner-tasks", "exit-pooled", "interrupt-serial"],
)
def test_exit_or_interrupt_on_one_rank_ends_both_ranks_naming_the_point(args):
    code, text, seconds = _run(*args)
    assert code == (130 if "interrupt" in args else 1), text[-3000:]
    assert seconds < END_SECONDS, f"ended {seconds:.1f} s after the fault"
    # the rank that owns the point names it and its macro coordinates (the other points to it)
    assert re.search(r"quadrature point 2 at x = \(\S+, \S+\) on rank 1\]", text), text[-3000:]
    # the other rank says which rank stopped (or was interrupted)
    pointer = "was interrupted on rank" if "interrupt" in args else "rank 1 stopped the run"
    assert pointer in text or "stopped the run on rank" in text, text[-3000:]


@serial_only
@pytest.mark.timeout(300)
@pytest.mark.parametrize("scheduler", ["owner", "pooled"])
def test_a_stop_while_the_other_rank_is_busy_aborts_within_the_grace_period(scheduler):
    """Rank 0 sleeps 60 s in its own micro solve when rank 1 exits: rank 1 does not wait."""
    code, text, seconds = _run("--how", "exit", "--busy", "--scheduler", scheduler)
    assert code != 0
    assert seconds < END_SECONDS, f"ended {seconds:.1f} s after the fault"
    assert "the other ranks did not respond within 5 s: aborting the MPI job" in text
    assert "SystemExit(3)" in text


@serial_only
@pytest.mark.timeout(300)
@pytest.mark.parametrize("scheduler", ["owner", "serial"])
def test_a_segfault_on_one_rank_ends_both_ranks(scheduler):
    """The process is gone: mpiexec ends the others; faulthandler shows the failing frame."""
    code, text, seconds = _run("--how", "segfault", "--scheduler", scheduler)
    assert code != 0
    assert seconds < END_SECONDS, f"ended {seconds:.1f} s after the fault"
    assert "Segmentation" in text and "_maybe_fail" in text, text[-3000:]
