"""The demo's report folder: ``results.json``, ``results.md``, curve plots, a grid of overlays and every method's
per-image scores (``scores.safetensors``, what the macro table over worlds is built from)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from ..imaging.visualization import DEFAULT_COLORMAP, curve_plot, grid, overlay
from ..persistence.atomic_writer import make_folder, write_file, write_safetensors, write_text
from .method_comparison import METRICS, MethodResult, paired_difference, verdict


#: a world's per-image scores (:func:`write_scores`), in its report folder
SCORES_FILE = "scores.safetensors"
#: the curves the report plots: metric -> (file name, title)
CURVE_PLOTS = {
    "deletion_mean": ("deletion_curves.png", "deletion (mean reference): most relevant first; lower is better"),
    "insertion_lrf": ("insertion_curves.png", "insertion (LRF): least relevant first; higher is better"),
}


def summarise(results: list[MethodResult], forward_seconds: float, compared: list[str], metrics=METRICS) -> dict:
    """The numbers of the report: the metrics' definitions; per method, each metric's mean and standard error,
    the time per image and its cost in classifier forwards; per method in ``compared``, its paired difference
    with every other."""
    by_name = {result.name: result for result in results}
    methods = {
        result.name: {
            "metrics": {m: {"mean": result.mean(m), "se": result.standard_error(m)} for m in metrics},
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
            for metric, definition in metrics.items():
                difference, se = paired_difference(by_name[name].scores[metric], other.scores[metric])
                paired[name][other.name][metric] = {
                    "difference": difference,
                    "se": se,
                    "verdict": verdict(difference, se, definition.high_is_good),
                }
    definitions = {
        name: {"short_name": m.short_name, "high_is_good": m.high_is_good, "description": m.description}
        for name, m in metrics.items()
    }
    return {
        "metrics": definitions,
        "forward_ms_per_image": 1000 * forward_seconds,
        "methods": methods,
        "paired": paired,
    }


def macro_summary(
    results_by_world: dict[str, list[MethodResult]],
    forward_seconds: dict[str, float],
    compared: list[str],
    metrics=METRICS,
) -> dict:
    """The numbers of the macro table: :func:`summarise` over every world's images pooled, with each world's
    means kept under ``"per_world"``. Every world must score the same methods on as many images, so that a
    pooled mean is the mean over worlds of the per-world means and the paired differences stay paired."""
    worlds = list(results_by_world)
    names = [result.name for result in results_by_world[worlds[0]]]
    counts = {world: len(next(iter(results[0].scores.values()))) for world, results in results_by_world.items()}
    if (
        any([result.name for result in results] != names for results in results_by_world.values())
        or len(set(counts.values())) != 1
    ):
        raise ValueError(f"every world must score the same methods on as many images; got images per world {counts}")
    pooled = []
    for index, name in enumerate(names):
        per_world = [results_by_world[world][index] for world in worlds]
        scores = {m: torch.cat([result.scores[m] for result in per_world]) for m in metrics}
        seconds = sum(result.seconds_per_image for result in per_world) / len(worlds)
        pooled.append(MethodResult(name, scores, {}, seconds, maps=torch.empty(0)))
    summary = summarise(pooled, sum(forward_seconds.values()) / len(worlds), compared, metrics)
    summary["per_world"] = {
        world: {result.name: {m: result.mean(m) for m in metrics} for result in results}
        for world, results in results_by_world.items()
    }
    return summary


def _best(methods: dict, metric: str, high_is_good: bool) -> float:
    values = [m["metrics"][metric]["mean"] for m in methods.values()]
    return max(values) if high_is_good else min(values)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


#: context entries the report lists under its title, in order
CONTEXT_LINES = {
    "command": "Command",
    "note": "Note",
    "classifier": "Classifier",
    "explainer": "Explainer",
    "evaluation": "Evaluation",
    "machine": "Machine",
    "versions": "Versions",
    "run_time": "Run time",
}


def markdown(summary: dict, context: dict) -> str:
    """``results.md``: ``context["title"]``, the settings, the table of every method and metric, and the paired
    differences (the macro report too, with its per-world table)."""
    methods, metrics = summary["methods"], summary["metrics"]
    short = {name: metric["short_name"] for name, metric in metrics.items()}
    listed = [
        f"{label}: `{context[key]}`" if key == "command" else f"{label}: {context[key]}"
        for key, label in CONTEXT_LINES.items()
        if key in context
    ]
    lines = [
        f"# {context['title']}",
        "",
        *(line + "  " for line in listed[:-1]),
        *listed[-1:],
        "",
        "Mean over the evaluation images ± standard error; ↓ lower is better, ↑ higher is better; the best mean "
        "of each column in bold. Time: attribution alone, per image, at the evaluation batch size; cost: that "
        f"time over one classifier forward ({summary['forward_ms_per_image']:.2f} ms per image).",
        "",
    ]
    rows = []
    for name, method in methods.items():
        cells = []
        for metric, definition in metrics.items():
            mean, se = method["metrics"][metric]["mean"], method["metrics"][metric]["se"]
            text = f"{mean:.3f} ± {se:.3f}"
            best = _best(methods, metric, definition["high_is_good"])
            cells.append(f"**{text}**" if math.isclose(mean, best, abs_tol=5e-4) else text)
        rows.append([name, *cells, f"{method['ms_per_image']:.1f}", f"{method['cost_in_forwards']:.2f}"])
    lines += table(["method", *short.values(), "ms / image", "cost (forwards)"], rows)
    if "per_world" in summary:
        lines += ["", "## Each world's means", ""]
        for world, means in summary["per_world"].items():
            rows = [[name, *(f"{values[m]:.3f}" for m in metrics)] for name, values in means.items()]
            lines += [f"### {world}", "", *table(["method", *short.values()], rows), ""]
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
        for other, comparisons in others.items():
            cells = []
            for metric in metrics:
                entry = comparisons[metric]
                text = f"{entry['difference']:+.3f} ± {entry['se']:.3f}"
                cells.append({"better": f"**{text}**", "worse": f"*{text}*"}.get(entry["verdict"], text))
            rows.append([other, *cells])
        lines += table(["vs", *short.values()], rows)
    if "per_world" not in summary:
        pictures = " ".join(f"![{title}]({file})" for file, title in CURVE_PLOTS.values())
        lines += ["", pictures, "", "![overlays](overlays.png)"]
    return "\n".join(lines) + "\n"


def overlay_grid(
    results: list[MethodResult], images: list[Image.Image], masks: np.ndarray, rows: int = 6
) -> Image.Image:
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


def write_macro_report(output_dir, summary: dict, context: dict) -> None:
    """Write the macro table over worlds, ``macro.json`` and ``macro.md``, into ``output_dir`` (the user's --output,
    which may itself be a link)."""
    os.makedirs(output_dir, exist_ok=True)
    write_text(os.path.join(output_dir, "macro.json"), json.dumps({"context": context, **summary}, indent=2))
    write_text(os.path.join(output_dir, "macro.md"), markdown(summary, context))


def write_report(output_dir, results: list[MethodResult], summary: dict, context: dict, images, masks) -> None:
    """Write ``results.json``, ``results.md``, ``deletion_curves.png``, ``insertion_curves.png`` and
    ``overlays.png`` into ``output_dir``."""
    output_dir = make_folder(str(output_dir))
    write_text(os.path.join(output_dir, "results.json"), json.dumps({"context": context, **summary}, indent=2))
    write_text(os.path.join(output_dir, "results.md"), markdown(summary, context))
    for curve, (file, title) in CURVE_PLOTS.items():
        figure = curve_plot({result.name: result.curves[curve] for result in results}, title=title)
        figure.set_size_inches(6.4, 4.8)
        write_file(os.path.join(output_dir, file), lambda handle: figure.savefig(handle, format="png"))
    picture = overlay_grid(results, images, masks)
    write_file(os.path.join(output_dir, "overlays.png"), lambda handle: picture.save(handle, format="PNG"))


def write_scores(output_dir, results: list[MethodResult], forward_seconds: float) -> None:
    """Every method's per-image scores into ``output_dir/scores.safetensors``: a (N,) float64 tensor
    ``"METHOD/METRIC"`` each, the methods in order, their seconds per image and the classifier's seconds per forward
    per image in the metadata; :func:`read_scores` reads them back for the macro table."""
    write_safetensors(
        os.path.join(make_folder(str(output_dir)), SCORES_FILE),
        # copies: a result's metrics may be views of one tensor, which safetensors refuses to store twice
        {f"{r.name}/{metric}": values.clone() for r in results for metric, values in r.scores.items()},
        {
            "methods": json.dumps([result.name for result in results]),
            "seconds_per_image": json.dumps([result.seconds_per_image for result in results]),
            "forward_seconds": json.dumps(forward_seconds),
        },
    )


def read_scores(output_dir, metrics=METRICS) -> tuple[list[MethodResult], float]:
    """The per-image scores :func:`write_scores` wrote in ``output_dir``, as results without curves or maps, and the
    classifier's seconds per forward per image."""
    with safe_open(os.path.join(output_dir, SCORES_FILE), framework="pt") as stored:
        metadata = stored.metadata()
        names, seconds = json.loads(metadata["methods"]), json.loads(metadata["seconds_per_image"])
        results = [
            MethodResult(name, {m: stored.get_tensor(f"{name}/{m}") for m in metrics}, {}, time, maps=torch.empty(0))
            for name, time in zip(names, seconds)
        ]
    return results, json.loads(metadata["forward_seconds"])
