"""``aha demo``: the offline end-to-end benchmark, from data to report, on a fresh machine.

    aha demo                     # AHA Shapes: data, classifier, explainer, every method, report
    aha demo --world all         # the same for every world of the suite, plus a macro table over worlds
    aha demo --world all --jobs 2  # two worlds at a time, each in its own process (aha.demo.side_by_side)
    aha demo --quick             # a smoke run, about 7 CPU minutes per world
    aha demo --preset full       # the benchmark recorded in benchmarks/RESULTS.md

For each world (:data:`aha.demo.worlds.WORLDS`: ``shapes``, ``letters``, ``parts``), in ``OUTPUT/WORLD``:

1. **Data**: the world's procedural dataset with a ground-truth mask per image, saved with ``save_to_disk``
   next to its dataset card.
2. **Classifier**: a small ``ViTForImageClassification`` trained from scratch (:mod:`aha.demo.classifier`),
   saved with ``save_pretrained`` next to its image processor.
3. **Explainer**: trained by the library's own ``aha train`` on that classifier and dataset.
4. **Evaluation**: AHA (one pass, and with test-time refinement) and every comparison method of
   :mod:`aha.baselines` on the same held-out test images, with the metrics of
   :data:`aha.demo.method_comparison.METRICS`; the report (:mod:`aha.demo.report`) goes to ``OUTPUT/WORLD``, with
   every method's per-image scores in ``scores.safetensors``.

With more than one world, ``OUTPUT/macro.md`` and ``macro.json`` average every method's numbers over worlds (built
from the worlds' per-image scores).
Each artefact is cached in its folder with the settings that made it: a second run with the same settings
only re-evaluates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ..threads import set_threads
from .canvas import World
from .worlds import WORLDS, get_world


#: the quick preset's training sizes, a smoke run of about 7 CPU minutes per world: its classifier is well above
#: chance and AHA beats random on AHA Shapes; on AHA Letters and AHA Parts (epoch_scale 3: 18 epochs) it reaches
#: about 0.35-0.4 (benchmarks/RESULTS.md, "The benchmark suite")
QUICK_TRAIN, QUICK_EPOCHS, QUICK_STEPS = 2000, 6, 100
#: settings of each preset: data sizes, classifier epochs, explainer steps, evaluation size and costs
PRESETS = {
    "quick": dict(
        num_train=QUICK_TRAIN,
        num_validation=16,
        num_test=200,
        classifier_epochs=QUICK_EPOCHS,
        explainer_steps=QUICK_STEPS,
        explainer_batch_size=16,
        eval_images=16,
        rise_masks=200,
        refine_steps=2,
    ),
    "default": dict(
        num_train=8000,
        num_validation=200,
        num_test=1000,
        classifier_epochs=12,
        # 1500 steps, not 400: deletion -0.016 +- 0.003 over the suite's three worlds, 3 seeds
        # (benchmarks/RESULTS.md, "The benchmark suite")
        explainer_steps=1500,
        explainer_batch_size=16,
        eval_images=100,
        rise_masks=1000,
        refine_steps=5,
    ),
}
#: the default preset's world, classifier and explainer, evaluated on five times the images with four times the masks
PRESETS["full"] = dict(PRESETS["default"], eval_images=500, rise_masks=4000)
#: what a world of each preset costs, for the first printed line: CPU minutes of a one-thread run (about its wall
#: time on an idle machine; fewer with more threads) for a world of ``epoch_scale`` 1, the minutes each further unit of
#: a world's ``epoch_scale`` adds (its classifier's longer training), and how these were found (benchmarks/RESULTS.md,
#: "`aha demo`'s run time"): `aha demo --world all --quick --threads 1` took 21.4 CPU minutes for the three worlds;
#: `aha demo --threads 1` (default preset) 48.7 on AHA Shapes, 66.1 on AHA Letters and 65.2 on AHA Parts (epoch_scale 3)
PRESET_CPU_MINUTES = {
    "quick": (6, 1, "timed"),
    "default": (49, 8, "timed on each world"),
}
#: the full preset trains the default preset's classifier, so a world's longer training adds the same minutes
PRESET_CPU_MINUTES["full"] = (170, PRESET_CPU_MINUTES["default"][1], "estimated")
IMAGE_SIZE = 64
EVAL_BATCH_SIZE = 8
BASELINES = ("random", "centre", "rollout", "chefer", "gradcam", "integrated_gradients", "occlusion", "rise")
DISPLAY_NAMES = {
    "random": "Random",
    "centre": "Centre",
    "rollout": "Rollout",
    "chefer": "Chefer",
    "gradcam": "Grad-CAM",
    "integrated_gradients": "IG",
    "occlusion": "Occlusion",
    "rise": "RISE",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aha demo",
        description="The offline end-to-end benchmark: procedural data with object masks, a ViT trained on it, an AHA "
        "explainer trained by `aha train`, and AHA against every comparison method with the exact metrics.",
    )
    parser.add_argument(
        "--output",
        default="aha-demo",
        help="Report and cache folder (default: ./aha-demo); each world goes to a subfolder of its name.",
    )
    parser.add_argument(
        "--world",
        choices=[*WORLDS, "all"],
        default="shapes",
        help="Benchmark world (default: shapes, AHA Shapes), or all of them plus a macro table over worlds.",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="Sizes and costs: quick (a few minutes per world), default, full (the benchmark).",
    )
    parser.add_argument("--quick", dest="preset", action="store_const", const="quick", help="Same as --preset quick.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the data, the classifier and the explainer.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: the free cores, printed at the start; with --jobs, shared among the jobs).",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="With --world all: run this many worlds side by side, each in its own process, its output in "
        "OUTPUT/demo-WORLD.log (default: 1, one after the other). On 2 idle cores --jobs 2 took 0.70 of the "
        "one-thread time, about what --threads 2 gives (0.66).",
    )
    return parser


def cached(folder: Path, settings: dict, build) -> dict:
    """Run ``build(folder)`` unless ``folder`` holds an artefact made with the same ``settings``; returns the
    JSON-able record ``build`` returned (kept in ``folder/demo_settings.json``)."""
    from ..persistence.atomic_writer import (  # torch-heavy: imported where used (aha demo --help stays fast)
        make_folder,
        write_text,
    )

    record_file = folder / "demo_settings.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("settings") == settings:
            print(f"[aha demo] reusing {folder}")
            return record["record"]
    make_folder(str(folder))
    start = time.perf_counter()
    record = build(folder)
    record["seconds"] = time.perf_counter() - start
    write_text(str(record_file), json.dumps({"settings": settings, "record": record}, indent=2))
    return record


def build_data(folder: Path, world: World, settings: dict) -> dict:
    from ..persistence.atomic_writer import write_text
    from ..persistence.model_cards import card_template

    print(f"[aha demo] drawing {world.title} ...")
    splits = world.dataset(
        settings["num_train"], settings["num_validation"], settings["num_test"], seed=settings["seed"], size=IMAGE_SIZE
    )
    splits.save_to_disk(str(folder))
    write_text(str(folder / "README.md"), card_template(world.card))  # the dataset card, for push_to_hub or a reader
    return {split: len(dataset) for split, dataset in splits.items()}


def build_classifier(folder: Path, data_folder: Path, world: World, settings: dict) -> dict:
    import datasets

    from ..persistence.atomic_writer import staged_folder
    from .classifier import accuracy, classifier_config, image_processor_for, tensors_of, train_classifier

    splits = datasets.load_from_disk(str(data_folder))
    processor = image_processor_for(splits["train"], IMAGE_SIZE)
    print(f"[aha demo] training the {world.title} classifier (a ViT from scratch) ...")
    model = train_classifier(
        splits["train"],
        processor,
        classifier_config(world.class_names, IMAGE_SIZE),
        epochs=world.classifier_epochs(settings["classifier_epochs"]),
        dihedral=world.dihedral,
        seed=settings["seed"],
        patch_evidence=world.patch_evidence(splits["train"]),
    )
    with staged_folder(str(folder)) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    pixel_values, labels, _ = tensors_of(splits["test"], processor)
    test_accuracy = accuracy(model, pixel_values, labels)
    print(
        f"[aha demo] {world.name} classifier test accuracy: {test_accuracy:.3f} "
        f"(chance {1 / len(world.class_names):.3f}, {len(labels)} test images)"
    )
    return {"test_accuracy": test_accuracy, "parameters": sum(p.numel() for p in model.parameters())}


def explainer_arguments(output: Path, settings: dict) -> tuple:
    """The arguments of :func:`aha.training.train` for the explainer of the world whose folder is ``output``."""
    from ..training import DataArguments, ModelArguments, OptimisationArguments, RunArguments

    return (
        DataArguments(dataset_path=str(output / "data"), max_eval_samples=32),
        ModelArguments(model_name_or_path=str(output / "classifier")),
        OptimisationArguments(
            max_train_steps=settings["explainer_steps"],
            per_device_train_batch_size=settings["explainer_batch_size"],
            learning_rate=settings["explainer_learning_rate"],
            gradient_checkpointing=False,
            seed=settings["seed"],
        ),
        RunArguments(
            output_dir=str(output / "explainer"),
            overwrite_output_dir=True,
            checkpointing_steps=max(settings["explainer_steps"] // 2, 1),
        ),
    )


def train_command(output: Path, settings: dict) -> list[str]:
    """The ``aha train`` flags of :func:`explainer_arguments`: what the report shows (the same run from the shell)
    and the explainer's cache records."""
    from ..training import as_flags

    return as_flags(*explainer_arguments(output, settings))


