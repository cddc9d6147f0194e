"""The README's Python example runs as written."""

import re

from conftest import REPO, run_python, serial_only


@serial_only
def test_readme_python_example(tmp_path):
    text = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    script = tmp_path / "readme_example.py"
    script.write_text(code + "\nassert closure.model.statistics.micro_solves > 0\n")
    out = run_python([script], timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
