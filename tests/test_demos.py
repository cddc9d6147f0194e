"""Every demo runs and its own check passes (the demos end in checked results)."""

import json

import pytest
from conftest import REPO, run_python, serial_only

pytestmark = serial_only


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_composite_conduction_default(tmp_path):
    out = run_python(
        [REPO / "demos/composite_conduction.py", "--n", "16", "--json", "--output-dir", tmp_path]
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = last_json(out.stdout)
    assert summary["newton_iterations"] == 1
    assert summary["closure_vs_perrins_l2"] < 5e-3
    assert 0 < summary["cell_problems_solved"] < summary["quadrature_points"]
    assert (tmp_path / "composite_conduction.xdmf").exists()
    assert (tmp_path / "composite_conduction.png").stat().st_size > 10_000


def test_composite_conduction_dns_table_via_cli(tmp_path):
    out = run_python(
        [
            "-m",
            "fe2hmm",
            "demo",
            "composite_conduction",
            "--dns",
            "--eps",
            "4,8",
            "--n",
            "16",
            "--no-plot",
            "--json",
            "--output-dir",
            tmp_path,
        ]
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows = last_json(out.stdout)["rows"]
    assert [r["eps"] for r in rows] == [0.25, 0.125]
    for r in rows:
        assert {"eps", "dns_dofs", "dns_seconds", "hmm_seconds", "l2_error", "h1_error"} <= set(r)
    assert rows[1]["l2_error"] < rows[0]["l2_error"]
    assert rows[1]["h1_error"] < rows[0]["h1_error"]


@pytest.mark.slow
def test_composite_conduction_dns_rates(tmp_path):
    out = run_python(
        [
            "-m",
            "fe2hmm",
            "demo",
            "composite_conduction",
            "--dns",
            "--no-plot",
            "--json",
            "--output-dir",
            tmp_path,
        ],
        timeout=1200,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = last_json(out.stdout)
    # homogenisation theory: L2 error O(eps); H1 error of the corrected field at least O(eps^1/2)
    assert summary["l2_rate"] > 0.8
    assert summary["h1_rate"] > 0.4
    assert summary["rows"][-1]["l2_error"] < 0.02


@pytest.mark.slow
def test_composite_conduction_under_mpi(tmp_path):
    out = run_python(
        [
            REPO / "demos/composite_conduction.py",
            "--n",
            "16",
            "--json",
            "--no-plot",
            "--output-dir",
            tmp_path,
        ],
        nprocs=2,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert last_json(out.stdout)["newton_iterations"] == 1


def test_porous_plasticity_demo(tmp_path):
    out = run_python(
        [REPO / "demos/porous_plasticity.py", "--json", "--output-dir", tmp_path], timeout=900
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = last_json(out.stdout)
    assert all(summary["checks"].values()), summary["checks"]
    assert summary["unloading_slope"] == pytest.approx(summary["elastic_slope"], rel=1e-6)
    assert (tmp_path / "porous_plasticity.png").exists()
    assert (tmp_path / "porous_plasticity.xdmf").exists()


def test_fibre_plate_hole_demo(tmp_path):
    out = run_python(
        [REPO / "demos/fibre_plate_hole.py", "--json", "--output-dir", tmp_path], timeout=900
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = last_json(out.stdout)
    assert all(summary["checks"].values()), summary["checks"]
    assert summary["fe2_stress_concentration"] > 2.0  # a real concentration (applied stress 1)


def test_porous_plasticity_demo_elastic_predictor_saves_solves_not_accuracy(tmp_path):
    runs = {}
    for flag in ([], ["--no-reuse"]):
        out = run_python(
            [REPO / "demos/porous_plasticity.py", "--json", "--no-plot", "--output-dir", tmp_path]
            + flag,
            timeout=900,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        runs[bool(flag)] = last_json(out.stdout)
    reuse, naive = runs[False], runs[True]
    assert reuse["micro_solves"] < 0.8 * naive["micro_solves"]  # measured 798 vs 1260
    for a, b in zip(reuse["steps"], naive["steps"], strict=True):
        assert a["iterations"] == b["iterations"]
        assert a["force"] == pytest.approx(b["force"], rel=1e-7, abs=1e-12)


def test_adaptive_reuse_demo(tmp_path):
    out = run_python(
        [REPO / "demos/adaptive_reuse.py", "--n", "12", "--n-slab", "12", "--json"]
        + ["--output-dir", tmp_path],
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = last_json(out.stdout)
    assert all(summary["checks"].values()), summary["checks"]
    assert any(r["critical_points"] > 0 for r in summary["slab"])
    assert summary["nodes_indicator"] > summary["nodes_plain"]
    assert (tmp_path / "composite_indicator.xdmf").exists()
