"""Maps carried back through an image processor's resize and crop to the original image."""

import numpy as np
import pytest
import torch
import transformers as T
from PIL import Image

from aha.imaging.image_geometry import ProcessedRegion, processed_region, to_original_size


PROCESSORS = {
    "warp": lambda: T.ViTImageProcessorPil(size={"height": 32, "width": 32}),
    "resize_then_crop": lambda: T.DeiTImageProcessorPil(
        size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32}
    ),
    "convnext_crop_pct": lambda: T.ConvNextImageProcessorPil(size={"shortest_edge": 32}, crop_pct=0.875),
    "short_side_then_crop": lambda: T.BitImageProcessorPil(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}
    ),
}


def smooth_image(height: int, width: int) -> Image.Image:
    """Channels: a low-frequency wave, the column ramp, the row ramp (so any misplacement shows)."""
    y, x = np.mgrid[0:height, 0:width]
    wave = 0.5 + 0.4 * np.sin(2.6 * np.pi * x / width) * np.cos(1.8 * np.pi * y / height)
    return Image.fromarray(np.rint(np.stack([wave, x / width, y / height], -1) * 255).astype(np.uint8))


@pytest.mark.parametrize("size", [(40, 40), (57, 23), (20, 90)])
@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_undoing_the_processor_gives_back_the_image_where_it_was_seen(name, size):
    processor = PROCESSORS[name]()
    image = smooth_image(*size)
    pixel_values = processor(images=image, return_tensors="pt").pixel_values[0]
    region = processed_region(processor, *size)
    assert region.size == tuple(pixel_values.shape[-2:])
    std, mean = (torch.tensor(v)[:, None, None] for v in (processor.image_std, processor.image_mean))
    back = to_original_size(pixel_values * std + mean, region)  # the processed image, carried back
    original = torch.tensor(np.asarray(image), dtype=torch.float32).permute(2, 0, 1) / 255
    assert back.shape == original.shape
    # the crop's box in original pixels; pixels one away from its edges are fully inside or outside it
    (top, left), (crop_h, crop_w) = region.offset, region.size
    scale_y, scale_x = size[0] / region.resized[0], size[1] / region.resized[1]
    rows, cols = torch.arange(size[0])[:, None] + 0.5, torch.arange(size[1])[None, :] + 0.5
    inside = (rows > (top * scale_y + 1)) & (rows < (top + crop_h) * scale_y - 1)
    inside = inside & (cols > left * scale_x + 1) & (cols < (left + crop_w) * scale_x - 1)
    outside = (rows < top * scale_y - 1) | (rows > (top + crop_h) * scale_y + 1)
    outside = outside | (cols < left * scale_x - 1) | (cols > (left + crop_w) * scale_x + 1)
    assert inside.any()
    assert (back - original).abs()[:, inside].mean() < 0.006  # a one-pixel shift costs about 0.03
    lowest = (pixel_values * std + mean).amin(dim=(-2, -1))
    assert torch.equal(back[:, outside], lowest[:, None].expand(-1, int(outside.sum())))


def test_regions_follow_the_processors_size_rules():
    deit, convnext = PROCESSORS["resize_then_crop"](), PROCESSORS["convnext_crop_pct"]()
    assert processed_region(deit, 57, 23) == ProcessedRegion((57, 23), (40, 40), (4, 4), (32, 32))
    # short side 23 -> int(32 / 0.875) = 36, long side int(36 * 57 / 23) = 89, then a centred 32 x 32 crop
    assert processed_region(convnext, 57, 23) == ProcessedRegion((57, 23), (89, 36), (28, 2), (32, 32))
    big = T.ConvNextImageProcessorPil(size={"shortest_edge": 384})  # warps at 384 px and above
    assert processed_region(big, 57, 23) == ProcessedRegion((57, 23), (384, 384), (0, 0), (384, 384))


def test_a_crop_larger_than_the_image_pads_and_every_pixel_is_seen():
    processor = T.DeiTImageProcessorPil(size={"height": 30, "width": 30}, crop_size={"height": 32, "width": 32})
    region = processed_region(processor, 60, 60)
    assert region.offset == (-1, -1)
    maps = torch.arange(32.0 * 32).view(32, 32)
    back = to_original_size(maps, region)
    assert back.shape == (60, 60) and (back > maps.min()).all()


def test_unsupported_processor_and_wrong_map_size_are_named():
    processor = T.ViTImageProcessorPil(size={"max_height": 32, "max_width": 32})
    with pytest.raises(ValueError, match="ViTImageProcessorPil.*shortest_edge"):
        processed_region(processor, 40, 40)
    region = processed_region(PROCESSORS["warp"](), 40, 40)
    with pytest.raises(ValueError, match=r"maps are \(16, 16\) but the processed image is \(32, 32\)"):
        to_original_size(torch.zeros(16, 16), region)
