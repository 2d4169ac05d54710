"""Demo: ``python -m sklearn_dml``.

Trains the default embedder on handwritten digits (scikit-learn's bundled
``load_digits``), then compares retrieval quality with raw features, PCA and
scikit-learn's NeighborhoodComponentsAnalysis on

* held-out samples of the classes seen in training (closed set), and
* classes never seen in training (open set: train on digits 0-4, retrieve
  among digits 5-9),

as MAP@R and Precision@1 (leave-one-out within each evaluation set).
"""

import argparse
import sys
import time

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from . import ContrastiveEmbedder, MultiSimilarityEmbedder, TripletEmbedder
from .metrics import map_at_r_score, precision_at_k_score

_EMBEDDERS = {
    "triplet": TripletEmbedder,
    "contrastive": ContrastiveEmbedder,
    "multi-similarity": MultiSimilarityEmbedder,
}


def _split(seed):
    X, y = load_digits(return_X_y=True)
    seen = y < 5
    X_train, X_test, y_train, y_test = train_test_split(
        X[seen], y[seen], test_size=0.5, stratify=y[seen], random_state=seed
    )
    return X_train, y_train, X_test, y_test, X[~seen], y[~seen]


def _evaluate(model, X_test, y_test, X_unseen, y_unseen):
    row = []
    for X_eval, y_eval in ((X_test, y_test), (X_unseen, y_unseen)):
        Z = model.transform(X_eval)
        row += [map_at_r_score(Z, y_eval), precision_at_k_score(Z, y_eval, k=1)]
    return row


def main(argv=None):
    """Run the demo; returns the table rows as ``{method: [4 scores]}``."""
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_dml",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--method",
        choices=sorted(_EMBEDDERS),
        default="triplet",
        help="embedder to train (default: triplet)",
    )
    parser.add_argument("--max-iter", type=int, default=30, help="epochs (default: 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test, X_unseen, y_unseen = _split(args.seed)
    print(
        f"load_digits: training on digits 0-4 ({len(y_train)} samples); evaluating on "
        f"{len(y_test)} held-out samples of digits 0-4 and {len(y_unseen)} samples of "
        "the unseen digits 5-9.\n"
    )
    embedder_cls = _EMBEDDERS[args.method]
    models = {
        "raw features": make_pipeline(StandardScaler(), FunctionTransformer()),
        "PCA (32)": make_pipeline(StandardScaler(), PCA(32, random_state=args.seed)),
        "sklearn NCA (32)": make_pipeline(
            StandardScaler(),
            NeighborhoodComponentsAnalysis(32, random_state=args.seed),
        ),
        f"{embedder_cls.__name__} (32)": make_pipeline(
            StandardScaler(),
            embedder_cls(
                n_components=32,
                max_iter=args.max_iter,
                verbose=1,
                random_state=args.seed,
            ),
        ),
    }
    results = {}
    for name, model in models.items():
        print(f"fitting {name} ...", flush=True)
        tic = time.perf_counter()
        model.fit(X_train, y_train)
        results[name] = _evaluate(model, X_test, y_test, X_unseen, y_unseen)
        print(f"  done in {time.perf_counter() - tic:.1f}s", flush=True)

    header = f"{'method':<26}{'seen MAP@R':>12}{'seen P@1':>10}{'unseen MAP@R':>14}{'unseen P@1':>12}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, (m_s, p_s, m_u, p_u) in results.items():
        print(f"{name:<26}{m_s:>12.3f}{p_s:>10.3f}{m_u:>14.3f}{p_u:>12.3f}")
    print(
        "\nMAP@R and P@1: leave-one-out retrieval within each evaluation set; "
        "higher is better."
    )
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
