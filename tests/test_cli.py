"""The fe2hmm command line (DESIGN.md §5 contracts)."""

import json

import numpy as np
import pytest
from conftest import REPO, run_python, serial_only

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


def test_homogenize_stokes_json_matches_the_published_square_array():
    """``homogenize stokes``: K/L² of a square array of cylinders at solid fraction 0.4 within
    0.1 % of Sangani & Acrivos's table (μU/F = 1/217.89; measured 1.2e-4), the circle's
    inclusion the solid grain; the human output names the tensor."""
    out = fe2hmm("homogenize", "stokes", "--volume-fraction", "0.4", "--resolution", "32", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["physics"] == "stokes" and report["dofs"] > 1000 and report["seconds"] > 0
    K = np.array(report["effective_tensor"])
    assert abs(K[0, 0] * 217.89 - 1) < 1e-3 and abs(K[1, 1] * 217.89 - 1) < 1e-3
    assert all(x > 0 for x in report["eigenvalues"])
    human = fe2hmm("homogenize", "stokes", "--rve", "voids", "--resolution", "8")
    assert human.returncode == 0 and "permeability / cell size²" in human.stdout


def test_homogenize_image_cells_on_the_command_line(tmp_path):
    """``--rve image --image FILE``: the shipped image under every physics, the same tensor as
    the library's image cell (to round-off), the image in the report; a .raw copy with its shape
    gives the same K*."""
    from fe2hmm.micro.cells.diffusion import homogenize_diffusion
    from fe2hmm.rve.cell import INCLUSION, MATRIX
    from fe2hmm.rve.image import image_cell

    image = REPO / "tests" / "data" / "blobs_64.npy"
    labels = np.load(image)
    np.ascontiguousarray(labels).tofile(tmp_path / "blobs.raw")
    expected = homogenize_diffusion(image_cell(labels), {MATRIX: 1.0, INCLUSION: 10.0})
    for source in (
        ["--image", str(image)],
        [
            "--image",
            str(tmp_path / "blobs.raw"),
            "--image-shape",
            "64,64",
            "--image-dtype",
            "uint8",
        ],
    ):
        out = fe2hmm("homogenize", "diffusion", "--rve", "image", *source, "--json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        np.testing.assert_allclose(report["effective_tensor"], expected.effective_tensor,
                                   rtol=1e-10)  # fmt: skip
        assert report["rve"] == "image" and report["image_shape"] == [64, 64]
        assert report["volume_fraction"] == pytest.approx(labels.mean())
    for physics in ("elasticity", "stokes"):
        out = fe2hmm("homogenize", physics, "--rve", "image", "--image", str(image), "--json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert all(x > 0 for x in report["eigenvalues"]), report  # the pores percolate


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


def test_homogenize_elasticity_json_voigt_and_hill_mandel():
    out = fe2hmm(
        "homogenize",
        "elasticity",
        "--rve",
        "laminate",
        "--volume-fraction",
        "0.4",
        "--matrix",
        "1,0.3",
        "--inclusion",
        "10,0.2",
        "--resolution",
        "6",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    C = np.array(report["effective_tensor"])
    ref = analytic.laminate_stiffness(
        analytic.isotropic_stiffness_tensor(1.0, 0.3, 2),
        analytic.isotropic_stiffness_tensor(10.0, 0.2, 2),
        0.4,
        normal=0,
    )
    np.testing.assert_allclose(C, ref, atol=1e-9)  # C[2, 2] is the shear modulus G12
    assert report["hill_mandel_error"] < 1e-12 and report["dofs"] > 0 and report["seconds"] > 0


@pytest.mark.parametrize(
    "args,argument",
    [
        (["--matrix", "1,0.5"], "--matrix"),
        (["--inclusion", "-2,0.3"], "--inclusion"),
        (["--matrix", "1"], "--matrix"),
        (["--bc", "flux-free"], "--bc"),
        (["--rve", "sphere"], "--rve"),
    ],
)
def test_elasticity_bad_arguments(args, argument):
    out = fe2hmm("homogenize", "elasticity", *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and argument in lines[0], out.stderr


@pytest.mark.parametrize("physics", ["diffusion", "elasticity"])
def test_output_writes_mesh_phases_and_fluctuations(physics, tmp_path):
    target = tmp_path / "cell.xdmf"  # the folder must exist (test_cli_bad_input: no mkdir)
    out = fe2hmm(
        "homogenize", physics, "--resolution", "8", "--degree", "2", "--output", str(target)
    )
    assert out.returncode == 0, out.stderr
    xml = target.read_text()
    assert target.with_suffix(".h5").stat().st_size > 0
    # the phase tags and one fluctuation per unit load case (2 for diffusion, 3 for elasticity)
    assert 'Name="phase"' in xml
    cases = 2 if physics == "diffusion" else 3
    assert all(f'Name="w{i}"' in xml for i in range(cases)) and f'Name="w{cases}"' not in xml


def test_demo_bad_argument_is_one_line():
    out = fe2hmm("demo", "composite_conduction", "--bogus")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--bogus" in lines[0] and "composite_conduction" in lines[0]


def test_failure_during_computation_exits_1(monkeypatch, capsys):
    from fe2hmm import cli
    from fe2hmm.micro.cells import diffusion

    def broken(*args, **kwargs):
        raise ValueError("matrix is singular")

    monkeypatch.setattr(diffusion, "homogenize_diffusion", broken)
    assert cli.main(["homogenize", "diffusion", "--resolution", "4"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fe2hmm: failed: ValueError: matrix is singular"]


def test_md_elastic_json_contract_and_errors():
    """`fe2hmm md elastic` at T = 0: the zero-pressure FCC lattice for rc = 2.5, no stress, and
    C equal to the lattice sums (C11 = 97.71206, C12 = C44 = 55.62663 in LJ units)."""
    out = fe2hmm("md", "elastic", "--lattice", "fcc", "--cutoff", "2.5", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"lattice_constant", "stress", "stress_error", "C"} <= set(report)
    assert report["lattice_constant"] == pytest.approx(1.549603, rel=1e-6)
    C = np.array(report["C"])
    assert C.shape == (6, 6)
    assert C[0, 0] == pytest.approx(97.71206, rel=1e-6)
    assert C[0, 1] == pytest.approx(C[3, 3], rel=1e-6)
    assert np.abs(report["stress"]).max() < 1e-10
    for args, name in (
        (("--lattice", "bcc"), "--lattice"),
        (("--temperature", "-1"), "--temperature"),
        (("--cutoff", "1.0"), "--cutoff"),
        (("--cells", "1"), "--cells"),
        (("--temperature", "0.1", "--steps", "50"), "--steps"),
    ):
        bad = fe2hmm("md", "elastic", *args)
        assert bad.returncode == 2 and name in bad.stderr and "Traceback" not in bad.stderr


def test_homogenize_json_reports_the_meshed_volume_fractions():
    """`volume_fractions` holds the meshed fractions by phase name (the cell's integral of its
    tags, what K*/C* belong to); the Hashin–Shtrikman bounds are those of the meshed fraction."""
    from fe2hmm import rve

    for physics, name, extra in (
        ("diffusion", "circle", ["--matrix", "1", "--inclusion", "10"]),
        ("elasticity", "voids", []),
    ):
        args = ["--rve", name, "--volume-fraction", "0.3", "--resolution", "8", "--json"]
        out = fe2hmm("homogenize", physics, *args, *extra)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        cell = rve.create(name, volume_fraction=0.3, resolution=8)
        assert report["volume_fraction"] == 0.3
        assert report["volume_fractions"] == pytest.approx(cell.named_volume_fractions, rel=1e-12)
        phase = "inclusion" if name == "circle" else "void"
        assert set(report["volume_fractions"]) == {"matrix", phase}
        assert report["volume_fractions"][phase] == pytest.approx(0.3, rel=1e-4)
        if physics == "diffusion":
            bounds = analytic.hashin_shtrikman_bounds(
                1.0, 10.0, report["volume_fractions"]["inclusion"], dim=2
            )
            assert report["hashin_shtrikman_bounds"] == pytest.approx(list(bounds), rel=1e-12)


@serial_only
@pytest.mark.parametrize("physics", ["diffusion", "elasticity", "stokes"])
def test_homogenize_imports_neither_numba_nor_scipy(physics):
    """The one-shot cell solve runs no numba and its linear algebra is NumPy + PETSc, so its
    process skips numba's and SciPy's imports (~0.3 s each; FFCx would pull numba in); numba
    stays importable afterwards (the published values of the cells are checked through the
    same command by the tests above)."""
    code = (
        "import sys\n"
        "from fe2hmm.cli import main\n"
        f"assert main(['homogenize', '{physics}', '--resolution', '6', '--json']) == 0\n"
        "assert 'numba' not in sys.modules, 'numba imported'\n"
        "assert not [m for m in sys.modules if m.startswith('scipy')], 'scipy imported'\n"
        "import ffcx.codegeneration.utils as utils\n"
        "assert utils.numba is None\n"
        "import numba\n"
        "assert numba.njit(lambda x: 2 * x)(3) == 6\n"
    )
    out = run_python(["-c", code])
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.all(np.isfinite(report["effective_tensor"]))
