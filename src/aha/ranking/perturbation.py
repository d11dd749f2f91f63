"""Perturbing images and scoring the classifier on them: shared by the training objective, the metrics and
the comparison methods.

This module owns four ideas:

- **references**: what a pixel becomes once it is deleted (:data:`REFERENCES`, :func:`make_reference`):

  - ``"mean"``: the normalisation mean colour, i.e. zeros in normalised space (RISE and the paper);
  - ``"black"``: 0 in [0, 1] pixel space, i.e. ``-mean / std`` in normalised space (needs the normalisation);
  - ``"blur"``: a strong Gaussian blur of the image itself (kernel 37 px, sigma 37 px at 224 px, scaled
    linearly with the image side);

- **the normalisation** of ``pixel_values``, from an image processor or given as mean and std
  (:func:`resolve_normalisation`), which the "black" reference needs;
- **masks**: cell masks to smoothed pixel masks (:func:`cell_masks_to_pixels`) and the blend towards a
  reference (:func:`blend`);
- **the engine**: one chunked "build perturbed images, forward, score" loop (:func:`iter_scores`,
  :func:`perturbation_scores`), and the trapezoid AUC of the curves it traces (:func:`trapezoid_auc`).

All images here are ``pixel_values`` in the classifier's *normalised* space, shape (B, C, H, W), float.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_choice, check_normalisation, check_number
from .scores import class_scores


REFERENCES = ("mean", "black", "blur")


def gaussian_kernel1d(sigma: float, kernel_size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length ``kernel_size`` and std ``sigma`` (pixels), shape (kernel_size,)."""
    x = torch.arange(kernel_size, device=device, dtype=dtype) - (kernel_size - 1) / 2
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float, kernel_size: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, as two matrix products with the (H, H) and (W, W)
    :func:`smoothing_matrix`: the values of a padded depthwise convolution to float rounding, 2.5-6x faster on CPU at
    the classifier input sizes it serves (32-518 px), whose depthwise convolutions are slow.

    Args:
        images: (N, C, H, W) float.
        sigma: standard deviation in pixels.
        kernel_size: odd kernel length in pixels (default: 3 sigma on each side, ``2 * ceil(3 sigma) + 1``); clipped
            to the largest odd size reflect padding allows.
    Returns:
        (N, C, H, W), same dtype and device.
    """
    height, width = images.shape[-2:]
    # one kernel for both axes: clipped to the smaller side
    kernel_size = reflect_kernel_size(
        2 * math.ceil(3 * sigma) + 1 if kernel_size is None else kernel_size, min(height, width)
    )
    if kernel_size == 1:
        return images
    rows = smoothing_matrix(height, sigma, images.device, images.dtype, kernel_size)
    columns = rows if width == height else smoothing_matrix(width, sigma, images.device, images.dtype, kernel_size)
    return rows @ images @ columns.T


def reference_blur(images: torch.Tensor) -> torch.Tensor:
    """The strong blur used as a reference: kernel 37 / sigma 37 at 224 px, scaled with the image side."""
    side = min(images.shape[-2:])
    sigma = 37.0 * side / 224.0
    kernel_size = int(round(sigma)) | 1
    return gaussian_blur(images, sigma=sigma, kernel_size=kernel_size)


def resolve_normalisation(
    image_processor=None,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
    channels: int | None = None,
) -> tuple[list[float], list[float]] | None:
    """The (mean, std) that map [0, 1] pixels to the classifier's normalised space, or None when not given.

    The one way every entry point takes the normalisation: an image processor (whose ``do_normalize=False``
    means mean 0 and std 1), or ``image_mean`` and ``image_std``, not both.

    Args:
        channels: the images' channel count, when known: each list must have one value per channel.
    Raises:
        ValueError: both a processor and values, only one of mean and std, or values that are not one finite
            number per channel (std > 0).
    """
    if image_processor is not None:
        if image_mean is not None or image_std is not None:
            raise ValueError("pass either image_processor or image_mean/image_std, not both")
        image_mean, image_std = image_processor.image_mean, image_processor.image_std
        if not getattr(image_processor, "do_normalize", True):
            count = channels or len(image_mean)
            return [0.0] * count, [1.0] * count
    if image_mean is None and image_std is None:
        return None
    if image_mean is None or image_std is None:
        raise ValueError("pass both image_mean and image_std (the normalisation of pixel_values), or neither")
    check_normalisation(image_mean, image_std, channels)
    return [float(value) for value in image_mean], [float(value) for value in image_std]


def check_reference(kind: str, normalisation: tuple | None, needed_by: str | None = None) -> None:
    """Raise a ValueError unless ``kind`` is one of :data:`REFERENCES` and, for ``"black"``, the normalisation
    (see :func:`resolve_normalisation`) is known. ``needed_by`` names what needs it in the message."""
    check_choice("reference", kind, REFERENCES)
    if kind == "black" and normalisation is None:
        who = needed_by or 'reference "black"'
        raise ValueError(
            f"{who} needs the normalisation of pixel_values: pass image_processor=..., or image_mean and image_std"
        )


def black_in_normalised_space(
    image_mean: Sequence[float], image_std: Sequence[float], like: torch.Tensor
) -> torch.Tensor:
    """The colour 0 of [0, 1] pixel space, expressed in normalised space: shape (1, C, 1, 1)."""
    check_normalisation(image_mean, image_std, like.shape[1])
    mean = torch.as_tensor(image_mean, device=like.device, dtype=like.dtype)
    std = torch.as_tensor(image_std, device=like.device, dtype=like.dtype)
    return (-mean / std).view(1, -1, 1, 1)


def make_reference(
    pixel_values: torch.Tensor,
    kind: str,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> torch.Tensor:
    """The reference image that deleted pixels move towards.

    Args:
        pixel_values: (B, C, H, W) images in normalised space.
        kind: one of ``"mean"``, ``"black"``, ``"blur"`` (see the module docstring).
        image_mean, image_std: the processor's normalisation, needed for ``"black"`` only.
    Returns:
        (B, C, H, W) reference, in normalised space.
    """
    normalisation = None if image_mean is None or image_std is None else (image_mean, image_std)
    check_reference(kind, normalisation)
    if kind == "mean":
        return torch.zeros_like(pixel_values)
    if kind == "black":
        return black_in_normalised_space(image_mean, image_std, pixel_values).expand_as(pixel_values).clone()
    return reference_blur(pixel_values)


def reflect_kernel_size(kernel_size: int, side: int) -> int:
    """``kernel_size`` made odd and clipped to the largest kernel reflect padding allows on ``side`` pixels (radius <
    side), at least 1."""
    kernel_size = max(1, min(kernel_size, 2 * side - 3))
    return kernel_size - 1 + kernel_size % 2


def smoothing_matrix(
    size: int, sigma: float, device=None, dtype=torch.float32, kernel_size: int | None = None
) -> torch.Tensor:
    """Gaussian smoothing of a length-``size`` signal as a matrix: ``S @ x`` smooths ``x`` (size,) with std
    ``sigma`` pixels, an odd kernel of ``kernel_size`` (default: radius ``2 * sigma``) and reflect padding (the
    kernel is clipped to what reflect padding allows), shape (size, size). The identity when ``sigma`` is 0."""
    eye = torch.eye(size, device=device, dtype=dtype)
    kernel_size = reflect_kernel_size(2 * int(round(2 * sigma)) + 1 if kernel_size is None else kernel_size, size)
    if sigma <= 0 or kernel_size == 1:
        return eye
    radius = kernel_size // 2
    kernel = gaussian_kernel1d(sigma, kernel_size, device=device, dtype=dtype)
    padded = F.pad(eye.unsqueeze(1), (radius, radius), mode="reflect")  # column j of S = smoothed e_j
    return F.conv1d(padded, kernel.view(1, 1, -1)).squeeze(1).T


def cell_to_pixel_matrix(grid: int, size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Nearest-neighbour upsampling from ``grid`` cells to ``size`` pixels followed by Gaussian smoothing
    (:func:`smoothing_matrix`), as one (size, grid) matrix."""
    nearest = F.interpolate(torch.eye(grid, device=device, dtype=dtype).unsqueeze(0), size=size, mode="nearest")
    return smoothing_matrix(size, sigma, device, dtype) @ nearest.squeeze(0).T


