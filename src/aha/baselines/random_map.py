"""Random importance: the chance-level floor of every faithfulness metric."""

from __future__ import annotations

import torch

from aha.baselines.base import Attributor


class RandomAttribution(Attributor):
    """Independent uniform [0, 1) noise per pixel, drawn from a generator seeded with ``seed`` on every
    call (so repeated calls on the same shape give the same maps). Ignores the image and the target.

    Options:
        seed: random seed (default 0).
    """

    name = "random"

    def __init__(self, classifier, seed: int = 0):
        super().__init__(classifier)
        self.seed = seed

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        generator = torch.Generator().manual_seed(self.seed)
        return torch.rand(batch, height, width, generator=generator).to(pixel_values.device)
