"""The curve engine of every perturbation metric: pixels perturbed in a per-image order, scored in chunks.

Given a per-image rank of every pixel and a number of pixels per step, the image at step ``s`` takes its
perturbed value on the pixels whose rank is below ``counts[s]`` and keeps its own value elsewhere. All
``B * F`` perturbed images are built from rank comparisons (``rank < count``, no per-step loops) and pushed
through the classifier by the one chunked scorer of :mod:`aha.ranking.perturbation` (:func:`~aha.ranking.perturbation.perturbation_scores`)
under ``torch.no_grad``; the curve is the target's score at each step, its area the one trapezoid AUC of
:func:`aha.ranking.perturbation.trapezoid_auc`.

The perturbed value is, by default, the same pixel of an ``end`` image (a reference, a baseline, a segment's
mean colour); a metric whose perturbed value depends on the whole mask (ROAD's imputation) passes ``fill``.

This module also owns what every metric shares: map layouts (:func:`pixel_maps`), the scored classes
(:func:`target_classes`: the target, or the predicted class :func:`predict`), the fractions (:func:`check_fractions`) and the input checks (:func:`check_inputs`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..ranking.perturbation import blend, perturbation_scores
from ..ranking.scores import SCORE_KINDS
from ..validation import check_choice, check_classes, check_number, check_pixel_values, resolve_target


def default_fractions() -> torch.Tensor:
    """The 21 fractions 0, 0.05, ..., 1 of the evaluation protocol, float64."""
    return torch.linspace(0.0, 1.0, 21, dtype=torch.float64)


def chefer_fractions() -> torch.Tensor:
    """The fractions 0, 0.1, ..., 0.9 of Chefer et al.'s positive/negative perturbation, float64."""
    return torch.linspace(0.0, 0.9, 10, dtype=torch.float64)


@dataclass
class CurveResult:
    """One perturbation metric over a batch.

    Attributes:
        fractions: (F,) float64, fractions of the pixels perturbed, ascending.
        curves: (B, F) float32, the target's score (softmax probability, or 0/1 top-1 correctness for
            Chefer's metrics) after perturbing each fraction.
        auc: (B,) float32, trapezoid area under each curve over ``fractions`` (not rescaled).
    """

    fractions: torch.Tensor
    curves: torch.Tensor
    auc: torch.Tensor

    @property
    def mean_auc(self) -> float:
        """The dataset mean of the per-image AUCs."""
        return self.auc.mean().item()

    @property
    def mean_curve(self) -> torch.Tensor:
        """(F,) the curve averaged over images."""
        return self.curves.mean(dim=0)


def device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The classifier's device and dtype, read off its first parameter."""
    param = next(model.parameters(), None)
    if param is None:
        raise TypeError(f"{type(model).__name__} has no parameters to read its device and dtype from")
    return param.device, param.dtype


def num_labels(model: nn.Module) -> int | None:
    """The classifier's number of classes, when its config says (None skips range checks)."""
    return getattr(getattr(model, "config", None), "num_labels", None)


