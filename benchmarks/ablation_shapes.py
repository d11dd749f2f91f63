"""Ablations of the explainer on AHA Shapes: one change per row, same data, classifier, steps and seed.

    python benchmarks/ablation_shapes.py --demo_dir aha-demo [--steps 600] [--rows default old_decoder ...]

Uses the data and classifier that ``aha demo --output DEMO_DIR`` cached. Each row trains an explainer with the
library's own ``aha train`` (in this process) for ``--steps`` optimiser steps of ``--batch_size`` images, then
explains the first ``--eval_images`` test images (predicted class) and scores them with the exact metrics of
``aha.demo.method_comparison`` (the demo's). Results go to ``--output`` (default benchmarks/results/ablation_shapes.json)
as per-image scores, so rows can be compared by paired differences; ``--markdown`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoImageProcessor

from aha import AHAExplainer
from aha.demo.classifier import tensors_of
from aha.demo.method_comparison import METRICS, compared_mean, score_maps
from aha.demo.report import table
from aha.objectives import RankingObjective
from aha.training import DataArguments, ModelArguments, OptimisationArguments, RunArguments, as_flags, train


HERE = Path(__file__).resolve().parent

#: the default training recipe of the rows (each row changes one thing)
BASE = dict(learning_rate=3e-3, config={})
#: the rows that change the "conv" pixel head (the default before the "guided" head) set it
CONV = {"pixel_head": "conv"}
#: row -> (what changes, aha train learning rate, AHAConfig overrides, decoder)
ROWS = {
    "default": ("the library's defaults", None, {}, "default"),
    "old_decoder": (
        "the DPT-style decoder of v0.1 (pyramid x4..x0.5, additive class embedding, no image branch)",
        None,
        CONV,
        "dpt",
    ),
    "no_image_branch": ("the conv head without its full-resolution image branch", None, CONV, "no_image_branch"),
    "additive_class": ("additive class embedding instead of FiLM", None, {}, "additive"),
    "all_references": (
        'references drawn among "mean", "black" and "blur" (the paper)',
        None,
        {"references": ["mean", "black", "blur"]},
        "default",
    ),
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
    "budget_0.08": (
        "decoder_flops_budget 0.08: widths, blocks and image-branch stride chosen to cost <= 8% of the "
        "classifier (aha.decoder_budget), conv head",
        None,
        {**CONV, "decoder_flops_budget": 0.08},
        "default",
    ),
    "wider_decoder": (
        "the conv head at twice its default width (fusion_channels 64, head_channels 16)",
        None,
        {**CONV, "fusion_channels": 64, "head_channels": 16},
        "default",
    ),
    "wider_guided": (
        "the guided head at twice the default fusion width (fusion_channels 64)",
        None,
        {"fusion_channels": 64},
        "default",
    ),
    "space_to_depth": (
        "the conv head's image branch on a 4 x 4 space-to-depth of the image, twice the head width, 16 scores per "
        "position back to full resolution (benchmarks/explain_speed.py --space_to_depth times it)",
        None,
        CONV,
        "space_to_depth",
    ),
    "space_to_depth_2": (
        "the space_to_depth row's decoder on 2 x 2 blocks (4 scores per position)",
        None,
        CONV,
        "space_to_depth_2",
    ),
    "conv_head": (
        'pixel_head "conv", the default decoder before the guided head: image branch of two 3x3 '
        "convolutions at full resolution, two residual units on the token grid",
        None,
        CONV,
        "default",
    ),
    "guided_2_blocks": (
        "two residual units on the token grid before the guided head",
        None,
        {"decoder_blocks": 2},
        "default",
    ),
    "random_fractions": (
        "the curves' 6 interior fractions drawn each step (stratified: one uniform draw in each of 6 "
        "equal bins), so training sees every fraction; same cost",
        None,
        {},
        "random_fractions",
    ),
    "finest_grid": (
        "the ranking grid always at its finest (cells of half a patch) instead of drawn from 0.5-2 patches",
        None,
        {"grid_cell_patches": [0.5, 0.5]},
        "default",
    ),
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


class ReLUResidualUnit(nn.Module):
    """v0.1's fusion unit: x + conv(relu(conv(relu(x))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class DPTDecoder(nn.Module):
    """v0.1's decoder, kept here for its ablation row: per level a 1x1 projection plus a projection of the class
    embedding, resized to x4, x2, x1, x0.5 of the token grid, fused top-down by residual units, then a 3x3 conv,
    bilinear upsampling to the image size and a 3x3 conv to one score per pixel. It never sees the image."""

    def __init__(self, in_channels, num_labels, fusion_channels, head_channels, class_dim):
        super().__init__()
        self.class_embedding = nn.Embedding(num_labels, class_dim)
        self.projections = nn.ModuleList(nn.Conv2d(c, fusion_channels, 1) for c in in_channels)
        self.class_projections = nn.ModuleList(nn.Linear(class_dim, fusion_channels, bias=False) for _ in in_channels)
        self.fusions = nn.ModuleList(ReLUResidualUnit(fusion_channels) for _ in in_channels)
        self.head_conv = nn.Conv2d(fusion_channels, head_channels, 3, padding=1)
        self.out_conv = nn.Conv2d(head_channels, 1, 3, padding=1)

    def forward(self, features, classes, pixel_values):
        embedding = self.class_embedding(classes)
        levels = []
        for level, feature in enumerate(features):
            x = self.projections[level](feature) + self.class_projections[level](embedding)[:, :, None, None]
            scale = 4.0 / 2**level
            size = (max(1, round(feature.shape[-2] * scale)), max(1, round(feature.shape[-1] * scale)))
            levels.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        fused = self.fusions[-1](levels[-1])
        for level in range(len(levels) - 2, -1, -1):
            upsampled = F.interpolate(fused, size=levels[level].shape[-2:], mode="bilinear", align_corners=False)
            fused = self.fusions[level](levels[level] + upsampled)
        x = F.interpolate(
            F.relu(self.head_conv(fused)), size=pixel_values.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.out_conv(x).squeeze(1)


def change_decoder(explainer: AHAExplainer, variant: str) -> None:
    """Swap or alter the freshly initialised decoder of ``explainer`` for an ablation row."""
    decoder = explainer.decoder
    if variant == "dpt":
        explainer.decoder = DPTDecoder(
            [n.normalized_shape[0] for n in decoder.norms],
            explainer.num_labels,
            decoder.projection.out_channels,
            decoder.to_head.out_channels,
            decoder.class_embedding.embedding_dim,
        )
        explainer.decoder.apply(explainer._init_weights)
    elif variant == "no_image_branch":
        decoder.image_conv2 = ZeroBranch()
    elif variant == "additive":
        decoder.film = ShiftOnly(decoder.film)
    elif variant == "random_fractions":
        explainer.objective = StratifiedFractions(explainer.config, patch_size=explainer.classifier_spec.patch_size)
    elif variant.startswith("space_to_depth"):
        stride = (
            int(variant.rpartition("_")[2]) if variant[-1].isdigit() else explainer.classifier_spec.patch_size // 2
        )
        explainer.decoder = SpaceToDepthDecoder(decoder, stride=stride)
        explainer.decoder.apply(explainer._init_weights)


class SpaceToDepthDecoder(nn.Module):
    """The conv-head decoder with its image branch on an s x s space-to-depth of the image (each s x s block of pixels
    as 3 s^2 channels, at 1 / s^2 of the positions, twice the head width) and s^2 scores per position put back to
    full resolution by depth-to-space: one score per pixel, with the full-resolution convolutions gone."""

    def __init__(self, decoder: nn.Module, stride: int):
        super().__init__()
        self.grid, self.stride = decoder, stride
        width = 2 * decoder.to_head.out_channels
        channels = decoder.image_conv1.in_channels * stride**2
        decoder.to_head = nn.Conv2d(decoder.to_head.in_channels, width, 1)
        self.image_conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.image_conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.out_conv = nn.Conv2d(width, stride**2, 3, padding=1)
        del decoder.image_conv1, decoder.image_conv2, decoder.out_conv

    def forward(self, features, classes, pixel_values):
        x, s = self.grid.token_grid(features, classes), self.stride
        image = F.pixel_unshuffle(pixel_values, s).contiguous(memory_format=torch.channels_last)
        x = F.interpolate(self.grid.to_head(F.gelu(x)), size=image.shape[-2:], mode="bilinear", align_corners=False)
        image = self.image_conv2(F.gelu(self.image_conv1(image)))
        return F.pixel_shuffle(self.out_conv(F.gelu(x + image)), s).squeeze(1)


class ZeroBranch(nn.Module):
    """Stands in for the image branch's last convolution: zeros of its input's shape (no image information)."""

    def forward(self, x):
        return torch.zeros_like(x)


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
        output.write_text(json.dumps(results))
        summary = {k: round(sum(v) / len(v), 4) for k, v in results[name]["scores"].items()}
        print(name, round(results[name]["train_seconds"]), summary, flush=True)
    if "default" in results:
        print(markdown(results))


if __name__ == "__main__":
    main()
