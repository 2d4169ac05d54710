"""
A picture of the learned embedding
==================================

What does a metric-learning embedding look like? This example projects the
raw 64-pixel digits and their learned 32-dimensional embedding to two
dimensions, with PCA (linear, keeps global geometry) and t-SNE (non-linear,
keeps neighbourhoods), and colours each point by its digit.

The embedder is trained on one half of the data; the pictures show the
other half.
"""

# %%
# Train on half of the digits
# ---------------------------
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.model_selection import train_test_split

from sklearn_dml import TripletEmbedder
from sklearn_dml.metrics import map_at_r_score

X, y = load_digits(return_X_y=True)
X = X / 16.0
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
    X_train, y_train = X_train[::5], y_train[::5]
    X_test, y_test = X_test[::5], y_test[::5]
# sphinx_gallery_end_ignore
embedder = TripletEmbedder(n_components=32, max_iter=30, random_state=0)
# sphinx_gallery_start_ignore
if QUICK:
    embedder.set_params(max_iter=2)
# sphinx_gallery_end_ignore
embedder.fit(X_train, y_train)
Z_test = embedder.transform(X_test)
print(f"MAP@R raw pixels: {map_at_r_score(X_test, y_test):.3f}")
print(f"MAP@R embedding:  {map_at_r_score(Z_test, y_test):.3f}")

# %%
# Project both to 2-D
# -------------------
# The same projections, with the same settings, for both representations.
views = {}
for name, data in [("raw pixels", X_test), ("learned embedding", Z_test)]:
    views[("PCA", name)] = PCA(n_components=2, random_state=0).fit_transform(data)
    views[("t-SNE", name)] = TSNE(
        n_components=2, init="pca", perplexity=30, random_state=0
    ).fit_transform(data)

# %%
# Plot
# ----
fig, axes = plt.subplots(2, 2, figsize=(9, 8))
for row, method in enumerate(["PCA", "t-SNE"]):
    for col, name in enumerate(["raw pixels", "learned embedding"]):
        ax = axes[row, col]
        points = views[(method, name)]
        scatter = ax.scatter(
            points[:, 0], points[:, 1], c=y_test, cmap="tab10", s=8, vmin=-0.5, vmax=9.5
        )
        ax.set_title(f"{method} of the {name}")
        ax.set_xticks([])
        ax.set_yticks([])
fig.colorbar(scatter, ax=axes, ticks=range(10), label="digit", shrink=0.8)
plt.show()

# %%
# In the raw pixels, PCA shows overlapping clouds; in the learned embedding
# the classes form compact, separated groups even in a linear projection,
# because the training objective put same-digit samples close together and
# pushed different digits apart. t-SNE separates the raw digits too, but the
# learned embedding gives tighter, cleaner clusters.
