"""Every attribution method on the same held-out images, scored with the metrics of :data:`METRICS`.

Each method is an :class:`~aha.baselines.Attributor` (AHA included). Its maps are timed batch by batch and
scored image by image, so two methods can be compared by the paired differences of their per-image scores.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ..metrics import (
    INDEPENDENT_METRICS,
    CurveResult,
    RegionPerturbation,
    deletion,
    independent_scores,
    insertion,
    negative_perturbation,
    pixel_auroc,
    pointing_game,
    positive_perturbation,
)


@dataclass(frozen=True)
class Inputs:
    """What a metric scores: (N, H, W) ``maps`` of ``classifier`` on (N, C, H, W) normalised ``pixel_values``
    with (N,) ``labels`` and (N, H, W) bool object ``masks``; ``image_processor`` and ``chunk_size`` go to the
    perturbation metrics."""

    classifier: Any
    pixel_values: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    maps: torch.Tensor
    image_processor: Any
    chunk_size: int
    #: scores computed once for several columns (see :data:`SHARED_WORK`)
    memo: dict = field(default_factory=dict, repr=False)

    @property
    def options(self) -> dict:
        return dict(image_processor=self.image_processor, chunk_size=self.chunk_size)


@dataclass(frozen=True)
class Metric:
    """A column of the report: its short name, whether high is good, what it is, and ``score(inputs)``, which
    returns (N,) per-image scores or a :class:`~aha.metrics.CurveResult` (its per-image AUCs are the scores)."""

    short_name: str
    high_is_good: bool
    description: str
    score: Callable[[Inputs], torch.Tensor | CurveResult]


#: the report's metrics by key, one line each (adding a metric to every world's report is adding a line here)
METRICS = {
    "deletion_mean": Metric(
        "Del mean ↓",
        False,
        "deletion AUC, mean-colour reference",
        lambda x: deletion(x.classifier, x.pixel_values, x.maps, reference="mean", **x.options),
    ),
    "deletion_black": Metric(
        "Del black ↓",
        False,
        "deletion AUC, black reference",
        lambda x: deletion(x.classifier, x.pixel_values, x.maps, reference="black", **x.options),
    ),
    "deletion_blur": Metric(
        "Del blur ↓",
        False,
        "deletion AUC, blurred-image reference",
        lambda x: deletion(x.classifier, x.pixel_values, x.maps, reference="blur", **x.options),
    ),
    "insertion_lrf": Metric(
        "Ins LRF ↑",
        True,
        "least-relevant-first insertion AUC, mean-colour reference",
        lambda x: insertion(
            x.classifier, x.pixel_values, x.maps, insertion_convention="lrf", reference="mean", **x.options
        ),
    ),
    "insertion_rise": Metric(
        "Ins RISE ↑",
        True,
        "RISE insertion AUC (most relevant first into the blurred image)",
        lambda x: insertion(x.classifier, x.pixel_values, x.maps, insertion_convention="rise", **x.options),
    ),
    "positive_perturbation": Metric(
        "POS ↓",
        False,
        "Chefer et al.'s positive perturbation AUC (top-1 accuracy)",
        lambda x: positive_perturbation(x.classifier, x.pixel_values, x.maps, x.labels, **x.options),
    ),
    "negative_perturbation": Metric(
        "NEG ↑",
        True,
        "Chefer et al.'s negative perturbation AUC (top-1 accuracy)",
        lambda x: negative_perturbation(x.classifier, x.pixel_values, x.maps, x.labels, **x.options),
    ),
    "pointing_game": Metric(
        "Pointing ↑",
        True,
        "energy-based pointing game against the object mask",
        lambda x: pointing_game(x.maps, x.masks),
    ),
    "mask_auroc": Metric(
        "Mask AUROC ↑",
        True,
        "pixel AUROC of the map as a detector of the object mask",
        lambda x: pixel_auroc(x.maps, x.masks),
    ),
}
#: short names of the field's other faithfulness metrics (:data:`aha.metrics.INDEPENDENT_METRICS`), which AHA is not
#: trained on
INDEPENDENT_SHORT_NAMES = {
    "road_morf": "ROAD MoRF",
    "road_lerf": "ROAD LeRF",
    "region_perturbation": "Region pert.",
    "selectivity": "Selectivity",
    "irof": "IROF",
    "pixel_flipping": "Pixel flip.",
    "faithfulness_correlation": "Faith. corr.",
}


#: the report's settings that differ from a metric's defaults: ROAD at 10 fractions (0.05, 0.15, ..., 0.95) to a
#: conjugate-gradient tolerance of 1e-4, instead of Quantus' 50 fractions to 1e-6 (ten times the cost per method)
INDEPENDENT_OPTIONS = {
    "road_morf": dict(fractions=[round(0.05 + 0.1 * i, 2) for i in range(10)], tolerance=1e-4),
    "road_lerf": dict(fractions=[round(0.05 + 0.1 * i, 2) for i in range(10)], tolerance=1e-4),
}


#: independent metrics scored in one call because they share their work: region perturbation and selectivity
#: summarise the same patch curves, which ``independent_scores`` traces once (and draw nothing at random, so scoring
#: them together leaves every score as it was)
SHARED_WORK = tuple(name for name, (cls, *_) in INDEPENDENT_METRICS.items() if issubclass(cls, RegionPerturbation))


def _independent(name: str) -> Metric:
    """A report column for an independent metric, with :data:`INDEPENDENT_OPTIONS`. Every method's maps are scored
    with the same random draws (ROAD's noise, the correlation's subsets: one generator seeded 0 per call), so
    per-image differences are paired."""
    _, _, high_is_good, description = INDEPENDENT_METRICS[name]
    options = INDEPENDENT_OPTIONS.get(name, {})
    if options:
        description += "; " + ", ".join(f"{key} {value}" for key, value in options.items())
    group = SHARED_WORK if name in SHARED_WORK else (name,)
    group_options = {key: value for member in group for key, value in INDEPENDENT_OPTIONS.get(member, {}).items()}

    def score(x: Inputs) -> torch.Tensor:
        if group not in x.memo:
            generator = torch.Generator().manual_seed(0)
            x.memo[group] = independent_scores(
                x.classifier, x.pixel_values, x.maps, metrics=group, generator=generator, **x.options, **group_options
            )
        return x.memo[group][name]

    return Metric(f"{INDEPENDENT_SHORT_NAMES[name]} {'↑' if high_is_good else '↓'}", high_is_good, description, score)


METRICS.update({name: _independent(name) for name in INDEPENDENT_METRICS})


@dataclass
class MethodResult:
    """One method on the evaluation images.

    Attributes:
        name: the method's display name.
        scores: metric -> (N,) float64 per-image scores (see :data:`METRICS`).
        curves: metric -> the :class:`~aha.metrics.CurveResult` behind it, for the metrics that are curves.
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


