"""``aha explain``: explain image files with a trained explainer (a saved folder or a Hub repo id).

    aha explain org/aha-vit-b16 cat.jpg dog.png --target "tabby cat" --output out/ --curves

For each image it writes ``<name>_overlay.png`` (the map over the image, enlarged when small, with a colour
bar, the class explained and its probability) and
``<name>_map.npy`` (the raw map, float32, the image's height x width), plus ``<name>_curves.png`` (its
deletion / insertion curves) with ``--curves``; it prints the top classes, the class explained and the
deletion / insertion AUCs (AHA protocol: mean reference, 21 fractions, least-relevant-first insertion).
Everything runs through the ``image-attribution`` pipeline (:mod:`aha.pipeline`).
"""

from __future__ import annotations

import argparse
import os
from collections import Counter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aha explain", description="Explain image files with a trained AHA explainer: overlays, raw maps, curves."
    )
    parser.add_argument("explainer", help="A saved explainer folder or a Hub repo id (with its image processor).")
    parser.add_argument("images", nargs="+", help="Image files (any format PIL reads; grayscale and RGBA are converted).")
    parser.add_argument("--target", default=None,
                        help="Class to explain: a label name of the classifier or an index (default: each image's "
                             "predicted class).")
    parser.add_argument("--refine_steps", type=int, default=0, help="Test-time refinement steps (default 0).")
    parser.add_argument("--output", default=".", help="Folder for the overlays, maps and curve plots (default: here).")
    parser.add_argument("--curves", action="store_true", help="Also write each image's deletion / insertion curve plot.")
    parser.add_argument("--top_k", type=int, default=5, help="Top classes to print (default 5).")
    parser.add_argument("--batch_size", type=int, default=1, help="Images per forward pass (default 1).")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the first accelerator, else cpu).")
    parser.add_argument("--revision", default=None, help="Hub revision of the explainer.")
    return parser


def output_names(paths: list[str]) -> list[str]:
    """A distinct file-name stem per image: its own, with ``-2``, ``-3`` ... for repeated names."""
    stems, seen = [os.path.splitext(os.path.basename(path))[0] for path in paths], Counter()
    names = []
    for stem in stems:
        seen[stem] += 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def resolve_target(target: str | None, label2id: dict[str, int]) -> str | int | None:
    """``--target`` as the pipeline takes it: a label name as given, else an integer index."""
    if target is None or target in label2id:
        return target
    try:
        return int(target)
    except ValueError:
        return target  # the pipeline names the labels it knows


def main(args: argparse.Namespace) -> None:
    missing = [path for path in args.images if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"aha explain: no such image file: {', '.join(missing)}")
    import numpy as np  # here, not at the top: ``aha explain --help`` answers without torch
    from transformers import pipeline

    from .pipeline import TASK
    from .visualization import DELETION_LABEL, LRF_LABEL, curve_plot

    try:
        pipe = pipeline(TASK, model=args.explainer, device=args.device, revision=args.revision)
    except OSError as error:  # transformers' message for a missing folder or an unreachable Hub id
        raise OSError(f"cannot load the explainer {args.explainer!r} (a saved folder or a Hub repo id): {error}") from error
    target = resolve_target(args.target, pipe.model.config.classifier_config.label2id)
    os.makedirs(args.output, exist_ok=True)
    results = pipe(list(args.images), batch_size=args.batch_size, target=target, top_k=args.top_k,
                   refine_steps=args.refine_steps, overlay=True, curves=True)
    for path, name, result in zip(args.images, output_names(args.images), results):
        base = os.path.join(args.output, name)
        written = [f"{base}_overlay.png", f"{base}_map.npy"]
        result["overlay"].save(written[0])
        np.save(written[1], result["attribution"])
        if args.curves:
            written.append(f"{base}_curves.png")
            plot = curve_plot({DELETION_LABEL: result["deletion"], LRF_LABEL: result["insertion"]}, title=os.path.basename(path))
            plot.savefig(written[-1])
        print(f"{path}: " + ", ".join(f"{p['label']} {p['score']:.3f}" for p in result["predictions"]))
        print(f"  explained {result['target_label']!r} (class {result['target']}, p={result['target_score']:.3f}): "
              f"deletion AUC {result['deletion'].mean_auc:.4f}, insertion AUC {result['insertion'].mean_auc:.4f}")
        print(f"  wrote {', '.join(written)}")
