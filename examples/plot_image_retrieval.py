"""
Image retrieval with the image backbone
=======================================

Estimators take image arrays as they are: ``X`` of shape ``(n, C, H, W)``
(or ``(n, H, W)`` with ``input_type="image"``) trains the default
:class:`~sklearn_dml.backbones.PatchPCANet`: fixed filters from principal
axes of the images' patches, rectified and averaged on a coarse grid, under
the PCA-started residual MLP of the tabular default. This example trains it
on half of the 8x8
digit images, with random crops as training-only augmentation, then uses
the other half as queries and gallery: for a few query images it shows
their nearest neighbours in the embedding.
"""

# %%
# Images in
# ---------
# ``load_digits`` holds 8x8 grey images; we keep their shape, adding the
# channel axis: ``(n, 1, 8, 8)``.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from sklearn_dml import TripletEmbedder
from sklearn_dml.augmentation import RandomCrop
from sklearn_dml.metrics import map_at_r_score

digits = load_digits()
X = (digits.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8)
X_train, X_test, y_train, y_test = train_test_split(
    X, digits.target, test_size=0.5, stratify=digits.target, random_state=0
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
print(f"images: {X.shape}; training on {len(X_train)}, retrieving among {len(X_test)}")

# %%
# Training
# --------
# The backbone is chosen from the 4-D input; ``augment`` shifts every training
# image by up to one pixel (never at ``transform``).
emb = TripletEmbedder(
    n_components=32,
    max_iter=5,
    augment=RandomCrop(padding=1),
    random_state=0,
).fit(X_train, y_train)
print(f"backbone: {type(emb.backbone_).__name__}, input_shape_={emb.input_shape_}")

# %%
# Retrieval of held-out images
# ----------------------------
# MAP@R (leave-one-out) among the held-out images, against the raw pixels.
Z = emb.transform(X_test)
raw = map_at_r_score(X_test.reshape(len(X_test), -1), y_test)
learned = map_at_r_score(Z, y_test)
print(f"held-out MAP@R: raw pixels {raw:.3f}, image embedding {learned:.3f}")

# %%
# Nearest neighbours
# ------------------
# Each row: a query image (left) and its five nearest neighbours among the
# other held-out images, framed green when of the query's class.
X_gallery, y_gallery = X_test[:, 0], y_test
nn = NearestNeighbors(n_neighbors=6).fit(Z)
queries = np.random.RandomState(0).choice(len(Z), size=4, replace=False)
_, idx = nn.kneighbors(Z[queries])
fig, axes = plt.subplots(len(queries), 6, figsize=(6, 4.4))
for row, neighbours in enumerate(idx):
    for col, j in enumerate(neighbours):
        ax = axes[row, col]
        ax.imshow(X_gallery[j], cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_title("query" if row == 0 else "", fontsize=9)
            continue
        color = "tab:green" if y_gallery[j] == y_gallery[neighbours[0]] else "tab:red"
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(2)
fig.suptitle("Nearest neighbours of held-out digits in the embedding")
plt.tight_layout()
plt.show()
