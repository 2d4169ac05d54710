"""The plain pytorch-metric-learning loops that the benchmarks compare against.

One copy, used by ``transfer_suite.py`` and ``unseen_classes.py``: what a new
user writes in twenty lines with pytorch-metric-learning, an MLP
``n_features``-256-``n_components`` (ReLU), a loss from its zoo at that
library's default settings (semihard triplets with margin 0.1 for the triplet
loss), Adam on the network and any loss parameters (Proxy-Anchor's proxies),
class-balanced batches from pytorch-metric-learning's own sampler.
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin


def _loss_and_miner(name, n_classes, n_components):
    """pytorch-metric-learning's loss ``name`` and its usual miner (or None),
    at the library's default settings."""
    from pytorch_metric_learning import losses, miners

    if name == "triplet":
        return (
            losses.TripletMarginLoss(margin=0.1),
            miners.TripletMarginMiner(margin=0.1, type_of_triplets="semihard"),
        )
    if name == "contrastive":
        return losses.ContrastiveLoss(), None
    if name == "multi_similarity":
        return losses.MultiSimilarityLoss(), miners.MultiSimilarityMiner()
    if name == "proxy_anchor":
        return losses.ProxyAnchorLoss(n_classes, n_components), None
    if name == "supcon":
        return losses.SupConLoss(), None
    raise ValueError(f"unknown loss {name!r}")


class PMLLoop(TransformerMixin, BaseEstimator):
    """A pytorch-metric-learning loss (``loss``) in a plain loop.

    MLP ``n_features``-256-``n_components`` (ReLU), Adam on the network and
    the loss's parameters, ``MPerClassSampler`` batches of about
    ``batch_size`` (``m`` per class, more with few classes so that a batch
    fills up, never more than the data holds); ``transform`` returns
    L2-normalised embeddings (the losses' default distances normalise them
    too). ``loss``: "triplet" (semihard, margin 0.1), "contrastive",
    "multi_similarity" (with its miner), "proxy_anchor" or "supcon".
    """

    def __init__(
        self,
        loss="triplet",
        max_iter=30,
        learning_rate=1e-3,
        batch_size=128,
        m=4,
        n_components=64,
        random_state=0,
    ):
        self.loss = loss
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.m = m
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, y):
        from pytorch_metric_learning import samplers
        from pytorch_metric_learning.utils import common_functions

        torch.manual_seed(self.random_state)
        # MPerClassSampler draws from pytorch-metric-learning's NUMPY_RANDOM
        common_functions.NUMPY_RANDOM = np.random.RandomState(self.random_state)
        X = torch.tensor(np.asarray(X), dtype=torch.float32)
        y = torch.as_tensor(np.unique(np.asarray(y), return_inverse=True)[1])
        self.model_ = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, self.n_components),
        )
        n_classes = len(torch.unique(y))
        loss_fn, miner = _loss_and_miner(self.loss, n_classes, self.n_components)
        opt = torch.optim.Adam(
            [*self.model_.parameters(), *loss_fn.parameters()], lr=self.learning_rate
        )
        m = max(self.m, self.batch_size // n_classes)
        # a batch no larger than the data (the sampler requires it)
        m = max(2, min(m, len(y) // n_classes))
        batch = m * min(n_classes, self.batch_size // m)
        sampler = samplers.MPerClassSampler(
            y, m=m, batch_size=batch, length_before_new_iter=len(y)
        )
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(X, y), batch_size=batch, sampler=sampler
        )
        self.model_.train()
        for _ in range(self.max_iter):
            for xb, yb in loader:
                emb = self.model_(xb)
                pairs = None if miner is None else miner(emb, yb)
                loss = loss_fn(emb, yb, pairs)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.model_.eval()
        return self

    def transform(self, X):
        with torch.no_grad():
            emb = self.model_(torch.tensor(np.asarray(X), dtype=torch.float32))
            return torch.nn.functional.normalize(emb, dim=1).numpy()
