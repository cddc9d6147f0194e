"""``fe2hmm kmc hopping``: the JSON contract, exact lattice-gas values, bad arguments."""

import json
import math
import time

import pytest
from conftest import run_python, serial_only

from fe2hmm.cli import main

pytestmark = serial_only

KEYS = (
    "tracer_diffusion",
    "jump_diffusion",
    "chemical_diffusion",
    "correlation_factor",
    "haven_ratio",
    "conductivity",
)


def fe2hmm(*args, timeout=300):
    return run_python(["-m", "fe2hmm", *args], timeout=timeout)


def test_kmc_hopping_json_matches_exact_lattice_gas():
    """Square lattice gas without disorder: D_jump = D0 (1 - c) and D_chem = D0 exactly
    (D0 = Γ a² = exp(-E_a/T)); H = f for the lattice gas (D_jump = D0 (1 - c))."""
    c, T, Ea = 0.5, 1.0, 1.0
    out = fe2hmm(
        "kmc", "hopping", "--lattice", "square", "--coverage", str(c), "--temperature", str(T),
        "--barrier", str(Ea), "--size", "16", "--steps", "40000", "--replicas", "8",
        "--seed", "3", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(KEYS) | {"standard_errors", "events", "events_per_second"} <= set(report)
    assert set(report["standard_errors"]) >= set(KEYS)
    assert abs(report["events"] - 8 * 40000) <= 8 * 40000 * 0.05  # production hops, all replicas
    assert report["events_per_second"] > 1e4
    D0 = math.exp(-Ea / T)
    se = report["standard_errors"]
    for key, exact in (("jump_diffusion", D0 * (1 - c)), ("chemical_diffusion", D0)):
        assert 0 < se[key] < 0.2 * exact, (key, report[key], se[key])
        assert abs(report[key] - exact) < 4 * se[key] + 1e-3 * exact, (key, report[key], se[key])
    # f(c) of the square lattice gas (Tahir-Kheli & Elliott 1983; accurate to ~1 %), with
    # α = (1 − f₀)/(1 + f₀) from the vacancy limit f₀ = 0.4669: f(1/2) ≈ 0.725
    alpha = (1 - 0.4669) / (1 + 0.4669)
    f_tke = (1 - alpha) * (2 - c) / (2 * (1 - alpha) + (3 * alpha - 1) * c)
    f, H = report["correlation_factor"], report["haven_ratio"]
    assert abs(f - f_tke) < 4 * se["correlation_factor"] + 0.03, (f, f_tke)
    assert abs(H - f) < 4 * (se["haven_ratio"] + se["correlation_factor"])
    sigma = c * report["jump_diffusion"] / T  # Nernst–Einstein, n = c per unit area
    assert abs(report["conductivity"] - sigma) < 1e-9 * sigma


def test_kmc_hopping_table_and_help():
    out = fe2hmm("kmc", "hopping", "--help")
    assert out.returncode == 0 and "lattice spacing 1" in out.stdout
    assert "reference kT" in " ".join(out.stdout.split())
    out = fe2hmm(
        "kmc", "hopping", "--lattice", "triangular", "--coverage", "0.3", "--temperature", "2",
        "--disorder", "1", "--size", "8", "--steps", "2000", "--replicas", "2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "jump_diffusion" in out.stdout and "±" in out.stdout


BASE = ["kmc", "hopping", "--coverage", "0.5", "--temperature", "1"]


@pytest.mark.parametrize(
    "args,argument",
    [
        (["--lattice", "hexagonal"], "--lattice"),
        (["--coverage", "1.5"], "--coverage"),
        (["--coverage", "abc"], "--coverage"),
        (["--coverage", "0.001", "--size", "4"], "--coverage"),  # no ion on 16 sites
        (["--temperature", "0"], "--temperature"),
        (["--temperature", "nan"], "--temperature"),
        (["--barrier", "-1"], "--barrier"),
        (["--disorder", "-0.5"], "--disorder"),
        (["--field", "1,2,3"], "--field"),  # square lattice: 2 components
        (["--field", "x"], "--field"),
        (["--size", "0"], "--size"),
        (["--size", "2"], "--size"),
        (["--size", "100000"], "--size"),  # memory estimate far above the limit
        (["--steps", "0"], "--steps"),
        (["--steps", "1000000000"], "--steps"),  # 8e9 hops: too long
        (["--replicas", "1"], "--replicas"),
        (["--seed", "-1"], "--seed"),
        (["--bogus"], "--bogus"),
    ],
)
def test_kmc_hopping_bad_arguments_one_line_exit_2(args, argument, capsys):
    t0 = time.perf_counter()
    assert main([*BASE, *args]) == 2
    assert time.perf_counter() - t0 < 10  # refused before any simulation
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and argument in err[0], err


def test_kmc_hopping_refusals_name_largest_value(capsys, monkeypatch):
    monkeypatch.setenv("FE2HMM_MEMORY_LIMIT", "4G")  # not the machine's: reproducible
    assert main([*BASE, "--size", "100000"]) == 2
    err = capsys.readouterr().err
    assert "more than the 4 GiB available" in err
    largest = int(err.split("the largest size that fits is ")[1].split()[0])
    assert 3 < largest < 100000
    assert main([*BASE, "--size", str(largest + 1)]) == 2
    assert f"the largest size that fits is {largest}" in capsys.readouterr().err
    assert main([*BASE, "--steps", "1000000000"]) == 2  # 8e9 hops: about two hours
    assert "the largest steps that fits is 500000000" in capsys.readouterr().err


def test_kmc_missing_arguments_subprocess_no_traceback():
    out = fe2hmm("kmc", "hopping", "--coverage", "0.5")
    assert out.returncode == 2 and "--temperature" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    out = fe2hmm("kmc")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
