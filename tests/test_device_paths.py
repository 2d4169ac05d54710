"""CUDA, mixed precision and pinned memory, checked without a GPU.

CUDA is faked: ``torch.cuda.is_available`` says yes, and moves to a CUDA
device, pinning, ``torch.autocast`` and the gradient scaler are recorded
instead of done, so that the engine's device path runs on the CPU.
"""

import contextlib

import numpy as np
import pytest
import torch

from sklearn_dml import TripletEmbedder
from sklearn_dml.inputs import DatasetInput

PARAMS = dict(
    n_components=4,
    hidden_layer_sizes=(8,),
    max_iter=1,
    batch_size=32,
    anchor_weight=None,
    random_state=0,
)


class FakeScaler:
    """Records the calls; its scale doubles at every ``update``."""

    def __init__(self, log, device="cuda"):
        self.log = log
        self.scale_value = 1024.0
        log.append(("scaler", device))

    def state_dict(self):
        return {"scale": self.scale_value}

    def load_state_dict(self, state):
        self.log.append(("load_scaler_state", state["scale"]))
        self.scale_value = state["scale"]

    def scale(self, loss):
        self.log.append("scale")
        return loss * 1.0

    def unscale_(self, optimizer):
        self.log.append("unscale")

    def step(self, optimizer):
        self.log.append("step")
        optimizer.step()

    def update(self):
        self.log.append("update")
        self.scale_value *= 2


@pytest.fixture
def fake_cuda(monkeypatch):
    log = []
    tensor_to, module_to = torch.Tensor.to, torch.nn.Module.to
    fork_rng = torch.random.fork_rng

    def is_cuda(args, kwargs):
        dev = args[0] if args else kwargs.get("device")
        return isinstance(dev, (str, torch.device)) and torch.device(dev).type == "cuda"

    def fake_tensor_to(self, *args, **kwargs):
        if is_cuda(args, kwargs):
            log.append(("tensor_to_cuda", kwargs.get("non_blocking", False)))
            return self
        return tensor_to(self, *args, **kwargs)

    def fake_module_to(self, *args, **kwargs):
        if is_cuda(args, kwargs):
            log.append(("module_to_cuda", type(self).__name__))
            return self
        log.append(("module_to", str(args[0] if args else kwargs)))
        return module_to(self, *args, **kwargs)

    def fake_pin(self):
        log.append("pin")
        return self

    @contextlib.contextmanager
    def fake_autocast(device_type, dtype=None, **kwargs):
        log.append(("autocast", device_type, dtype))
        yield

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.Tensor, "to", fake_tensor_to)
    monkeypatch.setattr(torch.nn.Module, "to", fake_module_to)
    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    monkeypatch.setattr(torch, "autocast", fake_autocast)
    monkeypatch.setattr(torch.amp, "GradScaler", lambda d: FakeScaler(log, d))
    monkeypatch.setattr(
        torch.random, "fork_rng", lambda devices=None, **kw: fork_rng(devices=[])
    )
    return log


@pytest.fixture(scope="module")
def data(tiny):
    X, y = tiny
    return X[:96].astype(np.float32), y[:96]


def test_float16_autocasts_scales_and_moves_batches_asynchronously(fake_cuda, data):
    X, y = data
    est = TripletEmbedder(
        device="cuda", mixed_precision="float16", max_grad_norm=1.0, **PARAMS
    ).fit(X, y)
    log = fake_cuda
    n_steps = 3  # 96 samples in batches of 32
    assert ("scaler", "cuda") in log
    assert log.count(("autocast", "cuda", torch.float16)) == n_steps
    steps = [e for e in log if e in ("scale", "unscale", "step", "update")]
    assert steps == ["scale", "unscale", "step", "update"] * n_steps
    # Batches (samples and labels) go to the GPU without blocking.
    assert log.count(("tensor_to_cuda", True)) == 2 * n_steps
    moved = {e[1] for e in log if e[0] == "module_to_cuda"}
    assert {"ResidualMLP", "TripletMarginLoss"} <= moved
    # The fitted model comes back to the CPU.
    assert ("module_to", "cpu") in log
    assert all(p.device.type == "cpu" for p in est.backbone_.parameters())
    assert "pin" not in log  # arrays in memory are not pinned


def test_bfloat16_autocasts_without_a_scaler(fake_cuda, data):
    X, y = data
    TripletEmbedder(device="cuda", mixed_precision="bfloat16", **PARAMS).fit(X, y)
    assert fake_cuda.count(("autocast", "cuda", torch.bfloat16)) == 3
    assert not [e for e in fake_cuda if e in ("scale", "step")]
    assert not [e for e in fake_cuda if isinstance(e, tuple) and e[0] == "scaler"]


@pytest.mark.parametrize("pin", [True, False])
def test_lazy_batches_are_pinned_before_the_transfer(fake_cuda, data, pin):
    X, y = data
    est = TripletEmbedder(device="cuda", **PARAMS)
    est.fit(DatasetInput(X, pin_memory=pin), y)
    assert fake_cuda.count("pin") == (3 if pin else 0)
    assert not [e for e in fake_cuda if isinstance(e, tuple) and e[0] == "autocast"]
    fake_cuda.clear()
    est.transform(DatasetInput(X, batch_size=40, pin_memory=pin))
    assert fake_cuda.count("pin") == (3 if pin else 0)  # 40 + 40 + 16 samples
    assert fake_cuda.count(("tensor_to_cuda", True)) == 3


def test_mixed_precision_on_the_cpu_warns_and_trains_in_float32(data):
    X, y = data
    with pytest.warns(UserWarning, match="CUDA devices only"):
        est = TripletEmbedder(device="cpu", mixed_precision="float16", **PARAMS)
        est.fit(X, y)
    plain = TripletEmbedder(device="cpu", **PARAMS).fit(X, y)
    np.testing.assert_array_equal(est.transform(X), plain.transform(X))


def test_float16_training_resumes_the_loss_scale(fake_cuda, data, tmp_path):
    from sklearn_dml.persistence import load, save

    X, y = data
    est = TripletEmbedder(device="cuda", mixed_precision="float16", **PARAMS)
    est.fit(X, y)  # a fresh fit starts from the scaler's own initial scale
    assert not [e for e in fake_cuda if e[0] == "load_scaler_state"]
    fake_cuda.clear()
    est.partial_fit(X, y)  # 3 updates after the fit's 3: 1024 * 2**3
    assert ("load_scaler_state", 1024.0 * 2**3) in fake_cuda
    fake_cuda.clear()
    path = tmp_path / "model.pt"
    save(est, path)  # the scale reached (1024 * 2**6) travels with the model
    resumed = load(path).set_params(warm_start=True)
    resumed.fit(X, y)
    assert ("load_scaler_state", 1024.0 * 2**6) in fake_cuda


def test_float16_checkpoints_hold_the_loss_scale_of_their_epoch(
    fake_cuda, data, tmp_path
):
    from sklearn_dml.callbacks import Checkpoint
    from sklearn_dml.persistence import load

    X, y = data
    checkpoint = Checkpoint(str(tmp_path / "epoch{epoch}.pt"), at_end=False)
    params = {**PARAMS, "max_iter": 2}
    TripletEmbedder(
        device="cuda", mixed_precision="float16", callbacks=[checkpoint], **params
    ).fit(X, y)
    fake_cuda.clear()
    load(checkpoint.saved_[0]).set_params(warm_start=True, max_iter=1).fit(X, y)
    assert ("load_scaler_state", 1024.0 * 2**3) in fake_cuda  # after epoch 1
