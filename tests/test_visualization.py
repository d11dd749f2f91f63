import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from aha.imaging.visualization import (
    colour_bar,
    curve_plot,
    explained_picture,
    grid,
    heat_colours,
    normalize_map,
    overlay,
)
from aha.metrics import CurveResult


def _colour(cmap, value):
    return tuple(int(round(c * 255)) for c in matplotlib.colormaps[cmap](value)[:3])


@pytest.mark.parametrize("cmap", ["turbo", "inferno"])
def test_overlay_size_and_hottest_pixel_is_hot(cmap):
    image = np.full((6, 9), 0.5)
    attribution = np.random.default_rng(0).normal(size=(6, 9))
    attribution[2, 7] = 100.0  # an outlier: rank normalisation still spreads the other pixels
    out = np.asarray(overlay(image, attribution, alpha=1.0, cmap=cmap))
    assert out.shape == (6, 9, 3)
    assert np.abs(np.subtract(out[2, 7], _colour(cmap, 1.0))).max() <= 1
    coldest = np.unravel_index(attribution.argmin(), attribution.shape)
    assert np.abs(np.subtract(out[coldest], _colour(cmap, 0.0))).max() <= 1
    with pytest.raises(ValueError, match="unknown colormap 'heat'"):
        overlay(image, attribution, cmap="heat")


def test_overlay_alpha_zero_is_the_image_and_rank_ignores_scale():
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    attribution = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(np.asarray(overlay(image, attribution, alpha=0.0)), image)
    assert overlay(image, attribution) == overlay(image, np.exp(attribution))
    assert overlay(image, attribution, normalize="minmax") != overlay(image, np.exp(attribution), normalize="minmax")


def test_normalise_map_ties_and_constant():
    ranks = normalize_map(np.array([[0.0, 1.0], [1.0, 5.0]]))
    assert np.allclose(ranks, [[0.0, 0.5], [0.5, 1.0]])
    assert np.allclose(normalize_map(np.ones((3, 3)), "minmax"), 0.5)
    assert heat_colours(np.array([0.0, 1.0]), "gray").tolist() == [[0, 0, 0], [255, 255, 255]]


def test_overlay_takes_rgba_and_grayscale_arrays():
    attribution = np.arange(12.0).reshape(3, 4)
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    assert overlay(rgba, attribution) == overlay(np.zeros((3, 4), dtype=np.uint8), attribution)


def test_overlay_rejects_mismatched_map():
    with pytest.raises(ValueError, match=r"\(5, 5\).*\(4, 4\)"):
        overlay(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="normalize"):
        overlay(np.zeros((4, 4)), np.zeros((4, 4)), normalize="softmax")


def test_grid_layout():
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    figure = grid([[red, blue], [blue, red]], ["a", "b"], cell_size=32, padding=4)
    assert figure.width == 4 + 2 * (32 + 4)
    pixels = np.asarray(figure)
    title = figure.height - 2 * (32 + 4) - 4  # the band of column titles above the cells
    assert title > 2 * 4 and (pixels[:title, : 4 + 32] < 128).all(-1).any()  # "a" is drawn in black there
    cells = {
        (row, column): tuple(pixels[title + row * 36 + 16, 4 + column * 36 + 16])
        for row in (0, 1)
        for column in (0, 1)
    }
    assert cells == {(0, 0): (255, 0, 0), (0, 1): (0, 0, 255), (1, 0): (0, 0, 255), (1, 1): (255, 0, 0)}
    label = "a very long column title"
    wide = grid([[red]], [label], cell_size=8)
    left, _, right, _ = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), label, font=ImageFont.load_default())
    assert wide.width == (right - left) + 2 * 4  # the column widens to its title
    with pytest.raises(ValueError, match="one per label"):
        grid([[red]], ["a", "b"])


def _curve(values, fractions):
    curves = torch.tensor(values, dtype=torch.float32)
    return CurveResult(fractions=fractions, curves=curves, auc=torch.trapezoid(curves, x=fractions.float(), dim=1))


