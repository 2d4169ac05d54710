"""Relational knowledge distillation and diversified mutual learning on digits.

Protocol of ``_protocol.py`` (train on 70 % of digits 0-4, score seen and
unseen classes, 5 seeds). Every network trains with the same budget: Adam,
learning rate 1e-3, batches of 64 (4 per class), the same number of epochs.

* Distillation: a teacher ``TripletEmbedder`` (64-d, hidden 256) and
  students of 8 dimensions with hidden 64: (a) the plain triplet baseline,
  (b) RKD-DA alone from the teacher, (c) RKD-DA + triplet. The students'
  teacher is the teacher row's fitted embedder (behind the same
  ``StandardScaler`` fit), wrapped in ``FrozenEstimator``.
* Mutual learning: cohorts of the student backbone against one
  ``TripletEmbedder`` of the same backbone and epochs; each cohort is scored
  with member 0 alone and with the ensemble (concatenation) of its members,
  from the same fitted model. Temporal diversity (``ema_decay``) is left out
  of the table: its extra teachers double the cost of the relational terms,
  more than the shared machine allowed.
"""

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _protocol import markdown_table, matched, matched_note, run, scores, split  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_dml import (  # noqa: E402
    MutualLearningEmbedder,
    RKDEmbedder,
    TripletEmbedder,
)

STUDENT = {"n_components": 8, "hidden_layer_sizes": (64,)}
TEACHER = {"n_components": 64, "hidden_layer_sizes": (256,)}


def _budget(quick):
    return {"max_iter": 3 if quick else 15, "batch_size": 64}


def _cohort_rows(make, dataset, seed):
    """Scores of member 0 and of the ensemble of one fitted cohort."""
    import torch

    torch.set_num_threads(1)
    X_tr, y_tr, X_te, y_te, X_new, y_new = split(dataset, seed)
    pipe = make_pipeline(StandardScaler(), matched(make(seed)))
    tic = time.perf_counter()
    pipe.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - tic
    rows = []
    for ensemble in (False, True):
        pipe[-1].backbone_.ensemble = ensemble
        row = {"seed": seed, "fit_s": fit_s}
        row.update(scores(pipe.transform(X_te), y_te, "seen"))
        row.update(scores(pipe.transform(X_new), y_new, "unseen"))
        rows.append(row)
    return rows


def distillation(quick):
    seeds = range(1 if quick else 5)
    budget = _budget(quick)
    dataset = "digits"
    results = {name: [] for name in NAMES}
    for seed in seeds:
        row, pipe = run(
            lambda s: TripletEmbedder(**TEACHER, **budget, random_state=s),
            dataset,
            seed,
        )
        results[NAMES[0]].append(row)
        teacher = FrozenEstimator(pipe[-1])
        makers = [
            lambda s: TripletEmbedder(**STUDENT, **budget, random_state=s),
            lambda s, t=teacher: RKDEmbedder(
                t, metric_weight=0.0, **STUDENT, **budget, random_state=s
            ),
            lambda s, t=teacher: RKDEmbedder(
                t, metric_weight=1.0, **STUDENT, **budget, random_state=s
            ),
        ]
        for name, make in zip(NAMES[1:], makers):
            results[name].append(run(make, dataset, seed)[0])
        print("distillation seed", seed, flush=True)
    return "\n".join(
        [
            "## Relational knowledge distillation (digits, students 8-d, hidden 64)",
            "",
            markdown_table(results, base=NAMES[1]),
            "",
            "The students' fit time excludes the teacher's (fitted once per seed, "
            "first row).",
        ]
    )


NAMES = [
    "teacher: triplet, 64-d, hidden 256",
    "(a) student triplet (base)",
    "(b) student RKD-DA",
    "(c) student RKD-DA + triplet",
]

MUTUAL = {
    "2 models": {"n_models": 2},
    "3 models + view (feature dropout 0.1)": {"n_models": 3, "feature_dropout": 0.1},
}


def mutual_learning(quick):
    seeds = range(1 if quick else 5)
    budget = _budget(quick)
    dataset = "digits"
    base = "single triplet model (base)"
    cohort = {
        base: [
            run(
                lambda s: TripletEmbedder(**STUDENT, **budget, random_state=s),
                dataset,
                seed,
            )[0]
            for seed in seeds
        ]
    }
    for name, params in MUTUAL.items():

        def make(seed, params=params):
            return MutualLearningEmbedder(
                **params, **STUDENT, **budget, random_state=seed
            )

        pairs = [_cohort_rows(make, dataset, seed) for seed in seeds]
        cohort[f"{name}: member 0"] = [p[0] for p in pairs]
        cohort[f"{name}: ensemble"] = [p[1] for p in pairs]
        print(name, flush=True)
    return "\n".join(
        [
            "## Diversified mutual learning (digits, members 8-d, hidden 64)",
            "",
            markdown_table(cohort, base=base),
            "",
            "Same epochs and batches for every network; a cohort of M members "
            "costs about M times the compute of one model (plus the RKD terms). "
            "The ensemble embedding has M x 8 dimensions.",
        ]
    )


def main(quick=False):
    # The two studies run in two processes (one torch thread each).
    with ProcessPoolExecutor(2) as pool:
        parts = [pool.submit(distillation, quick), pool.submit(mutual_learning, quick)]
        text = [p.result() for p in parts]
    budget = _budget(quick)
    text.append(
        f"Every network: {budget['max_iter']} epochs, batches of "
        f"{budget['batch_size']} (4 per class), Adam at 1e-3. Timings were "
        "taken on a machine shared with other jobs and are noisy. " + matched_note()
    )
    return "\n\n".join(text)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
