"""Each world's classifier, trained by ``aha demo``'s recipe: test accuracy and training time on one thread.

    python benchmarks/world_classifiers.py [--worlds shapes letters parts] [--preset default] [--seed 0]

For every world of ``aha.demo.worlds.WORLDS``: draw the preset's train and test splits, train the benchmark
ViT with :func:`aha.demo.classifier.train_classifier` (what ``aha demo`` does), and score it on the test split.
Times are wall seconds and CPU seconds of this process (``time.process_time``) on one torch thread: on a
shared machine the CPU time is the figure to compare. Results go to ``--output`` (default
benchmarks/results/world_classifiers_PRESET.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from machine import describe, summary

from aha.demo import IMAGE_SIZE, PRESETS
from aha.demo.classifier import accuracy, classifier_config, image_processor_for, tensors_of, train_classifier
from aha.demo.worlds import WORLDS
from aha.persistence.atomic_writer import write_text


def measure(name: str, preset: str, seed: int, epochs: int | None = None) -> dict:
    world, settings = WORLDS[name], PRESETS[preset]
    epochs = epochs or world.classifier_epochs(settings["classifier_epochs"])
    start = time.perf_counter()
    splits = world.dataset(settings["num_train"], 16, settings["num_test"], seed=seed, size=IMAGE_SIZE)
    data_seconds = time.perf_counter() - start
    processor = image_processor_for(splits["train"], IMAGE_SIZE)
    wall, cpu = time.perf_counter(), time.process_time()
    model = train_classifier(
        splits["train"],
        processor,
        classifier_config(world.class_names, IMAGE_SIZE),
        epochs=epochs,
        dihedral=world.dihedral,
        seed=seed,
        progress=False,
        patch_evidence=world.patch_evidence(splits["train"]),
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pixel_values, labels, _ = tensors_of(splits["test"], processor)
    result = {
        "world": name,
        "preset": preset,
        "seed": seed,
        "num_train": settings["num_train"],
        "epochs": epochs,
        "num_test": len(labels),
        "test_accuracy": accuracy(model, pixel_values, labels),
        "chance": 1 / len(world.class_names),
        "train_wall_seconds": wall,
        "train_cpu_seconds": cpu,
        "data_wall_seconds": data_seconds,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", nargs="+", choices=sorted(WORLDS), default=list(WORLDS))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="classifier epochs (default: the preset's times the world's epoch_scale)",
    )
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure(name, args.preset, args.seed, args.epochs) for name in args.worlds]
    info = describe()
    output = Path(args.output or f"benchmarks/results/world_classifiers_{args.preset}.json")
    write_text(output, json.dumps({"machine": info, "rows": rows}, indent=2))
    print(summary(info))


if __name__ == "__main__":
    main()
