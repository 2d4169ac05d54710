"""Embedders trained with list-wise ranking and distribution losses (FastAP,
Histogram).
"""

from numbers import Integral

from .._docstrings import fill_doc
from .._param_validation import Interval
from ..losses import (
    FastAPLoss,
    HistogramLoss,
)
from ._method import MINER_CONSTRAINT, MethodEmbedder


@fill_doc
class FastAPEmbedder(MethodEmbedder):
    r"""Deep metric learning with FastAP, a differentiable average precision.

    Optimises the average precision of each query's ranking, with distance
    histograms made differentiable by soft binning.

    Parameters
    ----------
    num_bins : int, default=17
        Number of distance bins of the histograms. Default: tuned value of
        Musgrave et al. (2020), the median of the optimal values on CUB200 /
        Cars196 / SOP (17, 27, 16); the paper [1]_ and pytorch-metric-learning
        use 10.

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    HistogramEmbedder : Another histogram-based loss.
    sklearn_dml.losses.FastAPLoss : The loss component.

    Notes
    -----
    With soft counts :math:`h_j^+` of positives in distance bin :math:`j`,
    :math:`H_j^+` and :math:`H_j` the cumulative counts of positives and of all
    samples up to bin :math:`j`, and :math:`N^+` the number of positives of
    the query,

    .. math::

        \mathrm{FastAP} = \frac{1}{N^+} \sum_j \frac{h_j^+ H_j^+}{H_j},
        \qquad L = 1 - \overline{\mathrm{FastAP}}.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Cakir, F., He, K., Xia, X., Kulis, B. and Sclaroff, S. "Deep Metric
       Learning to Rank", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import FastAPEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = FastAPEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = FastAPLoss
    _loss_params = ("num_bins",)
    _parameter_constraints = {
        "num_bins": [Interval(Integral, 1, None, closed="left")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "num_bins": 17,
        "miner": None,
    }


@fill_doc
class HistogramEmbedder(MethodEmbedder):
    r"""Deep metric learning with the histogram loss.

    Estimates the distributions of positive and negative similarities with
    soft histograms and minimises the probability that a negative pair is more
    similar than a positive one.

    Parameters
    ----------
    n_bins : int, default=100
        Number of histogram bins on [-1, 1].

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    FastAPEmbedder : A histogram-based ranking loss.
    sklearn_dml.losses.HistogramLoss : The loss component.

    Notes
    -----
    With :math:`p^-_r` the histogram of negative similarities and
    :math:`\Phi^+_r` the cumulative histogram of positive similarities,

    .. math::

        L = \sum_{r} p^-_r\, \Phi^+_r.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Ustinova, E. and Lempitsky, V. "Learning Deep Embeddings with
       Histogram Loss", NIPS 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import HistogramEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = HistogramEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = HistogramLoss
    _loss_params = ("n_bins",)
    _parameter_constraints = {
        "n_bins": [Interval(Integral, 1, None, closed="left")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "n_bins": 100,
        "miner": None,
    }
