"""What every benchmark world shares: the seed and split convention, the backgrounds, the mask convention,
colours, distractor strokes, and the ``datasets.Dataset`` of a world.

- **Seeds and splits.** An example is a pure function of ``(seed, split, index)``: its random stream is
  ``numpy.random.default_rng([seed, SPLITS[split], index, *stream])``, where ``stream`` tells worlds apart
  (AHA Shapes has none), so every split and every world draws from its own stream.
- **Backgrounds.** Train and validation backgrounds are crops of the left part of a photograph, test
  backgrounds of the right part (or procedural textures), kept at a reduced contrast and colourfulness:
  train and test share no image and no background region.
- **Masks.** A pixel belongs to an object when at least half of it is covered, coverage sampled at 4 x 4
  points per pixel (the same points give the drawing its anti-aliased edges).

Photographs come from ``scikit-image``'s bundled sample images (no download).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, Callable, get_type_hints

import numpy as np
from matplotlib.path import Path
from PIL import Image


SPLITS = {"train": 0, "validation": 1, "test": 2}
SUPERSAMPLE = 4  # coverage is sampled at 4 x 4 points per pixel: anti-aliased edges
# photographs of scikit-image's bundled data, the fraction of their width used by the train (left) part
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "camera",
    "coins",
    "moon",
    "cell",
)
TRAIN_WIDTH = 0.6
PROCEDURAL = ("waves", "noise", "stripes")
BACKGROUND_CONTRAST = (0.3, 0.6)  # range of the factor that scales a background's deviations from its mean colour
BACKGROUND_CHROMA = 0.4  # share of a background's colourfulness kept (objects are saturated colours)


def example_rng(seed: int, split: str, index: int, stream: tuple[int, ...] = ()) -> np.random.Generator:
    """The random stream of example ``index`` of ``split`` (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return np.random.default_rng([seed, SPLITS[split], index, *stream])


def coverage(polygons: list[tuple[np.ndarray, bool]], size: int) -> np.ndarray:
    """Share of each pixel covered by the polygons ((V, 2) (x, y) vertices, filled?), (size, size) float32 in
    [0, 1]: the fraction of its 4 x 4 sample points (at ``(i + (k + 0.5) / 4)`` pixels) inside, polygons
    applied in order (a hole clears what it covers)."""
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
            "the benchmark worlds draw their photographic backgrounds from scikit-image's bundled images: "
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


def background(rng: np.random.Generator, split: str, size: int) -> np.ndarray:
    """A scene's background, (size, size, 3) float in [0, 1]: a photograph crop (80 %) or a procedural texture,
    its texture kept at a reduced contrast and colourfulness so that the objects stand out."""
    image = photo_background(rng, split, size) if rng.random() < 0.8 else procedural_background(rng, size)
    level = image.mean(axis=(0, 1))
    image = level + rng.uniform(*BACKGROUND_CONTRAST) * (image - level)
    grey = image.mean(axis=2, keepdims=True)
    return grey + BACKGROUND_CHROMA * (image - grey)


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


def object_colour(rng: np.random.Generator, image: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """A saturated colour that stands out from the mean colour of ``image`` around ``center`` (x, y)."""
    top, left = max(int(center[1] - radius), 0), max(int(center[0] - radius), 0)
    region = image[top : int(center[1] + radius) + 1, left : int(center[0] + radius) + 1]
    return random_colour(rng, region.reshape(-1, 3).mean(axis=0))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` pixels (a square neighbourhood), without wrapping at the edges."""
    padded = np.pad(mask, radius)
    size_y, size_x = mask.shape
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + size_y, dx : dx + size_x]
    return out


def paint(image: np.ndarray, share: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``image`` with ``colour`` blended in by the per-pixel coverage ``share`` (anti-aliased drawing)."""
    return image + share[:, :, None] * (colour - image)


def draw_distractors(
    rng: np.random.Generator, image: np.ndarray, keep_out: np.ndarray, counts: tuple[int, int] = (1, 4)
) -> tuple[np.ndarray, int, np.ndarray]:
    """Draw ``rng.integers(*counts)`` thin strokes of random colours that never touch ``keep_out`` (the class
    evidence grown by a margin): (image, number drawn, (H, W) bool pixels they touch)."""
    size = image.shape[0]
    keep_out = keep_out.copy()
    num_distractors, distractor_pixels = 0, np.zeros((size, size), bool)
    for _ in range(int(rng.integers(*counts))):
        for _attempt in range(30):
            start = rng.uniform(0, size, size=2)
            points = [start]
            for _segment in range(int(rng.integers(1, 3))):
                angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(0.12, 0.35) * size
                points.append(points[-1] + length * np.array([math.cos(angle), math.sin(angle)]))
            stroke = coverage(stroke_polygons(np.stack(points), width=rng.uniform(1.5, 2.5) * size / 64), size)
            if not (stroke > 0).any() or (keep_out & (stroke > 0)).any():
                continue
            image = paint(image, stroke, rng.uniform(0, 1, size=3).astype(np.float32))
            keep_out |= dilate(stroke > 0, 1)
            distractor_pixels |= stroke > 0
            num_distractors += 1
            break
    return image, num_distractors, distractor_pixels


def one_object_scene(
    rng: np.random.Generator, image: np.ndarray, label: int, share: np.ndarray, colour: np.ndarray, params: Any
) -> Scene:
    """The scene of one object on ``image`` (H, W, 3) float: distractors drawn clear of its coverage ``share``
    (H, W) grown by a margin, then the object painted over them in ``colour``; its mask is where it covers half a
    pixel or more, and ``params`` (its drawing parameters) is the ``object`` column."""
    margin = max(1, image.shape[0] // 32)
    image, num_distractors, distractor_pixels = draw_distractors(rng, image, dilate(share > 0, margin))
    image = paint(image, share, colour)
    return Scene(to_uint8(image), label, share >= 0.5, params, num_distractors, distractor_pixels)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8."""
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def params_features(params_type: type) -> dict:
    """The ``datasets`` features of a drawing-parameters dataclass (the ``object`` column), field by field: a
    ``str`` is a string, a ``float`` a float32, a ``tuple[int, int, int]`` (a colour) three uint8 and a dataclass
    (one object of several) its own features."""
    import datasets

    feature_of_type = {
        str: datasets.Value("string"),
        float: datasets.Value("float32"),
        tuple[int, int, int]: datasets.Sequence(datasets.Value("uint8"), length=3),
    }
    types = get_type_hints(params_type)
    features = {}
    for field in fields(params_type):
        kind = types[field.name]
        features[field.name] = params_features(kind) if is_dataclass(kind) else feature_of_type[kind]
    return features


@dataclass(frozen=True)
class Scene:
    """One rendered example: the image (H, W, 3) uint8, its class, the mask of the class evidence (H, W) bool,
    the drawing parameters of the object(s) (a dataclass), the number of distractors drawn and the pixels
    they touch (H, W) bool."""

    image: np.ndarray
    label: int
    mask: np.ndarray
    object: Any
    num_distractors: int
    distractor_pixels: np.ndarray


@dataclass(frozen=True)
class World:
    """A benchmark world: a procedural image-classification dataset with a ground-truth mask per image.

    Attributes:
        name: its key in :data:`aha.demo.worlds.WORLDS` and ``aha demo --world``; it names the world's
            :attr:`title` and :attr:`card` too.
        class_names: the classes, in label order.
        render: ``render(seed, split, index, size) -> Scene``, a pure function of its arguments.
        object_type: the dataclass of the drawing parameters, the ``object`` column (its ``datasets`` features:
            :func:`params_features`).
        dihedral: whether an image's class survives flips and transposition (the classifier's augmentation).
        patch_classes: what the classifier's auxiliary per-patch loss predicts on the class evidence, when it is
            not the image's class (``None``: the image's class on its whole mask). AHA Parts' patches predict
            the kind of the part they show: one patch cannot know the pair.
        epoch_scale: the classifier trains for the preset's epochs times this (a world whose class is harder to
            learn than AHA Shapes' needs more passes over the same images to reach the benchmark's accuracy).
        pixel_classes: with ``patch_classes``, ``pixel_classes(mask, object) -> (H, W) int``, each mask pixel's
            index into ``patch_classes`` (-1 off the mask), from the mask and the drawing parameters (the
            ``object`` column as a dict).
    """

    name: str
    class_names: tuple[str, ...]
    render: Callable[[int, str, int, int], Scene]
    object_type: type
    dihedral: bool
    patch_classes: tuple[str, ...] | None = None
    pixel_classes: Callable[[np.ndarray, dict], np.ndarray] | None = None
    epoch_scale: int = 1

    def __post_init__(self):
        if isinstance(self.epoch_scale, bool) or not isinstance(self.epoch_scale, int) or self.epoch_scale < 1:
            raise ValueError(f"epoch_scale must be an integer >= 1, got {self.epoch_scale!r}")

    @property
    def title(self) -> str:
        """Its display name: "AHA Shapes" for ``shapes``."""
        return f"AHA {self.name.capitalize()}"

    @property
    def card(self) -> str:
        """The file name of its dataset card in ``aha.hub_cards``: ``shapes_dataset_card.md`` for ``shapes``."""
        return f"{self.name}_dataset_card.md"

    def classifier_epochs(self, preset_epochs: int) -> int:
        """The classifier's epochs for a preset's ``preset_epochs``: ``preset_epochs * epoch_scale``."""
        return preset_epochs * self.epoch_scale

    def patch_evidence(self, split) -> tuple[np.ndarray, int] | None:
        """The per-pixel targets of the classifier's auxiliary per-patch loss on a split of this world:
        ((N, H, W) int64 indices into ``patch_classes``, -1 off the mask; ``len(patch_classes)``), or ``None``
        when the patches predict the image's class (``patch_classes`` is ``None``)."""
        if self.patch_classes is None:
            return None
        pixels = np.stack(
            [
                self.pixel_classes(np.asarray(mask, dtype=bool), obj)
                for mask, obj in zip(split["mask"], split["object"])
            ]
        ).astype(np.int64)
        return pixels, len(self.patch_classes)

    def split(self, split: str, num_examples: int, seed: int = 0, size: int = 64):
        """One split as a ``datasets.Dataset`` with columns ``image`` (RGB), ``label`` (ClassLabel of
        ``class_names``), ``mask`` (mode "1": ``np.asarray(mask)`` is the (H, W) bool mask) and ``object``
        (the drawing parameters)."""
        import datasets

        if num_examples < 1 or size < 16:
            raise ValueError(f"need num_examples >= 1 and size >= 16, got {num_examples} and {size}")
        features = datasets.Features(
            {
                "image": datasets.Image(),
                "label": datasets.ClassLabel(names=list(self.class_names)),
                "mask": datasets.Image(),
                "object": params_features(self.object_type),
            }
        )
        scenes = [self.render(seed, split, index, size) for index in range(num_examples)]
        columns = {
            "image": [Image.fromarray(scene.image) for scene in scenes],
            "label": [scene.label for scene in scenes],
            "mask": [Image.fromarray(scene.mask) for scene in scenes],
            "object": [asdict(scene.object) for scene in scenes],
        }
        return datasets.Dataset.from_dict(columns, features=features, split=split)

    def dataset(
        self, num_train: int = 6000, num_validation: int = 200, num_test: int = 1000, seed: int = 0, size: int = 64
    ):
        """The world as a ``datasets.DatasetDict`` {"train", "validation", "test"}."""
        import datasets

        counts = (("train", num_train), ("validation", num_validation), ("test", num_test))
        return datasets.DatasetDict({split: self.split(split, count, seed, size) for split, count in counts})
