"""docs/cli.md documents the parser: every subcommand and flag, and the list of demos."""

import argparse
import re

from conftest import REPO

from fe2hmm.cli import _build_parser, list_demos

DOC = (REPO / "docs" / "cli.md").read_text()


def _subcommands(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))


def _flags(parser) -> list[str]:
    return [a.option_strings[-1] for a in parser._actions if a.option_strings]


def _section(title: str) -> str:
    match = re.search(rf"^## `{re.escape(title)}`\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match, f"docs/cli.md has no section ## `{title}`"
    return match.group(1)


def _synopsis(path: tuple[str, ...]) -> str:
    """The lines of the first code block that start with ``fe2hmm PATH`` (and continue it)."""
    block = DOC.split("```", 2)[1]
    text, inside = [], False
    for line in block.splitlines():
        if line.startswith("fe2hmm "):
            inside = line.startswith("fe2hmm " + " ".join(path))
        if inside:
            text.append(line)
    return "\n".join(text)


LEAVES = [(p, sub) for p, sub in _subcommands(_build_parser()) if len(p) == 2 or p == ("demo",)]


def test_every_subcommand_has_a_synopsis_and_a_section_naming_every_flag():
    assert {p for p, _ in LEAVES} >= {
        ("homogenize", "diffusion"),
        ("homogenize", "elasticity"),
        ("md", "elastic"),
        ("kmc", "hopping"),
        ("demo",),
    }
    for path, sub in LEAVES:
        synopsis = _synopsis(path)
        assert synopsis, f"no synopsis line `fe2hmm {' '.join(path)}`"
        section = _section(" ".join(path))
        if path == ("homogenize", "elasticity"):  # "the options are those of diffusion ..."
            section += _section("homogenize diffusion")
        for flag in _flags(sub):
            if flag == "--help":
                continue
            assert flag in synopsis, (path, flag, "synopsis")
            assert f"`{flag}" in section, (path, flag, "section")


def test_top_level_flags_and_exit_status_documented():
    for flag in _flags(_build_parser()):
        assert flag in _synopsis(()), flag
    assert "## Exit status and errors" in DOC and "## Arguments checked before any work" in DOC


def test_demo_list_matches_fe2hmm_demo_list():
    section = _section("demo")
    listed = section.split("$ fe2hmm demo --list\n", 1)[1].split("```", 1)[0].split()
    assert listed == list_demos()
    assert len(listed) == 10 and "solid_electrolyte" in listed
    for name in listed:
        assert f"[{name}](demos/{name}.md)" in section, name
        assert (REPO / "docs" / "demos" / f"{name}.md").exists(), name
