"""AHA Shapes: a seeded, procedural image-classification benchmark with a ground-truth mask per image.

Each image holds one *object* whose shape alone decides the class (circle, square, triangle, star, cross,
ring), drawn at a random position, size, rotation and colour over a photographic or procedural background,
plus one to three *distractors* (thin strokes) that never decide the class and never touch the object.
The ``mask`` column is the object's pixels: a pixel belongs to it when at least half of it is covered.

Train and validation backgrounds are crops of the left part of each photograph, test backgrounds of the
right part, and every split draws from its own seed, so train and test share no image. Everything is a
pure function of ``(seed, split, index)``: the same arguments give the same bytes on every machine.

Photographs come from ``scikit-image``'s bundled sample images (no download).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
from matplotlib.path import Path
from PIL import Image


CLASS_NAMES = ("circle", "ring", "crescent", "triangle", "cross")
SPLITS = {"train": 0, "validation": 1, "test": 2}
SUPERSAMPLE = 4  # coverage is sampled at 4 x 4 points per pixel: anti-aliased edges
# photographs of scikit-image's bundled data, the fraction of their width used by the train (left) part
PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "brick", "grass", "gravel", "camera", "coins", "moon", "cell",
)
TRAIN_WIDTH = 0.6
PROCEDURAL = ("waves", "noise", "stripes")
BACKGROUND_CONTRAST = (0.3, 0.6)  # range of the factor that scales a background's deviations from its mean colour
BACKGROUND_CHROMA = 0.4  # share of a background's colourfulness kept (objects are saturated colours)


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
        points = [(a, b), (a, a), (b, a), (b, -a), (a, -a), (a, -b), (-a, -b), (-a, -a), (-b, -a), (-b, a), (-a, a), (-a, b)]
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


def coverage(polygons: list[tuple[np.ndarray, bool]], size: int) -> np.ndarray:
    """Share of each pixel covered by the polygons, (size, size) float32 in [0, 1]: the fraction of its 4 x 4
    sample points (at ``(i + (k + 0.5) / 4)`` pixels) inside, polygons applied in order (a hole clears what
    it covers)."""
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    inside = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), bool)
    for vertices, filled in polygons:
        low = np.clip(np.floor(vertices.min(axis=0)).astype(int), 0, size)
        high = np.clip(np.ceil(vertices.max(axis=0)).astype(int) + 1, 0, size)
        if (high <= low).any():
            continue
        xs = (np.arange(low[0], high[0])[:, None] + offsets).ravel()
        ys = (np.arange(low[1], high[1])[:, None] + offsets).ravel()
        points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        hit = Path(vertices).contains_points(points).reshape(len(ys), len(xs))
        window = inside[low[1] * SUPERSAMPLE : high[1] * SUPERSAMPLE, low[0] * SUPERSAMPLE : high[0] * SUPERSAMPLE]
        window[hit] = filled
    return inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3), dtype=np.float32)


def stroke_polygons(points: np.ndarray, width: float) -> list[tuple[np.ndarray, bool]]:
    """A polyline of ``width`` pixels as one quadrilateral per segment."""
    quads = []
    for start, end in zip(points[:-1], points[1:]):
        direction = end - start
        normal = np.array([-direction[1], direction[0]]) / max(np.linalg.norm(direction), 1e-6) * width / 2
        quads.append((np.stack([start + normal, end + normal, end - normal, start - normal]), True))
    return quads


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photographs as (H, W, 3) float32 in [0, 1]."""
    try:
        import skimage.data
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the AHA Shapes benchmark draws its photographic backgrounds from scikit-image's bundled images: "
            'pip install "aha-explain[demo]" (or scikit-image)'
        ) from error
    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def photo_background(rng: np.random.Generator, split: str, size: int) -> np.ndarray:
    """A random square crop of a photograph's split part (left part for train / validation, right for test),
    flipped at random and resized to (size, size, 3)."""
    image = photo(PHOTOS[rng.integers(len(PHOTOS))])
    height, width = image.shape[:2]
    boundary = int(width * TRAIN_WIDTH)
    left, right = (0, boundary) if split != "test" else (boundary, width)
    side = int(rng.integers(min(size, right - left, height), min(right - left, height) + 1))
    side = min(side, 4 * size) if rng.random() < 0.5 else side  # half of the crops keep fine texture
    x = int(rng.integers(left, right - side + 1))
    y = int(rng.integers(0, height - side + 1))
    crop = Image.fromarray(np.rint(image[y : y + side, x : x + side] * 255).astype(np.uint8))
    crop = crop.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    array = np.asarray(crop, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        array = array[:, ::-1]
    if rng.random() < 0.5:  # tint grey photographs and recolour colour ones a little
        array = array * rng.uniform(0.6, 1.0, size=3).astype(np.float32)
    return array


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random procedural texture: sums of oriented waves, smooth value noise, or stripes; (size, size, 3)."""
    kind = PROCEDURAL[rng.integers(len(PROCEDURAL))]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    colours = rng.uniform(0, 1, size=(2, 3)).astype(np.float32)
    if kind == "waves":
        field = np.zeros((size, size), np.float32)
        for _ in range(3):
            frequency, angle, phase = rng.uniform(2, 9), rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
            field += np.sin(2 * math.pi * frequency * (x * math.cos(angle) + y * math.sin(angle)) + phase)
        t = (field - field.min()) / (np.ptp(field) + 1e-6)
    elif kind == "noise":
        cells = int(rng.integers(3, 9))
        coarse = Image.fromarray(np.rint(rng.uniform(0, 255, size=(cells, cells))).astype(np.uint8))
        t = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    else:
        frequency, angle = rng.uniform(3, 10), rng.uniform(0, math.pi)
        t = (np.sin(2 * math.pi * frequency * (x * math.cos(angle) + y * math.sin(angle))) > 0).astype(np.float32)
        t = np.asarray(Image.fromarray(np.rint(t * 255).astype(np.uint8)).resize((size, size)), np.float32) / 255
    return colours[0] + t[:, :, None] * (colours[1] - colours[0])


def random_colour(rng: np.random.Generator, avoid: np.ndarray, min_distance: float = 0.35) -> np.ndarray:
    """A saturated RGB colour in [0, 1]^3 at least ``min_distance`` (Euclidean) from ``avoid`` when possible."""
    best, best_distance = None, -1.0
    for _ in range(20):
        hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0)
        colour = np.array(_hsv_to_rgb(hue, saturation, value), np.float32)
        distance = float(np.linalg.norm(colour - avoid))
        if distance >= min_distance:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` pixels (a square neighbourhood), without wrapping at the edges."""
    padded = np.pad(mask, radius)
    size_y, size_x = mask.shape
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + size_y, dx : dx + size_x]
    return out


