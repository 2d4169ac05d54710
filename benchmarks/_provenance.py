"""The line every results file opens with (commit, command, machine load), and writing it."""

import os
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


def provenance():
    """``Measured at commit abc1234 (+ uncommitted changes): `command`; load ...``."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    state = " (with uncommitted changes)" if dirty else ""
    command = " ".join(
        ["python", *[os.path.relpath(a) if a.endswith(".py") else a for a in sys.argv]]
    )
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    return (
        f"Measured at commit {commit}{state} with `{command}`; "
        f"{os.cpu_count()} CPUs, {load} when the run ended."
    )


def write_results(lines, out):
    """Join ``lines`` into a markdown file at ``out`` (folders created); print it."""
    text = "\n".join(lines) + "\n"
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
