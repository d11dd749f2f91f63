"""Input checks shared by every public entry point: images, class indices, numeric and boolean options, with
messages that name what was expected."""

from __future__ import annotations

import math
import numbers
from typing import Callable, Iterable, Sequence

import torch

from .modeling.backbones import BackboneSpec


#: Largest magnitude accepted in ``pixel_values``. Images in a classifier's normalised space,
#: ``(x - mean) / std`` with ``x`` in [0, 1], stay within about 3 for the usual normalisations (ImageNet's:
#: [-2.2, 2.7]; mean = std = 0.5: [-1, 1]); raw 0..255 pixels, or ones rescaled but divided by a tiny
#: std, go far past it.
MAX_ABS_PIXEL_VALUE = 10.0
#: Most points of a soft deletion / insertion curve (``num_fractions``): each inner point costs one classifier
#: forward per map and term, so a larger count only reaches the allocator.
MAX_FRACTIONS = 256


def check_pixel_values(pixel_values, specs: Iterable[BackboneSpec] = ()) -> None:
    """Raise a ValueError unless ``pixel_values`` is a finite (B, C, H, W) float tensor of at least one image,
    within the normalised range (``|x| <= MAX_ABS_PIXEL_VALUE``), that every model described by ``specs`` can
    take (channel count, image size)."""
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
        got = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"pixel_values must be a (B, C, H, W) tensor (a 4-D float tensor), got {got}")
    if not pixel_values.is_floating_point():
        raise ValueError(f"pixel_values must be a 4-D float tensor (floating point), got dtype {pixel_values.dtype}")
    if 0 in pixel_values.shape:
        raise ValueError(
            f"pixel_values must hold at least one image (B, C, H, W all >= 1), got shape {tuple(pixel_values.shape)}"
        )
    channels, height, width = pixel_values.shape[1:]
    for spec in specs:
        if channels != spec.num_channels:
            raise ValueError(
                f"pixel_values has {channels} channels; the classifier expects {spec.num_channels} channels"
            )
        spec.check_pixel_size(height, width)
    largest = pixel_values.detach().abs().amax().item()  # NaN and infinity propagate
    if not math.isfinite(largest):
        raise ValueError("pixel_values contains NaN or infinite values")
    if largest > MAX_ABS_PIXEL_VALUE:
        raise ValueError(
            f"pixel_values reach {largest:.4g}, outside the classifier's normalised range (|x| <= "
            f"{MAX_ABS_PIXEL_VALUE:g} expected): raw 0..255 pixels? Pass the images through the classifier's image "
            "processor, which rescales them to [0, 1] and normalises them"
        )


def check_normalisation(image_mean, image_std, channels: int | None = None) -> None:
    """Raise a ValueError unless ``image_mean`` and ``image_std`` hold one finite value per channel each, every
    std > 0 (a zero std would turn the "black" reference into infinities and the AUCs into NaN)."""
    for name, values, rule in (("image_mean", image_mean, {}), ("image_std", image_std, dict(above=0))):
        values = list(values)
        if channels is not None and len(values) != channels:
            raise ValueError(f"{name} must have one value per channel ({channels}), got {len(values)}: {values}")
        for index, value in enumerate(values):
            check_number(f"{name}[{index}]", float(value) if hasattr(value, "item") else value, **rule)


def check_choice(what: str, value, choices: Sequence) -> None:
    """Raise a ValueError naming ``what`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {tuple(choices)}")


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value of a tensor is finite (integer tensors always are). One ``aminmax`` pass, without the
    full-size boolean tensor of ``isfinite(tensor).all()`` (about 30 times faster on a ViT-B's weights): NaN
    propagates to both ends, and an infinity is an end itself."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor.detach())
    return math.isfinite(low.item()) and math.isfinite(high.item())


def check_bool(name: str, value) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is True or False. Strings ("false", "no", "0"), numbers
    and None are refused, never read by their truthiness: ``bool("false")`` is True."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False (a bool), got {value!r}")


def check_number(
    name: str, value, *, integer: bool = False, minimum=None, above=None, maximum=None, optional: bool = False
) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a finite real number (an int when ``integer``;
    booleans are refused) with ``value >= minimum``, ``value > above`` and ``value <= maximum`` where given.
    ``optional`` accepts None. NaN fails every comparison, so it is refused explicitly, never by accident."""
    if value is None and optional:
        return
    if integer:
        expected = "an integer"
        valid = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    else:
        expected = "a finite number"
        valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    bounds = [
        f">= {minimum}" if minimum is not None else None,
        f"> {above}" if above is not None else None,
        f"<= {maximum}" if maximum is not None else None,
    ]
    expected = " ".join([expected, " and ".join(b for b in bounds if b)]).strip() + (" (or None)" if optional else "")
    if valid:
        valid = (
            (minimum is None or value >= minimum)
            and (above is None or value > above)
            and (maximum is None or value <= maximum)
        )
    if not valid:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_classes(classes, batch_size: int, num_labels: int | None, name: str = "target", device=None) -> torch.Tensor:
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


def resolve_target(
    target,
    batch_size: int,
    num_labels: int | None,
    predicted: Callable[[], torch.Tensor],
    name: str = "target",
    device=None,
) -> torch.Tensor:
    """The classes explained, (batch_size,) long: the predicted ones when ``target`` is None, else ``target``
    checked by :func:`check_classes` (an int for every image, or ``batch_size`` integer classes in
    ``[0, num_labels)``) and moved to ``device``.

    Args:
        predicted: returns the (batch_size,) predicted classes; called only when ``target`` is None, so it may run
            the classifier (the metrics' chunked forward) or read logits a method already has
            (``lambda: logits.argmax(-1)``).
        name: what the classes are called in error messages ("target", "labels").
    """
    if target is None:
        return predicted()
    return check_classes(target, batch_size, num_labels, name, device=device)
