"""AHA Letters: the class is decided by fine structure inside the object.

Each image holds one capital letter among E, F, P, B and R, rendered from one of the fonts matplotlib ships
(DejaVu Sans / Serif / Mono, STIX bold and Computer Modern, regular and bold: the stroke width and the
serifs vary), under a random affine map (height, aspect, shear, rotation) in a random saturated colour, over the
backgrounds every world shares (:mod:`aha.demo.canvas`), with one to three thin distractor strokes that
never touch it. The ``mask`` column is the letter's ink.

Why it is hard for an attribution method: the five letters share a silhouette (a vertical stem with bars
or bowls on its right), so the evidence is a small part of the object (the bottom bar of an E, the leg of
an R, the lower bowl of a B) and most of the mask is common to every class. A map that lights the whole
letter localises perfectly and still misses what decides the class; deleting the stem first changes little;
and the distractors are strokes of the same width as the letters'.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path

from .canvas import (
    Scene,
    World,
    background,
    coverage,
    example_rng,
    object_colour,
    one_object_scene,
)


CLASS_NAMES = ("E", "F", "P", "B", "R")
#: font files of matplotlib's own data folder (mpl-data/fonts/ttf): sans, serif, mono; regular and bold (the
#: thinnest two, STIX regular and Computer Modern typewriter, left out: the benchmark ViT learnt them least)
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "STIXGeneralBol.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmb10.ttf",
)
STREAM = (1,)  # this world's random stream (see aha.demo.canvas.example_rng)


@dataclass(frozen=True)
class LetterParams:
    """How a letter is drawn: its glyph (``letter`` in ``font``, scaled to unit height and centred on its
    bounding box, y down) is mapped to pixels by ``height * rotation(angle) @ [[aspect, shear], [0, 1]]``
    and moved to (center_x, center_y)."""

    letter: str
    font: str
    center_x: float
    center_y: float
    height: float
    aspect: float
    shear: float
    angle: float
    color: tuple[int, int, int]


@functools.lru_cache(maxsize=None)
def unit_glyph(letter: str, font: str) -> tuple[tuple[np.ndarray, bool], ...]:
    """The glyph's outlines (closed polygons, curves flattened) at unit height, centred on its bounding box,
    y pointing down, as polygons drawn in order (vertices (V, 2), filled?): outlines nested in an even number
    of others are ink, the others holes (the even-odd rule), outer ones first."""
    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    if letter not in CLASS_NAMES or font not in FONTS:
        raise ValueError(f"expected a letter of {CLASS_NAMES} and a font of {FONTS}, got {letter!r} and {font!r}")
    properties = FontProperties(fname=os.path.join(matplotlib.get_data_path(), "fonts", "ttf", font))
    polygons = TextPath((0, 0), letter, size=1, prop=properties).to_polygons()
    points = np.concatenate(polygons)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = high[1] - low[1]
    depth = [
        sum(Path(other).contains_point(polygon[0]) for other in polygons if other is not polygon)
        for polygon in polygons
    ]
    return tuple(
        ((polygons[i] - (low + high) / 2) / scale * np.array([1.0, -1.0]), depth[i] % 2 == 0)
        for i in np.argsort(depth, kind="stable")
    )


def letter_matrix(params: LetterParams) -> np.ndarray:
    """The (2, 2) linear part of the letter's placement."""
    cos, sin = math.cos(params.angle), math.sin(params.angle)
    return params.height * np.array([[cos, -sin], [sin, cos]]) @ np.array([[params.aspect, params.shear], [0.0, 1.0]])


def letter_polygons(params: LetterParams) -> list[tuple[np.ndarray, bool]]:
    """The placed letter's polygons: (vertices (V, 2) as (x, y) pixels, filled?), drawn in order."""
    matrix, centre = letter_matrix(params), np.array([params.center_x, params.center_y])
    return [(polygon @ matrix.T + centre, filled) for polygon, filled in unit_glyph(params.letter, params.font)]


def render_scene(seed: int, split: str, index: int, size: int = 64) -> Scene:
    """Draw example ``index`` of ``split`` for ``seed`` (a pure function of its arguments)."""
    rng = example_rng(seed, split, index, STREAM)
    label = int(rng.integers(len(CLASS_NAMES)))
    image = background(rng, split, size)
    font = FONTS[rng.integers(len(FONTS))]
    shape = dict(
        height=rng.uniform(0.55, 0.8) * size,
        aspect=rng.uniform(0.8, 1.25),
        shear=rng.uniform(-0.25, 0.25),
        angle=rng.uniform(-0.35, 0.35),
    )
    placed = np.concatenate(
        [v for v, _ in letter_polygons(LetterParams(CLASS_NAMES[label], font, 0.0, 0.0, color=(0, 0, 0), **shape))]
    )
    fit = min(1.0, (size - 4) / np.ptp(placed, axis=0).max())  # wide, sheared, rotated glyphs shrink to fit
    shape["height"], placed = shape["height"] * fit, placed * fit
    centre = rng.uniform(1 - placed.min(axis=0), size - 1 - placed.max(axis=0))
    colour = object_colour(rng, image, centre, shape["height"] / 2)
    params = LetterParams(
        CLASS_NAMES[label],
        font,
        float(centre[0]),
        float(centre[1]),
        color=tuple(int(c) for c in np.rint(colour * 255)),
        **{k: float(v) for k, v in shape.items()},
    )
    return one_object_scene(rng, image, label, coverage(letter_polygons(params), size), colour, params)


WORLD = World(
    name="letters",
    class_names=CLASS_NAMES,
    render=render_scene,
    object_type=LetterParams,
    dihedral=False,  # a mirrored or transposed letter is another glyph
    epoch_scale=3,  # no flips: a quarter of AHA Shapes' effective data per epoch
)
