"""CPU time of `AHAExplainer.explain` relative to one plain forward of its classifier, as a ratio measured in one run.

    python benchmarks/explain_speed.py [--batch_size 8] [--repeats 7]

For each benchmark classifier (benchmarks/models.py: by default the tests' tiny ViT at 32 px, the AHA Shapes ViT at
64 px, ViT-S/16 and ViT-B/16 at 224 px; with ``--models`` also the convolutional ones, ResNet-50, ConvNeXt-T, ... at
their published sizes; random init from configs, since the cost, not the weights, is measured) it times, in
interleaved rounds on the same batch: a plain classifier forward; the same forward returning hidden states (what
`explain` runs before its decoder); `explain` with the default decoder; for a convolutional classifier, also the
default decoder reading the stride-4 map too (4 depths), which its default leaves out. (The "conv" pixel head, the
decoder budget and the space-to-depth decoder that earlier runs timed were removed; their results stay in
benchmarks/results/.) Each round gives ratios against
that round's plain forward; the table shows their medians. Times are CPU time of this process
(``time.process_time``) on ``--threads`` threads: the machines this runs on are shared, and wall time there
measures the neighbours. Results: ``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import describe, summary
from models import CLASSIFIERS, VIT_CONFIGS, build_classifier

from aha import AHAExplainer
from aha.modeling.backbones import BackboneSpec
from aha.persistence.atomic_writer import write_text


HERE = Path(__file__).resolve().parent


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def measure(name: str, batch_size: int, repeats: int) -> dict:
    classifier = build_classifier(name)
    explainers = {"default": AHAExplainer.from_classifier(classifier).eval()}
    spec = BackboneSpec.from_model(classifier)
    if (
        spec.feature_maps == "hidden_states"
    ):  # a CNN: also the decoder that reads its stride-4 map, left out by default
        explainers["default + stride-4 map"] = AHAExplainer.from_classifier(
            classifier, feature_layers=list(spec.default_feature_layers(4))
        ).eval()
    size = spec.image_size  # the configured size (224 px for a config without one)
    images = torch.randn(batch_size, 3, *size, generator=torch.Generator().manual_seed(0))
    runs = {
        "forward": lambda: classifier(pixel_values=images),
        "forward + hidden states": lambda: classifier(pixel_values=images, output_hidden_states=True),
        **{f"explain ({key})": (lambda e=e: e.explain(images)) for key, e in explainers.items()},
    }
    times = {key: [] for key in runs}
    with torch.no_grad():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(repeats):
            for key, fn in runs.items():
                times[key].append(cpu_seconds(fn))
    ratios = {key: statistics.median(t / f for t, f in zip(times[key], times["forward"])) for key in runs}
    return {
        "model": name,
        "image_size": list(size),
        "classifier_parameters": sum(p.numel() for p in classifier.parameters()),
        "decoder_parameters": {key: sum(p.numel() for p in e.decoder.parameters()) for key, e in explainers.items()},
        "seconds": times,
        "median_seconds": {key: statistics.median(t) for key, t in times.items()},
        "median_ratio_to_forward": ratios,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(VIT_CONFIGS), choices=CLASSIFIERS)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is least sensitive to a shared CPU)")
    parser.add_argument("--output", default=str(HERE / "results" / "explain_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    before = describe()
    rows = [measure(name, args.batch_size, args.repeats) for name in args.models]
    after = describe()
    print(summary(before), f"-> load average after: {after['load_average']}")
    print(f"batch {args.batch_size}, {args.repeats} interleaved rounds, medians of per-round ratios")
    keys = list(dict.fromkeys(key for row in rows for key in row["median_ratio_to_forward"]))
    print("| model | forward (ms) | " + " | ".join(f"{k} / forward" for k in keys[1:]) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for row in rows:
        ratios = row["median_ratio_to_forward"]
        print(
            f"| {row['model']} | {1000 * row['median_seconds']['forward']:.2f} | "
            + " | ".join(f"{ratios[k]:.3f}x" if k in ratios else "-" for k in keys[1:])
            + " |"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(
        output,
        json.dumps(
            {
                "command": shlex.join(["python", "benchmarks/explain_speed.py", *sys.argv[1:]]),
                "batch_size": args.batch_size,
                "machine": before,
                "load_average_after": after["load_average"],
                "rows": rows,
            },
            indent=1,
        ),
    )


if __name__ == "__main__":
    main()
