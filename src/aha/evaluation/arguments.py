"""Arguments of ``aha evaluate``: one dataclass read by transformers' ``HfArgumentParser`` (every value parsed by its
declared type: ``--streaming false`` is false), and the checks that need nothing but the arguments."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Literal

from transformers import HfArgumentParser

from ..training.arguments import config_override
from ..typed_options import option, parse_option, repeated_option, required_option


#: the metric settings of each convention (see aha.metrics.protocol): the ``PerturbationProtocol`` fields, and the metrics
#: measured when ``--metrics`` is not given
PROTOCOLS = {
    "paper": ({}, ("deletion", "insertion", "positive", "negative")),
    "rise": (dict(insertion_convention="rise"), ("deletion", "insertion")),
    "chefer": ("chefer", ("positive", "negative")),
}

#: options that do not change any per-image result: a stopped run may be resumed with other values
OPERATIONAL_ARGS = frozenset(
    {
        "output_dir",
        "batch_size",
        "chunk_size",
        "max_samples",
        "push_to_hub",
        "update_card",
        "hub_model_id",
        "hub_token",
    }
)
#: options that never reach a saved file, a log or a card
SECRET_ARGS = frozenset({"hub_token"})


@dataclass
class EvaluateArguments:
    model: str = required_option(
        "A saved AHA explainer (folder or Hub id), or a plain image classifier for the model-agnostic methods."
    )
    output_dir: str = required_option(
        "Where the per-image results, the summary and the run's journal are written (a stopped run resumes there)."
    )
    classifier: str | None = option(
        "The classifier to explain (default: the explainer's own, or --model when it is a classifier); an explainer "
        "made for another classifier is refused."
    )
    dataset_name: str | None = option("Hub dataset id.")
    dataset_config_name: str | None = option("Configuration of the Hub dataset.")
    streaming: bool = option("Stream the Hub dataset instead of downloading it.", default=False)
    dataset_path: str | None = option("A dataset saved with `save_to_disk`.")
    validation_dir: str | None = option(
        "An image folder laid out <dir>/<class name>/<image> (its split is called validation)."
    )
    split: str = option("The split to evaluate on.", default="validation")
    image_column_name: str = option("Column holding the images.", default="image")
    label_column_name: str = option(
        "Column holding the labels (needed by --target label and the positive / negative perturbation).",
        default="label",
    )
    mask_column_name: str = option(
        "Column holding the object masks, read by the localisation metrics (pointing_game, mask_auroc) only: one "
        'binary mask per row at its image\'s size (an image of mode "1", or 0/1 or 0/255 values), resized and '
        "cropped with its image (nearest-neighbour).",
        default="mask",
    )
    methods: str = option(
        "Comma-separated methods of aha.baselines.get_attributor: aha, random, centre, rollout, chefer, gradcam, "
        "integrated_gradients, occlusion, rise.",
        default="aha",
    )
    method_option: list[str] = repeated_option(
        "An option of one method, e.g. --method_option rise.n_masks=1000 (repeatable; values read as JSON when they "
        "parse, then by the option's declared type).",
        metavar="METHOD.KEY=VALUE",
    )
    refine_steps: int = option("Test-time refinement steps of AHA.", default=0)
    metrics: str | None = option(
        "Comma-separated metrics of aha.metrics (default: the protocol's; `aha evaluate --help` lists them); "
        "pointing_game and mask_auroc need a mask column (--mask_column_name)."
    )
    protocol: Literal["paper", "rise", "chefer"] = option(
        "Metric settings: paper (mean reference, 21 fractions, least-relevant-first insertion), rise (RISE's "
        "insertion from the blurred image), chefer (black reference, fractions 0..0.9, top-1 accuracy).",
        default="paper",
    )
    target: Literal["predicted", "label"] = option(
        "The class explained and scored: the classifier's prediction or the ground-truth label.", default="predicted"
    )
    max_samples: int | None = option("Evaluate the first N images of the split.")
    batch_size: int = option("Images per attribution call, per process.", default=8)
    chunk_size: int = option("Perturbed images per classifier forward in the metrics.", default=64)
    seed: int = option(
        "Seed of every random draw (the ranking's tie-break; per image: random maps, RISE masks, ROAD noise, ...).",
        default=0,
    )
    update_card: str | None = option(
        "An explainer folder whose README.md model card gets AHA's results as eval results (created if absent)."
    )
    push_to_hub: bool = option(
        "Write AHA's results into the model card of the explainer's Hub repo (--hub_model_id, default --model).",
        default=False,
    )
    hub_model_id: str | None = option("The Hub repo whose card --push_to_hub updates.")
    hub_token: str | None = option("Hub token (default: the `hf auth login` one).")


class EvaluateArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` of :class:`EvaluateArguments` returning one namespace; argument errors exit with status 2
    and a one-line message."""

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        namespace = super().parse_args(sys.argv[1:] if args is None else list(args), namespace)
        namespace.method_option = [
            item for value in namespace.method_option for item in (value if isinstance(value, list) else [value])
        ]
        try:
            return validate_args(namespace)
        except ValueError as error:
            self.error(str(error))


