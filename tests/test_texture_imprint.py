"""benchmarks/texture_imprint.py's measure of how much of the background's texture a map carries."""

import importlib.util
import sys
from pathlib import Path

import torch


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling machine.py, as when run from there
    try:
        spec = importlib.util.spec_from_file_location("texture_imprint", BENCHMARKS / "texture_imprint.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_imprint_is_how_much_the_maps_background_follows_the_images_texture():
    imprint = _module().imprint
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    luminance = images.mean(1)
    object_only = torch.where(masks, luminance, torch.zeros_like(luminance))  # texture inside the object only
    torch.testing.assert_close(imprint(luminance, images, masks), torch.ones(2))
    torch.testing.assert_close(imprint(-3 * luminance + 1, images, masks), torch.ones(2))  # a rank-free measure
    # the high-pass reaches 2 px past the object (about 0.06 here); beyond, the background is flat
    assert (imprint(object_only, images, masks) < 0.15).all()
    assert (imprint(torch.ones(2, 16, 16), images, masks) == 0).all()


def test_each_images_scores_are_averaged_over_its_seeds_before_pairing():
    runs = {"a@0": {"row": {"m": [1.0, 2.0]}}, "a@1": {"row": {"m": [3.0, 4.0]}}, "b@0": {"row": {"m": [5.0]}}}
    assert _module().per_image(runs, "row", "m").tolist() == [2.0, 3.0, 5.0]
