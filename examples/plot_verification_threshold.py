"""
Verification with a calibrated threshold
========================================

Verification answers a yes/no question about a pair of samples: do they
belong to the same class? With a learned embedding the answer is "same"
when the two embeddings are closer than a threshold. This example

1. trains a :class:`~sklearn_dml.TripletEmbedder` on the digits 0-4,
2. builds labelled pairs of the *unseen* digits 5-9,
3. calibrates the threshold on one half of those pairs with three strategies
   of ``calibrate_threshold`` ("accuracy", "f_beta", "tpr_at_fpr"),
4. measures each threshold on the other half.
"""

# %%
# Train on the digits 0-4
# -----------------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from sklearn_dml import TripletEmbedder

X, y = load_digits(return_X_y=True)
X = X / 16.0
seen = y < 5
emb = TripletEmbedder(n_components=32, max_iter=20, random_state=0)
# sphinx_gallery_start_ignore
# SKLEARN_DML_QUICK_EXAMPLES=1 (set by the test suite, which checks that the
# example runs) shrinks the data and the epochs; the gallery runs the example
# as written.
import os  # noqa: E402

QUICK = os.environ.get("SKLEARN_DML_QUICK_EXAMPLES") == "1"
if QUICK:
    X, y, seen = X[::4], y[::4], seen[::4]
    emb.set_params(max_iter=2)
# sphinx_gallery_end_ignore
emb.fit(X[seen], y[seen])

# %%
# Pairs of unseen digits
# ----------------------
# The unseen samples are split in two; each half gives pairs, half of them of
# the same digit. A pair set has shape ``(n_pairs, 2, n_features)``.


def make_pairs(X, y, n_pairs, rng):
    """Pairs of rows of X, the first half same-class, the second different."""
    _, codes = np.unique(y, return_inverse=True)
    n_classes = codes.max() + 1
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = rng.integers(len(codes), size=n_pairs)
    same = np.arange(n_pairs) < n_pairs // 2
    # Same pairs keep the class of the first sample; different pairs move to
    # another class by a non-zero shift.
    partner_class = np.where(
        same,
        codes[first],
        (codes[first] + rng.integers(1, n_classes, n_pairs)) % n_classes,
    )
    partner = order[starts[partner_class] + rng.integers(counts[partner_class])]
    return np.stack([X[first], X[partner]], axis=1), same.astype(int)


rng = np.random.default_rng(0)
X_cal, X_test, y_cal, y_test = train_test_split(
    X[~seen], y[~seen], test_size=0.5, stratify=y[~seen], random_state=0
)
pairs_cal, same_cal = make_pairs(X_cal, y_cal, 2000, rng)
pairs_test, same_test = make_pairs(X_test, y_test, 2000, rng)
print(f"calibration pairs {pairs_cal.shape}, test pairs {pairs_test.shape}")

# %%
# How well do distances separate the pairs?
# -----------------------------------------
# ``pair_score`` is higher for more similar pairs (the negated embedding
# distance), so it ranks pairs for a ROC curve without any threshold.
auc = roc_auc_score(same_test, emb.pair_score(pairs_test))
print(f"ROC AUC on unseen digits: {auc:.3f}")

# %%
# Three ways to choose the threshold
# ----------------------------------
# "accuracy" maximises the accuracy on the calibration pairs; "f_beta" with
# ``beta=2`` favours recall of the "same" pairs; "tpr_at_fpr" accepts at most
# 5 % false "same" decisions, as an access-control system would.
settings = {
    "accuracy": dict(strategy="accuracy"),
    "f_beta (beta=2)": dict(strategy="f_beta", beta=2.0),
    "tpr_at_fpr (max 5%)": dict(strategy="tpr_at_fpr", max_fpr=0.05),
}
rows, thresholds = {}, {}
for name, kwargs in settings.items():
    emb.calibrate_threshold(pairs_cal, same_cal, **kwargs)
    thresholds[name] = emb.threshold_
    predicted = emb.predict_pairs(pairs_test)
    rows[name] = {
        "threshold": emb.threshold_,
        "accuracy": accuracy_score(same_test, predicted),
        "true positive rate": predicted[same_test == 1].mean(),
        "false positive rate": predicted[same_test == 0].mean(),
    }
print(pd.DataFrame(rows).T.round(3))

# %%
# ``decision_function`` is the threshold minus the distance: positive means
# "same", and its size says how far the pair is from the boundary.
print(emb.decision_function(pairs_test[:5]).round(3), same_test[:5])

# %%
# Distances of the test pairs and the three thresholds
# ----------------------------------------------------
distances = emb.pair_distance(pairs_test)
fig, ax = plt.subplots(figsize=(7, 4))
bins = np.linspace(0, distances.max(), 40)
ax.hist(distances[same_test == 1], bins=bins, alpha=0.6, label="same digit")
ax.hist(distances[same_test == 0], bins=bins, alpha=0.6, label="different digits")
for (name, value), style in zip(thresholds.items(), ["-", "--", ":"]):
    ax.axvline(value, color="black", linestyle=style, label=f"threshold: {name}")
ax.set_xlabel("embedding distance of the pair")
ax.set_ylabel("number of test pairs")
ax.set_title("Verification of unseen digits 5-9")
ax.legend(fontsize="small")
plt.tight_layout()
plt.show()

# %%
# A lower false-positive budget moves the threshold left: fewer different
# pairs are accepted, at the cost of rejecting more same pairs. Always
# calibrate on pairs that were not used for training, ideally of the classes
# the system will meet.
