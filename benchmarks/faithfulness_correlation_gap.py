"""Why one-pass AHA loses faithfulness correlation to integrated gradients (issue 22): the map's scale, or its order?

Faithfulness correlation (Bhatt et al. 2020; :class:`aha.metrics.FaithfulnessCorrelation`, the suite's settings: 100
random subsets of 224 pixels to the mean reference, the logit) correlates a map's sum over each subset with the drop
of the target's logit when the subset is removed. The drops do not depend on the map, so this computes them once per
image and scores, on exactly the same subsets and drops, monotone transforms of AHA's maps (which keep every ranking
metric unchanged and change only the magnitudes: is the gap the scale of a ranking?) and variants of IG's (its order
with uniform magnitudes, its magnitudes blurred: where does its advantage come from? the same for occlusion), plus AHA's
order carrying IG's values (each image's IG values, sorted, assigned to AHA's ranks).

    python benchmarks/faithfulness_correlation_gap.py --suite_dir DIR --work_dir RUNS --seeds 1 2 --output FILE

``DIR`` and ``RUNS`` as for benchmarks/suite.py; the explainers are ``RUNS/WORLD/ROW@SEED/NAME`` (``--row``). The
table gives each variant minus AHA's maps as they are, paired per image (AHA variants: each image's mean over seeds),
per world and pooled over worlds.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch
from machine import describe, summary
from suite import world_classifier, world_inputs

from aha import AHAExplainer
from aha.demo import baseline
from aha.demo.method_comparison import paired_difference, timed_maps
from aha.metrics.curves import order_to_ranks
from aha.metrics.independent import FaithfulnessCorrelation, pearson
from aha.persistence.atomic_writer import write_text
from aha.ranking.perturbation import gaussian_blur
from aha.ranking.sorting import hard_order


HERE = Path(__file__).resolve().parent
BATCH = 50


def ranks(maps: torch.Tensor) -> torch.Tensor:
    """(N, P) each pixel's rank within its map, ascending (P - 1 the most important; ties broken by seed 0)."""
    return order_to_ranks(hard_order(maps, descending=False, seed=0))


def quantiles(pixel_ranks: torch.Tensor) -> torch.Tensor:
    """(N, P) :func:`ranks` as quantiles in [0, 1]."""
    return pixel_ranks.double() / (pixel_ranks.shape[1] - 1)


def aha_variants(maps: torch.Tensor, ig: torch.Tensor) -> dict[str, torch.Tensor]:
    """AHA's (N, P) maps, monotone transforms of them (same ranking, other magnitudes), and AHA's order carrying
    IG's values (each image's IG values, sorted, placed at AHA's ranks)."""
    pixel_ranks = ranks(maps)
    q = quantiles(pixel_ranks)
    return {
        "AHA": maps,
        "AHA, rank quantile": q,
        "AHA, quantile^4": q**4,
        "AHA, quantile^16": q**16,
        "AHA, exp(10 quantile)": torch.exp(10 * q),
        "AHA's order, IG's values": ig.sort(dim=1).values.gather(1, pixel_ranks),
    }


def method_variants(name: str, maps: torch.Tensor, side: int) -> dict[str, torch.Tensor]:
    """A comparison method's (N, P) maps and variants that remove one of its properties: its magnitudes (rank
    quantiles), its pixel detail (blurred). (The library's IG: absolute values summed over channels.)"""
    images = maps.view(-1, 1, side, side)
    return {
        name: maps,
        f"{name}, rank quantile": quantiles(ranks(maps)),
        f"{name} blurred, sigma 1.5 px": gaussian_blur(images, 1.5).flatten(1),
        f"{name} blurred, sigma 3 px": gaussian_blur(images, 3.0).flatten(1),
    }


