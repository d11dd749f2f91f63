"""Speed of the independent metrics (aha.metrics.INDEPENDENT_METRICS) and of Quantus 0.6 on the same inputs.

The demo's classifier shape (64 px ViT, patch 8, 4 layers of width 128, random init, head scaled by 20 so that
perturbations move its probabilities), the same random images and maps for both libraries, one CPU thread.
Each library metric runs with its defaults through ``independent_scores``; Quantus runs at the settings the
reference tests use (the library's "mean" reference as ``perturb_baseline=0.0``, the same number of forwards
where its API allows, ``batch_size`` = the batch):

- region perturbation (64 patches of 8 px), selectivity, faithfulness correlation (100 subsets of 224 pixels,
  i.e. 672 channel values in Quantus): the same perturbed images;
- pixel flipping: the library takes 41 pixels per step (100 steps); Quantus' ``features_in_step`` must divide
  H * W, so it runs 96 steps of 128 channel values (43 pixels) - about the same number of forwards;
- ROAD and IROF fail in Quantus 0.6 on three-channel images, so both libraries are timed on a one-channel copy
  of the classifier and images for those two (Quantus ROAD: one call per image, since its summary keeps only
  the first batch; IROF needs ``np.trapz``, removed in NumPy 2.4, set to ``np.trapezoid`` around its call only,
  in this script).

    python benchmarks/independent_metrics_speed.py [--batch 16] [--quantus] [--out benchmarks/results/independent_metrics_speed.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers as T
from torch import nn


sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, summary  # noqa: E402
from models import VIT_CONFIGS  # noqa: E402

from aha.metrics import INDEPENDENT_METRICS, independent_scores, predict  # noqa: E402
from aha.persistence.atomic_writer import write_text


GREY = ("road_morf", "road_lerf", "irof")  # timed on the one-channel copy (Quantus fails on three channels)


def classifier(num_channels: int) -> T.ViTForImageClassification:
    torch.manual_seed(0)
    config = T.ViTConfig(**VIT_CONFIGS["shapes-vit-64px"], num_channels=num_channels)
    model = T.ViTForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(20)
    return model


class Logits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits


def quantus_runs(model, images, maps, target):
    """name -> a function running Quantus on these inputs (None where it does not run as configured)."""
    import quantus

    common = dict(normalise=False, abs=False, disable_warnings=True)

    def call(metric, x, a, y, softmax=True):
        return metric(
            model=Logits(model if x.shape[1] == 3 else grey_model).eval(),
            x_batch=x.numpy(),
            y_batch=y.numpy(),
            a_batch=a[:, None].numpy(),
            device="cpu",
            softmax=softmax,
            channel_first=True,
            batch_size=len(x),
        )

    grey_model, grey = classifier(1), images[:, :1]
    grey_target = predict(grey_model, grey)

    def road(order):
        def run():
            ranked = maps if order == "morf" else -maps
            for b in range(len(grey)):
                call(quantus.ROAD(noise=0.01, **common), grey[b : b + 1], ranked[b : b + 1], grey_target[b : b + 1])

        return run

    def irof():
        trapz = getattr(np, "trapz", None)
        np.trapz = np.trapezoid  # NumPy 2.4 removed the name Quantus 0.6 calls; restored below
        try:
            call(quantus.IROF(perturb_baseline=0.0, return_aggregate=False, **common), grey, maps, grey_target)
        finally:
            if trapz is None:
                del np.trapz
            else:
                np.trapz = trapz

    return {
        "road_morf": road("morf"),
        "road_lerf": road("lerf"),
        "region_perturbation": lambda: call(
            quantus.RegionPerturbation(patch_size=8, regions_evaluation=64, perturb_baseline=0.0, **common),
            images,
            maps,
            target,
        ),
        "selectivity": lambda: call(
            quantus.Selectivity(patch_size=8, perturb_baseline=0.0, **common), images, maps, target
        ),
        "irof": irof,
        "pixel_flipping": lambda: call(
            quantus.PixelFlipping(features_in_step=128, perturb_baseline=0.0, **common), images, maps, target
        ),
        "faithfulness_correlation": lambda: call(
            quantus.FaithfulnessCorrelation(
                nr_runs=100, subset_size=3 * 224, perturb_baseline=0.0, return_aggregate=False, **common
            ),
            images,
            maps,
            target,
            softmax=False,
        ),
    }


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--quantus", action="store_true", help="also time Quantus 0.6 (the quantus extra)")
    parser.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = classifier(3)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, 64, 64, generator=generator)
    maps = torch.randn(args.batch, 64, 64, generator=generator)
    target = predict(model, images)
    grey_model, grey = classifier(1), images[:, :1]
    grey_target = predict(grey_model, grey)

    rows = {}
    for name in INDEPENDENT_METRICS:
        inputs = (grey_model, grey, maps, grey_target) if name in GREY else (model, images, maps, target)
        seconds = timed(lambda: independent_scores(*inputs, metrics=[name]))
        rows[name] = {
            "channels": inputs[1].shape[1],
            "aha_seconds": round(seconds, 3),
            "aha_images_per_second": round(args.batch / seconds, 2),
        }
        print(name, rows[name], flush=True)
    if args.quantus:
        import quantus

        runs = quantus_runs(model, images, maps, target)
        for name, run in runs.items():
            seconds = timed(run)
            rows[name].update(
                quantus_seconds=round(seconds, 3),
                quantus_images_per_second=round(args.batch / seconds, 2),
                speedup=round(seconds / rows[name]["aha_seconds"], 1),
            )
            print(name, rows[name], flush=True)
    info = describe()
    if args.quantus:
        info["quantus"] = quantus.__version__
    info["numpy"] = np.__version__
    result = {
        "machine": info,
        "batch": args.batch,
        "image_size": 64,
        "metrics": rows,
        "command": "python benchmarks/independent_metrics_speed.py " + " ".join(sys.argv[1:]),
    }
    print(f"\n{args.batch} images of 64 px; {summary(info)}\n")
    print("| metric | channels | aha-explain (images/s) | Quantus 0.6 (images/s) | speed-up |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['channels']} | {row['aha_images_per_second']} | {row.get('quantus_images_per_second', '-')} "
            f"| {row.get('speedup', '-')} |"
        )
    if args.out:
        write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
