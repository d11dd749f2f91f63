"""Exact, batched faithfulness and localisation metrics for attribution maps.

Every perturbation metric is one :class:`PerturbationProtocol` (reference, fractions, insertion convention,
score, normalisation, chunk size, seed) called on ``(model, pixel_values, attributions, target)``. It ranks
each map's pixels and traces :func:`perturbation_curve`: given a per-image pixel ordering, a start image and
an end image, the image at fraction ``p`` takes the end image's value on the first ``k = round(p * H * W)``
pixels of the ordering and keeps the start image's value elsewhere. All ``B * F`` perturbed images are built
from rank comparisons (``rank < k``, no per-step loops) and pushed through the classifier by the engine of
:mod:`aha.perturbation` under ``torch.no_grad``; the curve is the target's score at each fraction.

Named metrics (functions over a protocol; the evaluation protocol of DESIGN.md section 1 unless stated):

- :func:`deletion`: most relevant pixels first, towards a reference; low AUC is good.
- :func:`insertion`: high AUC is good, in two conventions:
  ``"lrf"`` (least-relevant-first deletion towards the reference, the paper's "insertion") and
  ``"rise"`` (start from the blurred image, insert the most relevant pixels first, as in RISE).
- :func:`positive_perturbation` / :func:`negative_perturbation` (Chefer et al. 2021): fractions
  0, 0.1, ..., 0.9 of the most / least relevant pixels set to 0 in [0, 1] space, top-1 accuracy against
  the label, trapezoid AUC over [0, 0.9] (low is good for positive, high for negative).
- :func:`pointing_game` (energy-based) and :func:`pixel_auroc`: localisation against object masks.

Images are ``pixel_values`` (B, C, H, W) in the classifier's normalised space. References (see
:mod:`aha.perturbation`): ``"mean"`` is zeros in normalised space; ``"black"`` is 0 in [0, 1] pixel space
(``-mean / std`` in normalised space, needs the processor normalisation); ``"blur"`` is a strong Gaussian
blur of the image. Attribution maps are ranked with :func:`aha.ranking.hard_order` over all H * W pixels
(ties broken by a fixed permutation seeded by ``seed``), so any strictly increasing transform of a map
gives the same curves. Maps may be:

- (B, H, W) or (B, 1, H, W): one score per pixel;
- (B, C, H, W) with C the image channels: summed over channels (signed; pass ``attributions.abs()`` to
  rank by magnitude instead);
- (B, h, w) or (B, 1 or C, h, w) on a patch grid whose stride divides (H, W) evenly: upsampled
  bilinearly (``align_corners=False``) to (H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .perturbation import (
    blend,
    check_reference,
    make_reference,
    perturbation_scores,
    resolve_normalisation,
    trapezoid_auc,
)
from .ranking import hard_order
from .scores import SCORE_KINDS
from .validation import check_choice, check_classes, check_number, check_pixel_values


#: Folder of the ``evaluate`` module: ``evaluate.load(EVALUATE_MODULE_PATH)``.
EVALUATE_MODULE_PATH = str(Path(__file__).parent / "metrics_hub" / "deletion_insertion")

INSERTION_CONVENTIONS = ("lrf", "rise")


def default_fractions() -> torch.Tensor:
    """The 21 fractions 0, 0.05, ..., 1 of the evaluation protocol, float64."""
    return torch.linspace(0.0, 1.0, 21, dtype=torch.float64)


def chefer_fractions() -> torch.Tensor:
    """The fractions 0, 0.1, ..., 0.9 of Chefer et al.'s positive/negative perturbation, float64."""
    return torch.linspace(0.0, 0.9, 10, dtype=torch.float64)


@dataclass
class CurveResult:
    """One perturbation metric over a batch.

    Attributes:
        fractions: (F,) float64, fractions of the pixels perturbed, ascending.
        curves: (B, F) float32, the target's score (softmax probability, or 0/1 top-1 correctness for
            Chefer's metrics) after perturbing each fraction.
        auc: (B,) float32, trapezoid area under each curve over ``fractions`` (not rescaled).
    """

    fractions: torch.Tensor
    curves: torch.Tensor
    auc: torch.Tensor

    @property
    def mean_auc(self) -> float:
        """The dataset mean of the per-image AUCs."""
        return self.auc.mean().item()

    @property
    def mean_curve(self) -> torch.Tensor:
        """(F,) the curve averaged over images."""
        return self.curves.mean(dim=0)


