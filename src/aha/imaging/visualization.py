"""Pictures of attribution maps: heat-map overlays in matplotlib's colormaps, pictures that explain themselves
(the overlay enlarged for display, with a colour bar and the class explained), labelled figure grids, and
deletion / insertion curve plots with their AUCs.

Maps are normalised per image before colouring, so only their ordering (``"rank"``) or their relative
values (``"minmax"``) show; raw scales of different methods are never compared. Nothing here touches
pyplot's global state: plots are plain ``matplotlib.figure.Figure`` objects (``figure.savefig(path)``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from ..validation import check_number
from .images import to_rgb


#: matplotlib colormap of the overlays: cold dark blue -> cyan -> yellow -> hot dark red.
DEFAULT_COLORMAP = "turbo"
NORMALIZATIONS = ("rank", "minmax")


def heat_colours(values: np.ndarray, cmap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A matplotlib colormap on values in [0, 1] of any shape (...) -> (..., 3) uint8 RGB (0 cold, 1 hot).

    Args:
        cmap: any name in ``matplotlib.colormaps`` ("turbo", "inferno", "viridis", "jet", ...).
    """
    if cmap not in matplotlib.colormaps:
        raise ValueError(
            f"unknown colormap {cmap!r}: expected a name in matplotlib.colormaps, e.g. 'turbo' or 'inferno'"
        )
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return matplotlib.colormaps[cmap](values, bytes=True)[..., :3]


def normalize_map(attribution, method: str = "rank") -> np.ndarray:
    """One map (H, W) of any real scores -> (H, W) float64 in [0, 1], 1 = most important.

    ``"rank"``: the pixel's rank among the H * W scores divided by H * W - 1 (ties share their mean rank),
    i.e. exactly the ordering the deletion / insertion metrics use, whatever the scale or outliers.
    ``"minmax"``: ``(a - min) / (max - min)``, which keeps relative gaps. A constant map becomes all 0.5
    either way (it ranks nothing).
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {method!r}")
    values = np.asarray(attribution, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"attribution must be one (H, W) map, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("attribution contains NaN or infinite values")
    low, high = values.min(), values.max()
    if high == low:
        return np.full(values.shape, 0.5)
    if method == "minmax":
        return (values - low) / (high - low)
    flat = values.ravel()
    ordered = np.sort(flat)
    ranks = (np.searchsorted(ordered, flat, "left") + np.searchsorted(ordered, flat, "right") - 1) / 2
    return (ranks / (flat.size - 1)).reshape(values.shape)


def overlay(
    image, attribution, alpha: float = 0.6, normalize: str = "rank", cmap: str = DEFAULT_COLORMAP
) -> Image.Image:
    """Blend a heat-map colouring of ``attribution`` over ``image``.

    Args:
        image: PIL image, or array (H, W) / (H, W, 1, 3 or 4), converted to RGB by [`aha.imaging.images.to_rgb`]
            (uint8 as is, uint16 by 65535, float in [0, 1]; NaN refused).
        attribution: (H, W) real scores (numpy array, list, or CPU tensor), higher = more important;
            same H, W as the image.
        alpha: weight of the heat colours in [0, 1] (0: the image only, 1: the heat map only).
        normalize: ``"rank"`` or ``"minmax"``, per image (see :func:`normalize_map`).
        cmap: matplotlib colormap name (see :func:`heat_colours`).
    Returns:
        RGB PIL image of size (W, H): ``(1 - alpha) * image + alpha * heat``; with the default colormap the
        most important pixel is dark red, the least dark blue.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = np.asarray(to_rgb(image, "the image under the overlay"), dtype=np.float64)
    heat = normalize_map(attribution, normalize)
    if heat.shape != base.shape[:2]:
        raise ValueError(f"attribution is {heat.shape} but the image is {base.shape[:2]} (H, W)")
    blended = (1.0 - alpha) * base + alpha * heat_colours(heat, cmap)
    return Image.fromarray(np.rint(blended).astype(np.uint8), "RGB")


#: pictures are enlarged (by a whole factor, nearest neighbour) until their shorter side reaches this many pixels
DISPLAY_SIDE = 256
#: the legend labels of the AHA protocol's two curves: what each perturbs first, and which way is good
DELETION_LABEL = "deletion: most relevant pixels first (lower is better)"
LRF_LABEL = "insertion (LRF): least relevant first, stays high (higher is better)"


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_size(text: str, font) -> tuple[int, int]:
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _positive_int(value, name: str, minimum: int) -> int:
    check_number(name, value, integer=True, minimum=minimum)
    return int(value)


