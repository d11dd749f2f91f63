"""RISE: randomized input sampling for explanation (Petsiuk, Das & Saenko, BMVC 2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aha.baselines.base import PerturbationAttributor, scores_under_masks
from aha.validation import check_number


def rise_masks(count: int, grid: int, p: float, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """RISE masks: binary ``grid`` x ``grid`` cells kept with probability ``p``, upsampled bilinearly to
    ``(grid + 1)`` cells of ``ceil(H / grid)`` x ``ceil(W / grid)`` pixels and cropped at a random shift
    of less than one cell.

    Returns:
        (count, H, W) float32 on the CPU, values in [0, 1] (1 = pixel kept).
    """
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    cells = (torch.rand(count, 1, grid, grid, generator=generator) < p).float()
    size = ((grid + 1) * cell_h, (grid + 1) * cell_w)
    smooth = F.interpolate(cells, size=size, mode="bilinear", align_corners=False)
    shift_y = torch.randint(0, cell_h, (count,), generator=generator)
    shift_x = torch.randint(0, cell_w, (count,), generator=generator)
    rows = (shift_y[:, None] + torch.arange(height))[:, :, None]
    cols = (shift_x[:, None] + torch.arange(width))[:, None, :]
    return smooth[torch.arange(count)[:, None, None], 0, rows, cols]


class RISE(PerturbationAttributor):
    """``sum_i f(x * M_i) M_i / (N p)`` over ``N`` random smooth masks ``M_i`` (1 = kept, 0 = replaced
    by the reference), i.e. the expected score given that a pixel is kept.

    The masks are drawn from a generator seeded with ``seed`` on every call, ``batch_size`` at a time,
    and shared by the images of a batch, so a batch gives the same maps as its images one by one.

    Options:
        n_masks: number of masks ``N`` (default 4000, as in the paper for ResNet-50).
        grid: cells per side of the coarse masks (default 7).
        p: probability that a cell is kept (default 0.5).
        seed: random seed of the masks (default 0).
        reference, score, batch_size, image_processor / image_mean, image_std: see
            :class:`PerturbationAttributor` (default ``"mean"``: zeros in normalised space, as in the RISE code,
            which multiplies normalised images by the masks; ``"probability"``; ``batch_size``: masks generated
            at a time, and images per forward pass, default 64).
    """

    name = "rise"

    def __init__(
        self,
        classifier,
        n_masks: int = 4000,
        grid: int = 7,
        p: float = 0.5,
        seed: int = 0,
        **options,
    ):
        super().__init__(classifier, **options)
        check_number("n_masks", n_masks, integer=True, minimum=1)
        check_number("grid", grid, integer=True, minimum=1)
        check_number("p", p, above=0, maximum=1)
        check_number("seed", seed, integer=True)
        self.n_masks, self.grid, self.p, self.seed = n_masks, grid, p, seed

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        target, _ = self.clean_scores(pixel_values, target)
        reference = self.make_reference(pixel_values)
        generator = torch.Generator().manual_seed(self.seed)
        saliency = torch.zeros(pixel_values.shape[0], height, width, device=pixel_values.device)
        for start in range(0, self.n_masks, self.batch_size):
            count = min(self.batch_size, self.n_masks - start)
            kept = rise_masks(count, self.grid, self.p, height, width, generator).to(pixel_values.device)
            scores = scores_under_masks(
                self.classifier, pixel_values, reference, 1 - kept, target, self.score, self.batch_size
            )
            saliency += torch.einsum("bn,nhw->bhw", scores, kept)
        return saliency / (self.n_masks * self.p)
