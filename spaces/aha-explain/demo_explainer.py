"""The web demo's default explainer: the one ``aha demo`` trained and cached, trained first when it is absent.

``aha demo --output DIR`` keeps the explainer it trains on its default world, AHA Shapes, in
``DIR/shapes/explainer`` and the dataset in ``DIR/shapes/data``. The demo page uses the same folder as ``aha demo`` (default ``./aha-demo``), so an explainer
trained by ``aha demo`` is reused as it is, and one trained for the page is there for ``aha demo``'s report.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from aha.imaging.images import to_rgb


#: How many AHA Shapes test images the page offers as examples.
NUM_EXAMPLES = 6


def default_demo_folder() -> Path:
    """``aha demo``'s default ``--output`` folder."""
    from aha.demo import build_parser

    return Path(build_parser().get_default("output"))


def world_folder(folder: Path) -> Path:
    """Where ``aha demo --output folder`` keeps its default world's data, classifier and explainer."""
    from aha.demo import build_parser

    return folder / build_parser().get_default("world")


def demo_explainer(folder: str | Path | None = None, preset: str = "default") -> Path:
    """The path of the explainer ``aha demo`` saved in ``folder``, training ``aha demo --output folder --preset
    preset``'s data, classifier and explainer first when there is none (not its report: the page needs the
    explainer only), with a message saying so (the demo prints its own progress after it).

    Args:
        folder: ``aha demo``'s output folder (default: its default, ``./aha-demo``).
        preset: the demo preset to train with when no explainer is there: ``quick`` (a smoke run of a few CPU
            minutes, its classifier about 0.5 accurate on AHA Shapes), ``default`` (about 10 minutes) or ``full``.
    """
    from aha.demo import build_parser, build_world, get_world, preset_settings

    folder = default_demo_folder() if folder is None else Path(folder)
    explainer = world_folder(folder) / "explainer"
    if not (explainer / "config.json").is_file():
        print(
            f"[aha space] no trained explainer in {explainer}: training one now as `aha demo --output {folder} "
            f"--preset {preset}` does, without its report (preset {preset!r}: about "
            f"{'a few CPU minutes' if preset == 'quick' else '10 minutes or more'} on 2 CPU cores); the page opens "
            "when it is done.",
            flush=True,
        )
        world = build_parser().get_default("world")
        build_world(get_world(world), folder / world, preset_settings(preset))
    return explainer


def demo_examples(folder: str | Path, count: int = NUM_EXAMPLES) -> list[tuple[Image.Image, str]]:
    """The first ``count`` AHA Shapes test images of ``aha demo``'s ``folder/shapes/data``, with captions naming their
    class, for the page's examples (an empty list if the folder holds no dataset)."""
    import datasets

    data = world_folder(Path(folder)) / "data"
    if not data.is_dir():
        return []
    test = datasets.load_from_disk(str(data))["test"]
    names = test.features["label"].names if hasattr(test.features["label"], "names") else None
    rows = test.select(range(min(count, len(test))))
    return [(to_rgb(row["image"]), names[row["label"]] if names else str(row["label"])) for row in rows]
