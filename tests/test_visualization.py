import numpy as np
import pytest
from PIL import Image

from aha.visualization import HEAT_ANCHORS, grid, heat_colours, normalise_map, overlay


def test_overlay_size_and_hottest_pixel_is_hot():
    image = np.full((6, 9), 0.5)
    attribution = np.random.default_rng(0).normal(size=(6, 9))
    attribution[2, 7] = 100.0  # an outlier: rank normalisation still spreads the other pixels
    out = np.asarray(overlay(image, attribution, alpha=1.0))
    assert out.shape == (6, 9, 3)
    assert tuple(out[2, 7]) == HEAT_ANCHORS[-1][1]
    coldest = np.unravel_index(attribution.argmin(), attribution.shape)
    assert tuple(out[coldest]) == HEAT_ANCHORS[0][1]


def test_overlay_alpha_zero_is_the_image_and_rank_ignores_scale():
    image = (np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5)
    attribution = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(np.asarray(overlay(image, attribution, alpha=0.0)), image)
    assert overlay(image, attribution) == overlay(image, np.exp(attribution))
    assert overlay(image, attribution, normalise="minmax") != overlay(image, np.exp(attribution), normalise="minmax")


def test_normalise_map_ties_and_constant():
    ranks = normalise_map(np.array([[0.0, 1.0], [1.0, 5.0]]))
    assert np.allclose(ranks, [[0.0, 0.5], [0.5, 1.0]])
    assert np.allclose(normalise_map(np.ones((3, 3)), "minmax"), 0.5)
    assert heat_colours(np.array([0.0, 1.0])).tolist() == [list(HEAT_ANCHORS[0][1]), list(HEAT_ANCHORS[-1][1])]


def test_overlay_rejects_mismatched_map():
    with pytest.raises(ValueError, match=r"\(5, 5\).*\(4, 4\)"):
        overlay(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="normalise"):
        overlay(np.zeros((4, 4)), np.zeros((4, 4)), normalise="softmax")


def test_grid_layout():
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    figure = grid([[red, blue], [blue, red]], ["a", "b"], cell_size=32, padding=4)
    assert figure.width == 4 + 2 * (32 + 4)
    assert figure.height > 2 * (32 + 4)
    pixels = np.asarray(figure)
    bottom_left = pixels[figure.height - 4 - 16, 4 + 16]
    assert tuple(bottom_left) == (0, 0, 255)
    wide = grid([[red]], ["a very long column title"], cell_size=8)
    assert wide.width > 8 + 2 * 4
    with pytest.raises(ValueError, match="one per label"):
        grid([[red]], ["a", "b"])
