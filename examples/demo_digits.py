"""Offline end-to-end demo: train a tiny ViT on real digits, train an AHA explainer for it with `aha train`,
and compare its faithfulness with the baselines of `aha.baselines`, with a figure and a markdown table.

    python examples/demo_digits.py                    # 5.4 min CPU time (7.5 min wall on 2 busy cores)
    python examples/demo_digits.py --full             # the benchmark settings of benchmarks/RESULTS.md

Needs scikit-learn (for the data) besides aha-explain.

No download: the images are scikit-learn's `load_digits` (1797 real 8x8 handwritten digits, 10 classes),
upscaled to 32x32 px RGB, split 80/20 (stratified) into "train" and "test".

1. A ViT (32 px, patch 8, 4 layers of width 128: 0.56 M parameters) is trained from a random init on the
   train split and saved with `save_pretrained`, next to its `ViTImageProcessorPil` (normalised with the
   train split's mean and std, so the "mean" reference is the dataset's mean grey).
2. The digits are saved with `save_to_disk`, and the explainer is trained by the library's own entry point,
   exactly as `aha train --model_name_or_path OUT/classifier --dataset_path OUT/digits ...` (printed).
3. Held-out test digits are explained by AHA (with and without test-time refinement) and every baseline,
   and scored with `aha.metrics`: deletion (mean reference; low is good), RISE insertion (from the blurred
   image; high is good) and least-relevant-first deletion ("LRF insertion"; high is good), 21 points each,
   for the predicted class.
4. A figure (digits x methods, `aha.visualization`) and a markdown table are written to OUT.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time

import numpy as np
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, DatasetDict, Features
from datasets import Image as ImageFeature
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from transformers import AutoModelForImageClassification, ViTConfig, ViTForImageClassification, ViTImageProcessorPil

from aha import AHAExplainer
from aha.baselines import get_attributor
from aha.metrics import deletion_insertion, insertion
from aha.training import build_parser, train
from aha.visualization import grid, overlay


IMAGE_SIZE = 32
BASELINES = ("random", "centre", "rollout", "chefer", "gradcam", "integrated_gradients", "occlusion", "rise")
METRICS = ("deletion", "insertion_rise", "insertion_lrf")
TITLES = {"integrated_gradients": "IG", "gradcam": "Grad-CAM", "rollout": "Rollout", "chefer": "Chefer",
          "occlusion": "Occlusion", "rise": "RISE", "random": "Random", "centre": "Centre"}

# Settings of a quick demo and of the recorded benchmark (any flag given on the command line wins).
QUICK = dict(classifier_epochs=40, aha_steps=150, aha_batch_size=8, eval_images=64, rise_masks=1000, refine_steps=5)
FULL = dict(classifier_epochs=40, aha_steps=400, aha_batch_size=8, eval_images=200, rise_masks=2000, refine_steps=5)


def digit_image(values: np.ndarray) -> Image.Image:
    """One 8x8 digit of `load_digits` (ink 0..16) -> 32x32 RGB PIL image, white ink on black (bicubic)."""
    grey = Image.fromarray(np.rint(values / 16.0 * 255).astype(np.uint8), "L")
    return grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC).convert("RGB")


def digits_splits(seed: int, test_fraction: float = 0.2) -> DatasetDict:
    """`load_digits` as a DatasetDict {"train", "test"} with columns image (PIL) and label (ClassLabel "0".."9")."""
    digits = load_digits()
    train_ids, test_ids = train_test_split(
        np.arange(len(digits.target)), test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=[str(d) for d in range(10)])})
    return DatasetDict(
        {
            name: Dataset.from_dict(
                {"image": [digit_image(digits.images[i]) for i in ids], "label": digits.target[ids].tolist()},
                features=features,
            )
            for name, ids in (("train", train_ids), ("test", test_ids))
        }
    )


def image_processor_for(train_split: Dataset) -> ViTImageProcessorPil:
    """A ViT processor at 32 px normalised by the train split's pixel mean and std (one grey for all channels)."""
    pixels = np.stack([np.asarray(image, dtype=np.float64) / 255.0 for image in train_split["image"]])
    mean, std = float(pixels.mean()), float(pixels.std())
    return ViTImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[mean] * 3, image_std=[std] * 3
    )


