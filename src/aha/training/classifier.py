"""Loading the classifier to explain (``--model_name_or_path``) and its image processor."""

from __future__ import annotations

from transformers import AutoImageProcessor, AutoModelForImageClassification

from ..loading import load_classifier


def load_classifier_and_processor(model_name_or_path: str, token: str | None = None):
    """The classifier (``AutoModelForImageClassification``, from safetensors, every weight in the checkpoint)
    and its ``AutoImageProcessor``. Raises when the checkpoint lacks weights (e.g. a headless model)."""
    classifier = load_classifier(AutoModelForImageClassification, model_name_or_path, "--model_name_or_path", token=token)
    image_processor = AutoImageProcessor.from_pretrained(model_name_or_path, token=token)
    return classifier, image_processor
