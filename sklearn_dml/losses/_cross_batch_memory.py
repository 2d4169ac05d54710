"""Cross-batch memory (XBM): past embeddings as extra pairs of a pair loss."""

import copy
from numbers import Integral

import torch

from .._param_validation import Interval
from .._tuples import check_embeddings_labels, label_masks, restrict_to_queries
from ._base import BaseMetricLoss, not_configured_error


def query_pairs(labels, n_queries):
    """Every pair ``(i, j)`` with ``i`` among the first ``n_queries`` rows.

    Returns ``(a1, p, a2, n)``: the positive pairs (same label, ``i != j``)
    and the negative pairs (different labels) from a query row ``i`` to
    any row ``j`` of ``labels``.
    """
    positive, negative = label_masks(labels, n_queries)
    a1, p = torch.nonzero(positive, as_tuple=True)
    a2, n = torch.nonzero(negative, as_tuple=True)
    return a1, p, a2, n


class _ReferenceBlock:
    """``distance`` whose matrix compares its queries with fixed references.

    ``block(queries)`` is ``distance(queries, refs)``, the rectangular block
    that a loss with ``supports_reference_block`` computes in place of the
    square matrix of its batch; everything else is ``distance``'s.
    """

    def __init__(self, distance, refs):
        self._distance = distance
        self._refs = refs

    def __call__(self, query, ref=None):
        return self._distance(query, self._refs if ref is None else ref)

    def __getattr__(self, name):
        return getattr(self._distance, name)


