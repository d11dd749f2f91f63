"""Counted (not timed) cost of the explainer's decoder next to its classifier, with and without a compute budget.

    python benchmarks/decoder_flops.py [--budgets 0.05 0.08 0.1] [--output benchmarks/results/decoder_flops.json]

For each benchmark classifier (benchmarks/models.py: the tests' tiny ViT at 32 px, the AHA Shapes ViT at 64 px, ViT-S/16
and ViT-B/16 at 224 px; with ``--models`` also the convolutional ones at their published sizes: ResNet-50,
ConvNeXt-T, ConvNeXt V2-T, RegNetY-4.0GF, EfficientNet-B0, MobileNetV2 at 224 px, MobileViT-S at 256 px) it builds
the explainer on the meta device (nothing is allocated) and counts one image's
forward with torch.utils.flop_counter.FlopCounterMode (matrix products, convolutions, attention): the
classifier's, the default decoder's (the "guided" pixel head), and the "conv" pixel head's, as it is by default
and under each ``decoder_flops_budget``.
Prints a markdown table; writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import torch
from machine import describe, summary
from models import CLASSIFIERS, VIT_CONFIGS, classifier_config

from aha import AHAConfig, AHAExplainer
from aha.decoder_budget import DecoderBudget, widths_of


HERE = Path(__file__).resolve().parent


def count(name: str, pixel_head: str, budget: float | None) -> dict:
    """Widths and counted cost of the decoder for the named classifier with ``pixel_head`` under ``budget`` (None: the
    default rule)."""
    with torch.device("meta"):
        explainer = AHAExplainer(
            AHAConfig(classifier_config=classifier_config(name), pixel_head=pixel_head, decoder_flops_budget=budget)
        )
    counter = DecoderBudget.of(explainer)
    widths = widths_of(explainer.decoder)
    cost = counter.decoder_cost(widths)
    flops, parameters = cost.fraction_of(counter.classifier)
    return {
        "model": name,
        "pixel_head": pixel_head,
        "budget": budget,
        "feature_layers": list(explainer.feature_layers),
        "widths": dataclasses.asdict(widths),
        "classifier_flops": counter.classifier.flops,
        "classifier_parameters": counter.classifier.parameters,
        "decoder_flops": cost.flops,
        "decoder_parameters": cost.parameters,
        "flops_ratio": flops,
        "parameters_ratio": parameters,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(VIT_CONFIGS), choices=CLASSIFIERS)
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.05, 0.08, 0.1])
    parser.add_argument("--output", default=str(HERE / "results" / "decoder_flops.json"))
    args = parser.parse_args()
    rows = [count(name, "guided", None) for name in args.models]
    rows += [count(name, "conv", budget) for name in args.models for budget in [None, *args.budgets]]
    machine = describe()
    print(summary(machine))
    print(
        "| model | pixel head | budget | fusion / head / class dim / image stride / blocks | classifier GFLOP | decoder GFLOP "
        "| decoder / classifier FLOPs | decoder / classifier parameters |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        w = row["widths"]
        print(
            f"| {row['model']} | {row['pixel_head']} | {row['budget'] if row['budget'] is not None else 'none (default)'} | "
            f"{w['fusion_channels']} / {w['head_channels']} / {w['class_dim']} / {w['image_stride']} / {w['num_blocks']} | "
            f"{row['classifier_flops'] / 1e9:.4g} | {row['decoder_flops'] / 1e9:.4g} | {row['flops_ratio']:.3f} | "
            f"{row['parameters_ratio']:.3f} |"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "command": shlex.join(["python", "benchmarks/decoder_flops.py", *sys.argv[1:]]),
                "machine": machine,
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