def explainer_defaults() -> dict:
    """What ``aha train`` uses for every option its command leaves out, as JSON values: the training arguments'
    defaults (but the two required paths) and, under ``"AHAConfig"``, the explainer config's."""
    from ..modeling.configuration_aha import AHAConfig
    from ..training import DataArguments, ModelArguments, OptimisationArguments, RunArguments
    from ..training.arguments import public_values

    defaults = public_values(
        DataArguments(), ModelArguments(model_name_or_path="-"), OptimisationArguments(), RunArguments(output_dir="-")
    )
    del defaults["model_name_or_path"], defaults["output_dir"]
    defaults["AHAConfig"] = {name: AHAConfig.own_fields()[name] for name in AHAConfig.user_fields()}
    return json.loads(json.dumps(defaults, default=str))


def build_explainer(folder: Path, output: Path, settings: dict) -> dict:
    from ..training import train

    command = "aha train " + shlex.join(train_command(output, settings))
    print(f"[aha demo] training the explainer: {command}")
    train(*explainer_arguments(output, settings))
    return {"command": command}


def methods(explainer, settings: dict) -> dict:
    """Every method the report compares, by display name: AHA in one pass and refined, then :data:`BASELINES`."""
    from ..baselines import get_attributor

    classifier = explainer.classifier
    attributors = {
        "AHA": get_attributor("aha", classifier, explainer=explainer),
        f"AHA + {settings['refine_steps']} refine": get_attributor(
            "aha", classifier, explainer=explainer, refine_steps=settings["refine_steps"]
        ),
    }
    for name in BASELINES:
        attributors[DISPLAY_NAMES[name]] = baseline(name, classifier, settings["rise_masks"])
    return attributors


