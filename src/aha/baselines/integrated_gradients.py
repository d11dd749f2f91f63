"""Integrated gradients (Sundararajan, Taly & Yan, 2017)."""

from __future__ import annotations

import numpy as np
import torch

from aha.baselines.base import PerturbationAttributor
from aha.ranking.perturbation import iter_scores
from aha.validation import check_choice, check_number


REDUCTIONS = ("abs", "signed")


class IntegratedGradients(PerturbationAttributor):
    """``(x - x') * integral_0^1 grad f(x' + a (x - x')) da`` per input value, reduced over channels.

    ``x'`` is the reference image, ``f`` the target's score. The integral uses the ``steps``-point
    Gauss-Legendre rule on [0, 1]; all (image, step) points go through the classifier in batches of
    ``batch_size``. With ``reduce="signed"`` the map obeys completeness: its sum equals
    ``f(x) - f(x')`` up to the quadrature error.

    Options:
        steps: quadrature points (default 32).
        reduce: ``"abs"`` (default: sum over channels of ``|attribution|``) or ``"signed"`` (plain sum).
        score: ``"logit"`` (default) or ``"probability"``.
        reference, batch_size, image_processor / image_mean, image_std: see :class:`PerturbationAttributor`
            (the baseline ``x'``, default ``"mean"``: zeros in normalised space, the dataset mean colour;
            ``batch_size``: interpolated images per forward/backward pass, default 64).
    """

    name = "integrated_gradients"
    needs_gradients = True

    def __init__(
        self,
        classifier,
        steps: int = 32,
        reduce: str = "abs",
        score: str = "logit",
        **options,
    ):
        super().__init__(classifier, score=score, **options)
        check_choice("reduce", reduce, REDUCTIONS)
        check_number("steps", steps, integer=True, minimum=1)
        self.steps, self.reduce = steps, reduce
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        self.alphas, self.weights = (nodes + 1) / 2, weights / 2

    def _attribute(self, pixel_values: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        batch = pixel_values.shape[0]
        if target is None:
            target, _ = self.clean_scores(pixel_values, target)
        reference = self.make_reference(pixel_values)
        delta = pixel_values - reference
        alphas = torch.as_tensor(self.alphas, device=delta.device, dtype=delta.dtype)
        weights = torch.as_tensor(self.weights, device=delta.device, dtype=torch.float32)
        integral = torch.zeros(pixel_values.shape, device=delta.device, dtype=torch.float32)

        def pairs_of(chunk: slice) -> tuple[torch.Tensor, torch.Tensor]:  # index = step * batch + image
            pairs = torch.arange(chunk.start, chunk.stop, device=delta.device)
            return pairs % batch, pairs // batch

        def points_at(chunk: slice) -> torch.Tensor:
            images, steps = pairs_of(chunk)
            return (reference[images] + alphas[steps, None, None, None] * delta[images]).requires_grad_(True)

        count, classes = batch * self.steps, target.repeat(self.steps)
        for chunk, points, scores in iter_scores(
            self.classifier, count, points_at, classes, self.score, self.batch_size
        ):
            (grads,) = torch.autograd.grad(scores.sum(), points)
            images, steps = pairs_of(chunk)
            integral.index_add_(0, images, grads.float() * weights[steps, None, None, None])
        attributions = delta.float() * integral
        return attributions.abs().sum(1) if self.reduce == "abs" else attributions.sum(1)
