"""The Python examples of the README and the docs front page run as written."""

import re

import pytest
from conftest import REPO, run_python, serial_only


@serial_only
@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_python_example_runs(page, tmp_path):
    text = (REPO / page).read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code + "\nassert model.statistics.micro_solves > 0\n")
    out = run_python([script], timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
