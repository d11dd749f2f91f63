"""Loading the classifier to explain (``--model_name_or_path``) and its image processor."""

from __future__ import annotations

from transformers import AutoImageProcessor, AutoModelForImageClassification
from transformers.utils import IMAGE_PROCESSOR_NAME

from ..loading import load_classifier, read_model_json


def load_classifier_and_processor(model_name_or_path: str, token: str | None = None):
    """The classifier (``AutoModelForImageClassification``, from safetensors, every weight in the checkpoint)
    and its ``AutoImageProcessor``. Raises when the checkpoint lacks weights (e.g. a headless model), holds NaN or
    infinite ones, or when config.json or preprocessor_config.json sets ``auto_map`` (custom code, never run)."""
    classifier = load_classifier(
        AutoModelForImageClassification, model_name_or_path, "--model_name_or_path", token=token
    )
    read_model_json(model_name_or_path, IMAGE_PROCESSOR_NAME, token=token)
    image_processor = AutoImageProcessor.from_pretrained(model_name_or_path, token=token)
    return classifier, image_processor
