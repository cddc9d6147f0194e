"""The command outputs that docs pages quote, found, run and compared.

A quoted output is either a ``console`` block (``$ fe2hmm …`` lines, each followed by its
output) or any fenced block right after an HTML comment ``<!-- output of: fe2hmm … -->``; the
command may start with environment assignments (``$ FE2HMM_MEMORY_LIMIT=4G fe2hmm …`` pins a
machine-dependent limit). ``<!-- output of: the Python block above -->`` quotes what the page's
last ``python`` block before it prints, run as a script. Commands run in a fresh folder, so that
the files they write land under the default ``output/…`` paths they print. A quote matches a
fresh run when the lines agree with every number masked (whitespace runs collapsed), and the
numbers agree to 1 % (absolute 1e-3); wall times (a number before ``s`` or ``events/s``, a JSON
key with ``seconds``) are not compared. JSON lines are compared as JSON: the same keys everywhere.
Mesh-generator versions move the last digits of cell results (1240 instead of 1244 dofs), hence
the tolerance; the published values themselves are checked by the tests of the models.

Who checks what: ``tests/test_docs_site.py`` runs every quoted command except the demos' runs;
those are checked by the test in ``tests/test_demos.py`` that runs the demo anyway
(:func:`demo_run`), so that a demo runs once per suite. A quote of ``fe2hmm demo X ARGS`` is
checked by a ``demo_run("fe2hmm demo X ARGS --json", …)``: ``--json`` only appends the JSON
line, which the comparison leaves out.

To regenerate the quotes of a page from runs instead of editing them by hand::

    .venv/bin/python tests/_quoted_outputs.py --update docs/demos/porous_plasticity.md
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO, run_python

DOCS = REPO / "docs"
SKIP_DIRS = {"_build", "_generated"}


def pages() -> list[Path]:
    """Every Markdown page of docs/ (not the build tree or the generated demo pages)."""
    return sorted(
        p for p in DOCS.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(DOCS).parts[:-1])
    )


@dataclass
class Quote:
    """One quoted output: ``page`` lines ``[start, stop)`` are what ``command`` printed."""

    page: Path
    start: int
    stop: int
    command: str
    lines: list[str]
    script: str | None = None  # the code of a quoted Python block (``command`` names it)

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.start + 1}:{self.command}"


_FENCE = re.compile(r"^(`{3,})\s*([^`\s]*)[^`]*$")  # an opening fence and its language
_MARKER = re.compile(r"^<!--\s*output of:\s*(.+?)\s*-->\s*$")
PYTHON_ABOVE = "the Python block above"


def quotes(page: Path) -> list[Quote]:
    """The quoted outputs of ``fe2hmm`` commands on one page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i, python = [], 0, None
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        stop = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), None
        )
        assert stop is not None, f"{page}:{i + 1}: unclosed fence"
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(previous)
        if marker and marker.group(1) == PYTHON_ABOVE:
            assert python is not None, f"{page}:{i + 1}: no Python block above"
            where = page.relative_to(REPO) if page.is_relative_to(REPO) else page
            command = f"python {where}:{python[0]}"
            found.append(Quote(page, i + 1, stop, command, lines[i + 1 : stop], python[1]))
        elif marker and split_command(marker.group(1)):
            found.append(Quote(page, i + 1, stop, marker.group(1), lines[i + 1 : stop]))
        elif fence.group(2) == "console":
            starts = [j for j in range(i + 1, stop) if lines[j].startswith("$ ")]
            for k, j in enumerate(starts):
                end = starts[k + 1] if k + 1 < len(starts) else stop
                command = lines[j][2:].strip()
                if split_command(command):
                    found.append(Quote(page, j + 1, end, command, lines[j + 1 : end]))
        if fence.group(2) == "python":
            python = (i + 2, "\n".join(lines[i + 1 : stop]) + "\n")
        i = stop + 1
    return found


def all_quotes() -> list[Quote]:
    return [q for page in pages() for q in quotes(page)]


def split_command(command: str) -> tuple[dict[str, str], list[str]] | None:
    """``NAME=value … fe2hmm ARGS`` as (environment, ARGS); ``None`` for other commands."""
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return (env, words[1:]) if words[:1] == ["fe2hmm"] else None