@dataclass(frozen=True)
class Scene:
    """One rendered example: the image (H, W, 3) uint8, its class, the object mask (H, W) bool, the object's
    drawing parameters, the number of distractors drawn and the pixels they touch (H, W) bool."""

    image: np.ndarray
    label: int
    mask: np.ndarray
    object: ShapeParams
    num_distractors: int
    distractor_pixels: np.ndarray


def render_scene(seed: int, split: str, index: int, size: int = 64) -> Scene:
    """Draw example ``index`` of ``split`` for ``seed`` (a pure function of its arguments)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    rng = np.random.default_rng([seed, SPLITS[split], index])
    label = int(rng.integers(len(CLASS_NAMES)))
    background = photo_background(rng, split, size) if rng.random() < 0.8 else procedural_background(rng, size)
    # backgrounds keep their texture at a reduced contrast and colourfulness, so that the object stands out
    level = background.mean(axis=(0, 1))
    background = level + rng.uniform(*BACKGROUND_CONTRAST) * (background - level)
    grey = background.mean(axis=2, keepdims=True)
    background = grey + BACKGROUND_CHROMA * (background - grey)

    radius = rng.uniform(0.2, 0.32) * size
    centre = rng.uniform(radius + 1, size - radius - 1, size=2)
    region = background[
        int(centre[1] - radius) : int(centre[1] + radius) + 1, int(centre[0] - radius) : int(centre[0] + radius) + 1
    ]
    colour = random_colour(rng, region.reshape(-1, 3).mean(axis=0))
    params = ShapeParams(
        shape=CLASS_NAMES[label],
        center_x=float(centre[0]),
        center_y=float(centre[1]),
        radius=float(radius),
        angle=float(rng.uniform(0, 2 * math.pi)),
        color=tuple(int(c) for c in np.rint(colour * 255)),
    )
    object_coverage = coverage(shape_polygons(params), size)
    keep_out = _dilate(object_coverage > 0, max(1, size // 32))

    image = background.copy()
    num_distractors, distractor_pixels = 0, np.zeros((size, size), bool)
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(30):
            start = rng.uniform(0, size, size=2)
            points = [start]
            for _segment in range(int(rng.integers(1, 3))):
                angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(0.12, 0.35) * size
                points.append(points[-1] + length * np.array([math.cos(angle), math.sin(angle)]))
            stroke = coverage(stroke_polygons(np.stack(points), width=rng.uniform(1.5, 2.5) * size / 64), size)
            if not (stroke > 0).any() or (keep_out & (stroke > 0)).any():
                continue
            stroke_colour = rng.uniform(0, 1, size=3).astype(np.float32)
            image = image + stroke[:, :, None] * (stroke_colour - image)
            keep_out |= _dilate(stroke > 0, 1)
            distractor_pixels |= stroke > 0
            num_distractors += 1
            break
    image = image + object_coverage[:, :, None] * (colour - image)
    return Scene(
        image=np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8),
        label=label,
        mask=object_coverage >= 0.5,
        object=params,
        num_distractors=num_distractors,
        distractor_pixels=distractor_pixels,
    )


def shapes_split(split: str, num_examples: int, seed: int = 0, size: int = 64):
    """One split of AHA Shapes as a ``datasets.Dataset`` with columns ``image`` (RGB), ``label`` (ClassLabel
    of :data:`CLASS_NAMES`), ``mask`` (mode "1": ``np.asarray(mask)`` is the (H, W) bool object mask) and
    ``object`` (the drawing parameters of :class:`ShapeParams`)."""
    import datasets

    if num_examples < 1 or size < 16:
        raise ValueError(f"need num_examples >= 1 and size >= 16, got {num_examples} and {size}")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(CLASS_NAMES)),
            "mask": datasets.Image(),
            "object": {
                "shape": datasets.Value("string"),
                "center_x": datasets.Value("float32"),
                "center_y": datasets.Value("float32"),
                "radius": datasets.Value("float32"),
                "angle": datasets.Value("float32"),
                "color": datasets.Sequence(datasets.Value("uint8"), length=3),
            },
        }
    )

    scenes = [render_scene(seed, split, index, size) for index in range(num_examples)]
    columns = {
        "image": [Image.fromarray(scene.image) for scene in scenes],
        "label": [scene.label for scene in scenes],
        "mask": [Image.fromarray(scene.mask) for scene in scenes],
        "object": [asdict(scene.object) for scene in scenes],
    }
    return datasets.Dataset.from_dict(columns, features=features, split=split)


def shapes_dataset(num_train: int = 6000, num_validation: int = 200, num_test: int = 1000, seed: int = 0, size: int = 64):
    """AHA Shapes as a ``datasets.DatasetDict`` {"train", "validation", "test"} (see the module docstring)."""
    import datasets

    return datasets.DatasetDict(
        {
            split: shapes_split(split, count, seed, size)
            for split, count in (("train", num_train), ("validation", num_validation), ("test", num_test))
        }
    )