def build_parser() -> EvaluateArgumentParser:
    from ..metrics import LOCALISATION_METRICS  # the registries import torch and the metric engine
    from .scoring import metric_names

    parser = EvaluateArgumentParser(
        EvaluateArguments,
        prog="aha evaluate",
        description="Score attribution methods with the library's exact metrics on a dataset split, on one process or "
        f"under `accelerate launch`. Metrics: {', '.join(metric_names())} "
        f"({' and '.join(LOCALISATION_METRICS)} score localisation against object masks: they need a mask "
        "column, --mask_column_name).",
    )
    return parser


def method_options(entries: list[str], methods: list[str]) -> dict[str, dict[str, object]]:
    """``--method_option METHOD.KEY=VALUE`` entries -> {method: {key: value}} (values as JSON when they parse; each is
    parsed by its declared type when the method is built). Raises ValueError for a method not evaluated."""
    options: dict[str, dict[str, object]] = {method: {} for method in methods}
    for entry in entries:
        name, value = config_override(entry)
        method, dot, key = name.partition(".")
        if not dot or not key:
            raise ValueError(f"--method_option expects METHOD.KEY=VALUE, got {entry!r}")
        if method not in options:
            raise ValueError(f"--method_option {entry!r}: {method!r} is not among --methods {methods}")
        options[method][key] = value
    return options


def validate_args(args: argparse.Namespace) -> argparse.Namespace:
    """Checks that need only the arguments; returns a copy with ``methods`` and ``metrics`` as lists and
    ``method_option`` as {method: {key: value}}. Raises ValueError naming the flag."""
    from .scoring import check_methods, metric_names

    args = argparse.Namespace(**vars(args))
    sources = [flag for flag in ("dataset_name", "dataset_path", "validation_dir") if getattr(args, flag) is not None]
    if len(sources) != 1:
        raise ValueError(
            f"give one data source: --dataset_name, --dataset_path or --validation_dir (got {len(sources)})"
        )
    if args.streaming and args.dataset_name is None:
        raise ValueError(
            "--streaming reads Hub datasets (--dataset_name); local folders and saved datasets are map-style"
        )
    for flag in ("batch_size", "chunk_size", "max_samples"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag} must be >= 1, got {value}")
    if args.refine_steps < 0:
        raise ValueError(f"--refine_steps must be >= 0, got {args.refine_steps}")
    args.methods = _names(args.methods, "--methods")
    check_methods(args.methods)
    args.metrics = _names(args.metrics, "--metrics") if args.metrics is not None else list(PROTOCOLS[args.protocol][1])
    unknown = [name for name in args.metrics if name not in metric_names()]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; expected some of {', '.join(metric_names())}")
    args.method_option = method_options(args.method_option, args.methods)
    if (args.update_card is not None or args.push_to_hub) and "aha" not in args.methods:
        raise ValueError("--update_card and --push_to_hub record AHA's results: add aha to --methods")
    return args


def _names(text: str, flag: str) -> list[str]:
    names = [name.strip() for name in parse_option(flag, text, str).split(",") if name.strip()]
    if not names:
        raise ValueError(f"{flag} names nothing")
    if len(set(names)) != len(names):
        raise ValueError(f"{flag} names a method or metric twice: {text!r}")
    return names


def result_settings(args: argparse.Namespace) -> dict:
    """The arguments that decide the per-image results (a resumed run must have the same)."""
    return {key: value for key, value in sorted(vars(args).items()) if key not in OPERATIONAL_ARGS}
