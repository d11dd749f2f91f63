"""Ablations of the explainer on AHA Shapes: one change per row, same data, classifier, steps and seed.

    python benchmarks/ablation_shapes.py --demo_dir aha-demo [--steps 600] [--rows default second_class ...]

Uses the data and classifier that ``aha demo --output DEMO_DIR`` cached. Each row trains an explainer with the
library's own ``aha train`` (in this process) for ``--steps`` optimiser steps of ``--batch_size`` images, then
explains the first ``--eval_images`` test images (predicted class) and scores them with the exact metrics of
``aha.demo.method_comparison`` (the demo's). Results go to ``--output`` (default benchmarks/results/ablation_shapes.json)
as per-image scores, so rows can be compared by paired differences; ``--markdown`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import datasets
import torch
from torch import nn
from transformers import AutoImageProcessor

from aha import AHAExplainer
from aha.demo.classifier import tensors_of
from aha.demo.method_comparison import METRICS, compared_mean, score_maps
from aha.demo.report import table
from aha.modeling.modeling_aha import AHADecoder
from aha.persistence.atomic_writer import write_text
from aha.ranking.objectives import RankingObjective
from aha.training import DataArguments, ModelArguments, OptimisationArguments, RunArguments, as_flags, train


HERE = Path(__file__).resolve().parent

#: the default training recipe of the rows (each row changes one thing)
BASE = dict(learning_rate=3e-3, config={})
#: row -> (what changes, aha train learning rate, AHAConfig overrides, decoder). The rows of the "conv" pixel head
#: (old_decoder, no_image_branch, budget_0.08, wider_decoder, space_to_depth, space_to_depth_2, conv_head) went with
#: it; their results stay in benchmarks/results/ and benchmarks/RESULTS.md.
ROWS = {
    "default": ("the library's defaults", None, {}, "default"),
    "additive_class": ("additive class embedding instead of FiLM", None, {}, "additive"),
    "all_references": (
        'references drawn among "mean", "black" and "blur" (the paper)',
        None,
        {"references": ["mean", "black", "blur"]},
        "default",
    ),
    "mean_blur": ('references drawn among "mean" and "blur"', None, {"references": ["mean", "blur"]}, "default"),
    "mean_black": ('references drawn among "mean" and "black"', None, {"references": ["mean", "black"]}, "default"),
    "blur_only": ('reference "blur" only', None, {"references": ["blur"]}, "default"),
    "black_only": ('reference "black" only', None, {"references": ["black"]}, "default"),
    "lr_1e-3": ("learning rate 1e-3", 1e-3, {}, "default"),
    "fractions_16": ("16 fractions per curve (the paper) instead of 8", None, {"num_fractions": 16}, "default"),
    "second_class": (
        "a second class per image (runner-up or label, the paper)",
        None,
        {"second_class": True},
        "default",
    ),
    "deletion_only": ("no least-relevant-first term", None, {"lrf_insertion_weight": 0.0}, "default"),
    "rise_term": ("RISE-insertion term added (weight 1)", None, {"rise_insertion_weight": 1.0}, "default"),
    "no_peak": ("no peak penalty", None, {"peak_weight": 0.0}, "default"),
    "wider_guided": (
        "the guided head at twice the default fusion width (fusion_channels 64)",
        None,
        {"fusion_channels": 64},
        "default",
    ),
    "guided_2_blocks": (
        "two residual units on the token grid before the guided head",
        None,
        {},
        "two_blocks",
    ),
    "random_fractions": (
        "the curves' 6 interior fractions drawn each step (stratified: one uniform draw in each of 6 "
        "equal bins), so training sees every fraction; same cost",
        None,
        {},
        "random_fractions",
    ),
    "cosine_fractions": (
        "the curves' 8 fractions cosine-spaced, (1 - cos(pi k / 7)) / 2: denser at both ends (0.05, 0.19, ..., "
        "0.95 inside), where deletion and least-relevant-first curves fall for small objects; same cost",
        None,
        {},
        "cosine_fractions",
    ),
    "tempered_4": (
        "the objective's curves scored as the target's softmax probability at temperature 4 (logits / 4): less "
        "saturated where the classifier is sure, so a ranking whose curve stays at 1 still gets a gradient; the "
        "metrics unchanged",
        None,
        {},
        "tempered_4",
    ),
    "tempered_16": ("as tempered_4, at temperature 16", None, {}, "tempered_16"),
    "finest_grid": (
        "the ranking grid always at its finest (cells of half a patch) instead of drawn from 0.5-2 patches",
        None,
        {"grid_cell_patches": [0.5, 0.5]},
        "default",
    ),
    "blurred_guide": (
        "the guided head's colour term reads the image blurred by sigma 1.5 px, in training and at inference (the "
        "default since 2026-12-07; the suite's default rows before that date read the image itself)",
        None,
        {"guide_blur_sigma": 1.5},
        "default",
    ),
    "sharp_guide": (
        "the guided head's colour term reads the image itself (the default before 2026-12-07)",
        None,
        {"guide_blur_sigma": 0.0},
        "default",
    ),
    "blurred_guide_1": ("as blurred_guide, at sigma 1 px", None, {"guide_blur_sigma": 1.0}, "default"),
}


class StratifiedFractions(RankingObjective):
    """The objective with its curves' interior fractions drawn each training step, one uniformly in each of
    ``num_fractions - 2`` equal bins of (0, 1), and the AUC integrated over them; evenly spaced without noise."""

    def curve_fractions(self, device, generator=None):
        if generator is None:
            return super().curve_fractions(device)
        bins = self.config.num_fractions - 2
        offsets = torch.rand(bins, generator=generator, device=generator.device).to(device)
        interior = (torch.arange(bins, device=device) + offsets) / bins
        return interior, torch.cat([interior.new_zeros(1), interior, interior.new_ones(1)])


class CosineFractions(RankingObjective):
    """The objective with its curves' ``num_fractions`` fractions cosine-spaced on [0, 1] (Chebyshev-Lobatto
    points, symmetric, so the least-relevant-first curve is as dense near its end as deletion near its start),
    and the AUC integrated over them."""

    def curve_fractions(self, device, generator=None):
        steps = torch.linspace(0, math.pi, self.config.num_fractions, device=device, dtype=torch.float64)
        fractions = ((1 - torch.cos(steps)) / 2).float()
        fractions[0], fractions[-1] = 0.0, 1.0
        return fractions[1:-1], fractions


class TemperedObjective(RankingObjective):
    """The objective with the classifier's logits divided by ``temperature`` before the softmax it scores."""

    def __init__(self, config, patch_size, temperature: float):
        super().__init__(config, patch_size=patch_size)
        self.temperature = temperature

    def __call__(self, classifier, *args, clean_logits=None, **kwargs):
        tempered = Tempered(classifier, self.temperature)
        if clean_logits is not None:
            clean_logits = clean_logits / self.temperature
        return super().__call__(tempered, *args, clean_logits=clean_logits, **kwargs)


