"""The fe2hmm command line (DESIGN.md §5 contracts)."""

import json

import pytest
from conftest import run_python, serial_only

from fe2hmm import analytic

pytestmark = serial_only


def fe2hmm(*args, timeout=300):
    return run_python(["-m", "fe2hmm", *args], timeout=timeout)


def test_help_and_demo_list():
    out = fe2hmm("--help")
    assert out.returncode == 0 and "homogenize" in out.stdout and "demo" in out.stdout
    out = fe2hmm("demo", "--list")
    assert out.returncode == 0 and "composite_conduction" in out.stdout.split()


def test_homogenize_diffusion_json_matches_published_square_array():
    out = fe2hmm(
        "homogenize",
        "diffusion",
        "--rve",
        "circle",
        "--volume-fraction",
        "0.5",
        "--matrix",
        "1",
        "--inclusion",
        "10",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("effective_tensor", "dofs", "seconds"):
        assert key in report
    K = report["effective_tensor"]
    ref = analytic.square_array_cylinders(1.0, 10.0, 0.5)  # Perrins et al. 1979
    assert abs(K[0][0] - ref) / ref < 5e-3 and abs(K[1][1] - ref) / ref < 5e-3
    assert report["dofs"] > 100


def test_homogenize_3d_and_bcs_human_output():
    out = fe2hmm(
        "homogenize",
        "diffusion",
        "--rve",
        "sphere",
        "--dim",
        "3",
        "--volume-fraction",
        "0.2",
        "--resolution",
        "8",
        "--bc",
        "affine",
    )
    assert out.returncode == 0, out.stderr
    assert "K* =" in out.stdout


@pytest.mark.parametrize(
    "args,argument",
    [
        (["--volume-fraction", "0.95"], "--volume-fraction"),
        (["--volume-fraction", "-0.1"], "--volume-fraction"),
        (["--matrix", "0"], "--matrix"),
        (["--inclusion", "-3"], "--inclusion"),
        (["--rve", "hexagon"], "--rve"),
        (["--rve", "circle", "--dim", "3"], "--rve"),
        (["--dim", "4"], "--dim"),
        (["--bc", "dirichlet"], "--bc"),
        (["--resolution", "0"], "--resolution"),
        (["--matrix", "abc"], "--matrix"),
    ],
)
def test_bad_arguments_one_line_no_traceback(args, argument):
    out = fe2hmm("homogenize", "diffusion", *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert argument in lines[0] and "Traceback" not in out.stderr


def test_unknown_demo_and_missing_physics():
    out = fe2hmm("demo", "nope")
    assert out.returncode == 2 and "unknown demo 'nope'" in out.stderr
    out = fe2hmm("homogenize")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
