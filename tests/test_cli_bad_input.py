"""Bad command lines of every ``fe2hmm`` subcommand: exit status 2, one line on standard error
naming the argument, no traceback, refused before any work (DESIGN.md §5).

"Before any work" is measured as the child's CPU time (robust to a loaded machine): at most
about a second, an interpreter start plus the imports the check needs. Sizes are far beyond any
machine, so the refusals do not depend on the memory of the machine running the tests.
"""

import os
import resource
import subprocess
import sys
import time

import pytest
from conftest import REPO, serial_only

from fe2hmm.cli import list_demos, main

pytestmark = serial_only

#: CPU seconds of a refused command line (interpreter + the imports of the check).
CPU_LIMIT = 1.0
#: The same for every row: the RVE requests (``--rve``, ``--volume-fraction``, ``--degree`` at
#: the default resolution) are checked by ``fe2hmm.rve.limits`` without gmsh or dolfinx, and a
#: demo parses its arguments before it imports them (measured 0.35–0.46 s CPU cold).
#: Wall seconds, generous: the test machine is shared.
WALL_LIMIT = 20.0

HUGE = "1" + "0" * 30  # 1e30 as an integer literal
IMAGE = str(REPO / "tests" / "data" / "blobs_64.npy")  # the shipped test image

COMMANDS = [
    (["--bogus"], "--bogus"),
    (["nope"], "command"),
    (["homogenize"], "physics"),
    (["homogenize", "nope"], "physics"),
    (["md"], "md_command"),
    (["md", "nope"], "md_command"),
    (["kmc"], "kmc_command"),
    (["kmc", "nope"], "kmc_command"),
    (["demo"], "name"),
    (["demo", "nope"], "name"),
]

# options shared by `homogenize diffusion` and `homogenize elasticity`
CELL = [
    (["--dim", "4"], "--dim"),
    (["--dim", "0"], "--dim"),
    (["--dim", "x"], "--dim"),
    (["--rve", "hexagon"], "--rve"),
    (["--rve", "circle", "--dim", "3"], "--rve"),
    (["--volume-fraction", "0.95"], "--volume-fraction"),
    (["--volume-fraction", "-0.1"], "--volume-fraction"),
    (["--volume-fraction", "0"], "--volume-fraction"),
    (["--volume-fraction", "nan"], "--volume-fraction"),
    (["--volume-fraction", "inf"], "--volume-fraction"),
    (["--volume-fraction", "abc"], "--volume-fraction"),
    (["--bc", "dirichlet"], "--bc"),
    (["--resolution", "0"], "--resolution"),
    (["--resolution", "1"], "--resolution"),
    (["--resolution", "-5"], "--resolution"),
    (["--resolution", "1.5"], "--resolution"),
    (["--resolution", "1e9"], "--resolution"),
    (["--resolution", "10000000"], "--resolution"),  # memory
    (["--resolution", HUGE], "--resolution"),
    (["--dim", "3", "--resolution", "5000"], "--resolution"),  # memory
    (["--degree", "0"], "--degree"),
    (["--degree", "x"], "--degree"),
    (["--degree", "100000"], "--degree"),  # memory, default resolution
    (["--resolution", "8", "--degree", "100000"], "--degree"),  # memory
    (["--output", "/proc/fe2hmm-test/cell.xdmf"], "--output"),
    (["--output", "/proc/cell.xdmf"], "--output"),
    (["--output", "/nonexistent-fe2hmm-folder/cell.xdmf"], "--output"),
    (["--output", "/dev/null/cell.xdmf"], "--output"),
    (["--output", "/tmp"], "--output"),
    (["--output", ""], "--output"),
    # cells from images (--rve image --image FILE)
    (["--rve", "image"], "--image"),
    (["--image", IMAGE], "--image"),  # without --rve image
    (["--image-shape", IMAGE], "--image-shape"),
    (["--image-shape", "0,4"], "--image-shape"),
    (["--rve", "image", "--image", "/nonexistent-fe2hmm-folder/a.npy"], "--image"),
    (["--rve", "image", "--image", str(REPO / "README.md")], "--image"),  # format
    (["--rve", "image", "--image", IMAGE, "--dim", "3"], "--dim"),  # the image is 2D
    (["--rve", "image", "--image", IMAGE, "--volume-fraction", "0.3"], "--volume-fraction"),
    (["--rve", "image", "--image", IMAGE, "--resolution", "8"], "--resolution"),
    (["--rve", "image", "--image", IMAGE, "--image-shape", "64,64"], "--image-shape"),  # .npy
    (["--rve", "image", "--image", IMAGE, "--image-dtype", "nope"], "--image-dtype"),
]

