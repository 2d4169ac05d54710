"""The default backbone for image arrays: a filter bank from the images' own
patches, pooled on a coarse grid, under the PCA-started residual MLP.
"""

import numpy as np
import torch
from torch import nn

from ._mlp import ResidualMLP, principal_axes

__all__ = ["PatchPCANet"]

#: Images and patches :meth:`PatchPCANet.initialize` draws the filters from.
_FILTER_IMAGES = 2000
_FILTER_PATCHES = 50_000

#: Rows per chunk when the features of the initialisation sample are computed.
_FEATURE_CHUNK = 256


class PatchPCANet(nn.Module):
    """Whitened patch filters, rectified and pooled, under a :class:`ResidualMLP`.

    The image ``(C, H, W)`` is convolved (zero padding, stride 1) with
    ``n_filters`` fixed filters of ``patch_size x patch_size``: the leading
    principal axes of patches drawn from the training images, each scaled to
    unit variance on those patches (PCA whitening) and centred by their mean
    patch. Each response ``r`` gives two rectified channels, ``max(r, 0)`` and
    ``max(-r, 0)``; their average over each cell of a ``grid_size x
    grid_size`` grid forms ``2 * n_filters * grid_size**2`` features. These
    feed a :class:`ResidualMLP` (``mlp``) with its PCA start and anchoring
    penalty: before training the embedding is the PCA projection of the
    pooled features, and training refines that geometry.

    The filters are set from the data by :meth:`initialize` and not trained
    (they are buffers, not parameters); the residual MLP is. Averaging over
    cells of ``H / grid_size`` pixels makes the features tolerant to shifts
    of a few pixels, which a network on the flattened pixels is not.

    Parameters
    ----------
    in_channels : int
        Number of channels ``C`` of the images ``(batch, C, H, W)``; a batch
        ``(batch, H, W)`` is read as one channel.

    n_components : int
        Size of the embedding.

    n_filters : int, default=16
        Number of filters, at most ``in_channels * patch_size**2``.

    patch_size : int, default=5
        Odd side of the filters, in pixels.

    grid_size : int, default=4
        The pooled responses form a ``grid_size x grid_size`` grid.

    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the hidden layers of the residual branch of ``mlp``.

    normalize_embeddings : bool, default=True
        L2-normalise the output.

    anchor_weight : float, default=10.0
        Weight of the anchoring penalty of ``mlp`` (:meth:`training_penalty`):
        the batch's cosine similarities are kept close to those of the PCA
        start on the pooled features; ``0`` disables it.

    Attributes
    ----------
    filters : torch.Tensor of shape (n_filters, in_channels, patch_size, patch_size)
        The whitened principal patch axes (zero before :meth:`initialize`).

    filter_bias : torch.Tensor of shape (n_filters,)
        Minus each filter's response to the mean patch.

    mlp : ResidualMLP
        The embedding of the pooled features.

    initialized : bool
        Whether :meth:`initialize` has set the filters and the PCA start.

    Notes
    -----
    With :math:`\\mu` the mean patch, :math:`v_k` the principal axes of the
    patches and :math:`\\sigma_k^2` their variances, filter :math:`k` is
    :math:`w_k = v_k / (\\sigma_k + \\epsilon)`, with :math:`\\epsilon` a
    hundredth of :math:`\\sigma_1`, and its response at a position whose
    patch is :math:`p` is :math:`w_k^\\top (p - \\mu)`. The filters follow
    the single-layer networks of Coates, Lee and Ng [1]_ (whitened patches,
    rectified responses split by sign, average pooling over a few regions),
    with principal axes in place of k-means centroids as in the first stage
    of PCANet [2]_.

    References
    ----------
    .. [1] Coates, Lee and Ng, "An Analysis of Single-Layer Networks in
       Unsupervised Feature Learning", AISTATS 2011.
    .. [2] Chan, Jia, Gao, Lu, Zeng and Ma, "PCANet: A Simple Deep Learning
       Baseline for Image Classification?", IEEE Transactions on Image
       Processing 24(12), 2015.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import PatchPCANet
    >>> net = PatchPCANet(in_channels=1, n_components=8, n_filters=4, grid_size=2)
    >>> net.initialize(torch.rand(20, 1, 12, 12)).initialized
    True
    >>> net(torch.rand(5, 1, 12, 12)).shape
    torch.Size([5, 8])
    """

    def __init__(
        self,
        in_channels,
        n_components,
        n_filters=16,
        patch_size=5,
        grid_size=4,
        hidden_layer_sizes=(256,),
        normalize_embeddings=True,
        anchor_weight=10.0,
    ):
        super().__init__()
        in_channels, patch_size = int(in_channels), int(patch_size)
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels!r}.")
        if patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(
                f"patch_size must be a positive odd int, got {patch_size!r}."
            )
        if not 1 <= int(n_filters) <= in_channels * patch_size**2:
            raise ValueError(
                f"n_filters must be between 1 and in_channels * patch_size**2 = "
                f"{in_channels * patch_size**2} (the size of a patch), got {n_filters!r}."
            )
        if int(grid_size) < 1:
            raise ValueError(f"grid_size must be >= 1, got {grid_size!r}.")
        self.in_channels = in_channels
        self.n_filters = int(n_filters)
        self.patch_size = patch_size
        self.grid_size = int(grid_size)
        self.register_buffer(
            "filters", torch.zeros(self.n_filters, in_channels, patch_size, patch_size)
        )
        self.register_buffer("filter_bias", torch.zeros(self.n_filters))
        self.mlp = ResidualMLP(
            2 * self.n_filters * self.grid_size**2,
            n_components,
            tuple(hidden_layer_sizes),
            init="pca",
            normalize_embeddings=normalize_embeddings,
            anchor_weight=anchor_weight,
        )

    @property
    def initialized(self):
        return self.mlp.initialized

    @property
    def anchor_weight(self):
        return self.mlp.anchor_weight

    def _as_images(self, x):
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchPCANet expects images of shape (batch, {self.in_channels}, H, W)"
                f"{' or (batch, H, W)' if self.in_channels == 1 else ''}, got "
                f"{tuple(x.shape)}."
            )
        return x

    def features(self, x):
        """The pooled rectified filter responses of a batch of images.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, C, H, W) or (batch, H, W)
            The images.

        Returns
        -------
        features : torch.Tensor of shape (batch, 2 * n_filters * grid_size**2)
            Without gradient (the filters are fixed).
        """
        x = self._as_images(x)
        with torch.no_grad():
            r = nn.functional.conv2d(
                x,
                self.filters.to(x.dtype),
                self.filter_bias.to(x.dtype),
                padding=self.patch_size // 2,
            )
            positive = nn.functional.adaptive_avg_pool2d(r.clamp_min(0), self.grid_size)
            # max(-r, 0) = max(r, 0) - r, and the average is linear: one pooling less.
            negative = positive - nn.functional.adaptive_avg_pool2d(r, self.grid_size)
            return torch.cat([positive, negative], dim=1).flatten(1)

    @torch.no_grad()
    def initialize(self, X):
        """Set the filters from patches of ``X``, then the PCA start of ``mlp``.

        Draws 50,000 patches (with replacement, positions uniformly at
        random, zero padding at the borders as in the convolution) from up to
        2,000 images of ``X``, with a generator of fixed seed (the filters
        depend on the data only); the filters are their whitened leading
        principal axes. ``mlp`` is then initialised on the
        pooled features of all of ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, C, H, W) or (n_samples, H, W)
            Training images (read, not modified).

        Returns
        -------
        self : PatchPCANet
            The module, initialised in place.
        """
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu()
        else:
            X = np.asarray(X)
        if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[1] != self.in_channels):
            raise ValueError(
                f"initialize expects images of shape (n_samples, {self.in_channels}, "
                f"H, W), got {tuple(X.shape)}."
            )
        n = X.shape[0]
        # A generator of its own: the filters depend on the data only.
        generator = torch.Generator().manual_seed(0)
        chosen = torch.randperm(n, generator=generator)[: min(n, _FILTER_IMAGES)]
        chosen = chosen.sort().values.numpy()
        images = self._as_images(
            torch.as_tensor(np.asarray(X[chosen]), dtype=torch.float32)
        )
        p, (height, width) = self.patch_size, images.shape[2:]
        padded = nn.functional.pad(images, (p // 2,) * 4)
        m = _FILTER_PATCHES
        which = torch.randint(len(images), (m,), generator=generator)
        rows = torch.randint(height, (m,), generator=generator)[:, None] + torch.arange(
            p
        )
        cols = torch.randint(width, (m,), generator=generator)[:, None] + torch.arange(
            p
        )
        # (m, p, p, C): the advanced indices, split by the channel slice, come first.
        patches = padded[which[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        patches = patches.permute(0, 3, 1, 2).reshape(m, -1)
        mean, axes = principal_axes(patches)
        axes = axes[: self.n_filters]
        spread = ((patches.double() - mean) @ axes.T).std(dim=0)
        eps = max(1e-2 * float(spread[0]), 1e-12)
        weights = axes / (spread[:, None] + eps)
        self.filters.copy_(weights.reshape(self.filters.shape).to(self.filters.dtype))
        self.filter_bias.copy_((-weights @ mean).to(self.filter_bias.dtype))
        features = [
            self.features(
                torch.as_tensor(
                    np.asarray(X[s : s + _FEATURE_CHUNK]), dtype=torch.float32
                )
            )
            for s in range(0, n, _FEATURE_CHUNK)
        ]
        self.mlp.initialize(torch.cat(features))
        return self

    def forward(self, x):
        features = self.features(x)
        if self.training and self.mlp.anchor_weight != 0.0:
            # Kept for training_penalty, which the engine calls on this batch:
            # the features are a fixed function of x, and computing them is
            # most of a training step's cost.
            self._batch_features = (x, features)
        return self.mlp(features)

    def train(self, mode=True):
        self._batch_features = None
        return super().train(mode)

    def _features_of_batch(self, x):
        """The features ``forward`` computed for this very tensor ``x`` in
        training, else computed anew; the kept pair is dropped either way."""
        kept, self._batch_features = getattr(self, "_batch_features", None), None
        if kept is not None and kept[0] is x:
            return kept[1]
        return self.features(x)

    def training_penalty(self, x, embeddings, y=None):
        """The anchoring term of ``mlp`` on the pooled features of ``x``.

        ``anchor_weight`` times the mean squared difference, over the ordered
        pairs of distinct rows, between the cosine similarities of
        ``embeddings`` and those of the PCA start on the features (see
        :meth:`ResidualMLP.training_penalty
        <sklearn_dml.backbones.ResidualMLP.training_penalty>`); ``None`` when
        ``anchor_weight`` is 0 or the batch has fewer than 2 rows.
        """
        if self.mlp.anchor_weight == 0.0 or x.shape[0] < 2:
            return None
        return self.mlp.training_penalty(self._features_of_batch(x), embeddings, y)

    def forward_mixed_features(self, x, first, second, lam):
        """Manifold mixup at the first hidden layer of ``mlp`` (see
        :meth:`ResidualMLP.forward_mixed_features
        <sklearn_dml.backbones.ResidualMLP.forward_mixed_features>`), on the
        pooled features of ``x``."""
        return self.mlp.forward_mixed_features(self.features(x), first, second, lam)
