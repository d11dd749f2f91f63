"""CPU time of one `AHAExplainer.explain` call relative to one plain forward of its classifier.

    python benchmarks/explain_speed.py            # tiny ViT (as in the tests) and ViT-B/16 at 224 px, batch 8

Random-init models built from configs (no download); the ratio, not the weights, is what is measured.
Also times test-time refinement (batched over the images) per refinement step.
"""

import argparse
import time

import torch
from models import VIT_CONFIGS, build_vit

from aha import AHAExplainer


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--refine_steps", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(VIT_CONFIGS), choices=list(VIT_CONFIGS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is least sensitive to a shared CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print("| model | classifier params | decoder params | forward (s) | explain (s) | explain / forward | refine step (s) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        classifier = build_vit(name)
        explainer = AHAExplainer.from_classifier(classifier).eval()
        size = classifier.config.image_size
        images = torch.randn(args.batch_size, 3, size, size)
        with torch.no_grad():
            forward = best_of(lambda: classifier(pixel_values=images), args.repeats)
            explain = best_of(lambda: explainer.explain(images), args.repeats)
        refine = (
            best_of(lambda: explainer.explain(images, refine_steps=args.refine_steps), 1) - explain
        ) / args.refine_steps
        n_cls = sum(p.numel() for p in classifier.parameters())
        n_dec = sum(p.numel() for p in explainer.decoder.parameters())
        print(f"| {name} | {n_cls / 1e6:.2f} M | {n_dec / 1e6:.3f} M | {forward:.4f} | {explain:.4f} | {explain / forward:.2f}x | {refine:.3f} |")


if __name__ == "__main__":
    main()
