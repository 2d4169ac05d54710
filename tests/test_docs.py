"""The documentation stays in step with the code.

These checks need neither Sphinx nor the gallery to run: they read the rst
sources under ``doc/`` and the public objects of the package.
"""

import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from sklearn_dml import TripletEmbedder

ROOT = Path(__file__).parents[1]
DOC = ROOT / "doc"
EXAMPLES = ROOT / "examples"

PUBLIC_MODULES = [
    "sklearn_dml",
    "sklearn_dml.losses",
    "sklearn_dml.miners",
    "sklearn_dml.distances",
    "sklearn_dml.samplers",
    "sklearn_dml.backbones",
    "sklearn_dml.metrics",
    "sklearn_dml.model_selection",
    "sklearn_dml.plotting",
    "sklearn_dml.datasets",
    "sklearn_dml.mixup",
    "sklearn_dml.augmentation",
    "sklearn_dml.persistence",
    "sklearn_dml.inputs",
    "sklearn_dml.callbacks",
    "sklearn_dml.training.distributed",
    "sklearn_dml.neighbors",
    "sklearn_dml.mahalanobis",
    "sklearn_dml.constraints",
]


def _public_objects():
    """``(dotted name, object)`` for every name in the public ``__all__`` lists."""
    found = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            found.append((f"{module_name}.{name}", getattr(module, name)))
    return found


PUBLIC = _public_objects()
DOCUMENTED_KINDS = [
    (name, obj)
    for name, obj in PUBLIC
    if inspect.isclass(obj) or inspect.isfunction(obj)
]


def _autosummary_entries(rst_text):
    """Full dotted names listed in the ``autosummary`` directives of an rst file.

    Follows ``.. currentmodule::`` lines; entries are the indented lines of a
    directive's body that are not options.
    """
    entries = set()
    module = ""
    in_block = False
    for line in rst_text.splitlines():
        current = re.match(r"^\.\. currentmodule::\s*(\S+)", line)
        if current:
            module = current.group(1)
            in_block = False
            continue
        if re.match(r"^\.\. autosummary::", line):
            in_block = True
            continue
        if not in_block:
            continue
        if line and not line[0].isspace():
            in_block = False
            continue
        item = line.strip()
        if item and not item.startswith(":"):
            entries.add(f"{module}.{item}" if module else item)
    return entries


# --------------------------------------------------------------- (i) API list
def test_autosummary_parser_on_hand_written_snippet():
    text = (
        ".. currentmodule:: pkg\n\n"
        ".. autosummary::\n   :toctree: generated/\n\n   A\n   sub.f\n\n"
        "Some prose mentioning B.\n\n"
        ".. currentmodule:: pkg.mod\n\n.. autosummary::\n\n   C\n"
    )
    assert _autosummary_entries(text) == {"pkg.A", "pkg.sub.f", "pkg.mod.C"}


@pytest.mark.parametrize(
    "dotted", [name for name, _ in PUBLIC if not name.endswith("__version__")]
)
def test_every_public_name_is_in_the_api_reference(dotted):
    entries = _autosummary_entries((DOC / "api.rst").read_text())
    assert dotted in entries, (
        f"{dotted} is public (in __all__) but not listed in an autosummary of "
        "doc/api.rst; add it so that it gets a page."
    )


def test_api_reference_lists_only_existing_objects():
    public = {name for name, _ in PUBLIC}
    entries = _autosummary_entries((DOC / "api.rst").read_text())
    assert entries, "no autosummary entries found in doc/api.rst"
    stale = sorted(entries - public)
    assert not stale, f"doc/api.rst lists names that are not public: {stale}"


def test_version_is_mentioned_in_the_api_reference():
    assert "__version__" in (DOC / "api.rst").read_text()


# ------------------------------------------------------- (ii) Examples section
def _sections(doc):
    """Numpydoc section titles: a line followed by a dashes line of its length."""
    lines = [line.strip() for line in doc.splitlines()]
    return {
        title
        for title, rule in zip(lines, lines[1:])
        if title and set(rule) == {"-"} and len(rule) == len(title)
    }


def test_section_parser_on_hand_written_docstring():
    doc = (
        "Summary.\n\nParameters\n----------\nx : int\n\nExamples\n--------\n>>> 1\n1\n"
    )
    assert _sections(doc) == {"Parameters", "Examples"}
    assert "Examples" not in _sections("Summary.\n\nExamples\n---\n")


