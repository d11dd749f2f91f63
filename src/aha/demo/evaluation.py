"""Every attribution method on the same held-out images, scored with the exact metrics of :mod:`aha.metrics`.

Each method is an :class:`~aha.baselines.Attributor` (AHA included). Its maps are timed batch by batch and
scored image by image, so two methods can be compared by the paired differences of their per-image scores.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..metrics import (
    CurveResult,
    deletion,
    insertion,
    negative_perturbation,
    pixel_auroc,
    pointing_game,
    positive_perturbation,
)


#: metric -> (True when high is good, what it is)
METRICS = {
    "deletion_mean": (False, "deletion AUC, mean-colour reference"),
    "deletion_black": (False, "deletion AUC, black reference"),
    "deletion_blur": (False, "deletion AUC, blurred-image reference"),
    "insertion_lrf": (True, "least-relevant-first insertion AUC, mean-colour reference"),
    "insertion_rise": (True, "RISE insertion AUC (most relevant first into the blurred image)"),
    "positive_perturbation": (False, "Chefer et al.'s positive perturbation AUC (top-1 accuracy)"),
    "negative_perturbation": (True, "Chefer et al.'s negative perturbation AUC (top-1 accuracy)"),
    "pointing_game": (True, "energy-based pointing game against the object mask"),
    "mask_auroc": (True, "pixel AUROC of the map as a detector of the object mask"),
}


@dataclass
class MethodResult:
    """One method on the evaluation images.

    Attributes:
        name: the method's display name.
        scores: metric -> (N,) float64 per-image scores (see :data:`METRICS`).
        curves: ``"deletion_mean"`` / ``"insertion_lrf"`` -> the :class:`~aha.metrics.CurveResult` behind them.
        seconds_per_image: wall time of the attribution alone, per image.
        maps: (N, H, W) float32 maps, on the CPU.
    """

    name: str
    scores: dict[str, torch.Tensor]
    curves: dict[str, CurveResult]
    seconds_per_image: float
    maps: torch.Tensor = field(repr=False)

    def mean(self, metric: str) -> float:
        return self.scores[metric].mean().item()

    def standard_error(self, metric: str) -> float:
        values = self.scores[metric]
        return values.std().item() / math.sqrt(len(values)) if len(values) > 1 else math.nan


def timed_maps(attributor, pixel_values: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, float]:
    """(N, H, W) maps of ``attributor`` over ``pixel_values`` in batches, and the wall seconds per image."""
    maps, seconds = [], 0.0
    for batch in pixel_values.split(batch_size):
        start = time.perf_counter()
        maps.append(attributor(batch).cpu())
        seconds += time.perf_counter() - start
    return torch.cat(maps), seconds / len(pixel_values)


@torch.no_grad()
def forward_seconds_per_image(classifier, pixel_values: torch.Tensor, batch_size: int, repeats: int = 3) -> float:
    """Wall seconds per image of one plain classifier forward at ``batch_size`` (best of ``repeats`` passes)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in pixel_values.split(batch_size):
            classifier(pixel_values=batch)
        best = min(best, time.perf_counter() - start)
    return best / len(pixel_values)


def score_maps(classifier, pixel_values, labels, masks, maps, image_processor, chunk_size: int = 128):
    """Every metric of :data:`METRICS` for (N, H, W) ``maps``: ({metric: (N,) float64}, {curve name: CurveResult})."""
    options = dict(image_processor=image_processor, chunk_size=chunk_size)
    curves = {
        "deletion_mean": deletion(classifier, pixel_values, maps, reference="mean", **options),
        "insertion_lrf": insertion(classifier, pixel_values, maps, insertion_convention="lrf", reference="mean", **options),
    }
    results = {
        **curves,
        "deletion_black": deletion(classifier, pixel_values, maps, reference="black", **options),
        "deletion_blur": deletion(classifier, pixel_values, maps, reference="blur", **options),
        "insertion_rise": insertion(classifier, pixel_values, maps, insertion_convention="rise", **options),
        "positive_perturbation": positive_perturbation(classifier, pixel_values, maps, labels, **options),
        "negative_perturbation": negative_perturbation(classifier, pixel_values, maps, labels, **options),
    }
    scores = {name: result.auc.double().cpu() for name, result in results.items()}
    scores["pointing_game"] = pointing_game(maps, masks).double().cpu()
    scores["mask_auroc"] = pixel_auroc(maps, masks).double().cpu()
    return {metric: scores[metric] for metric in METRICS}, curves


def evaluate_methods(
    attributors: dict, classifier, pixel_values, labels, masks, image_processor, batch_size: int = 8, progress: bool = True
) -> list[MethodResult]:
    """Maps, timings and scores of every method on the same images (the predicted class is explained).

    Args:
        attributors: display name -> attributor (``attributor(pixel_values) -> (B, H, W)``).
        classifier: the classifier they explain.
        pixel_values: (N, C, H, W) normalised images; labels: (N,) ground truth; masks: (N, H, W) bool.
        image_processor: the classifier's processor (the normalisation of the black reference).
        batch_size: images per attribution call (the timing's batch size).
    """
    results = []
    for name, attributor in tqdm(attributors.items(), desc="methods", disable=not progress):
        maps, seconds = timed_maps(attributor, pixel_values, batch_size)
        scores, curves = score_maps(classifier, pixel_values, labels, masks, maps, image_processor)
        results.append(MethodResult(name, scores, curves, seconds, maps))
    return results


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the per-image differences ``a - b`` (same images, same order)."""
    difference = (a - b).double()
    return difference.mean().item(), difference.std().item() / math.sqrt(len(difference))


def verdict(difference: float, standard_error: float, high_is_good: bool) -> str:
    """"better" / "worse" when the paired difference exceeds two standard errors in that direction, else "tie"."""
    if not abs(difference) > 2 * standard_error:
        return "tie"
    return "better" if (difference > 0) == high_is_good else "worse"


def compared_mean(values: torch.Tensor, base: torch.Tensor | None, high_is_good: bool) -> str:
    """``values``' mean, marked "(+)" / "(-)" / "(=)" by the :func:`verdict` of their paired difference with ``base``
    (unmarked when ``base`` is None): the cells of the benchmarks' ablation and refinement tables."""
    text = f"{values.mean():.3f}"
    if base is None:
        return text
    mark = {"better": "+", "worse": "-"}.get(verdict(*paired_difference(values, base), high_is_good), "=")
    return f"{text} ({mark})"
