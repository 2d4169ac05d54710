"""Losses on per-sample distributions (hedged instance embeddings)."""

import math
from numbers import Integral, Real

import torch

from .._param_validation import Interval
from .._params import ParamsMixin
from .._tuples import check_embeddings_labels, convert_to_pairs


def split_moments(embeddings):
    """``(mu, log_variance)`` halves of a ``(batch, 2 * k)`` tensor."""
    if embeddings.shape[1] % 2:
        raise ValueError(
            "HedgedInstanceLoss expects embeddings of shape (batch, 2 * k): the k "
            "means followed by the k log-variances of each sample (the training "
            "output of sklearn_dml.backbones.GaussianHead); got an odd number of "
            f"columns, {embeddings.shape[1]}."
        )
    return embeddings.chunk(2, dim=1)


class HedgedInstanceLoss(ParamsMixin, torch.nn.Module):
    """Soft contrastive loss of Gaussian embeddings with a KL bottleneck (HIB).

    The loss of hedged instance embeddings [1]_: the embedding of a sample is
    a Gaussian random variable; a pair matches with a probability given by a
    learned sigmoid of the distance between samples of the two Gaussians,
    estimated by Monte-Carlo sampling; training maximises the likelihood of
    the same/different labels of the batch's pairs under a variational
    information bottleneck (a KL divergence to the standard normal prior).

    Parameters
    ----------
    n_samples : int, default=8
        Number :math:`K` of samples drawn from each embedding distribution;
        the match probability of a pair averages the :math:`K^2`
        combinations. The paper uses 8.

    beta : float, default=1e-4
        Weight :math:`\\beta` of the KL term (the paper's value).
        :class:`~sklearn_dml.HedgedInstanceEmbedder` defaults to 1e-2, which
        keeps the variances informative (see its ``beta``).

    init_scale : float, default=5.0
        Initial value of the learned scale :math:`a > 0` of the distance
        in the match probability.

    init_bias : float, default=2.5
        Initial value of the learned offset :math:`b` of the match
        probability. With the defaults a pair at distance 0.5 matches with
        probability 1/2 (distances between unit vectors lie in [0, 2]).

    Attributes
    ----------
    log_scale : torch.nn.Parameter of shape ()
        :math:`\\log a` (learned in log space, so :math:`a` stays positive).

    bias : torch.nn.Parameter of shape ()
        :math:`b`.

    See Also
    --------
    sklearn_dml.HedgedInstanceEmbedder : The estimator training with it.
    sklearn_dml.backbones.GaussianHead : A backbone producing its input.
    ContrastiveLoss : The point-embedding pair loss.

    Notes
    -----
    The input holds, for every sample :math:`i` of the batch, the mean
    :math:`\\mu_i` and the log-variances :math:`\\log \\sigma_i^2` (each of
    :math:`k` dimensions), concatenated: ``embeddings[:, :k]`` and
    ``embeddings[:, k:]``. With :math:`\\epsilon_{s,i} \\sim \\mathcal{N}(0,
    I)` drawn independently for every sample :math:`s = 1..K` of every
    instance (``torch.randn(K, batch, k)`` from the global torch generator:
    seed it for reproducible values; the estimators' training engine does),
    the reparameterised samples are :math:`z_{s,i} = \\mu_i + \\sigma_i
    \\odot \\epsilon_{s,i}` and the match probability of a pair

    .. math::

        p_{ij} = \\frac{1}{K^2} \\sum_{s=1}^K \\sum_{t=1}^K
                 \\mathrm{sigmoid}(-a \\lVert z_{s,i} - z_{t,j} \\rVert_2 + b).

    With :math:`P` the positive (same-class) and :math:`N` the negative
    pairs (all ordered pairs :math:`i \\ne j` of the batch, or those of
    ``indices_tuple``), and the KL divergence of a diagonal Gaussian to the
    standard normal,

    .. math::

        L = -\\frac{1}{|P|} \\sum_{(i,j) \\in P} \\log p_{ij}
            - \\frac{1}{|N|} \\sum_{(i,j) \\in N} \\log (1 - p_{ij})
            + \\frac{\\beta}{n} \\sum_{i=1}^n \\frac{1}{2} \\sum_{d=1}^k
              (\\sigma_{id}^2 + \\mu_{id}^2 - 1 - \\log \\sigma_{id}^2).

    :math:`1 - p_{ij}` is computed as the mean of
    :math:`\\mathrm{sigmoid}(a \\lVert z_{s,i} - z_{t,j} \\rVert - b)` (accurate
    when :math:`p_{ij}` is near 1); a part without pairs contributes 0.
    Cost: :math:`(K n)^2` distances per batch of :math:`n`, i.e.
    :math:`K^2 = 64` times a point-embedding pair loss at the default.

    Differences from the paper: the two likelihood terms are averaged
    separately (a batch of :math:`m` samples per class holds far more
    negative than positive pairs; the paper trains on balanced pairs), and
    the KL term is averaged over the samples of the batch, each counted once
    (the paper adds the KL of both members of every pair, i.e. twice
    :math:`\\beta` per sample on balanced pairs).

    References
    ----------
    .. [1] Oh, S. J., Murphy, K., Pan, J., Roth, J., Schroff, F. and
       Gallagher, A. "Modeling Uncertainty with Hedged Instance Embedding",
       ICLR 2019.
    .. [2] Alemi, A. A., Fischer, I., Dillon, J. V. and Murphy, K. "Deep
       Variational Information Bottleneck", ICLR 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import HedgedInstanceLoss
    >>> mu = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> log_var = torch.full((3, 2), -4.0)
    >>> labels = torch.tensor([0, 0, 1])
    >>> _ = torch.manual_seed(0)
    >>> loss = HedgedInstanceLoss()(torch.cat([mu, log_var], dim=1), labels)
    >>> loss.shape
    torch.Size([])
    >>> bool(loss > 0)
    True
    """

    _parameter_constraints = {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "init_scale": [Interval(Real, 0, None, closed="neither")],
        "init_bias": [Interval(Real, None, None, closed="neither")],
    }

    def __init__(self, n_samples=8, beta=1e-4, init_scale=5.0, init_bias=2.5):
        super().__init__()
        self.n_samples = n_samples
        self.beta = beta
        self.init_scale = init_scale
        self.init_bias = init_bias
        self.log_scale = torch.nn.Parameter(torch.zeros(()))
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def _post_init(self):
        # The learned values start at init_scale and init_bias once these
        # are known to be valid.
        self._reset()

    def _reset(self):
        with torch.no_grad():
            self.log_scale.fill_(math.log(self.init_scale))
            self.bias.fill_(float(self.init_bias))

    @property
    def scale(self):
        """The current scale :math:`a = \\exp(\\text{log\\_scale})` (a float)."""
        return float(self.log_scale.detach().exp())

    def configure(self, num_classes=None, embedding_size=None):
        """Reset :math:`a` and :math:`b` to their initial values.

        The learned parameters do not depend on the classes or the embedding
        size; estimators call this once before training.

        Parameters
        ----------
        num_classes : int, default=None
            Ignored.
        embedding_size : int, default=None
            Ignored.

        Returns
        -------
        self : HedgedInstanceLoss
            This loss.
        """
        self._validate_params()
        self._reset()
        return self

    def forward(self, embeddings, labels, indices_tuple=None):
        """Loss of one batch of Gaussian embeddings.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, 2 * k)
            Means then log-variances of every sample's embedding.
        labels : torch.Tensor of shape (batch_size,)
            Class index (``torch.long``) of every sample.
        indices_tuple : tuple of torch.Tensor, default=None
            Restrict the likelihood to these pairs ``(a1, p, a2, n)`` or the
            pairs of these triplets ``(a, p, n)``; ``None`` uses every
            ordered pair of distinct samples.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The loss, differentiable with respect to ``embeddings``,
            ``log_scale`` and ``bias``.
        """
        check_embeddings_labels(embeddings, labels)
        mu, log_var = split_moments(embeddings)
        noise = torch.randn(
            (self.n_samples,) + tuple(mu.shape), dtype=mu.dtype, device=mu.device
        )
        return self.loss_from_noise(mu, log_var, labels, noise, indices_tuple)

    def log_match_probabilities(self, mu, log_var, noise):
        """``(log p, log (1 - p))`` of every pair of the batch, by sampling.

        Parameters
        ----------
        mu, log_var : torch.Tensor of shape (batch_size, k)
            Means and log-variances.
        noise : torch.Tensor of shape (n_samples, batch_size, k)
            Standard normal draws :math:`\\epsilon`.

        Returns
        -------
        log_p, log_not_p : torch.Tensor of shape (batch_size, batch_size)
        """
        n_draws, n, k = noise.shape
        z = (mu + torch.exp(0.5 * log_var) * noise).reshape(n_draws * n, k)
        sq = (z * z).sum(dim=1)
        # Squared distances by expansion (an n K x n K matrix, not n^2 K^2 k
        # differences); the clamp keeps sqrt differentiable at zero.
        d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
        dist = torch.sqrt(torch.clamp(d2, min=1e-12)).reshape(n_draws, n, n_draws, n)
        logits = self.bias - self.log_scale.exp() * dist
        # Means of sigmoids (sigmoid(-x) for 1 - p: accurate near p = 1); the
        # floor only guards the logarithm against underflow.
        tiny = torch.finfo(logits.dtype).tiny
        log_p = torch.sigmoid(logits).mean(dim=(0, 2)).clamp_min(tiny).log()
        log_not_p = torch.sigmoid(-logits).mean(dim=(0, 2)).clamp_min(tiny).log()
        return log_p, log_not_p

    def loss_from_noise(self, mu, log_var, labels, noise, indices_tuple=None):
        """The loss with given standard normal draws (what ``forward`` samples).

        Parameters
        ----------
        mu, log_var : torch.Tensor of shape (batch_size, k)
            Means and log-variances.
        labels : torch.Tensor of shape (batch_size,)
            Class indices.
        noise : torch.Tensor of shape (n_samples, batch_size, k)
            Standard normal draws :math:`\\epsilon`.
        indices_tuple : tuple of torch.Tensor, default=None
            Pairs or triplets, as in :meth:`forward`.

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        log_p, log_not_p = self.log_match_probabilities(mu, log_var, noise)
        if indices_tuple is None:
            pos = labels[:, None] == labels[None, :]
            neg = ~pos
            pos = pos.clone()
            pos.fill_diagonal_(False)
            pos_terms, neg_terms = -log_p[pos], -log_not_p[neg]
        else:
            a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
            pos_terms, neg_terms = -log_p[a1, p], -log_not_p[a2, n]
        zero = mu.sum() * 0.0
        loss = zero
        if pos_terms.numel():
            loss = loss + pos_terms.mean()
        if neg_terms.numel():
            loss = loss + neg_terms.mean()
        kl = 0.5 * (log_var.exp() + mu * mu - 1.0 - log_var).sum(dim=1).mean()
        return loss + self.beta * kl
