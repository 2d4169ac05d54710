"""Embedders with a distribution per sample (hedged instance embeddings)."""

import copy
from numbers import Integral, Real

import numpy as np
from scipy.special import expit
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._docstrings import fill_doc
from .._param_validation import Interval, validate_params
from ..backbones._gaussian import GaussianHead, LogVarianceOf, constant_start_mlp
from ..base import SHARED_PARAMETERS
from ..losses import HedgedInstanceLoss
from ..training import engine
from ._method import LOSS_LEARNING_RATE_CONSTRAINT, MethodEmbedder

# (sample, sample, pair, dimension) cells per chunk of the Monte-Carlo match
# probabilities at inference.
_MATCH_CHUNK_CELLS = 2**22


_UNSUPPORTED_REASONS = {
    "nested_dims": (
        "the hedged loss samples whole Gaussian embeddings (means and "
        "variances together), not prefixes of a point embedding"
    ),
    "mixup": (
        "mixup interpolates labels, while the match likelihood of the hedged "
        "loss needs each pair to be either same-class or different-class"
    ),
    "energy_confusion": (
        "the regulariser acts on point embeddings, and the hedged loss already "
        "regularises through its KL bottleneck (beta)"
    ),
    "procsim": (
        "ProcSim weighs the samples of a point-embedding loss; the per-sample "
        "variances of the hedged embedding already down-weight ambiguous samples"
    ),
    "cross_batch_memory": (
        "the memory keeps point embeddings, while the hedged loss compares "
        "samples drawn from each Gaussian embedding of the batch"
    ),
}