DIFFUSION = CELL + [
    (["--matrix", "0"], "--matrix"),
    (["--matrix", "-1"], "--matrix"),
    (["--matrix", "abc"], "--matrix"),
    (["--matrix", "nan"], "--matrix"),
    (["--matrix", "inf"], "--matrix"),
    (["--matrix", "1e308"], "--matrix"),
    (["--matrix", "1e200", "--inclusion", "1e200"], "--matrix"),
    (["--inclusion", "-3"], "--inclusion"),
    (["--inclusion", "1e308"], "--inclusion"),
    (["--inclusion", "1e400"], "--inclusion"),
    (["--inclusion", "1e16"], "--inclusion"),  # contrast: the solve would lose every digit
]

# `homogenize stokes`: the cell options without --bc and --output, degree >= 2
STOKES = [row for row in CELL if not {"--bc", "--output"} & set(row[0])] + [
    (["--degree", "1"], "--degree"),
    (["--matrix", "1"], "--matrix"),  # no materials: the fluid has viscosity 1
]

ELASTICITY = CELL + [
    (["--matrix", "1,0.5"], "--matrix"),
    (["--matrix", "1,-1"], "--matrix"),
    (["--matrix", "1,nan"], "--matrix"),
    (["--matrix", "0,0.3"], "--matrix"),
    (["--matrix", "1"], "--matrix"),
    (["--matrix", "a,b"], "--matrix"),
    (["--matrix", "1,0.3,5"], "--matrix"),
    (["--matrix", "1e308,0.3"], "--matrix"),
    (["--inclusion", "-2,0.3"], "--inclusion"),
    (["--inclusion", "inf,0.3"], "--inclusion"),
    (["--inclusion", "1e308,0.3"], "--inclusion"),
    (["--inclusion", "1e16,0.3"], "--inclusion"),  # contrast
    (["--bc", "flux-free"], "--bc"),
]

MD = [
    (["--lattice", "bcc"], "--lattice"),
    (["--lattice", "square"], "--lattice"),
    (["--cutoff", "1.0"], "--cutoff"),
    (["--cutoff", "nan"], "--cutoff"),
    (["--cutoff", "inf"], "--cutoff"),
    (["--cutoff", "1e6"], "--cutoff"),  # memory
    (["--lattice", "triangular", "--cutoff", "1e9"], "--cutoff"),  # memory
    (["--temperature", "-1"], "--temperature"),
    (["--temperature", "nan"], "--temperature"),
    (["--temperature", "1e308"], "--temperature"),
    (["--density", "0"], "--density"),
    (["--density", "-1"], "--density"),
    (["--density", "nan"], "--density"),
    (["--density", "1e300"], "--density"),
    (["--density", "1e-300"], "--density"),
    (["--density", "50"], "--density"),
    (["--cells", "0"], "--cells"),
    (["--cells", "1"], "--cells"),  # box narrower than twice the cutoff
    (["--cells", "1e3"], "--cells"),
    (["--cells", "1000000"], "--cells"),  # memory
    (["--steps", "0"], "--steps"),
    (["--temperature", "0.1", "--steps", "50"], "--steps"),
    (["--temperature", "0.1", "--steps", "1000000000000000"], "--steps"),  # time
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**64)], "--seed"),
    (["--seed", "x"], "--seed"),
    (["--bogus"], "--bogus"),
]