def test_curve_plot_draws_each_curve_with_its_auc():
    fractions = torch.linspace(0, 1, 5, dtype=torch.float64)
    deletion = _curve([[1.0, 0.5, 0.25, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]], fractions)
    insertion = _curve([[1.0, 1.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]], fractions)
    figure = curve_plot({"deletion": deletion, "insertion": insertion}, image=0, title="cat.jpg")
    axes = figure.axes[0]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["deletion (AUC 0.312)", "insertion (AUC 0.750)"]
    np.testing.assert_allclose(axes.lines[0].get_ydata(), [1.0, 0.5, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(axes.lines[1].get_xdata(), fractions.numpy())
    mean = curve_plot({"deletion": deletion})
    assert mean.legends[0].get_texts()[0].get_text() == f"deletion (AUC {deletion.auc.mean():.3f})"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert Image.open(buffer).size == (600, 380)
    # the legend sits below the axes, so it hides no curve
    figure.canvas.draw()
    legend, plot = figure.legends[0].get_window_extent(), axes.get_window_extent()
    assert legend.y1 <= plot.y0
    with pytest.raises(ValueError, match="index the 2 curves"):
        curve_plot({"deletion": deletion}, image=2)


def test_grid_keeps_the_aspect_ratio_and_refuses_bad_sizes_by_name():
    photo = Image.new("RGB", (60, 30), (0, 128, 0))
    figure = grid([[photo, photo]], ["a", "b"], cell_size=120, padding=4)
    assert figure.width == 4 + 2 * (120 + 4)  # 120 x 60 cells: the longer side is cell_size
    title = figure.height - (60 + 4) - 4
    pixels = np.asarray(figure)
    assert tuple(pixels[title + 59, 4 + 119]) == (0, 128, 0) and tuple(pixels[title + 61, 4 + 60]) == (255, 255, 255)
    for bad in (0, -3, 2.5, True, "64"):
        with pytest.raises(ValueError, match=f"cell_size must be an integer >= 1, got {bad!r}"):
            grid([[photo]], ["a"], cell_size=bad)
    with pytest.raises(ValueError, match="padding must be an integer >= 0, got -5"):
        grid([[photo]], ["a"], padding=-5)
    with_bar = grid([[photo]], ["a"], cell_size=120, colorbar="turbo")
    assert with_bar.width == grid([[photo]], ["a"], cell_size=120).width + colour_bar(60).width + 4


def test_colour_bar_runs_from_most_important_at_the_top_to_least_at_the_bottom():
    bar = np.asarray(colour_bar(100, "inferno"))
    assert np.abs(bar[0, 0].astype(int) - _colour("inferno", 1.0)).max() <= 1
    assert np.abs(bar[-1, 0].astype(int) - _colour("inferno", 0.0)).max() <= 1
    assert (bar[:, bar.shape[1] // 2 :] < 128).all(-1).any()  # its labels, in black


def test_explained_picture_enlarges_small_images_and_adds_a_caption_and_a_colour_bar():
    image = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    attribution = np.random.default_rng(1).normal(size=(64, 48))
    bare = np.asarray(overlay(image, attribution))
    picture = explained_picture(image, attribution, "explained: 'cat' (class 3), p = 0.912")
    enlarged = np.repeat(np.repeat(bare, 6, axis=0), 6, axis=1)  # 48 px is the shorter side: 6 x 48 = 288 >= 256
    pixels = np.asarray(picture)
    found = [
        (top, left)
        for top in range(picture.height - 383)
        for left in range(40)
        if np.array_equal(pixels[top : top + 384, left : left + 288], enlarged)
    ]
    assert len(found) == 1
    top, left = found[0]
    assert top > 12 and (pixels[:top, :] < 128).all(-1).any()  # the caption above
    assert picture.width > left + 288 + 20  # the colour bar at the right
    plain = np.asarray(explained_picture(image, attribution, display_side=1))  # no caption, not enlarged
    assert plain.shape[0] == 64 + 2 * 6 and np.array_equal(plain[6:70, 6:54], bare)  # 6 px margins
    large = explained_picture(np.zeros((300, 900, 3), np.uint8), np.zeros((300, 900)))
    assert large.width > 900 and 300 < large.height < 340  # a large picture is never enlarged (nor shrunk)
    with pytest.raises(ValueError, match="display_side must be an integer >= 1, got 0"):
        explained_picture(image, attribution, display_side=0)
