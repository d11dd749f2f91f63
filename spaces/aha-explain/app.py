"""AHA, learned visual attribution for Hugging Face image classifiers: the web demo (a Gradio app, Hub Space layout).

    python app.py                                        # the explainer `aha demo` trained in ./aha-demo (trained first if absent)
    python app.py --explainer org/aha-vit-b16            # any saved explainer folder or Hub repo id
    python app.py --demo_preset quick --port 7861        # python app.py --help for the rest

Every option also reads an environment variable (AHA_EXPLAINER, AHA_DEMO_DIR, AHA_DEMO_PRESET, ...), which is how
a Hub Space sets them; GRADIO_SERVER_NAME and GRADIO_SERVER_PORT work as for any Gradio app.

The page: upload an image or pick an example; the classifier's top classes; a class picker (default: the
prediction); AHA's map of that class over the image, beside Chefer's and RISE's, each with its time per image;
a refinement-steps slider; AHA's deletion and insertion curves and every method's AUCs. A file that is not one
still image of a usable size gets a message in the page (uploads.py), and the server keeps serving.

The app is built on the library's public API (the ``image-attribution`` pipeline, ``aha.baselines``,
``aha.metrics``, ``aha.imaging.visualization``, ``aha demo``'s explainer); beside this page, in this folder:

- ``uploads.py``: an uploaded file read as one still image, or refused with a message for the page;
- ``comparison.py``: the top classes, then AHA and comparison methods on one image for one class, timed and
  scored with the pipeline's protocol;
- ``demo_explainer.py``: the default explainer, the one ``aha demo`` trained and cached (trained first when
  absent), and its AHA Shapes examples.

None of these imports Gradio, so they are tested without a browser (tests/test_space_*.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import gradio as gr
import torch
from comparison import Comparison, default_comparisons
from demo_explainer import default_demo_folder, demo_examples, demo_explainer
from uploads import MAX_PIXELS, UploadError, read_upload

from aha.imaging.visualization import curve_plot


logger = logging.getLogger("aha-explain-space")
MAX_REFINE_STEPS = 10
#: Longest side of the pictures sent to the browser (the maps and their curves are those of the whole image)
DISPLAY_SIDE = 1024


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="The AHA web demo (Gradio).")
    parser.add_argument(
        "--explainer",
        default=env("AHA_EXPLAINER"),
        help="A saved explainer folder or Hub repo id (env AHA_EXPLAINER; default: the one `aha demo` "
        "trained in --demo_dir, trained first if absent).",
    )
    parser.add_argument(
        "--demo_dir",
        default=env("AHA_DEMO_DIR", str(default_demo_folder())),
        help="`aha demo`'s output folder, for the default explainer and its examples (env AHA_DEMO_DIR; "
        "default: aha demo's own default, ./aha-demo).",
    )
    parser.add_argument(
        "--demo_preset",
        default=env("AHA_DEMO_PRESET", "default"),
        choices=["quick", "default", "full"],
        help="Preset `aha demo` trains with when --demo_dir holds no explainer (env AHA_DEMO_PRESET; "
        "quick: a smoke run of a few CPU minutes, default: about 10 CPU minutes).",
    )
    parser.add_argument(
        "--rise_masks",
        type=int,
        default=int(env("AHA_RISE_MASKS", "500")),
        help="Masks of the RISE comparison (env AHA_RISE_MASKS; default 500).",
    )
    parser.add_argument(
        "--examples",
        nargs="*",
        default=None,
        help="Image files offered as examples (default: AHA Shapes test images of --demo_dir).",
    )
    parser.add_argument(
        "--max_image_pixels",
        type=int,
        default=int(env("AHA_MAX_IMAGE_PIXELS", str(MAX_PIXELS))),
        help="Most pixels of an uploaded image; larger ones are refused before they are decoded (env "
        f"AHA_MAX_IMAGE_PIXELS; default {MAX_PIXELS:,}, 4096 x 4096, as aha explain).",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(env("AHA_THREADS", "0")) or None,
        help="torch CPU threads (env AHA_THREADS; default: torch's choice).",
    )
    parser.add_argument("--host", default=None, help="Address to serve on (default: Gradio's, 127.0.0.1).")
    parser.add_argument("--port", type=int, default=None, help="Port (default: Gradio's, 7860 or the next free one).")
    return parser


def for_display(image):
    """``image``, shrunk to at most DISPLAY_SIDE pixels on its longest side."""
    if max(image.size) <= DISPLAY_SIDE:
        return image
    image = image.copy()
    image.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE))
    return image


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def scores_table(results, class_name: str, refine_steps: int) -> str:
    """Every method's time and AUCs as Markdown (AUCs to 4 decimals: the numbers the browser test reads)."""
    aha_seconds = results[0].seconds
    rows = [
        f"Class **{class_name}**, AHA with {refine_steps} refinement step{'s' * (refine_steps != 1)}; curves on the "
        "classifier's input, mean-colour reference, 21 fractions.",
        "",
        "| Method | time per image | deletion AUC (lower is better) | insertion AUC (higher is better) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in results:
        ratio = r.seconds / aha_seconds
        cost = "" if r is results[0] else f" ({ratio:.0f}x AHA)" if ratio >= 10 else f" ({ratio:.1f}x AHA)"
        rows.append(
            f"| {r.name} | {duration(r.seconds)}{cost} | {r.deletion.auc[0].item():.4f} "
            f"| {r.insertion.auc[0].item():.4f} |"
        )
    return "\n".join(rows)


CSS = """
#preview img, .overlay img {width: 100%; height: 100%; object-fit: contain}
"""


def build_page(comparison: Comparison, examples: list, title: str) -> gr.Blocks:
    """The page; uploads are read with ``comparison``'s size limit (``--max_image_pixels``)."""
    methods = ["AHA", *comparison.comparisons]
    choices = [(label, index) for index, label in enumerate(comparison.labels)]

    def explanation(image, target: int | None, refine_steps: int) -> tuple[list, object]:
        """The outputs that depend on the class and the refinement steps, and the explanation they show."""
        refine_steps = int(refine_steps)
        explained = comparison.explain(image, None if target is None else int(target), refine_steps, DISPLAY_SIDE)
        results, class_name = explained.methods, comparison.labels[explained.target]
        aha = results[0]
        plot = curve_plot(
            {"deletion": aha.deletion, "insertion": aha.insertion}, image=0, title=f"AHA, class {class_name!r}"
        )
        overlays = [gr.Image(value=r.overlay, label=f"{r.name}: {duration(r.seconds)} per image") for r in results]
        return [*overlays, plot, scores_table(results, class_name, refine_steps)], explained

    def no_explanation(message: str = "") -> list:
        return [*[gr.Image(value=None, label=name) for name in methods], None, "", message]

    def cleared(message: str = "") -> list:
        """Every output emptied, so nothing of a previous image stays beside the message."""
        return [message, None, None, gr.Dropdown(choices=choices, value=None), *no_explanation()[:-1], None]

    def failure(error: Exception) -> str:
        """The message the page shows for ``error`` (the server log keeps the traceback of unexpected ones)."""
        if isinstance(error, UploadError):
            return f"**This file cannot be explained.** {error}"
        logger.exception("explaining an image failed")
        return f"**Something went wrong explaining this image** ({type(error).__name__}: {error}). Try another image."

    def analyse(image, name: str, refine_steps: int) -> list:
        shown, explained = explanation(image, None, refine_steps)  # the predicted class, in the same passes
        target = explained.target
        top = {p["label"]: p["score"] for p in explained.predictions}
        status = (
            f"{name}: predicted **{comparison.labels[target]}** (p = {top[comparison.labels[target]]:.3f}); "
            "pick another class to explain it instead."
        )
        return [status, for_display(image), top, gr.Dropdown(choices=choices, value=target), *shown, image]

    def on_upload(path, refine_steps):
        if path is None:
            return cleared()
        try:
            return analyse(read_upload(path, comparison.max_image_pixels), os.path.basename(path), refine_steps)
        except Exception as error:  # the page shows a message, never a stack trace; the server keeps serving
            return cleared(failure(error))

    def on_example(refine_steps, event: gr.SelectData):
        try:
            return [*analyse(examples[event.index][0], f"Example {event.index + 1}", refine_steps), None]
        except Exception as error:
            return [*cleared(failure(error)), None]

    def on_class(image, target, refine_steps):
        if image is None or target is None:
            return [gr.skip()] * (len(methods) + 3)
        try:
            return [*explanation(image, target, refine_steps)[0], ""]
        except Exception as error:
            return no_explanation(failure(error))

    with gr.Blocks(title="AHA: learned visual attribution", analytics_enabled=False) as page:
        gr.Markdown(f"# AHA: learned visual attribution\n{title}")
        image_state = gr.State(None)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload an image", type="filepath", elem_id="upload")
                gallery = gr.Gallery(
                    value=examples,
                    label="Or pick an example",
                    columns=3,
                    allow_preview=False,
                    height=260,
                    buttons=[],
                    elem_id="examples",
                    visible=bool(examples),
                )
            preview = gr.Image(label="Image", interactive=False, height=340, elem_id="preview")
            top = gr.Label(label="Top classes", num_top_classes=5, elem_id="top-classes")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            picker = gr.Dropdown(choices=choices, value=None, label="Class to explain", elem_id="class-picker")
            refine = gr.Slider(
                0, MAX_REFINE_STEPS, value=0, step=1, label="AHA test-time refinement steps", elem_id="refine-steps"
            )
        with gr.Row():
            overlays = [
                gr.Image(
                    label=name,
                    interactive=False,
                    format="png",
                    height=300,
                    elem_id=f"overlay-{index}",
                    elem_classes="overlay",
                )
                for index, name in enumerate(methods)
            ]
        with gr.Row():
            curves = gr.Plot(label="AHA: deletion and insertion curves", elem_id="curves")
            scores = gr.Markdown(elem_id="scores")

        everything = [status, preview, top, picker, *overlays, curves, scores, image_state]
        by_class = [*overlays, curves, scores, status]
        upload.upload(on_upload, [upload, refine], everything)
        upload.clear(cleared, None, everything)
        gallery.select(on_example, [refine], [*everything, upload])
        picker.input(on_class, [image_state, picker, refine], by_class)
        refine.release(on_class, [image_state, picker, refine], by_class)
    return page


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option, value in (
        ("--rise_masks", args.rise_masks),
        ("--threads", args.threads),
        ("--max_image_pixels", args.max_image_pixels),
    ):
        if value is not None and value < 1:
            parser.error(f"{option} must be an integer >= 1, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    explainer = args.explainer or str(demo_explainer(args.demo_dir, args.demo_preset))
    comparison = Comparison(explainer, default_comparisons(args.rise_masks), max_image_pixels=args.max_image_pixels)
    comparison.warm_up()
    if args.examples is not None:
        examples = [(read_upload(path, args.max_image_pixels), os.path.basename(path)) for path in args.examples]
    else:
        examples = demo_examples(args.demo_dir) if not args.explainer else []
    page = build_page(
        comparison,
        examples,
        f"Explainer: `{explainer}`, classifier: "
        f"{type(comparison.classifier).__name__} with {len(comparison.labels)} classes.",
    )
    print(f"[aha space] ready in {time.perf_counter() - start:.1f} s", flush=True)
    page.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, max_file_size="50mb", ssr_mode=False, css=CSS
    )


if __name__ == "__main__":
    main()
