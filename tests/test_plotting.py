"""The training-history plot: the objective, each term, the validation curve."""

import matplotlib
import numpy as np
import pytest

from sklearn_dml import TripletEmbedder
from sklearn_dml.plotting import plot_training_history

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def history_fit(tiny):
    X, y = tiny
    est = TripletEmbedder(
        n_components=8,
        hidden_layer_sizes=(16,),
        max_iter=3,
        early_stopping=True,
        n_iter_no_change=5,
        random_state=0,
    )
    return est.fit(X, y)


def test_one_line_for_the_objective_and_each_term(history_fit):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        returned = plot_training_history(history_fit, ax=ax)
        assert returned is ax
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == ["objective", "metric", "anchor"]
        history = history_fit.history_
        np.testing.assert_allclose(
            lines["objective"].get_ydata(), [r["loss"] for r in history]
        )
        np.testing.assert_allclose(
            lines["anchor"].get_ydata(), [r["terms"]["anchor"] for r in history]
        )
        right = ax.right_ax.get_lines()[0]
        np.testing.assert_allclose(
            right.get_ydata(), [r["validation_score"] for r in history]
        )
    finally:
        plt.close(fig)


def test_objective_only_and_an_unfitted_embedder(history_fit):
    import matplotlib.pyplot as plt

    ax = plot_training_history(history_fit, terms=False, log_scale=True)
    try:
        assert [line.get_label() for line in ax.get_lines()] == ["objective"]
        assert ax.get_yscale() == "log"
    finally:
        plt.close(ax.figure)
    with pytest.raises(ValueError, match="fit it first"):
        plot_training_history(TripletEmbedder())