def pixel_maps(
    attributions: torch.Tensor, batch: int, size: tuple[int, int], channels: int | None = None
) -> torch.Tensor:
    """Attribution maps in any accepted layout (see :mod:`aha.metrics`) as (B, H, W) per-pixel scores.

    Args:
        attributions: (B, H, W), (B, 1, H, W), (B, C, H, W) or the same on a coarser patch grid; real numbers.
        batch: B, the number of images the maps explain.
        size: (H, W) of those images, in pixels.
        channels: C of those images, the only channel count besides 1 accepted; None accepts any.
    Returns:
        (B, H, W), floating (integer/bool maps become float32; float maps keep their dtype).
    """
    maps = torch.as_tensor(attributions)
    if maps.is_complex():
        raise ValueError(f"attributions must be real numbers, got dtype {maps.dtype}")
    if maps.ndim not in (3, 4):
        raise ValueError(f"attributions must be (B, H, W) or (B, C, H, W), got shape {tuple(maps.shape)}")
    if maps.shape[0] != batch:
        raise ValueError(f"attributions hold {maps.shape[0]} maps but there are {batch} images")
    if maps.ndim == 4:
        if channels is not None and maps.shape[1] not in (1, channels):
            raise ValueError(
                f"attributions (B, C, H, W) must have C = 1 or the images' {channels} channels, "
                f"got shape {tuple(maps.shape)}"
            )
        maps = maps.sum(dim=1)
    if not maps.is_floating_point():
        maps = maps.float()
    if not torch.isfinite(maps).all():
        raise ValueError("attributions contain NaN or infinite values")
    height, width = size
    h, w = maps.shape[1:]
    if (h, w) == (height, width):
        return maps
    if height % h or width % w or height // h != width // w:
        raise ValueError(
            f"attribution maps of spatial size {(h, w)} match neither the images' {(height, width)} "
            "nor a patch grid with one stride dividing both sides"
        )
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def warn_if_constant(maps: torch.Tensor, metric: str) -> None:
    """Warn when some (B, ...) maps hold one value: their ranking is the seeded tie-break alone, so every
    ordering metric scores a random order (deletion equals least-relevant-first insertion)."""
    flat = maps.flatten(1)
    constant = (flat.amax(dim=1) == flat.amin(dim=1)).nonzero().flatten().tolist()
    if constant:
        warnings.warn(
            f"{metric}: the attribution maps of images {constant} are constant, so their pixel order is the "
            "tie-break alone (deletion equals least-relevant-first insertion): the score measures a random order",
            stacklevel=3,
        )


