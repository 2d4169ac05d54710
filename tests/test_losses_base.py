"""What every loss inherits from ``BaseMetricLoss``: input validation, configure."""

import pytest
import torch

from sklearn_dml.losses._batch_softmax import NCALoss
from sklearn_dml.losses._pair import ContrastiveLoss, TripletMarginLoss

from .loss_references import X, Y, l64, t64


def test_input_validation_messages():
    loss = TripletMarginLoss()
    with pytest.raises(ValueError, match="embeddings must be a 2-D tensor"):
        loss(torch.zeros(3), l64([0, 0, 1]))
    with pytest.raises(ValueError, match="labels must be a 1-D tensor"):
        loss(torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="embeddings has 3 rows but labels has 2"):
        loss(torch.zeros(3, 2), l64([0, 1]))
    with pytest.raises(ValueError, match="got a tuple of length 2"):
        loss(t64(X), l64(Y), (torch.tensor([0]), torch.tensor([1])))


def test_base_configure_is_a_no_op():
    for loss in (ContrastiveLoss(), TripletMarginLoss(), NCALoss()):
        assert loss.configure(3, 4) is loss
        assert list(loss.parameters()) == []
