"""``aha explain``: explain image files with a trained explainer (a saved folder or a Hub repo id).

    aha explain org/aha-vit-b16 cat.jpg dog.png --target "tabby cat" --output out/ --curves

For each image it writes ``<name>_overlay.png`` (the map over the image, enlarged when small, with a colour
bar, the class explained and its probability) and
``<name>_map.npy`` (the raw map, float32, the image's height x width), plus ``<name>_curves.png`` (its
deletion / insertion curves) with ``--curves``; it prints the top classes, the class explained and the
deletion / insertion AUCs (AHA protocol: mean reference, 21 fractions, least-relevant-first insertion).
Everything runs through the ``image-attribution`` pipeline (:mod:`aha.pipeline`).

``<name>`` is the image's path relative to the folder that holds all the inputs, without its extension, so
``a/cat.png b/cat.png`` write ``out/a/cat_*`` and ``out/b/cat_*``; when two inputs still map to one name (``cat.png``
and ``cat.jpg``, or a file given twice) the later one gets ``-2``, ``-3``, ... (the first free one, in the order of
the arguments, compared without case). The names depend on the arguments only, never on which images fail.

Images are read by :func:`aha.imaging.images.read_image` (the pipeline's and the web demo's reader and size limits,
``--max_image_pixels`` and ``--min_image_side``). An image that cannot be read is reported on stderr, one line
naming the file and what was expected, and the others are still explained; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .imaging.images import MAX_PIXELS, MIN_SIDE, ImageInputError, check_limit, read_image


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aha explain", description="Explain image files with a trained AHA explainer: overlays, raw maps, curves."
    )
    parser.add_argument("explainer", help="A saved explainer folder or a Hub repo id (with its image processor).")
    parser.add_argument(
        "images",
        nargs="+",
        help="Image files (any format Pillow reads; grayscale, RGBA, 16-bit and float images are "
        "converted by their range; see aha.imaging.images).",
    )
    parser.add_argument(
        "--target",
        default=None,
        help="Class to explain: a label name of the classifier or an index (default: each image's predicted class).",
    )
    parser.add_argument("--refine_steps", type=int, default=0, help="Test-time refinement steps (default 0).")
    parser.add_argument("--output", default=".", help="Folder for the overlays, maps and curve plots (default: here).")
    parser.add_argument(
        "--curves", action="store_true", help="Also write each image's deletion / insertion curve plot."
    )
    parser.add_argument("--top_k", type=int, default=5, help="Top classes to print (default 5).")
    parser.add_argument("--batch_size", type=int, default=1, help="Images per forward pass (default 1).")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: the first accelerator, else cpu)."
    )
    parser.add_argument("--revision", default=None, help="Hub revision of the explainer.")
    parser.add_argument(
        "--max_image_pixels",
        type=int,
        default=MAX_PIXELS,
        help=f"Larger images are refused, from their header, before decoding (default {MAX_PIXELS:,}, 4096 x 4096).",
    )
    parser.add_argument(
        "--min_image_side",
        type=int,
        default=MIN_SIDE,
        help=f"Images with a shorter side are refused (default {MIN_SIDE}).",
    )
    return parser


def output_names(paths: list[str]) -> list[str]:
    """A distinct output name per image (see the module docstring): its path relative to the folder holding all
    the inputs, without the extension; ``-2``, ``-3``, ... added to a name already taken (case-insensitively)."""
    absolute = [os.path.abspath(os.path.expanduser(path)) for path in paths]
    root = os.path.commonpath([os.path.dirname(path) for path in absolute]) if absolute else ""
    names, taken = [], set()
    for path in absolute:
        stem = os.path.splitext(os.path.relpath(path, root))[0]
        name, number = stem, 2
        while name.casefold() in taken:
            name, number = f"{stem}-{number}", number + 1
        taken.add(name.casefold())
        names.append(name)
    return names


def target_from_flag(target: str | None, label2id: dict[str, int]) -> str | int | None:
    """``--target`` as the pipeline takes it: a label name as given, else an integer index."""
    if target is None or target in label2id:
        return target
    try:
        return int(target)
    except ValueError:
        return target  # the pipeline names the labels it knows


def main(args: argparse.Namespace) -> None:
    for flag in ("max_image_pixels", "min_image_side", "batch_size"):
        try:
            check_limit(f"--{flag}", getattr(args, flag))
        except ValueError as error:
            raise SystemExit(f"aha explain: {error}") from None
    from transformers import pipeline  # here, not at the top: ``aha explain --help`` answers without torch

    from .persistence.strict_loading import check_local_path
    from .pipeline import TASK

    explainer = os.path.expanduser(args.explainer)
    try:
        check_local_path(explainer, "aha explain: the explainer")
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    output = os.path.expanduser(args.output)
    names, failed, pipe = output_names(args.images), [], None
    for start in range(0, len(args.images), args.batch_size):  # a batch in memory at a time
        batch = []
        for path, name in zip(args.images[start : start + args.batch_size], names[start : start + args.batch_size]):
            try:
                batch.append((path, name, read_image(path, args.max_image_pixels, args.min_image_side)))
            except ImageInputError as error:
                failed.append(path)
                print(f"aha explain: {error}", file=sys.stderr, flush=True)
        if not batch:
            continue
        if pipe is None:
            try:
                pipe = pipeline(
                    TASK,
                    model=explainer,
                    device=args.device,
                    revision=args.revision,
                    max_image_pixels=args.max_image_pixels,
                    min_image_side=args.min_image_side,
                )
            except OSError as error:  # transformers' message for an unreachable or unknown Hub id
                raise OSError(
                    f"cannot load the explainer {args.explainer!r} (a saved folder or a Hub repo id): {error}"
                ) from error
            target = target_from_flag(args.target, pipe.model.config.classifier_config.label2id)
        results = pipe(
            [image for _, _, image in batch],
            batch_size=args.batch_size,
            target=target,
            top_k=args.top_k,
            refine_steps=args.refine_steps,
            overlay=True,
            curves=True,
        )
        for (path, name, _), result in zip(batch, results):
            write_outputs(path, output, name, result, args.curves)
    if failed:
        raise SystemExit(
            f"aha explain: {len(failed)} of {len(args.images)} images could not be read (listed above); "
            f"the other {len(args.images) - len(failed)} were explained"
        )


def write_outputs(path: str, output: str, name: str, result: dict, curves: bool) -> None:
    """One image's overlay, map and (``curves``) curve plot at ``output/name``_*, and its lines of the report. Files
    go through :mod:`aha.persistence.atomic_writer` (atomic; a link planted in ``output`` is replaced or refused, never followed)."""
    from .imaging.visualization import DELETION_LABEL, LRF_LABEL, curve_plot
    from .persistence.atomic_writer import make_folder, write_file

    base = os.path.join(output, name)
    make_folder(os.path.dirname(base), root=output)
    written = [f"{base}_overlay.png", f"{base}_map.npy"]
    write_file(written[0], lambda handle: result["overlay"].save(handle, format="PNG"))
    write_file(written[1], lambda handle: np.save(handle, result["attribution"]))
    if curves:
        written.append(f"{base}_curves.png")
        plot = curve_plot(
            {DELETION_LABEL: result["deletion"], LRF_LABEL: result["insertion"]}, title=os.path.basename(path)
        )
        write_file(written[-1], lambda handle: plot.savefig(handle, format="png"))
    print(f"{path}: " + ", ".join(f"{p['label']} {p['score']:.3f}" for p in result["predictions"]))
    print(
        f"  explained {result['target_label']!r} (class {result['target']}, p={result['target_score']:.3f}): "
        f"deletion AUC {result['deletion'].mean_auc:.4f}, insertion AUC {result['insertion'].mean_auc:.4f}"
    )
    print(f"  wrote {', '.join(written)}", flush=True)
