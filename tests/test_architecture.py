"""The package's layers: no import cycle, no upward import, a readable layout.

Modules belong to layers; a module may import from its own layer and the
layers below it, never from a layer above. Imports inside functions count as
much as those at the top of a module: a lazy import still ties the two
modules together.
"""

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

import sklearn_dml

PACKAGE = Path(sklearn_dml.__file__).parent

# Lowest first. A module's layer is that of the longest prefix listed.
LAYERS = [
    (
        "foundation",
        ["_blas", "_docstrings", "_param_validation", "_params", "_tuples"],
    ),
    (
        "components",
        [
            "distances",
            "miners",
            "losses",
            "backbones",
            "samplers",
            "mixup",
            "constraints",
            "inputs",
            "augmentation",
        ],
    ),
    ("training and metrics", ["training", "metrics"]),
    (
        "estimators",
        [
            "_verification",
            "_constraint_classifiers",
            "_shared_parameters",
            "base",
            "embedders",
            "mahalanobis",
        ],
    ),
    (
        "applications",
        [
            "__init__",
            "__main__",
            "model_selection",
            "plotting",
            "datasets",
            "persistence",
            "callbacks",
            "neighbors",
        ],
    ),
]


def _modules():
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module):
    best, best_len = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(
                prefix
            ) > best_len:
                best, best_len = rank, len(prefix)
    return best


def _imports(module):
    """Package modules that ``module`` imports (at any depth of its code)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    here = (
        module.split(".")
        if is_package and module != "__init__"
        else module.split(".")[:-1]
    )
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("sklearn_dml"):
                target = node.module.split(".")[1:]
            else:
                continue
            names = [".".join(target)] + [
                ".".join([*target, a.name]) for a in node.names
            ]
        elif isinstance(node, ast.Import):
            names = [
                ".".join(a.name.split(".")[1:])
                for a in node.names
                if a.name.startswith("sklearn_dml.")
            ]
        else:
            continue
        for name in names:
            name = name or "__init__"
            if name in MODULES and name != module:
                found.add(name)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    upward = [
        (target, LAYERS[_layer(target)][0])
        for target in sorted(GRAPH[module])
        if _layer(target) > _layer(module)
    ]
    assert upward == [], f"{module} ({LAYERS[_layer(module)][0]}) imports {upward}"


def test_no_import_cycle():
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(GRAPH):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, " -> ".join(cycle)


def test_the_engine_imports_no_loss_and_no_backbone():
    reached = GRAPH["training.engine"] | GRAPH["training.objective"]
    assert not [m for m in reached if m.split(".")[0] in ("losses", "backbones")]


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    # The layer test would fail on a component importing an estimator module.
    fake = tmp_path / "fake.py"
    fake.write_text("from ..embedders import TripletEmbedder\n")
    monkeypatch.setitem(MODULES, "losses._fake", fake)
    assert "embedders" in _imports("losses._fake")
    assert _layer("embedders") > _layer("losses._fake")


HISTORY_WORDS = re.compile(r"(^|_)(new|newer|old|older|more|legacy|v\d+|original)(_|$)")


def test_no_module_test_or_page_is_named_by_when_it_arrived():
    root = PACKAGE.parent
    named = [
        *PACKAGE.rglob("*.py"),
        *(root / "tests").glob("*.py"),
        *(root / "benchmarks").rglob("*.*"),
        *(root / "doc").rglob("*.rst"),
        *(root / "doc").rglob("*.md"),
        *(root / "examples").glob("*.py"),
    ]
    named = [
        p
        for p in named
        if not any(s.startswith(".") for s in p.relative_to(root).parts)
    ]
    stems = sorted({p.stem for p in named if HISTORY_WORDS.search(p.stem.lower())})
    assert stems == []


PUBLIC = json.loads((Path(__file__).parent / "data" / "public_names.json").read_text())


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_still_imports_from_its_public_path(module):
    """The names each public module exported before the reorganisation by concept."""
    mod = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(mod, name)]
    assert missing == []
    assert set(PUBLIC[module]) <= set(getattr(mod, "__all__", PUBLIC[module]))
