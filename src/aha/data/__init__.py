"""Datasets -> training batches for AHA, with the classifier's own image processor."""

from .batches import TrainingBatches, eval_dataloader, limit_examples, train_dataloader
from .collate import ImageClassificationCollator, processed_masks
from .columns import check_columns, class_index_map
from .sources import (
    IMAGENET_ID,
    get_split,
    load_hub_dataset,
    load_image_folders,
    load_saved_dataset,
    load_splits,
    split_off_validation,
)


__all__ = [
    "IMAGENET_ID",
    "ImageClassificationCollator",
    "TrainingBatches",
    "check_columns",
    "class_index_map",
    "eval_dataloader",
    "get_split",
    "limit_examples",
    "load_hub_dataset",
    "load_image_folders",
    "load_saved_dataset",
    "load_splits",
    "processed_masks",
    "split_off_validation",
    "train_dataloader",
]
