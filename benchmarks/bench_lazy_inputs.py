"""Memory of training on and embedding 100,000 images read from files.

Writes ``--n`` (default 100,000) 28x28 uint8 images, one ``.npy`` file each
(MNIST-5k images, cycled and shifted), into a temporary folder, then runs
three child processes, so that each phase has its own peak resident memory
(``VmHWM`` of ``/proc/self/status``):

* ``fit``: one epoch of a TripletEmbedder with a small convolutional
  backbone on a :class:`~sklearn_dml.inputs.FileDataset` of the first
  ``FIT_SAMPLES`` files (batches of 128 read by a DataLoader);
* ``lazy``: ``transform`` of the same FileDataset (chunks of 1,024 images);
* ``array``: the in-memory way, for reference: all images loaded into one
  float32 array, then ``transform`` (through ``DatasetInput(array)``, the
  array being image-shaped).

Each reports its resident memory after imports and the model (baseline) and
its peak. Run: ``python benchmarks/bench_lazy_inputs.py [--n 100000] [--out FILE]``;
writes ``benchmarks/results/lazy_inputs.md`` by default.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _provenance import provenance, write_results

RESULTS = Path(__file__).parent / "results" / "lazy_inputs.md"
FIT_SAMPLES = 20_000


def _status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MiB
    raise KeyError(field)


def _load_image(path):
    return np.load(path).reshape(1, 28, 28) / 255.0


def _backbone():
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 6 * 6, 32),
    )


def child(mode, folder):
    import torch

    from sklearn_dml import TripletEmbedder
    from sklearn_dml.inputs import DatasetInput, FileDataset

    torch.set_num_threads(1)
    paths = sorted(Path(folder).glob("*.npy"), key=lambda p: int(p.stem))
    labels = np.load(Path(folder) / "labels.npz")["y"]
    model_path = Path(folder) / "model.pkl"
    if mode != "fit":
        with open(model_path, "rb") as f:  # written by this script: trusted
            model = pickle.load(f)
    baseline = _status("VmRSS")
    tic = time.perf_counter()
    if mode == "fit":
        model = TripletEmbedder(
            backbone=_backbone(), max_iter=1, batch_size=128, random_state=0
        ).fit(FileDataset(paths[:FIT_SAMPLES], _load_image), labels[:FIT_SAMPLES])
        with open(model_path, "wb") as f:
            pickle.dump(model, f)
        out_shape = (min(len(paths), FIT_SAMPLES),)
    elif mode == "lazy":
        Z = model.transform(FileDataset(paths, _load_image, batch_size=1024))
        out_shape = Z.shape
    else:
        X = np.stack([_load_image(p) for p in paths]).astype(np.float32)
        Z = model.transform(DatasetInput(X, batch_size=1024))
        out_shape = Z.shape
    seconds = time.perf_counter() - tic
    print(
        json.dumps(
            {
                "mode": mode,
                "baseline_mib": baseline,
                "peak_mib": _status("VmHWM"),
                "seconds": seconds,
                "shape": list(out_shape),
            }
        )
    )


def write_files(folder, n):
    from sklearn_dml.datasets import load_mnist_5k

    X, y = load_mnist_5k(return_X_y=True)
    images = np.asarray(X, dtype=np.uint8).reshape(-1, 28, 28)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = i % len(images)
        shift = (i // len(images)) % 5 - 2
        np.save(Path(folder) / f"{i}.npy", np.roll(images[k], shift, axis=1))
        labels[i] = y[k]
    np.savez(Path(folder) / "labels.npz", y=labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        tic = time.perf_counter()
        write_files(folder, args.n)
        print(f"wrote {args.n} files in {time.perf_counter() - tic:.0f}s", flush=True)
        disk = sum(p.stat().st_size for p in Path(folder).glob("*.npy")) / 2**20
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
        for mode in ("fit", "lazy", "array"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, folder],
                capture_output=True,
                text=True,
                env=env,
            )
            if out.returncode:
                sys.exit(f"child {mode} failed:\n{out.stderr}")
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print(rows[mode], flush=True)
    n = args.n
    float_mib = n * 784 * 4 / 2**20
    lines = [
        f"# Training on and embedding {n:,} images from files",
        "",
        provenance() + " One torch thread, a shared machine.",
        "",
        f"{n:,} images of 28x28 uint8, one `.npy` file each ({disk:.0f} MiB on "
        f"disk; {n * 784 / 2**20:.0f} MiB as uint8, {float_mib:.0f} MiB as the "
        "float32 array a network reads). Model: TripletEmbedder with a small "
        "convolutional backbone (two 3x3 convolutions, 32-d embeddings); the "
        f"embeddings of all images take {n * 32 * 4 / 2**20:.1f} MiB. Each row "
        "is its own process; memory is resident memory (RSS) in MiB.",
        "",
        "| phase | input | RSS before (imports, model) | peak RSS | peak - before |"
        " time ratio |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "fit": f"fit, 1 epoch on {min(n, FIT_SAMPLES):,} images",
        "lazy": "transform",
        "array": "transform",
    }
    inputs = {
        "fit": "FileDataset",
        "lazy": "FileDataset (chunks of 1,024)",
        "array": "one float32 array in memory",
    }
    for mode in ("fit", "lazy", "array"):
        r = rows[mode]
        ratio = (
            f"{r['seconds'] / rows['array']['seconds']:.2f}" if mode != "fit" else ""
        )
        lines.append(
            f"| {names[mode]} | {inputs[mode]} | {r['baseline_mib']:.0f} | "
            f"{r['peak_mib']:.0f} | {r['peak_mib'] - r['baseline_mib']:.0f} | "
            f"{ratio} |"
        )
    lines += [
        "",
        "Time ratio: transform time over that of the in-memory array (whose "
        "time includes loading the files into the array), separate processes on "
        "a shared machine, indicative only.",
    ]
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
