"""Turning dataset examples into model batches with the classifier's own image processor."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers.image_utils import PILImageResampling

from ..imaging.images import to_rgb


class ImageClassificationCollator:
    """Collate ``{image_column: PIL image, label_column: int}`` examples into a training batch.

    Returns ``{"pixel_values": (B, C, H, W) float32 in the classifier's normalised space,
    "labels": (B,) int64 classifier class ids}`` (no labels when ``label_column`` is None). Images are converted to
    RGB first by :func:`aha.imaging.images.to_rgb`, as the pipeline converts them (ImageNet holds a few grayscale and CMYK
    JPEGs; 16-bit images are divided by 65535, not clipped).

    Args:
        image_processor: the classifier's ``AutoImageProcessor`` (resize, crop, rescale, normalise).
        image_column, label_column: example keys (``label_column`` None: unlabelled images).
        num_labels: the classifier's number of classes; labels outside [0, num_labels) raise.
        class_index_map: optional dataset label id -> classifier class id (see ``columns.class_index_map``).
    """

    def __init__(
        self, image_processor, image_column: str, label_column: str | None, num_labels: int, class_index_map=None
    ):
        self.image_processor = image_processor
        self.image_column = image_column
        self.label_column = label_column
        self.num_labels = num_labels
        self.class_index_map = class_index_map

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        for key in (self.image_column, self.label_column):
            if key is not None and key not in examples[0]:
                raise ValueError(f"examples have no {key!r} column (keys: {sorted(examples[0])})")
        images = [
            to_rgb(example[self.image_column], f"the {self.image_column!r} of example {index} in the batch")
            for index, example in enumerate(examples)
        ]
        pixel_values = self.image_processor(images, return_tensors="pt")["pixel_values"]
        if self.label_column is None:
            return {"pixel_values": pixel_values}
        labels = [example[self.label_column] for example in examples]
        if self.class_index_map is not None:
            labels = [self.class_index_map[label] for label in labels]
        bad = [label for label in labels if not 0 <= label < self.num_labels]
        if bad:
            raise ValueError(f"labels {bad} are outside the classifier's classes [0, {self.num_labels})")
        return {"pixel_values": pixel_values, "labels": torch.tensor(labels, dtype=torch.long)}


def _image_size(image) -> tuple[int, int]:
    """(H, W) of a PIL image or an (H, W[, C]) array."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    return tuple(np.shape(image)[:2])


def _binary_mask(mask, size: tuple[int, int], name: str) -> np.ndarray:
    """``np.asarray(mask)`` as an (H, W) bool array of the image's ``size``. Raises ValueError naming ``name`` for a
    mask of another shape or with values other than 0 / 1 (or 0 / 255, an 8-bit image)."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f'{name} has shape {array.shape}: expected one channel (H, W), e.g. an image of mode "1"')
    if array.dtype != bool:
        values = np.unique(array)
        if not (np.isin(values, (0, 1)).all() or np.isin(values, (0, 255)).all()):
            raise ValueError(
                f"{name} is not binary: expected values 0 and 1 (or 0 and 255), found {values[:6].tolist()}"
            )
        array = array != 0
    if array.shape != tuple(size):
        raise ValueError(
            f"{name} is {array.shape[0]} x {array.shape[1]} but its image is {size[0]} x {size[1]} (H x W)"
        )
    return array


def processed_masks(masks: list, images: list, image_processor, names: list[str]) -> torch.Tensor:
    """Object masks brought to the classifier's resolution the way ``image_processor`` brings their images: (B, h, w)
    bool, with (h, w) of its ``pixel_values``.

    Each mask is read as ``np.asarray(mask)`` (an image of mode ``"1"`` gives bools) and must be (H, W) at its image's
    size, binary (0 / 1, or 0 / 255). It goes through the processor as a black and white image with the processor's
    own settings (resize, crop, rescale, normalisation) but nearest-neighbour resampling, so every mask pixel lands
    where its image pixel goes; a pixel is object where its value is that of white (a white and a black image are
    processed beside the masks for reference).

    Args:
        masks, images: one mask and its (unprocessed) image per example.
        image_processor: the classifier's ``AutoImageProcessor``.
        names: how each mask is named in an error, e.g. "the mask of image 12".
    """
    arrays = [_binary_mask(mask, _image_size(image), name) for mask, image, name in zip(masks, images, names)]
    pictures = [Image.fromarray(array.astype(np.uint8) * 255).convert("RGB") for array in arrays]
    references = [Image.new("RGB", pictures[0].size, (value,) * 3) for value in (0, 255)]
    pixels = image_processor(pictures + references, resample=PILImageResampling.NEAREST, return_tensors="pt")[
        "pixel_values"
    ][:, 0].double()
    centre = tuple(size // 2 for size in pixels.shape[1:])
    black, white = pixels[-2][centre], pixels[-1][centre]
    share = (pixels[:-2] - black) / (white - black)  # 0 where black, 1 where white
    if not ((share.abs() < 1e-4) | ((share - 1).abs() < 1e-4)).all():
        raise ValueError(
            f"{type(image_processor).__name__} did not keep the masks binary when resizing them with "
            "nearest-neighbour resampling"
        )
    return share > 0.5
