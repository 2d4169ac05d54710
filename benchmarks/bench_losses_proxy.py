"""Time forward + backward of the proxy losses against pytorch-metric-learning.

Run ``python benchmarks/bench_losses_proxy.py`` (options: ``--batch 256
--dim 128 --classes 32 --repeats 50 --threads 1``). Both libraries run in the
same process on the same batch (``classes`` classes of ``batch / classes``
samples, CPU, float32) with the same initial parameters; every loss is timed
on ``repeats`` forward + backward passes after a warm-up, and the table shows
the medians and the median of the per-repeat ratios ours / pml (below 1:
ours is faster). The two losses alternate, so that both see the same load.
"""

import argparse
import statistics
import time

import torch

from sklearn_dml.losses import _proxy


def _pairs(pml_losses, n_classes, dim):
    """(name, ours, theirs, copy) for every loss; copy moves our parameters."""

    def rows(ours, theirs):  # pml keeps proxies as (num_classes, dim) rows
        theirs.proxies.data = ours.proxies.detach().clone()

    def columns(ours, theirs):  # pml keeps class weights as columns
        theirs.W.data = ours.proxies.detach().reshape(-1, dim).T.clone()

    def soft_triple(ours, theirs):
        theirs.fc.data = ours.proxies.detach().reshape(-1, dim).T.clone()

    size = {"num_classes": n_classes, "embedding_size": dim}
    return [
        ("NCALoss", _proxy.NCALoss(), pml_losses.NCALoss(), None),
        (
            "ProxyNCALoss",
            _proxy.ProxyNCALoss(),
            pml_losses.ProxyNCALoss(**size),
            rows,
        ),
        (
            "ProxyAnchorLoss",
            _proxy.ProxyAnchorLoss(),
            pml_losses.ProxyAnchorLoss(**size),
            rows,
        ),
        (
            "NormalizedSoftmaxLoss",
            _proxy.NormalizedSoftmaxLoss(),
            pml_losses.NormalizedSoftmaxLoss(**size),
            columns,
        ),
        (
            "LargeMarginSoftmaxLoss",
            _proxy.LargeMarginSoftmaxLoss(),
            pml_losses.LargeMarginSoftmaxLoss(**size),
            columns,
        ),
        (
            "SphereFaceLoss",
            _proxy.SphereFaceLoss(),
            pml_losses.SphereFaceLoss(**size),
            columns,
        ),
        ("CosFaceLoss", _proxy.CosFaceLoss(), pml_losses.CosFaceLoss(**size), columns),
        ("ArcFaceLoss", _proxy.ArcFaceLoss(), pml_losses.ArcFaceLoss(**size), columns),
        (
            "SubCenterArcFaceLoss",
            _proxy.SubCenterArcFaceLoss(),
            pml_losses.SubCenterArcFaceLoss(**size),
            columns,
        ),
        (
            "SoftTripleLoss",
            _proxy.SoftTripleLoss(),
            pml_losses.SoftTripleLoss(**size),
            soft_triple,
        ),
    ]


def _step(loss, x, labels):
    x.grad = None
    loss.zero_grad(set_to_none=True)
    start = time.perf_counter()
    value = loss(x, labels)
    value.backward()
    return time.perf_counter() - start, float(value.detach())


def _median_times(ours, theirs, x, labels, repeats, warmup=5):
    """Alternate the two losses so that both see the same machine load."""
    t_ours, t_pml = [], []
    for i in range(warmup + repeats):
        a, v_ours = _step(ours, x, labels)
        b, v_pml = _step(theirs, x, labels)
        if i >= warmup:
            t_ours.append(a)
            t_pml.append(b)
    ratios = [a / b for a, b in zip(t_ours, t_pml)]
    return (
        statistics.median(t_ours),
        statistics.median(t_pml),
        statistics.median(ratios),
        abs(v_ours - v_pml),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import pytorch_metric_learning.losses as pml_losses

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x = torch.randn(args.batch, args.dim, requires_grad=True)
    labels = torch.arange(args.classes).repeat_interleave(args.batch // args.classes)
    labels = labels[torch.randperm(labels.shape[0])]
    x = x[: labels.shape[0]].detach().requires_grad_(True)
    print(
        f"batch={labels.shape[0]} dim={args.dim} classes={args.classes} "
        f"threads={args.threads} torch={torch.__version__}"
    )
    print(f"{'loss':24s} {'ours ms':>9s} {'pml ms':>9s} {'ratio':>7s}  {'|diff|':>8s}")
    for name, ours, theirs, copy in _pairs(pml_losses, args.classes, args.dim):
        if copy is not None:
            ours.configure(args.classes, args.dim)
            copy(ours, theirs)
        t_ours, t_pml, ratio, diff = _median_times(
            ours, theirs, x, labels, args.repeats
        )
        print(
            f"{name:24s} {1e3 * t_ours:9.3f} {1e3 * t_pml:9.3f} {ratio:7.2f}  {diff:8.1e}"
        )


if __name__ == "__main__":
    main()
