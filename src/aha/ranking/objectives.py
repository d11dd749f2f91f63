"""The differentiable deletion / insertion objective AHA is trained with.

A map h (N, H, W) is average-pooled to G x G cells; a Gumbel-Sinkhorn soft permutation of the cells
gives, for each fraction p, the soft probability that a cell is among the top p * G^2. Upsampled and
smoothed, those memberships are masks that move the image towards a reference; the target's softmax
probability on every perturbed image traces a soft curve whose trapezoid AUC is the loss term:

- deletion: most important cells replaced first (low AUC is good);
- least-relevant-first ("lrf", the paper's insertion): least important replaced first (high is good);
- RISE insertion: most important cells inserted first into the blurred image (high is good).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_bool
from .perturbation import (
    blend,
    cell_masks_to_pixels,
    make_reference,
    perturbation_scores,
    reference_blur,
    trapezoid_auc,
)
from .scores import class_scores
from .sorting import gumbel_sinkhorn, soft_topk_membership


def peak_penalty(maps: torch.Tensor, window: int) -> torch.Tensor:
    """``mean(relu(h - avgpool_window(h))^2)`` per map: (N, H, W) -> (N,). Penalises isolated spikes."""
    local_mean = F.avg_pool2d(
        maps.unsqueeze(1), window, stride=1, padding=window // 2, count_include_pad=False
    ).squeeze(1)
    return F.relu(maps - local_mean).pow(2).mean(dim=(1, 2))


@dataclass
class ObjectiveTerms:
    """Per-map terms of the objective, each (N,): the weighted ``loss`` and its parts."""

    loss: torch.Tensor
    deletion_auc: torch.Tensor
    lrf_auc: torch.Tensor
    rise_auc: torch.Tensor
    peak: torch.Tensor


@dataclass
class _Curve:
    """One soft curve of the objective: its loss ``weight`` (0: left out), its ``perturbed`` images
    (N, F - 2, C, H, W) between the end points (built when called, for active curves only), the names of its
    ``start`` and ``end`` images, and whether a high AUC is good (``high_is_good``)."""

    weight: float
    perturbed: Callable[[], torch.Tensor]
    start: str
    end: str
    high_is_good: bool


class RankingObjective:
    """Soft deletion / insertion AUC loss of maps, through a frozen classifier (see the module docstring).

    Args:
        config: an :class:`~aha.AHAConfig` (weights, fractions, Sinkhorn, smoothing, chunk size).
        patch_size: the classifier's patch side in pixels (sets the grid range).
    """

    def __init__(self, config, patch_size: int):
        self.config = config
        self.patch_size = patch_size

    def grid_range(self, height: int, width: int) -> tuple[int, int]:
        """Smallest and largest grid side G: cells of ``grid_cell_patches[1]`` down to ``[0]`` patches."""
        side = min(height, width)
        low_cell, high_cell = self.config.grid_cell_patches
        smallest = max(2, round(side / (high_cell * self.patch_size)))
        largest = max(smallest, min(side, round(side / (low_cell * self.patch_size))))
        return smallest, largest

    def sample_grid(self, height: int, width: int, generator: torch.Generator | None = None) -> int:
        """A grid side drawn uniformly from :meth:`grid_range` by ``generator`` (None: torch's default one)."""
        low, high = self.grid_range(height, width)
        return low + _draw(high - low + 1, generator)

    def sample_reference(self, generator: torch.Generator | None = None) -> str:
        """A reference kind drawn uniformly from ``config.references`` by ``generator`` (None: torch's default one)."""
        return self.config.references[_draw(len(self.config.references), generator)]

    def __call__(
        self,
        classifier: nn.Module,
        pixel_values: torch.Tensor,
        maps: torch.Tensor,
        classes: torch.Tensor,
        tau: float,
        grid: int,
        reference: str,
        noise: bool = True,
        checkpoint: bool = False,
        clean_logits: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ObjectiveTerms:
        """Evaluate the objective.

        Args:
            classifier: the frozen classifier, called as ``classifier(pixel_values=x).logits``.
            pixel_values: (N, C, H, W) images in normalised space.
            maps: (N, H, W) unbounded importance scores (higher = more important).
            classes: (N,) class explained by each map.
            tau: Sinkhorn temperature; grid: grid side G; reference: "mean", "black" or "blur".
            noise: Gumbel noise on (training) or off (deterministic evaluation).
            checkpoint: recompute the classifier's activations chunk by chunk in the backward pass
                (see :func:`aha.ranking.perturbation.iter_scores`).
            clean_logits: (N, num_labels) the classifier's logits on ``pixel_values``, when already known.
            generator: the source of the Gumbel noise, on any device (None: torch's default one).
        Returns:
            :class:`ObjectiveTerms`, each (N,).
        """
        check_bool("noise", noise)
        check_bool("checkpoint", checkpoint)
        n, _, height, width = pixel_values.shape
        check_grid(grid)
        fractions, spacing = self.curve_fractions(maps.device, generator if noise else None)
        top, bottom = self._memberships(maps, fractions, tau, grid, noise, generator)
        curves, ends = self._curves(pixel_values, reference, top, bottom, grid)
        active = [name for name, curve in curves.items() if curve.weight]
        # the curves' end points do not depend on the map: scored once, without gradient
        with torch.no_grad():
            end_probs = self._end_probabilities(classifier, ends, classes, clean_logits, reference, active)
        aucs = self._aucs(classifier, curves, active, end_probs, classes, spacing, checkpoint)

        peak = peak_penalty(maps, self.peak_window(height, width))
        loss = self.config.peak_weight * peak
        for name in active:
            curve = curves[name]
            loss = loss + curve.weight * ((1 - aucs[name]) if curve.high_is_good else aucs[name])
        missing = torch.full((n,), math.nan, device=maps.device)
        return ObjectiveTerms(
            loss=loss,
            deletion_auc=aucs.get("deletion", missing),
            lrf_auc=aucs.get("lrf", missing),
            rise_auc=aucs.get("rise", missing),
            peak=peak,
        )

    def _memberships(self, maps, fractions, tau, grid, noise, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft top-p and bottom-p memberships, each (N, F - 2, G^2), of the G x G cells of (N, H, W) ``maps`` at
        each of the (F - 2,) ``fractions``, through a Gumbel-Sinkhorn soft permutation of the cells."""
        # float32 cells: the soft permutation and its cumulative sums over up to G^2 ranks would lose the ranking in bf16
        cells = F.adaptive_avg_pool2d(maps.unsqueeze(1).float(), grid).flatten(1)
        permutation = gumbel_sinkhorn(
            cells, tau=tau, n_iters=self.config.sinkhorn_iterations, noise=noise, generator=generator
        )
        # top-p membership, and bottom-p membership as 1 - top-(1-p): one relaxation serves both orders
        membership = soft_topk_membership(permutation, torch.cat([fractions, 1 - fractions]))
        return membership[:, : len(fractions)], 1 - membership[:, len(fractions) :]

    def _curves(self, pixel_values, reference, top, bottom, grid) -> tuple[dict[str, _Curve], dict[str, torch.Tensor]]:
        """The three soft curves (name -> :class:`_Curve`) of (N, C, H, W) ``pixel_values`` under the (N, F - 2, G^2)
        ``top`` and ``bottom`` cell memberships, and their end-point images (name -> (N, C, H, W) or None)."""
        config = self.config
        n, _, height, width = pixel_values.shape

        def pixel_masks(cell_masks: torch.Tensor) -> torch.Tensor:
            masks = cell_masks_to_pixels(cell_masks.view(n, -1, grid, grid), (height, width), config.mask_sigma)
            return masks.to(pixel_values.dtype)

        images = pixel_values.unsqueeze(1)
        reference_images = make_reference(pixel_values, reference, config.image_mean, config.image_std)
        blurred = reference_blur(pixel_values) if config.rise_insertion_weight else None

        def to_reference(cell_masks: torch.Tensor) -> Callable[[], torch.Tensor]:
            """The images with the masked cells moved to the reference: deletion (top cells) and LRF insertion
            (bottom cells) are this one perturbation."""
            return lambda: blend(images, reference_images.unsqueeze(1), pixel_masks(cell_masks))

        curves = {
            "deletion": _Curve(config.deletion_weight, to_reference(top), "clean", "reference", high_is_good=False),
            "lrf": _Curve(config.lrf_insertion_weight, to_reference(bottom), "clean", "reference", high_is_good=True),
            "rise": _Curve(
                config.rise_insertion_weight,
                lambda: blend(blurred.unsqueeze(1), images, pixel_masks(top)),
                start="blurred",
                end="clean",
                high_is_good=True,
            ),
        }
        return curves, {"clean": pixel_values, "reference": reference_images, "blurred": blurred}

    def _end_probabilities(
        self, classifier, ends, classes, clean_logits, reference, active
    ) -> dict[str, torch.Tensor]:
        """(N,) target probabilities on the end-point images ``ends`` that the ``active`` curves use."""
        end_probs = {"clean": self._probabilities(classifier, ends["clean"], classes, clean_logits)}
        if {"deletion", "lrf"} & set(active):
            constant = reference != "blur"  # "mean" and "black" are one image for the whole batch
            end_probs["reference"] = self._probabilities(classifier, ends["reference"], classes, constant=constant)
        if "rise" in active:
            end_probs["blurred"] = self._probabilities(classifier, ends["blurred"], classes)
        return end_probs

    def _aucs(self, classifier, curves, active, end_probs, classes, spacing, checkpoint) -> dict[str, torch.Tensor]:
        """(N,) trapezoid AUC of each ``active`` curve: its perturbed images scored together in chunks, between
        its end points' probabilities ``end_probs``."""
        perturbed = torch.cat([curves[name].perturbed() for name in active], dim=1)  # (N, T * (F - 2), C, H, W)
        n, batch = len(perturbed), perturbed.flatten(0, 1)
        probs = perturbation_scores(
            classifier,
            len(batch),
            batch.__getitem__,
            classes.repeat_interleave(len(batch) // n),
            "probability",
            self.config.perturbation_batch_size,
            checkpoint=checkpoint,
        ).view(n, len(active), -1)
        aucs = {}
        for name, inner in zip(active, probs.unbind(1)):
            curve = curves[name]
            points = torch.cat([end_probs[curve.start][:, None], inner, end_probs[curve.end][:, None]], dim=1)
            aucs[name] = trapezoid_auc(points, spacing)
        return aucs

    def curve_fractions(self, device: torch.device, generator: torch.Generator | None = None):
        """Where the soft curves are sampled: the (F - 2,) fractions between the end points, and the (F,)
        fractions the AUC integrates over (``None``: evenly spaced on [0, 1]). Here ``config.num_fractions``
        evenly spaced points whatever ``generator`` (the step's, ``None`` without noise); a subclass may draw
        them."""
        return torch.linspace(0, 1, self.config.num_fractions, device=device)[1:-1], None

    def _probabilities(self, classifier, images, classes, logits=None, constant: bool = False) -> torch.Tensor:
        """(N,) target probabilities on (N, C, H, W) ``images``: read off their ``logits`` when given, from
        one forward of the first image when all are the same (``constant``), else chunk by chunk."""
        if logits is None and constant:
            logits = classifier(pixel_values=images[:1]).logits.expand(len(classes), -1)
        if logits is not None:
            return class_scores(logits, classes, "probability")
        return perturbation_scores(
            classifier, len(images), images.__getitem__, classes, "probability", self.config.perturbation_batch_size
        )

    def peak_window(self, height: int, width: int) -> int:
        """``config.peak_window`` (pixels at 224 px) scaled to this image side, odd and >= 3."""
        window = round(self.config.peak_window * min(height, width) / 224)
        return max(3, window | 1)


#: Largest ranking-grid side G: the soft permutation has G^2 x G^2 entries per map (at 128, 268 M: 1 GB in float32).
#: A Swin at 224 px (4 px patches) reaches 112 with the default grid_cell_patches.
MAX_GRID_SIDE = 128


def check_grid(grid: int) -> None:
    """Refuse a ranking grid whose soft permutation would not fit in memory, before anything is allocated."""
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= MAX_GRID_SIDE:
        raise ValueError(
            f"the ranking grid side must be an integer in [2, {MAX_GRID_SIDE}] (the soft permutation has G^4 entries "
            f"per map), got {grid!r}: raise grid_cell_patches (the cell side in classifier patches)"
        )


def _draw(count: int, generator: torch.Generator | None) -> int:
    """An integer drawn uniformly from ``range(count)`` by ``generator`` (on its device; None: torch's default)."""
    device = generator.device if generator is not None else None
    return int(torch.randint(count, (), generator=generator, device=device))
