"""Static checks of the benchmark scripts: no benchmark runs here.

Every script that writes a file under ``benchmarks/results/`` must state in
it the commit, command and machine load it was measured with
(``benchmarks/_provenance.provenance``), and ``make bench`` must run it, so
that one command regenerates every results file. Scripts that keep rows of
earlier runs in a JSON store state the commit of each row
(``rows_by_commit``).
"""

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

WRITES = re.compile(r"write_text\(|write_results\(|open\([^)]*['\"]w['\"]")
NAMES_RESULTS = re.compile(r"results[/'\"]")


def _source(path):
    return path.read_text(encoding="utf-8")


def writing_scripts():
    """The scripts of ``benchmarks/`` that write a file under ``results/``."""
    return sorted(
        p.name
        for p in BENCHMARKS.glob("*.py")
        if not p.name.startswith("_")
        and WRITES.search(_source(p))
        and NAMES_RESULTS.search(_source(p))
    )


def bench_target(makefile=ROOT / "Makefile"):
    """The ``benchmarks/*.py`` scripts that the recipe of ``make bench`` runs."""
    lines = makefile.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("bench:"))
    scripts = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        scripts += re.findall(r"benchmarks/(\w+\.py)", line)
    return scripts


def test_the_writing_scripts_are_found():
    found = writing_scripts()
    # guards against a pattern that silently matches nothing
    for name in ("classical.py", "compare_methods.py", "bench_fit_overhead.py"):
        assert name in found
    # modules that only compute (compare topics, helpers) are not listed
    assert "compare_mixup.py" not in found
    assert "transfer_tasks.py" not in found


@pytest.mark.parametrize("name", writing_scripts())
def test_results_file_states_its_provenance(name):
    source = _source(BENCHMARKS / name)
    assert re.search(r"\bprovenance\(", source), (
        f"benchmarks/{name} writes a results file without provenance() "
        "(benchmarks/_provenance.py) in it"
    )
    assert "rev-parse" not in source, f"benchmarks/{name}: use _provenance.commit()"


@pytest.mark.parametrize(
    "name",
    [n for n in writing_scripts() if ".json" in _source(BENCHMARKS / n)],
)
def test_merged_tables_state_the_commit_of_each_row(name):
    source = _source(BENCHMARKS / name)
    assert re.search(r"commit\(\)", source), f"{name}: store commit() per row"
    assert re.search(r"\brows_by_commit\(", source), f"{name}: rows_by_commit()"


def test_make_bench_runs_every_script_that_writes_a_results_file():
    listed = bench_target()
    missing = sorted(set(writing_scripts()) - set(listed))
    assert not missing, f"add to the Makefile's bench target: {missing}"
    assert all((BENCHMARKS / name).exists() for name in listed)


