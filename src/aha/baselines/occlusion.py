"""Occlusion (Zeiler & Fergus, 2014): the score drop when a sliding square is replaced by a reference."""

from __future__ import annotations

import torch

from aha.baselines.base import PerturbationAttributor, scores_under_masks
from aha.validation import check_number


def window_starts(side: int, window: int, stride: int) -> list[int]:
    """Offsets of a sliding window along one side (pixels), the last one flush with the edge."""
    starts = list(range(0, max(side - window, 0) + 1, stride))
    if starts[-1] + window < side:
        starts.append(side - window)
    return starts


class Occlusion(PerturbationAttributor):
    """Every pixel gets the mean of ``f(x) - f(x with the window replaced)`` over the windows covering it.

    All B x (number of windows) occluded images go through the classifier in batches of ``batch_size``.

    Options:
        window: side of the square, pixels (default: ``min(H, W) // 7``, 32 px at 224 px).
        stride: step between windows, pixels (default: ``window // 2``).
        reference, score, batch_size, image_processor / image_mean, image_std: see
            :class:`PerturbationAttributor` (what the window becomes, default ``"mean"``; ``"probability"``
            (default) or ``"logit"``; images per forward pass, default 64).
    """

    name = "occlusion"

    def __init__(
        self,
        classifier,
        window: int | None = None,
        stride: int | None = None,
        **options,
    ):
        super().__init__(classifier, **options)
        check_number("window", window, integer=True, minimum=1, optional=True)
        check_number("stride", stride, integer=True, minimum=1, optional=True)
        self.window, self.stride = window, stride

    def masks(self, height: int, width: int, device=None) -> torch.Tensor:
        """(N, H, W) binary masks, one per window position (1 inside the window)."""
        window = min(max(min(height, width) // 7, 1) if self.window is None else self.window, height, width)
        stride = max(window // 2, 1) if self.stride is None else self.stride
        rows, cols = window_starts(height, window, stride), window_starts(width, window, stride)
        offsets = [(y, x) for y in rows for x in cols]
        masks = torch.zeros(len(offsets), height, width, device=device)
        for mask, (y, x) in zip(masks, offsets):
            mask[y : y + window, x : x + window] = 1
        return masks

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        target, clean = self.clean_scores(pixel_values, target)
        masks = self.masks(*pixel_values.shape[-2:], device=pixel_values.device)
        reference = self.make_reference(pixel_values)
        scores = scores_under_masks(
            self.classifier, pixel_values, reference, masks, target, self.score, self.batch_size
        )
        drops = clean[:, None] - scores
        return torch.einsum("bn,nhw->bhw", drops, masks) / masks.sum(0)