KMC_BASE = ["--coverage", "0.5", "--temperature", "1"]
KMC = [
    ([*KMC_BASE, "--lattice", "hexagonal"], "--lattice"),
    ([*KMC_BASE[2:], "--coverage", "1.5"], "--coverage"),
    ([*KMC_BASE[2:], "--coverage", "0"], "--coverage"),
    ([*KMC_BASE[2:], "--coverage", "1"], "--coverage"),
    ([*KMC_BASE[2:], "--coverage", "nan"], "--coverage"),
    ([*KMC_BASE[2:], "--coverage", "abc"], "--coverage"),
    ([*KMC_BASE[2:]], "--coverage"),  # required
    ([*KMC_BASE[:2]], "--temperature"),  # required
    ([*KMC_BASE[:2], "--temperature", "0"], "--temperature"),
    ([*KMC_BASE[:2], "--temperature", "inf"], "--temperature"),
    ([*KMC_BASE[:2], "--temperature", "1e-300"], "--temperature"),  # rates underflow
    ([*KMC_BASE, "--barrier", "-1"], "--barrier"),
    ([*KMC_BASE, "--barrier", "1e308"], "--barrier"),
    ([*KMC_BASE, "--disorder", "-0.5"], "--disorder"),
    ([*KMC_BASE, "--disorder", "1e308"], "--disorder"),
    ([*KMC_BASE, "--field", "1,2,3"], "--field"),
    ([*KMC_BASE, "--field", "x"], "--field"),
    ([*KMC_BASE, "--field", "nan"], "--field"),
    ([*KMC_BASE, "--field", "1e308"], "--field"),
    ([*KMC_BASE, "--size", "0"], "--size"),
    ([*KMC_BASE, "--size", "2"], "--size"),
    ([*KMC_BASE, "--size", "100000000"], "--size"),  # memory
    ([*KMC_BASE, "--size", HUGE], "--size"),
    ([*KMC_BASE, "--steps", "0"], "--steps"),
    ([*KMC_BASE, "--steps", "1000000000000000"], "--steps"),  # time
    ([*KMC_BASE, "--replicas", "1"], "--replicas"),
    ([*KMC_BASE, "--replicas", "1000000000000"], "--replicas"),  # memory
    ([*KMC_BASE, "--seed", "-1"], "--seed"),
    ([*KMC_BASE, "--seed", str(2**64)], "--seed"),
    ([*KMC_BASE, "--bogus"], "--bogus"),
]

# the demos' own checks (owned by the demos) reached through `fe2hmm demo NAME ARGS`
DEMO = [(["demo", name, "--bogus"], "--bogus") for name in list_demos()] + [
    (["demo", "composite_conduction", "--n", "0"], "--n"),
    (["demo", "transient_conduction", "--nx", "0"], "--nx"),
    (["demo", "fibre_plate_hole", "--h", "-1"], "--h"),
    (["demo", "adaptive_reuse", "--output-dir", "/proc/x"], "--output-dir"),
]

TABLE = (
    COMMANDS
    + [(["homogenize", "diffusion", *args], arg) for args, arg in DIFFUSION]
    + [(["homogenize", "elasticity", *args], arg) for args, arg in ELASTICITY]
    + [(["homogenize", "stokes", *args], arg) for args, arg in STOKES]
    + [(["md", "elastic", *args], arg) for args, arg in MD]
    + [(["kmc", "hopping", *args], arg) for args, arg in KMC]
    + DEMO
)


def _heavy(args) -> bool:
    """A demo's own checks (the demo module is imported before it parses)."""
    return args[0] == "demo" and len(args) > 2


def _rve_request(args) -> bool:
    """Checked by fe2hmm.rve.limits, which imports neither gmsh nor dolfinx."""
    registry = args[0] == "homogenize" and {"--rve", "--volume-fraction"} & set(args)
    return bool(registry or ("--degree" in args and "--resolution" not in args))


def fe2hmm(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``python -m fe2hmm ARGS``: the process, its wall and CPU seconds."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "fe2hmm", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=environment,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, wall, cpu


def assert_refused(out, argument: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith("fe2hmm: error: ") and argument in lines[0], lines
    assert "Traceback" not in out.stderr and out.stdout == ""
    return lines[0]


#: The rows also run as their own process (exit path, CPU time from a cold start): every 5th
#: row, every RVE request and every row whose check needs heavy imports; all rows run
#: in-process (below).
SUBPROCESS = [
    row for i, row in enumerate(TABLE) if i % 5 == 0 or _heavy(row[0]) or _rve_request(row[0])
]


@pytest.mark.parametrize(
    "args,argument", TABLE, ids=[" ".join(a)[:80] or "empty" for a, _ in TABLE]
)
def test_bad_command_line_one_line_exit_2_at_once(args, argument, capsys):
    """``fe2hmm.cli.main`` (the entry point) returns 2 with one line naming the argument."""
    t0 = time.process_time()
    status = main(list(args))
    seconds = time.process_time() - t0
    out = subprocess.CompletedProcess(args, status, *capsys.readouterr())
    assert_refused(out, argument)
    assert seconds < CPU_LIMIT, seconds


@pytest.mark.parametrize(
    "args,argument", SUBPROCESS, ids=[" ".join(a)[:80] or "empty" for a, _ in SUBPROCESS]
)
def test_bad_command_line_as_a_process(args, argument):
    out, wall, cpu = fe2hmm(*args)
    assert_refused(out, argument)
    assert cpu < CPU_LIMIT and wall < WALL_LIMIT, (cpu, wall)


def test_table_covers_every_subcommand_and_flag():
    """Every subcommand of the parser, and every option of homogenize/md/kmc, appears."""
    from fe2hmm.cli import _build_parser

    parser = _build_parser()
    commands = {tuple(a[:2]) for a, _ in TABLE}
    mentioned = {token for a, _ in TABLE for token in a if token.startswith("--")}
    for path, sub in _subcommands(parser):
        if len(path) == 2:
            assert path in commands or path[0] == "demo", path
        for action in sub._actions:
            flags = [f for f in action.option_strings if f.startswith("--")]
            if flags and flags[0] not in ("--help", "--json", "--version", "--list"):
                assert flags[0] in mentioned, (path, flags[0])


def _subcommands(parser, path=()):
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))


