"""The line every results file opens with (commit, command, machine load), and writing it.

Every script that writes a file under ``benchmarks/results/`` states in it
:func:`provenance`. Scripts whose tables merge rows measured by different
runs (a JSON store of rows) also store :func:`commit` with every row they
measure and state :func:`rows_by_commit` of the rows shown.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _git(*args):
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


#: Where the scripts write their results: changes there are not changes to
#: the code measured (a script writing its JSON store before its table would
#: otherwise mark its own table as measured on uncommitted code).
RESULTS_PATHSPEC = ":(exclude)benchmarks/results"


def commit():
    """``abc1234``, or ``abc1234 (with uncommitted changes)`` when tracked files
    outside ``benchmarks/results`` differ from the commit."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    dirty = _git(
        "status", "--porcelain", "--untracked-files=no", "--", ".", RESULTS_PATHSPEC
    )
    return head + (" (with uncommitted changes)" if dirty else "")


def command():
    """The command line of this process, ``python path/to/script.py --args``."""
    return shlex.join(
        ["python", *[os.path.relpath(a) if a.endswith(".py") else a for a in sys.argv]]
    )


def provenance(what="Measured"):
    """``Measured at commit abc1234 with `command`; 2 CPUs, load average ...``.

    ``what`` names what the commit is the commit of: ``"Table written"`` for
    a table that also shows rows measured earlier (see :func:`rows_by_commit`).
    """
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    return (
        f"{what} at commit {commit()} with `{command()}`; "
        f"{os.cpu_count()} CPUs, {load} when the run ended."
    )


def rows_by_commit(rows, store=None):
    """``Rows of this table by the commit they were measured at: ...``.

    ``rows`` are dicts with a ``"commit"`` key (rows stored before commits
    were recorded count as "not recorded"); ``store``, if given, names the
    file that keeps each row with its commit.
    """
    counts = {}
    for row in rows:
        key = row.get("commit") or "not recorded"
        counts[key] = counts.get(key, 0) + 1
    listed = ", ".join(
        f"{c} ({n} row{'' if n == 1 else 's'})" for c, n in counts.items()
    )
    where = f" (each row's commit is stored with it in `{store}`)" if store else ""
    if store and "not recorded" in counts:
        where = where[:-1] + "; the rows stored before commits were recorded have none)"
    return f"Rows of this table by the commit they were measured at: {listed}{where}."


def write_results(lines, out):
    """Write ``lines`` (a list joined by newlines, or a str) to ``out``; print it.

    Folders are created; a newline is added at the end.
    """
    text = (lines if isinstance(lines, str) else "\n".join(lines)) + "\n"
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
