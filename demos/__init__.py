"""The runnable demos (``fe2hmm demo --list``) and the output folder they share.

Each demo parses and checks its arguments before it imports dolfinx or computes anything, with
the argparse ``type=`` callables of :mod:`fe2hmm.checks` (:func:`~fe2hmm.checks.integer`,
:func:`~fe2hmm.checks.real`, ...; the same as the ``fe2hmm`` command line's): a bad value ends
the run at once with one line that names the argument and the valid range (``parser.error``,
exit status 2; ``fe2hmm demo NAME`` turns it into its own one-line error). Standard library
and fe2hmm.checks only (no dolfinx), so the check costs nothing.

Output folders: a demo writes to ``--output-dir`` (default ``output/NAME``; under
``mpiexec -n N`` the default is ``output/NAME_npN``, so a parallel run does not overwrite the
serial run's files). :func:`checked_output_dir` checks that the folder can be written before any
work and creates nothing (:func:`fe2hmm.checks.check_writable`); the demo creates the folder
(and its missing parents) when it writes. Demos with load or time steps take ``--checkpoint
DIR`` (:func:`add_checkpoint`, :class:`fe2hmm.checkpoint.Checkpoint`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fe2hmm.checks import check_writable

__all__ = ["add_checkpoint", "add_output_dir", "checked_checkpoint", "checked_output_dir", "pyplot"]


def add_output_dir(parser: argparse.ArgumentParser, demo: str) -> None:
    """Add ``--output-dir`` (default ``output/DEMO``, ``output/DEMO_npN`` on N MPI ranks)."""
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"folder for the figures and ParaView files, created when they are written "
        f"(default: output/{demo}; under `mpiexec -n N`: output/{demo}_npN, so that a parallel "
        "run does not overwrite the serial one's files; a folder given here is used as it is)",
    )


def checked_output_dir(
    parser: argparse.ArgumentParser, output_dir: Path | None, demo: str, nprocs: int = 1
) -> Path:
    """The output folder (the default resolved for ``nprocs`` ranks), checked to be writable.

    Creates nothing: the folder must exist and be writable, or its nearest existing parent
    must be a writable folder (:func:`fe2hmm.checks.check_writable`). Calls ``parser.error``
    otherwise.
    """
    if output_dir is None:
        output_dir = Path("output") / (demo if nprocs == 1 else f"{demo}_np{nprocs}")
    try:
        return check_writable(output_dir, folder=True)
    except ValueError as err:
        parser.error(f"argument --output-dir: {err}")


def _checkpoint_dir(value: str) -> Path:
    try:
        return check_writable(value, folder=True)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """Add ``--checkpoint DIR`` (checked writable at parse time; see :mod:`fe2hmm.checkpoint`)."""
    parser.add_argument(
        "--checkpoint",
        type=_checkpoint_dir,
        default=None,
        metavar="DIR",
        help="save the state after every committed step in DIR (created if missing) and, if "
        "DIR already holds a step, resume from it: a killed run started again with the same "
        "DIR ends with the same result (same command line and number of MPI ranks)",
    )


def checked_checkpoint(
    parser: argparse.ArgumentParser, folder: Path | None, nprocs: int = 1
) -> Path | None:
    """``--checkpoint``'s folder, refused at once if a run in it was written by another number
    of MPI ranks (every ``latest.json`` below it is read; see :mod:`fe2hmm.checkpoint`)."""
    if folder is None or not folder.is_dir():
        return folder
    import json

    for record in sorted(folder.rglob("latest.json")):
        try:
            ranks = json.loads(record.read_text())["ranks"]
        except (OSError, ValueError, KeyError, TypeError):
            parser.error(f"argument --checkpoint: {str(record)!r} is not a checkpoint record")
        if ranks != nprocs:
            parser.error(
                f"argument --checkpoint: {str(record.parent)!r} holds a run on {ranks} MPI "
                f"rank(s), this one has {nprocs}: restart with mpiexec -n {ranks} or give "
                "another folder"
            )
    return folder


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or None if matplotlib is missing.

    Prints a one-line notice when it is missing (the figures need the ``demo`` extra).
    """
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install 'fe2hmm[demo]'): no figure written")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