def _standalone():
    tree = ast.parse(_source(BENCHMARKS / "compare_methods.py"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "STANDALONE" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def test_every_compare_script_is_a_topic_or_runs_on_its_own():
    """compare_methods.py calls ``main(quick=...)`` of every topic but those
    of ``STANDALONE``, which write their own file (and are in ``make bench``)."""
    standalone, writers = _standalone(), set(writing_scripts())
    for path in BENCHMARKS.glob("compare_*.py"):
        if path.stem == "compare_methods":
            continue
        topic = path.stem[len("compare_") :]
        if path.name in writers:
            assert topic in standalone, f"add {topic!r} to STANDALONE"
        else:
            assert topic not in standalone
            assert re.search(r"^def main\(quick", _source(path), re.M), path.name


def test_the_check_fails_for_a_script_missing_from_make_bench(tmp_path):
    text = (ROOT / "Makefile").read_text()
    dropped = tmp_path / "Makefile"
    dropped.write_text(
        "\n".join(
            line
            for line in text.splitlines()
            if "benchmarks/deep_inputs.py" not in line
        )
    )
    assert "deep_inputs.py" in writing_scripts()
    assert "deep_inputs.py" not in bench_target(dropped)


def test_provenance_and_rows_by_commit(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("_provenance", None)
    import _provenance

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["benchmarks/some_bench.py", "--seeds", "3"])
    line = _provenance.provenance()
    assert line.startswith("Measured at commit ")
    assert "`python benchmarks/some_bench.py --seeds 3`" in line
    assert "CPUs, load average" in line
    assert _provenance.provenance("Table written").startswith("Table written at ")
    rows = [{"commit": "abc1234"}, {"commit": "abc1234"}, {"commit": "def5678"}, {}]
    assert _provenance.rows_by_commit(rows, "store.json") == (
        "Rows of this table by the commit they were measured at: abc1234 (2 rows), "
        "def5678 (1 row), not recorded (1 row) (each row's commit is stored with "
        "it in `store.json`; the rows stored before commits were recorded have "
        "none)."
    )
    assert _provenance.rows_by_commit(rows[:1]) == (
        "Rows of this table by the commit they were measured at: abc1234 (1 row)."
    )


def test_classical_side_by_side_ratio_and_failures(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import classical

    rows = [
        {"dataset": "d", "learner": "A", "library": "ours", "cpu_seconds": [1, 2, 3]},
        {"dataset": "d", "learner": "A", "library": "metric-learn"},
        {"dataset": "d", "learner": "B", "library": "ours", "cpu_seconds": [1.0]},
        {"dataset": "d", "learner": "B", "library": "metric-learn", "seconds": []},
    ]
    rows[0].update(knn_accuracy=0.9, map_at_r=0.5)
    rows[1].update(cpu_seconds=[20.0, 30.0, 10.0], knn_accuracy=0.8, map_at_r=0.4)
    rows[2].update(knn_accuracy=0.7, map_at_r=0.3)
    rows[3].update(cpu_seconds=[], failed="over 4 GB")
    lines = classical.side_by_side(rows)
    # Medians 2 s and 20 s: metric-learn's over ours.
    assert (
        "| d | A | 2.000 / 20.000 | 10.0x | 0.9000 / 0.8000 | 0.5000 / 0.4000 |"
        in lines
    )
    assert "| d | B | 1.000 / over 4 GB | - | 0.7000 / - | 0.3000 / - |" in lines


def _package_imports(path):
    """``(module, name)`` for each ``from sklearn_dml... import name`` of ``path``."""
    tree = ast.parse(_source(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sklearn_dml"
        ):
            for alias in node.names:
                yield node.module, alias.name


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_what_a_benchmark_imports_from_the_package_exists(script):
    """A renamed module or class breaks the script only when it runs, which
    the suite never does: check its package imports here."""
    import importlib

    for module, name in _package_imports(BENCHMARKS / script):
        imported = importlib.import_module(module)
        if not hasattr(imported, name):  # a submodule: `from sklearn_dml import losses`
            importlib.import_module(f"{module}.{name}")


def test_results_files_do_not_mark_the_code_as_uncommitted(tmp_path, monkeypatch):
    # A script writes its JSON store before its table: the table's commit
    # line must still say the code measured is the commit's.
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "table.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    monkeypatch.setattr(_provenance, "ROOT", tmp_path)
    assert "uncommitted" not in _provenance.commit()
    (tmp_path / "benchmarks" / "results" / "table.json").write_text('{"a": 1}\n')
    assert "uncommitted" not in _provenance.commit()
    (tmp_path / "code.py").write_text("x = 2\n")
    assert _provenance.commit().endswith("(with uncommitted changes)")


def test_retrieval_scoring_of_neighbours(monkeypatch):
    # The retrieval benchmark scores every contender's neighbours with one
    # NumPy function: it must give MAP@R and P@1 as defined, here computed
    # query by query in plain Python, on neighbours with hits at every rank,
    # more neighbours than relevant references, and a query with none.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_retrieval

    rng = np.random.default_rng(0)
    reference_labels = rng.integers(0, 4, size=60)
    query_labels = rng.integers(0, 4, size=25)
    query_labels[3] = 9  # no relevant reference: skipped
    n_relevant = np.array([(reference_labels == c).sum() for c in query_labels])
    k = int(n_relevant.max()) + 3
    neighbours = np.array([rng.permutation(60)[:k] for _ in query_labels])

    precisions, firsts = [], []
    for row, label, r in zip(neighbours, query_labels, n_relevant):
        if r == 0:
            continue
        hits, total = 0, 0.0
        for i in range(r):
            if reference_labels[row[i]] == label:
                hits += 1
                total += hits / (i + 1)
        precisions.append(total / r)
        firsts.append(reference_labels[row[0]] == label)
    map_at_r, p_at_1 = bench_retrieval.scores_from_neighbours(
        neighbours, query_labels, reference_labels, n_relevant
    )
    assert map_at_r == pytest.approx(np.mean(precisions), rel=1e-12)
    assert p_at_1 == pytest.approx(np.mean(firsts), rel=1e-12)


def test_transfer_defaults_resolution_of_the_margins(monkeypatch):
    # The reinitialised controls are scored against the baselines only on
    # tasks where the embedder's own unanchored networks are the best
    # baseline; the oracle takes the better control on each seed.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import transfer_defaults as td

    tasks = list(td.TASKS)[:2]
    embedder = "TripletEmbedder"
    names = td.BASELINES + [td.SAME_LOSS[embedder]]
    baselines = {"rows": []}
    rows = []
    for seed in (0, 1):
        for task, other in zip(tasks, (0.40, 0.90)):  # own networks best on the first
            for name in names:
                baselines["rows"].append(
                    dict(task=task, seed=seed, method=name, unseen_map=other)
                )
            values = {
                "unanchored": 0.50,
                "free network": 0.60,
                "unanchored, another init": 0.45,
                "free network, another init": 0.60 - 0.02 * (seed + 1),
            }
            for setting, value in values.items():
                rows.append(
                    dict(
                        embedder=embedder,
                        setting=setting,
                        task=task,
                        seed=seed,
                        unseen_map=value,
                    )
                )
    out = td.resolution(rows, baselines)
    n_tasks, worst, worst_task, mean, median_diff, p90_diff = out[embedder]
    assert (n_tasks, worst_task) == (1, tasks[0])
    assert worst == pytest.approx(-0.03)  # mean of -0.02 and -0.04
    assert mean == pytest.approx(-0.03)
    # |diff| per seed and control over both tasks: 0.05 (x4), 0.02 (x2), 0.04 (x2)
    assert median_diff == pytest.approx(0.045)
    assert list(out) == [embedder]
