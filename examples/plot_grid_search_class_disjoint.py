"""
Tuning a margin for classes never seen in training
==================================================

A metric learner is usually deployed on classes it did not see during
training. Its hyper-parameters should then be chosen by how well the
embedding retrieves *held-out classes*, not held-out samples of the
training classes.

This example tunes the ``margin`` of a :class:`~sklearn_dml.TripletEmbedder`
with :class:`~sklearn.model_selection.GridSearchCV`, using

* :class:`~sklearn_dml.model_selection.ClassDisjointKFold` as ``cv``: each
  fold holds out whole classes, so every validation score is measured on
  classes absent from that fold's training data;
* :data:`~sklearn_dml.metrics.map_at_r_scorer` as ``scoring``: MAP@R of
  leave-one-out retrieval inside the validation fold.

The digits 7-9 are kept out of the whole search for the final test.
"""

# %%
# Data
# ----
# The search sees the digits 0-6; the final test uses the digits 7-9.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_dml import TripletEmbedder
from sklearn_dml.metrics import map_at_r_score, map_at_r_scorer
from sklearn_dml.model_selection import ClassDisjointKFold

X, y = load_digits(return_X_y=True)
X = X / 16.0
search_part = y < 7
X_search, y_search = X[search_part], y[search_part]
X_final, y_final = X[~search_part], y[~search_part]
# sphinx_gallery_start_ignore
# SKLEARN_DML_QUICK_EXAMPLES=1 (set by the test suite, which checks that the
# example runs) shrinks the data and the epochs; the gallery runs the example
# as written.
import os  # noqa: E402

QUICK = os.environ.get("SKLEARN_DML_QUICK_EXAMPLES") == "1"
if QUICK:
    X_search, y_search = X_search[::4], y_search[::4]
    X_final, y_final = X_final[::4], y_final[::4]
# sphinx_gallery_end_ignore

# %%
# Class-disjoint folds
# --------------------
# Seven classes in three folds: each validation fold holds two or three
# digits, and the training side of that fold never contains them.
cv = ClassDisjointKFold(n_splits=3, shuffle=True, random_state=0)
for fold, (train, test) in enumerate(cv.split(X_search, y_search)):
    print(
        f"fold {fold}: train on digits {np.unique(y_search[train])}, "
        f"validate on digits {np.unique(y_search[test])}"
    )

# %%
# The search
# ----------
# Three margins, three folds: nine short fits, then one refit of the best
# margin on all seven digits.
search = GridSearchCV(
    TripletEmbedder(n_components=32, max_iter=8, random_state=0),
    param_grid={"margin": [0.02, 0.1, 0.4]},
    scoring=map_at_r_scorer,
    cv=cv,
)
# sphinx_gallery_start_ignore
if QUICK:
    search.set_params(estimator__max_iter=1)
# sphinx_gallery_end_ignore
search.fit(X_search, y_search)
results = pd.DataFrame(search.cv_results_)[
    ["param_margin", "mean_test_score", "std_test_score", "rank_test_score"]
]
print(results)
print(f"best margin: {search.best_params_['margin']}")

# %%
# Validation MAP@R per margin, with one standard deviation over the folds.
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.errorbar(
    results["param_margin"].astype(float),
    results["mean_test_score"],
    yerr=results["std_test_score"],
    marker="o",
    capsize=4,
)
ax.set_xscale("log")
ax.set_xlabel("margin")
ax.set_ylabel("MAP@R on held-out classes")
ax.set_title("Class-disjoint 3-fold cross-validation")
plt.tight_layout()
plt.show()

# %%
# Final test on classes outside the search
# ----------------------------------------
# ``search.best_estimator_`` was refitted on the digits 0-6. Its retrieval of
# the digits 7-9, which neither the search nor the refit has seen, is the
# honest estimate of how it will do on new classes.
final_embedding = search.best_estimator_.transform(X_final)
print(f"MAP@R on digits 7-9, raw pixels:  {map_at_r_score(X_final, y_final):.3f}")
print(
    f"MAP@R on digits 7-9, best margin: {map_at_r_score(final_embedding, y_final):.3f}"
)

# %%
# With ordinary (stratified) K-fold the validation folds would contain the
# training classes and the scores would measure memorisation of those
# classes; they would be higher than the class-disjoint scores above and
# could favour a different margin. Use class-disjoint folds whenever the
# embedding must serve new classes.
