"""The summary of a run, computed from the per-image rows alone (so it is the same however the work was split):
per method and metric the mean and its standard error, and for every pair of methods the mean paired difference
over the same images with its standard error. A method "beats" another only where that difference exceeds two
standard errors in the metric's good direction; otherwise the two tie. Also the model card's eval results."""

from __future__ import annotations

import itertools
import math
import os

import torch
from huggingface_hub import EvalResult, ModelCard

from ..demo.method_comparison import paired_difference, verdict
from ..persistence.atomic_writer import write_text
from ..persistence.model_cards import faithfulness_results, model_card
from .arguments import PROTOCOLS


#: metric name -> the key :func:`aha.persistence.model_cards.faithfulness_results` records it under
CARD_KEYS = {
    "deletion": "deletion_auc",
    "insertion": "insertion_auc",
    "positive": "positive_auc",
    "negative": "negative_auc",
}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN: an undefined value is null


def _column(rows: list[dict], method: str, metric: str) -> dict[int, float]:
    return {row["index"]: row[metric] for row in rows if row["method"] == method and row[metric] is not None}


def summarise(rows: list[dict], methods: list[str], directions: dict[str, bool], settings: dict) -> dict:
    """The summary of the per-image ``rows`` (as :func:`~aha.evaluation.journal.merged_rows` returns them).

    Args:
        methods: the methods, in the order of the run.
        directions: metric -> True when high is good, for the run's metrics in order.
        settings: what was measured (protocol, target, dataset, split, seed), recorded as it is.
    Returns:
        ``{"settings", "images", "metrics": {metric: {"higher_is_better"}}, "results": {method: {metric: {"mean",
        "standard_error", "images"}}}, "paired_differences": [{"metric", "method", "other", "difference",
        "standard_error", "verdict"}]}``; ``verdict`` is ``"better"`` / ``"worse"`` (``method`` against ``other``) or
        ``"tie"``; an undefined statistic (one image) is null.
    """
    results, differences = {}, []
    for method in methods:
        results[method] = {}
        for metric in directions:
            values = torch.tensor(list(_column(rows, method, metric).values()), dtype=torch.float64)
            error = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else math.nan
            results[method][metric] = {
                "mean": _finite(values.mean().item()) if len(values) else None,
                "standard_error": _finite(error),
                "images": len(values),
            }
    for metric, high_is_good in directions.items():
        for method, other in itertools.combinations(methods, 2):
            a, b = _column(rows, method, metric), _column(rows, other, metric)
            common = sorted(set(a) & set(b))
            if len(common) < 2:
                continue
            difference, error = paired_difference(
                torch.tensor([a[i] for i in common], dtype=torch.float64),
                torch.tensor([b[i] for i in common], dtype=torch.float64),
            )
            differences.append(
                {
                    "metric": metric,
                    "method": method,
                    "other": other,
                    "images": len(common),
                    "difference": difference,
                    "standard_error": error,
                    "verdict": verdict(difference, error, high_is_good),
                }
            )
    return {
        "settings": settings,
        "images": len({row["index"] for row in rows}),
        "metrics": {metric: {"higher_is_better": high_is_good} for metric, high_is_good in directions.items()},
        "results": results,
        "paired_differences": differences,
    }


def markdown(summary: dict) -> str:
    """The summary as a markdown report: a table of means +- standard errors, then the paired comparisons."""
    settings, metrics = summary["settings"], summary["metrics"]
    lines = [
        f"# aha evaluate: {settings['dataset']} ({settings['split']}), {summary['images']} images",
        "",
        f"Protocol `{settings['protocol']}`, target `{settings['target']}`, seed {settings['seed']}. "
        "Each cell: mean +- standard error over the images; arrows give the good direction.",
        "",
        "| method | "
        + " | ".join(f"{metric} {'↑' if m['higher_is_better'] else '↓'}" for metric, m in metrics.items())
        + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]

    def cell(result: dict) -> str:
        if result["mean"] is None:
            return "n/a"
        error = "" if result["standard_error"] is None else f" +- {result['standard_error']:.4f}"
        return f"{result['mean']:.4f}{error}"

    for method, by_metric in summary["results"].items():
        lines.append(f"| {method} | " + " | ".join(cell(by_metric[metric]) for metric in metrics) + " |")
    if summary["paired_differences"]:
        lines += [
            "",
            "Paired differences (method - other, same images); a method beats another only where the "
            "difference exceeds two standard errors in the good direction.",
            "",
        ]
        for entry in summary["paired_differences"]:
            outcome = {
                "better": f"{entry['method']} beats {entry['other']}",
                "worse": f"{entry['other']} beats {entry['method']}",
            }.get(entry["verdict"], "tie")
            lines.append(
                f"- {entry['metric']}: {entry['method']} - {entry['other']} = {entry['difference']:+.4f} "
                f"+- {entry['standard_error']:.4f}: {outcome}"
            )
    return "\n".join(lines) + "\n"


def card_results(summary: dict, dataset: str, dataset_name: str, dataset_config: str | None) -> list[EvalResult]:
    """AHA's means as ``EvalResult`` s (:func:`aha.persistence.model_cards.faithfulness_results`): the positive / negative perturbation
    always; deletion / insertion under the paper and RISE protocols (under Chefer's they are not the card's
    metrics)."""
    settings = summary["settings"]
    fields, _ = PROTOCOLS[settings["protocol"]]
    keys, convention = dict(CARD_KEYS), "lrf"
    if fields == "chefer":
        keys = {name: key for name, key in keys.items() if name in ("positive", "negative")}
    else:
        convention = fields.get("insertion_convention", convention)
    means = {
        key: summary["results"]["aha"][name]["mean"] for name, key in keys.items() if name in summary["results"]["aha"]
    }
    means = {key: value for key, value in means.items() if value is not None}
    if not means:
        raise ValueError(f"the model card records {sorted(keys)}: none was measured (--metrics)")
    return faithfulness_results(
        means,
        dataset=dataset,
        split=settings["split"],
        reference="mean",
        target=settings["target"],
        insertion_convention=convention,
        dataset_name=dataset_name,
        dataset_config=dataset_config,
    )


def merge_results(existing: list[EvalResult] | None, new: list[EvalResult]) -> list[EvalResult]:
    """``existing`` with each result of ``new`` replacing the one that measures the same thing
    (``EvalResult.is_equal_except_value``), the others appended."""
    merged = list(existing or [])
    for result in new:
        same = [i for i, old in enumerate(merged) if result.is_equal_except_value(old)]
        if same:
            merged[same[0]] = result
        else:
            merged.append(result)
    return merged


def update_card(folder: str, results: list[EvalResult], config) -> ModelCard:
    """Write ``results`` into ``folder/README.md`` (the card made by :func:`aha.persistence.model_cards.model_card` for ``config`` when
    there is none), atomically; returns the card."""
    path = os.path.join(folder, "README.md")
    if os.path.isfile(path):
        card = ModelCard.load(path)
        card.data.eval_results = merge_results(card.data.eval_results, results)
        if card.data.model_name is None:
            card.data.model_name = os.path.basename(os.path.normpath(folder))
    else:
        card = model_card(config, repo_id=os.path.basename(os.path.normpath(folder)), eval_results=results)
    write_text(path, str(card))
    return card
