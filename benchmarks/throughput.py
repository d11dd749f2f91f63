"""Batch inference throughput of `explain` over a dataset on CPU: images per second at several batch sizes.

    python benchmarks/throughput.py [--model shapes-vit-64px] [--images 512] [--batch_sizes 1 32 256]

Two paths, each over the same ``--images`` synthetic 64 px RGB images (random-init classifier from
benchmarks/models.py, built from its config: the cost, not the weights, is measured):

- ``explain``: preprocessed tensors through ``AHAExplainer.explain`` batch by batch (the path of the demo's
  evaluation and of the `evaluate` module's users, who explain tensors and score the maps);
- ``pipeline``: PIL images through ``pipeline("image-attribution")`` with ``batch_size`` (image processor, explain,
  the map resized back to the image, no overlay or curves).

With the default decoder (earlier runs also timed the "conv" pixel head, since removed: benchmarks/results/
throughput.json keeps them). Times are CPU time of this process on
``--threads`` threads (``time.process_time``, the machine is shared) and wall time. Results: ``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe, summary
from models import build_vit
from PIL import Image
from transformers import ViTImageProcessor, pipeline

from aha import AHAExplainer
from aha.persistence.atomic_writer import write_text


HERE = Path(__file__).resolve().parent


def timed(fn) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shapes-vit-64px")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(HERE / "results" / "throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = build_vit(args.model)
    size = classifier.config.image_size
    processor = ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(args.images)]
    pixel_values = processor(images=photos, return_tensors="pt").pixel_values
    explainers = {"default": AHAExplainer.from_classifier(classifier, image_processor=processor).eval()}
    machine = describe()
    rows = []
    for decoder, explainer in explainers.items():
        pipe = pipeline("image-attribution", model=explainer, device="cpu")
        for batch_size in args.batch_sizes:

            def explain_all():
                with torch.no_grad():
                    for batch in pixel_values.split(batch_size):
                        explainer.explain(batch)

            def pipeline_all():
                pipe(photos, batch_size=batch_size, num_workers=0)

            for path, fn in (("explain", explain_all), ("pipeline", pipeline_all)):
                if batch_size == args.batch_sizes[0]:  # warm-up, once per explainer and path
                    fn()
                cpu, wall = timed(fn)
                rows.append(
                    {
                        "decoder": decoder,
                        "path": path,
                        "batch_size": batch_size,
                        "cpu_seconds": cpu,
                        "wall_seconds": wall,
                        "images_per_cpu_second": args.images / cpu,
                        "images_per_wall_second": args.images / wall,
                    }
                )
                print(
                    f"{decoder:>12} {path:>8} batch {batch_size:>4}: {args.images / cpu:8.1f} images / CPU s, "
                    f"{args.images / wall:8.1f} images / wall s",
                    flush=True,
                )
    after = describe()
    print(summary(machine), f"-> load average after: {after['load_average']}")
    print("| decoder | path | " + " | ".join(f"batch {b} (images/s)" for b in args.batch_sizes) + " |")
    print("|---" * (len(args.batch_sizes) + 2) + "|")
    for decoder in explainers:
        for path in ("explain", "pipeline"):
            cells = [
                f"{r['images_per_cpu_second']:.0f}" for r in rows if r["decoder"] == decoder and r["path"] == path
            ]
            print(f"| {decoder} | {path} | " + " | ".join(cells) + " |")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(
        output,
        json.dumps(
            {
                "command": shlex.join(["python", "benchmarks/throughput.py", *sys.argv[1:]]),
                "machine": machine,
                "load_average_after": after["load_average"],
                "rows": rows,
            },
            indent=1,
        ),
    )


if __name__ == "__main__":
    main()
