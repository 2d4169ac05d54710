"""Convolutional backbones for image arrays and sequences.

:class:`ImageConvNet` embeds images ``(batch, C, H, W)`` (or ``(batch, H,
W)``, one channel); :class:`SequenceConvNet` embeds sequences ``(batch, T,
d)`` of ``T`` steps with ``d`` features each. Both are a ``body`` of
convolution, batch-normalisation and ReLU blocks, a global average pooling
and a linear ``head`` to the embedding, L2-normalised like the default
:class:`~sklearn_dml.backbones.ResidualMLP`; the ``body`` / ``head`` split
names the parameter groups of ``backbone_learning_rates``. The estimators
build them when ``backbone=None`` and the input has more than two dimensions.
"""

import copy

import torch
from torch import nn

from ._mlp import L2Normalize

__all__ = ["ImageConvNet", "SequenceConvNet"]


def _check_widths(widths, kernel_size):
    widths = tuple(int(w) for w in widths)
    if not widths or min(widths) < 1:
        raise ValueError(
            f"widths must be a non-empty tuple of positive ints, got {widths!r}."
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd int, got {kernel_size!r}."
        )
    return widths


class _ConvEmbedding(nn.Module):
    """Shared parts: the head, the normalisation and the anchoring penalty."""

    def _finish(self, width, n_components, normalize_embeddings, anchor_weight):
        if not anchor_weight >= 0.0:
            raise ValueError(f"anchor_weight must be >= 0, got {anchor_weight!r}.")
        self.head = nn.Linear(width, n_components)
        self.normalize = L2Normalize() if normalize_embeddings else nn.Identity()
        self.anchor_weight = float(anchor_weight)
        self.start = None
        if self.anchor_weight > 0:
            # A frozen copy of the starting network, for the anchoring penalty.
            self.start = nn.ModuleDict(
                {"body": copy.deepcopy(self.body), "head": copy.deepcopy(self.head)}
            )
            self.start.requires_grad_(False)

    def _embed(self, body, head, x):
        h = body(self._as_channels_first(x))
        return head(h.flatten(2).mean(dim=2))

    def forward(self, x):
        return self.normalize(self._embed(self.body, self.head, x))

    def training_penalty(self, x, embeddings, y=None):
        """Anchoring term: the batch's cosine similarities against the start's.

        ``anchor_weight`` times the mean squared difference, over the ordered
        pairs of distinct rows, between the cosine similarities of
        ``embeddings`` and those of the network as it was built (a frozen
        copy); ``None`` when ``anchor_weight`` is 0 or the batch has fewer
        than 2 rows. The same relational anchor as
        :meth:`ResidualMLP.training_penalty
        <sklearn_dml.backbones.ResidualMLP.training_penalty>`, with the
        random convolutional start as the reference.
        """
        if self.start is None or x.shape[0] < 2:
            return None
        with torch.no_grad():
            ref = self._embed(self.start["body"], self.start["head"], x)
        ref = nn.functional.normalize(ref, dim=1)
        current = nn.functional.normalize(embeddings, dim=1)
        diff = current @ current.T - ref @ ref.T
        n = x.shape[0]
        return self.anchor_weight * diff.pow(2).sum() / (n * (n - 1))


