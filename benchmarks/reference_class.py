"""Where the suite's deletion is decided: images whose reference keeps the target.

Deletion moves the most relevant pixels first to a reference (the dataset's mean colour in the suite's first
column). When the classifier gives the reference image itself to the explained target (an image emptied of
evidence is read as one class), the target's probability at the end of the deletion curve stays high, and a
map can lower the curve only through what the half-deleted image looks like, not through the evidence it
removes. This script splits each world's test images of ``benchmarks/results/suite.json`` by that property and
compares every method with a reference row on each part, paired over the same images:

    python benchmarks/reference_class.py --suite_dir DIR --reference default+1500steps

It runs the classifier on the test images and on their references only (seconds); the maps' scores are read
from the results file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from suite import per_image, world_classifier, world_inputs

from aha.demo.method_comparison import paired_difference
from aha.demo.worlds import WORLDS
from aha.persistence.atomic_writer import write_text
from aha.ranking.perturbation import make_reference
from aha.ranking.scores import class_scores


HERE = Path(__file__).resolve().parent
METRICS = ("deletion_mean", "positive_perturbation", "insertion_lrf")


def reference_keeps_target(folder: Path, data_folder: Path, eval_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) the predicted class of each test image and (N,) whether the classifier gives the mean-colour reference
    to that class (softmax probability > 0.5). The reference is one image for every test image: one forward."""
    _, pixel_values, _, _ = world_inputs(folder, data_folder, eval_images)
    classifier = world_classifier(folder)
    with torch.no_grad():
        predicted = classifier(pixel_values=pixel_values).logits.argmax(-1)
        reference_logits = classifier(pixel_values=make_reference(pixel_values[:1], "mean")).logits
        kept = class_scores(reference_logits.expand(len(predicted), -1), predicted, "probability") > 0.5
    return predicted, kept


def split_means(scores: dict, base: dict | None, kept: torch.Tensor) -> dict:
    """Each of :data:`METRICS`' mean over the images whose reference keeps the target and over the others, with
    the paired difference ``base - scores`` (mean, standard error) when ``base`` is given."""
    return {
        part: {
            metric: {"mean": scores[metric][which].mean().item()}
            | ({"minus_method": paired_difference(base[metric][which], scores[metric][which])} if base else {})
            for metric in METRICS
        }
        for part, which in (("kept", kept), ("other", ~kept))
        if which.any()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite_dir",
        required=True,
        help="An `aha demo --world all --output` folder, or a `benchmarks/cnn_suite.py --output_dir` one.",
    )
    parser.add_argument(
        "--data_dir", default=None, help="The folder of each world's data, DATA_DIR/WORLD/data (default: --suite_dir)."
    )
    parser.add_argument("--results", default=str(HERE / "results" / "suite.json"))
    parser.add_argument("--reference", default="default+1500steps", help="the row every method is compared with")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--eval_images", type=int, default=100)
    parser.add_argument("--output", default=str(HERE / "results" / "reference_class.json"))
    args = parser.parse_args()
    runs = json.loads(Path(args.results).read_text())["runs"]
    record = {"reference": args.reference, "worlds": {}}
    for world in WORLDS:
        folder = Path(args.suite_dir) / world
        data_folder = Path(args.data_dir or args.suite_dir) / world / "data"
        predicted, kept = reference_keeps_target(folder, data_folder, args.eval_images)
        base = per_image(runs, [world], args.reference, args.seeds)
        rows = {
            row: split_means(per_image(runs, [world], row, []), base, kept) for row in runs[world] if "@" not in row
        }
        rows[args.reference] = split_means(base, None, kept)
        record["worlds"][world] = {
            "images": len(kept),
            "reference_keeps_target": int(kept.sum()),
            "classes_of_those_images": sorted(set(predicted[kept].tolist())),
            "rows": rows,
        }
        print(f"== {world}: {int(kept.sum())} of {len(kept)} images' reference keeps the target", flush=True)
        for row, parts in rows.items():
            line = "  ".join(
                f"{part}: del {v['deletion_mean']['mean']:.3f}"
                + (
                    " ({:+.3f} ± {:.3f})".format(*v["deletion_mean"]["minus_method"])
                    if "minus_method" in v["deletion_mean"]
                    else ""
                )
                for part, v in parts.items()
            )
            print(f"  {row:24s} {line}")
    write_text(args.output, json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
