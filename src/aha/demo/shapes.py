"""AHA Shapes: a seeded, procedural image-classification benchmark with a ground-truth mask per image.

Each image holds one *object* whose shape alone decides the class (circle, ring, crescent, triangle,
cross), drawn at a random position, size, rotation and colour over a photographic or procedural
background, plus one to three *distractors* (thin strokes) that never decide the class and never touch the
object. The ``mask`` column is the object's pixels.

Seeds, splits, backgrounds and the mask convention are the ones every world shares (:mod:`aha.demo.canvas`):
everything is a pure function of ``(seed, split, index)``, and train and test share no image.

Why it is a test for attribution: the evidence is one compact object, so faithfulness and localisation can
be compared; the silhouette survives partial deletion, and the distractors are salient but irrelevant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .canvas import (
    Scene,
    World,
    background,
    coverage,
    example_rng,
    object_colour,
    one_object_scene,
)


CLASS_NAMES = ("circle", "ring", "crescent", "triangle", "cross")


@dataclass(frozen=True)
class ShapeParams:
    """Where and how a shape is drawn, in pixels of the final image (origin top-left, y down)."""

    shape: str
    center_x: float
    center_y: float
    radius: float
    angle: float
    color: tuple[int, int, int]


def unit_shape(shape: str) -> list[tuple[np.ndarray, bool]]:
    """A shape of circumradius 1 as polygons drawn in order: (vertices (V, 2), filled?) -- a ring is its
    outer disc, then its hole drawn unfilled."""

    def regular(count: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
        theta = phase + 2 * math.pi * np.arange(count) / count
        return radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)

    if shape == "circle":
        return [(regular(64), True)]
    if shape == "triangle":
        return [(regular(3), True)]
    if shape == "crescent":  # a disc with an offset disc cut out of it
        return [(regular(64), True), (regular(64, 0.8) + np.array([0.45, 0.0]), False)]
    if shape == "cross":
        a, b = 0.32, 1.0
        points = [
            (a, b),
            (a, a),
            (b, a),
            (b, -a),
            (a, -a),
            (a, -b),
            (-a, -b),
            (-a, -a),
            (-b, -a),
            (-b, a),
            (-a, a),
            (-a, b),
        ]
        return [(np.array(points) / math.hypot(a, b), True)]
    if shape == "ring":
        return [(regular(64), True), (regular(64, 0.55), False)]
    raise ValueError(f"unknown shape {shape!r}; expected one of {CLASS_NAMES}")


def shape_polygons(params: ShapeParams) -> list[tuple[np.ndarray, bool]]:
    """The shape's polygons placed in the image: (vertices (V, 2) as (x, y) pixels, filled?)."""
    cos, sin = math.cos(params.angle), math.sin(params.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([params.center_x, params.center_y])
    return [(params.radius * vertices @ rotation.T + centre, filled) for vertices, filled in unit_shape(params.shape)]


def shape_params(
    rng: np.random.Generator, shape: str, image: np.ndarray, radius: float, centre: np.ndarray
) -> tuple[ShapeParams, np.ndarray]:
    """A shape of ``radius`` at ``centre`` (x, y) in a colour that stands out from ``image`` there, at a random
    angle: (its parameters, its colour as RGB floats in [0, 1], which the parameters round to bytes)."""
    colour = object_colour(rng, image, centre, radius)
    return ShapeParams(
        shape=shape,
        center_x=float(centre[0]),
        center_y=float(centre[1]),
        radius=float(radius),
        angle=float(rng.uniform(0, 2 * math.pi)),
        color=tuple(int(c) for c in np.rint(colour * 255)),
    ), colour


def render_scene(seed: int, split: str, index: int, size: int = 64) -> Scene:
    """Draw example ``index`` of ``split`` for ``seed`` (a pure function of its arguments)."""
    rng = example_rng(seed, split, index)
    label = int(rng.integers(len(CLASS_NAMES)))
    image = background(rng, split, size)
    radius = rng.uniform(0.2, 0.32) * size
    centre = rng.uniform(radius + 1, size - radius - 1, size=2)
    params, colour = shape_params(rng, CLASS_NAMES[label], image, radius, centre)
    return one_object_scene(rng, image, label, coverage(shape_polygons(params), size), colour, params)


WORLD = World(
    name="shapes",
    class_names=CLASS_NAMES,
    render=render_scene,
    object_type=ShapeParams,
    dihedral=True,
)
