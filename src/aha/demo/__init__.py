"""``aha demo``: the offline end-to-end benchmark, from data to report, on a fresh machine.

    aha demo                     # about 10 CPU minutes: data, classifier, explainer, every method, report
    aha demo --quick             # about a minute, for tests
    aha demo --preset full       # the benchmark recorded in benchmarks/RESULTS.md

1. **Data**: AHA Shapes (:mod:`aha.demo.shapes`), a procedural dataset with a ground-truth object mask per
   image, saved with ``save_to_disk``.
2. **Classifier**: a small ``ViTForImageClassification`` trained from scratch (:mod:`aha.demo.classifier`),
   saved with ``save_pretrained`` next to its image processor.
3. **Explainer**: trained by the library's own ``aha train`` on that classifier and dataset.
4. **Evaluation**: AHA (one pass, and with test-time refinement) and every comparison method of
   :mod:`aha.baselines` on the same held-out test images, with the exact metrics of :mod:`aha.metrics`;
   the report (:mod:`aha.demo.report`) goes to ``--output``.

Each artefact is cached in the output folder with the settings that made it: a second run with the same
settings only re-evaluates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ..threads import set_threads


#: settings of each preset: data sizes, classifier epochs, explainer steps, evaluation size and costs
PRESETS = {
    "quick": dict(num_train=400, num_validation=16, num_test=16, classifier_epochs=2, explainer_steps=4,
                  explainer_batch_size=8, eval_images=8, rise_masks=100, refine_steps=2),
    "default": dict(num_train=8000, num_validation=200, num_test=1000, classifier_epochs=12, explainer_steps=400,
                    explainer_batch_size=16, eval_images=100, rise_masks=1000, refine_steps=5),
    "full": dict(num_train=8000, num_validation=200, num_test=1000, classifier_epochs=12, explainer_steps=1500,
                 explainer_batch_size=16, eval_images=500, rise_masks=4000, refine_steps=5),
}
IMAGE_SIZE = 64
EVAL_BATCH_SIZE = 8
BASELINES = ("random", "centre", "rollout", "chefer", "gradcam", "integrated_gradients", "occlusion", "rise")
DISPLAY_NAMES = {"random": "Random", "centre": "Centre", "rollout": "Rollout", "chefer": "Chefer",
                 "gradcam": "Grad-CAM", "integrated_gradients": "IG", "occlusion": "Occlusion", "rise": "RISE"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aha demo",
        description="The offline end-to-end benchmark: procedural data with object masks, a ViT trained on it, an AHA "
                    "explainer trained by `aha train`, and AHA against every comparison method with the exact metrics.",
    )
    parser.add_argument("--output", default="aha-demo", help="Report and cache folder (default: ./aha-demo).")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="Sizes and costs: quick (about a minute), default (about 10 CPU minutes), full (the benchmark).")
    parser.add_argument("--quick", dest="preset", action="store_const", const="quick", help="Same as --preset quick.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the data, the classifier and the explainer.")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the free cores, printed at the start).")
    return parser


def cached(folder: Path, settings: dict, build) -> dict:
    """Run ``build(folder)`` unless ``folder`` holds an artefact made with the same ``settings``; returns the
    JSON-able record ``build`` returned (kept in ``folder/demo_settings.json``)."""
    record_file = folder / "demo_settings.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("settings") == settings:
            print(f"[aha demo] reusing {folder}")
            return record["record"]
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record = build(folder)
    record["seconds"] = time.perf_counter() - start
    record_file.write_text(json.dumps({"settings": settings, "record": record}, indent=2))
    return record


def build_data(folder: Path, settings: dict) -> dict:
    from ..hub import card_template
    from .shapes import shapes_dataset

    print("[aha demo] drawing AHA Shapes ...")
    splits = shapes_dataset(settings["num_train"], settings["num_validation"], settings["num_test"],
                            seed=settings["seed"], size=IMAGE_SIZE)
    splits.save_to_disk(str(folder))
    (folder / "README.md").write_text(card_template("shapes_dataset_card.md"))  # the dataset card, for push_to_hub or a reader
    return {split: len(dataset) for split, dataset in splits.items()}


def build_classifier(folder: Path, data_folder: Path, settings: dict) -> dict:
    import datasets

    from .classifier import accuracy, classifier_config, image_processor_for, tensors_of, train_classifier

    splits = datasets.load_from_disk(str(data_folder))
    processor = image_processor_for(splits["train"], IMAGE_SIZE)
    print("[aha demo] training the classifier (a ViT from scratch) ...")
    model = train_classifier(splits["train"], processor, classifier_config(IMAGE_SIZE), epochs=settings["classifier_epochs"],
                             seed=settings["seed"])
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    pixel_values, labels, _ = tensors_of(splits["test"], processor)
    test_accuracy = accuracy(model, pixel_values, labels)
    print(f"[aha demo] classifier test accuracy: {test_accuracy:.3f}")
    return {"test_accuracy": test_accuracy, "parameters": sum(p.numel() for p in model.parameters())}


def train_command(output: Path, settings: dict) -> list[str]:
    """The ``aha train`` arguments of the demo's explainer."""
    return [
        "--model_name_or_path", str(output / "classifier"), "--dataset_path", str(output / "data"),
        "--output_dir", str(output / "explainer"), "--overwrite_output_dir",
        "--max_train_steps", str(settings["explainer_steps"]),
        "--per_device_train_batch_size", str(settings["explainer_batch_size"]),
        "--learning_rate", str(settings["explainer_learning_rate"]),
        "--checkpointing_steps", str(max(settings["explainer_steps"] // 2, 1)),
        "--no_gradient_checkpointing", "--max_eval_samples", "32", "--seed", str(settings["seed"]),
    ]


def build_explainer(folder: Path, output: Path, settings: dict) -> dict:
    from ..training import build_parser as train_parser
    from ..training import train

    argv = train_command(output, settings)
    print("[aha demo] training the explainer: aha train " + shlex.join(argv))
    train(train_parser().parse_args(argv))
    return {"command": "aha train " + shlex.join(argv)}


def evaluate(output: Path, settings: dict) -> tuple[list, dict, dict]:
    """Every method on the first ``eval_images`` test images: (results, summary, evaluation context)."""
    import datasets
    from transformers import AutoImageProcessor

    from .. import AHAExplainer
    from ..baselines import get_attributor
    from .classifier import tensors_of
    from .evaluation import evaluate_methods, forward_seconds_per_image
    from .report import summarise

    explainer = AHAExplainer.from_pretrained(str(output / "explainer")).eval()
    classifier = explainer.classifier
    processor = AutoImageProcessor.from_pretrained(str(output / "classifier"))
    test = datasets.load_from_disk(str(output / "data"))["test"].select(range(settings["eval_images"]))
    pixel_values, labels, masks = tensors_of(test, processor)
    refined = f"AHA + {settings['refine_steps']} refine"
    attributors = {
        "AHA": get_attributor("aha", classifier, explainer=explainer),
        refined: get_attributor("aha", classifier, explainer=explainer, refine_steps=settings["refine_steps"]),
    }
    for name in BASELINES:
        options = {"n_masks": settings["rise_masks"]} if name == "rise" else {}
        if name in ("integrated_gradients", "occlusion", "rise"):
            options["batch_size"] = 128
        attributors[DISPLAY_NAMES[name]] = get_attributor(name, classifier, **options)
    print(f"[aha demo] evaluating {len(attributors)} methods on {len(test)} held-out test images ...")
    results = evaluate_methods(attributors, classifier, pixel_values, labels, masks, processor, EVAL_BATCH_SIZE)
    summary = summarise(results, forward_seconds_per_image(classifier, pixel_values, EVAL_BATCH_SIZE), ["AHA", refined])
    images = list(test["image"])
    return results, summary, {"images": images, "masks": masks.numpy()}


def environment() -> tuple[str, str]:
    """(machine, versions) for the report."""
    import torch
    import transformers

    from .. import __version__

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"
    versions = (f"aha-explain {__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
                f"Python {platform.python_version()}")
    return machine, versions


def main(args: argparse.Namespace) -> None:
    from .report import write_report

    set_threads(args.threads, announce="[aha demo]")
    settings = dict(PRESETS[args.preset], seed=args.seed, explainer_learning_rate=3e-3)
    output = Path(args.output)
    start = time.perf_counter()
    data_settings = {k: settings[k] for k in ("num_train", "num_validation", "num_test", "seed")}
    data = cached(output / "data", data_settings, lambda folder: build_data(folder, settings))
    classifier_settings = {**data_settings, "classifier_epochs": settings["classifier_epochs"]}
    classifier = cached(output / "classifier", classifier_settings,
                        lambda folder: build_classifier(folder, output / "data", settings))
    explainer_settings = {**classifier_settings, "command": train_command(output, settings)}
    explainer = cached(output / "explainer", explainer_settings, lambda folder: build_explainer(folder, output, settings))
    evaluation_start = time.perf_counter()
    results, summary, pictures = evaluate(output, settings)
    machine, versions = environment()
    context = {
        "command": "aha demo " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["demo"] else sys.argv[1:]),
        "preset": args.preset,
        "settings": settings,
        "classifier": (f"ViT from scratch (64 px, patch 8, {classifier['parameters'] / 1e6:.2f} M parameters), "
                       f"test accuracy {classifier['test_accuracy']:.3f} on {data['test']} held-out images"),
        "explainer": explainer["command"],
        "evaluation": (f"first {settings['eval_images']} test images, predicted class, 21 fractions (Chefer: 10), "
                       f"hard ranking of all pixels; RISE with {settings['rise_masks']} masks"),
        "machine": machine,
        "versions": versions,
        "run_time": (f"{time.perf_counter() - start:.0f} s this run (evaluation {time.perf_counter() - evaluation_start:.0f} s); "
                     f"cached artefacts took data {data['seconds']:.0f} s, classifier {classifier['seconds']:.0f} s, "
                     f"explainer {explainer['seconds']:.0f} s"),
    }
    write_report(output, results, summary, context, pictures["images"], pictures["masks"])
    print(f"[aha demo] report: {output / 'results.md'}")
    print((output / "results.md").read_text().split("\n## ")[0])
