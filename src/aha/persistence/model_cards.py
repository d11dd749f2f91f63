"""Model cards with results, for explainers uploaded to the Hub (:mod:`aha.persistence.hub_upload`) or saved by
``aha train`` and ``aha evaluate``, and the card templates they are rendered from.

Cards are ``huggingface_hub.ModelCard`` objects rendered from ``hub_cards/model_card.md`` (shipped in the
package): the metadata (``ModelCardData``) carries the library, the pipeline task, the license, the
classifier's Hub id as ``base_model`` and one ``EvalResult`` per measured faithfulness metric; the body
says whether the save is self-contained or decoder-only and how to load it.
"""

from __future__ import annotations

import importlib.resources
import math
import os
from typing import Mapping, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .. import TASK
from ..modeling.configuration_aha import AHAConfig


MODEL_CARD_TEMPLATE = "model_card.md"  # in aha.hub_cards


def card_template(name: str) -> str:
    """The text of a card template shipped as package data in ``aha.hub_cards`` (the repository's ``hub_cards/``)."""
    return importlib.resources.files("aha.hub_cards").joinpath(name).read_text(encoding="utf-8")


LIBRARY_NAME = "aha-explain"
DEFAULT_LICENSE = "apache-2.0"

#: Faithfulness metrics a card records, by the key the evaluate module (``aha.metrics.EVALUATE_MODULE_PATH``)
#: and ``aha train``'s evaluation report them under: (name on the card, protocol of the metric).
FAITHFULNESS_METRICS = {
    "deletion_auc": ("Deletion AUC (lower is better)", {"fractions": 21}),
    "insertion_auc": ("Insertion AUC (higher is better)", {"fractions": 21}),
    "positive_auc": (
        "Positive perturbation AUC (lower is better)",
        {"fractions": 10, "target": "label", "reference": "black"},
    ),
    "negative_auc": (
        "Negative perturbation AUC (higher is better)",
        {"fractions": 10, "target": "label", "reference": "black"},
    ),
}


def hub_id(name_or_path: str | None) -> str | None:
    """``name_or_path`` when it names a Hub repository; None for a local path (cards never record those)."""
    if not name_or_path or os.path.exists(name_or_path):
        return None
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        return None
    return name_or_path


def faithfulness_results(
    metrics: Mapping[str, float],
    *,
    dataset: str,
    split: str,
    reference: str = "mean",
    insertion_convention: str = "lrf",
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    target: str = "predicted",
) -> list[EvalResult]:
    """One ``EvalResult`` per faithfulness metric in ``metrics``, for a model card.

    Args:
        metrics: values by key, e.g. ``{"deletion_auc": 0.12, "insertion_auc": 0.81}``: the output of the
            evaluate module's ``compute`` or of ``aha train``'s evaluation (other keys are skipped).
        dataset: the dataset's Hub id (or a short name for local data, e.g. ``"imagefolder"``).
        split: the split measured.
        reference: what deleted pixels became in deletion / insertion (``"mean"``, ``"black"``, ``"blur"``).
        insertion_convention: ``"lrf"`` (least relevant first) or ``"rise"`` (RISE-style insertion).
        dataset_name, dataset_config: a readable name of the dataset, and its configuration.
        target: the class explained in deletion / insertion, ``"predicted"`` or ``"label"`` (the positive and
            negative perturbations always score the label).
    Raises:
        ValueError: no known metric in ``metrics``, or a value that is not a finite number.
    """
    found = [key for key in FAITHFULNESS_METRICS if key in metrics]
    if not found:
        raise ValueError(
            f"metrics hold none of the faithfulness metrics {sorted(FAITHFULNESS_METRICS)}: got {sorted(metrics)}"
        )
    results = []
    for key in found:
        value = metrics[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        name, protocol = FAITHFULNESS_METRICS[key]
        arguments = {"target": target, "reference": reference, **protocol}
        if key == "insertion_auc":
            arguments["insertion"] = insertion_convention
        results.append(
            EvalResult(
                task_type=TASK,
                task_name="Visual attribution",
                dataset_type=dataset,
                dataset_name=dataset_name or dataset,
                dataset_config=dataset_config,
                dataset_split=split,
                metric_type=key,
                metric_name=name,
                metric_value=float(value),
                metric_args=arguments,
            )
        )
    return results


def model_card(
    config: AHAConfig,
    *,
    repo_id: str | None = None,
    include_classifier: bool = True,
    eval_results: Sequence[EvalResult] | None = None,
    dataset: str | None = None,
    steps: int | None = None,
    license: str = DEFAULT_LICENSE,
) -> ModelCard:
    """The model card of an explainer with ``config`` (as saved: its fingerprint recorded).

    Args:
        repo_id: where it lives on the Hub (shown in the usage examples).
        include_classifier: whether the save holds the classifier (self-contained) or is decoder-only.
        eval_results: measured faithfulness, e.g. from :func:`faithfulness_results`.
        dataset: the training data (a Hub id is also listed in the metadata).
        steps: optimisation steps trained.
        license: the license of the explainer's weights (a self-contained save also holds the
            classifier's weights, which keep the classifier's own license).
    """
    from .. import __version__

    base_model = hub_id(config.classifier_name_or_path)
    architecture = config.classifier_config.architectures[0]
    classifier = f"`{base_model}`" if base_model else f"a {architecture} loaded from a local folder"
    name = (repo_id or "aha-explainer").rstrip("/").split("/")[-1]
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        pipeline_tag=TASK,
        license=license,
        base_model=base_model,
        datasets=[dataset] if hub_id(dataset) else None,
        tags=["aha", "explainability", "attribution", "image-classification"],
        model_name=name,
        eval_results=list(eval_results) if eval_results else None,
    )
    return ModelCard.from_template(
        data,
        template_str=card_template(MODEL_CARD_TEMPLATE),
        classifier=classifier,
        base_model=base_model,
        classifier_revision=config.classifier_revision,
        fingerprint=config.classifier_fingerprint,
        self_contained=include_classifier,
        repo_id=repo_id or "path/to/explainer",
        dataset=dataset,
        steps=steps,
        results=list(eval_results or []),
        aha_version=__version__,
    )
