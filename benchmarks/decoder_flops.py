"""Counted (not timed) cost of the explainer's default decoder next to its classifier.

    python benchmarks/decoder_flops.py [--models ...] [--output benchmarks/results/decoder_flops.json]

For each benchmark classifier (benchmarks/models.py: the tests' tiny ViT at 32 px, the AHA Shapes ViT at 64 px, ViT-S/16
and ViT-B/16 at 224 px; with ``--models`` also the convolutional ones at their published sizes: ResNet-50,
ConvNeXt-T, ConvNeXt V2-T, RegNetY-4.0GF, EfficientNet-B0, MobileNetV2 at 224 px, MobileViT-S at 256 px) it builds
the explainer on the meta device (nothing is allocated) and counts one image's forward of the classifier and of the
default decoder with :mod:`aha.modeling.decoder_cost` (torch.utils.flop_counter.FlopCounterMode: matrix products,
convolutions, attention). Earlier runs also counted the "conv" pixel head and the decoder budget, since removed;
their rows stay in benchmarks/results/decoder_flops.json.
Prints a markdown table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch
from machine import describe, summary
from models import CLASSIFIERS, VIT_CONFIGS, classifier_config

from aha import AHAConfig, AHAExplainer
from aha.modeling.decoder_cost import classifier_cost, decoder_cost
from aha.persistence.atomic_writer import write_text


HERE = Path(__file__).resolve().parent


def count(name: str) -> dict:
    """The feature layers, width and counted cost of the default decoder for the named classifier, and the
    classifier's cost."""
    with torch.device("meta"):
        explainer = AHAExplainer(AHAConfig(classifier_config=classifier_config(name)))
    classifier, decoder = classifier_cost(explainer), decoder_cost(explainer)
    flops, parameters = decoder.fraction_of(classifier)
    return {
        "model": name,
        "feature_layers": list(explainer.feature_layers),
        "fusion_channels": explainer.decoder.projection.out_channels,
        "classifier_flops": classifier.flops,
        "classifier_parameters": classifier.parameters,
        "decoder_flops": decoder.flops,
        "decoder_parameters": decoder.parameters,
        "flops_ratio": flops,
        "parameters_ratio": parameters,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(VIT_CONFIGS), choices=CLASSIFIERS)
    parser.add_argument("--output", default=str(HERE / "results" / "decoder_flops.json"))
    args = parser.parse_args()
    rows = [count(name) for name in args.models]
    machine = describe()
    print(summary(machine))
    print(
        "| model | depths read (hidden_states) | fusion width | classifier GFLOP | decoder GFLOP "
        "| decoder / classifier FLOPs | decoder / classifier parameters |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {', '.join(map(str, row['feature_layers']))} | {row['fusion_channels']} | "
            f"{row['classifier_flops'] / 1e9:.4g} | {row['decoder_flops'] / 1e9:.4g} | {row['flops_ratio']:.3f} | "
            f"{row['parameters_ratio']:.3f} |"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(
        output,
        json.dumps(
            {
                "command": shlex.join(["python", "benchmarks/decoder_flops.py", *sys.argv[1:]]),
                "machine": machine,
                "rows": rows,
            },
            indent=1,
        ),
    )


if __name__ == "__main__":
    main()
