"""A backbone head returning a Gaussian per sample (means and variances)."""

import torch
from torch import nn

from ._mlp import MLP, L2Normalize, ResidualMLP


class GaussianHead(nn.Module):
    """Gaussian (hedged) embeddings: a mean network and a log-variance network.

    Embeds a sample as the Gaussian :math:`\\mathcal{N}(\\mu(x),
    \\mathrm{diag}\\, \\sigma^2(x))` of hedged instance embeddings. In
    evaluation mode ``forward`` returns the means only (a point embedding,
    what ``transform`` gives); in training mode it returns the concatenation
    ``[mu, log_variance]`` of shape ``(batch, 2 * k)`` that
    :class:`~sklearn_dml.losses.HedgedInstanceLoss` expects. :meth:`moments`
    returns both in any mode.

    Parameters
    ----------
    mean : torch.nn.Module
        Maps ``(batch, n_features)`` inputs to ``(batch, k)`` means.

    log_variance : torch.nn.Module
        Maps the same inputs to ``(batch, k)`` log-variances
        :math:`\\log \\sigma^2`.

    normalize_embeddings : bool, default=True
        L2-normalise the means (the variances are left as they are: the
        Gaussian is centred on the unit sphere).

    Notes
    -----
    The two networks see the same input; a module ``mean`` with an
    ``initialize(X)`` method (such as :class:`ResidualMLP` with
    ``init="pca"``) is initialised by :meth:`initialize`.
    :meth:`from_sizes` builds the default pair: a :class:`ResidualMLP` for
    the means and an :class:`MLP` for the log-variances whose last layer
    starts at zero weights and a constant bias, so that every sample starts
    with the same variance.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import GaussianHead
    >>> net = GaussianHead.from_sizes(8, 3, hidden_layer_sizes=(16,))
    >>> net(torch.randn(5, 8)).shape  # training mode: means and log-variances
    torch.Size([5, 6])
    >>> with torch.no_grad():
    ...     mu, log_var = net.moments(torch.randn(5, 8))
    >>> mu.shape, float(log_var[0, 0])
    (torch.Size([5, 3]), -7.0)
    """

    def __init__(self, mean, log_variance, normalize_embeddings=True):
        super().__init__()
        self.mean = mean
        self.log_variance = log_variance
        self.normalize = L2Normalize() if normalize_embeddings else nn.Identity()

    @classmethod
    def from_sizes(
        cls,
        n_features,
        n_components,
        hidden_layer_sizes=(256,),
        init="pca",
        normalize_embeddings=True,
        init_log_variance=-7.0,
    ):
        """The default Gaussian embedding network.

        Parameters
        ----------
        n_features : int
            Size of the input vectors.
        n_components : int
            Size of the embedding (of the means and of the variances).
        hidden_layer_sizes : tuple of int, default=(256,)
            Hidden widths of both networks.
        init : {"pca", "identity", "random"}, default="pca"
            Start of the skip path of the mean network (:class:`ResidualMLP`).
        normalize_embeddings : bool, default=True
            L2-normalise the means.
        init_log_variance : float, default=-7.0
            Log-variance of every dimension of every sample at the start.

        Returns
        -------
        net : GaussianHead
        """
        mean = ResidualMLP(
            n_features,
            n_components,
            tuple(hidden_layer_sizes),
            init=init,
            normalize_embeddings=False,
        )
        log_variance = constant_start_mlp(
            n_features, n_components, hidden_layer_sizes, init_log_variance
        )
        return cls(mean, log_variance, normalize_embeddings=normalize_embeddings)

    def initialize(self, X):
        """Initialise the mean network on the training data, if it can be.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training features.

        Returns
        -------
        self : GaussianHead
        """
        initialize = getattr(self.mean, "initialize", None)
        if callable(initialize):
            initialize(X)
        return self

    def moments(self, x):
        """Means and log-variances of the embeddings of ``x``.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_features)

        Returns
        -------
        mu, log_variance : torch.Tensor of shape (batch, k)
        """
        mu = self.normalize(self.mean(x))
        log_var = self.log_variance(x)
        if log_var.shape != mu.shape:
            raise ValueError(
                f"The log-variance network returned shape {tuple(log_var.shape)} "
                f"but the mean network {tuple(mu.shape)}; they must agree."
            )
        return mu, log_var

    def forward(self, x):
        if not self.training:
            return self.normalize(self.mean(x))
        return torch.cat(self.moments(x), dim=1)


def constant_start_mlp(n_features, n_out, hidden_layer_sizes, value):
    """An :class:`MLP` whose output is ``value`` everywhere at the start.

    Its last layer starts at zero weights and a constant bias (the
    log-variance network of :meth:`GaussianHead.from_sizes`).
    """
    net = MLP(n_features, n_out, tuple(hidden_layer_sizes), normalize_embeddings=False)
    last = net.layers[-1]
    nn.init.zeros_(last.weight)
    nn.init.constant_(last.bias, float(value))
    return net


class LogVarianceOf(nn.Module):
    """The log-variance output of a :class:`GaussianHead` as a module.

    Lets the engine's batched inference compute log-variances. The view
    shares the head's weights and starts in the head's mode, so running it
    leaves the head's mode as it was.
    """

    def __init__(self, head):
        super().__init__()
        self.head = head
        self.training = head.training

    def forward(self, x):
        return self.head.moments(x)[1]
