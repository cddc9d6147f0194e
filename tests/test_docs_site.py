"""The docs site and the outputs its pages quote.

``make docs`` (part of ``make test``) builds the site with warnings as errors; the tests here are
the checks that need no Sphinx: every page is reached from a toctree of ``docs/index.md``, every
demo script renders as a page, and every command output a page quotes is what the command prints
now.

A quoted output is either a ``console`` block (``$ fe2hmm …`` lines, each followed by its
output) or any fenced block right after an HTML comment ``<!-- output of: fe2hmm … -->``; the
command may start with environment assignments (``$ FE2HMM_MEMORY_LIMIT=4G fe2hmm …`` pins a
machine-dependent limit). It matches a fresh run when the lines agree with every number masked
(whitespace runs collapsed), and the numbers agree to 1 % (absolute 1e-3); wall times (a number
before ``s`` or ``events/s``, a JSON key with ``seconds``) are not compared. JSON lines are
compared as JSON: the same keys everywhere. Mesh-generator versions move the last digits of cell
results (1240 instead of 1244 dofs), hence the tolerance; the published values themselves are
checked in ``tests/test_cli.py``.

To regenerate the quotes of a page from runs instead of editing them by hand::

    .venv/bin/python tests/test_docs_site.py --update docs/cli.md
"""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, serial_only

DOCS = REPO / "docs"
SKIP_DIRS = {"_build", "_generated"}


def _pages() -> list[Path]:
    """Every Markdown page of docs/ (not the build tree or the generated demo pages)."""
    return sorted(
        p for p in DOCS.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(DOCS).parts[:-1])
    )


def _docname(path: Path) -> str:
    return path.relative_to(DOCS).with_suffix("").as_posix()


_TOCTREE = re.compile(r"^(`{3,}|:{3,})\{toctree\}[^\n]*\n(.*?)^\1\s*$", re.M | re.S)


def _toctree_entries(page: Path) -> list[str]:
    """The docnames that the toctrees of ``page`` list (globs expanded over the source tree)."""
    here = page.relative_to(DOCS).parent
    entries = []
    for _, body in _TOCTREE.findall(page.read_text(encoding="utf-8")):
        options = {line.strip() for line in body.splitlines() if line.strip().startswith(":")}
        for line in body.splitlines():
            entry = line.strip()
            if not entry or entry.startswith(":"):
                continue
            entry = re.sub(r"^.*<(.+)>$", r"\1", entry)  # "Title <docname>"
            target = entry[1:] if entry.startswith("/") else (here / entry).as_posix()
            if target.startswith("_generated/"):
                entries.append(target)  # written at build time (the demo pages, test below)
            elif ":glob:" in options and any(c in target for c in "*?["):
                matches = sorted(DOCS.glob(target + ".md"))
                assert matches, f"{page}: glob {entry!r} matches no page"
                entries += [_docname(m) for m in matches]
            else:
                entries.append(os.path.normpath(target).replace(os.sep, "/"))
    return entries


def test_every_page_is_reached_from_the_index_toctree():
    """Sphinx warns about pages outside every toctree only when it builds; this is the fast
    check (docs/index.md's toctrees reach every page, and list only pages that exist)."""
    pages = {_docname(p): p for p in _pages()}
    reached, todo = {"index"}, ["index"]
    while todo:
        for entry in _toctree_entries(DOCS / f"{todo.pop()}.md"):
            if entry.startswith("_generated/"):
                continue  # the demo pages, written at build time (test below)
            assert entry in pages, f"toctree entry {entry!r} is not a page of docs/"
            if entry not in reached:
                reached.add(entry)
                todo.append(entry)
    assert set(pages) - reached == set(), "pages in no toctree"


def test_every_demo_renders_as_a_page(tmp_path):
    """docs/conf.py turns each demos/*.py (jupytext percent) into a titled page with its code."""
    pytest.importorskip("jupytext")  # the `docs` extra
    sys.path.insert(0, str(DOCS))
    try:
        import conf
    finally:
        sys.path.remove(str(DOCS))
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert "_generated/demos/*" in index
    scripts = sorted(p for p in (REPO / "demos").glob("*.py") if not p.name.startswith("_"))
    assert scripts
    for script in scripts:
        page = conf.demo_page(script)
        assert page.startswith("# "), script
        assert "```python\n" in page, script
        # the first code line of the script is on the page
        code = [line for line in script.read_text().splitlines() if line.startswith("import ")]
        assert code and code[0] in page, script


def test_every_public_module_is_in_the_api_reference():
    """docs/api_reference.md documents every module of the package (not private ones, not the
    packages that only re-export): a new module needs its ``automodule`` entry there."""
    listed = set(
        re.findall(r"^\.\. automodule:: (\S+)$", (DOCS / "api_reference.md").read_text(), re.M)
    )
    modules = set()
    for path in (REPO / "fe2hmm").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__") or any(p.startswith("_") for p in parts):
            continue
        modules.add(".".join(parts))
    assert modules - listed == set(), "modules missing from docs/api_reference.md"
    assert listed - modules <= {"fe2hmm"}, "entries of docs/api_reference.md without a module"


# --- quoted outputs ---------------------------------------------------------------------------


@dataclass
class Quote:
    """One quoted output: ``page`` lines ``[start, stop)`` are what ``command`` printed."""

    page: Path
    start: int
    stop: int
    command: str
    lines: list[str]

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.start + 1}:{self.command}"


