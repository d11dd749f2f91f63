"""Offline distillation of test-time refinement: can the one-pass decoder learn the maps refinement finds?

    python benchmarks/refinement_distillation.py --suite_dir DIR --work_dir RUNS [--worlds shapes letters parts]
        [--seeds 1 2] [--variants decoder two_blocks] [--train_images 1024] [--steps 4000]
    python benchmarks/refinement_distillation.py --markdown

For each world and seed, the suite's trained explainer (``RUNS/WORLD/blurred_guide+1500steps@SEED``, trained by
``benchmarks/suite.py``) refines the world's first ``--train_images`` training images once (``explain``'s default
refinement, ``--refine_steps`` steps, predicted class); then its decoder alone is fine-tuned, the classifier frozen,
to reproduce those refined maps (loss: one minus the Pearson correlation of the map with the refined map, per image;
Adam, batches of 16 drawn by a generator of the seed), and scored in one pass on the suite's test images with the
demo's core metrics. Variants: ``decoder`` fine-tunes the trained decoder as it is; ``two_blocks`` first grows it by
two residual units at the token grid (``AHAConfig.decoder_blocks`` 2), initialised to the identity so that it
starts from the trained maps, for the capacity to follow the refined maps' detail.

Rows go to ``--output`` in ``benchmarks/suite.py``'s format (``distilled_VARIANT+1500steps@SEED``), resumed from it.
``--markdown`` prints each row (and refinement's) minus the one-pass explainer, paired over the same test images,
per world and on the macro average, from this file and results/suite.json.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from machine import describe
from safetensors.torch import load_file
from suite import CORE_METRICS, differences, world_inputs
from transformers import AutoImageProcessor

from aha import AHAExplainer
from aha.demo.classifier import tensors_of
from aha.demo.method_comparison import score_maps, timed_maps
from aha.demo.report import table
from aha.demo.worlds import WORLDS
from aha.metrics.independent import pearson
from aha.modeling.modeling_aha import AHADecoder
from aha.persistence.atomic_writer import write_safetensors, write_text


HERE = Path(__file__).resolve().parent
#: the suite's row whose explainers are distilled, and its folder name inside each run
ROW, ROW_FOLDER = "blurred_guide+1500steps", "blurred_guide"
VARIANTS = ("decoder", "two_blocks")
MAP_BATCH = 64
#: the cell sides at which :func:`residual_shares` measures what refinement changes (64 px images: 8 is the classifier's
#: patch grid, 16 the finest ranking grid of training and refinement)
RESIDUAL_SIDES = (4, 8, 16, 32)


def with_two_blocks(decoder: AHADecoder) -> AHADecoder:
    """``decoder`` (no grid blocks) grown by two residual units at the token grid that start as the identity: the
    same maps until fine-tuning moves them. The FiLM of the new units starts at scale 1, shift 0."""
    width = decoder.projection.out_channels
    grown = AHADecoder(
        [norm.normalized_shape[0] for norm in decoder.norms],
        decoder.class_embedding.num_embeddings,
        width,
        decoder.to_head.out_features - 1,
        num_blocks=2,
        guide_blur_sigma=decoder.guide_blur_sigma,
    )
    state = {k: v for k, v in decoder.state_dict().items() if not k.startswith("film.")}
    grown.load_state_dict(state, strict=False)
    with torch.no_grad():
        for name in ("weight", "bias"):
            new, old = getattr(grown.film, name), getattr(decoder.film, name)
            new.zero_()
            new[:width] = old[:width]  # the first scale
            new[3 * width : 4 * width] = old[width:]  # the first shift (the scales of 3 units, then the shifts)
        for block in grown.blocks:
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
    return grown.to(decoder.to_head.weight.device)


def refined_training_maps(explainer, pixel_values, refine_steps: int, cache: Path) -> tuple[torch.Tensor, float]:
    """The refined maps of ``pixel_values`` (read from ``cache``, a safetensors file, when an earlier run wrote it)
    and the seconds refinement took."""
    if cache.is_file():
        stored = load_file(cache)
        return stored["maps"], float(stored["seconds"])
    maps, seconds_per_image = timed_maps(
        partial(explainer.explain, refine_steps=refine_steps), pixel_values, MAP_BATCH
    )
    seconds = seconds_per_image * len(pixel_values)
    write_safetensors(str(cache), {"maps": maps, "seconds": torch.tensor(seconds)})
    return maps, seconds


def distil(explainer, pixel_values, goal, target, steps: int, lr: float, seed: int) -> dict:
    """Fine-tune ``explainer.decoder`` for ``steps`` Adam steps so that its maps of ``pixel_values`` correlate with
    the (N, H, W) maps ``goal``; returns the mean loss (one minus the Pearson correlation) of the first and of the
    last 200 steps."""
    explainer.decoder.train()
    optimizer = torch.optim.Adam(explainer.decoder.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        index = torch.randint(len(pixel_values), (16,), generator=generator)
        maps = explainer(pixel_values[index], target=target[index]).attributions
        loss = (1 - pearson(maps.flatten(1), goal[index].flatten(1))).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    explainer.decoder.eval()
    return {"first_loss": sum(losses[:200]) / len(losses[:200]), "last_loss": sum(losses[-200:]) / len(losses[-200:])}


def trained_and_refined(args, world: str, seed: int):
    """The suite's trained explainer of ``world`` and ``seed``, the world's first ``args.train_images`` training images
    (N, C, H, W), their refined maps (N, H, W) and the seconds refinement took."""
    folder = Path(args.suite_dir) / world
    processor = AutoImageProcessor.from_pretrained(folder / "classifier")
    train = datasets.load_from_disk(str(folder / "data"))["train"].select(range(args.train_images))
    train_x = tensors_of(train, processor)[0]
    explainer = AHAExplainer.from_pretrained(Path(args.work_dir) / world / f"{ROW}@{seed}" / ROW_FOLDER).eval()
    cache = (
        Path(args.work_dir) / world / f"{ROW}@{seed}" / f"refined_{args.train_images}_{args.refine_steps}.safetensors"
    )
    return explainer, train_x, *refined_training_maps(explainer, train_x, args.refine_steps, cache)


def residual_shares(explainer, pixel_values, refined, sides=RESIDUAL_SIDES) -> dict[str, float]:
    """What refinement changes, by scale: of the refined minus the one-pass maps (each standardised per image), the
    share of the variance that a smooth field of ``side`` x ``side`` cells (cell means, bilinearly interpolated)
    explains, for each side."""
    one_pass = timed_maps(explainer.explain, pixel_values, MAP_BATCH)[0]
    change = torch.stack([refined, one_pass]).flatten(2)
    change = (change - change.mean(2, keepdim=True)) / change.std(2, keepdim=True)
    change = (change[0] - change[1]).view_as(refined).unsqueeze(1)
    shares = {}
    for side in sides:
        smooth = F.interpolate(
            F.adaptive_avg_pool2d(change, side), size=change.shape[-2:], mode="bilinear", align_corners=False
        )
        shares[str(side)] = 1 - ((change - smooth).pow(2).mean() / change.pow(2).mean()).item()
    return shares


def run(args, world: str, seed: int, variant: str) -> dict:
    folder = Path(args.suite_dir) / world
    processor, test_x, test_y, test_m = world_inputs(folder, folder / "data", args.eval_images)
    explainer, train_x, refined, refine_seconds = trained_and_refined(args, world, seed)
    with torch.no_grad():
        target = torch.cat([explainer(batch).target for batch in train_x.split(MAP_BATCH)])
    if variant == "two_blocks":
        explainer.decoder = with_two_blocks(explainer.decoder)
    start = time.perf_counter()
    losses = distil(explainer, train_x, refined, target, args.steps, args.lr, seed)
    train_seconds = time.perf_counter() - start
    maps = timed_maps(explainer.explain, test_x, MAP_BATCH)[0]
    scores, _ = score_maps(explainer.classifier, test_x, test_y, test_m, maps, processor, metrics=CORE_METRICS)
    return {
        "what": f"{ROW}@{seed} distilled from its {args.refine_steps}-step refinement of {args.train_images} "
        f"training images ({variant})",
        "refine_seconds": refine_seconds,
        "train_seconds": train_seconds,
        **losses,
        "settings": {k: getattr(args, k) for k in ("train_images", "refine_steps", "steps", "lr", "eval_images")},
        "scores": {k: v.tolist() for k, v in scores.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite_dir", default="aha-demo", help="An `aha demo --world all --output` folder.")
    parser.add_argument("--work_dir", default="/tmp/aha-suite", help="benchmarks/suite.py's --work_dir.")
    parser.add_argument("--worlds", nargs="+", choices=sorted(WORLDS), default=list(WORLDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--train_images", type=int, default=1024)
    parser.add_argument("--refine_steps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval_images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(HERE / "results" / "refinement_distillation.json"))
    parser.add_argument("--markdown", action="store_true", help="Only print the table of --output.")
    args = parser.parse_args()
    output = Path(args.output)
    record = json.loads(output.read_text()) if output.is_file() else {"runs": {}, "machine": []}
    if args.markdown:
        suite = json.loads((HERE / "results" / "suite.json").read_text())["runs"]
        worlds = [world for world in WORLDS if world in record["runs"]]
        merged = {world: {**suite[world], **record["runs"][world]} for world in worlds}
        rows = sorted({key.partition("@")[0] for world in worlds for key in record["runs"][world]})
        metrics = ["deletion_mean", "deletion_blur", "insertion_lrf", "insertion_rise", "positive_perturbation"]
        metrics += ["negative_perturbation", "pointing_game", "mask_auroc"]
        seeds = sorted({int(key.partition("@")[2]) for world in worlds for key in record["runs"][world]})
        print(differences(merged, worlds, ROW, [*rows, f"{ROW}+refine5"], metrics, seeds))
        shares = record.get("residual", {})
        header = ["refined minus one-pass, of", *(f"{side} x {side} cells" for side in RESIDUAL_SIDES)]
        lines = [[key, *(f"{share[str(side)]:.3f}" for side in RESIDUAL_SIDES)] for key, share in shares.items()]
        print("\n" + "\n".join(table(header, lines)))
        return
    torch.set_num_threads(args.threads)
    for world in args.worlds:
        for seed in args.seeds:
            if f"{world}@{seed}" not in record.setdefault("residual", {}):
                record["residual"][f"{world}@{seed}"] = residual_shares(*trained_and_refined(args, world, seed)[:3])
                write_text(output, json.dumps(record))
            for variant in args.variants:
                key = f"distilled_{variant}+1500steps@{seed}"
                if key in record["runs"].get(world, {}):
                    continue
                result = run(args, world, seed, variant)
                record["runs"].setdefault(world, {})[key] = result
                record["machine"].append(describe())
                write_text(output, json.dumps(record))
                means = {k: round(sum(v) / len(v), 4) for k, v in result["scores"].items()}
                print(world, key, round(result["last_loss"], 4), means, flush=True)


if __name__ == "__main__":
    main()
