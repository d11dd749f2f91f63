"""The benchmark suite's worlds: deterministic for a seed, disjoint splits, and masks that are exactly the class
evidence drawn (checked against the drawing parameters), for every world of aha.demo.worlds.WORLDS."""

import dataclasses
import hashlib
import os

import matplotlib
import numpy as np
import pytest
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path
from matplotlib.textpath import TextPath
from test_shapes import analytic_coverage

from aha.demo import canvas, letters, parts
from aha.demo.canvas import SUPERSAMPLE
from aha.demo.shapes import ShapeParams
from aha.demo.worlds import WORLDS, get_world
from aha.persistence.model_cards import card_template


def digest(scene) -> str:
    return hashlib.sha256(scene.image.tobytes()).hexdigest()


def sample_points(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel's 4 x 4 sample points, (size, size, 16) each."""
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    pixels = np.arange(size)
    ys = pixels[:, None, None, None] + offsets[None, None, :, None] + np.zeros((1, size, 1, SUPERSAMPLE))
    xs = pixels[None, :, None, None] + offsets[None, None, None, :] + np.zeros((size, 1, SUPERSAMPLE, 1))
    return xs.reshape(size, size, -1), ys.reshape(size, size, -1)


def letter_coverage(params, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Share of each pixel's sample points inside the letter, from its parameters alone: the glyph's outlines
    from matplotlib, placed as LetterParams documents, inside by the even-odd rule (an odd number of outlines);
    and the share inside its silhouette (any outline, counters filled)."""
    prop = FontProperties(fname=os.path.join(matplotlib.get_data_path(), "fonts", "ttf", params.font))
    outlines = TextPath((0, 0), params.letter, size=1, prop=prop).to_polygons()
    points = np.concatenate(outlines)
    low, high = points.min(axis=0), points.max(axis=0)
    cos, sin = np.cos(params.angle), np.sin(params.angle)
    matrix = params.height * np.array([[cos, -sin], [sin, cos]]) @ np.array([[params.aspect, params.shear], [0, 1]])
    xs, ys = sample_points(size)
    query = np.stack([xs.ravel(), ys.ravel()], axis=1)
    crossings = np.zeros(len(query), int)
    for outline in outlines:
        unit = (outline - (low + high) / 2) / (high[1] - low[1]) * np.array([1, -1])
        crossings += Path(unit @ matrix.T + [params.center_x, params.center_y]).contains_points(query)
    return (crossings % 2 == 1).reshape(size, size, -1).mean(axis=2), (crossings > 0).reshape(size, size, -1).mean(
        axis=2
    )


def interior(share: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood the object covers entirely."""
    padded = np.pad(share, 1)
    return (
        np.min(
            [padded[dy : dy + share.shape[0], dx : dx + share.shape[1]] for dy in range(3) for dx in range(3)], axis=0
        )
        == 1
    )


def check_mask(scene, share: np.ndarray) -> None:
    """The mask is the pixels at least half covered, up to pixels at the threshold (curves are polygons)."""
    assert scene.mask[share >= 0.75].all() and not scene.mask[share <= 0.25].any()
    assert (scene.mask != (share >= 0.5)).sum() <= 0.02 * scene.mask.sum()


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_each_world_is_a_pure_function_of_seed_split_and_index(name):
    world = WORLDS[name]
    a, b = world.render(3, "train", 7, 64), world.render(3, "train", 7, 64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.object == b.object
    assert not np.array_equal(a.image, world.render(4, "train", 7, 64).image)
    assert not np.array_equal(a.image, world.render(3, "test", 7, 64).image)
    first, second = world.split("validation", 4, seed=1), world.split("validation", 4, seed=1)
    for x, y in zip(first, second):
        assert np.array_equal(np.asarray(x["image"]), np.asarray(y["image"])) and x["label"] == y["label"]
        assert x["object"] == y["object"]
    assert first.features["label"].names == list(world.class_names)
    mask = np.asarray(first[0]["mask"])
    assert mask.dtype == bool and mask.shape == (64, 64) and mask.any()


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_train_and_test_share_no_image_and_every_class_appears(name):
    world = WORLDS[name]
    train = [world.render(0, "train", i, 64) for i in range(60)]
    test = [world.render(0, "test", i, 64) for i in range(60)]
    assert not {digest(s) for s in train} & {digest(s) for s in test}
    assert {s.label for s in train} == set(range(len(world.class_names)))


def test_test_backgrounds_come_from_the_right_part_of_the_photographs(monkeypatch):
    halves = np.zeros((300, 400, 3), np.float32)
    halves[:, int(400 * canvas.TRAIN_WIDTH) :] = 1.0
    monkeypatch.setattr(canvas, "photo", lambda name: halves)
    for index in range(20):
        rng = np.random.default_rng(index)
        assert canvas.photo_background(rng, "test", 64).min() > 0.5
        assert canvas.photo_background(rng, "train", 64).max() < 0.5


def test_letter_masks_are_the_glyphs_ink_and_nothing_else():
    fonts = set()
    for index in range(30):
        scene = letters.render_scene(0, "test", index)
        params = scene.object
        fonts.add(params.font)
        assert params.letter == letters.CLASS_NAMES[scene.label]
        share, silhouette = letter_coverage(params)
        check_mask(scene, share)
        if params.letter in "BPR":  # the counters are holes, not ink
            assert (silhouette >= 0.75).sum() - scene.mask.sum() >= 8
        inside = interior(share)
        assert inside.any() and (np.abs(scene.image[inside].astype(int) - params.color).max(axis=1) <= 1).all()
        ys, xs = np.nonzero(scene.distractor_pixels)  # strokes keep at least a pixel of background from the ink
        assert all(share[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].max() == 0 for y, x in zip(ys, xs))
        assert scene.num_distractors >= 1 and 0.02 < scene.mask.mean() < 0.4
    assert len(fonts) >= 6


def test_parts_masks_are_the_two_parts_not_the_decoy():
    for index in range(30):
        scene = parts.render_scene(0, "test", index)
        params = scene.object
        kinds = tuple(sorted([params.first.shape, params.second.shape], key=parts.PART_KINDS.index))
        assert kinds == parts.PAIRS[scene.label] and params.decoy.shape == parts.DECOY
        first, second, decoy = (analytic_coverage(p, 64) for p in (params.first, params.second, params.decoy))
        check_mask(scene, np.maximum(first, second))
        assert not scene.mask[decoy > 0].any()
        for a, b in ((first, second), (first, decoy), (second, decoy)):
            assert not ((a > 0) & (b > 0)).any()
        for share, p in ((first, params.first), (second, params.second), (decoy, params.decoy)):
            # small parts may have no pixel whose whole neighbourhood they cover: their covered pixels instead, up
            # to a few on the circles' edges (drawn as 64-gons)
            inside = share == 1
            assert inside.any() and (np.abs(scene.image[inside].astype(int) - p.color).max(axis=1) <= 1).mean() > 0.9
        objects = np.maximum(np.maximum(first, second), decoy)
        ys, xs = np.nonzero(scene.distractor_pixels)
        assert all(objects[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].max() == 0 for y, x in zip(ys, xs))


def test_parts_patch_evidence_is_each_parts_own_kind():
    world = WORLDS["parts"]
    split = world.split("test", 20)
    pixel_classes, num_classes = world.patch_evidence(split)
    assert num_classes == len(parts.PART_KINDS) and pixel_classes.shape == (20, 64, 64)
    for example, classes in zip(split, pixel_classes):
        mask = np.asarray(example["mask"])
        assert (classes[~mask] == -1).all() and (classes[mask] >= 0).all()
        for key in ("first", "second"):
            part = example["object"][key]
            share = analytic_coverage(ShapeParams(**{**part, "color": tuple(part["color"])}), 64)
            assert (classes[(share >= 0.75) & mask] == parts.PART_KINDS.index(part["shape"])).all()
    # the other worlds' patches predict the image's class (the recipe AHA Shapes' recorded classifier used)
    assert WORLDS["shapes"].patch_evidence(split) is None and WORLDS["letters"].patch_evidence(split) is None


def test_registry_cards_and_errors():
    assert list(WORLDS) == ["shapes", "letters", "parts"]
    for world in WORLDS.values():
        card = card_template(world.card)
        assert f"pretty_name: {world.title}" in card and "## Why" in card
    assert not WORLDS["letters"].dihedral and WORLDS["parts"].dihedral  # a mirrored letter is another letter
    with pytest.raises(ValueError, match="unknown world 'digits'; expected one of"):
        get_world("digits")
    with pytest.raises(ValueError, match="split must be one of"):
        WORLDS["letters"].render(0, "holdout", 0, 64)
    with pytest.raises(ValueError, match="num_examples >= 1"):
        WORLDS["parts"].split("train", 0)
    with pytest.raises(ValueError, match="expected a letter of"):
        letters.unit_glyph("Z", "DejaVuSans.ttf")


def test_a_world_scales_the_presets_classifier_epochs():
    assert [WORLDS[name].classifier_epochs(12) for name in ("shapes", "letters", "parts")] == [12, 36, 36]
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="epoch_scale must be an integer >= 1"):
            dataclasses.replace(WORLDS["shapes"], epoch_scale=bad)
