"""The Python examples of the README, the docs front page, "Writing a macro model" and
"Writing a micro-model" run as written."""

import re

import pytest
from conftest import REPO, run_python, serial_only


def _python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / page).read_text(), re.S)


@serial_only
@pytest.mark.parametrize("page", ["README.md", "docs/index.md", "docs/macro_models.md"])
def test_python_example_runs(page, tmp_path):
    code = _python_blocks(page)[0]
    script = tmp_path / "example.py"
    script.write_text(code + "\nassert model.statistics.micro_solves > 0\n")
    out = run_python([script], timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


MICRO_MODELS = "docs/micro_models.md"


def test_micro_models_page_has_its_examples():
    """The page's examples: the Bruggeman closure, the stochastic model, the stateful model,
    the task-splitting model (the parametrisation below runs each of them)."""
    assert len(_python_blocks(MICRO_MODELS)) == 4


@serial_only
@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("block", range(4))
def test_micro_model_examples_run(block, nprocs, tmp_path):
    """Every Python block of "Writing a micro-model" runs as written (each asserts its own
    result), on one rank and under ``mpiexec -n 2``."""
    script = tmp_path / f"micro_models_{block}.py"
    script.write_text(_python_blocks(MICRO_MODELS)[block])
    out = run_python([script], nprocs=nprocs, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