def cell_masks_to_pixels(cell_masks: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Cell masks (..., G, G) -> smoothed pixel masks (..., H, W): nearest upsampling then a Gaussian of std
    ``sigma`` pixels, done as two small matrix products ``A @ M @ B^T`` (both steps are separable and linear)."""
    grid = cell_masks.shape[-1]
    rows = cell_to_pixel_matrix(grid, size[0], sigma, cell_masks.device, cell_masks.dtype)
    columns = (
        rows if size[1] == size[0] else cell_to_pixel_matrix(grid, size[1], sigma, cell_masks.device, cell_masks.dtype)
    )
    return rows @ cell_masks @ columns.T


def blend(images: torch.Tensor, reference: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Move masked pixels towards the reference: ``images + masks * (reference - images)``.

    Args:
        images, reference: (..., C, H, W), broadcastable to each other.
        masks: (..., H, W) in [0, 1], broadcastable to the images' leading dims; 1 means fully replaced
            by the reference.
    Returns:
        (..., C, H, W).
    """
    return torch.lerp(images, reference, masks.unsqueeze(-3).to(images.dtype))


# ----------------------------------------------------------------------------------------------- the engine
def iter_scores(
    classifier: nn.Module,
    count: int,
    images_at: Callable[[slice], torch.Tensor],
    classes: torch.Tensor,
    score: str = "probability",
    chunk_size: int = 64,
    checkpoint: bool = False,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """The engine: build ``count`` perturbed images chunk by chunk, push each chunk through the classifier and
    score it. Yields ``(chunk, images, scores)`` per chunk, so a caller can also take gradients chunk by chunk.

    Args:
        classifier: called as ``classifier(pixel_values=x).logits`` -> (N, num_labels).
        count: the number of perturbed images.
        images_at: ``images_at(chunk)`` -> the perturbed images ``chunk`` (a ``slice`` of ``range(count)``),
            (len(chunk), C, H, W); how index maps to (image, perturbation) is the caller's choice.
        classes: (count,) long, the class scored on each perturbed image.
        score: a kind of :func:`aha.ranking.scores.class_scores` (``"probability"``, ``"logit"``, ``"correct"``).
        chunk_size: images per classifier forward.
        checkpoint: when autograd records and a chunk's images require grad, drop the chunk's activations after
            its forward and recompute them in the backward pass (one extra forward per chunk), so the classifier
            holds the activations of one chunk at a time.
    Yields:
        (chunk, images, scores): the slice, its images and their (len(chunk),) float32 scores, differentiable
        w.r.t. the images for "probability" and "logit" when autograd is on.
    """
    check_number("chunk_size", chunk_size, integer=True, minimum=1)

    def forward(images: torch.Tensor, chunk_classes: torch.Tensor) -> torch.Tensor:
        return class_scores(classifier(pixel_values=images).logits, chunk_classes, score)

    for first in range(0, count, chunk_size):
        chunk = slice(first, min(first + chunk_size, count))
        images = images_at(chunk)
        if checkpoint and torch.is_grad_enabled() and images.requires_grad:
            scores = torch.utils.checkpoint.checkpoint(forward, images, classes[chunk], use_reentrant=False)
        else:
            scores = forward(images, classes[chunk])
        yield chunk, images, scores


def perturbation_scores(*args, **kwargs) -> torch.Tensor:
    """The scores of all ``count`` perturbed images of :func:`iter_scores`, called with the same arguments: (count,)
    float32."""
    return torch.cat([scores for _, _, scores in iter_scores(*args, **kwargs)])


def trapezoid_auc(curves: torch.Tensor, fractions: torch.Tensor | None = None) -> torch.Tensor:
    """Trapezoid area under curves sampled at ``fractions``: (..., F) curves, (F,) fractions -> (...).

    The one AUC of the library: every metric's curves and the objective's soft curves go through it.
    ``fractions=None`` means F evenly spaced fractions of [0, 1] (the objective's curves), summed as
    ``(sum - (first + last) / 2) / (F - 1)``, which equals ``torch.trapezoid`` over ``linspace(0, 1, F)`` up to
    float rounding."""
    if fractions is None:
        inner = curves.sum(dim=-1) - 0.5 * (curves[..., 0] + curves[..., -1])
        return inner / (curves.shape[-1] - 1)
    return torch.trapezoid(curves, x=fractions.to(curves.device, curves.dtype), dim=-1)
