"""Integrated gradients (Sundararajan, Taly & Yan, 2017)."""

from __future__ import annotations

import numpy as np
import torch

from aha.baselines.base import PerturbationAttributor, check_choice
from aha.scores import class_scores
from aha.validation import check_number

REDUCTIONS = ("abs", "signed")


class IntegratedGradients(PerturbationAttributor):
    """``(x - x') * integral_0^1 grad f(x' + a (x - x')) da`` per input value, reduced over channels.

    ``x'`` is the reference image, ``f`` the target's score. The integral uses the ``steps``-point
    Gauss-Legendre rule on [0, 1]; all (image, step) points go through the classifier in batches of
    ``batch_size``. With ``reduce="signed"`` the map obeys completeness: its sum equals
    ``f(x) - f(x')`` up to the quadrature error.

    Options:
        steps: quadrature points (default 32).
        reference: the baseline ``x'`` (default ``"mean"``: zeros in normalised space, the dataset mean
            colour; also ``"black"`` with ``image_mean``/``image_std``, or ``"blur"``).
        reduce: ``"abs"`` (default: sum over channels of ``|attribution|``) or ``"signed"`` (plain sum).
        score: ``"logit"`` (default) or ``"probability"``.
        batch_size: interpolated images per forward/backward pass (default 64).
    """

    name = "integrated_gradients"
    needs_gradients = True

    def __init__(
        self,
        classifier,
        steps: int = 32,
        reference: str = "mean",
        reduce: str = "abs",
        score: str = "logit",
        batch_size: int = 64,
        image_mean=None,
        image_std=None,
    ):
        super().__init__(classifier, reference, score, batch_size, image_mean, image_std)
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
        for pairs in torch.arange(batch * self.steps, device=delta.device).split(self.batch_size):
            images, steps = pairs % batch, pairs // batch
            points = (reference[images] + alphas[steps, None, None, None] * delta[images]).requires_grad_(True)
            logits = self.classifier(pixel_values=points).logits
            (grads,) = torch.autograd.grad(class_scores(logits, target[images], self.score).sum(), points)
            integral.index_add_(0, images, grads.float() * weights[steps, None, None, None])
        attributions = delta.float() * integral
        return attributions.abs().sum(1) if self.reduce == "abs" else attributions.sum(1)
