"""Per-epoch fit time of TripletEmbedder against bare training loops.

Three runs of the same work in one process, on standardised ``load_digits``
(1,797 x 64, 10 classes): a 64-256-64 MLP with L2-normalised output, Adam,
semihard triplet mining with margin 0.1, class-balanced batches of 128.

* ``sklearn_dml``: ``TripletEmbedder(...).fit(X, y)``, everything included
  (validation, label encoding, model building, sampler, engine).
* the same estimator with ``anchor_weight=None`` (the method's weight, no
  choice on data) and with ``anchor_weight=0`` (no anchoring penalty), which
  separate the cost of the default's choice and of its penalty;
* ``bare torch``: a hand-written loop over the same batches, calling the
  same sklearn_dml loss and miner components directly: the floor that the
  estimator's overhead is measured against.
* ``pml``: the same hand-written loop with pytorch-metric-learning's
  ``TripletMarginLoss`` and ``TripletMarginMiner("semihard")``.

Reported: median seconds per epoch over repeats (runs interleaved so drift
hits all three alike) and ratios to the bare loop. Run:

    python benchmarks/bench_fit_overhead.py [--epochs 20] [--repeats 5]
"""

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance, write_results
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sklearn_dml import TripletEmbedder
from sklearn_dml.backbones import MLP
from sklearn_dml.losses import TripletMarginLoss
from sklearn_dml.miners import TripletMarginMiner
from sklearn_dml.samplers import MPerClassSampler

MARGIN, BATCH, LR, HIDDEN, DIM = 0.1, 128, 1e-3, (256,), 64


def run_estimator(X, y, epochs, seed, anchor_weight="auto"):
    tic = time.perf_counter()
    TripletEmbedder(
        anchor_weight=anchor_weight,
        margin=MARGIN,
        mining="semihard",
        n_components=DIM,
        hidden_layer_sizes=HIDDEN,
        batch_size=BATCH,
        max_iter=epochs,
        learning_rate_init=LR,
        random_state=seed,
    ).fit(X, y)
    return (time.perf_counter() - tic) / epochs


def run_loop(X, y, epochs, seed, loss_fn, miner):
    tic = time.perf_counter()
    torch.manual_seed(seed)
    model = MLP(X.shape[1], DIM, HIDDEN, normalize_embeddings=True)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    sampler = MPerClassSampler(y, BATCH, 4, random_state=np.random.RandomState(seed))
    model.train()
    for _ in range(epochs):
        for batch in sampler:
            idx = torch.from_numpy(batch)
            xb, yb = Xt[idx], yt[idx]
            emb = model(xb)
            loss = loss_fn(emb, yb, miner(emb, yb))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (time.perf_counter() - tic) / epochs


NOTE = (
    'The estimator runs with its defaults: `anchor_weight="auto"` chooses the '
    "anchoring weight by class-disjoint validation on the 10 digit classes "
    "(three to four fits' cost, see the parameter) and trains with the "
    "anchoring penalty of the default backbone; the bare loops do neither. "
    "Oversubscribed cores (load above 10 on 2 cores) slow the many small "
    "parallel regions of every run further."
)

FIRST_FIT = """
import sys, time
import torch
torch.set_num_threads(1)
import sklearn_dml
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X, y = X[:300] / 16, y[:300]
dynamo = float("nan")
if sys.argv[1] == "dynamo first":
    tic = time.process_time()
    import torch._dynamo
    dynamo = time.process_time() - tic
before = set(sys.modules)
kw = dict(n_components=8, hidden_layer_sizes=(16,), max_iter=1,
          anchor_weight=None, random_state=0)
tic = time.process_time()
sklearn_dml.TripletEmbedder(**kw).fit(X, y)
first = time.process_time() - tic
imported = len(set(sys.modules) - before)
tic = time.process_time()
sklearn_dml.TripletEmbedder(**kw).fit(X, y)
second = time.process_time() - tic
print(dynamo, first, second, imported)
"""


def first_fit_costs(repeats=3):
    """CPU seconds of a fresh process's first and second fit (subprocesses)."""
    rows = {}
    for _ in range(repeats):
        for mode in ("plain", "dynamo first"):
            out = subprocess.run(
                [sys.executable, "-c", FIRST_FIT, mode],
                capture_output=True,
                text=True,
                check=True,
            )
            values = [float(v) for v in out.stdout.split()]
            rows.setdefault(mode, []).append(values)
    return {
        mode: [statistics.median(col) for col in zip(*values)]
        for mode, values in rows.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "fit_overhead.md")
    )
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    runners = {
        "sklearn_dml TripletEmbedder.fit": lambda s: run_estimator(
            X, y, args.epochs, s
        ),
        "the same, anchor_weight=None (no choice)": lambda s: run_estimator(
            X, y, args.epochs, s, None
        ),
        "the same, anchor_weight=0 (no anchor)": lambda s: run_estimator(
            X, y, args.epochs, s, 0.0
        ),
        "bare torch loop, sklearn_dml components": lambda s: run_loop(
            X,
            y,
            args.epochs,
            s,
            TripletMarginLoss(margin=MARGIN),
            TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard"),
        ),
    }
    try:
        from pytorch_metric_learning import losses as pml_losses
        from pytorch_metric_learning import miners as pml_miners

        runners["bare torch loop, pytorch-metric-learning"] = lambda s: run_loop(
            X,
            y,
            args.epochs,
            s,
            pml_losses.TripletMarginLoss(margin=MARGIN),
            pml_miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard"),
        )
    except ImportError:
        print(
            "pytorch-metric-learning not installed: its row is left out (pip install -e '.[bench]')."
        )

    for runner in runners.values():  # warm-up: imports, allocator, thread pool
        runner(0)
    times = {name: [] for name in runners}
    for rep in range(args.repeats):
        for name, runner in runners.items():
            times[name].append(runner(rep + 1))
    base = statistics.median(times["bare torch loop, sklearn_dml components"])
    lines = [
        "# Fit overhead: TripletEmbedder vs bare loops",
        "",
        provenance(),
        "",
        f"load_digits (1797 x 64), MLP 64-256-64, semihard triplets, batch {BATCH}, "
        f"{args.epochs} epochs x {args.repeats} repeats, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}. "
        "The machine was shared with other jobs: ratios within the run are the "
        "result, not the seconds.",
        "",
        "| run | s / epoch (median) | ratio to bare loop |",
        "|---|---|---|",
    ]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {name} | {med:.4f} | {med / base:.3f} |")
    costs = first_fit_costs()
    lines += [
        "",
        NOTE,
        "",
        "First fit in a fresh process (1 torch thread, 300 digits, one epoch; "
        "CPU seconds, median of 3 processes each): the first `fit` builds the "
        "first `torch.optim` optimizer, whose `__init__` calls `add_param_group`, "
        "decorated by PyTorch with `torch._disable_dynamo`, which imports "
        "`torch._dynamo` (several hundred modules, sympy included) on first use. "
        "Every PyTorch training loop pays it once per process; importing "
        "`torch._dynamo` beforehand moves the cost out of the fit.",
        "",
        "| process | import torch._dynamo (s) | first fit (s) | second fit (s) | "
        "modules imported by the first fit |",
        "|---|---|---|---|---|",
    ]
    for mode, (dynamo, first, second, imported) in costs.items():
        shown = "-" if dynamo != dynamo else f"{dynamo:.2f}"
        lines.append(
            f"| {mode} | {shown} | {first:.3f} | {second:.3f} | {imported:.0f} |"
        )
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
