"""Time every loss and miner against pytorch-metric-learning's version of it.

Both libraries run in the same process on the same CPU batch (float32,
``--batch`` embeddings of ``--dim`` dimensions, ``--classes`` classes of
equal size, shuffled) with the same hyper-parameters and, for the losses
with learnable proxies or class weights, the same initial parameters. A
loss is timed on forward + backward; a miner on one mining call (miners
have no gradient). The two implementations alternate (ours first on even
repeats, pml first on odd ones) so that both see the same load on a shared
machine; the table shows median milliseconds and the median of the
per-repeat ratios ours / pml (below 1: ours is faster).

Run ``python benchmarks/bench_losses.py`` (options: ``--batch 256 --dim 128
--classes 32 --repeats 40 --threads 2 --only NAME``); it writes
``benchmarks/results/losses.md``.
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from _provenance import provenance, write_results

from sklearn_dml import losses as ours
from sklearn_dml import miners as our_miners

RESULTS = Path(__file__).parent / "results" / "losses.md"


def _copy_rows(ours, theirs, dim):
    theirs.proxies.data = ours.proxies.detach().clone()


def _copy_columns(ours, theirs, dim):
    theirs.W.data = ours.proxies.detach().reshape(-1, dim).T.clone()


def _copy_fc(ours, theirs, dim):
    theirs.fc.data = ours.proxies.detach().reshape(-1, dim).T.clone()


def _loss_cases(pml):
    """(name, ours factory, pml factory, parameter copy, note) per loss."""
    L = pml.losses
    D = pml.distances
    cases = [
        ("ContrastiveLoss", ours.ContrastiveLoss, L.ContrastiveLoss, None, ""),
        ("TripletMarginLoss", ours.TripletMarginLoss, L.TripletMarginLoss, None, ""),
        ("MultiSimilarityLoss", ours.MultiSimilarityLoss, L.MultiSimilarityLoss),
        ("CircleLoss", ours.CircleLoss, L.CircleLoss),
        (
            "GeneralizedLiftedStructureLoss",
            ours.GeneralizedLiftedStructureLoss,
            L.GeneralizedLiftedStructureLoss,
        ),
        ("LiftedStructureLoss", ours.LiftedStructureLoss, L.LiftedStructureLoss),
        (
            "NPairsLoss",
            ours.NPairsLoss,
            lambda: L.NPairsLoss(
                distance=D.DotProductSimilarity(normalize_embeddings=False)
            ),
        ),
        ("NTXentLoss", ours.NTXentLoss, L.NTXentLoss),
        ("SupConLoss", ours.SupConLoss, L.SupConLoss),
        (
            "SignalToNoiseRatioContrastiveLoss",
            ours.SignalToNoiseRatioContrastiveLoss,
            L.SignalToNoiseRatioContrastiveLoss,
        ),
        ("MarginLoss", ours.MarginLoss, L.MarginLoss),
        ("TupletMarginLoss", ours.TupletMarginLoss, L.TupletMarginLoss),
        ("FastAPLoss", ours.FastAPLoss, L.FastAPLoss),
        ("AngularLoss", ours.AngularLoss, L.AngularLoss),
        (
            "HistogramLoss",
            lambda: ours.HistogramLoss(100),
            lambda: L.HistogramLoss(n_bins=100),
        ),
        ("NCALoss", ours.NCALoss, L.NCALoss),
    ]
    cases = [case + (None, "")[len(case) - 3 :] for case in cases]

    def proxy(name, ours, theirs, copy, note=""):
        return (name, ours, theirs, copy, note)

    cases += [
        proxy("ProxyNCALoss", ours.ProxyNCALoss, L.ProxyNCALoss, _copy_rows),
        proxy("ProxyAnchorLoss", ours.ProxyAnchorLoss, L.ProxyAnchorLoss, _copy_rows),
        proxy(
            "NormalizedSoftmaxLoss",
            ours.NormalizedSoftmaxLoss,
            L.NormalizedSoftmaxLoss,
            _copy_columns,
        ),
        proxy("CosFaceLoss", ours.CosFaceLoss, L.CosFaceLoss, _copy_columns),
        proxy("ArcFaceLoss", ours.ArcFaceLoss, L.ArcFaceLoss, _copy_columns),
        proxy(
            "SubCenterArcFaceLoss",
            ours.SubCenterArcFaceLoss,
            L.SubCenterArcFaceLoss,
            _copy_columns,
        ),
        proxy(
            "LargeMarginSoftmaxLoss",
            ours.LargeMarginSoftmaxLoss,
            L.LargeMarginSoftmaxLoss,
            _copy_columns,
        ),
        proxy("SphereFaceLoss", ours.SphereFaceLoss, L.SphereFaceLoss, _copy_columns),
        proxy("SoftTripleLoss", ours.SoftTripleLoss, L.SoftTripleLoss, _copy_fc),
        proxy("CenterLoss", ours.CenterLoss, None, "configure"),
    ]
    return cases


def _miner_cases(pml):
    M = pml.miners
    return [
        ("BatchHardMiner", our_miners.BatchHardMiner, M.BatchHardMiner),
        (
            "BatchEasyHardMiner",
            our_miners.BatchEasyHardMiner,
            M.BatchEasyHardMiner,
        ),
        *[
            (
                f"TripletMarginMiner({kind})",
                lambda kind=kind: our_miners.TripletMarginMiner(0.2, kind),
                lambda kind=kind: M.TripletMarginMiner(0.2, type_of_triplets=kind),
            )
            for kind in ("semihard", "hard", "all")
        ],
        (
            "MultiSimilarityMiner",
            our_miners.MultiSimilarityMiner,
            M.MultiSimilarityMiner,
        ),
        (
            "DistanceWeightedMiner",
            our_miners.DistanceWeightedMiner,
            M.DistanceWeightedMiner,
        ),
        ("PairMarginMiner", our_miners.PairMarginMiner, M.PairMarginMiner),
    ]


def _loss_step(loss, x, labels):
    x.grad = None
    loss.zero_grad(set_to_none=True)
    start = time.perf_counter()
    value = loss(x, labels)
    value.backward()
    return time.perf_counter() - start, float(value.detach())


def _miner_step(miner, x, labels):
    start = time.perf_counter()
    miner(x, labels)
    return time.perf_counter() - start, float("nan")


def _alternate(step, ours, theirs, x, labels, repeats, warmup, budget):
    """Median times of ours and theirs and the median per-repeat ratio."""
    t_ours, t_pml = [], []
    values = (float("nan"), float("nan"))
    spent = 0.0
    for i in range(warmup + repeats):
        if i % 2 == 0:
            a, v_ours = step(ours, x, labels)
            b, v_pml = step(theirs, x, labels) if theirs is not None else (0.0, 0.0)
        else:
            b, v_pml = step(theirs, x, labels) if theirs is not None else (0.0, 0.0)
            a, v_ours = step(ours, x, labels)
        values = (v_ours, v_pml)
        if i < warmup and a + b > budget:
            warmup = i + 1  # a slow row: one warm-up call is enough
        elif i >= warmup:
            t_ours.append(a)
            t_pml.append(b)
            spent += a + b
            if spent > budget and (len(t_ours) >= 3 or a + b > 5 * budget):
                break
    ratio = (
        statistics.median(a / b for a, b in zip(t_ours, t_pml))
        if theirs is not None
        else float("nan")
    )
    return (
        statistics.median(t_ours),
        statistics.median(t_pml),
        ratio,
        values,
        len(t_ours),
    )


def _value_note(v_ours, v_pml):
    if v_pml != v_pml or v_ours != v_ours:
        return ""
    rel = abs(v_ours - v_pml) / max(abs(v_pml), 1e-12)
    return "same value" if rel < 1e-4 else f"values differ ({rel:.0e} rel.)"


# Deliberate differences that change the value on this batch (see each
# class's Notes); the timing comparison is still like for like.
_NOTES = {
    "CenterLoss": "no pml equivalent",
    "DistanceWeightedMiner": "random sampling: different draws",
    "LiftedStructureLoss": "per-sample log-sum-exp: O(n^2); pml O(pairs^2)",
    "TupletMarginLoss": "per-anchor log-sum-exp shared by its positives",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--budget", type=float, default=4.0, help="s per row")
    parser.add_argument(
        "--threads", default="2,1", help="comma-separated thread counts"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only", default=None, help="comma-separated substrings of the names"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    import pytorch_metric_learning
    import pytorch_metric_learning.distances
    import pytorch_metric_learning.losses
    import pytorch_metric_learning.miners

    pml = pytorch_metric_learning
    gen = torch.Generator().manual_seed(args.seed)
    per_class = args.batch // args.classes
    labels = torch.arange(args.classes).repeat_interleave(per_class)
    labels = labels[torch.randperm(labels.shape[0], generator=gen)]
    x = torch.randn(labels.shape[0], args.dim, generator=gen).requires_grad_(True)
    wanted = args.only.split(",") if args.only else None
    sections = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        print(f"threads={threads}")
        sections.append((threads, _run_rows(pml, x, labels, wanted, args)))
    if not args.no_write and not args.only:
        _write(sections, args)


def _run_rows(pml, x, labels, wanted, args):
    def skip(name):
        return wanted is not None and not any(w in name for w in wanted)

    rows = []
    print(f"{'component':36s} {'ours ms':>9s} {'pml ms':>9s} {'ratio':>6s}  note")
    for name, make_ours, make_pml, copy, note in _loss_cases(pml):
        if skip(name):
            continue
        torch.manual_seed(args.seed)
        ours = make_ours()
        theirs = None
        if make_pml is not None:
            if copy is None:
                theirs = make_pml()
            else:
                theirs = make_pml(num_classes=args.classes, embedding_size=args.dim)
        if copy is not None:
            ours.configure(args.classes, args.dim)
            if callable(copy):
                copy(ours, theirs, args.dim)
        t_ours, t_pml, ratio, values, n = _alternate(
            _loss_step, ours, theirs, x, labels, args.repeats, args.warmup, args.budget
        )
        note = "; ".join(
            s
            for s in (
                _NOTES.get(name, note),
                _value_note(*values) if theirs is not None else "",
            )
            if s
        )
        rows.append((name, t_ours, t_pml if theirs is not None else None, ratio, note))
        _print_row(rows[-1])
    for name, make_ours, make_pml in _miner_cases(pml):
        if skip(name):
            continue
        ours, theirs = make_ours(), make_pml()
        t_ours, t_pml, ratio, _, n = _alternate(
            _miner_step,
            ours,
            theirs,
            x.detach(),
            labels,
            args.repeats,
            args.warmup,
            args.budget,
        )
        note = _NOTES.get(name, "miner: one call, no backward")
        rows.append((name, t_ours, t_pml, ratio, note))
        _print_row(rows[-1])
    return rows


def _print_row(row):
    name, t_ours, t_pml, ratio, note = row
    pml_ms = f"{1e3 * t_pml:9.3f}" if t_pml is not None else f"{'-':>9s}"
    print(f"{name:36s} {1e3 * t_ours:9.3f} {pml_ms} {ratio:6.2f}  {note}", flush=True)


def _write(sections, args):
    lines = [
        "# Losses and miners: sklearn_dml vs pytorch-metric-learning",
        "",
        provenance(),
        "",
        f"Batch {args.batch} x {args.dim} (float32, {args.classes} classes x "
        f"{args.batch // args.classes}), CPU, torch {torch.__version__}, "
        f"{platform.machine()}. Losses: forward + backward; miners: one "
        "mining call. Ours and pml alternate within each repeat (up to "
        f"{args.repeats} repeats after {args.warmup} warm-up calls, about "
        f"{args.budget:g} s per row at most; rows whose pml call takes "
        "seconds get fewer); medians. Ratio = median of the per-repeat "
        "ratios ours / pml (below 1: ours is faster). The machine (2 cores) "
        "was shared with other jobs during the run: with 2 threads every "
        "parallel kernel waits for a core, so that table mostly counts "
        "kernel launches and moves by 20 % or more between runs; the 1-thread "
        "table measures the work itself.",
    ]
    for threads, rows in sections:
        lines += [
            "",
            f"## {threads} thread{'s' if threads > 1 else ''}",
            "",
            "| component | ours ms | pml ms | ratio | note |",
            "|---|---:|---:|---:|---|",
        ]
        for name, t_ours, t_pml, ratio, note in rows:
            pml_ms = f"{1e3 * t_pml:.3f}" if t_pml is not None else "-"
            ratio_s = f"{ratio:.2f}" if ratio == ratio else "-"
            lines.append(
                f"| {name} | {1e3 * t_ours:.3f} | {pml_ms} | {ratio_s} | {note} |"
            )
    write_results(lines, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
