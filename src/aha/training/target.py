"""Loading the frozen target classifier and its image processor."""

from __future__ import annotations

from transformers import AutoImageProcessor, AutoModelForImageClassification


def load_target(model_name_or_path: str):
    """The classifier (``AutoModelForImageClassification``) and its ``AutoImageProcessor``."""
    classifier = AutoModelForImageClassification.from_pretrained(model_name_or_path)
    image_processor = AutoImageProcessor.from_pretrained(model_name_or_path)
    return classifier, image_processor