def predict(model: nn.Module, pixel_values: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """Top-1 class of each image, (B, C, H, W) -> (B,) long on the model's device."""
    check_number("chunk_size", chunk_size, integer=True, minimum=1)
    device, dtype = device_dtype(model)
    with torch.no_grad():
        return torch.cat(
            [
                model(pixel_values=chunk.to(device, dtype)).logits.argmax(dim=-1)
                for chunk in pixel_values.split(chunk_size)
            ]
        )


def target_classes(
    model: nn.Module, pixel_values: torch.Tensor, target=None, chunk_size: int = 64, name: str = "target"
) -> torch.Tensor:
    """The classes a metric scores, (B,) long on the model's device: ``target`` checked against the batch and the
    classifier's labels (an int, or (B,) classes; see :func:`aha.validation.resolve_target`), or, when it is None,
    the classifier's top-1 class of each image of ``pixel_values`` (B, C, H, W), :func:`predict` in chunks of
    ``chunk_size``. ``name`` is what the classes are called in error messages ("target", "labels")."""
    return resolve_target(
        target,
        len(pixel_values),
        num_labels(model),
        lambda: predict(model, pixel_values, chunk_size),
        name,
        device_dtype(model)[0],
    )


def check_fractions(fractions, name: str = "fractions") -> torch.Tensor:
    """(F,) float64 strictly ascending fractions in [0, 1], F >= 2 (None: :func:`default_fractions`).

    A repeated fraction is refused: it adds a zero-width step, and a curve of one distinct point has AUC 0."""
    fractions = default_fractions() if fractions is None else torch.as_tensor(fractions, dtype=torch.float64)
    if fractions.ndim != 1 or fractions.numel() < 2:
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 values, got shape {tuple(fractions.shape)}")
    if not ((fractions >= 0) & (fractions <= 1)).all() or (fractions.diff() < 0).any():  # NaN fails >= 0
        raise ValueError(f"{name} must be ascending values in [0, 1], got {fractions.tolist()}")
    if (fractions.diff() == 0).any():
        raise ValueError(f"{name} must be distinct (strictly ascending), got {fractions.tolist()}")
    return fractions


def ranked_scores(
    model: nn.Module,
    ranks: torch.Tensor,
    counts: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor | None,
    target: torch.Tensor,
    score: str = "probability",
    chunk_size: int = 64,
    fill: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The engine: the target's score after perturbing, per image and step, the pixels ranked below a count.

    Args:
        model: classifier called as ``model(pixel_values=x).logits`` -> (N, num_labels).
        ranks: (B, H * W) long, per image the step order of every row-major pixel (0 = perturbed first).
        counts: (F,) or (B, F) long, the number of pixels perturbed at each step (per image when 2-D).
        start: (B, C, H, W) images (normalised space).
        end: (B, C, H, W) or broadcastable: the value a perturbed pixel takes; unused with ``fill``.
        target: (B,) long, the class scored for each image.
        score: a kind of :func:`aha.ranking.scores.class_scores` (``"probability"``, ``"correct"``, ``"logit"``).
        chunk_size: images per classifier forward.
        fill: ``fill(images, masks, index)`` -> perturbed images, for a perturbation that depends on the whole
            mask: ``images`` (N, C, H, W) of the start, ``masks`` (N, H, W) bool, ``index`` (N,) the image each
            row belongs to. Default: ``blend(images, end[index], masks)``.
    Returns:
        (B, F) float32 scores on the model's device.
    """
    check_choice("score", score, SCORE_KINDS)
    device, dtype = device_dtype(model)
    batch, _, height, width = start.shape
    if ranks.shape != (batch, height * width):
        raise ValueError(f"ranks must be (B, H * W) = {(batch, height * width)}, got {tuple(ranks.shape)}")
    start, ranks = start.to(device, dtype), ranks.to(device)
    counts = torch.as_tensor(counts, device=device).long().expand(batch, -1)
    if end is not None:
        end = end.to(device, dtype).expand_as(start)
    num_steps = counts.shape[1]

    def images_at(chunk: slice) -> torch.Tensor:  # index = image * num_steps + step
        index = torch.arange(chunk.start, chunk.stop, device=device)
        image, step = index // num_steps, index % num_steps
        masks = (ranks.index_select(0, image) < counts[image, step, None]).view(-1, height, width)
        images = start.index_select(0, image)
        return fill(images, masks, image) if fill is not None else blend(images, end.index_select(0, image), masks)

    with torch.no_grad():
        scores = perturbation_scores(
            model, batch * num_steps, images_at, target.to(device).repeat_interleave(num_steps), score, chunk_size
        )
    return scores.view(batch, num_steps)


def order_to_ranks(order: torch.Tensor) -> torch.Tensor:
    """(B, N) per-image permutations (index perturbed first to last) -> (B, N) each index's position."""
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def perturbation_curve(
    model: nn.Module,
    order: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    fractions: torch.Tensor,
    target: torch.Tensor,
    score: str = "probability",
    chunk_size: int = 64,
) -> torch.Tensor:
    """The target's score along a path from ``start`` to ``end`` in the given pixel order.

    The image at fraction ``p`` is ``start`` with its first ``k = round(p * H * W)`` pixels of ``order``
    taken from ``end`` (:func:`ranked_scores`).

    Args:
        model: classifier called as ``model(pixel_values=x).logits`` -> (N, num_labels).
        order: (B, H * W) long, per image a permutation of the row-major pixel indices, perturbed first
            to last.
        start: (B, C, H, W) images at fraction 0 (normalised space).
        end: (B, C, H, W) or broadcastable, images at fraction 1.
        fractions: (F,) fractions in [0, 1].
        target: (B,) long, the class scored for each image.
        score: a kind of :func:`aha.ranking.scores.class_scores`: ``"probability"`` (softmax probability of the
            target), ``"correct"`` (1.0 where the top-1 class equals the target, else 0.0) or ``"logit"``.
        chunk_size: images per classifier forward.
    Returns:
        (B, F) float32 scores on the model's device.
    """
    batch, _, height, width = start.shape
    num_pixels = height * width
    if order.shape != (batch, num_pixels):
        raise ValueError(f"order must be (B, H * W) = {(batch, num_pixels)}, got {tuple(order.shape)}")
    counts = torch.round(torch.as_tensor(fractions, dtype=torch.float64) * num_pixels).long()
    return ranked_scores(model, order_to_ranks(order), counts, start, end, target, score, chunk_size)


def check_inputs(pixel_values, attributions, classes=None, name: str = "target") -> torch.Tensor:
    """The checks every metric runs on its inputs before any forward pass, and the evaluate module on every
    batch it is given: images (:func:`~aha.validation.check_pixel_values`), maps (:func:`pixel_maps`) and,
    when given, classes (integer indices, one per image). Returns the maps as (B, H, W)."""
    check_pixel_values(pixel_values)
    batch, channels, height, width = pixel_values.shape
    maps = pixel_maps(attributions, batch, (height, width), channels)
    if classes is not None:
        check_classes(classes, batch, None, name)
    return maps
