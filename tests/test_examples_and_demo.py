"""The README demo and the gallery scripts run and report sensible numbers."""

import runpy
from pathlib import Path

import pytest

from sklearn_dml.__main__ import main

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("plot_*.py"))


def test_demo_table(capsys):
    results = main(["--max-iter", "10"])
    out = capsys.readouterr().out
    assert "unseen MAP@R" in out and "epoch" in out  # table and progress
    assert list(results)[0] == "raw features" and len(results) == 4
    for scores in results.values():
        assert len(scores) == 4 and all(0.0 <= s <= 1.0 for s in scores)
    learned = results["TripletEmbedder (32)"]
    assert learned[0] > results["raw features"][0] + 0.1  # seen-class MAP@R


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, capsys, monkeypatch):
    assert EXAMPLES, "no gallery examples found"
    # Every line of the example runs, on less data and for fewer epochs (a
    # hidden block in each example reads this variable); the documentation
    # build runs the examples in full.
    monkeypatch.setenv("SKLEARN_DML_QUICK_EXAMPLES", "1")
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()
