"""Test-time refinement on AHA Shapes: what 1, 3 and 5 steps gain, and what each step costs.

    python benchmarks/refinement_shapes.py --demo_dir aha-demo [--eval_images 200] [--steps 1 3 5]

Uses the explainer, classifier and test images that ``aha demo --output DEMO_DIR`` cached. For each number of
refinement steps it explains the first ``--eval_images`` test images (predicted class, batches of
``--batch_size``), scores them with the demo's metrics, and times the refinement; the cost is given in
classifier forwards (the time of a plain forward of the same images) and as the number of images the
classifier sees per step (forward and backward, counted by a hook). Results: ``--output`` (JSON) and a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import torch
from transformers import AutoImageProcessor

from aha import AHAExplainer
from aha.demo.classifier import tensors_of
from aha.demo.evaluation import METRICS, forward_seconds_per_image, paired_difference, score_maps, verdict


HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo_dir", default="aha-demo")
    parser.add_argument("--eval_images", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--output", default=str(HERE / "results" / "refinement_shapes.json"))
    args = parser.parse_args()
    demo = Path(args.demo_dir)
    explainer = AHAExplainer.from_pretrained(demo / "explainer").eval()
    processor = AutoImageProcessor.from_pretrained(demo / "classifier")
    test = datasets.load_from_disk(str(demo / "data"))["test"].select(range(args.eval_images))
    pixel_values, labels, masks = tensors_of(test, processor)
    forward = forward_seconds_per_image(explainer.classifier, pixel_values, args.batch_size)
    seen = []
    explainer.classifier.register_forward_hook(lambda module, inputs, output: seen.append(output.logits.shape[0]))

    rows = {}
    for steps in [0, *args.steps]:
        seen.clear()
        start = time.perf_counter()
        maps = torch.cat([explainer.explain(batch, refine_steps=steps) for batch in pixel_values.split(args.batch_size)])
        seconds = (time.perf_counter() - start) / len(pixel_values)
        scores, _ = score_maps(explainer.classifier, pixel_values, labels, masks, maps, processor)
        rows[steps] = {"seconds_per_image": seconds, "cost_in_forwards": seconds / forward,
                       "classifier_images_per_image": sum(seen) / len(pixel_values),
                       "scores": {k: v.tolist() for k, v in scores.items()}}
        print(f"{steps} steps: {seconds * 1000:.1f} ms / image = {seconds / forward:.1f} forwards", flush=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"forward_seconds_per_image": forward, "torch_threads": torch.get_num_threads(),
                                  "batch_size": args.batch_size, "rows": rows}))

    base = {k: torch.tensor(v) for k, v in rows[0]["scores"].items()}
    print("| steps | " + " | ".join(METRICS) + " | ms / image | forwards / image | classifier images / image |")
    print("|---" * (len(METRICS) + 4) + "|")
    for steps, row in rows.items():
        cells = []
        for metric, (high_is_good, _) in METRICS.items():
            values = torch.tensor(row["scores"][metric])
            cell = f"{values.mean():.3f}"
            if steps:
                difference, se = paired_difference(values, base[metric])
                cell += {"better": " (+)", "worse": " (-)"}.get(verdict(difference, se, high_is_good), " (=)")
            cells.append(cell)
        print(f"| {steps} | " + " | ".join(cells) + f" | {row['seconds_per_image'] * 1000:.1f} | "
              f"{row['cost_in_forwards']:.1f} | {row['classifier_images_per_image']:.0f} |")


if __name__ == "__main__":
    main()