def baseline(name: str, classifier, rise_masks: int):
    """The report's attributor for the comparison method ``name`` of :data:`BASELINES`: RISE with ``rise_masks``
    masks, the perturbation methods at 128 perturbed images per forward."""
    from ..baselines import get_attributor

    options = {"n_masks": rise_masks} if name == "rise" else {}
    if name in ("integrated_gradients", "occlusion", "rise"):
        options["batch_size"] = 128
    return get_attributor(name, classifier, **options)


def evaluate(output: Path, settings: dict, metrics=None) -> tuple[list, float, dict]:
    """Every method of :func:`methods` on the first ``eval_images`` test images of the world in ``output``,
    scored with ``metrics`` (default: :data:`aha.demo.method_comparison.METRICS`): (results, seconds per classifier
    forward per image, the pictures of the overlay grid)."""
    import datasets
    from transformers import AutoImageProcessor

    from .. import AHAExplainer
    from .classifier import tensors_of
    from .method_comparison import METRICS, evaluate_methods, forward_seconds_per_image

    explainer = AHAExplainer.from_pretrained(str(output / "explainer")).eval()
    processor = AutoImageProcessor.from_pretrained(str(output / "classifier"))
    test = datasets.load_from_disk(str(output / "data"))["test"].select(range(settings["eval_images"]))
    pixel_values, labels, masks = tensors_of(test, processor)
    attributors = methods(explainer, settings)
    print(f"[aha demo] evaluating {len(attributors)} methods on {len(test)} held-out test images ...")
    results = evaluate_methods(
        attributors,
        explainer.classifier,
        pixel_values,
        labels,
        masks,
        processor,
        EVAL_BATCH_SIZE,
        metrics=METRICS if metrics is None else metrics,
    )
    forward = forward_seconds_per_image(explainer.classifier, pixel_values, EVAL_BATCH_SIZE)
    return results, forward, {"images": list(test["image"]), "masks": masks.numpy()}


def environment() -> tuple[str, str]:
    """(machine, versions) for the report."""
    import torch
    import transformers

    from .. import __version__

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"
    versions = (
        f"aha-explain {__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"Python {platform.python_version()}"
    )
    return machine, versions


def smoke_note(preset: str) -> str | None:
    """What the report and the first printed line say about a preset's size, when it is not the benchmark."""
    if preset == "quick":
        return (
            f"quick preset, a smoke run ({QUICK_TRAIN} training images, {QUICK_EPOCHS} classifier epochs, "
            f"{QUICK_STEPS} explainer steps, 16 test images), not the benchmark: on AHA Shapes its classifier is "
            "well above chance and AHA beats random, on AHA Letters and AHA Parts (three times the epochs) the "
            "classifier reaches only about 0.35-0.4 (see benchmarks/RESULTS.md)"
        )
    return None


def duration_note(preset: str, worlds: list[str]) -> str:
    """How long a run of ``preset`` over ``worlds`` (names in :data:`WORLDS`) takes, for the first printed line."""
    base, per_epoch_scale, how = PRESET_CPU_MINUTES[preset]
    minutes = [base + per_epoch_scale * (WORLDS[world].epoch_scale - 1) for world in worlds]
    total = sum(minutes)
    amount = f"about {total} CPU minutes" if total < 90 else f"about {total / 60:.1f} CPU hours"
    each = ", ".join(f"{world} {m}" for world, m in zip(worlds, minutes))
    return f"{amount} ({how}; {each}; less with more threads, --jobs or a world's stages reused)"


def chance_note(test_accuracy: float, num_classes: int) -> str | None:
    """A warning for the report when the classifier is under twice chance: then no method's numbers mean anything."""
    chance = 1 / num_classes
    if test_accuracy >= 2 * chance:
        return None
    return (
        f"SMOKE RUN: this classifier is near chance (test accuracy {test_accuracy:.3f}, chance {chance:.3f}), so "
        "every method's numbers below are noise; train longer (the default preset) for a benchmark"
    )


def preset_settings(preset: str, seed: int = 0) -> dict:
    """Everything a run of ``preset`` (a key of :data:`PRESETS`) is made with, for ``seed``."""
    return dict(PRESETS[preset], seed=seed, explainer_learning_rate=3e-3)


def build_world(world: World, output: Path, settings: dict) -> tuple[dict, dict, dict]:
    """The data, classifier and explainer of one world in ``output/data``, ``output/classifier`` and
    ``output/explainer``, each reused when cached with the same settings: their records (sizes, test accuracy,
    the training command, seconds)."""
    data_settings = {
        "world": world.name,
        **{k: settings[k] for k in ("num_train", "num_validation", "num_test", "seed")},
    }
    data = cached(output / "data", data_settings, lambda folder: build_data(folder, world, settings))
    classifier_settings = {
        **data_settings,
        "classifier_epochs": world.classifier_epochs(settings["classifier_epochs"]),
    }
    classifier = cached(
        output / "classifier",
        classifier_settings,
        lambda folder: build_classifier(folder, output / "data", world, settings),
    )
    if chance_note(classifier["test_accuracy"], len(world.class_names)):
        print(f"[aha demo] {world.name}: {chance_note(classifier['test_accuracy'], len(world.class_names))}")
    explainer_settings = {
        **classifier_settings,
        "command": train_command(output, settings),
        "library_defaults": explainer_defaults(),  # a default changed by an upgrade trains the explainer again
    }
    explainer = cached(
        output / "explainer", explainer_settings, lambda folder: build_explainer(folder, output, settings)
    )
    return data, classifier, explainer


