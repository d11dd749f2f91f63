"""Localisation of attribution maps against ground-truth object masks: the energy pointing game and the
pixel AUROC (:data:`LOCALISATION_METRICS` names them)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .curves import pixel_maps


def _localisation_inputs(attributions, masks) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H * W) float maps and bool masks, validated; maps brought to the masks' resolution."""
    masks = torch.as_tensor(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (B, H, W), got shape {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        if ((masks != 0) & (masks != 1)).any():
            raise ValueError("masks must be binary (bool or 0/1)")
        masks = masks.bool()
    empty = (~masks.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"masks of images {empty} have no object pixel")
    maps = pixel_maps(attributions, masks.shape[0], tuple(masks.shape[1:]))
    return maps.flatten(1), masks.to(maps.device).flatten(1)


def pointing_game(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Energy-based pointing game (Wang et al., Score-CAM 2020): share of the positive attribution
    energy that falls inside the object mask.

    Args:
        attributions: maps in any layout of the module docstring (only positive values count).
        masks: (B, H, W) bool or 0/1 object masks at image resolution, each with an object pixel.
    Returns:
        (B,) in [0, 1]; a map with no positive value scores 0.
    """
    maps, masks = _localisation_inputs(attributions, masks)
    energy = maps.clamp_min(0)
    total = energy.sum(dim=1)
    inside = (energy * masks).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def pixel_auroc(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve of the map's scores as a per-pixel detector of the object mask.

    Computed exactly as the Mann-Whitney statistic with tied scores counting one half.

    Args:
        attributions: maps in any layout of the module docstring.
        masks: (B, H, W) bool or 0/1, each with at least one object and one background pixel.
    Returns:
        (B,) float64 in [0, 1]; 0.5 is chance.
    """
    maps, masks = _localisation_inputs(attributions, masks)
    full = masks.all(dim=1).nonzero().flatten().tolist()
    if full:
        raise ValueError(f"masks of images {full} have no background pixel")
    ordered = maps.sort(dim=1).values
    below = torch.searchsorted(ordered, maps, right=False)
    up_to = torch.searchsorted(ordered, maps, right=True)
    ranks = (below + up_to + 1).double() / 2  # 1-based ranks, ties averaged
    positives = masks.sum(dim=1).double()
    negatives = masks.shape[1] - positives
    rank_sum = (ranks * masks).sum(dim=1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


class LocalisationMetric(NamedTuple):
    """A localisation metric: ``score(attributions, masks) -> (B,)`` (high is good), whether it needs a background
    pixel in every mask (an object pixel it always needs), and what it measures."""

    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    needs_background: bool
    description: str


#: the localisation metrics by the names ``aha evaluate --metrics`` and the demo's report give them
LOCALISATION_METRICS = {
    "pointing_game": LocalisationMetric(pointing_game, False, "energy-based pointing game against the object mask"),
    "mask_auroc": LocalisationMetric(pixel_auroc, True, "pixel AUROC of the map as a detector of the object mask"),
}