def score_maps(classifier, pixel_values, labels, masks, maps, image_processor, chunk_size: int = 128, metrics=METRICS):
    """Every metric of ``metrics`` (default :data:`METRICS`) for (N, H, W) ``maps``: ({metric: (N,) float64},
    {metric: CurveResult} for the metrics that are curves)."""
    inputs = Inputs(classifier, pixel_values, labels, masks, maps, image_processor, chunk_size)
    scores, curves = {}, {}
    for name, metric in metrics.items():
        value = metric.score(inputs)
        if isinstance(value, CurveResult):
            curves[name], value = value, value.auc
        scores[name] = value.double().cpu()
    return scores, curves


def evaluate_methods(
    attributors: dict,
    classifier,
    pixel_values,
    labels,
    masks,
    image_processor,
    batch_size: int = 8,
    progress: bool = True,
    metrics=METRICS,
) -> list[MethodResult]:
    """Maps, timings and scores of every method on the same images (the predicted class is explained).

    Args:
        attributors: display name -> attributor (``attributor(pixel_values) -> (B, H, W)``).
        classifier: the classifier they explain.
        pixel_values: (N, C, H, W) normalised images; labels: (N,) ground truth; masks: (N, H, W) bool.
        image_processor: the classifier's processor (the normalisation of the black reference).
        batch_size: images per attribution call (the timing's batch size).
        metrics: the metrics to score (default :data:`METRICS`).
    """
    results = []
    for name, attributor in tqdm(attributors.items(), desc="methods", disable=not progress):
        maps, seconds = timed_maps(attributor, pixel_values, batch_size)
        scores, curves = score_maps(classifier, pixel_values, labels, masks, maps, image_processor, metrics=metrics)
        results.append(MethodResult(name, scores, curves, seconds, maps))
    return results


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the per-image differences ``a - b`` (same images, same order)."""
    difference = (a - b).double()
    return difference.mean().item(), difference.std().item() / math.sqrt(len(difference))


def verdict(difference: float, standard_error: float, high_is_good: bool) -> str:
    """ "better" / "worse" when the paired difference exceeds two standard errors in that direction, else "tie"."""
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
