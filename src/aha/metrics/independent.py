"""The field's other faithfulness metrics, on the library's one engine: ROAD, region perturbation,
selectivity, IROF, pixel flipping and faithfulness correlation.

Each metric is one frozen, keyword-only options object (on :class:`~aha.metrics.options.MetricOptions`, like
:class:`~aha.metrics.protocol.PerturbationProtocol`) called on
``(model, pixel_values, attributions, target=None, generator=None)``; the ordering metrics trace their curves
with :func:`~aha.metrics.curves.ranked_scores` (one chunked scorer, batched over images and steps) and take the
one trapezoid AUC (:func:`aha.ranking.perturbation.trapezoid_auc`). :data:`INDEPENDENT_METRICS` names them all and
:func:`independent_scores` scores a batch of maps with any of them in one call.

Shared options (every metric): ``reference`` (what a removed pixel becomes: ``"mean"``, ``"black"`` or
``"blur"`` of :mod:`aha.ranking.perturbation`; ROAD imputes instead), ``score`` (``"probability"``, ``"logit"`` or
``"correct"``), the normalisation (``image_processor`` or ``image_mean``/``image_std``, needed by ``"black"``),
``chunk_size`` (images per forward) and ``seed`` (the ranking's tie-break, and the generator used when none is
passed). Randomness (ROAD's noise, faithfulness correlation's subsets) comes only from the ``generator`` passed
to the call (a CPU :class:`torch.Generator`), else from a fresh one seeded with ``seed``.

How they relate to Quantus 0.6 (the reference implementation; ``tests/test_quantus_reference.py`` checks each
one against it): the same definitions with these differences, each a choice stated here.

- Quantus broadcasts a one-channel map over the channels and ranks channel values ("features"); these rank
  pixels (all channels together), the unit of the library's maps.
- Quantus' baselines ("black" = the image's minimum, "mean" = the mean of the whole batch array, "uniform"
  noise) are replaced by the library's references, the same for every metric.
- Every curve includes its unperturbed point (fraction 0) and is integrated over the fraction of the image
  (or of its regions) removed, in [0, 1]; Quantus integrates from the first perturbed step with step width 1.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..ranking.perturbation import make_reference, perturbation_scores, trapezoid_auc
from ..ranking.scores import class_scores
from ..ranking.sorting import hard_order
from ..validation import check_choice, check_pixel_values
from .curves import (
    CurveResult,
    check_fractions,
    check_inputs,
    device_dtype,
    order_to_ranks,
    ranked_scores,
    target_classes,
    warn_if_constant,
)
from .imputation import noisy_linear_imputation
from .options import MetricOptions


@dataclass(frozen=True, eq=False, kw_only=True)
class _IndependentMetric(MetricOptions):
    """The shared options (:class:`~aha.metrics.options.MetricOptions`, see the module docstring) and what every
    independent metric does with them: a report of its settings, its checked inputs, its generator."""

    name = "metric"
    uses_reference = True  # False where the metric perturbs otherwise (ROAD imputes)

    def settings(self) -> dict:
        """Every option as a JSON-able value, for a report (the normalisation as the mean and std it resolves to)."""
        skip = {"image_processor", "image_mean", "image_std"} | (set() if self.uses_reference else {"reference"})
        values = {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in skip}
        values = {name: value.tolist() if isinstance(value, torch.Tensor) else value for name, value in values.items()}
        return {"metric": self.name, **values, "normalisation": self.normalisation}

    def _prepare(self, model, pixel_values, attributions, target):
        """Checked inputs on the model's device: images (B, C, H, W), maps (B, H * W), target (B,), reference."""
        maps = check_inputs(pixel_values, attributions)
        warn_if_constant(maps, self.name)
        device, _ = device_dtype(model)
        images = pixel_values.to(device)
        target = target_classes(model, images, target, self.chunk_size)
        reference = make_reference(images, self.reference, *(self.normalisation or (None, None)))
        return images, maps.to(device).flatten(1), target, reference

    def _generator(self, generator: torch.Generator | None) -> torch.Generator:
        if generator is None:
            return torch.Generator().manual_seed(self.seed)
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got {generator!r}")
        return generator


