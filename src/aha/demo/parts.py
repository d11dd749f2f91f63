"""AHA Parts: the class is decided by two separate regions together.

Each image holds two small *parts*, each a ring, a triangle or a cross (AHA Shapes' shapes, at 60 % of
their size), and the class is the unordered pair of their kinds: six classes, from "ring + ring" to "cross +
cross". A *decoy* (a filled disc of the same size and as colourful) and one or two thin distractor strokes
never decide the class. Parts, decoy and strokes never touch. The ``mask`` column is the two parts' pixels.

Why it is hard for an attribution method: the evidence is conjunctive and split over two regions. Deleting
either part alone changes the class, so a deletion curve rewards finding one part and says little about the
other; inserting one part alone does not restore the class, so insertion (and a least-relevant-first
curve) needs both; a map concentrated on one blob (coarse Grad-CAM, a centre prior, a decoder that learns
"the object") scores half the mask. The decoy is a salient, part-like object that tests whether a map
follows the classifier or saliency.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .canvas import Scene, World, background, coverage, dilate, draw_distractors, example_rng, paint, to_uint8
from .shapes import ShapeParams, shape_params, shape_polygons


PART_KINDS = ("ring", "triangle", "cross")
PAIRS = tuple(itertools.combinations_with_replacement(PART_KINDS, 2))  # the classes, in label order
CLASS_NAMES = tuple(f"{a} + {b}" for a, b in PAIRS)
DECOY = "circle"
RADIUS = (0.14, 0.19)  # circumradius of parts and decoy, as a fraction of the image side (9-12 px at 64 px)
GAP = 3  # pixels of background at least between two objects' circumscribed discs
STREAM = (2,)  # this world's random stream (see aha.demo.canvas.example_rng)


@dataclass(frozen=True)
class PartsParams:
    """How the two parts and the decoy are drawn (each as AHA Shapes' :class:`~aha.demo.shapes.ShapeParams`)."""

    first: ShapeParams
    second: ShapeParams
    decoy: ShapeParams


def place_discs(rng: np.random.Generator, radii: np.ndarray, size: int) -> np.ndarray:
    """Centres (x, y) of discs of ``radii`` wholly inside the image, ``GAP`` pixels apart at least (rejection
    sampling, then the last draw as it is if none of 1000 fits: none of 3000 draws at the sizes used here)."""
    for _ in range(1000):
        centres = np.stack([rng.uniform(r + 1, size - r - 1, size=2) for r in radii])
        distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
        needed = radii[:, None] + radii[None] + GAP
        if (distances[np.triu_indices(len(radii), 1)] > needed[np.triu_indices(len(radii), 1)]).all():
            return centres
    return centres


def render_scene(seed: int, split: str, index: int, size: int = 64) -> Scene:
    """Draw example ``index`` of ``split`` for ``seed`` (a pure function of its arguments)."""
    rng = example_rng(seed, split, index, STREAM)
    label = int(rng.integers(len(CLASS_NAMES)))
    image = background(rng, split, size)
    kinds = list(PAIRS[label]) if rng.random() < 0.5 else list(PAIRS[label])[::-1]
    radii = rng.uniform(*RADIUS, size=3) * size
    centres = place_discs(rng, radii, size)
    drawn = [
        shape_params(rng, kind, image, radius, centre) for kind, radius, centre in zip([*kinds, DECOY], radii, centres)
    ]
    shares = [coverage(shape_polygons(params), size) for params, _ in drawn]
    keep_out = dilate(np.any([share > 0 for share in shares], axis=0), max(1, size // 32))
    image, num_distractors, distractor_pixels = draw_distractors(rng, image, keep_out, counts=(1, 3))
    for share, (_, colour) in zip(shares, drawn):
        image = paint(image, share, colour)
    mask = (shares[0] >= 0.5) | (shares[1] >= 0.5)
    params = PartsParams(*(params for params, _ in drawn))
    return Scene(to_uint8(image), label, mask, params, num_distractors, distractor_pixels)


def part_pixel_classes(mask: np.ndarray, obj: dict) -> np.ndarray:
    """Each mask pixel's part kind (an index into :data:`PART_KINDS`; -1 off the mask), from the drawing
    parameters: the part whose circumscribed disc is nearest, relative to its radius (the discs are ``GAP``
    pixels apart, so each part's pixels lie in its own). (H, W) bool, the ``object`` column -> (H, W) int."""
    ys, xs = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]] + 0.5
    parts = (obj["first"], obj["second"])
    distances = np.stack([np.hypot(xs - p["center_x"], ys - p["center_y"]) / p["radius"] for p in parts])
    kinds = np.array([PART_KINDS.index(p["shape"]) for p in parts])
    return np.where(mask, kinds[distances.argmin(axis=0)], -1)


WORLD = World(
    name="parts",
    class_names=CLASS_NAMES,
    render=render_scene,
    object_type=PartsParams,
    dihedral=True,  # the kinds of the parts survive flips and transposition
    patch_classes=PART_KINDS,  # a patch shows one part: it can know the part's kind, not the pair
    pixel_classes=part_pixel_classes,
    epoch_scale=3,  # the class token must learn to combine two parts' kinds
)
