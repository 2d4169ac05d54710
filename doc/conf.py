"""Sphinx configuration of the sklearn-dml documentation.

Build with ``make doc`` (warnings are errors) or
``python -m sphinx -W -b html doc doc/_build/html``. The build is offline:
no intersphinx inventories are fetched.
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOC_DIR = Path(__file__).resolve().parent
ROOT = DOC_DIR.parent
sys.path.insert(0, str(ROOT))
# Gallery scripts and doctests run on the CPU with few threads.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import sklearn_dml  # noqa: E402

project = "sklearn-dml"
author = "The sklearn-dml developers"
copyright = "The sklearn-dml developers, BSD-3-Clause"
release = sklearn_dml.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "developers/architecture.md", "**/*.md5"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"

# -- autodoc / autosummary / numpydoc ---------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Offline build: no intersphinx mapping, so references to scikit-learn and
# torch objects stay plain text instead of becoming links.
numpydoc_xref_param_type = False

# -- sphinx-gallery ---------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "reference_url": {"sklearn_dml": None},
    "doc_module": ("sklearn_dml",),
    "backreferences_dir": "generated/backreferences",
    "inspect_global_variables": False,
}

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-dml {release}"
html_static_path = []
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False


# -- docstring stopgap ------------------------------------------------------
# In reStructuredText a word ending in "_" is a hyperlink reference, so the
# shape "(n_features_in_,)" written in the shared ``fitted_attributes`` block
# of ``sklearn_dml/base.py`` is an error in the HTML build. Until that
# block writes it as "(`n_features_in_`,)" (as scikit-learn does), quote it
# here; the hook does nothing once the source is fixed.
def _quote_trailing_underscore_shapes(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if "(n_features_in_,)" in line:
            lines[i] = line.replace("(n_features_in_,)", "(``n_features_in_``,)")


def setup(app):
    app.connect("autodoc-process-docstring", _quote_trailing_underscore_shapes)
