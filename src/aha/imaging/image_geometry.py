"""Where an image processor's output lies in the original image, and maps carried back to the original size.

Image processors of `transformers` resize an image (to a fixed size, or its short side to a length) and may
centre-crop it. :func:`processed_region` reads that geometry off the processor's own settings with the
library's own size rules; :func:`to_original_size` resamples a map of the processed image onto every pixel
of the original, so a map lines up with the picture the user gave.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.image_transforms import get_size_with_aspect_ratio


# ConvNeXt's processors crop ``crop_pct`` of the image only below this size (above it they warp)
_CONVNEXT_CROP_BELOW = 384


@dataclass(frozen=True)
class ProcessedRegion:
    """The geometry of one image through an image processor.

    Attributes:
        original: (H, W) of the original image.
        resized: (h, w) after the processor's resize (the original's size when it does not resize).
        offset: (top, left) of the processed image in the resized one; negative where a crop larger than
            the resized image pads it.
        size: (h, w) of the processed image (``pixel_values.shape[-2:]``).
    """

    original: tuple[int, int]
    resized: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]

    def crop(self, size: tuple[int, int]) -> ProcessedRegion:
        """This region followed by a centre crop to ``size`` (the offsets of ``transformers``' centre crop)."""
        top = self.offset[0] + (self.size[0] - size[0]) // 2
        left = self.offset[1] + (self.size[1] - size[1]) // 2
        return ProcessedRegion(self.original, self.resized, (top, left), tuple(size))


def _field(size, key: str):
    """``size[key]`` of a processor's size setting (``SizeDict`` or plain dict), None when unset."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def processed_region(image_processor, height: int, width: int) -> ProcessedRegion:
    """The geometry of an ``height`` x ``width`` image through ``image_processor``.

    Follows the processor's settings: ``do_resize`` with ``size`` {height, width} (warp), {shortest_edge}
    (and optionally longest_edge: aspect kept), ConvNeXt's ``crop_pct`` (short side to shortest_edge /
    crop_pct, then a centre crop to shortest_edge, below 384 px), then ``do_center_crop`` to ``crop_size``.

    Raises:
        ValueError: the processor resizes in a way not listed above (name the class and its size setting).
    """
    region = ProcessedRegion((height, width), (height, width), (0, 0), (height, width))
    size = getattr(image_processor, "size", None)
    if getattr(image_processor, "do_resize", False) and size is not None:
        shortest, longest = _field(size, "shortest_edge"), _field(size, "longest_edge")
        crop_pct = getattr(image_processor, "crop_pct", None)
        if _field(size, "height") and _field(size, "width"):
            resized = (_field(size, "height"), _field(size, "width"))
        elif shortest and crop_pct is not None and shortest < _CONVNEXT_CROP_BELOW:
            resized = get_size_with_aspect_ratio((height, width), int(shortest / crop_pct))
        elif shortest and crop_pct is not None:
            resized = (shortest, shortest)
        elif shortest:
            resized = get_size_with_aspect_ratio((height, width), shortest, longest)
        else:
            raise ValueError(
                f"cannot map maps back to the original image through {type(image_processor).__name__} with size "
                f"{size}: expected size with height and width, or with shortest_edge"
            )
        region = ProcessedRegion((height, width), tuple(resized), (0, 0), tuple(resized))
        if shortest and crop_pct is not None and shortest < _CONVNEXT_CROP_BELOW:
            region = region.crop((shortest, shortest))
    if getattr(image_processor, "do_center_crop", False):
        crop_size = image_processor.crop_size
        region = region.crop((_field(crop_size, "height"), _field(crop_size, "width")))
    return region


def to_original_size(maps: torch.Tensor, region: ProcessedRegion) -> torch.Tensor:
    """Maps of a processed image, (..., h, w) with (h, w) = ``region.size``, at the original size (..., H, W).

    Each original pixel takes the bilinear interpolation of the map at the point it moved to through the
    resize and crop. Pixels the processor cropped away were never seen by the classifier: they get the
    map's lowest value (least important), so rankings and overlays treat them as irrelevant.
    """
    if tuple(maps.shape[-2:]) != tuple(region.size):
        raise ValueError(f"maps are {tuple(maps.shape[-2:])} but the processed image is {region.size} (h, w)")
    (height, width), (resized_h, resized_w) = region.original, region.resized
    flat = maps.reshape(-1, 1, *region.size).float()
    # original pixel centres -> resized image -> crop, in grid_sample's [-1, 1] (pixel edges, align_corners=False)
    ys = ((torch.arange(height, device=maps.device) + 0.5) * resized_h / height - region.offset[0]) * 2 / region.size[
        0
    ] - 1
    xs = ((torch.arange(width, device=maps.device) + 0.5) * resized_w / width - region.offset[1]) * 2 / region.size[
        1
    ] - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    out = F.grid_sample(
        flat, grid.expand(len(flat), -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=False
    )
    outside = (ys.abs() > 1)[:, None] | (xs.abs() > 1)[None, :]
    out = torch.where(outside, flat.amin(dim=(-2, -1), keepdim=True), out)
    return out.reshape(*maps.shape[:-2], height, width)
