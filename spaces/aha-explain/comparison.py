"""What the web demo computes for one image: the classifier's top classes, then AHA's map and one or two
comparison methods' maps for a class (default: the prediction), each timed, drawn over the image and scored.

    comparison = Comparison("aha-demo/shapes/explainer")       # a saved folder or a Hub repo id
    explained = comparison.explain(image, refine_steps=2)       # or target=3
    explained.predictions, explained.target                     # [{"label", "score"}, ...], the index explained
    for result in explained.methods:
        result.name, result.seconds, result.deletion.auc, result.insertion.auc, result.overlay

Built on the library's public API only: every method, AHA included, is an :mod:`aha.baselines` attributor run
through the ``image-attribution`` pipeline (its ``attributor`` argument), so each sees the same processed image,
its map is carried back to the image's size and its curves are the pipeline's (``curves=True``: deletion and
least-relevant-first insertion with :func:`aha.metrics.deletion_insertion`'s defaults, mean reference, 21
fractions, hard ranking over all pixels, on the processed image). The time of a method is that of its map
alone, its own passes through the classifier included, without the curves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import pipeline

from aha.baselines import get_attributor
from aha.imaging.images import MAX_PIXELS
from aha.imaging.visualization import overlay
from aha.metrics import CurveResult


def default_comparisons(rise_masks: int = 500) -> dict[str, tuple[str, dict]]:
    """The comparison methods shown beside AHA by default, display name -> (:func:`aha.baselines.get_attributor`
    name, options): Chefer's relevance (one forward and backward pass) and RISE, which even with a small mask
    count costs hundreds of forward passes, so the speed difference shows."""
    return {"Chefer": ("chefer", {}), f"RISE ({rise_masks} masks)": ("rise", {"n_masks": rise_masks})}


@dataclass
class MethodResult:
    """One method's map of one image, for one class.

    Attributes:
        name: the method's display name.
        overlay: the map over the image, at the image's own size or the ``max_side`` asked for (RGB PIL image).
        seconds: wall-clock time of the map (the method's forward and backward passes, without the curves).
        deletion: the deletion curve and AUC (low is good), a batch of one image.
        insertion: the least-relevant-first insertion curve and AUC (high is good), a batch of one image.
    """

    name: str
    overlay: Image.Image
    seconds: float
    deletion: CurveResult
    insertion: CurveResult


@dataclass
class Explanation:
    """What the page shows of one image: the classifier's top classes, the class explained, every method's map.

    Attributes:
        predictions: the top classes, ``{"label", "score"}`` (softmax probabilities), most probable first.
        target: the class index explained (the prediction unless another was asked for).
        methods: AHA's result, then each comparison method's.
    """

    predictions: list[dict]
    target: int
    methods: list[MethodResult]


class Timed:
    """``attributor``, recording the wall-clock seconds of its last call (after the device finished the work)."""

    def __init__(self, attributor):
        self.attributor, self.seconds = attributor, None

    def __call__(self, pixel_values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        synchronise = torch.cuda.synchronize if pixel_values.is_cuda else (lambda: None)
        synchronise()
        start = time.perf_counter()
        maps = self.attributor(pixel_values, target)
        synchronise()
        self.seconds = time.perf_counter() - start
        return maps


class Comparison:
    """AHA and comparison methods for one explainer's classifier.

    Thread-safe: a web server runs requests in threads, and the methods switch the shared classifier's attention
    implementation and gradient flags while they run, so one request uses the models at a time.

    Args:
        explainer: a saved explainer folder or Hub repo id (with its image processor), as
            ``pipeline("image-attribution", model=...)`` takes it.
        comparisons: display name -> (name in :func:`aha.baselines.get_attributor`, options), shown after AHA
            (default: :func:`default_comparisons`).
        device: where the models run (default: the pipeline's choice).
        max_image_pixels: most pixels of an image explained (default: :data:`aha.imaging.images.MAX_PIXELS`).
    """

    def __init__(
        self,
        explainer: str,
        comparisons: dict[str, tuple[str, dict]] | None = None,
        device=None,
        max_image_pixels: int = MAX_PIXELS,
    ):
        self.pipe = pipeline("image-attribution", model=explainer, device=device, max_image_pixels=max_image_pixels)
        self.max_image_pixels = max_image_pixels
        self.explainer = self.pipe.model.eval()
        self.classifier = self.explainer.classifier
        config = self.classifier.config
        #: the classifier's label names, in class-index order
        self.labels = [config.id2label[index] for index in range(config.num_labels)]
        comparisons = default_comparisons() if comparisons is None else comparisons
        self.comparisons = {
            name: get_attributor(method, self.classifier, **options) for name, (method, options) in comparisons.items()
        }
        self._lock = threading.Lock()

    def explain(
        self,
        image: Image.Image,
        target: int | None = None,
        refine_steps: int = 0,
        max_side: int | None = None,
        top_k: int = 5,
    ) -> Explanation:
        """AHA (with ``refine_steps`` test-time refinement steps), then each comparison method, on ``image`` for
        class index ``target`` (default: the classifier's prediction), with the classifier's ``top_k`` classes.

        Args:
            max_side: longest side of the overlays (default: the image's own size). A larger image is shrunk for
                them, and each map with it (each shrunk pixel the mean of those it covers): colouring a map ranks
                all its pixels, which takes seconds at 12 megapixels. The maps' curves are unchanged.
        """
        picture = image
        if max_side is not None and max(picture.size) > max_side:
            picture = picture.copy()
            picture.thumbnail((max_side, max_side))
        methods = {
            "AHA": get_attributor("aha", self.classifier, explainer=self.explainer, refine_steps=refine_steps),
            **self.comparisons,
        }
        predictions, results = None, []
        for name, attributor in methods.items():
            timed = Timed(attributor)
            with self._lock:
                result = self.pipe(image, target=target, attributor=timed, curves=True, top_k=top_k)
            # the first method's pass gives the predictions and the class; the others explain the same class
            predictions, target = predictions or result["predictions"], result["target"]
            attribution = result["attribution"]
            if picture.size != image.size:
                attribution = np.asarray(Image.fromarray(attribution).resize(picture.size, Image.Resampling.BOX))
            shown = overlay(picture, attribution)
            results.append(MethodResult(name, shown, timed.seconds, result["deletion"], result["insertion"]))
        return Explanation(predictions, target, results)

    def warm_up(self) -> None:
        """One pass of every method on a grey image, so a visitor's first request is timed like the next ones."""
        self.explain(Image.new("RGB", (64, 64), (128, 128, 128)), 0)
