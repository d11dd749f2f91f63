"""One batch of images -> one result row per (image, method): the methods of :func:`aha.baselines.get_attributor`
and the metrics of :mod:`aha.metrics`, both looked up in their registries.

Every random draw depends on the image's index in the split and ``--seed`` only, never on which process scores the
image or what else is in its batch: methods with a ``seed`` option (random maps, RISE) are called image by image
with that image's seed, and metrics that draw (ROAD's noise, faithfulness correlation's subsets) get a generator
seeded the same way. The ranking's tie-break (:func:`aha.ranking.sorting.hard_order`) is the same for every image.

The localisation metrics (:data:`aha.metrics.LOCALISATION_METRICS`) score the maps against each image's object mask;
an image whose mask has no object pixel (or, for the pixel AUROC, no background pixel) at the evaluated resolution
has no value for them (null in its row).
"""

from __future__ import annotations

import inspect
import math
import typing

import numpy as np
import torch
from transformers.utils import logging

from .. import metrics as metric_engine
from ..baselines import ATTRIBUTORS, get_attributor
from ..metrics import LOCALISATION_METRICS, PERTURBATION_METRICS, PerturbationProtocol
from ..typed_options import parse_option


logger = logging.get_logger(__name__)


def _independent_metrics() -> dict:
    """The registry of the field's other metrics (ROAD, IROF, ...: name -> (options class, fixed options, high is
    good, description)), on versions of :mod:`aha.metrics` that have it."""
    return getattr(metric_engine, "INDEPENDENT_METRICS", {})


def metric_directions() -> dict[str, bool]:
    """Every metric ``aha evaluate`` measures, by name -> True when a high value is good."""
    directions = {name: curve == "insertion" for name, (_, curve, _) in PERTURBATION_METRICS.items()}
    directions.update({name: entry[2] for name, entry in _independent_metrics().items()})
    directions.update(dict.fromkeys(LOCALISATION_METRICS, True))  # high is good
    return directions


def metric_names() -> list[str]:
    return list(metric_directions())


def needs_labels(metrics: list[str], target: str) -> bool:
    """Whether the run needs ground-truth labels: ``--target label``, or a metric scored against the labels."""
    return target == "label" or any(
        PERTURBATION_METRICS.get(name, (None, None, None))[2] == "labels" for name in metrics
    )


def needs_masks(metrics: list[str]) -> bool:
    """Whether the run needs object masks: a localisation metric."""
    return any(name in LOCALISATION_METRICS for name in metrics)


def image_seed(seed: int, index: int) -> int:
    """The seed of the random draws for the image at ``index`` of the split (numpy's ``SeedSequence`` of both)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def check_methods(names: list[str]) -> None:
    unknown = [name for name in names if name not in ATTRIBUTORS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; expected some of {', '.join(ATTRIBUTORS)}")


def _option_hints(cls) -> dict[str, object]:
    """The keyword options of a method's ``__init__`` (its own and its bases') -> their declared types."""
    hints = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        declared = typing.get_type_hints(init)
        for name, parameter in inspect.signature(init).parameters.items():
            if name not in ("self", "classifier") and parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
                hints[name] = declared.get(name, typing.Any)
    return hints


class Method:
    """One method of :func:`aha.baselines.get_attributor` for the run's classifier: ``method(pixel_values, target,
    indices) -> (B, H, W)`` maps.

    Args:
        name: the method's registry name.
        classifier: the classifier explained.
        options: the user's options (``--method_option``), each parsed by its declared type.
        shared: options the run gives every method that takes them (the explainer, the image processor, ...).
        seed: ``--seed``; a method with a ``seed`` option gets :func:`image_seed` of each image instead.
    """

    def __init__(self, name: str, classifier, options: dict, shared: dict, seed: int):
        cls = ATTRIBUTORS[name]
        hints = _option_hints(cls)
        if "seed" in options:
            raise ValueError(f"--method_option {name}.seed: the seeds come from --seed, one per image")
        unknown = sorted(set(options) - set(hints))
        if unknown:
            raise ValueError(f"--method_option {name}.{unknown[0]}: {name} takes {sorted(set(hints) - {'seed'})}")
        parsed = {
            key: parse_option(f"--method_option {name}.{key}", value, hints[key]) for key, value in options.items()
        }
        self.name, self.seed, self.per_image = name, seed, "seed" in hints
        self.options = {**{key: value for key, value in shared.items() if key in hints}, **parsed}
        self.attributor = get_attributor(
            name, classifier, **self.options, **({"seed": seed} if self.per_image else {})
        )
        self.classifier = classifier

    def __call__(self, pixel_values: torch.Tensor, target: torch.Tensor, indices: list[int]) -> torch.Tensor:
        if not self.per_image:
            return self.attributor(pixel_values, target)
        return torch.cat(
            [
                get_attributor(self.name, self.classifier, **self.options, seed=image_seed(self.seed, index))(
                    pixel_values[i : i + 1], target[i : i + 1]
                )
                for i, index in enumerate(indices)
            ]
        )


def localisation_defined(name: str, masks: torch.Tensor) -> torch.Tensor:
    """(B,) bool: where the localisation metric ``name`` is defined on (B, H, W) ``masks``: a mask with an object
    pixel (and, for a metric that needs one, a background pixel)."""
    flat = masks.flatten(1)
    defined = flat.any(dim=1)
    if LOCALISATION_METRICS[name].needs_background:
        defined &= ~flat.all(dim=1)
    return defined


def localisation_scores(name: str, maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B,) float64 scores of the localisation metric ``name``; NaN where it is undefined
    (:func:`localisation_defined`)."""
    defined = localisation_defined(name, masks)
    scores = torch.full((len(masks),), math.nan, dtype=torch.float64, device=masks.device)
    if defined.any():
        scores[defined] = LOCALISATION_METRICS[name].score(maps[defined], masks[defined]).double().to(masks.device)
    return scores