@dataclass
class DeletionInsertionResult:
    """What :func:`deletion_insertion` returns.

    Attributes:
        deletion: most relevant first towards the reference; low AUC is good.
        insertion: in the requested convention (``"lrf"`` or ``"rise"``); high AUC is good.
        target: (B,) long, the class whose probability the curves track.
    """

    deletion: CurveResult
    insertion: CurveResult
    target: torch.Tensor


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(model.parameters(), None)
    if param is None:
        raise TypeError(f"{type(model).__name__} has no parameters to read its device and dtype from")
    return param.device, param.dtype


def _num_labels(model: nn.Module) -> int | None:
    """The classifier's number of classes, when its config says (None skips range checks)."""
    return getattr(getattr(model, "config", None), "num_labels", None)


def _check_finite(tensor: torch.Tensor, what: str) -> None:
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ValueError(f"{what} contain NaN or infinite values")


def pixel_maps(
    attributions: torch.Tensor, batch: int, size: tuple[int, int], channels: int | None = None
) -> torch.Tensor:
    """Attribution maps in any accepted layout (see the module docstring) as (B, H, W) per-pixel scores.

    Args:
        attributions: (B, H, W), (B, 1, H, W), (B, C, H, W) or the same on a coarser patch grid.
        batch: B, the number of images the maps explain.
        size: (H, W) of those images, in pixels.
        channels: C of those images, the only channel count besides 1 accepted; None accepts any.
    Returns:
        (B, H, W), floating (integer/bool maps become float32; float maps keep their dtype).
    """
    maps = torch.as_tensor(attributions)
    if maps.ndim not in (3, 4):
        raise ValueError(f"attributions must be (B, H, W) or (B, C, H, W), got shape {tuple(maps.shape)}")
    if maps.shape[0] != batch:
        raise ValueError(f"attributions hold {maps.shape[0]} maps but there are {batch} images")
    if maps.ndim == 4:
        if channels is not None and maps.shape[1] not in (1, channels):
            raise ValueError(
                f"attributions (B, C, H, W) must have C = 1 or the images' {channels} channels, "
                f"got shape {tuple(maps.shape)}"
            )
        maps = maps.sum(dim=1)
    if not maps.is_floating_point():
        maps = maps.float()
    _check_finite(maps, "attributions")
    height, width = size
    h, w = maps.shape[1:]
    if (h, w) == (height, width):
        return maps
    if height % h or width % w or height // h != width // w:
        raise ValueError(
            f"attribution maps of spatial size {(h, w)} match neither the images' {(height, width)} "
            "nor a patch grid with one stride dividing both sides"
        )
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def predict(model: nn.Module, pixel_values: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """Top-1 class of each image, (B, C, H, W) -> (B,) long on the model's device."""
    check_number("chunk_size", chunk_size, integer=True, minimum=1)
    device, dtype = _device_dtype(model)
    with torch.no_grad():
        return torch.cat(
            [
                model(pixel_values=chunk.to(device, dtype)).logits.argmax(dim=-1)
                for chunk in pixel_values.split(chunk_size)
            ]
        )


def _resolve_target(model, pixel_values, target, chunk_size, name: str = "target") -> torch.Tensor:
    device, _ = _device_dtype(model)
    if target is None:
        return predict(model, pixel_values, chunk_size)
    return check_classes(target, pixel_values.shape[0], _num_labels(model), name, device=device)


def _fractions(fractions) -> torch.Tensor:
    fractions = default_fractions() if fractions is None else torch.as_tensor(fractions, dtype=torch.float64)
    if fractions.ndim != 1 or fractions.numel() < 2:
        raise ValueError(
            f"fractions must be a 1-D sequence of at least 2 values, got shape {tuple(fractions.shape)}"
        )
    if not ((fractions >= 0) & (fractions <= 1)).all() or (fractions.diff() < 0).any():  # NaN fails >= 0
        raise ValueError(f"fractions must be ascending values in [0, 1], got {fractions.tolist()}")
    return fractions


def perturbation_curve(
    model: nn.Module,
    order: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    fractions: torch.Tensor,
    target: torch.Tensor,
    score: str = "probability",
    chunk_size: int = 64,
) -> torch.Tensor:
    """The target's score along a path from ``start`` to ``end`` in the given pixel order.

    The image at fraction ``p`` is ``start`` with its first ``k = round(p * H * W)`` pixels of ``order``
    taken from ``end``. The ``B * F`` images are built chunk by chunk (``chunk_size`` images per forward)
    in the model's dtype on its device, under ``torch.no_grad`` (:func:`aha.perturbation.perturbation_scores`).

    Args:
        model: classifier called as ``model(pixel_values=x).logits`` -> (N, num_labels).
        order: (B, H * W) long, per image a permutation of the row-major pixel indices, perturbed first
            to last.
        start: (B, C, H, W) images at fraction 0 (normalised space).
        end: (B, C, H, W) or broadcastable, images at fraction 1.
        fractions: (F,) fractions in [0, 1].
        target: (B,) long, the class scored for each image.
        score: a kind of :func:`aha.scores.class_scores`: ``"probability"`` (softmax probability of the
            target), ``"correct"`` (1.0 where the top-1 class equals the target, else 0.0) or ``"logit"``.
        chunk_size: images per classifier forward.
    Returns:
        (B, F) float32 scores on the model's device.
    """
    check_choice("score", score, SCORE_KINDS)
    device, dtype = _device_dtype(model)
    batch, _, height, width = start.shape
    num_pixels = height * width
    if order.shape != (batch, num_pixels):
        raise ValueError(f"order must be (B, H * W) = {(batch, num_pixels)}, got {tuple(order.shape)}")
    start = start.to(device, dtype)
    end = end.to(device, dtype).expand_as(start).contiguous()
    order = order.to(device)
    positions = torch.arange(num_pixels, device=device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(1, order, positions)
    counts = torch.round(torch.as_tensor(fractions, dtype=torch.float64) * num_pixels).long().to(device)
    num_steps = counts.numel()

    def images_at(chunk: slice) -> torch.Tensor:  # index = image * num_steps + step
        index = torch.arange(chunk.start, chunk.stop, device=device)
        image, step = index // num_steps, index % num_steps
        masks = (ranks.index_select(0, image) < counts[step, None]).view(-1, height, width)
        return blend(start.index_select(0, image), end.index_select(0, image), masks)

    with torch.no_grad():
        scores = perturbation_scores(
            model, batch * num_steps, images_at, target.to(device).repeat_interleave(num_steps), score, chunk_size
        )
    return scores.view(batch, num_steps)


def check_inputs(pixel_values, attributions, classes=None, name: str = "target") -> torch.Tensor:
    """The checks every metric runs on its inputs before any forward pass, and the evaluate module on every
    batch it is given: images (:func:`~aha.validation.check_pixel_values`), maps (:func:`pixel_maps`) and,
    when given, classes (integer indices, one per image). Returns the maps as (B, H, W)."""
    check_pixel_values(pixel_values)
    batch, channels, height, width = pixel_values.shape
    maps = pixel_maps(attributions, batch, (height, width), channels)
    if classes is not None:
        check_classes(classes, batch, None, name)
    return maps


#: every perturbation metric by name: (the protocol it runs: the caller's or Chefer et al.'s, the curve it
#: measures, the classes it scores: the explained target or the labels)
PERTURBATION_METRICS = {
    "deletion": ("given", "deletion", "target"),
    "insertion": ("given", "insertion", "target"),
    "positive": ("chefer", "deletion", "labels"),
    "negative": ("chefer", "insertion", "labels"),
}


@dataclass(frozen=True, eq=False)
class PerturbationProtocol:
    """How deletion and insertion curves are measured; called on ``(model, pixel_values, attributions, target)``.

    The defaults are the AHA evaluation protocol: 21 fractions, hard ranking over all pixels, mean-colour
    reference, softmax probability of the target (the predicted class unless given), trapezoid AUC on [0, 1];
    insertion is least-relevant-first deletion. :meth:`chefer` gives Chefer et al.'s protocol, whose deletion
    is the positive perturbation and whose insertion is the negative one.

    Attributes:
        reference: what deleted pixels become: ``"mean"`` (zeros in normalised space), ``"black"`` (0 in [0, 1]
            space, needs the normalisation) or ``"blur"`` (:mod:`aha.perturbation`).
        insertion_convention: ``"lrf"`` (replace the *least* relevant pixels first by the reference, the
            paper's "insertion") or ``"rise"`` (start from the blurred image and insert the most relevant pixels
            of the image first, as in RISE; ``reference`` is unused there).
        fractions: ascending fractions in [0, 1]; default the 21 points 0, 0.05, ..., 1.
        score: the curve's score of the target (:func:`aha.scores.class_scores`): ``"probability"`` or
            ``"correct"`` (top-1 accuracy), or ``"logit"``.
        image_processor, image_mean, image_std: the normalisation of ``pixel_values``
            (:func:`aha.perturbation.resolve_normalisation`), needed by the ``"black"`` reference.
        chunk_size: images per classifier forward.
        seed: seed of the tie-breaking permutation of the ranking (:func:`aha.ranking.hard_order`).
        name: what the protocol is called in messages (e.g. ``"positive perturbation"``).

    Example::

        protocol = PerturbationProtocol(reference="blur", insertion_convention="rise")
        result = protocol(classifier, pixel_values, maps)              # DeletionInsertionResult
        result.deletion.mean_auc, result.insertion.auc                # float, (B,)
    """

    reference: str = "mean"
    insertion_convention: str = "lrf"
    fractions: Sequence[float] | torch.Tensor | None = None
    score: str = "probability"
    image_processor: object = None
    image_mean: Sequence[float] | None = None
    image_std: Sequence[float] | None = None
    chunk_size: int = 64
    seed: int = 0
    name: str | None = None

    def __post_init__(self):
        check_choice("insertion convention", self.insertion_convention, INSERTION_CONVENTIONS)
        check_choice("score", self.score, SCORE_KINDS)
        check_number("chunk_size", self.chunk_size, integer=True, minimum=1)
        check_number("seed", self.seed, integer=True)
        normalisation = resolve_normalisation(self.image_processor, self.image_mean, self.image_std)
        check_reference(self.reference, normalisation, self.name)
        object.__setattr__(self, "fractions", _fractions(self.fractions))
        object.__setattr__(self, "normalisation", normalisation)

    @classmethod
    def chefer(cls, kind: str = "positive", **options) -> "PerturbationProtocol":
        """Chefer et al.'s positive/negative perturbation: fractions 0, 0.1, ..., 0.9 of the pixels set to 0 in
        [0, 1] space (the "black" reference: the normalisation is required), top-1 accuracy against the labels.
        ``options``: ``image_processor`` or ``image_mean``/``image_std``, ``chunk_size``, ``seed``."""
        return cls(reference="black", fractions=chefer_fractions(), score="correct", name=f"{kind} perturbation", **options)

    def __call__(self, model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, target=None):
        """Deletion and insertion of the same maps for the same classes: a :class:`DeletionInsertionResult`.

        Args:
            model: HF image classifier (``model(pixel_values=x).logits``).
            pixel_values: (B, C, H, W) images in the classifier's normalised space.
            attributions: maps in any layout of the module docstring; higher = more relevant.
            target: None (the predicted class), an int, or (B,) classes, e.g. the labels.
        """
        check_pixel_values(pixel_values)
        target = _resolve_target(model, pixel_values, target, self.chunk_size)
        return DeletionInsertionResult(
            deletion=self.deletion(model, pixel_values, attributions, target),
            insertion=self.insertion(model, pixel_values, attributions, target),
            target=target,
        )

    def deletion(self, model, pixel_values, attributions, target=None, target_name: str = "target") -> CurveResult:
        """The most relevant pixels replaced first by the reference; low AUC is good (arguments of
        :meth:`__call__`; ``target_name`` is what the classes are called in messages)."""
        return self._curve(True, model, pixel_values, attributions, target, target_name)

    def insertion(self, model, pixel_values, attributions, target=None, target_name: str = "target") -> CurveResult:
        """Insertion in :attr:`insertion_convention`; high AUC is good (arguments of :meth:`deletion`)."""
        return self._curve(False, model, pixel_values, attributions, target, target_name)

    def measure(self, metric: str, model, pixel_values, attributions, target=None, labels=None) -> CurveResult:
        """The named metric of :data:`PERTURBATION_METRICS` (``"deletion"``, ``"insertion"``, ``"positive"``,
        ``"negative"``): deletion and insertion under this protocol for ``target``, Chefer et al.'s perturbations
        for ``labels`` (with this protocol's normalisation, chunk size and seed)."""
        check_choice("metric", metric, PERTURBATION_METRICS)
        which, curve, explained = PERTURBATION_METRICS[metric]
        protocol = self
        if which == "chefer":
            protocol = PerturbationProtocol.chefer(
                metric, image_processor=self.image_processor, image_mean=self.image_mean, image_std=self.image_std,
                chunk_size=self.chunk_size, seed=self.seed,
            )
        classes = target if explained == "target" else _required_labels(labels, metric)
        return getattr(protocol, curve)(model, pixel_values, attributions, classes, explained)

    def _curve(self, deletion, model, pixel_values, attributions, target, target_name) -> CurveResult:
        maps = check_inputs(pixel_values, attributions)
        device, _ = _device_dtype(model)
        images, scores = pixel_values.to(device), maps.to(device).flatten(1)
        target = _resolve_target(model, images, target, self.chunk_size, target_name)
        if deletion or self.insertion_convention == "lrf":
            start, end = images, make_reference(images, self.reference, *(self.normalisation or (None, None)))
        else:
            start, end = make_reference(images, "blur"), images
        order = hard_order(scores, descending=deletion or self.insertion_convention == "rise", seed=self.seed)
        curves = perturbation_curve(model, order, start, end, self.fractions, target, self.score, self.chunk_size)
        return CurveResult(fractions=self.fractions, curves=curves, auc=trapezoid_auc(curves, self.fractions))


def _required_labels(labels, metric: str):
    if labels is None:
        raise ValueError(f"the {metric} perturbation scores top-1 accuracy against the labels: pass labels")
    return labels


def deletion(model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, target=None, **protocol) -> CurveResult:
    """Deletion: replace the most relevant pixels first by the reference; low AUC is good.

    Args:
        model, pixel_values, attributions, target: see :meth:`PerturbationProtocol.__call__`.
        **protocol: fields of :class:`PerturbationProtocol` (``reference``, ``fractions``, ``image_processor`` or
            ``image_mean``/``image_std``, ``chunk_size``, ``seed``, ...).
    Returns:
        :class:`CurveResult` of softmax probabilities of the target.
    """
    return PerturbationProtocol(**protocol).deletion(model, pixel_values, attributions, target)


def insertion(
    model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, target=None, *, convention: str = "lrf",
    **protocol,
) -> CurveResult:
    """Insertion; high AUC is good. Two conventions:

    - ``"lrf"`` (default, the paper's "insertion"): replace the *least* relevant pixels first by
      ``reference``, i.e. deletion in reverse order of relevance;
    - ``"rise"``: start from the blurred image and insert the most relevant pixels of the image first
      (RISE, Petsiuk et al. 2018); the start is always the ``"blur"`` reference, ``reference`` is unused.

    Arguments are those of :func:`deletion`, plus ``convention``.
    Returns:
        :class:`CurveResult` of softmax probabilities of the target.
    """
    return PerturbationProtocol(insertion_convention=convention, **protocol).insertion(model, pixel_values, attributions, target)


def deletion_insertion(
    model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, target=None, **protocol
) -> DeletionInsertionResult:
    """Deletion and insertion of the same maps, for the same target classes: ``PerturbationProtocol(**protocol)``
    called on the arguments (see :class:`PerturbationProtocol`).

    With the defaults this is the AHA evaluation protocol: 21 fractions, hard ranking over all pixels,
    mean-colour reference, softmax probability of the predicted class, trapezoid AUC on [0, 1]; the
    insertion is least-relevant-first deletion (``insertion_convention="rise"`` for RISE's insertion).

    Example::

        result = deletion_insertion(classifier, pixel_values, maps)   # maps (B, H, W)
        result.deletion.mean_auc, result.insertion.mean_auc           # floats
        result.deletion.auc, result.deletion.curves                   # (B,), (B, 21)
    """
    return PerturbationProtocol(**protocol)(model, pixel_values, attributions, target)


def positive_perturbation(model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, labels, **options) -> CurveResult:
    """Chefer et al.'s positive perturbation: the most relevant pixels first set to 0 in [0, 1] space.

    Fractions 0, 0.1, ..., 0.9 (0 is the unperturbed image); the curve is top-1 accuracy against
    ``labels`` ((B,) or an int), the AUC its trapezoid over [0, 0.9]. Low is good. The normalisation
    (``image_processor`` or ``image_mean``/``image_std``) is required; ``chunk_size`` and ``seed`` as in
    :class:`PerturbationProtocol`. Returns a :class:`CurveResult`.
    """
    return PerturbationProtocol(**options).measure("positive", model, pixel_values, attributions, labels=labels)


def negative_perturbation(model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, labels, **options) -> CurveResult:
    """Chefer et al.'s negative perturbation: like :func:`positive_perturbation` but the *least*
    relevant pixels go first. High is good."""
    return PerturbationProtocol(**options).measure("negative", model, pixel_values, attributions, labels=labels)


def _localisation_inputs(attributions, masks) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H * W) float maps and bool masks, validated; maps brought to the masks' resolution."""
    masks = torch.as_tensor(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (B, H, W), got shape {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        if ((masks != 0) & (masks != 1)).any():
            raise ValueError("masks must be binary (bool or 0/1)")
        masks = masks.bool()
    empty = (~masks.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"masks of images {empty} have no object pixel")
    maps = pixel_maps(attributions, masks.shape[0], tuple(masks.shape[1:]))
    return maps.flatten(1), masks.to(maps.device).flatten(1)


def pointing_game(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Energy-based pointing game (Wang et al., Score-CAM 2020): share of the positive attribution
    energy that falls inside the object mask.

    Args:
        attributions: maps in any layout of the module docstring (only positive values count).
        masks: (B, H, W) bool or 0/1 object masks at image resolution, each with an object pixel.
    Returns:
        (B,) in [0, 1]; a map with no positive value scores 0.
    """
    maps, masks = _localisation_inputs(attributions, masks)
    energy = maps.clamp_min(0)
    total = energy.sum(dim=1)
    inside = (energy * masks).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def pixel_auroc(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve of the map's scores as a per-pixel detector of the object mask.

    Computed exactly as the Mann-Whitney statistic with tied scores counting one half.

    Args:
        attributions: maps in any layout of the module docstring.
        masks: (B, H, W) bool or 0/1, each with at least one object and one background pixel.
    Returns:
        (B,) float64 in [0, 1]; 0.5 is chance.
    """
    maps, masks = _localisation_inputs(attributions, masks)
    full = masks.all(dim=1).nonzero().flatten().tolist()
    if full:
        raise ValueError(f"masks of images {full} have no background pixel")
    ordered = maps.sort(dim=1).values
    below = torch.searchsorted(ordered, maps, right=False)
    up_to = torch.searchsorted(ordered, maps, right=True)
    ranks = (below + up_to + 1).double() / 2  # 1-based ranks, ties averaged
    positives = masks.sum(dim=1).double()
    negatives = masks.shape[1] - positives
    rank_sum = (ranks * masks).sum(dim=1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
