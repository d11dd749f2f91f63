"""`aha evaluate` throughput on CPU: images per second on one process and on two under `accelerate launch`.

    python benchmarks/evaluate_speed.py [--images 48] [--methods aha,occlusion] [--processes 1 2]

Setup (built here, nothing downloaded): the AHA Shapes-sized ViT of benchmarks/models.py (64 px, 0.56 M parameters,
random init: the cost, not the weights, is measured), an AHA explainer of it (default decoder, untrained) and a
saved dataset of ``--images`` random 64 px RGB images. Each run is the console command as users run it, one torch
thread per process (``OMP_NUM_THREADS=1``), default protocol (deletion, insertion, positive, negative). The rate is
the one the command prints: images scored over the wall time of the slowest process's scoring loop (model loading
and start-up excluded); the subprocess's whole wall time is recorded too. Each configuration is run ``--repeats``
times, interleaved. Results: ``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
from machine import describe, summary
from models import build_vit
from PIL import Image
from transformers import ViTImageProcessor

from aha import AHAExplainer
from aha.persistence.atomic_writer import write_text


HERE = Path(__file__).resolve().parent
RATE = re.compile(r"scored (\d+) new images in ([\d.]+) s \(([\d.]+) images/s on (\d+) process")


def build_setup(folder: Path, images: int) -> None:
    classifier = build_vit("shapes-vit-64px")
    processor = ViTImageProcessor(size={"height": 64, "width": 64})
    AHAExplainer.from_classifier(classifier, image_processor=processor).save_pretrained(folder / "explainer")
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(images)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=5)})
    split = datasets.Dataset.from_dict({"image": pictures, "label": [i % 5 for i in range(images)]}, features=features)
    datasets.DatasetDict({"validation": split}).save_to_disk(folder / "data")


def run(folder: Path, processes: int, args, repeat: int) -> dict:
    command = [
        "-m",
        "aha",
        "evaluate",
        "--model",
        str(folder / "explainer"),
        "--dataset_path",
        str(folder / "data"),
        "--methods",
        args.methods,
        "--batch_size",
        str(args.batch_size),
        "--output_dir",
        str(folder / f"out-{processes}-{repeat}"),
    ]
    if processes > 1:
        command = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes), *command]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    images, seconds, rate, _ = RATE.search(done.stdout).groups()
    return {
        "processes": processes,
        "repeat": repeat,
        "images": int(images),
        "loop_seconds": float(seconds),
        "images_per_second": float(rate),
        "command_wall_seconds": round(wall, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--methods", default="aha,occlusion")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "results" / "evaluate_speed.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        build_setup(folder, args.images)
        runs = [run(folder, processes, args, repeat) for repeat in range(args.repeats) for processes in args.processes]
        identical = (
            len({(folder / f"out-{r['processes']}-{r['repeat']}" / "per_image.jsonl").read_text() for r in runs}) == 1
        )
    best = {p: max(r["images_per_second"] for r in runs if r["processes"] == p) for p in args.processes}
    result = {
        "command": shlex.join(["python", "benchmarks/evaluate_speed.py", *sys.argv[1:]]),
        "machine": describe(),
        "settings": {**vars(args), "output": os.path.relpath(args.output, HERE.parent)},
        "runs": runs,
        "best_images_per_second": best,
        "per_image_files_identical": identical,
    }
    write_text(args.output, json.dumps(result, indent=2) + "\n")
    print(summary(result["machine"]))
    for r in runs:
        print(
            f"{r['processes']} process(es), repeat {r['repeat']}: {r['images_per_second']:.2f} images/s "
            f"({r['images']} images in {r['loop_seconds']:.1f} s; command {r['command_wall_seconds']:.1f} s)"
        )
    print(f"per-image files identical across runs: {identical}")


if __name__ == "__main__":
    main()
