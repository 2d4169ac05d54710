"""How models are trained: the engine, the objective's terms, the hold-out split.

- :mod:`~sklearn_dml.training.engine`: the one training loop (device
  placement, seeding, class-balanced batches, optimisation steps, early
  stopping) and batched inference.
- :mod:`~sklearn_dml.training.objective`: the terms whose sum is minimised
  on every batch (the metric loss, a teacher's relations, mixup, the
  backbone's penalty, energy confusion).
- :mod:`~sklearn_dml.training.validation`: the early-stopping hold-out
  (stratified samples or whole classes).

The samplers that build the batches are components, in
:mod:`sklearn_dml.samplers`. Nothing here imports a loss, a backbone or an
estimator: an estimator builds the components and the terms, the engine runs
them.
"""