def display_scale(width: int, height: int, side: int = DISPLAY_SIDE) -> int:
    """The whole factor that brings the shorter side of a (width x height) picture to at least ``side`` pixels
    (1 for pictures that are large enough: they are never shrunk)."""
    return max(1, -(-side // max(1, min(width, height))))


def colour_bar(height: int, cmap: str = DEFAULT_COLORMAP, normalize: str = "rank", font_size: int = 12) -> Image.Image:
    """A vertical colour bar (RGB PIL image, ``height`` pixels tall) saying what the overlay colours mean: the
    colormap from most important (top) to least important (bottom), labelled, and the normalisation."""
    height = _positive_int(height, "height", 1)
    font = _font(font_size)
    labels = ("most", "important", "", "least", "important", f"({normalize})")
    bar_w, margin = max(8, font_size), max(3, font_size // 3)
    text_w = max(_text_size(text, font)[0] for text in labels if text)
    bar = Image.new("RGB", (bar_w + 2 * margin + text_w, height), (255, 255, 255))
    colours = heat_colours(np.linspace(1.0, 0.0, height), cmap)  # (height, 3): hot at the top
    bar.paste(Image.fromarray(np.repeat(colours[:, None], bar_w, axis=1).astype(np.uint8), "RGB"), (0, 0))
    pen, line_h = ImageDraw.Draw(bar), _text_size("Mg", font)[1] + 2
    x = bar_w + margin
    pen.text((x, 0), "most", fill=(0, 0, 0), font=font)
    pen.text((x, line_h), "important", fill=(0, 0, 0), font=font)
    pen.text((x, max(2 * line_h, height - 3 * line_h)), "least", fill=(0, 0, 0), font=font)
    pen.text((x, max(3 * line_h, height - 2 * line_h)), "important", fill=(0, 0, 0), font=font)
    if height >= 7 * line_h:
        pen.text((x, (height - line_h) // 2), f"({normalize})", fill=(90, 90, 90), font=font)
    return bar


def explained_picture(
    image,
    attribution,
    caption: str | None = None,
    alpha: float = 0.6,
    normalize: str = "rank",
    cmap: str = DEFAULT_COLORMAP,
    display_side: int = DISPLAY_SIDE,
) -> Image.Image:
    """An overlay that explains itself: :func:`overlay`, enlarged by a whole factor (nearest neighbour) until
    its shorter side reaches ``display_side`` pixels (a 64 px image becomes 256 px; larger ones keep their
    size and aspect ratio), with ``caption`` above it (e.g. the class explained and its probability) and a
    :func:`colour_bar` at its right.

    Args:
        image, attribution, alpha, normalize, cmap: as for :func:`overlay`.
        caption: one line of text above the picture (None: no caption band).
        display_side: the shorter side to enlarge small pictures to (>= 1; 1 never enlarges).
    Returns:
        RGB PIL image, white margins; the overlay's pixels are those of :func:`overlay`, repeated.
    """
    display_side = _positive_int(display_side, "display_side", 1)
    picture = overlay(image, attribution, alpha=alpha, normalize=normalize, cmap=cmap)
    scale = display_scale(picture.width, picture.height, display_side)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    font_size = max(12, min(picture.width, picture.height) // 20)
    bar = colour_bar(picture.height, cmap, normalize, font_size)
    margin = max(4, font_size // 2)
    font = _font(font_size)
    caption_h = _text_size("Mg", font)[1] + 2 * margin if caption else 0
    width = max(picture.width + margin + bar.width, _text_size(caption, font)[0] if caption else 0) + 2 * margin
    figure = Image.new("RGB", (width, caption_h + picture.height + 2 * margin), (255, 255, 255))
    if caption:
        ImageDraw.Draw(figure).text((margin, margin), caption, fill=(0, 0, 0), font=font)
    figure.paste(picture, (margin, caption_h + margin))
    figure.paste(bar, (2 * margin + picture.width, caption_h + margin))
    return figure


def grid(
    images_rows: Sequence[Sequence[Image.Image]],
    labels: Sequence[str],
    row_labels: Sequence[str] | None = None,
    cell_size: int | None = None,
    padding: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
    colorbar: str | None = None,
) -> Image.Image:
    """A figure: one row per image, one column per method, each column titled (PIL's default font).

    Args:
        images_rows: rows of PIL images, each row holding ``len(labels)`` images of one size (W, H).
        labels: column titles.
        row_labels: optional text drawn to the left of each row (one per row).
        cell_size: if given (a whole number >= 1), the longer side of every cell in pixels: cells are resized
            keeping the first image's aspect ratio (nearest neighbour when enlarged, so small images stay
            crisp; Lanczos when shrunk); else cells keep the first image's size.
        padding: pixels (>= 0) between cells and around text.
        background: RGB of the margins.
        colorbar: the colormap of the overlays in the grid (e.g. ``"turbo"``): draws its :func:`colour_bar`
            at the right, as tall as the cells.
    Returns:
        RGB PIL image; each column is as wide as its widest of cell and title.
    """
    if cell_size is not None:
        cell_size = _positive_int(cell_size, "cell_size", 1)
    padding = _positive_int(padding, "padding", 0)
    rows = _grid_rows(images_rows, labels, row_labels)
    cell_w, cell_h = _cell_dimensions(rows[0][0].size, cell_size)
    font = ImageFont.load_default()
    column_w = [max(cell_w, _text_size(label, font)[0]) for label in labels]
    title_h = max(_text_size(label, font)[1] for label in labels) + 2 * padding
    row_label_w = max((_text_size(text, font)[0] for text in row_labels), default=0) + padding if row_labels else 0
    bar = colour_bar(cell_h, colorbar) if colorbar else None
    width = row_label_w + sum(column_w) + padding * (len(labels) + 1) + (bar.width + padding if bar else 0)
    height = title_h + len(rows) * (cell_h + padding) + padding
    figure = Image.new("RGB", (width, height), background)
    if bar:
        figure.paste(bar, (width - bar.width - padding, title_h))
    pen = ImageDraw.Draw(figure)
    x = row_label_w + padding
    for column, label in enumerate(labels):
        text_w, _ = _text_size(label, font)
        pen.text((x + (column_w[column] - text_w) // 2, padding), label, fill=(0, 0, 0), font=font)
        for r, row in enumerate(rows):
            where = f"the image of row {r}, column {label!r}"
            cell = _grid_cell(row[column], (cell_w, cell_h), bool(cell_size), where)
            figure.paste(cell, (x + (column_w[column] - cell_w) // 2, title_h + r * (cell_h + padding)))
        x += column_w[column] + padding
    for r, text in enumerate(row_labels or []):
        _, text_h = _text_size(text, font)
        pen.text((padding, title_h + r * (cell_h + padding) + (cell_h - text_h) // 2), text, fill=(0, 0, 0), font=font)
    return figure


def _grid_rows(images_rows, labels: Sequence[str], row_labels: Sequence[str] | None) -> list[list]:
    """The rows of :func:`grid` as lists, checked: at least one, each with one image per label, one row label
    per row when given."""
    rows = [list(row) for row in images_rows]
    if not rows:
        raise ValueError("images_rows is empty")
    bad = [i for i, row in enumerate(rows) if len(row) != len(labels)]
    if bad:
        raise ValueError(f"every row needs {len(labels)} images (one per label); rows {bad} differ")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"row_labels has {len(row_labels)} entries for {len(rows)} rows")
    return rows


def _cell_dimensions(first: tuple[int, int], cell_size: int | None) -> tuple[int, int]:
    """(W, H) of every cell of :func:`grid`: the ``first`` image's size, scaled so that its longer side is
    ``cell_size`` when given."""
    cell_w, cell_h = first
    if cell_size:
        longer = max(cell_w, cell_h)
        cell_w, cell_h = max(1, round(cell_w * cell_size / longer)), max(1, round(cell_h * cell_size / longer))
    return cell_w, cell_h


def _grid_cell(image, size: tuple[int, int], resize: bool, description: str) -> Image.Image:
    """One cell of :func:`grid`: ``image`` in RGB, resized to ``size`` (W, H) when ``resize`` (nearest neighbour
    when enlarged, Lanczos when shrunk), else checked to be that size."""
    cell = to_rgb(image, description)
    if resize:
        enlarged = size[0] >= cell.width and size[1] >= cell.height
        return cell.resize(size, Image.NEAREST if enlarged else Image.LANCZOS)
    if cell.size != size:
        raise ValueError(f"all cells must be {size[0]}x{size[1]} (or pass cell_size), got {cell.size}")
    return cell


def curve_plot(curves: Mapping[str, object], image: int | None = None, title: str | None = None) -> Figure:
    """Perturbation curves (deletion, insertion, ... of one or more methods), each labelled with its AUC.

    Args:
        curves: legend label -> a :class:`aha.metrics.CurveResult` (``fractions`` (F,), ``curves`` (B, F),
            ``auc`` (B,)), e.g. ``{"deletion": result.deletion, "insertion": result.insertion}``.
        image: the index of the image whose curves and AUCs are drawn; None draws the curves averaged over
            the batch and the mean AUCs.
        title: optional axes title.
    Returns:
        A ``matplotlib.figure.Figure`` (``figure.savefig("curves.png")``) with one line per entry, x the
        fraction of pixels perturbed, y the target's score, the legend (``figure.legends[0]``) below the axes. Label the curves with
        what they perturb first (:data:`DELETION_LABEL`, :data:`LRF_LABEL`): a least-relevant-first curve
        falls too, late.
    """
    if not curves:
        raise ValueError("curves is empty: pass {label: CurveResult}")
    columns = 1 if len(curves) <= 3 else 2
    figure = Figure(figsize=(6.0, 3.4 + 0.2 * -(-len(curves) // columns)), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for label, result in curves.items():
        values, aucs = torch.as_tensor(result.curves).float().cpu(), torch.as_tensor(result.auc).float().cpu()
        if image is not None and not -len(values) <= image < len(values):
            raise ValueError(f"image must index the {len(values)} curves of {label!r}, got {image}")
        curve, auc = (values.mean(0), aucs.mean()) if image is None else (values[image], aucs[image])
        axes.plot(
            torch.as_tensor(result.fractions).cpu().numpy(),
            curve.numpy(),
            marker=".",
            label=f"{label} (AUC {auc:.3f})",
        )
    axes.set(xlabel="fraction of pixels perturbed", ylabel="target score", xlim=(0, 1), title=title)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    figure.legend(
        loc="outside lower center", ncols=columns, fontsize="small", frameon=False
    )  # below the axes: hides no curve
    return figure
