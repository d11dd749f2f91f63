"""Does the background texture that one-pass maps carry change the prediction? (issue 22, part 4)

The guided pixel head scores a pixel as an offset plus a per-cell linear function of its colour, so a textured
background (stripes, bricks) shows in the map. This scores each world's trained explainers (``--rows``, suite.py's
result keys) on the same images, each as it is and, with ``--sigma`` > 0, with the head's colour term reading the image
blurred by a Gaussian of ``--sigma`` pixels at inference only (the classifier's features, the target and the offset
unchanged; no retraining; skipped for an explainer trained with a blurred guide, ``AHAConfig.guide_blur_sigma``), and
measures the imprint: per image, |correlation| between the map's and the image's luminance high-pass (each minus its
5 x 5 local mean) over the background (outside the object mask). The table compares every variant with the first.

    python benchmarks/texture_imprint.py --suite_dir DIR --work_dir RUNS --rows default blurred_guide --seeds 0 \
        --sigma 0 --output FILE
"""

import argparse
import json
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


def measure(
    explainer_dirs: dict, world_dir: Path, eval_images: int, sigma: float, scores: bool = True, batch_size: int = 50
) -> dict:
    """Every explainer of ``explainer_dirs`` (row name -> folder) on the world's first test images: its maps as
    trained and, when ``sigma`` > 0 and it reads a sharp guide, with its colour term on an image blurred by ``sigma``;
    variant name -> metric -> per-image scores (the imprint alone unless ``scores``)."""
    processor = AutoImageProcessor.from_pretrained(world_dir / "classifier")
    test = datasets.load_from_disk(str(world_dir / "data"))["test"].select(range(eval_images))
    pixel_values, labels, masks = tensors_of(test, processor)
    rows = {}
    for row, folder in explainer_dirs.items():
        explainer = AHAExplainer.from_pretrained(folder).eval()
        guides = {row: lambda batch: batch}  # the decoder reads it as trained (blurred when so configured)
        if sigma and not explainer.config.guide_blur_sigma:  # a sharp-trained decoder, given a blurred image
            guides[f"{row}, colour term blurred by sigma {sigma} at inference"] = lambda batch: gaussian_blur(
                batch, sigma
            )
        maps = {name: [] for name in guides}
        with torch.no_grad():
            for batch in pixel_values.split(batch_size):
                logits, features = explainer._features(batch)
                target = logits.argmax(-1)
                for name, guide in guides.items():
                    maps[name].append(explainer.decoder(features, target, guide(batch)))
        for name, parts in maps.items():
            row_maps = torch.cat(parts)
            scored = (
                score_maps(explainer.classifier, pixel_values, labels, masks, row_maps, processor)[0] if scores else {}
            )
            scored["texture_imprint"] = imprint(row_maps, pixel_values, masks).double()
            rows[name] = {metric: values.tolist() for metric, values in scored.items()}
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
    """Each variant's mean and its paired difference from the first variant per metric, over every world's images
    (seeds averaged); the variants measured in every run."""
    names = [name for name in next(iter(runs.values())) if all(name in run for run in runs.values())]
    print(f"| metric | {' | '.join(names)} | " + " | ".join(f"{name} minus the first" for name in names[1:]) + " |")
    print("|---" * (2 * len(names)) + "|")
    for metric in next(iter(runs.values()))[names[0]]:
        scores = [per_image(runs, name, metric) for name in names]
        differences = [paired_difference(other, scores[0]) for other in scores[1:]]
        means = " | ".join(f"{values.mean():.3f}" for values in scores)
        print(f"| {metric} | {means} | " + " | ".join(f"{mean:+.4f} ± {se:.4f}" for mean, se in differences) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite_dir", required=True, help="DIR/WORLD/{data,classifier}, as benchmarks/suite.py")
    parser.add_argument("--work_dir", required=True, help="RUNS/WORLD/ROW@SEED/NAME: the explainers, as suite.py's")
    parser.add_argument(
        "--rows", nargs="+", default=["default+1500steps"], help="suite.py's result keys (ROW, ROW+STEPSsteps)"
    )
    parser.add_argument("--worlds", nargs="+", default=["shapes", "letters", "parts"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="none: only --merge")
    parser.add_argument("--sigma", type=float, default=1.5)
    parser.add_argument("--eval_images", type=int, default=100)
    parser.add_argument(
        "--imprint_only",
        action="store_true",
        help="score only the imprint (for trained rows, whose faithfulness benchmarks/suite.py scores)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(HERE / "results" / "texture_imprint.json"))
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        help="add these recorded files' runs (other seeds or rows) to this run's; --output is written anew, so name it "
        "here too to keep its runs",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = {
        f"{world}@{seed}": measure(
            {row: Path(args.work_dir, world, f"{row}@{seed}", row.split("+")[0]) for row in args.rows},
            Path(args.suite_dir, world),
            args.eval_images,
            args.sigma,
            scores=not args.imprint_only,
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
        for key, rows in other["runs"].items():  # other seeds, or other rows of the same seeds
            record["runs"].setdefault(key, {}).update(rows)
        record["command"] += f"; merged: {other['command']}"
    print_table(record["runs"])
    write_text(Path(args.output), json.dumps(record))


if __name__ == "__main__":
    main()
