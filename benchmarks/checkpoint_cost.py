"""What issue 9's checks cost at ViT-B/16 scale: the size of a training checkpoint without the frozen
classifier (against one that holds it, as accelerate's save_state wrote), and the time the fingerprint
check adds to loading a self-contained explainer.

    python benchmarks/checkpoint_cost.py [--repeats 3]

Random-init weights (cost, not quality, is measured); one torch thread. Prints a markdown table.
"""

import argparse
import os
import statistics
import tempfile
import time

import torch
from models import build_vit

from aha import AHAExplainer
from aha.persistence.atomic_writer import write_safetensors
from aha.persistence.fingerprints import weights_fingerprint
from aha.training.checkpointing import trainable_state_dict
from aha.training.optimizer_state import write_optimizer


def _megabytes(path: str) -> float:
    return os.path.getsize(path) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    explainer = AHAExplainer.from_classifier(build_vit("vit-b16-224px"))
    trainable = [p for p in explainer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    sum(p.sum() for p in trainable).backward()
    optimizer.step()  # so that the optimiser has its per-parameter state

    with tempfile.TemporaryDirectory() as folder:
        paths = {name: os.path.join(folder, f"{name}.safetensors") for name in ("decoder", "full", "optimizer")}
        write_safetensors(paths["decoder"], trainable_state_dict(explainer))
        write_safetensors(paths["full"], explainer.state_dict())
        write_optimizer(paths["optimizer"], optimizer.state_dict())
        sizes = {name: _megabytes(path) for name, path in paths.items()}

        explainer.save_pretrained(os.path.join(folder, "explainer"))
        check = AHAExplainer._check_stored_classifier
        hashes, loads, unchecked = [], [], []
        for _ in range(args.repeats):  # interleaved
            start = time.perf_counter()
            weights_fingerprint(explainer.classifier)
            hashes.append(time.perf_counter() - start)
            start = time.perf_counter()
            AHAExplainer.from_pretrained(os.path.join(folder, "explainer"))
            loads.append(time.perf_counter() - start)
            AHAExplainer._check_stored_classifier = lambda self: None  # the same load without the check
            start = time.perf_counter()
            AHAExplainer.from_pretrained(os.path.join(folder, "explainer"))
            unchecked.append(time.perf_counter() - start)
            AHAExplainer._check_stored_classifier = check

    print("| quantity | value |\n|---|---|")
    print(f"| checkpoint weights without the classifier (`model.safetensors`) | {sizes['decoder']:.1f} MiB |")
    print(f"| the same with the classifier (what accelerate's save_state stored) | {sizes['full']:.1f} MiB |")
    print(f"| optimiser state (`optimizer.safetensors`) | {sizes['optimizer']:.1f} MiB |")
    print(
        f"| fingerprint of the classifier's weights (median of {args.repeats}) | {statistics.median(hashes):.2f} s |"
    )
    print(
        f"| `from_pretrained` of the self-contained explainer, check included (median) | "
        f"{statistics.median(loads):.2f} s |"
    )
    print(f"| the same load without the check (median) | {statistics.median(unchecked):.2f} s |")


if __name__ == "__main__":
    main()
