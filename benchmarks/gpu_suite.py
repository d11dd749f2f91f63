"""The GPU path measured in one command: training, explaining and scoring a random-init ViT-B/16 at 224 px.

    python benchmarks/gpu_suite.py                      # on a CUDA machine (about 5-10 minutes on one H100)
    python benchmarks/gpu_suite.py --smoke              # end to end on CPU with the tests' tiny ViT (seconds)

Synthetic images, a random-init classifier built from its config (the cost, not the weights, is measured), the
default AHAConfig, bf16 autocast as ``accelerate --mixed_precision bf16``
runs it. It measures, in order:

1. training: optimiser steps (explainer forward with labels, backward, clip, AdamW on the decoder) at batch
   ``--train_batch``: images/s and peak memory, with and without the classifier's chunk checkpointing;
2. explain: latency at batch 1 and throughput (images/s) at each of ``--explain_batches``;
3. metrics: images/s of ``aha.metrics.deletion_insertion`` (21 fractions, deletion and insertion: 43 classifier
   images per image);
4. torch.compile: the training step with the classifier compiled (``nn.Module.compile``), so that its perturbed
   passes run compiled, against the same step eager: compile time and steady-state images/s;
5. a projection of the paper's recipe, one epoch of ImageNet-1k train (1,281,167 images), on 1 and 8 GPUs from
   the fastest training setting that fit (8 GPUs: data parallel, assuming linear scaling; the decoder's gradients
   are a few MB, so all-reduce is small next to a step).

Writes ``gpu_suite.json`` and ``gpu_suite.md`` (a results section with the device's name) to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import transformers as T


sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, summary  # noqa: E402
from models import VIT_CONFIGS  # noqa: E402

from aha import AHAExplainer  # noqa: E402
from aha.metrics import deletion_insertion  # noqa: E402
from aha.persistence.atomic_writer import write_text
from aha.training.schedule import annealed_tau  # noqa: E402


HERE = Path(__file__).resolve().parent
IMAGENET_TRAIN_IMAGES = 1_281_167


class Clock:
    """Wall time of a block on ``device``, synchronising CUDA around it."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn, repeats: int) -> list[float]:
        times = []
        for _ in range(repeats):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return times


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def is_oom(error: Exception) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def build_explainer(args, device) -> AHAExplainer:
    torch.manual_seed(0)
    config = T.ViTConfig(**VIT_CONFIGS[args.model])
    classifier = T.ViTForImageClassification(config).eval()
    return AHAExplainer.from_classifier(classifier).to(device)


