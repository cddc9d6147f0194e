"""Benchmark scripts keep running and keep their --json contract (no timing assertions)."""

import json

from conftest import REPO, run_python, serial_only


@serial_only
def test_cell_diffusion_benchmark_quick_json():
    out = run_python([REPO / "benchmarks/cell_diffusion.py", "--quick", "--json"], timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    cases = json.loads(out.stdout.strip().splitlines()[-1])["cases"]
    assert {c["dim"] for c in cases} == {2, 3}
    for c in cases:
        assert {"dim", "dofs", "seconds", "bare_seconds", "splu_seconds"} <= set(c)
        assert c["dofs"] > 0 and c["seconds"] > 0


@serial_only
def test_fe2_elasticity_benchmark_quick_json():
    out = run_python([REPO / "benchmarks/fe2_elasticity.py", "--quick", "--json"], timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    cases = json.loads(out.stdout.strip().splitlines()[-1])["cases"]
    keys = {"dim", "micro_dofs", "macro_points", "seconds_per_newton", "micro_share", "bare_ratio"}
    assert {c["dim"] for c in cases} == {2, 3} and all(keys <= set(c) for c in cases)
    assert all(0 < c["micro_share"] <= 1 for c in cases)
