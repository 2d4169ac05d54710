"""Embedding networks (backbones) for the estimators, in plain torch."""

from torch import nn

__all__ = ["MLP", "L2Normalize"]


class L2Normalize(nn.Module):
    """Scale each row of a batch to unit Euclidean norm.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import L2Normalize
    >>> L2Normalize()(torch.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """

    def __init__(self, eps=1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return nn.functional.normalize(x, p=2.0, dim=1, eps=self.eps)


class MLP(nn.Module):
    """Multi-layer perceptron mapping feature vectors to embeddings.

    ``Linear -> ReLU`` blocks of the given widths, then a linear layer to
    ``n_components``, optionally followed by L2 normalisation.

    Parameters
    ----------
    n_features : int
        Size of the input vectors.

    n_components : int
        Size of the embedding.

    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the hidden layers; ``()`` gives a linear map.

    normalize_embeddings : bool, default=True
        L2-normalise the output.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import MLP
    >>> net = MLP(n_features=8, n_components=3, hidden_layer_sizes=(16,))
    >>> net(torch.zeros(5, 8)).shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes=(256,),
        normalize_embeddings=True,
    ):
        super().__init__()
        layers = []
        width = n_features
        for size in hidden_layer_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_components))
        if normalize_embeddings:
            layers.append(L2Normalize())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