class ImageConvNet(_ConvEmbedding):
    """A small convolutional network embedding images.

    ``len(widths)`` blocks of a 3x3 convolution (zero padding), batch
    normalisation and ReLU, with a 2x2 max pooling between blocks, then the
    mean over the positions (global average pooling) and a linear layer to
    ``n_components``, optionally L2-normalised. The pooling makes the
    embedding invariant to translations of the content by multiples of the
    total stride ``2 ** (len(widths) - 1)`` away from the borders, which a
    multi-layer perceptron on the flattened pixels is not.

    Parameters
    ----------
    in_channels : int
        Number of channels ``C`` of the images ``(batch, C, H, W)``; a batch
        ``(batch, H, W)`` is read as one channel.

    n_components : int
        Size of the embedding.

    widths : tuple of int, default=(32, 64, 128)
        Output channels of the convolution blocks.

    normalize_embeddings : bool, default=True
        L2-normalise the output.

    anchor_weight : float, default=0.0
        Weight of :meth:`training_penalty`, the relational anchor to the
        network as built; ``0`` disables it (the default: on the benchmarks
        of :ref:`deep_inputs` it did not help unseen classes).

    Attributes
    ----------
    body : torch.nn.Sequential
        The convolution blocks.

    head : torch.nn.Linear
        The linear map from the pooled features to the embedding.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import ImageConvNet
    >>> net = ImageConvNet(in_channels=1, n_components=8, widths=(4, 8))
    >>> net(torch.zeros(5, 1, 12, 12)).shape
    torch.Size([5, 8])
    >>> net.eval()(torch.zeros(5, 12, 12)).shape  # (batch, H, W): one channel
    torch.Size([5, 8])
    """

    def __init__(
        self,
        in_channels,
        n_components,
        widths=(32, 64, 128),
        normalize_embeddings=True,
        anchor_weight=0.0,
    ):
        super().__init__()
        widths = _check_widths(widths, 3)
        layers, width = [], int(in_channels)
        for i, size in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            layers += [
                nn.Conv2d(width, size, 3, padding=1, bias=False),
                nn.BatchNorm2d(size),
                nn.ReLU(),
            ]
            width = size
        self.in_channels = int(in_channels)
        self.body = nn.Sequential(*layers)
        self._finish(width, n_components, normalize_embeddings, anchor_weight)

    def _as_channels_first(self, x):
        return x.unsqueeze(1) if x.ndim == 3 else x


class SequenceConvNet(_ConvEmbedding):
    """A 1-D convolutional network embedding sequences ``(batch, T, d)``.

    ``len(widths)`` blocks of a convolution over time (``kernel_size`` steps,
    zero padding), batch normalisation and ReLU, with a max pooling by 2
    between blocks, then the mean over time and a linear layer to
    ``n_components``, optionally L2-normalised. Sequences of any length
    embed; the mean over time makes the embedding insensitive to where
    along the sequence a pattern occurs.

    Parameters
    ----------
    n_channels : int
        Number of features ``d`` of each step.

    n_components : int
        Size of the embedding.

    widths : tuple of int, default=(32, 64, 64)
        Output channels of the convolution blocks.

    kernel_size : int, default=5
        Odd length of the convolution kernels, in steps.

    normalize_embeddings : bool, default=True
        L2-normalise the output.

    anchor_weight : float, default=0.0
        Weight of :meth:`training_penalty`, the relational anchor to the
        network as built; ``0`` disables it.

    Attributes
    ----------
    body : torch.nn.Sequential
        The convolution blocks (on ``(batch, d, T)``).

    head : torch.nn.Linear
        The linear map from the pooled features to the embedding.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import SequenceConvNet
    >>> net = SequenceConvNet(n_channels=3, n_components=4, widths=(8,))
    >>> net(torch.zeros(2, 50, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        n_channels,
        n_components,
        widths=(32, 64, 64),
        kernel_size=5,
        normalize_embeddings=True,
        anchor_weight=0.0,
    ):
        super().__init__()
        widths = _check_widths(widths, kernel_size)
        layers, width = [], int(n_channels)
        for i, size in enumerate(widths):
            if i:
                layers.append(nn.MaxPool1d(2, ceil_mode=True))
            layers += [
                nn.Conv1d(
                    width, size, kernel_size, padding=kernel_size // 2, bias=False
                ),
                nn.BatchNorm1d(size),
                nn.ReLU(),
            ]
            width = size
        self.n_channels = int(n_channels)
        self.body = nn.Sequential(*layers)
        self._finish(width, n_components, normalize_embeddings, anchor_weight)

    def _as_channels_first(self, x):
        if x.ndim != 3:
            raise ValueError(
                f"SequenceConvNet expects a batch of shape (batch, T, d), got {tuple(x.shape)}."
            )
        return x.transpose(1, 2)
