"""Deletion and insertion (the AHA evaluation protocol) and Chefer et al.'s positive / negative perturbation:
one :class:`PerturbationProtocol` (reference, fractions, insertion convention, score, normalisation, chunk
size, seed) called on ``(model, pixel_values, attributions, target)``, and a function per named metric.

The protocol ranks each map's pixels with :func:`aha.ranking.sorting.hard_order` and traces
:func:`~aha.metrics.curves.perturbation_curve` from the image towards a reference (or, for RISE's insertion,
from the blurred image towards the image). The defaults are the AHA reference's evaluation protocol: 21 fractions,
hard ranking over all pixels, mean-colour reference, softmax probability of the predicted class, trapezoid AUC
on [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..ranking.perturbation import make_reference, trapezoid_auc
from ..ranking.sorting import hard_order
from ..validation import check_choice, check_classes, check_pixel_values
from .curves import (
    CurveResult,
    check_fractions,
    check_inputs,
    chefer_fractions,
    device_dtype,
    num_labels,
    perturbation_curve,
    target_classes,
    warn_if_constant,
)
from .options import MetricOptions


INSERTION_CONVENTIONS = ("lrf", "rise")


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


#: every perturbation metric by name: (the protocol it runs: the caller's or Chefer et al.'s, the curve it
#: measures, the classes it scores: the explained target or the labels)
PERTURBATION_METRICS = {
    "deletion": ("given", "deletion", "target"),
    "insertion": ("given", "insertion", "target"),
    "positive": ("chefer", "deletion", "labels"),
    "negative": ("chefer", "insertion", "labels"),
}


@dataclass(frozen=True, eq=False, kw_only=True)
class PerturbationProtocol(MetricOptions):
    """How deletion and insertion curves are measured; called on ``(model, pixel_values, attributions, target)``.

    The defaults are the AHA evaluation protocol: 21 fractions, hard ranking over all pixels, mean-colour
    reference, softmax probability of the target (the predicted class unless given), trapezoid AUC on [0, 1];
    insertion is least-relevant-first deletion. :meth:`chefer` gives Chefer et al.'s protocol, whose deletion
    is the positive perturbation and whose insertion is the negative one.

    Attributes:
        reference: what deleted pixels become: ``"mean"`` (zeros in normalised space), ``"black"`` (0 in [0, 1]
            space, needs the normalisation) or ``"blur"`` (:mod:`aha.ranking.perturbation`).
        insertion_convention: ``"lrf"`` (replace the *least* relevant pixels first by the reference, the
            paper's "insertion") or ``"rise"`` (start from the blurred image and insert the most relevant pixels
            of the image first, as in RISE; ``reference`` is unused there).
        fractions: ascending fractions in [0, 1]; default the 21 points 0, 0.05, ..., 1.
        score: the curve's score of the target (:func:`aha.ranking.scores.class_scores`): ``"probability"`` or
            ``"correct"`` (top-1 accuracy), or ``"logit"``.
        image_processor, image_mean, image_std: the normalisation of ``pixel_values``
            (:func:`aha.ranking.perturbation.resolve_normalisation`), needed by the ``"black"`` reference.
        chunk_size: images per classifier forward.
        seed: seed of the tie-breaking permutation of the ranking (:func:`aha.ranking.sorting.hard_order`).
        name: what the protocol is called in messages (e.g. ``"positive perturbation"``).

    Example::

        protocol = PerturbationProtocol(reference="blur", insertion_convention="rise")
        result = protocol(classifier, pixel_values, maps)              # DeletionInsertionResult
        result.deletion.mean_auc, result.insertion.auc                # float, (B,)
    """

    insertion_convention: str = "lrf"
    fractions: Sequence[float] | torch.Tensor | None = None
    name: str | None = None

    def __post_init__(self):
        check_choice("insertion_convention", self.insertion_convention, INSERTION_CONVENTIONS)
        super().__post_init__()
        object.__setattr__(self, "fractions", check_fractions(self.fractions))

    @classmethod
    def chefer(cls, kind: str = "positive", **options) -> "PerturbationProtocol":
        """Chefer et al.'s positive/negative perturbation: fractions 0, 0.1, ..., 0.9 of the pixels set to 0 in
        [0, 1] space (the "black" reference: the normalisation is required), top-1 accuracy against the labels.
        ``options``: ``image_processor`` or ``image_mean``/``image_std``, ``chunk_size``, ``seed``."""
        return cls(
            reference="black", fractions=chefer_fractions(), score="correct", name=f"{kind} perturbation", **options
        )

    def __call__(self, model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, target=None):
        """Deletion and insertion of the same maps for the same classes: a :class:`DeletionInsertionResult`.

        Args:
            model: HF image classifier (``model(pixel_values=x).logits``).
            pixel_values: (B, C, H, W) images in the classifier's normalised space.
            attributions: maps in any layout of the module docstring; higher = more relevant.
            target: None (the predicted class), an int, or (B,) classes, e.g. the labels.
        """
        check_pixel_values(pixel_values)
        target = target_classes(model, pixel_values, target, self.chunk_size)
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
                metric,
                image_processor=self.image_processor,
                image_mean=self.image_mean,
                image_std=self.image_std,
                chunk_size=self.chunk_size,
                seed=self.seed,
            )
        if labels is not None:  # checked even where unused: an out-of-range label is a wrong input either way
            check_pixel_values(pixel_values)
            labels = check_classes(labels, pixel_values.shape[0], num_labels(model), "labels")
        classes = target if explained == "target" else _required_labels(labels, metric)
        return getattr(protocol, curve)(model, pixel_values, attributions, classes, explained)

    def _curve(self, deletion, model, pixel_values, attributions, target, target_name) -> CurveResult:
        maps = check_inputs(pixel_values, attributions)
        warn_if_constant(maps, self.name or ("deletion" if deletion else "insertion"))
        device, _ = device_dtype(model)
        images, scores = pixel_values.to(device), maps.to(device).flatten(1)
        target = target_classes(model, images, target, self.chunk_size, target_name)
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


def deletion(
    model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, target=None, **protocol
) -> CurveResult:
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
    model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, target=None, **protocol
) -> CurveResult:
    """Insertion; high AUC is good. Two conventions (``insertion_convention``, the protocol's field):

    - ``"lrf"`` (default, the paper's "insertion"): replace the *least* relevant pixels first by
      ``reference``, i.e. deletion in reverse order of relevance;
    - ``"rise"``: start from the blurred image and insert the most relevant pixels of the image first
      (RISE, Petsiuk et al. 2018); the start is always the ``"blur"`` reference, ``reference`` is unused.

    Arguments and result are those of :func:`deletion` (``insertion_convention`` among the protocol's fields).
    """
    return PerturbationProtocol(**protocol).insertion(model, pixel_values, attributions, target)


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


def positive_perturbation(
    model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, labels, **options
) -> CurveResult:
    """Chefer et al.'s positive perturbation: the most relevant pixels first set to 0 in [0, 1] space.

    Fractions 0, 0.1, ..., 0.9 (0 is the unperturbed image); the curve is top-1 accuracy against
    ``labels`` ((B,) or an int), the AUC its trapezoid over [0, 0.9]. Low is good. The normalisation
    (``image_processor`` or ``image_mean``/``image_std``) is required; ``chunk_size`` and ``seed`` as in
    :class:`PerturbationProtocol`. Returns a :class:`CurveResult`.
    """
    return PerturbationProtocol(**options).measure("positive", model, pixel_values, attributions, labels=labels)


def negative_perturbation(
    model: nn.Module, pixel_values: torch.Tensor, attributions: torch.Tensor, labels, **options
) -> CurveResult:
    """Chefer et al.'s negative perturbation: like :func:`positive_perturbation` but the *least*
    relevant pixels go first. High is good."""
    return PerturbationProtocol(**options).measure("negative", model, pixel_values, attributions, labels=labels)