class Tempered(nn.Module):
    """``classifier`` with its logits divided by ``temperature``."""

    def __init__(self, classifier: nn.Module, temperature: float):
        super().__init__()
        self.classifier, self.temperature = classifier, temperature

    def forward(self, pixel_values):
        output = self.classifier(pixel_values=pixel_values)
        return SimpleNamespace(logits=output.logits / self.temperature)


def change_decoder(explainer: AHAExplainer, variant: str) -> None:
    """Swap or alter the freshly initialised decoder of ``explainer`` for an ablation row."""
    decoder = explainer.decoder
    if variant == "two_blocks":
        explainer.decoder = AHADecoder(
            [n.normalized_shape[0] for n in decoder.norms],
            explainer.num_labels,
            decoder.projection.out_channels,
            decoder.to_head.out_features - 1,
            num_blocks=2,
        )
        explainer.decoder.apply(explainer._init_weights)
    elif variant == "additive":
        decoder.film = ShiftOnly(decoder.film)
    elif variant == "random_fractions":
        explainer.objective = StratifiedFractions(explainer.config, patch_size=explainer.classifier_spec.patch_size)
    elif variant.startswith("tempered_"):
        explainer.objective = TemperedObjective(
            explainer.config, explainer.classifier_spec.patch_size, float(variant.split("_")[1])
        )
    elif variant == "cosine_fractions":
        explainer.objective = CosineFractions(explainer.config, patch_size=explainer.classifier_spec.patch_size)