class CrossBatchMemoryLoss(BaseMetricLoss):
    r"""A pair or triplet loss whose batch also meets the embeddings of past batches.

    Cross-batch memory (XBM, Wang et al., 2020): a first-in first-out queue
    keeps the embeddings (detached) and labels of the last ``memory_size``
    training samples. Once ``warmup_steps`` training batches have been seen,
    each batch is compared with the queue as well as with itself: the
    wrapped loss is computed on the pairs (or mined tuples) from a sample
    of the batch (the anchor) to the references, the batch itself
    (detached) followed by the memory, so small batches see many more
    negatives (and positives). Each pair passes its gradient through its
    anchor only, within the batch too, so that batch and memory pairs weigh
    alike; a loss that is a mean over the rows of its input
    (``mean_over_anchors``, multi-similarity) is taken as the mean over the
    batch rows. This is the loss of pytorch-metric-learning's
    ``CrossBatchMemory`` (tested against it). The batch then enters the
    queue, replacing the oldest entries. Outside training mode
    (``loss.eval()``) the queue is neither used nor changed.

    Parameters
    ----------
    loss : BaseMetricLoss
        A loss on the pairs or triplets of a batch, without learned
        parameters (contrastive, multi-similarity, triplet margin, circle,
        ...): a loss with proxies or class weights has no use for a memory.
    memory_size : int, default=1024
        Number of past embeddings kept.
    warmup_steps : int, default=0
        Training batches before the memory is used (it fills meanwhile):
        early embeddings drift fast, and XBM starts once they are stable.

    Attributes
    ----------
    loss_ : BaseMetricLoss
        The configured copy of ``loss``.
    memory_embeddings : torch.Tensor of shape (memory_size, embedding_size)
        The queue (a buffer: it is saved with the weights, so a resumed
        training continues with it).
    memory_labels : torch.Tensor of shape (memory_size,)
        Labels of the queue's embeddings.

    Notes
    -----
    With the batch :math:`B`, the memory :math:`M` (constants) and the
    wrapped loss :math:`L`, a step minimises

    .. math::

        L\big(B \cup M; \{(i, j) : i \in B, j \in B \cup M, j \neq i\}\big),

    the loss over the pairs from a sample of the batch to any other sample
    of the batch or the memory, with the partner :math:`j` a constant (a
    detached copy when it is in the batch). With a miner the pairs or
    triplets are mined on :math:`B \cup M` (detached) and those whose
    anchor is in :math:`B` kept.
    The estimators' ``cross_batch_memory`` parameter wraps their loss (and
    hands it their miner).

    References
    ----------
    .. [1] Wang, X., Zhang, H., Huang, W. and Scott, M. R. "Cross-Batch
       Memory for Embedding Learning", CVPR 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ContrastiveLoss, CrossBatchMemoryLoss
    >>> loss = CrossBatchMemoryLoss(ContrastiveLoss(), memory_size=8).configure(2, 3)
    >>> gen = torch.Generator().manual_seed(0)
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> first = loss(torch.randn(4, 3, generator=gen), labels)
    >>> int(loss.memory_filled)
    4
    >>> second = loss(torch.randn(4, 3, generator=gen), labels)  # meets the first
    >>> int(loss.memory_filled)
    8
    """

    _parameter_constraints = {
        "loss": [BaseMetricLoss],
        "memory_size": [Interval(Integral, 1, None, closed="left")],
        "warmup_steps": [Interval(Integral, 0, None, closed="left")],
    }

    #: The metric term hands its miner to :meth:`forward` (to mine the memory).
    takes_miner = True

    def __init__(self, loss, memory_size=1024, warmup_steps=0):
        super().__init__()
        self.loss = loss
        self.memory_size = memory_size
        self.warmup_steps = warmup_steps

    def configure(self, num_classes=None, embedding_size=None):
        """Copy and configure the wrapped loss; create the queue.

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes (passed to the wrapped loss).
        embedding_size : int, default=None
            Embedding dimension; the queue is created now when it is given,
            otherwise at the first batch.

        Returns
        -------
        self : CrossBatchMemoryLoss
            This loss.
        """
        self._validate_params()
        base = copy.deepcopy(self.loss)
        if hasattr(base, "configure"):
            base.configure(num_classes, embedding_size)
        if any(True for _ in base.parameters()):
            raise ValueError(
                f"CrossBatchMemoryLoss needs a loss on pairs or triplets without "
                f"learned parameters; {type(base).__name__} has some (proxies or "
                "class weights, which already see every class at each step)."
            )
        self.loss_ = base
        if embedding_size is not None:
            self._make_queue(int(embedding_size))
        return self

    def _make_queue(self, dim, device=None):
        size = int(self.memory_size)
        self.register_buffer("memory_embeddings", torch.zeros(size, dim, device=device))
        self.register_buffer(
            "memory_labels", torch.zeros(size, dtype=torch.long, device=device)
        )
        for name in ("memory_filled", "memory_position", "steps"):
            self.register_buffer(name, torch.zeros((), dtype=torch.long, device=device))

    def forward(self, embeddings, labels, indices_tuple=None, miner=None):
        """The loss of the batch against itself and, after warm-up, the memory.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        indices_tuple : tuple of torch.Tensor, default=None
            Tuples mined on the batch alone; used only while the memory is
            not (before warm-up, outside training).
        miner : callable, default=None
            ``miner(embeddings, labels)`` giving tuples; with the memory in
            use it mines the batch stacked on the memory.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The wrapped loss's value.
        """
        if not hasattr(self, "loss_"):
            raise not_configured_error(self, "configured loss")
        check_embeddings_labels(embeddings, labels)
        if not hasattr(self, "memory_embeddings"):
            self._make_queue(embeddings.shape[1], embeddings.device)
        if self.memory_embeddings.shape[1] != embeddings.shape[1]:
            raise ValueError(
                f"The memory holds embeddings of size {self.memory_embeddings.shape[1]}"
                f", the batch of size {embeddings.shape[1]}."
            )
        n_mem = int(self.memory_filled)
        use = self.training and int(self.steps) >= self.warmup_steps
        if not use:
            if indices_tuple is None and miner is not None:
                indices_tuple = miner(embeddings, labels)
            value = self.loss_(embeddings, labels, indices_tuple)
        else:
            value = self._memory_loss(embeddings, labels, n_mem, miner)
        if self.training:
            self._enqueue(embeddings.detach(), labels)
        return value

    def _memory_loss(self, embeddings, labels, n_mem, miner):
        """The wrapped loss from the batch (anchors) to the constant references.

        The references are the batch, detached, followed by the memory; the
        loss gets only the pairs or triplets from a batch row ``i`` to a
        reference other than ``i``'s own copy, so every pair (within the
        batch too) passes its gradient through its anchor only, as
        pytorch-metric-learning's ``CrossBatchMemory`` does. A loss with
        ``supports_reference_block`` computes the (batch, references) block
        of its distances; any other sees the batch stacked on the
        references, and if it is averaged over every row
        (``mean_over_anchors``) it is rescaled to the mean over the batch
        rows.
        """
        n = embeddings.shape[0]
        refs = torch.cat(
            [embeddings.detach(), self.memory_embeddings[:n_mem].to(embeddings.dtype)]
        )
        ref_labels = torch.cat([labels, self.memory_labels[:n_mem]])
        if miner is None:
            tuples = query_pairs(ref_labels, n)
        elif hasattr(miner, "mine_queries"):
            tuples = miner.mine_queries(refs, ref_labels, n)
        else:
            tuples = restrict_to_queries(miner(refs, ref_labels), n)
        base = self.loss_
        if len(tuples) == 4 and getattr(base, "supports_reference_block", False):
            # The (batch, references) block of the distances only: partners
            # index the references directly.
            block = _ReferenceBlock(base._get_distance(), refs)
            return base._compute(embeddings, labels, tuples, block)
        # Any other loss: the batch stacked on the references, anchors the
        # batch rows (0..n-1, with gradient), partners the references (n + j).
        if len(tuples) == 3:
            a, p, neg = tuples
            tuples = (a, p + n, neg + n)
        else:
            a1, p, a2, neg = tuples
            tuples = (a1, p + n, a2, neg + n)
        stacked = torch.cat([embeddings, refs])
        value = base(stacked, torch.cat([labels, ref_labels]), tuples)
        if getattr(base, "mean_over_anchors", False):
            value = value * (stacked.shape[0] / n)
        return value

    @torch.no_grad()
    def _enqueue(self, embeddings, labels):
        size = self.memory_embeddings.shape[0]
        embeddings, labels = embeddings[-size:], labels[-size:]
        count = embeddings.shape[0]
        slots = (int(self.memory_position) + torch.arange(count)) % size
        slots = slots.to(self.memory_labels.device)
        self.memory_embeddings[slots] = embeddings.to(self.memory_embeddings.dtype)
        self.memory_labels[slots] = labels
        self.memory_position.fill_((int(self.memory_position) + count) % size)
        self.memory_filled.fill_(min(size, int(self.memory_filled) + count))
        self.steps += 1
