"""Checking a dataset's columns and label space against the classifier, from metadata only.

AHA trains on labelled images: the second class of each image is the runner-up when the classifier's top-1
is right and the ground truth otherwise, so a dataset without labels cannot train an explainer. Labels
must index the *classifier's* classes; when the dataset's class names all appear in the classifier's
``label2id`` (ImageNet-1k against an ImageNet classifier, an image folder named after the classes) the
labels are remapped by name, otherwise they are taken as class indices.
"""

from __future__ import annotations

import datasets
from transformers.utils import logging


logger = logging.get_logger(__name__)


def check_columns(
    dataset: datasets.Dataset | datasets.IterableDataset, image_column: str, label_column: str, split: str
):
    """Raise a ValueError naming the missing or mistyped column. Streams whose features are unknown pass
    (their examples are checked when batched)."""
    features = dataset.features
    if features is None:
        return
    columns = sorted(features)
    if image_column not in features:
        raise ValueError(
            f"the {split} split has no image column {image_column!r} (columns: {columns}); pass --image_column_name"
        )
    if not isinstance(features[image_column], datasets.Image):
        raise ValueError(
            f"column {image_column!r} of the {split} split holds {features[image_column]!r}, expected datasets.Image"
        )
    if label_column not in features:
        raise ValueError(
            f"the {split} split has no label column {label_column!r} (columns: {columns}); AHA needs ground-truth "
            "labels (the second class of an image is the label when the classifier's top-1 is wrong); pass "
            "--label_column_name"
        )


def class_index_map(label_feature, label2id: dict[str, int], num_labels: int) -> list[int] | None:
    """Dataset label id -> classifier class id, or None when the ids are used as they are.

    Args:
        label_feature: the dataset's label feature (a ``ClassLabel`` carries class names; anything else
            is taken as class indices and range-checked per batch).
        label2id: the classifier config's name -> id mapping.
        num_labels: the classifier's number of classes.
    """
    if not isinstance(label_feature, datasets.ClassLabel):
        return None
    names = label_feature.names
    if all(name in label2id for name in names):
        mapping = [int(label2id[name]) for name in names]
        return None if mapping == list(range(len(names))) else mapping
    if len(names) > num_labels:
        raise ValueError(
            f"the dataset has {len(names)} classes but the classifier only {num_labels}, and the class names do not "
            f"match the classifier's labels (e.g. {names[0]!r}); AHA explains the classifier's own classes"
        )
    logger.warning(
        "dataset class names do not match the classifier's labels; using dataset label ids as class indices"
    )
    return None