def warn_undefined_localisation(names: list[str], masks: torch.Tensor, indices: list[int]) -> None:
    """Log, once per batch, the images (by ``indices``) where a localisation metric of ``names`` is undefined."""
    for name in names:
        defined = localisation_defined(name, masks).tolist()
        if not all(defined):
            background = " or no background pixel" if LOCALISATION_METRICS[name].needs_background else ""
            logger.warning(
                f"{name} is undefined (null) for images {[i for i, ok in zip(indices, defined) if not ok]}: "
                f"at the classifier's resolution their masks hold no object pixel{background}"
            )


class Metrics:
    """The named metrics under a protocol: ``metrics(pixel_values, maps, target, labels, indices, masks) -> {name:
    (B,)}`` (``masks``: (B, H, W) bool object masks at the images' resolution, for the localisation metrics).

    Args:
        names: metric names of :func:`metric_directions`.
        classifier: the classifier scored.
        protocol: the :class:`~aha.metrics.PerturbationProtocol` fields of the convention, or ``"chefer"``.
        image_processor: the normalisation of the images (the black reference needs it).
        chunk_size: perturbed images per classifier forward.
        seed: the ranking's tie-break, and the root of each image's generator (:func:`image_seed`).
    """

    def __init__(self, names: list[str], classifier, protocol, image_processor, chunk_size: int, seed: int):
        common = dict(image_processor=image_processor, chunk_size=chunk_size, seed=seed)
        if protocol == "chefer":
            self.protocol = PerturbationProtocol.chefer(**common)
        else:
            self.protocol = PerturbationProtocol(**protocol, **common)
        self.curves = [name for name in names if name in PERTURBATION_METRICS]
        self.localisation = [name for name in names if name in LOCALISATION_METRICS]
        self.independent = [
            name for name in names if name not in PERTURBATION_METRICS and name not in LOCALISATION_METRICS
        ]
        self.names, self.classifier, self.common = names, classifier, common

    def __call__(self, pixel_values, maps, target, labels, indices: list[int], masks=None) -> dict[str, torch.Tensor]:
        scores = {
            name: self.protocol.measure(name, self.classifier, pixel_values, maps, target=target, labels=labels).auc
            for name in self.curves
        }
        if self.localisation and masks is None:
            raise ValueError(f"{', '.join(self.localisation)} need object masks")
        scores.update({name: localisation_scores(name, maps, masks) for name in self.localisation})
        if self.independent:
            per_image = [
                metric_engine.independent_scores(
                    self.classifier,
                    pixel_values[i : i + 1],
                    maps[i : i + 1],
                    target[i : i + 1],
                    metrics=self.independent,
                    generator=torch.Generator().manual_seed(image_seed(self.common["seed"], index)),
                    **self.common,
                )
                for i, index in enumerate(indices)
            ]
            scores.update({name: torch.cat([image[name] for image in per_image]) for name in self.independent})
        return {name: scores[name] for name in self.names}


def result_rows(indices, method: str, target, labels, scores: dict[str, torch.Tensor]) -> list[dict]:
    """One JSON-able row per image: its index in the split, the method, the target, the label (None without labels)
    and every metric (None where a metric is undefined, e.g. a correlation over a constant map)."""
    columns = {name: values.double().cpu().tolist() for name, values in scores.items()}
    targets = target.cpu().tolist()
    label_list = labels.cpu().tolist() if labels is not None else [None] * len(indices)
    return [
        {
            "index": int(index),
            "method": method,
            "target": targets[i],
            "label": label_list[i],
            **{name: (value[i] if math.isfinite(value[i]) else None) for name, value in columns.items()},
        }
        for i, index in enumerate(indices)
    ]
