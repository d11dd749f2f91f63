"""Centre prior: photographers centre their subject, so the image centre is a strong naive guess."""

from __future__ import annotations

import torch

from aha.baselines.base import Attributor
from aha.validation import check_number


class CentrePrior(Attributor):
    """A Gaussian centred on the image, std ``sigma * H`` vertically and ``sigma * W`` horizontally:
    ``exp(-((y - cy) / (sigma H))^2 / 2 - ((x - cx) / (sigma W))^2 / 2)`` at pixel centres, the same for
    every image and target.

    Options:
        sigma: standard deviation as a fraction of the image height / width (default 0.25).
    """

    name = "centre"

    def __init__(self, classifier, sigma: float = 0.25):
        super().__init__(classifier)
        check_number("sigma", sigma, above=0)
        self.sigma = sigma

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        device = pixel_values.device
        y = ((torch.arange(height, device=device) + 0.5) / height - 0.5) / self.sigma
        x = ((torch.arange(width, device=device) + 0.5) / width - 0.5) / self.sigma
        prior = torch.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
        return prior.expand(batch, height, width)
