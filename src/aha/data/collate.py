"""Turning dataset examples into model batches with the classifier's own image processor."""

from __future__ import annotations

import torch

from ..images import to_rgb


class ImageClassificationCollator:
    """Collate ``{image_column: PIL image, label_column: int}`` examples into a training batch.

    Returns ``{"pixel_values": (B, C, H, W) float32 in the classifier's normalised space,
    "labels": (B,) int64 classifier class ids}``. Images are converted to RGB first by
    :func:`aha.images.to_rgb`, as the pipeline converts them (ImageNet holds a few grayscale and CMYK JPEGs;
    16-bit images are divided by 65535, not clipped).

    Args:
        image_processor: the classifier's ``AutoImageProcessor`` (resize, crop, rescale, normalise).
        image_column, label_column: example keys.
        num_labels: the classifier's number of classes; labels outside [0, num_labels) raise.
        class_index_map: optional dataset label id -> classifier class id (see ``columns.class_index_map``).
    """

    def __init__(self, image_processor, image_column: str, label_column: str, num_labels: int, class_index_map=None):
        self.image_processor = image_processor
        self.image_column = image_column
        self.label_column = label_column
        self.num_labels = num_labels
        self.class_index_map = class_index_map

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        for key in (self.image_column, self.label_column):
            if key not in examples[0]:
                raise ValueError(f"examples have no {key!r} column (keys: {sorted(examples[0])})")
        images = [to_rgb(example[self.image_column], f"the {self.image_column!r} of example {index} in the batch")
                  for index, example in enumerate(examples)]
        labels = [example[self.label_column] for example in examples]
        if self.class_index_map is not None:
            labels = [self.class_index_map[label] for label in labels]
        bad = [label for label in labels if not 0 <= label < self.num_labels]
        if bad:
            raise ValueError(f"labels {bad} are outside the classifier's classes [0, {self.num_labels})")
        pixel_values = self.image_processor(images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values, "labels": torch.tensor(labels, dtype=torch.long)}