def run_world(world: World, output: Path, settings: dict, command: str, preset: str) -> tuple[list, float]:
    """Data, classifier, explainer (:func:`build_world`), evaluation and report of one world in ``output``: (the
    methods' results, seconds per classifier forward per image)."""
    from .report import summarise, write_report, write_scores

    start = time.perf_counter()
    data, classifier, explainer = build_world(world, output, settings)
    evaluation_start = time.perf_counter()
    results, forward_seconds, pictures = evaluate(output, settings)
    summary = summarise(results, forward_seconds, ["AHA", f"AHA + {settings['refine_steps']} refine"])
    machine, versions = environment()
    context = {
        "title": f"AHA demo: faithfulness on {world.title}",
        "world": world.name,
        "command": command,
        "preset": preset,
        "settings": settings,
        "classifier": (
            f"ViT from scratch (64 px, patch 8, {classifier['parameters'] / 1e6:.2f} M parameters), "
            f"test accuracy {classifier['test_accuracy']:.3f} on {data['test']} held-out images "
            f"(chance {1 / len(world.class_names):.3f})"
        ),
        "explainer": explainer["command"],
        "evaluation": (
            f"first {settings['eval_images']} test images, predicted class, 21 fractions (Chefer: 10), "
            f"hard ranking of all pixels; RISE with {settings['rise_masks']} masks"
        ),
        "machine": machine,
        "versions": versions,
        "run_time": (
            f"{time.perf_counter() - start:.0f} s this run (evaluation {time.perf_counter() - evaluation_start:.0f} s); "
            f"cached artefacts took data {data['seconds']:.0f} s, classifier {classifier['seconds']:.0f} s, "
            f"explainer {explainer['seconds']:.0f} s"
        ),
    }
    notes = [
        note for note in (chance_note(classifier["test_accuracy"], len(world.class_names)), smoke_note(preset)) if note
    ]
    if notes:
        context["note"] = ". ".join(notes)
    write_report(output, results, summary, context, pictures["images"], pictures["masks"])
    write_scores(output, results, forward_seconds)
    print(f"[aha demo] {world.name} report: {output / 'results.md'}")
    return results, forward_seconds


def main(args: argparse.Namespace) -> None:
    from ..validation import check_number
    from .report import macro_summary, write_macro_report

    check_number("--jobs", args.jobs, integer=True, minimum=1)
    settings = preset_settings(args.preset, args.seed)
    output = Path(args.output)
    worlds = list(WORLDS) if args.world == "all" else [args.world]
    command = "aha demo " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["demo"] else sys.argv[1:])
    reports = ", ".join(str(output / world / "results.md") for world in worlds)
    if len(worlds) > 1:
        reports += f" and the macro table {output / 'macro.md'}"
    note = smoke_note(args.preset)
    print(
        f"[aha demo] {duration_note(args.preset, worlds)}; {note or 'preset ' + args.preset}; world(s) "
        f"{', '.join(worlds)}; reports: {reports}",
        flush=True,
    )
    start = time.perf_counter()
    results, forward_seconds = {}, {}
    if len(worlds) > 1 and args.jobs > 1:
        from .report import read_scores
        from .side_by_side import run_side_by_side

        run_side_by_side(worlds, output, args.preset, args.seed, args.jobs, args.threads)
        for name in worlds:
            results[name], forward_seconds[name] = read_scores(output / name)
    else:
        set_threads(args.threads, announce="[aha demo]")
        for name in worlds:
            results[name], forward_seconds[name] = run_world(
                get_world(name), output / name, settings, command, args.preset
            )
    if len(worlds) > 1:
        machine, versions = environment()
        context = {
            "title": f"AHA demo: macro average over {len(worlds)} worlds ({', '.join(worlds)})",
            "command": command,
            "note": (
                "every world's images pooled: as each world has as many evaluation images, a pooled mean is the "
                "mean over worlds of each world's mean; standard errors and paired differences are over the "
                "pooled images" + (f". {note}" if note else "")
            ),
            "preset": args.preset,
            "settings": settings,
            "machine": machine,
            "versions": versions,
            "run_time": f"{time.perf_counter() - start:.0f} s this run",
        }
        summary = macro_summary(results, forward_seconds, ["AHA", f"AHA + {settings['refine_steps']} refine"])
        write_macro_report(output, summary, context)
        print(f"[aha demo] macro report: {output / 'macro.md'}")
        print((output / "macro.md").read_text().split("\n## ")[0])
    else:
        print((output / worlds[0] / "results.md").read_text().split("\n## ")[0])
