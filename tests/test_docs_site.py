"""The docs site and the outputs its pages quote.

``make docs`` (part of ``make test``) builds the site with warnings as errors; the tests here are
the checks that need no Sphinx: every page is reached from a toctree of ``docs/index.md``, every
demo script renders as a page, and every command output a page quotes is what the command prints
now (the quote format and the comparison: ``tests/_quoted_outputs.py``; the demos' runs are
checked by the tests of ``tests/test_demos.py`` that run them anyway). To regenerate the quotes
of a page from runs instead of editing them by hand::

    .venv/bin/python tests/_quoted_outputs.py --update docs/cli.md
"""

import ast
import os
import re
import sys
from pathlib import Path

import pytest
from _quoted_outputs import (
    DOCS,
    all_quotes,
    covers,
    differences,
    pages,
    quotes,
    run_quoted,
    split_command,
)
from conftest import REPO, serial_only


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
    found = {_docname(p): p for p in pages()}
    reached, todo = {"index"}, ["index"]
    while todo:
        for entry in _toctree_entries(DOCS / f"{todo.pop()}.md"):
            if entry.startswith("_generated/"):
                continue  # the demo pages, written at build time (test below)
            assert entry in found, f"toctree entry {entry!r} is not a page of docs/"
            if entry not in reached:
                reached.add(entry)
                todo.append(entry)
    assert set(found) - reached == set(), "pages in no toctree"


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


# --- quoted outputs (tests/_quoted_outputs.py) ----------------------------------------------


def _is_quick(quote) -> bool:
    """Argument errors, ``--list``, ``--help`` and ``--version`` return at once."""
    first = quote.lines[0] if quote.lines else ""
    if quote.script is not None:
        return False
    words = split_command(quote.command)[1]
    return first.startswith("fe2hmm: error:") or bool({"--list", "--help", "--version"} & {*words})


def _is_demo_run(quote) -> bool:
    """A demo's run (checked by the test of tests/test_demos.py that runs it, not here)."""
    if quote.script is not None or _is_quick(quote):
        return False
    return split_command(quote.command)[1][:1] == ["demo"]


def _quote_params():
    return [
        pytest.param(q, id=q.id, marks=() if _is_quick(q) else pytest.mark.slow)
        for q in all_quotes()
        if not _is_demo_run(q)
    ]


def _demo_runs_of_the_tests() -> list[str]:
    """The commands that tests/test_demos.py passes to ``demo_run`` (string literals)."""
    tree = ast.parse((REPO / "tests" / "test_demos.py").read_text(encoding="utf-8"))
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "demo_run"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def test_every_quoted_demo_run_is_checked_by_a_demo_test():
    """A page's quote of a demo run is compared by the test that runs that demo: some
    ``demo_run(COMMAND)`` of tests/test_demos.py must cover it (the same command, or with
    ``--json``), so that no quote goes unchecked and no demo runs twice for its page."""
    runs = _demo_runs_of_the_tests()
    assert runs, "tests/test_demos.py calls demo_run with no literal command"
    demo_quotes = [q for q in all_quotes() if _is_demo_run(q)]
    assert len({q.page for q in demo_quotes}) >= 9, "every demo page quotes its demo's output"
    unchecked = [q.id for q in demo_quotes if not any(covers(run, q.command) for run in runs)]
    assert unchecked == [], "quoted demo runs that no test of tests/test_demos.py runs"


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
        "```python\nprint(1)\n```\n<!-- output of: the Python block above -->\n```\n1\n```\n"
    )
    found = [(q.command, q.lines, q.start, q.stop) for q in quotes(page)]
    assert found == [
        ("fe2hmm demo --list", ["a", "b"], 2, 4),
        ("fe2hmm demo nope", ["err"], 5, 6),
        ("fe2hmm demo x --json", ["line 1", '{"k": 1}'], 11, 13),
        ("FE2HMM_MEMORY_LIMIT=4G fe2hmm kmc hopping", ["out"], 16, 17),
        (f"python {page}:21", ["1"], 24, 25),
    ]
    assert quotes(page)[-1].script == "print(1)\n"
    # a demo test's run checks the quotes of its command, with or without --json
    assert covers("fe2hmm demo x --json", "fe2hmm demo x")
    assert covers("fe2hmm demo x --json", "fe2hmm demo x --json")
    assert not covers("fe2hmm demo x --json", "fe2hmm demo x --dns")
    assert not covers("fe2hmm demo x", "fe2hmm demo x --json")
    assert not covers("fe2hmm demo x --json", found[-1][0])  # the Python block
    assert split_command(found[-2][0]) == ({"FE2HMM_MEMORY_LIMIT": "4G"}, ["kmc", "hopping"])
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
    _, printed = run_quoted(quote)
    found = differences(quote.lines, printed)
    assert not found, (
        f"{quote.id}: the quoted output is stale ({'; '.join(found[:5])}); fresh output:\n"
        + "\n".join(printed)
    )


_TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def test_every_test_the_docs_name_exists():
    """``tests/x.py::test_name`` in a page (the feature table's evidence column, the pages'
    reproduction notes) names a test function or class that exists."""
    defined: dict[str, set[str]] = {}
    missing = []
    for page in pages():
        for path, name in _TEST_REFERENCE.findall(page.read_text(encoding="utf-8")):
            if path not in defined:
                source = REPO / path
                tree = ast.parse(source.read_text(encoding="utf-8")) if source.exists() else None
                defined[path] = (
                    set()
                    if tree is None
                    else {
                        n.name
                        for n in ast.walk(tree)
                        if isinstance(n, ast.FunctionDef | ast.ClassDef)
                    }
                )
            if name not in defined[path]:
                missing.append(f"{page.relative_to(REPO)}: {path}::{name}")
    assert not missing, "tests named in the docs that do not exist:\n" + "\n".join(missing)
