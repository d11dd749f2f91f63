"""Pictures of attribution maps: heat-map overlays in matplotlib's colormaps, labelled figure grids, and
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

from .images import to_rgb


#: matplotlib colormap of the overlays: cold dark blue -> cyan -> yellow -> hot dark red.
DEFAULT_COLORMAP = "turbo"
NORMALISATIONS = ("rank", "minmax")


def heat_colours(values: np.ndarray, cmap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A matplotlib colormap on values in [0, 1] of any shape (...) -> (..., 3) uint8 RGB (0 cold, 1 hot).

    Args:
        cmap: any name in ``matplotlib.colormaps`` ("turbo", "inferno", "viridis", "jet", ...).
    """
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {cmap!r}: expected a name in matplotlib.colormaps, e.g. 'turbo' or 'inferno'")
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return matplotlib.colormaps[cmap](values, bytes=True)[..., :3]


def normalise_map(attribution, method: str = "rank") -> np.ndarray:
    """One map (H, W) of any real scores -> (H, W) float64 in [0, 1], 1 = most important.

    ``"rank"``: the pixel's rank among the H * W scores divided by H * W - 1 (ties share their mean rank),
    i.e. exactly the ordering the deletion / insertion metrics use, whatever the scale or outliers.
    ``"minmax"``: ``(a - min) / (max - min)``, which keeps relative gaps. A constant map becomes all 0.5
    either way (it ranks nothing).
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {method!r}")
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
    image, attribution, alpha: float = 0.6, normalise: str = "rank", cmap: str = DEFAULT_COLORMAP
) -> Image.Image:
    """Blend a heat-map colouring of ``attribution`` over ``image``.

    Args:
        image: PIL image, or array (H, W) / (H, W, 1, 3 or 4), converted to RGB by [`aha.images.to_rgb`]
            (uint8 as is, uint16 by 65535, float in [0, 1]; NaN refused).
        attribution: (H, W) real scores (numpy array, list, or CPU tensor), higher = more important;
            same H, W as the image.
        alpha: weight of the heat colours in [0, 1] (0: the image only, 1: the heat map only).
        normalise: ``"rank"`` or ``"minmax"``, per image (see :func:`normalise_map`).
        cmap: matplotlib colormap name (see :func:`heat_colours`).
    Returns:
        RGB PIL image of size (W, H): ``(1 - alpha) * image + alpha * heat``; with the default colormap the
        most important pixel is dark red, the least dark blue.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = np.asarray(to_rgb(image, "the image under the overlay"), dtype=np.float64)
    heat = normalise_map(attribution, normalise)
    if heat.shape != base.shape[:2]:
        raise ValueError(f"attribution is {heat.shape} but the image is {base.shape[:2]} (H, W)")
    blended = (1.0 - alpha) * base + alpha * heat_colours(heat, cmap)
    return Image.fromarray(np.rint(blended).astype(np.uint8), "RGB")


def grid(
    images_rows: Sequence[Sequence[Image.Image]],
    labels: Sequence[str],
    row_labels: Sequence[str] | None = None,
    cell_size: int | None = None,
    padding: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """A figure: one row per image, one column per method, each column titled (PIL's default font).

    Args:
        images_rows: rows of PIL images, each row holding ``len(labels)`` images of one size (W, H).
        labels: column titles.
        row_labels: optional text drawn to the left of each row (one per row).
        cell_size: if given, every cell is resized (nearest neighbour) to ``cell_size`` x ``cell_size``
            pixels, so small images stay crisp; else cells keep the first image's size.
        padding: pixels between cells and around text.
        background: RGB of the margins.
    Returns:
        RGB PIL image; each column is as wide as its widest of cell and title.
    """
    rows = [list(row) for row in images_rows]
    if not rows:
        raise ValueError("images_rows is empty")
    bad = [i for i, row in enumerate(rows) if len(row) != len(labels)]
    if bad:
        raise ValueError(f"every row needs {len(labels)} images (one per label); rows {bad} differ")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"row_labels has {len(row_labels)} entries for {len(rows)} rows")
    cell_w, cell_h = (cell_size, cell_size) if cell_size else rows[0][0].size
    font = ImageFont.load_default()
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    column_w = [max(cell_w, text_size(label)[0]) for label in labels]
    title_h = max(text_size(label)[1] for label in labels) + 2 * padding
    row_label_w = max((text_size(text)[0] for text in row_labels), default=0) + padding if row_labels else 0
    width = row_label_w + sum(column_w) + padding * (len(labels) + 1)
    height = title_h + len(rows) * (cell_h + padding) + padding
    figure = Image.new("RGB", (width, height), background)
    pen = ImageDraw.Draw(figure)
    x = row_label_w + padding
    for column, label in enumerate(labels):
        text_w, _ = text_size(label)
        pen.text((x + (column_w[column] - text_w) // 2, padding), label, fill=(0, 0, 0), font=font)
        for r, row in enumerate(rows):
            cell = to_rgb(row[column], f"the image of row {r}, column {label!r}")
            if cell_size:
                cell = cell.resize((cell_w, cell_h), Image.NEAREST)
            elif cell.size != (cell_w, cell_h):
                raise ValueError(f"all cells must be {cell_w}x{cell_h} (or pass cell_size), got {cell.size}")
            figure.paste(cell, (x + (column_w[column] - cell_w) // 2, title_h + r * (cell_h + padding)))
        x += column_w[column] + padding
    for r, text in enumerate(row_labels or []):
        _, text_h = text_size(text)
        pen.text((padding, title_h + r * (cell_h + padding) + (cell_h - text_h) // 2), text, fill=(0, 0, 0), font=font)
    return figure


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
        fraction of pixels perturbed, y the target's score.
    """
    if not curves:
        raise ValueError("curves is empty: pass {label: CurveResult}")
    figure = Figure(figsize=(4.8, 3.4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for label, result in curves.items():
        values, aucs = torch.as_tensor(result.curves).float().cpu(), torch.as_tensor(result.auc).float().cpu()
        if image is not None and not -len(values) <= image < len(values):
            raise ValueError(f"image must index the {len(values)} curves of {label!r}, got {image}")
        curve, auc = (values.mean(0), aucs.mean()) if image is None else (values[image], aucs[image])
        axes.plot(torch.as_tensor(result.fractions).cpu().numpy(), curve.numpy(), marker=".", label=f"{label} (AUC {auc:.3f})")
    axes.set(xlabel="fraction of pixels perturbed", ylabel="target score", xlim=(0, 1), title=title)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure
