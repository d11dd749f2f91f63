"""The explainer's recipe rows and the baselines over the benchmark suite's worlds: per world, and the macro average.

    python benchmarks/suite.py --suite_dir DIR [--data_dir DATA_DIR] [--worlds shapes letters parts]
        [--rows default second_class ...] [--seeds 0 1 2] [--baselines rise occlusion ...] [--steps 1500]
        [--eval_images 100]
    python benchmarks/suite.py --markdown [--output FILE]

``DIR`` is an ``aha demo --world all --output DIR`` folder: each world's classifier is read from ``DIR/WORLD/``, and
its data from ``DATA_DIR/WORLD/data`` (default: ``DIR``'s): a ``benchmarks/cnn_suite.py`` folder holds the CNN
classifiers of the data in an ``aha demo`` folder. A baseline that refuses the classifier (rollout and Chefer read
a ViT's attention) is skipped with a printed note. Each row of :data:`ablation_shapes.ROWS` is an explainer
recipe, trained by ``aha train`` on each world and seed (:func:`ablation_shapes.run_row`) and scored on the
world's first ``--eval_images`` test images with the demo's metrics (predicted class); each baseline is scored
once per world on the same images. Results go to ``--output`` (default benchmarks/results/suite.json) as per-image
scores and are resumed from it: a row, seed or baseline already there is not run again.

The markdown table pools every world's images (each world has as many, so a pooled mean is the mean over worlds
of each world's mean); a recipe's per-image score is its mean over the seeds run. Marks compare each row with
``--reference`` by the paired differences over the pooled images: (+) / (-) better / worse by more than two
standard errors, (=) a tie. Defaults are chosen on this macro average, never on one world.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import cache, partial
from pathlib import Path
from types import SimpleNamespace

import datasets
import torch
from ablation_shapes import ROWS, run_row
from machine import describe, summary
from transformers import AutoImageProcessor, AutoModelForImageClassification

from aha import AHAExplainer
from aha.demo import BASELINES, DISPLAY_NAMES, EVAL_BATCH_SIZE, baseline
from aha.demo.classifier import tensors_of
from aha.demo.method_comparison import (
    INDEPENDENT_SHORT_NAMES,
    METRICS,
    compared_mean,
    paired_difference,
    score_maps,
    timed_maps,
)
from aha.demo.report import table
from aha.demo.worlds import WORLDS
from aha.persistence.atomic_writer import write_text
from aha.ranking.perturbation import REFERENCES
from aha.ranking.refinement import RefinementPlan


HERE = Path(__file__).resolve().parent
#: the explainer steps of the suite's first runs (the demo's default preset then): rows trained so carry no
#: "+STEPSsteps" in their name
UNSUFFIXED_STEPS = 400
#: the demo's metrics without the independent ones (slow: ``--independent`` adds them)
CORE_METRICS = {name: metric for name, metric in METRICS.items() if name not in INDEPENDENT_SHORT_NAMES}


def world_inputs(folder: Path, data_folder: Path, eval_images: int):
    processor = AutoImageProcessor.from_pretrained(folder / "classifier")
    test = datasets.load_from_disk(str(data_folder))["test"].select(range(eval_images))
    return processor, *tensors_of(test, processor)


@cache
def world_classifier(folder: Path):
    """The classifier in ``folder`` (eager attention, for the attention-reading methods), loaded once per world."""
    return AutoModelForImageClassification.from_pretrained(folder / "classifier", attn_implementation="eager").eval()


def run_baseline(name: str, folder: Path, inputs, rise_masks: int, metrics: dict) -> dict | str:
    """The baseline ``name``'s scores on ``inputs``, or why it refuses the classifier in ``folder``."""
    processor, pixel_values, labels, masks = inputs
    classifier = world_classifier(folder)
    try:
        attributor = baseline(name, classifier, rise_masks)
    except ValueError as error:  # e.g. rollout and Chefer on a CNN: the method cannot read this classifier
        return str(error)
    maps, seconds = timed_maps(attributor, pixel_values, EVAL_BATCH_SIZE)
    scores, _ = score_maps(classifier, pixel_values, labels, masks, maps, processor, metrics=metrics)
    return {
        "what": DISPLAY_NAMES[name],
        "seconds_per_image": seconds,
        "scores": {k: v.tolist() for k, v in scores.items()},
    }


def score_trained(
    explainer_dir: Path,
    inputs,
    metrics: dict,
    refine_steps: int = 0,
    refine_references: tuple[str, ...] = RefinementPlan().references,
) -> dict:
    """A row's explainer that an earlier run trained, scored on ``inputs`` with ``metrics`` (its maps refined by
    ``refine_steps`` steps of ``explain``'s default refinement when > 0, against ``refine_references`` in turn)."""
    processor, pixel_values, labels, masks = inputs
    explainer = AHAExplainer.from_pretrained(explainer_dir).eval()
    plan = RefinementPlan(references=refine_references)
    explain = partial(explainer.explain, refine_steps=refine_steps, refine_plan=plan)
    maps, seconds = timed_maps(explain, pixel_values, EVAL_BATCH_SIZE)
    scores, _ = score_maps(explainer.classifier, pixel_values, labels, masks, maps, processor, metrics=metrics)
    refined = f", {refine_steps} refinement steps against {', '.join(plan.references)}" if refine_steps else ""
    return {
        "what": f"the explainer in {explainer_dir}" + refined,
        "seconds_per_image": seconds,
        "scores": {k: v.tolist() for k, v in scores.items()},
    }


def row_key(row: str, steps: int, refine_steps: int, refine_references: tuple[str, ...] = ("mean",)) -> str:
    """A recipe row's name in the results: the row, then ``+STEPSsteps`` when trained other than the
    suite's first 400 steps (:data:`UNSUFFIXED_STEPS`), then ``+refineN`` when its maps are refined by N steps
    against the "mean" reference (``explain``'s refinement until 2026-12-08: the recorded ``+refineN`` rows), or
    ``+refineN-REF-REF`` against other references in turn (``+refine5-mean-blur``: ``explain``'s since)."""
    refined = f"+refine{refine_steps}" if refine_steps else ""
    if refine_steps and tuple(refine_references) != ("mean",):
        refined += "".join(f"-{kind}" for kind in refine_references)
    return row + (f"+{steps}steps" if steps != UNSUFFIXED_STEPS else "") + refined


def describe_row(key: str) -> str:
    row, *extras = key.split("+")
    what = ROWS[row][0] if row in ROWS else DISPLAY_NAMES.get(row, row)
    for extra in extras:
        if extra.startswith("refine"):
            steps, *kinds = extra[6:].split("-")
            what += f", {steps} refinement steps against {', '.join(kinds or ['mean'])}"
        else:
            what += f", {extra[:-5]} training steps"
    return what


def per_image(results: dict, worlds: list[str], row: str, seeds: list[str]) -> dict[str, torch.Tensor] | None:
    """A row's per-image scores pooled over ``worlds`` (world after world), each the mean over ``seeds``; None when
    a world lacks the row."""
    pooled = {}
    for world in worlds:
        runs = [
            results[world][key]["scores"]
            for key in [row, *(f"{row}@{seed}" for seed in seeds)]
            if key in results[world]
        ]
        if not runs:
            return None
        for metric in runs[0]:
            values = torch.tensor([run[metric] for run in runs], dtype=torch.float64).mean(0)
            pooled[metric] = torch.cat([pooled[metric], values]) if metric in pooled else values
    return pooled


def of_seeds(results: dict, worlds: list[str], seeds: list[int] | None) -> tuple[dict, list[str]]:
    """``results`` of ``worlds`` with only the runs of ``seeds`` (None: every seed) and the baselines, and the seeds
    they hold."""
    if seeds is not None:
        keep = {str(seed) for seed in seeds}
        results = {
            world: {key: run for key, run in results[world].items() if "@" not in key or key.partition("@")[2] in keep}
            for world in worlds
        }
    return results, sorted({key.partition("@")[2] for world in worlds for key in results[world] if "@" in key})


def markdown(results: dict, worlds: list[str], reference: str, seeds: list[int] | None = None) -> str:
    metrics = {
        name: metric
        for name, metric in METRICS.items()
        if all(name in run["scores"] for world in worlds for run in results[world].values())
    }
    rows = sorted(
        {key.partition("@")[0] for world in worlds for key in results[world]}, key=lambda r: (r in BASELINES, r)
    )
    results, seeds = of_seeds(results, worlds, seeds)
    base = per_image(results, worlds, reference, seeds)
    lines = []
    for row in rows:
        scores = per_image(results, worlds, row, seeds)
        if scores is None:
            continue
        counts = [sum(key.startswith(row + "@") for key in results[world]) or 1 for world in worlds]
        what = describe_row(row)
        cells = [
            compared_mean(scores[m], None if row == reference or base is None else base[m], metrics[m].high_is_good)
            for m in metrics
        ]
        deletion = [f"{per_image(results, [w], row, seeds)['deletion_mean'].mean():.3f}" for w in worlds]
        lines.append([row, what, f"{min(counts)}", *cells, *deletion])
    header = ["row", "what", "seeds", *(METRICS[m].short_name for m in metrics), *(f"Del mean, {w}" for w in worlds)]
    return "\n".join(table(header, lines))


def differences(
    results: dict, worlds: list[str], reference: str, rows: list[str], metrics: list[str], seeds: list[int] | None
) -> str:
    """Each of ``rows`` minus ``reference`` (each a mean over its runs of ``seeds``, None: every seed, per image), per
    world and on the macro average over ``worlds`` (when more than one): the paired difference's mean ± its standard
    error for each of ``metrics``."""
    results, seeds = of_seeds(results, worlds, seeds)
    scopes = [[world] for world in worlds] + ([worlds] if len(worlds) > 1 else [])
    bases = [per_image(results, scope, reference, seeds) for scope in scopes]  # the reference's, once per scope
    lines = []
    for row in rows:
        for scope, base in zip(scopes, bases):
            scores = per_image(results, scope, row, seeds)
            if scores is None or base is None:
                continue
            cells = [
                "{:+.3f} ± {:.3f}".format(*paired_difference(scores[m], base[m])) if m in scores else ""
                for m in metrics
            ]
            where = scope[0] if len(scope) == 1 else f"macro ({len(scope)} worlds)"
            lines.append([row, where, f"{len(scores[metrics[0]])}", *cells])
    header = [f"row minus {reference}", "world", "images", *(METRICS[m].short_name for m in metrics)]
    return "\n".join(table(header, lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite_dir",
        default="aha-demo",
        help="An `aha demo --world all --output` folder, or a `benchmarks/cnn_suite.py --output_dir` one.",
    )
    parser.add_argument(
        "--data_dir", default=None, help="The folder of each world's data, DATA_DIR/WORLD/data (default: --suite_dir)."
    )
    parser.add_argument("--worlds", nargs="+", choices=sorted(WORLDS), default=list(WORLDS))
    parser.add_argument("--rows", nargs="*", default=["default"], choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--baselines", nargs="*", default=[], choices=list(BASELINES))
    parser.add_argument("--steps", type=int, default=1500, help="explainer steps (the demo's default preset: 1500)")
    parser.add_argument(
        "--refine_steps",
        type=int,
        default=0,
        help="score each row's explainer (already trained in --work_dir by a run without this flag) with its maps "
        "refined by this many steps of explain's default refinement",
    )
    parser.add_argument(
        "--refine_references",
        nargs="+",
        choices=REFERENCES,
        default=list(RefinementPlan().references),
        help="the references the refinement steps take in turn (default: explain's, RefinementPlan().references); "
        'the row\'s name ends in -REF for each unless they are "mean" alone',
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--eval_images", type=int, default=100)
    parser.add_argument("--rise_masks", type=int, default=1000, help="RISE's masks (the demo's default preset: 1000)")
    parser.add_argument("--independent", action="store_true", help="also score the independent metrics (slow)")
    parser.add_argument(
        "--table_seeds",
        nargs="*",
        type=int,
        default=None,
        help="the table uses only these seeds' runs (default: every seed, averaged per image)",
    )
    parser.add_argument(
        "--reuse_trained",
        action="store_true",
        help="score a row's explainer already trained in --work_dir instead of training it again",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="the row every other row is compared with (default: the default row at --steps and --refine_steps)",
    )
    parser.add_argument("--work_dir", default="/tmp/aha-suite")
    parser.add_argument("--output", default=str(HERE / "results" / "suite.json"))
    parser.add_argument("--markdown", action="store_true", help="Only print the table of --output.")
    parser.add_argument(
        "--differences",
        nargs="*",
        default=None,
        metavar="ROW",
        help="also print these rows (result keys without @SEED) minus --reference per world and on the macro "
        "average, paired per image (mean ± standard error), for --difference_metrics",
    )
    parser.add_argument(
        "--difference_metrics",
        nargs="+",
        default=["deletion_mean", "deletion_blur", "insertion_lrf", "insertion_rise", "positive_perturbation"],
        choices=list(METRICS),
    )
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        help="Result files of runs made in parallel (each with its own --output): their runs are added "
        "to --output's first.",
    )
    args = parser.parse_args()
    output = Path(args.output)
    record = json.loads(output.read_text()) if output.is_file() else {"runs": {}, "machine": []}
    results = record["runs"]
    for path in args.merge:
        other = json.loads(Path(path).read_text())
        for world, runs in other["runs"].items():
            results.setdefault(world, {}).update(runs)
        record["machine"] += other["machine"]
    if args.merge:
        write_text(output, json.dumps(record))
    if not args.markdown:
        metrics = METRICS if args.independent else CORE_METRICS
        for world in args.worlds:
            folder = Path(args.suite_dir) / world
            data_folder = Path(args.data_dir or args.suite_dir) / world / "data"
            inputs = world_inputs(folder, data_folder, args.eval_images)
            results.setdefault(world, {})
            jobs = [(name, None) for name in args.baselines] + [
                (row, seed) for row in args.rows for seed in args.seeds
            ]
            for name, seed in jobs:
                refined = row_key(name, args.steps, args.refine_steps, args.refine_references)
                key = name if seed is None else f"{refined}@{seed}"
                trained = Path(args.work_dir, world, f"{row_key(name, args.steps, 0)}@{seed}", name)
                if key in results[world]:
                    continue
                print(f"== {world}: {key}", file=sys.stderr, flush=True)
                start = time.process_time()
                if seed is None:
                    run = run_baseline(name, folder, inputs, args.rise_masks, metrics)
                    if isinstance(run, str):
                        print(f"== {world}: skipping {name}, which refuses this classifier: {run}", flush=True)
                        continue
                elif args.refine_steps or (args.reuse_trained and (trained / "config.json").is_file()):
                    run = score_trained(trained, inputs, metrics, args.refine_steps, tuple(args.refine_references))
                else:
                    settings = SimpleNamespace(
                        work_dir=str(trained.parent),
                        steps=args.steps,
                        batch_size=args.batch_size,
                        seed=seed,
                    )
                    run = run_row(name, settings, folder / "classifier", data_folder, *inputs[1:], inputs[0], metrics)
                run["cpu_seconds"] = time.process_time() - start
                run["settings"] = {
                    "steps": args.steps,
                    "batch_size": args.batch_size,
                    "eval_images": args.eval_images,
                    "rise_masks": args.rise_masks,
                    "refine_steps": args.refine_steps,
                    "refine_references": args.refine_references if args.refine_steps else None,
                }
                results[world][key] = run
                record["machine"].append(describe())
                output.parent.mkdir(parents=True, exist_ok=True)
                write_text(output, json.dumps(record))
                means = {k: round(sum(v) / len(v), 4) for k, v in run["scores"].items()}
                print(world, key, round(run["cpu_seconds"]), means, flush=True)
        print(summary(describe()))
    worlds = [world for world in args.worlds if world in results]
    reference = args.reference or row_key("default", args.steps, args.refine_steps, args.refine_references)
    print(markdown(results, worlds, reference, args.table_seeds))
    if args.differences:
        print()
        print(differences(results, worlds, reference, args.differences, args.difference_metrics, args.table_seeds))


if __name__ == "__main__":
    main()
