"""The demo's report folder: ``results.json``, ``results.md``, curve plots and a grid of overlays."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..visualization import DEFAULT_COLORMAP, curve_plot, grid, overlay
from .evaluation import METRICS, MethodResult, paired_difference, verdict


SHORT_NAMES = {
    "deletion_mean": "Del mean ↓",
    "deletion_black": "Del black ↓",
    "deletion_blur": "Del blur ↓",
    "insertion_lrf": "Ins LRF ↑",
    "insertion_rise": "Ins RISE ↑",
    "positive_perturbation": "POS ↓",
    "negative_perturbation": "NEG ↑",
    "pointing_game": "Pointing ↑",
    "mask_auroc": "Mask AUROC ↑",
}


def summarise(results: list[MethodResult], forward_seconds: float, compared: list[str]) -> dict:
    """The numbers of the report: per method, each metric's mean and standard error, the time per image and
    its cost in classifier forwards; per method in ``compared``, its paired difference with every other."""
    by_name = {result.name: result for result in results}
    methods = {
        result.name: {
            "metrics": {m: {"mean": result.mean(m), "se": result.standard_error(m)} for m in METRICS},
            "ms_per_image": 1000 * result.seconds_per_image,
            "cost_in_forwards": result.seconds_per_image / forward_seconds,
        }
        for result in results
    }
    paired = {}
    for name in compared:
        paired[name] = {}
        for other in results:
            if other.name == name:
                continue
            paired[name][other.name] = {}
            for metric, (high_is_good, _) in METRICS.items():
                difference, se = paired_difference(by_name[name].scores[metric], other.scores[metric])
                paired[name][other.name][metric] = {
                    "difference": difference, "se": se, "verdict": verdict(difference, se, high_is_good)
                }
    return {"forward_ms_per_image": 1000 * forward_seconds, "methods": methods, "paired": paired}


def _best(methods: dict, metric: str) -> float:
    high_is_good = METRICS[metric][0]
    values = [m["metrics"][metric]["mean"] for m in methods.values()]
    return max(values) if high_is_good else min(values)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(summary: dict, context: dict) -> str:
    """``results.md``: the settings, the table of every method and metric, and the paired differences."""
    methods = summary["methods"]
    lines = [
        "# AHA demo: faithfulness on AHA Shapes",
        "",
        f"Command: `{context['command']}`  ",
        f"Classifier: {context['classifier']}  ",
        f"Explainer: {context['explainer']}  ",
        f"Evaluation: {context['evaluation']}  ",
        f"Machine: {context['machine']}  ",
        f"Versions: {context['versions']}  ",
        f"Run time: {context['run_time']}",
        "",
        "Mean over the evaluation images ± standard error; ↓ lower is better, ↑ higher is better; the best mean "
        "of each column in bold. Time: attribution alone, per image, at the evaluation batch size; cost: that "
        f"time over one classifier forward ({summary['forward_ms_per_image']:.2f} ms per image).",
        "",
    ]
    rows = []
    for name, method in methods.items():
        cells = []
        for metric in METRICS:
            mean, se = method["metrics"][metric]["mean"], method["metrics"][metric]["se"]
            text = f"{mean:.3f} ± {se:.3f}"
            cells.append(f"**{text}**" if math.isclose(mean, _best(methods, metric), abs_tol=5e-4) else text)
        rows.append([name, *cells, f"{method['ms_per_image']:.1f}", f"{method['cost_in_forwards']:.2f}"])
    lines += table(["method", *(SHORT_NAMES[m] for m in METRICS), "ms / image", "cost (forwards)"], rows)
    for name, others in summary["paired"].items():
        lines += [
            "",
            f"## Paired differences: {name} minus each method",
            "",
            "Per-image difference, mean ± standard error; **better** / *worse* where it exceeds two standard errors "
            "in that direction, else tie.",
            "",
        ]
        rows = []
        for other, metrics in others.items():
            cells = []
            for metric in METRICS:
                entry = metrics[metric]
                text = f"{entry['difference']:+.3f} ± {entry['se']:.3f}"
                cells.append({"better": f"**{text}**", "worse": f"*{text}*"}.get(entry["verdict"], text))
            rows.append([other, *cells])
        lines += table(["vs", *(SHORT_NAMES[m] for m in METRICS)], rows)
    lines += ["", "![deletion curves](deletion_curves.png) ![insertion curves](insertion_curves.png)", "",
              "![overlays](overlays.png)", ""]
    return "\n".join(lines)


def overlay_grid(results: list[MethodResult], images: list[Image.Image], masks: np.ndarray, rows: int = 6) -> Image.Image:
    """Rows of test images: the image, its ground-truth mask, then every method's map over the image; each row
    labelled with the probability of the class explained (the prediction), a colour bar at the right."""
    labels = ["image", "object mask", *(result.name for result in results)]
    cells, row_labels = [], []
    clean = results[0].curves["deletion_mean"]  # fraction 0: nothing perturbed, the prediction's probability
    for index in range(min(rows, len(images))):
        row_labels.append(f"predicted\nclass\np = {float(clean.curves[index, 0]):.2f}")
        row = [images[index], Image.fromarray((masks[index] * 255).astype(np.uint8))]  # grid converts them to RGB
        row += [overlay(images[index], result.maps[index].numpy()) for result in results]
        cells.append(row)
    return grid(cells, labels, row_labels=row_labels, cell_size=2 * images[0].width, colorbar=DEFAULT_COLORMAP)


def write_report(output_dir, results: list[MethodResult], summary: dict, context: dict, images, masks) -> None:
    """Write ``results.json``, ``results.md``, ``deletion_curves.png``, ``insertion_curves.png`` and
    ``overlays.png`` into ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps({"context": context, **summary}, indent=2))
    (output_dir / "results.md").write_text(markdown(summary, context))
    for curve, title in (("deletion_mean", "deletion (mean reference): most relevant first; lower is better"), ("insertion_lrf", "insertion (LRF): least relevant first; higher is better")):
        figure = curve_plot({result.name: result.curves[curve] for result in results}, title=title)
        figure.set_size_inches(6.4, 4.8)
        figure.savefig(output_dir / f"{curve.split('_')[0]}_curves.png")
    overlay_grid(results, images, masks).save(output_dir / "overlays.png")
