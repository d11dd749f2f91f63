"""What the web demo computes for one image: the classifier's top classes, then AHA's map and one or two
comparison methods' maps for a chosen class, each timed, drawn over the image and scored.

    comparison = Comparison("aha-demo/explainer")                 # a saved folder or a Hub repo id
    predictions, target = comparison.top_classes(image)          # [{"label", "score"}, ...], predicted index
    for result in comparison.explain(image, target, refine_steps=2):
        result.name, result.seconds, result.deletion.auc, result.insertion.auc, result.overlay

Every method sees the same ``pixel_values`` (the ``image-attribution`` pipeline's own preprocessing) and is
called through the one verb of :mod:`aha.baselines`, AHA included, so the times compare like with like: the
time of the map alone, without the curves. The curves are the pipeline's (``curves=True``): deletion and
least-relevant-first insertion with :func:`aha.metrics.deletion_insertion`'s defaults (mean reference, 21
fractions, hard ranking over all pixels), on the processed image; the maps are carried back to the image's own
size for the overlays.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import pipeline

from ..baselines import get_attributor
from ..image_geometry import processed_region, to_original_size
from ..images import MAX_PIXELS
from ..metrics import CurveResult, deletion_insertion
from ..pipeline import TASK
from ..visualization import overlay


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
        max_image_pixels: most pixels of an image explained (default: :data:`aha.images.MAX_PIXELS`).
    """

    def __init__(
        self,
        explainer: str,
        comparisons: dict[str, tuple[str, dict]] | None = None,
        device=None,
        max_image_pixels: int = MAX_PIXELS,
    ):
        self.pipe = pipeline(TASK, model=explainer, device=device, max_image_pixels=max_image_pixels)
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

    def top_classes(self, image: Image.Image, top_k: int = 5) -> tuple[list[dict], int]:
        """The classifier's ``top_k`` classes of ``image`` (``{"label", "score"}``, softmax probabilities) and the
        predicted class index."""
        with self._lock:
            result = self.pipe(image, top_k=top_k)
        return result["predictions"], result["target"]

    def explain(
        self, image: Image.Image, target: int, refine_steps: int = 0, max_side: int | None = None
    ) -> list[MethodResult]:
        """AHA (with ``refine_steps`` test-time refinement steps), then each comparison method, on ``image`` for
        class index ``target``.

        Args:
            max_side: longest side of the overlays (default: the image's own size). A larger image is shrunk for
                them, and each map is carried back to that size instead of the original's: colouring a map ranks
                all its pixels, which takes seconds at 12 megapixels. The maps and curves are unchanged.
        """
        inputs = self.pipe.preprocess(image, max_image_pixels=self.max_image_pixels)
        pixel_values = inputs["pixel_values"].to(self.pipe.device)
        targets = torch.tensor([target], device=pixel_values.device)
        picture, region = inputs["original"], inputs["region"]
        if max_side is not None and max(picture.size) > max_side:
            picture = picture.copy()
            picture.thumbnail((max_side, max_side))
            region = processed_region(self.pipe.image_processor, picture.height, picture.width)
        methods = {
            "AHA": get_attributor("aha", self.classifier, explainer=self.explainer, refine_steps=refine_steps),
            **self.comparisons,
        }
        results = []
        for name, attributor in methods.items():
            with self._lock:
                maps, seconds = timed(attributor, pixel_values, targets)
                curves = deletion_insertion(self.classifier, pixel_values, maps, targets)
            shown = overlay(picture, to_original_size(maps[0].cpu(), region).numpy())
            results.append(MethodResult(name, shown, seconds, curves.deletion, curves.insertion))
        return results

    def warm_up(self) -> None:
        """One pass of every method on a grey image, so a visitor's first request is timed like the next ones."""
        self.explain(Image.new("RGB", (64, 64), (128, 128, 128)), 0)


def timed(attributor, pixel_values: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``attributor(pixel_values, target)`` and its wall-clock seconds (after the device finished the work)."""
    synchronise = torch.cuda.synchronize if pixel_values.is_cuda else (lambda: None)
    synchronise()
    start = time.perf_counter()
    maps = attributor(pixel_values, target)
    synchronise()
    return maps, time.perf_counter() - start