def run_command(command: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``[NAME=value …] fe2hmm ARGS`` as ``python -m fe2hmm ARGS`` in ``cwd`` (one thread,
    no progress bars, unbuffered)."""
    assignments, words = split_command(command)
    env = {"FE2HMM_PROGRESS": "0", **assignments}
    return run_python(["-m", "fe2hmm", *words], timeout=timeout, cwd=cwd, env=env)


def run_quoted(quote: Quote) -> tuple[int, list[str]]:
    """Run a quote's command (or Python block) in a fresh folder; its exit status and standard
    output (standard error if it failed)."""
    with tempfile.TemporaryDirectory(prefix="fe2hmm-quote-") as folder:
        if quote.script is None:
            out = run_command(quote.command, Path(folder))
        else:
            script = Path(folder) / "block.py"
            script.write_text(quote.script, encoding="utf-8")
            out = run_python([script], cwd=folder)
    text = out.stdout if out.returncode == 0 else out.stderr
    return out.returncode, text.rstrip("\n").splitlines()


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_TIME_AFTER = re.compile(r"\s*(?:s\b|events/s\b)")


def _numbers(line: str) -> tuple[str, list[float | None]]:
    """``line`` with every number masked (whitespace collapsed), and the numbers (``None`` for
    wall times)."""
    values = []
    for match in _NUMBER.finditer(line):
        is_time = _TIME_AFTER.match(line, match.end()) is not None
        values.append(None if is_time else float(match.group()))
    masked = re.sub(r"\s+", " ", _NUMBER.sub("#", line)).strip()
    return masked, values


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-2, abs_tol=1e-3)


def _json_differences(quoted, actual, path="") -> list[str]:
    if "seconds" in path.rsplit(".", 1)[-1] or "per_second" in path:
        return []
    if isinstance(quoted, dict) and isinstance(actual, dict):
        if set(quoted) != set(actual):
            return [f"{path or 'top level'}: keys {sorted(quoted)} != {sorted(actual)}"]
        return [d for k in quoted for d in _json_differences(quoted[k], actual[k], f"{path}.{k}")]
    if isinstance(quoted, list) and isinstance(actual, list):
        if len(quoted) != len(actual):
            return [f"{path}: {len(quoted)} items != {len(actual)}"]
        pairs = enumerate(zip(quoted, actual, strict=True))
        return [d for i, (q, a) in pairs for d in _json_differences(q, a, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(quoted, numbers) and isinstance(actual, numbers):
        if isinstance(quoted, bool) != isinstance(actual, bool) or not _close(quoted, actual):
            return [f"{path}: {quoted!r} != {actual!r}"]
        return []
    return [] if quoted == actual else [f"{path}: {quoted!r} != {actual!r}"]


def differences(quoted: list[str], actual: list[str]) -> list[str]:
    """How a quoted output differs from a fresh one (empty: it matches, see the module doc)."""
    if len(quoted) != len(actual):
        return [f"{len(quoted)} lines quoted, {len(actual)} printed"]
    found = []
    for n, (q, a) in enumerate(zip(quoted, actual, strict=True), start=1):
        if q.startswith("{") and a.startswith("{"):
            try:
                found += [f"line {n}: {d}" for d in _json_differences(json.loads(q), json.loads(a))]
                continue
            except json.JSONDecodeError:
                pass
        (q_text, q_values), (a_text, a_values) = _numbers(q), _numbers(a)
        if q_text != a_text or len(q_values) != len(a_values):
            found.append(f"line {n}: quoted {q!r}, printed {a!r}")
            continue
        for x, y in zip(q_values, a_values, strict=True):
            if x is not None and y is not None and not _close(x, y):
                found.append(f"line {n}: {x!r} != {y!r} (quoted {q!r}, printed {a!r})")
    return found


# --- demo runs: checked by the test that runs the demo -----------------------------------------


def covers(run: str, quoted: str) -> bool:
    """Whether the output of ``run`` shows what ``quoted`` prints: the same command, or the same
    with ``--json`` (which only appends the JSON line)."""
    if split_command(run) is None or split_command(quoted) is None:
        return False  # a quoted Python block, or a command other than fe2hmm
    (run_env, run_words), (quoted_env, quoted_words) = split_command(run), split_command(quoted)
    return run_env == quoted_env and (
        run_words == quoted_words or run_words == [*quoted_words, "--json"]
    )


def demo_run(command: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a demo command in ``cwd`` (its files under ``cwd/output/…``), check that it succeeded
    and that every page quoting its output (see :func:`covers`) quotes what it printed now;
    return the process. A quote of a demo run that no test passes here fails
    ``tests/test_docs_site.py``."""
    out = run_command(command, cwd, timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    printed = out.stdout.rstrip("\n").splitlines()
    for quote in all_quotes():
        if covers(command, quote.command):
            same = split_command(command) == split_command(quote.command)
            shown = printed if same else printed[:-1]  # without the JSON line
            found = differences(quote.lines, shown)
            assert not found, (
                f"{quote.id}: the quoted output is stale ({'; '.join(found[:5])}); regenerate "
                f"it with `.venv/bin/python tests/_quoted_outputs.py --update "
                f"{quote.page.relative_to(REPO)}`; fresh output:\n" + "\n".join(shown)
            )
    return out


def update(page: Path) -> int:
    """Replace every quoted output of ``page`` by a fresh run's; the number of quotes changed."""
    lines = page.read_text(encoding="utf-8").splitlines()
    changed = 0
    for quote in reversed(quotes(page)):
        _, printed = run_quoted(quote)
        if differences(quote.lines, printed):
            lines[quote.start : quote.stop] = [line.rstrip() for line in printed]
            changed += 1
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="regenerate the quoted outputs of docs pages")
    parser.add_argument("--update", nargs="+", type=Path, required=True, metavar="PAGE")
    for page in parser.parse_args().update:
        print(f"{page}: {update(page.resolve())} quoted output(s) regenerated", flush=True)
