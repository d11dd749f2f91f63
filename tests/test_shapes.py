"""AHA Shapes: deterministic for a seed, disjoint splits, and masks that are exactly the drawn object."""

import hashlib

import numpy as np
import pytest

from aha.demo.canvas import SUPERSAMPLE
from aha.demo.shapes import CLASS_NAMES, WORLD, render_scene


def exact_inside(params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points lie inside the shape, by its geometry (true circles, half-planes), not by polygons."""
    cos, sin = np.cos(params.angle), np.sin(params.angle)
    dx, dy = (x - params.center_x) / params.radius, (y - params.center_y) / params.radius
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # the shape's own frame, circumradius 1
    r = np.hypot(u, v)
    if params.shape == "circle":
        return r < 1
    if params.shape == "ring":
        return (r < 1) & (r > 0.55)
    if params.shape == "crescent":
        return (r < 1) & (np.hypot(u - 0.45, v) > 0.8)
    if params.shape == "triangle":  # vertices at -90, 30 and 150 degrees; edges at distance 1/2 from the centre
        normals = np.deg2rad([90, 210, 330])
        return np.all([u * np.cos(n) + v * np.sin(n) < 0.5 for n in normals], axis=0)
    if params.shape == "cross":  # two bars of half-width 0.32 and half-length 1, scaled to circumradius 1
        a, b = np.array([0.32, 1.0]) / np.hypot(0.32, 1.0)
        return ((np.abs(u) < a) & (np.abs(v) < b)) | ((np.abs(u) < b) & (np.abs(v) < a))
    raise AssertionError(params.shape)


def analytic_coverage(params, size: int) -> np.ndarray:
    """Share of each pixel's 4 x 4 sample points inside the shape, from its drawing parameters alone."""
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    pixels = np.arange(size)
    ys = pixels[:, None, None, None] + offsets[None, None, :, None] + np.zeros((1, size, 1, SUPERSAMPLE))
    xs = pixels[None, :, None, None] + offsets[None, None, None, :] + np.zeros((size, 1, SUPERSAMPLE, 1))
    return exact_inside(params, xs, ys).reshape(size, size, -1).mean(axis=2)


def test_scenes_are_a_pure_function_of_seed_split_and_index():
    a, b = render_scene(3, "train", 7), render_scene(3, "train", 7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.object == b.object
    assert not np.array_equal(a.image, render_scene(4, "train", 7).image)
    assert not np.array_equal(a.image, render_scene(3, "test", 7).image)
    first, second = WORLD.split("validation", 5, seed=1), WORLD.split("validation", 5, seed=1)
    for x, y in zip(first, second):
        assert np.array_equal(np.asarray(x["image"]), np.asarray(y["image"])) and x["label"] == y["label"]


def test_masks_cover_the_object_and_nothing_else():
    for index in range(24):
        scene = render_scene(0, "test", index)
        share = analytic_coverage(scene.object, 64)
        # the mask is the pixels at least half covered (curves are drawn as 64-gons: a sample point within
        # 0.02 px of the true circle may fall on the other side, so a pixel may differ only at the threshold)
        assert scene.mask[share >= 0.75].all() and not scene.mask[share <= 0.25].any()
        assert (scene.mask != (share >= 0.5)).sum() <= 0.02 * scene.mask.sum()
        assert scene.object.shape == CLASS_NAMES[scene.label]
        assert 0.03 < scene.mask.mean() < 0.4 and scene.num_distractors >= 1
        # the object is drawn in its own colour inside (pixels whose 3 x 3 neighbourhood it covers entirely)
        padded = np.pad(share, 1)
        interior = np.min([padded[dy : dy + 64, dx : dx + 64] for dy in range(3) for dx in range(3)], axis=0) == 1
        assert interior.any()
        assert (np.abs(scene.image[interior].astype(int) - scene.object.color).max(axis=1) <= 1).all()


def test_distractors_never_touch_the_object():
    for index in range(24):
        scene = render_scene(0, "train", index)
        share = analytic_coverage(scene.object, 64)
        assert scene.distractor_pixels.sum() == 0 or scene.num_distractors >= 1
        ys, xs = np.nonzero(scene.distractor_pixels)
        for y, x in zip(ys, xs):  # at least a pixel of background between a distractor and the object
            assert share[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].max() == 0


def test_train_and_test_share_no_image():
    """(Their backgrounds come from different parts of the photographs: tests/test_worlds.py, for every world.)"""

    def digest(scene):
        return hashlib.sha256(scene.image.tobytes()).hexdigest()

    train = {digest(render_scene(0, "train", i)) for i in range(100)}
    test = {digest(render_scene(0, "test", i)) for i in range(100)}
    assert not train & test


def test_split_columns_and_errors():
    split = WORLD.split("test", 3)
    assert split.features["label"].names == list(CLASS_NAMES)
    example = split[0]
    mask = np.asarray(example["mask"])
    assert mask.dtype == bool and mask.shape == (64, 64) and example["image"].size == (64, 64)
    assert example["object"]["shape"] == CLASS_NAMES[example["label"]]
    with pytest.raises(ValueError, match="split must be one of"):
        render_scene(0, "holdout", 0)
    with pytest.raises(ValueError, match="num_examples >= 1"):
        WORLD.split("train", 0)
