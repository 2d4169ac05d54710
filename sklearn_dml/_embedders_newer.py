"""Embedders of the newer losses: mean-field losses, the threshold-consistent
margin (TCM) regulariser on any base loss, equiangular basis vectors and the
Proto-Triplet and ICNN losses."""

import numbers

from ._docstrings import fill_doc, register_doc
from ._embedders_common import (
    MethodEmbedder,
    check_component,
    check_param,
    fresh_component,
)
from .losses import (
    CombinedLoss,
    EquiangularBasisLoss,
    ICNNLoss,
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
    MultiSimilarityLoss,
    ProtoTripletLoss,
    PrototypicalLoss,
    TCMRegularizer,
)

__all__ = [
    "EquiangularBasisEmbedder",
    "ICNNEmbedder",
    "MeanFieldClassWiseMultiSimilarityEmbedder",
    "MeanFieldContrastiveEmbedder",
    "ProtoTripletEmbedder",
    "TCMEmbedder",
]

register_doc(
    "mean_field_embedder_note",
    """
    The mean fields (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``, ten times the network's by
    default, the package's choice for every class parameter); they are
    pickled, cloned (unconfigured) and moved to ``device`` with the
    estimator. The classes are then fixed: ``partial_fit`` needs every class
    on its first call (``classes=``), and a warm start on new classes raises
    an error.
    """,
)