_FENCE = re.compile(r"^(`{3,})\s*([^`\s]*)[^`]*$")  # an opening fence and its language
_MARKER = re.compile(r"^<!--\s*output of:\s*(.+?)\s*-->\s*$")


def quotes(page: Path) -> list[Quote]:
    """The quoted outputs of ``fe2hmm`` commands on one page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
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
        if marker and _split(marker.group(1)):
            found.append(Quote(page, i + 1, stop, marker.group(1), lines[i + 1 : stop]))
        elif fence.group(2) == "console":
            starts = [j for j in range(i + 1, stop) if lines[j].startswith("$ ")]
            for k, j in enumerate(starts):
                end = starts[k + 1] if k + 1 < len(starts) else stop
                command = lines[j][2:].strip()
                if _split(command):
                    found.append(Quote(page, j + 1, end, command, lines[j + 1 : end]))
        i = stop + 1
    return found


def _all_quotes() -> list[Quote]:
    return [q for page in _pages() for q in quotes(page)]


def _split(command: str) -> tuple[dict[str, str], list[str]] | None:
    """``NAME=value … fe2hmm ARGS`` as (environment, ARGS); ``None`` for other commands."""
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return (env, words[1:]) if words[:1] == ["fe2hmm"] else None


def run_quoted(command: str) -> tuple[int, list[str]]:
    """Run a quoted ``[NAME=value …] fe2hmm …`` command (machine-dependent limits can be pinned,
    e.g. ``FE2HMM_MEMORY_LIMIT=4G``); its standard output (standard error if it failed)."""
    assignments, words = _split(command)
    args = [sys.executable, "-m", "fe2hmm", *words]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", FE2HMM_PROGRESS="0")
    env.update(assignments)
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
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


def _is_quick(quote: Quote) -> bool:
    """Argument errors, ``--list``, ``--help`` and ``--version`` return at once."""
    first = quote.lines[0] if quote.lines else ""
    words = _split(quote.command)[1]
    return first.startswith("fe2hmm: error:") or bool({"--list", "--help", "--version"} & {*words})


def _quote_params():
    return [
        pytest.param(q, id=q.id, marks=() if _is_quick(q) else pytest.mark.slow)
        for q in _all_quotes()
    ]


def test_quotes_are_found():
    """The parser finds the quotes of the CLI page (guards against a silently empty check)."""
    commands = [q.command for q in quotes(DOCS / "cli.md")]
    assert "fe2hmm demo --list" in commands
    assert len(commands) >= 10


def test_quote_parsing_and_comparison(tmp_path):
    """Both quote forms are found; wall times and last-digit drift pass, other changes do not."""
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ fe2hmm demo --list\na\nb\n$ fe2hmm demo nope\nerr\n```\n\n"
        '<!-- output of: fe2hmm demo x --json -->\n\n```text\nline 1\n{"k": 1}\n```\n'
        "```console\n$ FE2HMM_MEMORY_LIMIT=4G fe2hmm kmc hopping\nout\n$ ls\n```\n"
    )
    found = [(q.command, q.lines, q.start, q.stop) for q in quotes(page)]
    assert found == [
        ("fe2hmm demo --list", ["a", "b"], 2, 4),
        ("fe2hmm demo nope", ["err"], 5, 6),
        ("fe2hmm demo x --json", ["line 1", '{"k": 1}'], 11, 13),
        ("FE2HMM_MEMORY_LIMIT=4G fe2hmm kmc hopping", ["out"], 16, 17),
    ]
    assert _split(found[-1][0]) == ({"FE2HMM_MEMORY_LIMIT": "4G"}, ["kmc", "hopping"])
    quoted = ["cell, 1244 dofs, 0.146 s", "K* = [ 2.415088  -0.000004]", "1.19e+06 events/s"]
    assert (
        differences(quoted, ["cell, 1240 dofs, 3.5 s", "K* = [ 2.417645   0.000002]", "9 events/s"])
        == []
    )
    assert differences(quoted, quoted[:2])  # a line less
    assert differences(quoted, ["cell, 1244 dofs, 0.146 s", "K* = [ 2.6  0]", quoted[2]])  # > 1 %
    assert differences(["unknown demo; available: a, b"], ["unknown demo; available: a, b, c"])
    assert differences(['{"a": 1, "seconds": 0.1}'], ['{"a": 1.001, "seconds": 9}']) == []
    assert differences(['{"a": 1}'], ['{"a": 1, "b": 2}'])  # a new key
    assert differences(['{"a": [1, 2]}'], ['{"a": [1]}'])


@serial_only
@pytest.mark.parametrize("quote", _quote_params())
def test_quoted_output_matches_a_fresh_run(quote):
    """A page quotes what the command prints now (regenerate with ``--update``, see above)."""
    _, printed = run_quoted(quote.command)
    found = differences(quote.lines, printed)
    assert not found, (
        f"{quote.id}: the quoted output is stale ({'; '.join(found[:5])}); fresh output:\n"
        + "\n".join(printed)
    )


def update(page: Path) -> int:
    """Replace every quoted output of ``page`` by a fresh run's; the number of quotes changed."""
    lines = page.read_text(encoding="utf-8").splitlines()
    changed = 0
    for quote in reversed(quotes(page)):
        _, printed = run_quoted(quote.command)
        if differences(quote.lines, printed):
            lines[quote.start : quote.stop] = printed
            changed += 1
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="regenerate the quoted outputs of docs pages")
    parser.add_argument("--update", nargs="+", type=Path, required=True, metavar="PAGE")
    for page in parser.parse_args().update:
        print(f"{page}: {update(page.resolve())} quoted output(s) regenerated")