def test_memory_refusal_names_the_largest_value_that_fits():
    """With a memory limit the refusal names the largest value that fits; that value runs the
    check through, one more does not."""
    env = {"FE2HMM_MEMORY_LIMIT": "1G"}
    out, _, _ = fe2hmm("homogenize", "diffusion", "--resolution", "4000", env=env)
    line = assert_refused(out, "--resolution")
    assert "1 GiB available" in line
    best = int(line.split("the largest resolution that fits is ")[1])
    assert 100 < best < 4000
    out, _, _ = fe2hmm("homogenize", "diffusion", "--resolution", str(best + 1), env=env)
    assert f"the largest resolution that fits is {best}" in assert_refused(out, "--resolution")
    from fe2hmm.checks import cell_problem_bytes

    assert cell_problem_bytes(2, best, 1, 1) <= 2**30 < cell_problem_bytes(2, best + 1, 1, 1)


def test_unwritable_output_creates_no_folder(tmp_path):
    target = tmp_path / "missing" / "cell.xdmf"
    out, _, _ = fe2hmm("homogenize", "diffusion", "--resolution", "4", "--output", str(target))
    assert "does not exist" in assert_refused(out, "--output")
    assert not target.parent.exists() and list(tmp_path.iterdir()) == []


def test_library_raises_the_same_checks():
    """The cell models and cell problems raise the CLI's checks as ValueErrors naming the
    argument (resolution/degree, contrast, material magnitudes)."""
    from fe2hmm.micro.cells.diffusion import DiffusionCellModel
    from fe2hmm.micro.cells.elasticity import ElasticityCellModel, lame_parameters

    with pytest.raises(ValueError, match="^resolution=10000000: needs about"):
        DiffusionCellModel(resolution=10**7)
    with pytest.raises(ValueError, match="^degree=100000: needs about"):
        ElasticityCellModel(resolution=8, degree=100000)
    with pytest.raises(ValueError, match="^inclusion: contrast"):
        DiffusionCellModel(matrix=1.0, inclusion=1e16)
    with pytest.raises(ValueError, match="at most 1e\\+150"):
        lame_parameters(1e308, 0.3)
    from fe2hmm import rve
    from fe2hmm.micro.cells.diffusion import DiffusionCellProblem
    from fe2hmm.rve.cell import INCLUSION, MATRIX

    cell = rve.create("circle", volume_fraction=0.3, resolution=4)
    with pytest.raises(ValueError, match="^degree=100000: needs about"):
        DiffusionCellProblem(cell, {MATRIX: 1.0, INCLUSION: 10.0}, degree=100000)
    with pytest.raises(ValueError, match="^inclusion: contrast 1e\\+16"):
        DiffusionCellProblem(cell, {MATRIX: 1.0, INCLUSION: 1e16})


def test_md_and_kmc_constants_match_the_engines():
    """The CLI's cheap pre-checks mirror constants of the engines they guard."""
    from fe2hmm import cli
    from fe2hmm.micro.particles.lattice import LATTICES
    from fe2hmm.micro.stochastic import hopping

    assert {k: v[0] for k, v in cli._MD_LATTICES.items()} == LATTICES
    assert cli._KMC_MAX_EXPONENT == hopping._MAX_EXPONENT