@fill_doc
class HedgedInstanceEmbedder(MethodEmbedder):
    """Hedged instance embedding (HIB): Gaussian embeddings with uncertainty.

    Embeds every sample as a Gaussian random variable
    :math:`\\mathcal{N}(\\mu(x), \\mathrm{diag}\\, \\sigma^2(x))` instead of a
    point, trained with the soft contrastive likelihood of same/different
    pairs (match probabilities estimated by sampling) under a variational
    information bottleneck [1]_. Ambiguous inputs get large variances: the
    model hedges its bets across the embedding space. ``transform`` returns
    the means (a point embedding, usable like any other);
    :meth:`transform_variance` returns the variances, :meth:`uncertainty` the
    paper's per-sample uncertainty and :meth:`match_probability` the
    probability that two samples are of the same class.

    Parameters
    ----------
    n_samples : int, default=8
        Samples :math:`K` drawn from each embedding distribution per training
        step (the match probability of a pair averages :math:`K^2`
        combinations); also the default of :meth:`match_probability` and
        :meth:`uncertainty`. The paper uses 8.

    beta : float, default=1e-2
        Weight of the KL divergence to the standard normal prior. Larger
        values pull the variances towards 1 and the means towards 0. The
        paper uses 1e-4, which with unit-norm means lets the variances
        collapse, so that the uncertainty no longer flags corrupted inputs;
        1e-2 keeps the variances informative at the same retrieval quality
        (measurements in :ref:`hedged_instance_embedding`).

    init_log_variance : float, default=-7.0
        Log-variance of every embedding dimension at the start of training
        (the log-variance network starts constant). With unit-norm means in
        64 dimensions, -7 puts two samples of the same Gaussian about 0.34
        apart.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ContrastiveEmbedder : The point-embedding pair loss it extends.
    sklearn_dml.losses.HedgedInstanceLoss : The loss component.
    sklearn_dml.backbones.GaussianHead : The backbone (means and variances).

    Notes
    -----
    The backbone is a :class:`~sklearn_dml.backbones.GaussianHead`: the mean
    network is the usual backbone (the default PCA-initialised
    :class:`~sklearn_dml.backbones.ResidualMLP`, or a copy of ``backbone``;
    ``normalize_embeddings`` applies to the means) and a second network, an
    MLP with ``hidden_layer_sizes`` from the same input, gives the
    log-variances. With the learned scale :math:`a > 0` and offset :math:`b`
    (``loss_.scale``, ``loss_.bias``), the match probability of two samples
    is

    .. math::

        p(m \\mid x_1, x_2) = \\mathbb{E}_{z_1 \\sim p(z \\mid x_1),\\,
            z_2 \\sim p(z \\mid x_2)}
            \\big[\\mathrm{sigmoid}(-a \\lVert z_1 - z_2 \\rVert_2 + b)\\big]
            \\approx \\frac{1}{K^2} \\sum_{s,t=1}^K
            \\mathrm{sigmoid}(-a \\lVert z_1^{(s)} - z_2^{(t)} \\rVert_2 + b),

    with reparameterised samples :math:`z^{(s)} = \\mu(x) + \\sigma(x)
    \\odot \\epsilon^{(s)}`. Training minimises, per batch,

    .. math::

        L = -\\overline{\\log p(m \\mid x_i, x_j)}_{y_i = y_j}
            - \\overline{\\log (1 - p(m \\mid x_i, x_j))}_{y_i \\ne y_j}
            + \\beta\\, \\overline{\\mathrm{KL}(\\mathcal{N}(\\mu_i,
            \\sigma_i^2) \\,\\|\\, \\mathcal{N}(0, I))},

    each bar an average over the pairs (or samples) of the batch (see
    :class:`~sklearn_dml.losses.HedgedInstanceLoss` for the exact form). The
    uncertainty of a sample is its self-mismatch probability

    .. math::

        \\eta(x) = 1 - p(m \\mid x, x),

    near 0 for a confident (narrow) embedding and growing with its spread.

    The shared training options ``nested_dims``, ``mixup``,
    ``energy_confusion`` and ``procsim`` apply to point embeddings and are
    rejected (left at their defaults they do nothing).

    References
    ----------
    .. [1] Oh, S. J., Murphy, K., Pan, J., Roth, J., Schroff, F. and
       Gallagher, A. "Modeling Uncertainty with Hedged Instance Embedding",
       ICLR 2019.
    .. [2] Alemi, A. A., Fischer, I., Dillon, J. V. and Murphy, K. "Deep
       Variational Information Bottleneck", ICLR 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import HedgedInstanceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200] / 16, y[:200]
    >>> emb = HedgedInstanceEmbedder(n_components=16, max_iter=3,
    ...                              random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.transform_variance(X[:2]).shape
    (2, 16)
    >>> emb.uncertainty(X[:3]).shape
    (3,)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = HedgedInstanceLoss
    _loss_params = ("n_samples", "beta")
    _tabular_only = True
    _parameter_constraints = {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "init_log_variance": [Interval(Real, None, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _method_parameters = {
        "n_samples": 8,
        "beta": 1e-2,
        "init_log_variance": -7.0,
        "loss_learning_rate": 1e-2,
    }

    # -------------------------------------------------------------- training
    def _check_training_options(self):
        for name in self._training_options_in_use():
            raise ValueError(
                f"{type(self).__name__} does not support {name}="
                f"{getattr(self, name)!r}: {_UNSUPPORTED_REASONS[name]}. Leave "
                f"{name}={SHARED_PARAMETERS[name].default!r}."
            )

    def _build_backbone(self, n_features, X=None):
        if self.backbone is None:
            net = GaussianHead.from_sizes(
                n_features,
                self.n_components,
                tuple(self.hidden_layer_sizes),
                normalize_embeddings=self.normalize_embeddings,
                init_log_variance=self.init_log_variance,
            )
        else:
            mean = copy.deepcopy(self.backbone)
            n_out = self._probe_backbone(mean, n_features)
            net = GaussianHead(
                mean,
                constant_start_mlp(
                    n_features,
                    n_out,
                    tuple(self.hidden_layer_sizes),
                    self.init_log_variance,
                ),
                normalize_embeddings=self.normalize_embeddings,
            )
        if X is not None:
            net.initialize(X)
        return net

    # ------------------------------------------------------------- inference
    def _log_variances(self, X):
        """Log-variances of an already validated 2-D array (float32)."""
        check_is_fitted(self, "backbone_")
        return engine.embed(
            LogVarianceOf(self.backbone_), X, engine.inference_device(self.device)
        )

    def transform_variance(self, X):
        """Variances of the Gaussian embeddings of ``X`` (``transform`` gives the means).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to embed.

        Returns
        -------
        variances : ndarray of shape (n_samples, n_components), dtype float32
            :math:`\\sigma^2(x)`, per dimension, all positive. Their mean over
            the dimensions is a closed-form alternative to
            :meth:`uncertainty`.
        """
        check_is_fitted(self, "backbone_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return np.exp(self._log_variances(X))

    def _check_n_samples(self, n_samples):
        n_samples = self.n_samples if n_samples is None else n_samples
        validate_params(
            {"n_samples": [Interval(Integral, 1, None, closed="left")]},
            {"n_samples": n_samples},
            type(self).__name__,
        )
        return int(n_samples)

    def _match_probability(self, X_a, X_b, n_samples, random_state):
        """Monte-Carlo ``p(match | X_a[i], X_b[i])`` of validated aligned rows."""
        n_samples = self._check_n_samples(n_samples)
        rng = check_random_state(random_state)
        mu_a, mu_b = (self._embed(Z).astype(np.float64) for Z in (X_a, X_b))
        sd_a, sd_b = (
            np.exp(0.5 * self._log_variances(Z).astype(np.float64)) for Z in (X_a, X_b)
        )
        scale, bias = self.loss_.scale, float(self.loss_.bias.detach())
        n, k = mu_a.shape
        out = np.empty(n)
        step = max(1, _MATCH_CHUNK_CELLS // (n_samples * n_samples * k))
        for start in range(0, n, step):
            rows = slice(start, start + step)
            m = mu_a[rows].shape[0]
            z_a = mu_a[rows] + sd_a[rows] * rng.standard_normal((n_samples, m, k))
            z_b = mu_b[rows] + sd_b[rows] * rng.standard_normal((n_samples, m, k))
            dist = np.linalg.norm(z_a[:, None] - z_b[None, :], axis=-1)
            out[rows] = expit(-scale * dist + bias).mean(axis=(0, 1))
        return out

    def match_probability(self, pairs, *, n_samples=None, random_state=0):
        """Probability that the two samples of each pair are of the same class.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features_in_)
            Pairs of raw samples, as for :meth:`pair_distance`.
        n_samples : int, default=None
            Samples :math:`K` drawn from each embedding distribution
            (:math:`K^2` combinations per pair); ``None`` uses the
            estimator's ``n_samples``. More samples, less Monte-Carlo noise.
        random_state : int, RandomState instance or None, default=0
            Seeds the draws (a fixed default: the same call gives the same
            values).

        Returns
        -------
        probabilities : ndarray of shape (n_pairs,), dtype float64
            :math:`p(m \\mid x_1, x_2)` in (0, 1) (see Notes of the class).
        """
        pairs = self._check_pairs(pairs)
        return self._match_probability(
            pairs[:, 0], pairs[:, 1], n_samples, random_state
        )

    def uncertainty(self, X, *, n_samples=None, random_state=0):
        """Per-sample uncertainty: the self-mismatch probability ``1 - p(m | x, x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.
        n_samples : int, default=None
            Samples drawn from each embedding distribution (two independent
            sets of them, :math:`K^2` combinations); ``None`` uses the
            estimator's ``n_samples``.
        random_state : int, RandomState instance or None, default=0
            Seeds the draws.

        Returns
        -------
        eta : ndarray of shape (n_samples,), dtype float64
            :math:`\\eta(x) = 1 - p(m \\mid x, x)`: small when the embedding
            is concentrated, larger the more it is spread (ambiguous inputs).
        """
        check_is_fitted(self, "backbone_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return 1.0 - self._match_probability(X, X, n_samples, random_state)
