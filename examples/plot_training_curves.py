"""
Training curves, early stopping and warm start
==============================================

Every embedder records one row per epoch in ``history_``: the epoch number,
the mean training loss, the time the epoch took and, with early stopping,
the MAP@R of a held-out validation split. ``pandas.DataFrame(emb.history_)``
turns it into a table ready to plot.

This example

1. trains with ``early_stopping=True`` and plots the loss and validation
   curves, marking the epoch whose weights were kept;
2. continues a model with ``warm_start=True`` and shows that the history and
   the epoch count carry over.
"""

# %%
# Early stopping
# --------------
# 15 % of the training samples (stratified) are held out; training stops
# when their MAP@R has not improved for 5 epochs, and the best weights are
# restored.
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_dml import TripletEmbedder

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
# sphinx_gallery_start_ignore
# SKLEARN_DML_QUICK_EXAMPLES=1 (set by the test suite, which checks that the
# example runs) shrinks the data and the epochs; the gallery runs the example
# as written.
import os  # noqa: E402

QUICK = os.environ.get("SKLEARN_DML_QUICK_EXAMPLES") == "1"
if QUICK:
    X_train, y_train = X_train[::4], y_train[::4]
    X_test, y_test = X_test[::4], y_test[::4]
# sphinx_gallery_end_ignore

emb = TripletEmbedder(
    n_components=32,
    max_iter=60,
    early_stopping=True,
    validation_fraction=0.15,
    n_iter_no_change=5,
    learning_rate_init=3e-3,
    random_state=0,
)
# sphinx_gallery_start_ignore
if QUICK:
    emb.set_params(max_iter=4, n_iter_no_change=2)
# sphinx_gallery_end_ignore
emb.fit(X_train, y_train)
history = pd.DataFrame(emb.history_)
print(history.head())
print(f"stopped after {emb.n_iter_} of {emb.max_iter} epochs")
print(f"best validation MAP@R {emb.best_validation_score_:.3f}")
print(f"test MAP@R {emb.score(X_test, y_test):.3f}")

# %%
# Plot the curves
# ---------------
best_epoch = history.loc[history["validation_score"].idxmax(), "epoch"]
fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
history.plot(x="epoch", y="loss", ax=ax_loss, legend=False, marker=".")
ax_loss.set_ylabel("mean training loss")
history.plot(x="epoch", y="validation_score", ax=ax_val, legend=False, marker=".")
ax_val.set_ylabel("validation MAP@R")
for ax in (ax_loss, ax_val):
    ax.axvline(best_epoch, color="grey", linestyle="--", label="weights kept")
    ax.legend()
fig.suptitle("TripletEmbedder with early stopping")
plt.tight_layout()
plt.show()

# %%
# Warm start
# ----------
# With ``warm_start=True``, a second ``fit`` continues from the trained
# network instead of starting afresh. Here a short first run of 5 epochs is
# extended twice by 5 more; ``history_`` grows and ``n_iter_`` counts all
# epochs.
warm = TripletEmbedder(n_components=32, max_iter=5, warm_start=True, random_state=0)
# sphinx_gallery_start_ignore
if QUICK:
    warm.set_params(max_iter=1)
# sphinx_gallery_end_ignore
scores = []
for _ in range(3):
    warm.fit(X_train, y_train)
    scores.append({"epochs": warm.n_iter_, "test MAP@R": warm.score(X_test, y_test)})
print(pd.DataFrame(scores))

curve = pd.DataFrame(warm.history_)
ax = curve.plot(x="epoch", y="loss", marker="o", legend=False, figsize=(6, 3.5))
for boundary in (5.5, 10.5):
    ax.axvline(boundary, color="grey", linestyle=":")
ax.set_ylabel("mean training loss")
ax.set_title("Three warm-started fits of 5 epochs")
plt.tight_layout()
plt.show()

# %%
# ``time`` holds the seconds each epoch took, useful to budget longer runs:
print(f"mean epoch time: {curve['time'].mean():.3f} s")