@pytest.mark.parametrize(
    "dotted, obj", DOCUMENTED_KINDS, ids=[name for name, _ in DOCUMENTED_KINDS]
)
def test_public_docstring_has_runnable_examples(dotted, obj):
    doc = inspect.getdoc(obj) or ""
    assert "Examples" in _sections(doc), f"{dotted} has no Examples section"
    examples = doc.split("Examples\n--------", 1)[-1]
    assert ">>>" in examples, f"the Examples section of {dotted} has no doctest"


# ------------------------------------------------------ (iii) and (iv) objects
@pytest.fixture(scope="module")
def small_digits():
    X, y = load_digits(return_X_y=True)
    keep = y < 4
    return X[keep][:240] / 16.0, y[keep][:240]


def test_history_converts_to_a_dataframe(small_digits):
    X, y = small_digits
    emb = TripletEmbedder(
        n_components=8, hidden_layer_sizes=(16,), max_iter=3, random_state=0
    ).fit(X, y)
    frame = pd.DataFrame(emb.history_)
    assert {"epoch", "loss", "time"} <= set(frame.columns)
    assert frame["epoch"].tolist() == [1, 2, 3]
    assert len(frame) == emb.n_iter_ == 3
    assert np.isfinite(frame["loss"]).all() and (frame["loss"] >= 0).all()
    assert (frame["time"] >= 0).all()


def test_history_has_validation_scores_with_early_stopping(small_digits):
    X, y = small_digits
    emb = TripletEmbedder(
        n_components=8,
        hidden_layer_sizes=(16,),
        max_iter=3,
        early_stopping=True,
        validation_fraction=0.25,
        random_state=0,
    ).fit(X, y)
    frame = pd.DataFrame(emb.history_)
    assert {"epoch", "loss", "time", "validation_score"} <= set(frame.columns)
    scores = frame["validation_score"].to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert emb.best_validation_score_ == pytest.approx(scores.max())


def test_html_repr_names_the_estimator_and_changed_parameter():
    html = TripletEmbedder(margin=0.3)._repr_html_()
    assert "TripletEmbedder" in html
    assert "margin" in html and "0.3" in html


# ---------------------------------------------------- doc sources and gallery
def test_gallery_labels_used_in_the_docs_name_existing_examples():
    text = "\n".join(
        p.read_text() for p in DOC.rglob("*.rst") if "generated" not in p.parts
    )
    labels = set(re.findall(r"sphx_glr_auto_examples_(plot_\w+)\.py", text))
    assert labels, "the user guide should link to gallery examples"
    missing = sorted(
        label for label in labels if not (EXAMPLES / f"{label}.py").exists()
    )
    assert not missing, f"docs link to gallery examples that do not exist: {missing}"


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("plot_*.py")), ids=lambda p: p.name
)
def test_gallery_script_shape(path):
    source = path.read_text()
    module_doc = source.split('"""')[1].strip().splitlines()
    title, rule = module_doc[0], module_doc[1]
    assert set(rule) == {"="} and len(rule) == len(title), "rst title expected"
    assert source.count("# %%") >= 2, "split the script into # %% cells"


def _opens_with_a_title(text):
    """Whether one of the first lines is underlined as a reST section title."""
    lines = text.splitlines()[:12]
    for title, rule in zip(lines, lines[1:]):
        rule = rule.rstrip()
        if (
            title.strip()
            and rule
            and len(set(rule)) == 1
            and rule[0] in "=-~^*#"
            and len(rule) >= len(title.strip())
        ):
            return True
    return False


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in DOC.rglob("*.rst")
        if not {"generated", "_build", "auto_examples", "_templates"} & set(p.parts)
    ),
    ids=lambda p: str(p.relative_to(DOC)),
)
def test_every_doc_page_opens_with_a_title(path):
    # A page without one drops out of the table of contents (Sphinx warns);
    # an edit that garbles a page loses it first.
    assert _opens_with_a_title(path.read_text()), f"{path} has no title at its top"


def test_every_benchmark_result_is_on_the_benchmarks_page():
    page = (DOC / "benchmarks.rst").read_text()
    results = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    assert results
    missing = [p.name for p in results if f"results/{p.name}" not in page]
    assert not missing, f"add these to doc/benchmarks.rst: {missing}"


def test_make_doc_builds_with_warnings_as_errors():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^doc:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe, "Makefile has no doc target"
    assert "sphinx" in recipe.group(1) and " -W" in recipe.group(1)
    assert "doc/_build/html" in recipe.group(1)
