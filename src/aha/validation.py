"""Input checks shared by every public entry point: images and class indices, with messages that say what
was expected."""

from __future__ import annotations

from typing import Iterable

import torch

from .backbones import BackboneSpec


def check_pixel_values(pixel_values, specs: Iterable[BackboneSpec] = ()) -> None:
    """Raise a ValueError unless ``pixel_values`` is a finite (B, C, H, W) float tensor that every model
    described by ``specs`` can take (channel count, image size)."""
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
        got = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"pixel_values must be a (B, C, H, W) tensor (a 4-D float tensor), got {got}")
    if not pixel_values.is_floating_point():
        raise ValueError(f"pixel_values must be a 4-D float tensor (floating point), got dtype {pixel_values.dtype}")
    channels, height, width = pixel_values.shape[1:]
    for spec in specs:
        if channels != spec.num_channels:
            raise ValueError(
                f"pixel_values has {channels} channels; the classifier expects {spec.num_channels} channels"
            )
        spec.check_pixel_size(height, width)
    if not torch.isfinite(pixel_values).all():
        raise ValueError("pixel_values contains NaN or infinite values")


def check_classes(
    classes, batch_size: int, num_labels: int | None, name: str = "target", device=None
) -> torch.Tensor:
    """Class indices as a (batch_size,) long tensor on ``device``.

    Args:
        classes: an int (the same class for every image) or a (batch_size,) integer tensor or sequence.
        num_labels: the classifier's number of classes; None skips the range check.
        name: what the classes are called in error messages ("target", "labels").
    Raises:
        ValueError: non-integer dtype, wrong shape, or a class outside [0, num_labels).
    """
    classes = torch.as_tensor(classes, device=device)
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {classes.dtype}")
    if classes.ndim == 0:
        classes = classes.expand(batch_size)
    if classes.shape != (batch_size,):
        raise ValueError(
            f"{name} must be an int or a ({batch_size},) tensor of classes (shape ({batch_size},)), "
            f"got shape {tuple(classes.shape)}"
        )
    if num_labels is not None and ((classes < 0) | (classes >= num_labels)).any():
        raise ValueError(f"{name} classes must be in [0, {num_labels}), got {classes.tolist()}")
    return classes.long()
