"""Speed of aha.metrics.deletion_insertion against its floor and against a plain loop.

Three timings on the same random-init ViT (ViT-Ti/16 shape at 224 px by default, never downloaded) and
the same batch of images and maps:

- engine: ``deletion_insertion`` with the default protocol (21 fractions, mean reference, lrf insertion);
- bare forwards: the classifier forwards the engine needs and nothing else: the target prediction and,
  for each of the two curves, B * 21 images in the same chunks, from a ready-made buffer;
- plain loop: per image and per fraction, copy the first k ranked pixels and run one forward;
- engine, no-op classifier: the engine with a classifier that returns constant logits, i.e. everything
  but the forwards (ranking, mask building, blending, scoring).

The engine's overhead is ``engine / bare - 1`` (target: < 15%); on a shared CPU that difference is
within the noise of the forwards, so the no-op run measures the overhead directly as well. Engine and
bare runs are interleaved and medians reported. Prints a markdown table.

    python benchmarks/metrics_speed.py [--batch 4] [--image-size 224] [--chunk-size 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch
import transformers as T
from torch import nn

from aha.metrics import deletion_insertion, predict
from aha.ranking.sorting import hard_order


NUM_FRACTIONS = 21


def build_classifier(image_size: int) -> T.ViTForImageClassification:
    torch.manual_seed(0)
    config = T.ViTConfig(
        image_size=image_size,
        patch_size=16,
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        intermediate_size=768,
        num_labels=1000,
    )
    return T.ViTForImageClassification(config).eval()


class NoOpClassifier(nn.Module):
    """Constant logits for 1000 classes: the engine's cost without the classifier's."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(1000))

    def forward(self, pixel_values):
        return SimpleNamespace(logits=self.logits.expand(pixel_values.shape[0], -1))


def bare_forwards(model, pixel_values, chunk_size):
    """The forwards deletion_insertion runs (target prediction + 2 curves), on ready-made images."""
    batch = pixel_values.shape[0]
    buffer = pixel_values.repeat_interleave(NUM_FRACTIONS, dim=0)
    with torch.no_grad():
        for chunk in pixel_values.split(chunk_size):
            model(pixel_values=chunk).logits.argmax(dim=-1)
        for _ in range(2):
            for first in range(0, batch * NUM_FRACTIONS, chunk_size):
                model(pixel_values=buffer[first : first + chunk_size]).logits.float().softmax(dim=-1)


def plain_loop(model, pixel_values, maps):
    """Deletion and lrf insertion curves, one image, one fraction, one forward at a time: (B, 2, 21)."""
    batch, channels, height, width = pixel_values.shape
    curves = torch.empty(batch, 2, NUM_FRACTIONS)
    with torch.no_grad():
        for b in range(batch):
            image = pixel_values[b : b + 1]
            target = model(pixel_values=image).logits.argmax().item()
            for curve, descending in enumerate((True, False)):
                order = hard_order(maps[b].reshape(1, -1), descending=descending)[0]
                for step in range(NUM_FRACTIONS):
                    k = round(step / (NUM_FRACTIONS - 1) * height * width)
                    perturbed = image.clone().reshape(channels, -1)
                    perturbed[:, order[:k]] = 0.0  # the "mean" reference is zeros in normalised space
                    logits = model(pixel_values=perturbed.reshape(1, channels, height, width)).logits
                    curves[b, curve, step] = logits.softmax(dim=-1)[0, target]
    return curves


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 1 is steadiest on a shared CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build_classifier(args.image_size)
    generator = torch.Generator().manual_seed(0)
    size = args.image_size
    pixel_values = torch.randn(args.batch, 3, size, size, generator=generator)
    maps = torch.randn(args.batch, size, size, generator=generator)
    predict(model, pixel_values[:1])  # warm-up

    engine, bare, no_op = [], [], []
    for _ in range(args.repeats):
        engine.append(timed(deletion_insertion, model, pixel_values, maps, chunk_size=args.chunk_size))
        bare.append(timed(bare_forwards, model, pixel_values, args.chunk_size))
        no_op.append(timed(deletion_insertion, NoOpClassifier(), pixel_values, maps, chunk_size=args.chunk_size))
    plain_seconds = time.perf_counter()
    plain = plain_loop(model, pixel_values, maps)
    plain_seconds = time.perf_counter() - plain_seconds

    result = deletion_insertion(model, pixel_values, maps, chunk_size=args.chunk_size)
    engine_curves = torch.stack([result.deletion.curves, result.insertion.curves], dim=1)
    difference = (engine_curves - plain).abs().max().item()

    images = args.batch * (2 * NUM_FRACTIONS + 1)
    engine_median, bare_median, no_op_median = (statistics.median(t) for t in (engine, bare, no_op))
    print(
        f"ViT-Ti/16 shape (5.7 M params, random init) at {size} px, batch {args.batch}, "
        f"chunk {args.chunk_size}, {args.threads} thread(s), {images} classifier images per run, "
        f"median of {args.repeats}\n"
    )
    print("| run | seconds | ms / image | vs bare forwards |")
    print("|---|---|---|---|")
    runs = (
        ("bare forwards", bare_median),
        ("engine (deletion_insertion)", engine_median),
        ("plain loop", plain_seconds),
        ("engine, no-op classifier", no_op_median),
    )
    for name, seconds in runs:
        print(f"| {name} | {seconds:.3f} | {1e3 * seconds / images:.2f} | {seconds / bare_median:.3f}x |")
    overhead, work = engine_median / bare_median - 1, no_op_median / bare_median
    print(f"\nengine overhead over bare forwards, measured: {100 * overhead:+.1f}%")
    print(f"engine work besides the forwards (no-op run): {100 * work:.1f}% of the bare forwards")
    print(
        f"all runs (s), engine: {[round(t, 2) for t in engine]}, bare: {[round(t, 2) for t in bare]}, "
        f"no-op: {[round(t, 3) for t in no_op]}"
    )
    print(f"max |engine - plain loop| over all curve points: {difference:.2e}")


if __name__ == "__main__":
    main()