def images_and_labels(explainer, batch: int, device, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    size = explainer.classifier_spec.image_size
    images = torch.randn(batch, 3, *size, generator=generator).clamp(-2.5, 2.5).to(device)
    labels = torch.randint(0, explainer.num_labels, (batch,), generator=generator).to(device)
    return images, labels


def training(explainer, args, device, autocast, checkpointing: bool, steps: int, warmup: int) -> dict:
    """Images/s and peak memory of ``steps`` optimiser steps after ``warmup`` ones (their time reported apart)."""
    generator = torch.Generator(device).manual_seed(0)  # the steps' grid sizes, references and Gumbel noise
    explainer.train()
    if checkpointing:
        explainer.activation_checkpointing_enable()
    else:
        explainer.activation_checkpointing_disable()
    trainable = [p for p in explainer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=3e-4, weight_decay=1e-3)
    images, labels = images_and_labels(explainer, args.train_batch, device)
    counter = iter(range(10**9))

    def step():
        with autocast():
            tau = annealed_tau(next(counter), 100, 1.0, 0.3)
            loss = explainer(images, labels=labels, tau=tau, generator=generator).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    clock = Clock(device)
    reset_peak(device)
    try:
        warm = clock(step, warmup)
        times = clock(step, steps)
    except RuntimeError as error:
        if not is_oom(error):
            raise
        optimizer.zero_grad(set_to_none=True)
        return {"checkpointing": checkpointing, "out_of_memory": True, "error": str(error).splitlines()[0]}
    finally:
        explainer.eval()
        explainer.activation_checkpointing_disable()
    seconds = statistics.median(times)
    return {
        "checkpointing": checkpointing,
        "out_of_memory": False,
        "batch_size": args.train_batch,
        "step_seconds_median": seconds,
        "images_per_second": args.train_batch / seconds,
        "warmup_seconds": warm,
        "peak_memory_gib": peak_gib(device),
        "step_seconds": times,
    }


def explaining(explainer, args, device, autocast) -> list[dict]:
    clock, rows = Clock(device), []
    for batch in args.explain_batches:
        images, _ = images_and_labels(explainer, batch, device)
        reset_peak(device)
        try:
            with torch.no_grad(), autocast():
                clock(lambda: explainer.explain(images), 1)  # warm-up
                times = clock(lambda: explainer.explain(images), args.repeats)
        except RuntimeError as error:
            if not is_oom(error):
                raise
            rows.append({"batch_size": batch, "out_of_memory": True})
            continue
        seconds = statistics.median(times)
        rows.append(
            {
                "batch_size": batch,
                "out_of_memory": False,
                "seconds_median": seconds,
                "latency_ms": 1000 * seconds,
                "images_per_second": batch / seconds,
                "peak_memory_gib": peak_gib(device),
            }
        )
    return rows


def metrics(explainer, args, device, autocast) -> dict:
    images, _ = images_and_labels(explainer, args.metric_batch, device)
    with torch.no_grad(), autocast():
        maps = explainer.explain(images).float()
        run = lambda: deletion_insertion(explainer.classifier, images, maps, chunk_size=args.metric_chunk)  # noqa: E731
        run()
        times = Clock(device)(run, args.repeats)
    seconds = statistics.median(times)
    return {
        "batch_size": args.metric_batch,
        "chunk_size": args.metric_chunk,
        "seconds_median": seconds,
        "images_per_second": args.metric_batch / seconds,
        "classifier_images_per_image": 2 * 21 + 1,
    }


def compiled_training(explainer, args, device, autocast, checkpointing: bool) -> dict:
    """The training step with the classifier compiled in place (all its passes, the perturbed ones included)."""
    backend = "eager" if args.smoke else "inductor"  # the smoke run checks the path, not the compiler
    explainer.classifier.compile(backend=backend)  # the last measurement: nothing after it runs compiled
    start = time.perf_counter()
    result = training(explainer, args, device, autocast, checkpointing, args.steps, args.compile_warmup)
    result["backend"] = backend
    result["compile_and_warmup_seconds"] = time.perf_counter() - start - sum(result.get("step_seconds", []))
    return result


def projection(train_rows: list[dict]) -> dict | None:
    fitting = [row for row in train_rows if not row["out_of_memory"]]
    if not fitting:
        return None
    best = max(fitting, key=lambda row: row["images_per_second"])
    hours = IMAGENET_TRAIN_IMAGES / best["images_per_second"] / 3600
    return {
        "setting": {k: best[k] for k in ("checkpointing", "batch_size") if k in best}
        | {"compiled": best.get("backend") is not None},
        "images_per_second_per_gpu": best["images_per_second"],
        "epoch_images": IMAGENET_TRAIN_IMAGES,
        "hours_1_gpu": hours,
        "hours_8_gpus_linear": hours / 8,
    }


def markdown(result: dict) -> str:
    machine = result["machine"]
    lines = [
        f"## GPU: training, explaining and scoring {result['model']} ({machine['gpu'] or 'CPU smoke run'})",
        "",
        f"`{result['command']}`; {summary(machine)}. Random-init classifier, synthetic images, default AHAConfig, "
        f"{result['precision']} autocast.",
        "",
        f"Training (batch {result['train_batch']}, median of {result['steps']} steps):",
        "",
        "| classifier checkpointing | compiled | images/s | step (s) | peak memory (GiB) |",
        "|---|---|---|---|---|",
    ]
    for row in result["training"]:
        compiled = "yes" if row.get("backend") else "no"
        if row["out_of_memory"]:
            lines.append(f"| {'on' if row['checkpointing'] else 'off'} | {compiled} | out of memory | - | - |")
        else:
            peak = f"{row['peak_memory_gib']:.1f}" if row["peak_memory_gib"] is not None else "-"
            lines.append(
                f"| {'on' if row['checkpointing'] else 'off'} | {compiled} | {row['images_per_second']:.1f} | "
                f"{row['step_seconds_median']:.3f} | {peak} |"
            )
    compiled = [row for row in result["training"] if row.get("backend")]
    if compiled and not compiled[0]["out_of_memory"]:
        lines += [
            "",
            f"Compiling the classifier ({compiled[0]['backend']}) took "
            f"{compiled[0]['compile_and_warmup_seconds']:.0f} s with its warm-up steps.",
        ]
    lines += [
        "",
        "Explain (one classifier forward with hidden states plus the decoder):",
        "",
        "| batch | latency (ms) | images/s | peak memory (GiB) |",
        "|---|---|---|---|",
    ]
    for row in result["explain"]:
        if row["out_of_memory"]:
            lines.append(f"| {row['batch_size']} | out of memory | - | - |")
        else:
            peak = f"{row['peak_memory_gib']:.1f}" if row["peak_memory_gib"] is not None else "-"
            lines.append(
                f"| {row['batch_size']} | {row['latency_ms']:.1f} | {row['images_per_second']:.0f} | {peak} |"
            )
    m = result["metrics"]
    lines += [
        "",
        f"Metric engine (`deletion_insertion`, {m['classifier_images_per_image']} classifier images per image, "
        f"batch {m['batch_size']}, chunk {m['chunk_size']}): {m['images_per_second']:.1f} images/s.",
    ]
    p = result["projection"]
    if p:
        lines += [
            "",
            f"One ImageNet-1k epoch ({p['epoch_images']:,} images) at {p['images_per_second_per_gpu']:.1f} "
            f"images/s per GPU ({p['setting']}): {p['hours_1_gpu']:.1f} h on 1 GPU, "
            f"{p['hours_8_gpus_linear']:.1f} h on 8 (linear scaling assumed).",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, the tiny ViT, tiny batches: checks the script")
    parser.add_argument("--model", default=None, choices=list(VIT_CONFIGS), help="default: vit-b16-224px")
    parser.add_argument("--train_batch", type=int, default=None, help="default 32")
    parser.add_argument("--steps", type=int, default=None, help="measured training steps (default 10)")
    parser.add_argument("--explain_batches", type=int, nargs="+", default=None, help="default 1 32 256")
    parser.add_argument("--metric_batch", type=int, default=None, help="default 32")
    parser.add_argument("--metric_chunk", type=int, default=None, help="default 256")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats of explain and metrics (default 5)")
    parser.add_argument("--compile_warmup", type=int, default=None, help="steps that include compiling (default 3)")
    parser.add_argument("--no_compile", action="store_true")
    parser.add_argument("--output_dir", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    defaults = (
        dict(
            model="tiny-vit-32px",
            train_batch=2,
            steps=1,
            explain_batches=[1, 2, 4],
            metric_batch=2,
            metric_chunk=16,
            repeats=1,
            compile_warmup=1,
        )
        if args.smoke
        else dict(
            model="vit-b16-224px",
            train_batch=32,
            steps=10,
            explain_batches=[1, 32, 256],
            metric_batch=32,
            metric_chunk=256,
            repeats=5,
            compile_warmup=3,
        )
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.smoke:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        raise SystemExit("gpu_suite.py needs a CUDA device (or --smoke, which runs a tiny version on CPU)")
    precision = "bf16"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    explainer = build_explainer(args, device)
    warmup = 1 if args.smoke else 2
    train_rows = [
        training(explainer, args, device, autocast, checkpointing, args.steps, warmup)
        for checkpointing in (False, True)
    ]
    explain_rows = explaining(explainer, args, device, autocast)
    metric_row = metrics(explainer, args, device, autocast)
    if not args.no_compile:
        # compiled with the setting that fitted and ran fastest eager
        fitting = [row for row in train_rows if not row["out_of_memory"]]
        checkpointing = max(fitting, key=lambda row: row["images_per_second"])["checkpointing"] if fitting else True
        train_rows.append(compiled_training(explainer, args, device, autocast, checkpointing))
    result = {
        "command": shlex.join(["python", "benchmarks/gpu_suite.py", *(sys.argv[1:] if argv is None else argv)]),
        "model": args.model,
        "precision": precision,
        "train_batch": args.train_batch,
        "steps": args.steps,
        "machine": describe(),
        "classifier_parameters": sum(p.numel() for p in explainer.classifier.parameters()),
        "decoder_parameters": sum(p.numel() for p in explainer.decoder.parameters()),
        "training": train_rows,
        "explain": explain_rows,
        "metrics": metric_row,
        "projection": projection(train_rows),
    }
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    stem = "gpu_suite_smoke" if args.smoke else "gpu_suite"
    write_text(output / f"{stem}.json", json.dumps(result, indent=1))
    write_text(output / f"{stem}.md", markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