def _region_ranks(labels: torch.Tensor, region_scores: torch.Tensor, seed: int):
    """Pixel ranks and step counts that remove whole regions, best-scored region first.

    Args:
        labels: (B, H * W) long region of every pixel, in [0, R).
        region_scores: (B, R) float, -inf for a region an image does not have.
        seed: the tie-break of :func:`aha.ranking.sorting.hard_order`.
    Returns:
        ranks (B, H * W) and counts (B, R + 1): step s removes the first s regions (count 0 at step 0; a missing
        region adds no pixel).
    """
    region_order = hard_order(region_scores, descending=True, seed=seed)
    position = order_to_ranks(region_order).gather(1, labels)  # each pixel's region position
    ranks = order_to_ranks(torch.argsort(position, dim=1, stable=True))
    sizes = torch.zeros_like(region_scores, dtype=torch.long).scatter_add_(1, labels, torch.ones_like(labels))
    counts = sizes.gather(1, region_order).cumsum(dim=1)
    return ranks, torch.cat([torch.zeros_like(counts[:, :1]), counts], dim=1)


def _patch_labels(height: int, width: int, patch_size: int, device) -> torch.Tensor:
    """(H * W,) the row-major index of the ``patch_size`` square patch holding each pixel."""
    if height % patch_size or width % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide the image size {(height, width)}")
    rows = torch.arange(height, device=device) // patch_size
    columns = torch.arange(width, device=device) // patch_size
    return (rows[:, None] * (width // patch_size) + columns).flatten()


@dataclass(frozen=True, eq=False, kw_only=True)
class PixelFlipping(_IndependentMetric):
    """Pixel flipping (Bach et al., PLoS ONE 2015): the most relevant pixels replaced first by the reference,
    ``pixels_per_step`` at a time until every pixel is; the curve is the target's score after each step. Low
    AUC is good. This is deletion with fixed-size steps over the whole path (Quantus' ``PixelFlipping`` on a
    one-channel image with ``features_in_step = pixels_per_step``; on C channels Quantus counts channel values and
    asks the step to divide H * W).

    Attributes:
        pixels_per_step: pixels replaced per step; None takes ``ceil(H * W / 100)`` (about 100 steps).
        (and the shared options of the module docstring)
    """

    pixels_per_step: int | None = None

    name = "pixel flipping"
    _number_rules = {"pixels_per_step": dict(integer=True, minimum=1, optional=True)}

    def __call__(self, model: nn.Module, pixel_values, attributions, target=None, generator=None) -> CurveResult:
        images, maps, target, reference = self._prepare(model, pixel_values, attributions, target)
        num_pixels = maps.shape[1]
        step = self.pixels_per_step or math.ceil(num_pixels / 100)
        num_steps = math.ceil(num_pixels / step)
        counts = (torch.arange(num_steps + 1, device=maps.device) * step).clamp_max(num_pixels)
        ranks = order_to_ranks(hard_order(maps, descending=True, seed=self.seed))
        curves = ranked_scores(model, ranks, counts, images, reference, target, self.score, self.chunk_size)
        fractions = counts.double().cpu() / num_pixels
        return CurveResult(fractions=fractions, curves=curves, auc=trapezoid_auc(curves, fractions))


@dataclass(frozen=True, eq=False, kw_only=True)
class RegionPerturbation(_IndependentMetric):
    """Region perturbation (Samek et al., IEEE TNNLS 2017), most relevant first (MoRF): the image is cut into
    ``patch_size`` square patches, ranked by the sum of the map over each; the first ``regions`` patches are
    replaced by the reference one after another. The curve is the drop of the target's score,
    ``f(x) - f(x_k)`` after ``k`` patches (0 at ``k = 0``), over ``k / regions``; its area is the AOPC. High is
    good. (Quantus' ``RegionPerturbation(order="morf")``.)

    Attributes:
        patch_size: side of the square patches in pixels; must divide the image size. Default 8.
        regions: patches removed (at most all of them). Default 100.
    """

    patch_size: int = 8
    regions: int = 100

    name = "region perturbation"
    _number_rules = {"patch_size": dict(integer=True, minimum=1), "regions": dict(integer=True, minimum=1)}

    def patch_curves(self, model, pixel_values, attributions, target=None) -> torch.Tensor:
        """The target's score after each of 0 .. all patches is removed, best-summed patch first: (B, P + 1).
        Region perturbation and selectivity summarise the same curves (:meth:`summarise`)."""
        images, maps, target, reference = self._prepare(model, pixel_values, attributions, target)
        batch, _, height, width = images.shape
        labels = _patch_labels(height, width, self.patch_size, maps.device).expand(batch, -1)
        sums = torch.zeros(batch, int(labels.max()) + 1, device=maps.device, dtype=maps.dtype).scatter_add_(
            1, labels, maps
        )
        ranks, counts = _region_ranks(labels, sums, self.seed)
        curves = ranked_scores(model, ranks, counts, images, reference, target, self.score, self.chunk_size)
        return curves

    def __call__(self, model: nn.Module, pixel_values, attributions, target=None, generator=None) -> CurveResult:
        return self.summarise(self.patch_curves(model, pixel_values, attributions, target))

    def summarise(self, curves: torch.Tensor) -> CurveResult:
        """The AOPC of the first ``regions`` patches of :meth:`patch_curves`' curves."""
        regions = min(self.regions, curves.shape[1] - 1)
        drops = curves[:, :1] - curves[:, : regions + 1]
        fractions = torch.arange(regions + 1, dtype=torch.float64) / regions
        return CurveResult(fractions=fractions, curves=drops, auc=trapezoid_auc(drops, fractions))


@dataclass(frozen=True, eq=False, kw_only=True)
class Selectivity(RegionPerturbation):
    """Selectivity (Montavon et al., Digital Signal Processing 2018): like :class:`RegionPerturbation` but every
    patch is removed and the curve is the target's score ``f(x_k)`` itself. Low AUC is good. (Quantus'
    ``Selectivity``.) ``regions`` is unused: all patches are removed.
    """

    name = "selectivity"

    def summarise(self, curves: torch.Tensor) -> CurveResult:
        """The AUC of :meth:`patch_curves`' curves over the fraction of patches removed."""
        fractions = torch.linspace(0, 1, curves.shape[1], dtype=torch.float64)
        return CurveResult(fractions=fractions, curves=curves, auc=trapezoid_auc(curves, fractions))


def slic_segments(pixel_values: torch.Tensor, n_segments: int = 100, compactness: float = 10.0) -> torch.Tensor:
    """SLIC superpixels of each image (``skimage.segmentation.slic`` on its (H, W, C) values in float64, as
    Quantus calls it), relabelled 0..S-1: (B, C, H, W) -> (B, H * W) long on the images' device. Needs
    scikit-image (the ``demo`` extra)."""
    try:
        from skimage.segmentation import slic
    except ImportError as error:  # pragma: no cover - the demo extra installs it
        raise ImportError("IROF's superpixels need scikit-image: pip install 'aha-explain[demo]'") from error
    labels = []
    for image in pixel_values.detach().double().cpu().numpy():
        segments = slic(np.moveaxis(image, 0, -1), n_segments=n_segments, compactness=compactness, start_label=0)
        labels.append(np.unique(segments, return_inverse=True)[1].reshape(-1))
    return torch.as_tensor(np.stack(labels), device=pixel_values.device).long()


@dataclass(frozen=True, eq=False, kw_only=True)
class IROF(_IndependentMetric):
    """Iterative removal of features (Rieger and Hansen, 2020): SLIC superpixels of each image, ranked by the
    mean of the map over each, removed (set to the reference) most relevant first. The curve is the ratio
    ``f(x_k) / f(x)`` of the target's score after ``k`` segments to its clean score, over the fraction
    ``k / S`` of the image's ``S`` segments; IROF is the area *over* it, ``1 - AUC``. High is good. (Quantus'
    ``IROF`` reports ``S - trapz(ratios from k = 1, dx=1)``, unnormalised; the curves are the same.)

    Attributes:
        n_segments, compactness: of ``skimage.segmentation.slic`` (its defaults, as Quantus uses them),
            computed on the images' values in normalised space.
    Returns (from a call): a :class:`CurveResult` whose ``fractions`` are (B, S_max + 1), one x-axis per image
    (images with fewer segments repeat 1 at the end, steps of zero width), and whose ``auc`` is the IROF score.
    """

    n_segments: int = 100
    compactness: float = 10.0

    name = "IROF"
    _number_rules = {"n_segments": dict(integer=True, minimum=2), "compactness": dict(minimum=0)}

    def __call__(self, model: nn.Module, pixel_values, attributions, target=None, generator=None) -> CurveResult:
        images, maps, target, reference = self._prepare(model, pixel_values, attributions, target)
        labels = slic_segments(images, self.n_segments, self.compactness)
        num_regions = int(labels.max()) + 1
        sizes = torch.zeros(labels.shape[0], num_regions, device=maps.device).scatter_add_(
            1, labels, torch.ones_like(maps)
        )
        sums = torch.zeros_like(sizes).scatter_add_(1, labels, maps.float())
        means = torch.where(sizes > 0, sums / sizes.clamp_min(1), -torch.inf)
        ranks, counts = _region_ranks(labels, means, self.seed)
        curves = ranked_scores(model, ranks, counts, images, reference, target, self.score, self.chunk_size)
        ratios = curves / curves[:, :1]
        present = (sizes > 0).sum(dim=1, keepdim=True)
        steps = torch.arange(num_regions + 1, device=maps.device)
        fractions = (steps / present).clamp_max(1).double().cpu()
        return CurveResult(fractions=fractions, curves=ratios, auc=1 - trapezoid_auc(ratios, fractions))


@dataclass(frozen=True, eq=False, kw_only=True)
class ROAD(_IndependentMetric):
    """ROAD, remove and debias (Rong et al., ICML 2022): at each fraction ``p``, the ``round(p * H * W)`` most
    (``order="morf"``) or least (``"lerf"``) relevant pixels are removed by noisy linear imputation
    (:mod:`aha.metrics.imputation`), each fraction from the clean image; the curve is the target's score.
    Rong et al. and Quantus score top-1 accuracy (``score="correct"``, the default here). MoRF: low AUC is good;
    LeRF: high is good. ``reference`` is unused (the imputation is the perturbation).

    Attributes:
        order: ``"morf"`` or ``"lerf"``.
        fractions: ascending fractions in [0, 1); default 0.01, 0.03, ..., 0.99 (Quantus' percentages).
        noise: std of the Gaussian noise added to the imputed pixels (normalised space). Default 0.01 (Quantus).
            One noise field per image is drawn from the generator and used at every fraction.
        tolerance: relative residual of the imputation's conjugate gradients.
    """

    score: str = "correct"
    order: str = "morf"
    fractions: Sequence[float] | torch.Tensor | None = None
    noise: float = 0.01
    tolerance: float = 1e-6

    name = "ROAD"
    uses_reference = False
    _number_rules = {"noise": dict(minimum=0), "tolerance": dict(minimum=0)}

    def __post_init__(self):
        super().__post_init__()
        check_choice("order", self.order, ("morf", "lerf"))
        fractions = torch.arange(1, 100, 2, dtype=torch.float64) / 100 if self.fractions is None else self.fractions
        fractions = check_fractions(fractions)
        if fractions[-1] >= 1:
            raise ValueError(f"ROAD imputes from the kept pixels: fractions must be < 1, got {fractions.tolist()}")
        object.__setattr__(self, "fractions", fractions)

    def __call__(self, model: nn.Module, pixel_values, attributions, target=None, generator=None) -> CurveResult:
        images, maps, target, _ = self._prepare(model, pixel_values, attributions, target)
        generator = self._generator(generator)
        noise = self.noise * torch.randn(images.shape, generator=generator, dtype=torch.float32).to(images.device)
        ranks = order_to_ranks(hard_order(maps, descending=self.order == "morf", seed=self.seed))
        counts = torch.round(self.fractions * maps.shape[1]).long()

        def fill(start: torch.Tensor, masks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return noisy_linear_imputation(start, masks, noise[index], self.tolerance)

        curves = ranked_scores(model, ranks, counts, images, None, target, self.score, self.chunk_size, fill)
        return CurveResult(fractions=self.fractions, curves=curves, auc=trapezoid_auc(curves, self.fractions))


@dataclass
class CorrelationResult:
    """What :class:`FaithfulnessCorrelation` returns.

    Attributes:
        correlation: (B,) float32 Pearson correlation per image (NaN where either side is constant).
        attribution_sums: (B, R) the map summed over each run's removed pixels.
        score_drops: (B, R) ``f(x) - f(x_r)``, the target's score drop when those pixels are removed.
    """

    correlation: torch.Tensor
    attribution_sums: torch.Tensor
    score_drops: torch.Tensor


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the rows of two (B, R) tensors: (B,), NaN where a row is constant."""
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(denominator > 0, (a * b).sum(dim=1) / denominator, torch.nan).float()


@dataclass(frozen=True, eq=False, kw_only=True)
class FaithfulnessCorrelation(_IndependentMetric):
    """Faithfulness correlation (Bhatt et al., IJCAI 2020): ``runs`` times, a random subset of ``subset_size``
    pixels is replaced by the reference; the score is the Pearson correlation, over the runs, between the map's
    sum over the subset and the drop of the target's score. High is good. Default score ``"logit"`` (Quantus'
    default, ``softmax=False``). (Quantus' ``FaithfulnessCorrelation`` draws channel values; these are pixels.)

    Attributes:
        runs: random subsets per image. Default 100.
        subset_size: pixels per subset. Default 224 (Quantus' default, there counted in channel values).
    """

    score: str = "logit"
    runs: int = 100
    subset_size: int = 224

    name = "faithfulness correlation"
    _number_rules = {"runs": dict(integer=True, minimum=2), "subset_size": dict(integer=True, minimum=1)}

    def draw_subsets(self, batch: int, num_pixels: int, generator: torch.Generator) -> torch.Tensor:
        """(B, runs, subset_size) long pixel indices, each row drawn uniformly without replacement."""
        if self.subset_size > num_pixels:
            raise ValueError(f"subset_size {self.subset_size} exceeds the {num_pixels} pixels of an image")
        return torch.stack(
            [
                torch.rand(self.runs, num_pixels, generator=generator).argsort(dim=1)[:, : self.subset_size]
                for _ in range(batch)
            ]
        )

    def __call__(self, model: nn.Module, pixel_values, attributions, target=None, generator=None) -> CorrelationResult:
        images, maps, target, reference = self._prepare(model, pixel_values, attributions, target)
        batch, _, height, width = images.shape
        subsets = self.draw_subsets(batch, height * width, self._generator(generator)).to(images.device)
        device, dtype = device_dtype(model)
        images, reference = images.to(dtype), reference.to(dtype)

        def images_at(chunk: slice) -> torch.Tensor:  # index = image * runs + run
            index = torch.arange(chunk.start, chunk.stop, device=device)
            image = index // self.runs
            masks = torch.zeros(len(index), height * width, device=device, dtype=torch.bool)
            masks.scatter_(1, subsets.view(-1, self.subset_size)[index], True)
            return torch.lerp(images[image], reference[image], masks.view(-1, 1, height, width).to(dtype))

        with torch.no_grad():
            clean = torch.cat(
                [
                    class_scores(model(pixel_values=chunk).logits, t, self.score)
                    for chunk, t in zip(images.split(self.chunk_size), target.split(self.chunk_size))
                ]
            )
            perturbed = perturbation_scores(
                model, batch * self.runs, images_at, target.repeat_interleave(self.runs), self.score, self.chunk_size
            ).view(batch, self.runs)
        drops = clean[:, None] - perturbed
        sums = maps.gather(1, subsets.flatten(1)).view(batch, self.runs, self.subset_size).sum(dim=2)
        correlation = pearson(sums, drops)
        undefined = correlation.isnan().nonzero().flatten().tolist()
        if undefined:
            warnings.warn(
                f"faithfulness correlation: undefined (a constant side) for images {undefined}", stacklevel=2
            )
        return CorrelationResult(correlation=correlation, attribution_sums=sums, score_drops=drops)


#: every independent metric by name: (its options class and fixed options, True when high is good, what it is)
INDEPENDENT_METRICS = {
    "road_morf": (
        ROAD,
        dict(order="morf"),
        False,
        "ROAD, most relevant first, noisy linear imputation (accuracy AUC)",
    ),
    "road_lerf": (
        ROAD,
        dict(order="lerf"),
        True,
        "ROAD, least relevant first, noisy linear imputation (accuracy AUC)",
    ),
    "region_perturbation": (RegionPerturbation, {}, True, "region perturbation, 8 px patches, MoRF (AOPC)"),
    "selectivity": (Selectivity, {}, False, "selectivity, 8 px patches (AUC of the score)"),
    "irof": (IROF, {}, True, "IROF, SLIC superpixels (area over the score-ratio curve)"),
    "pixel_flipping": (PixelFlipping, {}, False, "pixel flipping, about 100 steps (AUC of the score)"),
    "faithfulness_correlation": (FaithfulnessCorrelation, {}, True, "faithfulness correlation, 100 subsets of 224 px"),
}


def independent_metric(name: str, **options):
    """The options object of the metric ``name`` of :data:`INDEPENDENT_METRICS` with ``options`` (those its
    class takes; shared ones such as ``image_processor``, ``chunk_size`` and ``seed`` go to every metric)."""
    check_choice("metric", name, INDEPENDENT_METRICS)
    cls, fixed, _, _ = INDEPENDENT_METRICS[name]
    accepted = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"{name} takes no option {unknown}; its options: {sorted(accepted - set(fixed))}")
    return cls(**{**options, **fixed})


def _selected(metrics, options: dict) -> dict:
    """name -> its options object, for the names in ``metrics`` (None: all) and the ``options`` each takes;
    an empty selection, an unknown name or an option no selected metric takes is refused."""
    names = list(INDEPENDENT_METRICS) if metrics is None else list(metrics)
    if not names:
        raise ValueError(f"metrics is empty: name at least one of {tuple(INDEPENDENT_METRICS)}")
    for name in names:
        check_choice("metric", name, INDEPENDENT_METRICS)
    fields = {name: INDEPENDENT_METRICS[name][0].__dataclass_fields__ for name in names}
    unknown = sorted(set(options) - set().union(*fields.values()))
    if unknown:
        raise ValueError(f"no selected metric takes the options {unknown}")
    return {
        name: independent_metric(name, **{k: v for k, v in options.items() if k in fields[name]}) for name in names
    }


def independent_settings(metrics=None, **options) -> dict[str, dict]:
    """The settings each metric of :func:`independent_scores` runs with for these arguments, by name (what a
    report writes beside the scores, so that every method is seen to be scored the same way)."""
    return {name: metric.settings() for name, metric in _selected(metrics, options).items()}


def independent_scores(
    model: nn.Module,
    pixel_values: torch.Tensor,
    attributions: torch.Tensor,
    target=None,
    metrics=None,
    generator: torch.Generator | None = None,
    **options,
) -> dict[str, torch.Tensor]:
    """Score a batch of maps with the independent metrics: ``{name: (B,) scores}``.

    Args:
        model, pixel_values, attributions, target: as for :func:`aha.metrics.deletion` (target None: the
            predicted class, resolved once for all metrics).
        metrics: names of :data:`INDEPENDENT_METRICS` (default all of them); an empty list is refused.
        generator: CPU generator of the random metrics' draws (ROAD's noise, the correlation's subsets), used
            in the order of ``metrics``; None seeds one with ``seed`` (default 0).
        **options: options given to every metric that takes them (``image_processor``, ``reference``,
            ``chunk_size``, ``seed``, ...); an option no selected metric takes is refused.
    Returns:
        per metric: the AUC-type score of each image (the correlation for faithfulness correlation); see
        :data:`INDEPENDENT_METRICS` for which direction is good.
    """
    selected = _selected(metrics, options)
    check_pixel_values(pixel_values)
    target = target_classes(model, pixel_values, target, options.get("chunk_size", 64))
    generator = generator if generator is not None else torch.Generator().manual_seed(options.get("seed", 0))
    results = {}
    patch_curves = None  # region perturbation and selectivity get the same options: one set of patch curves
    for name, metric in selected.items():
        if isinstance(metric, RegionPerturbation):
            if patch_curves is None:
                patch_curves = metric.patch_curves(model, pixel_values, attributions, target)
            result = metric.summarise(patch_curves)
        else:
            result = metric(model, pixel_values, attributions, target, generator)
        results[name] = result.correlation if isinstance(result, CorrelationResult) else result.auc
    return results