class ShiftOnly(nn.Module):
    """FiLM without its scales: the class embedding only shifts the features (additive conditioning)."""

    def __init__(self, film: nn.Linear):
        super().__init__()
        self.film = film

    def forward(self, embedding):
        scales, shifts = self.film(embedding).chunk(2, dim=1)
        return torch.cat([torch.zeros_like(scales), shifts], dim=1)


def run_row(
    name: str, args, classifier_dir: Path, data_dir: Path, pixel_values, labels, masks, processor, metrics=METRICS
) -> dict:
    what, learning_rate, overrides, variant = ROWS[name]
    output = Path(args.work_dir) / name
    arguments = (
        DataArguments(dataset_path=str(data_dir), validation_split="none"),
        ModelArguments(model_name_or_path=str(classifier_dir), explainer_config=overrides),
        OptimisationArguments(
            max_train_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=learning_rate or BASE["learning_rate"],
            gradient_checkpointing=False,
            seed=args.seed,
        ),
        RunArguments(output_dir=str(output), overwrite_output_dir=True, checkpointing_steps=args.steps),
    )
    original = AHAExplainer.from_classifier.__func__

    def from_classifier(cls, *a, **k):
        explainer = original(cls, *a, **k)
        change_decoder(explainer, variant)
        return explainer

    AHAExplainer.from_classifier = classmethod(from_classifier)
    try:
        start = time.perf_counter()
        explainer = train(*arguments)
        seconds = time.perf_counter() - start
    finally:
        AHAExplainer.from_classifier = classmethod(original)
    explainer.eval()
    with torch.no_grad():
        maps = torch.cat([explainer.explain(batch) for batch in pixel_values.split(50)])
    scores, _ = score_maps(explainer.classifier, pixel_values, labels, masks, maps, processor, metrics=metrics)
    return {
        "what": what,
        "argv": as_flags(*arguments),
        "train_seconds": seconds,
        "scores": {k: v.tolist() for k, v in scores.items()},
    }


def markdown(results: dict, reference: str = "default") -> str:
    short = [METRICS[m].short_name.rstrip(" ↑↓").replace("Mask AUROC", "AUROC") for m in METRICS]
    base = {k: torch.tensor(v) for k, v in results[reference]["scores"].items()}
    rows = [
        [
            name,
            row["what"],
            *(
                compared_mean(
                    torch.tensor(row["scores"][metric]),
                    None if name == reference else base[metric],
                    definition.high_is_good,
                )
                for metric, definition in METRICS.items()
            ),
            f"{row['train_seconds']:.0f}",
        ]
        for name, row in results.items()
    ]
    return "\n".join(table(["row", "change", *short, "train s"], rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--demo_dir", default="aha-demo", help="An `aha demo --output` folder (its data and classifier)."
    )
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--eval_images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="/tmp/aha-ablation")
    parser.add_argument("--output", default=str(HERE / "results" / "ablation_shapes.json"))
    parser.add_argument("--markdown", action="store_true", help="Only print the table of --output.")
    args = parser.parse_args()
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.is_file() else {}
    if args.markdown:
        print(markdown(results))
        return
    demo = Path(args.demo_dir)
    processor = AutoImageProcessor.from_pretrained(demo / "classifier")
    test = datasets.load_from_disk(str(demo / "data"))["test"].select(range(args.eval_images))
    pixel_values, labels, masks = tensors_of(test, processor)
    for name in args.rows:
        print(f"== {name}: {ROWS[name][0]}", file=sys.stderr)
        results[name] = run_row(name, args, demo / "classifier", demo / "data", pixel_values, labels, masks, processor)
        results[name]["settings"] = {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "eval_images": args.eval_images,
            "torch": torch.__version__,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        write_text(output, json.dumps(results))
        summary = {k: round(sum(v) / len(v), 4) for k, v in results[name]["scores"].items()}
        print(name, round(results[name]["train_seconds"]), summary, flush=True)
    if "default" in results:
        print(markdown(results))


if __name__ == "__main__":
    main()
