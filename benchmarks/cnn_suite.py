"""The benchmark suite with a small CNN as the classifier: each world's ResNet, trained by the recipe on the data of an
``aha demo`` folder, in a folder that ``benchmarks/suite.py`` reads.

    python benchmarks/cnn_suite.py --suite_dir DIR --output_dir CNN_DIR [--worlds shapes letters parts] [--epochs 12]
        [--max_train_samples N] [--max_test_samples N] [--results FILE]
    python benchmarks/suite.py --suite_dir CNN_DIR --data_dir DIR --rows default \\
        --baselines gradcam rise occlusion integrated_gradients random centre --output benchmarks/results/suite_cnn.json

``DIR`` is an ``aha demo --world all --output DIR`` folder. For each world, the CNN
(:func:`aha.demo.classifier.cnn_classifier_config`) is trained by :func:`aha.demo.classifier.train_classifier` on
``DIR/WORLD/data``'s train split, normalised by the world's image processor (``DIR/WORLD/classifier``'s: the ViT's),
for the world's epochs as ``aha demo`` trains the ViT (``--epochs``, the preset's, times the world's
``epoch_scale``), and saved with that processor to ``CNN_DIR/WORLD/classifier``; the data stays in ``DIR``
(``suite.py --data_dir``). Test accuracy and CPU seconds (``time.process_time``, this process) per world go to
``--results`` (default benchmarks/results/cnn_suite.json), one entry per world, replaced when the world is run again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import torch
from machine import describe, summary
from transformers import AutoImageProcessor

from aha.demo import PRESETS
from aha.demo.classifier import accuracy, cnn_classifier_config, tensors_of, train_classifier
from aha.demo.worlds import WORLDS
from aha.persistence.atomic_writer import staged_folder, write_text


HERE = Path(__file__).resolve().parent


def train_world(name: str, suite_dir: Path, output_dir: Path, args) -> dict:
    """Train, save and score the CNN of world ``name``: its record for the results file."""
    world = WORLDS[name]
    splits = datasets.load_from_disk(str(suite_dir / name / "data"))
    train, test = splits["train"], splits["test"]
    if args.max_train_samples is not None:
        train = train.select(range(min(args.max_train_samples, len(train))))
    if args.max_test_samples is not None:
        test = test.select(range(min(args.max_test_samples, len(test))))
    processor = AutoImageProcessor.from_pretrained(suite_dir / name / "classifier")
    config = cnn_classifier_config(world.class_names, processor.size["height"])
    epochs = world.classifier_epochs(args.epochs)
    start = time.process_time()
    model = train_classifier(
        train,
        processor,
        config,
        epochs=epochs,
        dihedral=world.dihedral,
        seed=args.seed,
        progress=not args.no_progress,
        patch_evidence=world.patch_evidence(train),
    )
    cpu_seconds = time.process_time() - start
    with staged_folder(str(output_dir / name / "classifier")) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    pixel_values, labels, _ = tensors_of(test, processor)
    record = {
        "classifier": f"ResNet, hidden_sizes {config.hidden_sizes}, depths {config.depths}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "num_train": len(train),
        "epochs": epochs,
        "seed": args.seed,
        "num_test": len(labels),
        "test_accuracy": accuracy(model, pixel_values, labels),
        "chance": 1 / len(world.class_names),
        "train_cpu_seconds": cpu_seconds,
        "train_cpu_seconds_per_epoch": cpu_seconds / epochs,
        "suite_dir": str(suite_dir),
        "output_dir": str(output_dir),
    }
    print(name, json.dumps(record), flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite_dir", required=True, help="An `aha demo --world all --output` folder.")
    parser.add_argument(
        "--output_dir", required=True, help="Where each world's CNN goes: OUTPUT_DIR/WORLD/classifier."
    )
    parser.add_argument("--worlds", nargs="+", choices=sorted(WORLDS), default=list(WORLDS))
    parser.add_argument(
        "--epochs",
        type=int,
        default=PRESETS["default"]["classifier_epochs"],
        help="the preset's classifier epochs, times each world's epoch_scale (default: the default preset's 12)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_train_samples", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--max_test_samples", type=int, default=None, help="score on the first N test images only")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.add_argument("--results", default=str(HERE / "results" / "cnn_suite.json"))
    args = parser.parse_args()
    suite_dir, output_dir = Path(args.suite_dir), Path(args.output_dir)
    if suite_dir.resolve() == output_dir.resolve():
        parser.error("--output_dir must not be --suite_dir: the CNNs would replace the suite's ViTs")
    for name, value in (("epochs", args.epochs), ("max_train_samples", args.max_train_samples)):
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    record = json.loads(results.read_text()) if results.is_file() else {"worlds": {}}
    for name in args.worlds:
        record["worlds"][name] = train_world(name, suite_dir, output_dir, args)
        record["machine"] = describe()
        results.parent.mkdir(parents=True, exist_ok=True)
        write_text(results, json.dumps(record, indent=2) + "\n")
    print(summary(record["machine"]))


if __name__ == "__main__":
    main()
