"""Batch augmentations for training: tensor batch in, tensor batch out.

The estimators' ``augment`` parameter takes any callable mapping a batch
tensor (already on the training device) to a batch tensor of the same
number of rows; the training engine applies it to every training batch,
never at ``transform``, ``score`` or early-stopping validation. The classes
here are such callables, vectorised over the batch, drawing from torch's
generator (which the engine seeds from ``random_state``). torchvision's v2
transforms also take batched tensors and are accepted as they are (the
package never imports torchvision), though they draw one random choice per
batch where these draw one per sample.
"""

from numbers import Integral, Real

import torch

from ._param_validation import Interval, InvalidParameterError
from ._params import ParamsMixin

__all__ = [
    "Compose",
    "GaussianNoise",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomTimeShift",
    "apply_augment",
]


def apply_augment(augment, xb):
    """``augment(xb)`` without gradient, checked to be a batch of as many rows.

    Parameters
    ----------
    augment : callable
        Batch tensor -> batch tensor.
    xb : torch.Tensor of shape (batch, ...)
        A training batch.

    Returns
    -------
    out : torch.Tensor of shape (batch, ...)
        The augmented batch, float32, on the device of ``xb``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.augmentation import apply_augment
    >>> apply_augment(lambda x: 2 * x, torch.ones(2, 3))
    tensor([[2., 2., 2.],
            [2., 2., 2.]])
    """
    with torch.no_grad():
        out = augment(xb)
    if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != xb.shape[0]:
        shape = (
            tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        )
        raise ValueError(
            f"augment must map a batch tensor of shape {tuple(xb.shape)} to a "
            f"tensor with as many rows; it returned {shape}."
        )
    return out.to(device=xb.device, dtype=xb.dtype)


class _Augmentation(ParamsMixin):
    """``get_params`` / ``set_params`` / ``clone`` like the other components."""

    def __repr__(self):
        params = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._get_param_names())
        return f"{type(self).__name__}({params})"


class RandomCrop(_Augmentation):
    """Pad images with zeros, then crop each one back to its size at a random place.

    Shifts the content of every image by its own random offset of up to
    ``padding`` pixels in each direction (the classic augmentation of small
    image benchmarks).

    Parameters
    ----------
    padding : int, default=4
        Pixels of zero padding on each side; the largest shift.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.augmentation import RandomCrop
    >>> RandomCrop(padding=2)(torch.rand(5, 1, 8, 8)).shape
    torch.Size([5, 1, 8, 8])
    """

    _parameter_constraints = {"padding": [Interval(Integral, 0, None, closed="left")]}

    def __init__(self, padding=4):
        self.padding = padding

    def __call__(self, x):
        squeeze = x.ndim == 3
        if squeeze:
            x = x.unsqueeze(1)
        p = int(self.padding)
        if p == 0:
            return x.squeeze(1) if squeeze else x
        n, c, h, w = x.shape
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), device=x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), device=x.device)
        rows = dy[:, None] + torch.arange(h, device=x.device)  # (n, h)
        cols = dx[:, None] + torch.arange(w, device=x.device)  # (n, w)
        batch = torch.arange(n, device=x.device)[:, None, None]
        # (n, h, w, c) by advanced indexing, then channels first again.
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        out = out.permute(0, 3, 1, 2)
        return out.squeeze(1) if squeeze else out


class RandomHorizontalFlip(_Augmentation):
    """Mirror each image (its last axis) with probability ``p``.

    Parameters
    ----------
    p : float, default=0.5
        Probability that an image is flipped.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.augmentation import RandomHorizontalFlip
    >>> RandomHorizontalFlip(p=1.0)(torch.tensor([[[1.0, 2.0, 3.0]]]))
    tensor([[[3., 2., 1.]]])
    """

    _parameter_constraints = {"p": [Interval(Real, 0, 1, closed="both")]}

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x):
        flip = torch.rand(x.shape[0], device=x.device) < self.p
        mask = flip.view(-1, *([1] * (x.ndim - 1)))
        return torch.where(mask, x.flip(-1), x)


class GaussianNoise(_Augmentation):
    """Add independent Gaussian noise of standard deviation ``std`` to every value.

    Parameters
    ----------
    std : float, default=0.1
        Standard deviation of the noise, in the units of the input.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.augmentation import GaussianNoise
    >>> GaussianNoise(std=0.0)(torch.ones(2, 2))
    tensor([[1., 1.],
            [1., 1.]])
    """

    _parameter_constraints = {"std": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, std=0.1):
        self.std = std

    def __call__(self, x):
        return x + float(self.std) * torch.randn_like(x)


class RandomTimeShift(_Augmentation):
    """Shift each sequence ``(batch, T, d)`` in time by a random number of steps.

    Each sequence moves by its own shift drawn uniformly from
    ``-max_shift..max_shift``; the steps shifted in are zeros.

    Parameters
    ----------
    max_shift : int, default=4
        Largest shift, in steps.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.augmentation import RandomTimeShift
    >>> RandomTimeShift(max_shift=3)(torch.rand(4, 20, 2)).shape
    torch.Size([4, 20, 2])
    """

    _parameter_constraints = {"max_shift": [Interval(Integral, 0, None, closed="left")]}

    def __init__(self, max_shift=4):
        self.max_shift = max_shift

    def __call__(self, x):
        if x.ndim != 3:
            raise ValueError(
                f"RandomTimeShift expects sequences (batch, T, d), got {tuple(x.shape)}."
            )
        n, t, _ = x.shape
        m = int(self.max_shift)
        shift = torch.randint(-m, m + 1, (n,), device=x.device)
        source = torch.arange(t, device=x.device)[None, :] - shift[:, None]  # (n, t)
        inside = (source >= 0) & (source < t)
        gathered = torch.gather(x, 1, source.clamp(0, t - 1)[:, :, None].expand_as(x))
        return gathered * inside[:, :, None].to(x.dtype)


class Compose(_Augmentation):
    """Apply several augmentations one after the other.

    Parameters
    ----------
    transforms : list of callable
        Batch tensor -> batch tensor callables, applied in order.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.augmentation import Compose, GaussianNoise, RandomCrop
    >>> aug = Compose([RandomCrop(padding=2), GaussianNoise(std=0.05)])
    >>> aug(torch.rand(3, 1, 8, 8)).shape
    torch.Size([3, 1, 8, 8])
    """

    _parameter_constraints = {"transforms": [list, tuple]}

    def __init__(self, transforms):
        self.transforms = transforms

    def _check_param_relations(self, params):
        bad = [t for t in params["transforms"] if not callable(t)]
        if bad:
            raise InvalidParameterError(
                f"The transforms of Compose must be callables; got {bad!r}."
            )

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x
