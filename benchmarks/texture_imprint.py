"""Does the background texture that one-pass maps carry change the prediction? (issue 22, part 4)

The guided pixel head scores a pixel as an offset plus a per-cell linear function of its colour, so a textured
background (stripes, bricks) shows in the map. This scores each world's trained explainer twice on the same images:
as it is, and with the head's colour term reading the image blurred by a Gaussian of ``--sigma`` pixels (the
classifier's features, the target and the offset unchanged; no retraining), and measures the imprint: per image,
|correlation| between the map's and the image's luminance high-pass (each minus its 5 x 5 local mean) over the
background (outside the object mask).

    python benchmarks/texture_imprint.py --suite_dir DIR --work_dir RUNS --seeds 0 --output FILE
"""

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from machine import describe
from transformers import AutoImageProcessor

from aha import AHAExplainer
from aha.demo.classifier import tensors_of
from aha.demo.method_comparison import paired_difference, score_maps
from aha.persistence.atomic_writer import write_text
from aha.ranking.perturbation import gaussian_blur


HERE = Path(__file__).resolve().parent


def high_pass(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) minus its 5 x 5 local mean."""
    return images - F.avg_pool2d(images[:, None], 5, 1, 2, count_include_pad=False)[:, 0]


def imprint(maps: torch.Tensor, pixel_values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N,) |correlation| of the maps' and the images' luminance high-pass over each image's background."""
    background = (~masks).to(maps.dtype)
    count = background.sum(dim=(1, 2), keepdim=True)
    a, b = high_pass(maps.float()), high_pass(pixel_values.mean(1))
    a = (a - (a * background).sum(dim=(1, 2), keepdim=True) / count) * background
    b = (b - (b * background).sum(dim=(1, 2), keepdim=True) / count) * background
    covariance = (a * b).sum(dim=(1, 2))
    return (covariance / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1) + 1e-12)).abs()


def measure(explainer_dir: Path, world_dir: Path, eval_images: int, sigma: float, batch_size: int = 50) -> dict:
    explainer = AHAExplainer.from_pretrained(explainer_dir).eval()
    processor = AutoImageProcessor.from_pretrained(world_dir / "classifier")
    test = datasets.load_from_disk(str(world_dir / "data"))["test"].select(range(eval_images))
    pixel_values, labels, masks = tensors_of(test, processor)
    kernel = 2 * math.ceil(3 * sigma) + 1
    maps = {"as trained": [], f"colour term on an image blurred by sigma {sigma}": []}
    with torch.no_grad():
        for batch in pixel_values.split(batch_size):
            logits, features = explainer._features(batch)
            target = logits.argmax(-1)
            for name, guide in zip(maps, (batch, gaussian_blur(batch, sigma, kernel))):
                maps[name].append(explainer.decoder(features, target, guide))
    rows = {}
    for name, parts in maps.items():
        row_maps = torch.cat(parts)
        scores, _ = score_maps(explainer.classifier, pixel_values, labels, masks, row_maps, processor)
        scores["texture_imprint"] = imprint(row_maps, pixel_values, masks).double()
        rows[name] = {metric: values.tolist() for metric, values in scores.items()}
    return rows


def per_image(runs: dict, row: str, metric: str) -> torch.Tensor:
    """``metric`` of ``row`` per image, each image's scores averaged over its world's seeds, worlds concatenated
    (``runs``: "WORLD@SEED" -> :func:`measure`'s result)."""
    worlds = dict.fromkeys(key.split("@")[0] for key in runs)
    seeds_of = {
        world: [run[row][metric] for key, run in runs.items() if key.split("@")[0] == world] for world in worlds
    }
    return torch.cat([torch.tensor(scores).mean(0) for scores in seeds_of.values()])


def print_table(runs: dict) -> None:
    """Both rows' means and their paired difference per metric, over every world's images (seeds averaged)."""
    names = list(next(iter(runs.values())))
    print("| metric | as trained | blurred colour term | difference (paired per image, seeds averaged) |")
    print("|---|---|---|---|")
    for metric in next(iter(runs.values()))[names[0]]:
        base, other = (per_image(runs, name, metric) for name in names)
        mean, se = paired_difference(other, base)
        print(f"| {metric} | {base.mean():.3f} | {other.mean():.3f} | {mean:+.4f} ± {se:.4f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite_dir", required=True, help="DIR/WORLD/{data,classifier}, as benchmarks/suite.py")
    parser.add_argument("--work_dir", required=True, help="RUNS/WORLD/default+1500steps@SEED/default: the explainers")
    parser.add_argument("--worlds", nargs="+", default=["shapes", "letters", "parts"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="none: only --merge")
    parser.add_argument("--sigma", type=float, default=1.5)
    parser.add_argument("--eval_images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(HERE / "results" / "texture_imprint.json"))
    parser.add_argument(
        "--merge", nargs="*", default=[], help="add these recorded files' runs (other seeds) to --output"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = {
        f"{world}@{seed}": measure(
            Path(args.work_dir, world, f"default+1500steps@{seed}", "default"),
            Path(args.suite_dir, world),
            args.eval_images,
            args.sigma,
        )
        for world in args.worlds
        for seed in args.seeds
    }
    record = {
        "command": shlex.join(["python", "benchmarks/texture_imprint.py", *sys.argv[1:]]),
        "machine": describe(),
        "runs": runs,
    }
    for path in args.merge:
        other = json.loads(Path(path).read_text())
        record["runs"].update(other["runs"])
        record["command"] += f"; merged: {other['command']}"
    print_table(record["runs"])
    write_text(Path(args.output), json.dumps(record))


if __name__ == "__main__":
    main()
