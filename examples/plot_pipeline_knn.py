"""
Embedder + k-nearest neighbours in a Pipeline
=============================================

A :class:`~sklearn_dml.TripletEmbedder` learns a 32-dimensional embedding of
the handwritten digits; a :class:`~sklearn.neighbors.KNeighborsClassifier`
classifies in that embedding. The whole chain is one scikit-learn estimator.
"""

# %%
# Data: scikit-learn's bundled digits, stratified half split.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dml import TripletEmbedder

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
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

# %%
# Raw features against the learned embedding, same classifier.
raw = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
learned = make_pipeline(
    StandardScaler(),
    TripletEmbedder(n_components=32, max_iter=30, random_state=0),
    KNeighborsClassifier(n_neighbors=5),
)
# sphinx_gallery_start_ignore
if QUICK:
    learned.set_params(tripletembedder__max_iter=2)
# sphinx_gallery_end_ignore
for name, model in [("raw features", raw), ("TripletEmbedder", learned)]:
    model.fit(X_train, y_train)
    print(f"{name:>16}: kNN accuracy {model.score(X_test, y_test):.3f}")

# %%
# The embedder's own score is retrieval quality (MAP@R) on the test set.
embedder = learned[:-1]
print(
    f"MAP@R of the embedding: {embedder[-1].score(embedder[0].transform(X_test), y_test):.3f}"
)
