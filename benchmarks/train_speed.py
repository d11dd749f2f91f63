"""CPU speed of the AHA training step, and the share of it spent in the classifier's perturbed passes.

    python benchmarks/train_speed.py [--model shapes-vit-64px] [--steps 10] [--batch_size 16]

A step is what ``aha train`` does per optimiser step: explainer forward with labels (clean classifier
forward, decoder, soft ranking, perturbed classifier forwards), backward, clip, AdamW. The perturbed classifier
passes are recorded during the steps (the classifier's forward calls made with grad enabled) and then
replayed alone, forward + backward to their inputs with the same shapes, checkpointing setting and grad
flow; their time over the step time is the irreducible share (the classifier must see every perturbed image).
With checkpointing on, the recorded calls include the recomputed forwards and each is replayed with a backward, so
its fraction over-counts (it can exceed 1): read the fraction of the run without checkpointing.

Times are CPU time of this process on one thread (``time.process_time``, medians over steps): the
machines this runs on are shared, and wall time there measures the neighbours.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from models import VIT_CONFIGS, build_vit

from aha import AHAExplainer
from aha.training.schedule import annealed_tau


def measure(model: str, batch_size: int, steps: int, gradient_checkpointing: bool) -> dict[str, float]:
    torch.manual_seed(0)
    random.seed(0)
    classifier = build_vit(model)
    explainer = AHAExplainer.from_classifier(classifier)
    explainer.train()
    if gradient_checkpointing:
        explainer.activation_checkpointing_enable()
    trainable = [p for p in explainer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=3e-4, weight_decay=1e-3)
    size = classifier.config.image_size
    pixels = torch.randn(batch_size, 3, size, size)
    labels = torch.arange(batch_size) % classifier.config.num_labels

    perturbed_shapes: list[torch.Size] = []
    forward = explainer.classifier.forward

    def recording_forward(pixel_values=None, **kwargs):
        if torch.is_grad_enabled():
            perturbed_shapes.append(pixel_values.shape)
        return forward(pixel_values=pixel_values, **kwargs)

    explainer.classifier.forward = recording_forward

    def step(i: int):
        loss = explainer(pixels, labels=labels, tau=annealed_tau(i, steps, 1.0, 0.3)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad()

    for i in range(2):  # warm-up
        step(i)
    perturbed_shapes.clear()
    step_times = []
    for i in range(steps):
        start = time.process_time()
        step(i)
        step_times.append(time.process_time() - start)
    step_seconds = statistics.median(step_times)
    calls_per_step = len(perturbed_shapes) // steps

    explainer.classifier.forward = forward
    replay_times = []
    for i in range(steps):
        replay = [
            torch.randn(s, requires_grad=True) for s in perturbed_shapes[i * calls_per_step : (i + 1) * calls_per_step]
        ]
        start = time.process_time()
        for inputs in replay:
            logits = explainer.classifier(pixel_values=inputs).logits
            torch.autograd.grad(logits.softmax(-1)[:, 0].sum(), inputs)
        replay_times.append(time.process_time() - start)
    classifier_seconds = statistics.median(replay_times)
    return {
        "images_per_second": batch_size / step_seconds,
        "step_ms": 1000 * step_seconds,
        "perturbed_images_per_step": sum(s[0] for s in perturbed_shapes) / steps,
        "classifier_fraction": classifier_seconds / step_seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-vit-64px", choices=sorted(VIT_CONFIGS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.model}, batch {args.batch_size}, "
        f"{args.steps} steps"
    )
    for checkpointing in (True, False):
        result = measure(args.model, args.batch_size, args.steps, checkpointing)
        print(f"gradient_checkpointing={checkpointing}: " + ", ".join(f"{k}={v:.3g}" for k, v in result.items()))


if __name__ == "__main__":
    main()
