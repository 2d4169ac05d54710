"""Write shared parameter documentation once and insert it into every estimator.

A docstring marks the place of a shared block with a line holding only
``{block_name}`` (braces included); :func:`fill_doc` replaces that line with the
block, indented like the marker.
"""

import textwrap

_DOCS = {}


def register_doc(name, text):
    """Register a shared documentation block under ``name``."""
    _DOCS[name] = textwrap.dedent(text).strip("\n")


def fill_doc(obj):
    """Class or function decorator inserting the registered blocks."""
    doc = obj.__doc__
    if not doc:
        return obj
    lines = []
    for line in doc.splitlines():
        stripped = line.strip()
        if (
            stripped.startswith("{")
            and stripped.endswith("}")
            and stripped[1:-1] in _DOCS
        ):
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(textwrap.indent(_DOCS[stripped[1:-1]], indent))
        else:
            lines.append(line)
    obj.__doc__ = "\n".join(lines)
    return obj
