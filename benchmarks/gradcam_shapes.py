"""Grad-CAM on AHA Shapes: pytorch-grad-cam's target layer (the library's default now) against the layer the
library read before, and against a random map, on the demo's classifier.

Trains the demo's classifier exactly as ``aha demo`` (default preset: 8000 training images, 12 epochs, seed 0),
then explains the predicted class of the first ``--images`` test images with

- ``gradcam``: the last block's first LayerNorm (``vit.layers.3.layernorm_before``, pytorch-grad-cam's recipe);
- ``gradcam (before)``: the residual stream entering the last block (``vit.layers.2``, i.e. ``hidden_states[3]``,
  the library's default before this change);
- ``random``: uniform noise;

and scores deletion (mean reference) and the pointing game, with paired differences and standard errors; on the
first ``--independent-images`` of them, the independent metrics (``aha.metrics.independent_scores``, defaults,
generator seeded 0); and Adebayo et al.'s model randomisation check per method (full randomisation, seed 0).
``--cache DIR`` keeps the trained classifier for a second run.

    python benchmarks/gradcam_shapes.py [--images 200] [--independent-images 50] [--cache DIR] [--out benchmarks/results/gradcam_shapes.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import ViTForImageClassification


sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, summary  # noqa: E402

from aha.baselines import get_attributor  # noqa: E402
from aha.demo.classifier import accuracy, classifier_config, image_processor_for, tensors_of, train_classifier  # noqa: E402
from aha.demo.shapes import CLASS_NAMES, WORLD  # noqa: E402
from aha.metrics import deletion, independent_scores, model_randomisation, pointing_game, predict  # noqa: E402
from aha.metrics.randomisation import spearman  # noqa: E402
from aha.persistence.atomic_writer import write_text


def paired(a: torch.Tensor, b: torch.Tensor) -> dict:
    difference = (a - b).double()
    return {
        "mean": round(difference.mean().item(), 4),
        "se": round((difference.std() / len(difference) ** 0.5).item(), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-train", type=int, default=8000, help="the demo's default preset: 8000")
    parser.add_argument("--epochs", type=int, default=12, help="the demo's default preset: 12")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--independent-images", type=int, default=50)
    parser.add_argument("--cache", type=Path, default=None, help="folder keeping the trained classifier")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    splits = WORLD.dataset(args.num_train, 200, 1000, seed=0, size=64)
    processor = image_processor_for(splits["train"], 64)
    if args.cache is not None and (args.cache / "config.json").is_file():
        model = ViTForImageClassification.from_pretrained(args.cache).eval()
    else:
        model = train_classifier(
            splits["train"], processor, classifier_config(CLASS_NAMES, 64), epochs=args.epochs, seed=0, progress=False
        )
        if args.cache is not None:
            model.save_pretrained(args.cache)
    pixel_values, labels, masks = tensors_of(splits["test"], processor)
    test_accuracy = accuracy(model, pixel_values, labels)
    print(f"classifier trained in {time.perf_counter() - start:.0f} s, test accuracy {test_accuracy:.3f}", flush=True)

    pixel_values, masks = pixel_values[: args.images], masks[: args.images]
    target = predict(model, pixel_values)
    methods = {
        "gradcam": get_attributor("gradcam", model),
        "gradcam (before)": get_attributor("gradcam", model, target_layer="vit.layers.2"),
        "random": get_attributor("random", model),
    }
    maps = {
        name: torch.cat([method(chunk, t) for chunk, t in zip(pixel_values.split(25), target.split(25))])
        for name, method in methods.items()
    }
    scores = {
        name: {"deletion": deletion(model, pixel_values, m, target).auc, "pointing": pointing_game(m, masks)}
        for name, m in maps.items()
    }
    rows = {
        name: {
            metric: {"mean": round(v.mean().item(), 4), "se": round((v.std() / len(v) ** 0.5).item(), 4)}
            for metric, v in s.items()
        }
        for name, s in scores.items()
    }
    comparisons = {
        f"{a} - {b}": {metric: paired(scores[a][metric], scores[b][metric]) for metric in ("deletion", "pointing")}
        for a, b in (("gradcam", "random"), ("gradcam (before)", "random"), ("gradcam", "gradcam (before)"))
    }
    n = args.independent_images
    independent = {
        name: independent_scores(
            model, pixel_values[:n], m[:n], target[:n], generator=torch.Generator().manual_seed(0)
        )
        for name, m in maps.items()
    }
    independent_rows = {
        name: {
            metric: {"mean": round(v.nanmean().item(), 4), "se": round((v.std() / len(v) ** 0.5).item(), 4)}
            for metric, v in s.items()
        }
        for name, s in independent.items()
    }
    independent_paired = {
        f"{a} - random": {
            metric: paired(independent[a][metric], independent["random"][metric]) for metric in independent[a]
        }
        for a in ("gradcam", "gradcam (before)")
    }
    layers = {"gradcam": None, "gradcam (before)": "vit.layers.2"}
    randomisation = {}
    for name in maps:
        make = (
            (lambda c: get_attributor("random", c))
            if name == "random"
            else (lambda c, layer=layers[name]: get_attributor("gradcam", c, target_layer=layer))
        )
        check = model_randomisation(
            make, model, pixel_values[:n], target[:n], generator=torch.Generator().manual_seed(0)
        )
        randomisation[name] = {"final_similarity": round(check.final_similarity, 4), "passed": check.passed}
    agreement = spearman(maps["gradcam"].flatten(1), maps["gradcam (before)"].flatten(1))
    info = describe()
    result = {
        "machine": info,
        "classifier_test_accuracy": round(test_accuracy, 4),
        "images": args.images,
        "methods": rows,
        "paired_differences": comparisons,
        "independent_images": n,
        "independent": independent_rows,
        "independent_paired": independent_paired,
        "randomisation": randomisation,
        "spearman_new_vs_before": {
            "mean": round(agreement.nanmean().item(), 4),
            "min": round(agreement.min().item(), 4),
        },
        "command": "python benchmarks/gradcam_shapes.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(result, indent=2))
    print(summary(info))
    if args.out:
        write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