def measure(world_dir: Path, explainer_dirs: list[Path], eval_images: int) -> dict[str, list[float]]:
    """Per-image faithfulness correlation of every variant on the world's first ``eval_images`` test images."""
    processor, pixel_values, labels, masks = world_inputs(world_dir, world_dir / "data", eval_images)
    classifier = world_classifier(world_dir)
    side = pixel_values.shape[-1]
    ig, occlusion = (
        timed_maps(baseline(name, classifier, 0), pixel_values, BATCH)[0].flatten(1).double()
        for name in ("integrated_gradients", "occlusion")
    )
    metric = FaithfulnessCorrelation()
    # the suite's call: one generator seeded 0 for all images; the drops are the map's only input-independent part
    result = metric(classifier, pixel_values, ig.view(-1, side, side), generator=torch.Generator().manual_seed(0))
    subsets = metric.draw_subsets(len(ig), side * side, torch.Generator().manual_seed(0)).flatten(1)
    drops = result.score_drops.double()

    def correlation(maps: torch.Tensor) -> torch.Tensor:
        sums = maps.double().gather(1, subsets).view(len(maps), metric.runs, metric.subset_size).sum(dim=2)
        return pearson(sums, drops)

    assert torch.equal(correlation(ig), result.correlation), "the subsets differ from the metric's own"
    variants = {**method_variants("IG", ig, side), **method_variants("occlusion", occlusion, side)}
    scores = {name: correlation(maps) for name, maps in variants.items()}
    per_seed = []
    for folder in explainer_dirs:
        explainer = AHAExplainer.from_pretrained(folder).eval()
        maps = timed_maps(explainer.explain, pixel_values, BATCH)[0].flatten(1).double()
        per_seed.append({name: correlation(m) for name, m in aha_variants(maps, ig).items()})
    for name in per_seed[0]:
        scores[name] = torch.stack([seed[name] for seed in per_seed]).mean(dim=0)
    return {name: value.tolist() for name, value in scores.items()}


def table(worlds: dict[str, dict[str, list[float]]]) -> str:
    """Markdown: each variant's mean and its paired difference with AHA's maps, per world and pooled."""
    names = list(next(iter(worlds.values())))
    order = [n for n in names if n.startswith("AHA")] + [n for n in names if not n.startswith("AHA")]
    header = " | ".join(f"{world}" for world in worlds)
    lines = [
        f"| variant | {header} | pooled | minus AHA, pooled |",
        "|---" * (len(worlds) + 3) + "|",
    ]
    pooled = {n: torch.tensor([v for world in worlds.values() for v in world[n]]) for n in order}
    for name in order:
        means = " | ".join(f"{torch.tensor(world[name]).mean():.3f}" for world in worlds.values())
        mean, error = paired_difference(pooled[name], pooled["AHA"])
        difference = "" if name == "AHA" else f"{mean:+.3f} ± {error:.3f}"
        lines.append(f"| {name} | {means} | {pooled[name].mean():.3f} | {difference} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite_dir", required=True, help="an `aha demo --world all` folder (its classifiers)")
    parser.add_argument("--work_dir", required=True, help="RUNS/WORLD/ROW@SEED/NAME: the explainers, as suite.py's")
    parser.add_argument("--worlds", nargs="+", default=["shapes", "letters", "parts"])
    parser.add_argument("--row", default="blurred_guide+1500steps", help="the suite row whose explainers are read")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--eval_images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(HERE / "results" / "faithfulness_correlation_gap.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = describe()
    worlds = {}
    for world in args.worlds:
        folders = [Path(args.work_dir, world, f"{args.row}@{seed}", args.row.split("+")[0]) for seed in args.seeds]
        worlds[world] = measure(Path(args.suite_dir, world), folders, args.eval_images)
    print(summary(machine))
    print(table(worlds))
    command = shlex.join(["python", "benchmarks/faithfulness_correlation_gap.py", *sys.argv[1:]])
    record = {"command": command, "machine": machine, "row": args.row, "seeds": args.seeds, "worlds": worlds}
    write_text(Path(args.output), json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