@fill_doc
class MeanFieldContrastiveEmbedder(MethodEmbedder):
    r"""Deep metric learning with the mean-field contrastive loss.

    The contrastive loss with every partner of a pair replaced by a
    learnable "mean field" of its class: each sample is pulled towards its
    class's mean field and pushed away from the others', at a cost linear in
    the batch size.

    Parameters
    ----------
    pos_margin : float, default=0.02
        Margin :math:`m_+` on the distance :math:`1 - \cos` to the sample's
        own mean field. Must be below ``neg_margin``.

    neg_margin : float, default=0.3
        Margin :math:`m_-` on the distance to the other mean fields (and
        between mean fields in the regulariser).

    mf_reg : float, default=0.0
        Weight :math:`\lambda_{MF}` of the regulariser keeping mean fields of
        different classes apart (0 leaves it out).

    mf_power : float, default=2
        Power :math:`p` of the regulariser's hinge.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ContrastiveEmbedder : The pair loss it is derived from.
    MeanFieldClassWiseMultiSimilarityEmbedder : The multi-similarity analogue.
    sklearn_dml.losses.MeanFieldContrastiveLoss : The loss component.

    Notes
    -----
    With :math:`d_{ic} = 1 - \cos(x_i, \Psi_c)` the distance of sample
    :math:`i` to mean field :math:`\Psi_c` and :math:`D_{cc'}` the same
    between mean fields,

    .. math::

        L = \frac{1}{n} \sum_i \Big( [d_{iy_i} - m_+]_+
              + \sum_{c \neq y_i} [m_- - d_{ic}]_+ \Big)
          + \frac{\lambda_{MF}}{C} \sum_{c} \sum_{c' \neq c}
              [m_- - D_{cc'}]_+^{p}.

    {mean_field_embedder_note}

    The defaults are those of the paper's code for the contrastive loss
    (:math:`m_+ = 0.02`, :math:`m_- = 0.3`, no regulariser); the shared
    training defaults (Adam, learning rate 1e-3, batches of 128 with 4
    samples per class) are the package's.

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import MeanFieldContrastiveEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = MeanFieldContrastiveEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb = emb.fit(X, y)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = MeanFieldContrastiveLoss
    _loss_params = {
        "pos_margin": ("real", 0, None, "left"),
        "neg_margin": ("real", 0, None, "neither"),
        "mf_reg": ("real", 0, None, "left"),
        "mf_power": ("real", 0, None, "neither"),
    }

    def __init__(
        self,
        pos_margin=0.02,
        neg_margin=0.3,
        mf_reg=0.0,
        mf_power=2,
        loss_learning_rate=1e-2,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin
        self.mf_reg = mf_reg
        self.mf_power = mf_power
        self.loss_learning_rate = loss_learning_rate
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_extra(self):
        if self.pos_margin >= self.neg_margin:
            raise ValueError(
                f"pos_margin ({self.pos_margin!r}) must be smaller than neg_margin "
                f"({self.neg_margin!r}): a sample is pulled within pos_margin of its "
                "own mean field and pushed beyond neg_margin of the others."
            )


@fill_doc
class MeanFieldClassWiseMultiSimilarityEmbedder(MethodEmbedder):
    r"""Deep metric learning with the mean-field class-wise multi-similarity loss.

    The class-wise multi-similarity loss with every class's samples replaced,
    as partners, by a learnable mean field of the class.

    Parameters
    ----------
    alpha : float, default=0.01
        Scale :math:`\alpha > 0` of the positive exponents.

    beta : float, default=80
        Scale :math:`\beta > 0` of the negative exponents.

    base : float, default=0.8
        Similarity offset :math:`\lambda`, in [-1, 1].

    mf_reg : float, default=0.0
        Weight :math:`\lambda_{MF}` of the mean-field regulariser.

    mf_power : float, default=2
        Power :math:`p` of the regulariser.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    MultiSimilarityEmbedder : The pair loss it descends from.
    MeanFieldContrastiveEmbedder : The contrastive analogue.
    sklearn_dml.losses.MeanFieldClassWiseMultiSimilarityLoss : The loss
        component (its Notes give the regulariser).

    Notes
    -----
    With :math:`s_{ic} = \cos(x_i, \Psi_c)`, :math:`B` the classes of the
    batch and :math:`n_c` the number of samples of class :math:`c`,

    .. math::

        P_c = \frac{1}{n_c} \sum_{y_i = c} e^{-\alpha (s_{ic} - \lambda)},
        \qquad
        N_{cc'} = \frac{1}{n_c} \sum_{y_i = c} e^{\beta (s_{ic'} - \lambda)},

    .. math::

        L = \frac{1}{\alpha |B|} \sum_{c \in B} \log(1 + P_c)
          + \frac{1}{\beta |B|} \sum_{\{c, c'\},\, c \neq c'}
              \log(1 + N_{cc'} + N_{c'c}) + \lambda_{MF} R_{MF}.

    {mean_field_embedder_note}

    The defaults are the paper's setting for every benchmark
    (:math:`\alpha = 0.01`, :math:`\beta = 80`, :math:`\lambda = 0.8`, no
    regulariser); the shared training defaults are the package's.

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import MeanFieldClassWiseMultiSimilarityEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = MeanFieldClassWiseMultiSimilarityEmbedder(
    ...     n_components=16, max_iter=5, random_state=0
    ... ).fit(X, y)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = MeanFieldClassWiseMultiSimilarityLoss
    _loss_params = {
        "alpha": ("real", 0, None, "neither"),
        "beta": ("real", 0, None, "neither"),
        "base": ("real", -1, 1, "both"),
        "mf_reg": ("real", 0, None, "left"),
        "mf_power": ("real", 0, None, "neither"),
    }

    def __init__(
        self,
        alpha=0.01,
        beta=80,
        base=0.8,
        mf_reg=0.0,
        mf_power=2,
        loss_learning_rate=1e-2,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.alpha = alpha
        self.beta = beta
        self.base = base
        self.mf_reg = mf_reg
        self.mf_power = mf_power
        self.loss_learning_rate = loss_learning_rate
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state


@fill_doc
class TCMEmbedder(MethodEmbedder):
    r"""Deep metric learning with any base loss plus the TCM regulariser.

    Trains with ``base_loss`` plus the threshold-consistent margin (TCM)
    term, which penalises positive pairs of low and negative pairs of high
    cosine similarity, so that one distance threshold separates same from
    different classes about equally well for every class (lower
    :func:`~sklearn_dml.metrics.opis_loss`).

    Parameters
    ----------
    base_loss : torch.nn.Module or None, default=None
        The loss the TCM term is added to, any loss of
        :mod:`sklearn_dml.losses` (or your own with the same signature);
        ``fit`` trains a clone. ``None`` uses
        :class:`~sklearn_dml.losses.MultiSimilarityLoss` with its defaults.
        A loss with class parameters (proxies) works too: they are created
        and trained as in its own embedder.

    margin_plus : float, default=0.9
        Cosine margin :math:`m_+`: positive pairs with a cosine at or below
        it are penalised. In [-1, 1].

    margin_minus : float, default=0.5
        Cosine margin :math:`m_-`: negative pairs with a cosine at or above
        it are penalised. In [-1, 1].

    lambda_plus : float, default=1.0
        Weight :math:`\lambda_+ \ge 0` of the positive part.

    lambda_minus : float, default=1.0
        Weight :math:`\lambda_- \ge 0` of the negative part. ``lambda_plus``
        and ``lambda_minus`` cannot both be 0.

    {miner_param}
        The mined pairs or triplets go to both the base loss and the TCM
        term.

    {loss_learning_rate_none}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    sklearn_dml.losses.TCMRegularizer : The regulariser alone.
    sklearn_dml.metrics.opis_loss : The threshold inconsistency TCM reduces.

    Notes
    -----
    With :math:`L_{base}` the base loss, :math:`S_{ij}` the cosine
    similarity and :math:`P` (:math:`N`) the positive (negative) pairs of the
    batch,

    .. math::

        L = L_{base}
          + \lambda_+ \frac{\sum_{P} (m_+ - S_{ij})\, \mathbb{1}[S_{ij} \le m_+]}
                          {\sum_{P} \mathbb{1}[S_{ij} \le m_+]}
          + \lambda_- \frac{\sum_{N} (S_{ij} - m_-)\, \mathbb{1}[S_{ij} \ge m_-]}
                          {\sum_{N} \mathbb{1}[S_{ij} \ge m_-]}.

    This is the one obvious way to add TCM to a loss; it trains exactly
    ``DeepMetricEmbedder(loss=CombinedLoss([base_loss,
    TCMRegularizer(margin_plus, margin_minus, lambda_plus, lambda_minus)]))``
    (``loss_`` is that combination), but checks the TCM parameters before
    training and exposes them to ``GridSearchCV``. The margins and weights
    are those of :class:`~sklearn_dml.losses.TCMRegularizer`
    (:math:`m_+ = 0.9`, :math:`m_- = 0.5`, :math:`\lambda_\pm = 1`); the
    default base loss is the package's choice (the paper adds TCM to
    several losses).

    References
    ----------
    .. [1] Zhang, Q., Xu, L., Tang, Q., Fang, J., Wu, Y. N., Tighe, J. and
       Xing, Y. "Threshold-Consistent Margin Loss for Open-World Deep Metric
       Learning", ICLR 2024, arXiv:2307.04047.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import TCMEmbedder
    >>> from sklearn_dml.losses import ContrastiveLoss
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = TCMEmbedder(base_loss=ContrastiveLoss(), n_components=16,
    ...                   max_iter=5, random_state=0).fit(X, y)
    >>> [type(part).__name__ for part in emb.loss_.parts]
    ['ContrastiveLoss', 'TCMRegularizer']
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = TCMRegularizer
    _loss_params = {
        "margin_plus": ("real", -1, 1, "both"),
        "margin_minus": ("real", -1, 1, "both"),
        "lambda_plus": ("real", 0, None, "left"),
        "lambda_minus": ("real", 0, None, "left"),
    }

    def __init__(
        self,
        base_loss=None,
        margin_plus=0.9,
        margin_minus=0.5,
        lambda_plus=1.0,
        lambda_minus=1.0,
        miner=None,
        loss_learning_rate=None,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.base_loss = base_loss
        self.margin_plus = margin_plus
        self.margin_minus = margin_minus
        self.lambda_plus = lambda_plus
        self.lambda_minus = lambda_minus
        self.miner = miner
        self.loss_learning_rate = loss_learning_rate
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_extra(self):
        super()._check_extra()
        check_component(self.base_loss, "base_loss", "losses")
        if isinstance(self.base_loss, TCMRegularizer):
            raise ValueError(
                "base_loss is a TCMRegularizer, which TCMEmbedder adds itself; "
                "pass the loss to regularise, e.g. MultiSimilarityLoss()."
            )
        if self.lambda_plus == 0 and self.lambda_minus == 0:
            raise ValueError(
                "lambda_plus and lambda_minus are both 0, so the TCM term vanishes; "
                "give one a positive weight, or train the base loss alone with "
                "DeepMetricEmbedder(loss=base_loss)."
            )

    def _build_loss(self, n_classes, n_components):
        base = (
            MultiSimilarityLoss()
            if self.base_loss is None
            else fresh_component(self.base_loss)
        )
        tcm = TCMRegularizer(**{n: getattr(self, n) for n in self._loss_params})
        return CombinedLoss([base, tcm], weights=[1.0, 1.0]), self._build_miner()


@fill_doc
class EquiangularBasisEmbedder(MethodEmbedder):
    r"""Deep metric learning with equiangular basis vectors (EBV).

    A softmax over the scaled cosines between an embedding and one fixed
    unit vector per class, the class vectors being generated once to be as
    close to orthogonal as the dimension allows. Nothing per class is
    learned, so the trained parameters do not grow with the classes.

    Parameters
    ----------
    temperature : float, default=0.07
        Temperature :math:`\tau > 0` dividing the cosines.

    max_cosine : float, default=0.05
        Target :math:`\alpha` of the generation: the largest allowed
        :math:`|\cos|` between two class vectors, in [0, 1). Below what
        ``n_components`` allows (the Welch bound when there are more classes
        than dimensions) the generation returns the best it found, which
        can be far above the bound: keep ``n_components`` at least the
        number of classes (10 classes in 8 dimensions reach 0.75, the
        bound being 0.17), and check ``loss_.max_cosine_reached_``.

    basis_max_iter : int, default=1000
        Maximum number of gradient steps of the generation.

    basis_learning_rate : float, default=0.01
        Step size of the generation.

    basis_random_state : int or None, default=0
        Seed of the class vectors; ``None`` draws from the global torch
        random state (not reproducible).

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    NormalizedSoftmaxEmbedder : The same softmax with learned class vectors.
    sklearn_dml.losses.EquiangularBasisLoss : The loss component.

    Notes
    -----
    With class vectors :math:`W_c` (unit norm, pairwise
    :math:`|\cos| \le \alpha` where possible, ``loss_.basis_vectors``),

    .. math::

        L = -\frac{1}{n} \sum_{i} \log
            \frac{e^{\cos(x_i, W_{y_i}) / \tau}}{\sum_{c} e^{\cos(x_i, W_c) / \tau}}.

    The vectors are generated at the first fit for the classes of ``y``
    (``loss_.max_cosine_reached_`` reports the largest :math:`|\cos|`
    reached); the classes are then fixed: ``partial_fit`` needs every class
    on its first call (``classes=``), and a warm start on new classes raises
    an error. The temperature is the paper's 0.07; the paper generates with
    :math:`\alpha = 0.002` in as many dimensions as classes, which small
    embeddings cannot reach, hence the looser default 0.05.

    References
    ----------
    .. [1] Shen, Y., Sun, X. and Wei, X.-S. "Equiangular Basis Vectors", CVPR
       2023.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import EquiangularBasisEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = EquiangularBasisEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb = emb.fit(X, y)
    >>> tuple(emb.loss_.basis_vectors.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = EquiangularBasisLoss
    _loss_params = {
        "temperature": ("real", 0, None, "neither"),
        "max_cosine": ("real", 0, 1, "left"),
        "basis_max_iter": ("int", 0),
        "basis_learning_rate": ("real", 0, None, "neither"),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        temperature=0.07,
        max_cosine=0.05,
        basis_max_iter=1000,
        basis_learning_rate=0.01,
        basis_random_state=0,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.temperature = temperature
        self.max_cosine = max_cosine
        self.basis_max_iter = basis_max_iter
        self.basis_learning_rate = basis_learning_rate
        self.basis_random_state = basis_random_state
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_extra(self):
        seed = self.basis_random_state
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
        ):
            raise TypeError(f"basis_random_state must be an int or None; got {seed!r}.")

    def _build_loss(self, n_classes, n_components):
        loss = EquiangularBasisLoss(
            temperature=self.temperature,
            max_cosine=self.max_cosine,
            max_iter=self.basis_max_iter,
            learning_rate=self.basis_learning_rate,
            random_state=self.basis_random_state,
        )
        return loss, None

    def _fixed_classes(self):
        # One fixed vector per class (a buffer, not a parameter).
        return getattr(self, "loss_", None) is not None


@fill_doc
class ProtoTripletEmbedder(MethodEmbedder):
    r"""Deep metric learning with the Proto-Triplet loss.

    A triplet loss whose positive is the prototype (mean embedding) of the
    anchor's class and whose negatives are the prototypes of the other
    classes of the batch, as in prototypical few-shot learning.

    Parameters
    ----------
    margin : float, default=0.05
        Required gap :math:`m \ge 0` between the distance to a negative
        prototype and to the positive one.

    {miner_param}
        Only the anchors of the mined tuples are used; the prototypes use
        the whole batch.

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    TripletEmbedder : Triplets of samples.
    ICNNEmbedder : The other loss of the same paper.
    sklearn_dml.losses.ProtoTripletLoss : The loss component.

    Notes
    -----
    With :math:`\mu_c` the mean embedding of class :math:`c` in the batch,
    :math:`\mu_i^+` that of the other samples of :math:`i`'s class and
    :math:`T` the (anchor, other class) pairs,

    .. math::

        L = \frac{1}{|T|} \sum_{(i, c) \in T}
            [d(x_i, \mu_i^+) - d(x_i, \mu_c) + m]_+.

    :math:`d` is the Euclidean distance of L2-normalised embeddings. The
    paper's margin was not at hand: the default is that of
    :class:`TripletEmbedder`, so the two compare at equal margin. The
    component's Notes list the other choices.

    References
    ----------
    .. [1] Mendez-Ruiz, M. et al. "SuSana Distancia is all you need:
       Enforcing class separability in metric learning via two novel
       distance-based loss functions for few-shot image classification",
       2023, arXiv:2305.09062.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ProtoTripletEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ProtoTripletEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb.fit(X, y).transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = ProtoTripletLoss
    _loss_params = {"margin": ("real", 0, None, "left")}

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        margin=0.05,
        miner=None,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.margin = margin
        self.miner = miner
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state


@fill_doc
class ICNNEmbedder(MethodEmbedder):
    r"""Deep metric learning with the ICNN loss (and the prototypical loss).

    Minimises minus the log of the inter- and intra-class nearest
    neighbours (ICNN) score of each batch (neighbourhoods of one class,
    same-class neighbours close and other-class neighbours far) plus, as the
    paper trains it, the cross-entropy of a prototypical network.

    Parameters
    ----------
    n_neighbors : int, default=4
        Number :math:`k \ge 1` of nearest neighbours scored per sample (the
        authors' default); at most ``batch_size - 1`` are used.

    prototypical_weight : float, default=1.0
        Weight :math:`w \ge 0` of the prototypical cross-entropy
        (:class:`~sklearn_dml.losses.PrototypicalLoss`) added to the ICNN
        loss. ``0`` trains the ICNN loss alone, a weak training signal on
        its own (the score's neighbour purity part has no gradient).

    temperature : float, default=0.1
        Temperature :math:`T > 0` of the prototypical softmax.

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ProtoTripletEmbedder : The other loss of the same paper.
    sklearn_dml.losses.ICNNLoss : The loss component (formula in its Notes).
    sklearn_dml.losses.PrototypicalLoss : The cross-entropy added to it.
    sklearn_dml.metrics.icnn_score : The score on a whole dataset.

    Notes
    -----
    With :math:`\Lambda^+` the intra-class compactness, :math:`\Lambda^-`
    the inter-class spread and :math:`\gamma` the share of same-class
    neighbours among the :math:`k` nearest (defined in
    :class:`~sklearn_dml.losses.ICNNLoss`),

    and :math:`L_{proto}` the prototypical cross-entropy over the classes
    of the batch (squared distances to the class means divided by :math:`T`),

    .. math::

        L = -\log \frac{1}{2}\Big(\frac{\Lambda^+ + \Lambda^-}{2} + \gamma\Big)
            + w\, L_{proto}.

    ``loss_`` is ``CombinedLoss([ICNNLoss(n_neighbors),
    PrototypicalLoss(temperature)], [1, w])`` (``ICNNLoss`` alone when
    :math:`w = 0`). The authors train the ICNN loss with the cross-entropy
    of their prototypical network, in equal weights, hence :math:`w = 1`;
    :math:`T = 0.1` is the package's choice for L2-normalised embeddings
    (the paper's embeddings are not normalised). Distances are Euclidean
    between L2-normalised embeddings. The loss uses every sample of a
    batch, so the embedder takes no miner.

    References
    ----------
    .. [1] Mendez-Ruiz, M. et al. "SuSana Distancia is all you need:
       Enforcing class separability in metric learning via two novel
       distance-based loss functions for few-shot image classification",
       2023, arXiv:2305.09062.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ICNNEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ICNNEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb.fit(X, y).transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = ICNNLoss
    _loss_params = {"n_neighbors": ("int", 1)}
    _extra_params = {
        "prototypical_weight": ("real", 0, None, "left"),
        "temperature": ("real", 0, None, "neither"),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        n_neighbors=4,
        prototypical_weight=1.0,
        temperature=0.1,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.n_neighbors = n_neighbors
        self.prototypical_weight = prototypical_weight
        self.temperature = temperature
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_extra(self):
        for name, spec in self._extra_params.items():
            check_param(self, name, spec)

    def _build_loss(self, n_classes, n_components):
        icnn = ICNNLoss(n_neighbors=self.n_neighbors)
        if self.prototypical_weight == 0:
            return icnn, None
        proto = PrototypicalLoss(temperature=self.temperature)
        weights = [1.0, float(self.prototypical_weight)]
        return CombinedLoss([icnn, proto], weights=weights), None
