"""Sphinx configuration of the fe2hmm docs site (``make docs``; warnings are errors there).

The pages are the Markdown files of ``docs/`` (MyST), the API reference comes from the
docstrings (autodoc + napoleon, Google style), and every ``demos/*.py`` script (jupytext percent
format) becomes a page at build time: :func:`_write_demo_sources` converts them into
``docs/_generated/demos/`` (git-ignored, never hand-edited). The demos are not executed.
"""

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
GENERATED = DOCS / "_generated" / "demos"
sys.path.insert(0, str(REPO))

project = "fe2hmm"
author = "fe2hmm developers"
copyright = "fe2hmm developers, LGPL-3.0-or-later"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $…$ and $$…$$ maths as the pages write them on GitHub; GitHub-style heading anchors so
# that links such as ``installation.md#under-mpi`` resolve (and are checked) in the build too.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4
myst_dmath_double_inline = True

# autodoc + napoleon: Google-style docstrings with ``Args:``/``Returns:``/``Raises:``/``Note:``.
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# ``Attributes:`` as fields of the class, not as attribute entries that would duplicate the
# ones autodoc writes for NamedTuple/dataclass fields and properties
napoleon_use_ivar = True
napoleon_custom_sections = [("Keys", "params_style")]

html_theme = "alabaster"
html_title = "fe2hmm"
html_static_path: list[str] = []
html_theme_options = {"description": "HMM and FE² for FEniCSx", "fixed_sidebar": True}


def _fence(code: str) -> str:
    """A backtick fence longer than any backtick run inside ``code``."""
    longest, run = 0, 0
    for char in code:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _relink(match: re.Match) -> str:
    """A relative link of a demo's markdown, from ``demos/`` to the generated page's folder.

    URLs and anchors are returned unchanged.
    """
    target = match.group(2)
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target):
        return match.group(0)
    path, hash_, anchor = target.partition("#")
    moved = os.path.relpath(os.path.normpath(REPO / "demos" / path), GENERATED)
    return f"{match.group(1)}{Path(moved).as_posix()}{hash_}{anchor}{match.group(3)}"


def demo_page(script: Path) -> str:
    """The MyST page of one jupytext demo script: its markdown cells, its code cells as Python.

    Args:
        script: a ``demos/*.py`` file in jupytext percent format.

    Returns:
        The page's Markdown text; the demo's first heading is the page title (one is added when
        the script does not start with a heading).
    """
    import jupytext

    notebook = jupytext.read(script)
    name = script.stem
    walkthrough = DOCS / "demos" / f"{name}.md"
    note = f"Source of `demos/{name}.py`, rendered at docs build time (not executed)"
    if walkthrough.exists():
        note += f"; what it does and how to run it: [the demo page](../../demos/{name}.md)"
    parts: list[str] = []
    for cell in notebook.cells:
        source = cell.source.rstrip()
        if not source:
            continue
        if cell.cell_type == "markdown":
            parts.append(_LINK.sub(_relink, source))
        else:
            fence = _fence(source)
            parts.append(f"{fence}python\n{source}\n{fence}")
    if parts and parts[0].startswith("# "):
        title, _, rest = parts[0].partition("\n")
        parts[0] = f"{title}\n\n{note}.\n{rest}"
    else:
        parts.insert(0, f"# `demos/{name}.py`\n\n{note}.")
    return "\n\n".join(parts) + "\n"


def _write_demo_sources(app=None) -> list[Path]:
    """Convert every ``demos/*.py`` into ``docs/_generated/demos/<name>.md``.

    A page is rewritten only when its text changes (atomically, so concurrent builds do not see
    half-written files), and pages of deleted demos are removed.
    """
    GENERATED.mkdir(parents=True, exist_ok=True)
    written = []
    scripts = sorted(p for p in (REPO / "demos").glob("*.py") if not p.name.startswith("_"))
    for script in scripts:
        target = GENERATED / f"{script.stem}.md"
        text = demo_page(script)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            tmp = target.with_suffix(f".md.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        written.append(target)
    for stale in set(GENERATED.glob("*.md")) - set(written):
        stale.unlink(missing_ok=True)
    return written


def _repository_links(app, doctree) -> None:
    """Links from pages to repository files outside ``docs/``, which GitHub follows as written.

    ``demos/<name>.py`` becomes a link to its rendered page; another existing file (e.g.
    ``docker/README.md``) becomes a download. Links to files that do not exist are left alone,
    so that they are reported (warnings are errors in ``make docs``).
    """
    from sphinx import addnodes

    env = app.env
    for node in list(doctree.findall(addnodes.download_reference)) + list(
        doctree.findall(addnodes.pending_xref)
    ):
        if node.get("reftype") != "myst":
            continue
        if isinstance(node, addnodes.download_reference):
            target = Path(env.relfn2path(node["reftarget"], env.docname)[1])
        elif node.get("refdomain") == "doc" and Path(node["reftarget"]).is_absolute():
            # a ``.md`` outside the source tree: MyST takes it for a document it cannot find
            target = Path(node["reftarget"] + ".md")
        else:
            continue
        target = target.resolve()
        if target.parent == REPO / "demos" and (GENERATED / f"{target.stem}.md").exists():
            new = addnodes.pending_xref(
                "",
                *node.children,
                refdomain="std",
                reftype="doc",
                reftarget=f"/_generated/demos/{target.stem}",
                refdoc=env.docname,
                refexplicit=True,
                refwarn=True,
            )
        elif isinstance(node, addnodes.pending_xref) and target.is_file():
            new = addnodes.download_reference(
                "",
                *node.children,
                refdomain=None,
                reftype="myst",
                reftarget=os.path.relpath(target, Path(env.doc2path(env.docname)).parent),
                refdoc=env.docname,
                refexplicit=True,
            )
        else:
            continue
        new.source, new.line = node.source, node.line
        node.replace_self(new)


def _skip_field_aliases(app, what, name, obj, skip, options):
    """Skip NamedTuple fields' ``Alias for field number N`` (``Attributes:`` describes them)."""
    if what == "class" and (getattr(obj, "__doc__", None) or "").startswith("Alias for field"):
        return True
    return None


def setup(app):
    """Generate the demo pages before Sphinx reads the sources; fix links to repository files."""
    app.connect("builder-inited", _write_demo_sources)
    # before Sphinx's own collector of download files (priority 500)
    app.connect("doctree-read", _repository_links, priority=400)
    app.connect("autodoc-skip-member", _skip_field_aliases)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
