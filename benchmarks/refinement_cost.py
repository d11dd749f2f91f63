"""Test-time refinement: what a step costs under each refinement plan, and (with a trained explainer) what it gains.

    python benchmarks/refinement_cost.py                                   # counted cost at 64 px and ViT-B/16
    python benchmarks/refinement_cost.py --demo_dir aha-demo --steps 1 3 5 # + faithfulness and time on AHA Shapes

Cost (counted, nothing timed): for each plan (``aha.ranking.refinement.RefinementPlan``) the FLOPs of one refinement step (the
objective's forward and backward on a batch of maps, the classifier's recomputed forwards included) counted by
torch.utils.flop_counter.FlopCounterMode on models built on the meta device, divided by the FLOPs of one
classifier forward of the same images: forward-equivalents per map per step. Also the images the classifier sees
per map per step (a forward hook) and the Sinkhorn problem's size. FlopCounterMode counts matrix products,
convolutions and attention, not the Sinkhorn iterations, the score normalisation and other elementwise work:
those show in the measured time of the second part only.

Gain (``--demo_dir``, the folder ``aha demo --output DIR`` wrote; the plan "default" is ``explain(refine_steps=N)``'s
refinement, so this is also the benchmark of what 1, 3 and 5 steps of it gain): for each plan and number of steps, the first
``--eval_images`` test images are explained and refined, scored with the demo's metrics, and timed (CPU time of
this process, in classifier forwards of the same images). Results: ``--output`` (JSON) and tables.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
import transformers as T
from machine import describe, summary
from models import VIT_CONFIGS
from torch.utils.flop_counter import FlopCounterMode

from aha import AHAConfig, AHAExplainer
from aha.modeling.decoder_cost import count_flops
from aha.persistence.atomic_writer import write_text
from aha.ranking.refinement import RefinementPlan, plan_grid, refine_with_plan, refinement_loss


HERE = Path(__file__).resolve().parent

# "today" is the plan explain() used before 6 fractions became the default: num_fractions=None, the training config's
# 8 fractions (the name of the recorded rows in results/refinement_*.json); the plans below it keep those 8 unless
# they name a number. Rows recorded before 2026-12-07 ran with the change kept in blocks, cell_upsampling="nearest"
# (the default then; "nearest_cells" below). Every plan but "default" refines against the "mean" reference alone, as
# explain() did until 2026-12-08 ("mean_only"), so that each name stays the plan its recorded rows ran.


def recorded_plan(**changes) -> RefinementPlan:
    """A plan of the recorded rows: ``changes`` to the default plan, against the "mean" reference alone."""
    return RefinementPlan(references=("mean",), **changes)


PLANS = {
    "default": RefinementPlan(),
    "mean_only": recorded_plan(),
    "today": recorded_plan(num_fractions=None),
    "fractions_5": recorded_plan(num_fractions=5),
    "alternate": recorded_plan(num_fractions=None, alternate_terms=True),
    "grid_1_patch": recorded_plan(num_fractions=None, grid_cell_patches=1.0),
    "no_checkpointing": recorded_plan(num_fractions=None, checkpoint=False),
    "alternate_fractions_5": recorded_plan(num_fractions=5, alternate_terms=True),
    "alternate_fractions_5_grid_1_patch_offset_4": recorded_plan(
        num_fractions=5, alternate_terms=True, grid_cell_patches=1.0, offset_stride=4
    ),
    "offset_4": recorded_plan(offset_stride=4),
    "offset_2": recorded_plan(offset_stride=2),
    "nearest_cells": recorded_plan(cell_upsampling="nearest"),
    "alternate_no_checkpointing": recorded_plan(num_fractions=None, alternate_terms=True, checkpoint=False),
    "sinkhorn_10": recorded_plan(num_fractions=None, sinkhorn_iterations=10),
    "alternate_fractions_5_sinkhorn_10": recorded_plan(num_fractions=5, alternate_terms=True, sinkhorn_iterations=10),
}


def counted_cost(model: str, plan: RefinementPlan, batch_size: int = 2) -> dict:
    """Forward-equivalents and classifier images per map of one step of ``plan`` (averaged over two steps, so that
    alternating plans count both of their terms)."""
    config = T.ViTConfig(**VIT_CONFIGS[model], architectures=["ViTForImageClassification"])
    with torch.device("meta"):
        explainer = AHAExplainer(AHAConfig(classifier_config=config))
    size = config.image_size
    pixels = torch.zeros(batch_size, 3, size, size, device="meta")
    target = torch.zeros(batch_size, dtype=torch.long, device="meta")
    forward = count_flops(explainer.classifier, pixel_values=pixels)
    seen = []
    hook = explainer.classifier.register_forward_hook(
        lambda module, inputs, output: seen.append(output.logits.shape[0])
    )
    flops = 0
    for step in range(2):
        maps = torch.zeros(batch_size, size, size, device="meta", requires_grad=True)

        with FlopCounterMode(display=False) as counter:
            refinement_loss(explainer, pixels, maps, target, plan, step).sum().backward()
        flops += counter.get_total_flops()
    hook.remove()
    grid = plan_grid(explainer, plan, size, size)
    return {
        "forward_equivalents_per_step": flops / 2 / forward,
        "classifier_images_per_map_per_step": sum(seen) / 2 / batch_size,
        "grid": grid,
        "sinkhorn_entries_per_map": grid**4,
    }


def grid_artefact(maps: torch.Tensor, cell: int) -> torch.Tensor:
    """How much of the refinement grid shows in (N, H, W) ``maps``, per image: the mean absolute step between
    neighbouring pixels across the borders of ``cell``-pixel cells over the mean step between neighbours inside
    cells (about 1: no trace of the grid; blocks raise it)."""
    steps = [(maps[:, :, 1:] - maps[:, :, :-1]).abs(), (maps[:, 1:, :] - maps[:, :-1, :]).abs().transpose(1, 2)]
    border = (torch.arange(1, maps.shape[-1]) % cell) == 0
    across = sum(step[:, :, border].mean(dim=(1, 2)) for step in steps)
    inside = sum(step[:, :, ~border].mean(dim=(1, 2)) for step in steps)
    return across / inside


def measured(
    demo_dir: Path,
    plans: dict,
    steps_list: list[int],
    eval_images: int,
    batch_size: int,
    explainer_dir: Path | None = None,
) -> dict:
    import datasets
    from transformers import AutoImageProcessor

    from aha.demo.classifier import tensors_of
    from aha.demo.method_comparison import forward_seconds_per_image, score_maps

    explainer = AHAExplainer.from_pretrained(explainer_dir or demo_dir / "explainer").eval()
    processor = AutoImageProcessor.from_pretrained(demo_dir / "classifier")
    test = datasets.load_from_disk(str(demo_dir / "data"))["test"].select(range(eval_images))
    pixel_values, labels, masks = tensors_of(test, processor)
    cell = pixel_values.shape[-1] // plan_grid(
        explainer, RefinementPlan(), *pixel_values.shape[-2:]
    )  # the finest grid's
    forward = forward_seconds_per_image(explainer.classifier, pixel_values, batch_size)
    with torch.no_grad():
        outputs = [explainer(batch) for batch in pixel_values.split(batch_size)]
    maps0 = torch.cat([o.attributions for o in outputs])
    targets = torch.cat([o.target for o in outputs])
    rows = {
        "0 steps": {
            "steps": 0,
            "seconds_per_image": 0.0,
            "grid_artefact": grid_artefact(maps0, cell).tolist(),
            "scores": {
                k: v.tolist()
                for k, v in score_maps(explainer.classifier, pixel_values, labels, masks, maps0, processor)[0].items()
            },
        }
    }
    for name, plan in plans.items():
        for steps in steps_list:
            start = time.process_time()
            maps = torch.cat(
                [
                    refine_with_plan(explainer, x, m, t, steps, explainer.config.refine_lr, plan)
                    for x, m, t in zip(
                        pixel_values.split(batch_size), maps0.split(batch_size), targets.split(batch_size)
                    )
                ]
            )
            seconds = (time.process_time() - start) / len(pixel_values)
            scores, _ = score_maps(explainer.classifier, pixel_values, labels, masks, maps, processor)
            rows[f"{name}, {steps} steps"] = {
                "plan": name,
                "steps": steps,
                "seconds_per_image": seconds,
                "forwards_per_image_per_step": seconds / forward / steps,
                "grid_artefact": grid_artefact(maps, cell).tolist(),
                "scores": {k: v.tolist() for k, v in scores.items()},
            }
            print(
                f"{name}, {steps} steps: {seconds * 1000:.1f} ms / image, {seconds / forward / steps:.1f} forwards "
                "per step",
                flush=True,
            )
    return {"forward_seconds_per_image": forward, "batch_size": batch_size, "rows": rows}


def pooled(worlds: dict) -> dict:
    """The measurements of several worlds (name -> :func:`measured`'s result) as one, for the rows measured on every
    world: each row's per-image scores and grid artefacts concatenated (the same images in every row of a world, so
    differences stay paired), its times averaged."""
    first = next(iter(worlds.values()))["rows"]
    rows = {}
    for name, row in first.items():
        if not all(name in w["rows"] for w in worlds.values()):
            continue
        each = [w["rows"][name] for w in worlds.values()]
        rows[name] = dict(
            row,
            seconds_per_image=sum(r["seconds_per_image"] for r in each) / len(each),
            grid_artefact=[v for r in each for v in r["grid_artefact"]],
            scores={metric: [v for r in each for v in r["scores"][metric]] for metric in row["scores"]},
        )
        if row["steps"]:
            rows[name]["forwards_per_image_per_step"] = sum(r["forwards_per_image_per_step"] for r in each) / len(each)
    return {"rows": rows}


def print_measured(result: dict, reference: str = "0 steps") -> None:
    """The table of :func:`measured`'s rows, each marked against the row ``reference`` (paired, 2 s.e.)."""
    from aha.demo.method_comparison import METRICS, compared_mean
    from aha.demo.report import table

    rows = result["rows"]
    base = {k: torch.tensor(v) for k, v in rows[reference]["scores"].items()}
    print(
        "\n".join(
            table(
                ["plan, steps", *METRICS, "grid artefact", "ms / image", "forwards / image / step"],
                [
                    [
                        name,
                        *(
                            compared_mean(
                                torch.tensor(row["scores"][metric]),
                                None if name == reference else base[metric],
                                definition.high_is_good,
                            )
                            for metric, definition in METRICS.items()
                        ),
                        f"{torch.tensor(row['grid_artefact']).mean():.2f}" if "grid_artefact" in row else "-",
                        f"{row['seconds_per_image'] * 1000:.1f}",
                        f"{row['forwards_per_image_per_step']:.1f}" if row["steps"] else "-",
                    ]
                    for name, row in rows.items()
                ],
            )
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["shapes-vit-64px", "vit-b16-224px"], choices=list(VIT_CONFIGS))
    parser.add_argument("--plans", nargs="+", default=list(PLANS), choices=list(PLANS))
    parser.add_argument("--demo_dir", default=None, help="measure faithfulness and time on this aha demo folder")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--explainer", default=None, help="the explainer to refine (default: DEMO_DIR/explainer)")
    parser.add_argument("--eval_images", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(HERE / "results" / "refinement_cost.json"))
    parser.add_argument(
        "--macro",
        default=None,
        help="print the table of a recorded file of several worlds ({'worlds': {name: {'measured': ...}}}), their "
        "images pooled, and exit",
    )
    parser.add_argument("--reference", default="0 steps", help="the row the --macro table marks the others against")
    args = parser.parse_args()
    if args.macro:
        worlds = json.loads(Path(args.macro).read_text())["worlds"]
        print_measured(pooled({name: world["measured"] for name, world in worlds.items()}), args.reference)
        return
    torch.set_num_threads(args.threads)
    machine = describe()
    counted = {model: {name: counted_cost(model, PLANS[name]) for name in args.plans} for model in args.models}
    print(summary(machine))
    print(
        "| plan | "
        + " | ".join(
            f"{m}: forward-equivalents / step | classifier images / step | grid, Sinkhorn entries" for m in args.models
        )
        + " |"
    )
    print("|---" * (3 * len(args.models) + 1) + "|")
    for name in args.plans:
        cells = [
            f"{counted[m][name]['forward_equivalents_per_step']:.1f} | "
            f"{counted[m][name]['classifier_images_per_map_per_step']:.0f} | "
            f"{counted[m][name]['grid']}, {counted[m][name]['sinkhorn_entries_per_map']:,}"
            for m in args.models
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    result = {
        "command": shlex.join(["python", "benchmarks/refinement_cost.py", *sys.argv[1:]]),
        "machine": machine,
        "counted": counted,
    }
    if args.demo_dir:
        result["measured"] = measured(
            Path(args.demo_dir),
            {n: PLANS[n] for n in args.plans},
            args.steps,
            args.eval_images,
            args.batch_size,
            args.explainer and Path(args.explainer),
        )
        result["load_average_after"] = describe()["load_average"]
        print_measured(result["measured"])
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(output, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