def pixel_values_of(split: Dataset, processor) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a split through the processor: (N, 3, 32, 32) float32 normalised, and (N,) int64 labels."""
    pixel_values = processor(list(split["image"]), return_tensors="pt")["pixel_values"]
    return pixel_values, torch.tensor(list(split["label"]))


def train_classifier(splits: DatasetDict, processor, epochs: int, seed: int) -> tuple[ViTForImageClassification, float]:
    """Train a ViT (0.56 M parameters) from a random init; returns it (eval mode) and its test accuracy.

    AdamW (lr 2e-3, weight decay 0.05, one-cycle schedule), batch 64, each batch shifted by up to 2 px
    (a circular shift: the digits' borders are background).
    """
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=IMAGE_SIZE, patch_size=8, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=256, num_labels=10, id2label={i: str(i) for i in range(10)},
        label2id={str(i): i for i in range(10)},
    )
    model = ViTForImageClassification(config)
    images, labels = pixel_values_of(splits["train"], processor)
    batch_size = 64
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    total = epochs * -(-len(labels) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=total, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            logits = model(pixel_values=torch.roll(images[batch], shifts=shift, dims=(2, 3))).logits
            loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    test_images, test_labels = pixel_values_of(splits["test"], processor)
    with torch.no_grad():
        accuracy = (model(pixel_values=test_images).logits.argmax(-1) == test_labels).float().mean().item()
    return model, accuracy


def train_explainer(
    classifier_dir: str, dataset_dir: str, output_dir: str, steps: int, batch_size: int, seed: int, extra: list[str]
) -> AHAExplainer:
    """Run the `aha train` entry point on the saved classifier and digits; returns the saved explainer, reloaded.

    Short-run settings: peak learning rate 1e-3 (the default 3e-4 suits a full epoch of ImageNet) and no
    activation checkpointing of the target (a 0.56 M-parameter ViT needs no memory saving; recomputing costs
    time). `extra`: further `aha train` arguments, which win (e.g. ``["--learning_rate", "3e-4"]``).
    """
    argv = [
        "--model_name_or_path", classifier_dir, "--dataset_path", dataset_dir, "--validation_split", "test",
        "--max_eval_samples", "64", "--output_dir", output_dir, "--overwrite_output_dir",
        "--max_train_steps", str(steps), "--checkpointing_steps", str(steps),
        "--per_device_train_batch_size", str(batch_size), "--seed", str(seed), "--learning_rate", "1e-3",
        "--no_gradient_checkpointing", *extra,
    ]
    print("$ aha train " + shlex.join(argv), flush=True)
    train(build_parser().parse_args(argv))
    return AHAExplainer.from_pretrained(output_dir).eval()


def attribution_methods(explainer: AHAExplainer, classifier, refine_steps: int, rise_masks: int) -> dict:
    """Name -> callable (B, 3, H, W) normalised images -> (B, H, W) maps for the predicted class."""
    options = {"rise": dict(n_masks=rise_masks)}
    methods = {"AHA": explainer.explain}
    if refine_steps:
        methods[f"AHA + {refine_steps} refine"] = lambda x: explainer.explain(x, refine_steps=refine_steps)
    for name in BASELINES:
        methods[TITLES[name]] = get_attributor(name, classifier, **options.get(name, {}))
    return methods


def faithfulness(classifier, pixel_values: torch.Tensor, maps: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image AUCs (B,) of `maps` (B, H, W) for the predicted class: deletion and LRF insertion towards the
    mean reference, and RISE insertion from the blurred image."""
    both = deletion_insertion(classifier, pixel_values, maps, reference="mean", insertion_convention="lrf")
    rise = insertion(classifier, pixel_values, maps, both.target, convention="rise")
    return {"deletion": both.deletion.auc, "insertion_rise": rise.auc, "insertion_lrf": both.insertion.auc}


def markdown_table(results: dict[str, dict]) -> str:
    """Rows: methods; columns: mean AUC +- standard error over images, and attribution time per image."""
    lines = [
        "| method | deletion AUC (lower is better) | RISE insertion AUC (higher is better) | LRF insertion AUC (higher is better) | ms / image |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        cells = []
        for metric in METRICS:
            auc = result[metric].double()
            cells.append(f"{auc.mean():.3f} ± {auc.std() / len(auc) ** 0.5:.3f}")
        lines.append(f"| {name} | {' | '.join(cells)} | {result['ms_per_image']:.1f} |")
    return "\n".join(lines)


def comparison_figure(images: list[Image.Image], rows: list[str], maps: dict[str, torch.Tensor], cell_size: int = 64):
    """Rows = images, first column the input, then one rank-normalised overlay per method."""
    cells = [
        [image] + [overlay(image, method_maps[i].cpu().numpy(), alpha=0.6) for method_maps in maps.values()]
        for i, image in enumerate(images)
    ]
    return grid(cells, ["input", *maps], row_labels=rows, cell_size=cell_size)


def figure_indices(labels: torch.Tensor, count: int) -> list[int]:
    """The first image of each of the ``count`` smallest classes present in ``labels`` (B,)."""
    return [int((labels == digit).nonzero()[0]) for digit in labels.unique()[:count]]


def run(args: argparse.Namespace) -> dict:
    """The whole demo; returns {"accuracy", "results", "table", "seconds"} and writes the outputs to args.output_dir."""
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    os.makedirs(args.output_dir, exist_ok=True)
    classifier_dir, dataset_dir = (os.path.join(args.output_dir, name) for name in ("classifier", "digits"))

    splits = digits_splits(args.seed)
    splits.save_to_disk(dataset_dir)
    processor = image_processor_for(splits["train"])
    classifier, accuracy = train_classifier(splits, processor, args.classifier_epochs, args.seed)
    classifier.save_pretrained(classifier_dir)
    processor.save_pretrained(classifier_dir)
    print(f"classifier: test accuracy {accuracy:.4f} on {len(splits['test'])} digits "
          f"({time.perf_counter() - start:.0f} s)", flush=True)

    explainer = train_explainer(classifier_dir, dataset_dir, os.path.join(args.output_dir, "explainer"),
                                args.aha_steps, args.aha_batch_size, args.seed, args.aha_train_args)
    print(f"explainer trained ({time.perf_counter() - start:.0f} s)", flush=True)

    classifier = AutoModelForImageClassification.from_pretrained(classifier_dir).eval()
    test = splits["test"].select(range(min(args.eval_images, len(splits["test"]))))
    pixel_values, labels = pixel_values_of(test, processor)
    results, maps = {}, {}
    for name, method in attribution_methods(explainer, classifier, args.refine_steps, args.rise_masks).items():
        began = time.perf_counter()
        maps[name] = method(pixel_values)
        ms_per_image = 1000 * (time.perf_counter() - began) / len(labels)
        results[name] = {**faithfulness(classifier, pixel_values, maps[name]), "ms_per_image": ms_per_image}
        print(f"{name}: evaluated ({time.perf_counter() - start:.0f} s)", flush=True)

    shown = figure_indices(labels, args.figure_digits)
    with torch.no_grad():
        predicted = classifier(pixel_values=pixel_values[shown]).logits.argmax(-1).tolist()
    figure = comparison_figure(
        [test[i]["image"] for i in shown], [f"y={labels[i]} p={p}" for i, p in zip(shown, predicted)],
        {name: method_maps[shown] for name, method_maps in maps.items()},
    )
    figure_path = args.figure or os.path.join(args.output_dir, "digits_comparison.png")
    os.makedirs(os.path.dirname(os.path.abspath(figure_path)), exist_ok=True)
    figure.save(figure_path, optimize=True)

    table = markdown_table(results)
    seconds = time.perf_counter() - start
    print(f"\nclassifier test accuracy: {accuracy:.4f}; {len(labels)} test digits, predicted class\n\n{table}\n")
    print(f"figure: {figure_path}; total {seconds:.0f} s with {args.threads} thread(s)")
    return {"accuracy": accuracy, "results": results, "table": table, "seconds": seconds}


def build_demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="aha-digits-demo", help="Where the models, figure and data go.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help=f"Benchmark settings {FULL} instead of {QUICK}.")
    parser.add_argument("--classifier_epochs", type=int, default=None)
    parser.add_argument("--aha_steps", type=int, default=None, help="Explainer training steps.")
    parser.add_argument("--aha_batch_size", type=int, default=None, help="Images per explainer training step.")
    parser.add_argument("--eval_images", type=int, default=None, help="Held-out digits scored (the test split has 360).")
    parser.add_argument("--rise_masks", type=int, default=None, help="Masks of the RISE baseline.")
    parser.add_argument("--refine_steps", type=int, default=None, help="Test-time refinement steps (0: no refined row).")
    parser.add_argument("--figure_digits", type=int, default=5, help="Digits shown in the figure (one of each class 0, 1, ...).")
    parser.add_argument("--figure", default=None, help="Figure path (default: OUTPUT_DIR/digits_comparison.png).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine).")
    parser.add_argument("--aha_train_args", nargs=argparse.REMAINDER, default=[],
                        help="Everything after this flag is passed on to `aha train`.")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Demo arguments, with unset settings filled from FULL (``--full``) or QUICK."""
    args = build_demo_parser().parse_args(argv)
    for key, value in (FULL if args.full else QUICK).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


if __name__ == "__main__":
    run(parse_args())
