"""Each training option or method against the base method it modifies.

One command regenerates every table (``benchmarks/results/compare_*.md``):

    python benchmarks/compare_methods.py [--quick] [--only TOPIC ...]

Each topic is a module ``benchmarks/compare_<topic>.py`` exposing
``main(quick: bool) -> str``, the Markdown of its results file, built with
the shared protocol of ``benchmarks/_protocol.py`` (same backbone, same
budget, 5 seeds, seen and unseen classes). ``--quick`` runs a smoke test
(fewer seeds and epochs) and writes nothing. The ``compare_*.py`` scripts
named in ``STANDALONE`` are not topics: they have their own command line.
"""

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

import sklearn
import torch

HERE = Path(__file__).parent
RESULTS = HERE / "results"
# compare_*.py scripts with their own command line and results file (no
# ``main(quick)``): ``make bench`` runs them on their own.
STANDALONE = {"cross_batch_memory"}


def topics():
    return sorted(
        p.stem[len("compare_") :]
        for p in HERE.glob("compare_*.py")
        if p.stem != "compare_methods" and p.stem[len("compare_") :] not in STANDALONE
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from _provenance import provenance

    for topic in args.only or topics():
        module = importlib.import_module(f"compare_{topic}")
        tic = time.perf_counter()
        text = module.main(quick=args.quick)
        footer = (
            f"\n\nPython {platform.python_version()}, torch {torch.__version__}, "
            f"scikit-learn {sklearn.__version__}, 1 torch thread; "
            f"{time.perf_counter() - tic:.0f} s for this table. Regenerate with "
            f"`python benchmarks/compare_methods.py --only {topic}`.\n\n"
            f"{provenance()}\n"
        )
        if args.quick:
            print(text + footer)
        else:
            (RESULTS / f"compare_{topic}.md").write_text(text + footer)
            print(f"wrote results/compare_{topic}.md")


if __name__ == "__main__":
    main()
