"""Mixed precision on CUDA: autocast for the forward pass, a gradient scaler.

``mixed_precision="float16"`` runs the forward pass and the loss under
``torch.autocast(device_type="cuda", dtype=torch.float16)`` and scales the
loss with a :class:`torch.amp.GradScaler` (float16 gradients underflow
without it); ``"bfloat16"`` autocasts to bfloat16, whose range is that of
float32, without a scaler. The weights and the optimizer stay in float32.
Off the GPU it has no effect: training runs in float32 with a warning.
"""

import contextlib
import warnings

import torch

__all__ = ["MixedPrecision"]

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class MixedPrecision:
    """The autocast context and gradient scaler of one training run.

    Parameters
    ----------
    mode : {None, "float16", "bfloat16"}
        The estimator's ``mixed_precision``.
    device : torch.device
        The training device; anything but CUDA disables mixed precision
        (with a ``UserWarning`` when ``mode`` is set).
    name : str
        The estimator's name, for the warning.
    """

    def __init__(self, mode, device, name="model"):
        self.dtype = None if mode is None else _DTYPES[mode]
        if self.dtype is not None and device.type != "cuda":
            warnings.warn(
                f"{name}: mixed_precision={mode!r} applies to CUDA devices only; "
                f"training on {device.type!r} runs in float32.",
                UserWarning,
                stacklevel=4,
            )
            self.dtype = None
        self.device_type = device.type
        self.scaler = (
            torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        )

    def autocast(self):
        """The context the forward pass and the loss run in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def scale(self, loss):
        """The loss to differentiate (scaled with float16)."""
        return loss if self.scaler is None else self.scaler.scale(loss)

    def state_dict(self):
        """The gradient scaler's state (its current scale and growth count).

        ``None`` without a scaler (float32, bfloat16, off the GPU).
        """
        if self.scaler is None:
            return None
        return dict(self.scaler.state_dict()) or None

    def load_state_dict(self, state):
        """Continue from a scaler state of :meth:`state_dict` (``None``: no-op).

        A resumed float16 run (``warm_start``, ``partial_fit``, a checkpoint)
        keeps the loss scale it had reached instead of starting again from
        the initial scale, whose first steps overflow and are skipped.
        """
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
