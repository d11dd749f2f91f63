"""Test-time refinement: a few gradient steps on each image's map against the training objective, without noise.

Refinement corrects what the one-pass explainer missed: the maps are standardised per image (the ranking is
unchanged) and moved by Adam on the deterministic objective of :func:`refinement_loss`, all images at once.
"""

from __future__ import annotations

import torch


def refinement_loss(explainer, pixel_values: torch.Tensor, maps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The deterministic objective refinement minimises, per image: (B,).

    No Gumbel noise, tau = ``config.tau_end``, the finest training grid, the "mean" reference; the classifier's
    activations are recomputed chunk by chunk in the backward pass (bounded memory).
    """
    height, width = pixel_values.shape[-2:]
    objective = explainer.objective
    return objective(
        explainer.classifier,
        pixel_values,
        maps,
        target,
        tau=explainer.config.tau_end,
        grid=objective.grid_range(height, width)[1],
        reference="mean",
        noise=False,
        checkpoint=True,
    ).loss


def refine(explainer, pixel_values: torch.Tensor, maps: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """``maps`` (B, H, W) standardised per image, then moved by ``steps`` Adam steps of learning rate ``lr`` on
    :func:`refinement_loss`; returns the refined maps (detached)."""
    flat = maps.flatten(1)
    maps = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)).view_as(maps)
    maps = maps.detach().requires_grad_(True)
    optimizer = torch.optim.Adam([maps], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = refinement_loss(explainer, pixel_values, maps, target).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return maps.detach()
