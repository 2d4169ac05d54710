"""Parameter groups of the backbone: a learning rate per part, or frozen parts.

The estimators' ``backbone_learning_rates`` maps prefixes of the backbone's
parameter names (as :meth:`torch.nn.Module.named_parameters` gives them) to
learning rates. Each parameter takes the rate of the longest prefix that
names it (a prefix names a parameter when it equals the name or the name
continues it after a dot; ``""`` names every parameter); the others keep
``learning_rate_init``. A rate of ``0`` freezes the parameters: they get no
gradient and stay as they are (batch-normalisation statistics, which are
buffers, still follow the batches in training mode).
"""

__all__ = ["backbone_parameter_groups", "freeze_zero_rate_parameters", "rate_of"]


def _matches(prefix, name):
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def rate_of(name, rates):
    """The rate of the longest prefix in ``rates`` naming ``name``, or None.

    Examples
    --------
    >>> from sklearn_dml.training.param_groups import rate_of
    >>> rate_of("body.0.weight", {"": 0.0, "body": 1e-4})
    0.0001
    >>> rate_of("head.bias", {"body": 1e-4}) is None
    True
    """
    best = None
    for prefix in rates:
        if _matches(prefix, name) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else float(rates[best])


def freeze_zero_rate_parameters(backbone, rates, owner="the estimator"):
    """Check that every prefix names a parameter; freeze those at rate 0.

    Called on the copy of the backbone that is trained. Raises ValueError
    for a prefix naming no parameter (a typo would otherwise train
    everything at the full rate).
    """
    if not rates:
        return backbone
    names = [name for name, _ in backbone.named_parameters()]
    unknown = [p for p in rates if not any(_matches(p, n) for n in names)]
    if unknown:
        tops = sorted({n.split(".")[0] for n in names})
        raise ValueError(
            f"backbone_learning_rates of {owner} names {unknown}, which match no "
            f"parameter of the backbone; its parameters start with {tops} (see "
            "backbone.named_parameters())."
        )
    for name, param in backbone.named_parameters():
        if rate_of(name, rates) == 0.0:
            param.requires_grad_(False)
    return backbone


def backbone_parameter_groups(backbone, rates):
    """The optimizer groups of the backbone's trainable parameters.

    One group with every trainable parameter (at the optimizer's default
    rate) when ``rates`` is empty or None; otherwise one group per distinct
    rate, the parameters named by no prefix first, at the default rate.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.training.param_groups import backbone_parameter_groups
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    >>> [(len(g["params"]), g.get("lr")) for g in backbone_parameter_groups(net, {"0": 1e-4})]
    [(2, None), (2, 0.0001)]
    """
    trainable = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
    if not rates:
        return [{"params": [p for _, p in trainable]}]
    by_rate = {}
    for name, param in trainable:
        rate = rate_of(name, rates)
        if rate != 0.0:
            by_rate.setdefault(rate, []).append(param)
    groups = []
    if None in by_rate:
        groups.append({"params": by_rate.pop(None)})
    for rate in sorted(by_rate, reverse=True):
        groups.append({"params": by_rate[rate], "lr": rate})
    return groups or [{"params": []}]
