"""The ``image-attribution`` task of `transformers` pipelines, registered on ``import aha``.

    import aha
    from transformers import pipeline

    pipe = pipeline("image-attribution", model="org/aha-vit-b16")   # a Hub id, a saved folder or an AHAExplainer
    result = pipe("cat.jpg", target="tabby cat")                    # or a list of images, batch_size=8
    result["attribution"]                                           # (H, W) at the image's own size

Images go through the classifier's own image processor (saved next to the explainer); each map is carried
back through the processor's resize and crop to its image's original size (:mod:`aha.imaging.image_geometry`).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from . import TASK
from .imaging.image_geometry import processed_region, to_original_size
from .imaging.images import MAX_PIXELS, MIN_SIDE, check_limit, read_image
from .imaging.visualization import explained_picture
from .metrics import CurveResult, default_fractions, deletion_insertion
from .modeling.modeling_aha import AHAExplainer
from .validation import check_number, resolve_target


class ImageAttributionPipeline(Pipeline):
    """Explains images with an [`AHAExplainer`]: the classifier's top classes and, for one class per image,
    a per-pixel importance map at the image's original size.

    Inputs: a path (``~`` expanded), URL, PIL image or numpy array (H, W), (H, W, 1, 3 or 4), or a list of them,
    read by [`aha.imaging.images.read_image`]: 8-bit images as Pillow converts them to RGB (alpha dropped), 16-bit ones
    by their range (divided by 65535), float ones in [0, 1]; animated images, NaN, 32-bit integer pixels and
    images outside the size limits are refused with an [`aha.imaging.images.ImageInputError`] naming the image.

    Call arguments (also accepted by `pipeline(...)` as defaults):
        target (`str` or `int`, *optional*): the class to explain, a label name of the classifier or an index.
            Default: each image's predicted class.
        top_k (`int`, defaults to 5): how many of the classifier's top classes to return.
        refine_steps (`int`, defaults to 0): test-time refinement steps ([`AHAExplainer.explain`]).
        overlay (`bool`, defaults to `False`): also return a picture that explains itself: the map blended over
            the image (enlarged by a whole factor when its shorter side is under 256 px), with a colour bar and
            the class explained and its probability above it (a PIL image; [`aha.imaging.visualization.explained_picture`]).
            `aha.imaging.visualization.overlay(image, result["attribution"])` gives the bare blend at the image's size.
        curves (`bool`, defaults to `False`): also measure the map's deletion and insertion curves on the
            processed image ([`aha.metrics.deletion_insertion`]: mean reference, 21 fractions).
        attributor (`callable`, *optional*): another attribution method to explain with instead of the explainer,
            e.g. `aha.baselines.get_attributor("rise", pipe.model.classifier, n_masks=500)` or any callable
            `(pixel_values, target) -> (batch, height, width)` maps: it gets the same processed images and the
            targets (the classifier's predictions unless `target` is given), and its maps are carried back, drawn
            and scored as the explainer's would be, so methods compare like with like. The predictions then come
            from one pass of the classifier alone (the method runs the classifier as it needs).
        timeout (`float`, *optional*): seconds to wait for images fetched from URLs.
        max_image_pixels (`int`, defaults to [`aha.imaging.images.MAX_PIXELS`], 4096 x 4096): larger images are refused
            (a file's size is read from its header, before its pixels are decoded).
        min_image_side (`int`, defaults to [`aha.imaging.images.MIN_SIDE`], 16): images with a shorter side are refused.

    Returns per image a dict: ``predictions`` (top-k ``{"label", "score"}``, softmax probabilities),
    ``target`` (index explained), ``target_label``, ``target_score``, ``attribution`` ((H, W) float32 numpy
    array at the input's size, higher = more important; pixels the processor cropped away get the map's
    minimum), and ``overlay`` (PIL image), ``deletion`` / ``insertion`` ([`aha.metrics.CurveResult`] of the
    image) when asked.
    """

    _load_processor = False
    _load_image_processor = None  # optional here: an in-memory explainer brings its own
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, model, image_processor=None, **kwargs):
        if not isinstance(model, AHAExplainer):
            raise ValueError(f"the {TASK} pipeline runs an AHAExplainer, got {type(model).__name__}")
        image_processor = model.image_processor if image_processor is None else image_processor
        if image_processor is None:
            raise ValueError(
                f"the {TASK} pipeline needs the classifier's image processor: save the explainer with it "
                "(AHAExplainer.from_classifier(classifier, image_processor=processor), then save_pretrained) "
                "or pass pipeline(..., image_processor=processor)"
            )
        super().__init__(model=model, image_processor=image_processor, **kwargs)

    def _class_index(self, target) -> int:
        """A label name or an index of the classifier -> the index, checked."""
        config = self.model.config.classifier_config
        if isinstance(target, str):
            if target not in config.label2id:
                shown = ", ".join(repr(label) for label in list(config.label2id)[:10])
                raise ValueError(f"target {target!r} is not a label of the classifier (labels: {shown}, ...)")
            return int(config.label2id[target])
        if isinstance(target, (bool, float)) or not isinstance(target, (int, np.integer)):
            raise ValueError(f"target must be a label name or an integer class index, got {target!r}")
        if not 0 <= target < config.num_labels:
            raise ValueError(f"target must be in [0, {config.num_labels}), got {target}")
        return int(target)

    def _sanitize_parameters(
        self,
        target=None,
        top_k=None,
        refine_steps=None,
        overlay=None,
        curves=None,
        attributor=None,
        timeout=None,
        max_image_pixels=None,
        min_image_side=None,
    ):
        preprocess, forward, postprocess = {}, {}, {}
        if timeout is not None:
            preprocess["timeout"] = timeout
        for name, limit in (("max_image_pixels", max_image_pixels), ("min_image_side", min_image_side)):
            if limit is not None:
                check_limit(name, limit)
                preprocess[name] = limit
        if target is not None:
            forward["target"] = self._class_index(target)
        if refine_steps is not None:
            check_number("refine_steps", refine_steps, integer=True, minimum=0)
            forward["refine_steps"] = refine_steps
        if curves is not None:
            forward["curves"] = bool(curves)
        if attributor is not None:
            if not callable(attributor):
                raise ValueError(
                    "attributor must be an aha.baselines.Attributor or a callable (pixel_values, target) -> "
                    f"(batch, height, width) maps, got {type(attributor).__name__}"
                )
            forward["attributor"] = attributor
        if top_k is not None:
            check_number("top_k", top_k, integer=True, minimum=1)
            postprocess["top_k"] = top_k
        if overlay is not None:
            postprocess["with_overlay"] = bool(overlay)
        return preprocess, forward, postprocess

    def preprocess(self, image, timeout=None, max_image_pixels=MAX_PIXELS, min_image_side=MIN_SIDE):
        image = read_image(image, max_image_pixels, min_image_side, timeout=timeout)  # upright, RGB, checked
        pixel_values = self.image_processor(images=image, return_tensors="pt").pixel_values.to(self.dtype)
        region = processed_region(self.image_processor, image.height, image.width)
        if region.size != tuple(pixel_values.shape[-2:]):
            raise ValueError(
                f"{type(self.image_processor).__name__} made a {tuple(pixel_values.shape[-2:])} image, not the "
                f"{region.size} its settings describe: cannot map the attribution back to the original image"
            )
        return {"pixel_values": pixel_values, "region": region, "original": image}

    def _forward(self, model_inputs, target=None, refine_steps=0, curves=False, attributor=None):
        pixel_values = model_inputs["pixel_values"]
        if attributor is None:  # one classifier pass gives the predictions and the maps
            output = self.model.explain(pixel_values, target, refine_steps=refine_steps, return_dict=True)
            logits, target, maps = output.logits, output.target, output.attributions
        elif refine_steps:
            raise ValueError("refine_steps refines the explainer's maps; an attributor takes its own options")
        else:  # the predictions from one classifier pass; the map from the method, which runs the classifier itself
            logits = self.model.classifier(pixel_values=pixel_values).logits
            target = resolve_target(
                target, len(logits), logits.shape[-1], lambda: logits.argmax(-1), device=logits.device
            )
            maps = attributor(pixel_values, target)
            if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != (len(logits), *pixel_values.shape[-2:]):
                raise ValueError(
                    f"the attributor must return a (batch, height, width) = {(len(logits), *pixel_values.shape[-2:])} "
                    f"tensor of maps, got {tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}"
                )
        outputs = {
            "logits": logits,
            "attributions": maps.float(),
            "target": target,
            "region": model_inputs["region"],
            "original": model_inputs["original"],
        }
        if curves:
            result = deletion_insertion(self.model.classifier, pixel_values, maps.float(), target)
            for name, curve in (("deletion", result.deletion), ("insertion", result.insertion)):
                outputs[f"{name}_curves"], outputs[f"{name}_auc"] = curve.curves, curve.auc
        return outputs

    def postprocess(self, model_outputs, top_k=5, with_overlay=False):
        labels = self.model.config.classifier_config.id2label
        probabilities = model_outputs["logits"][0].float().softmax(-1)
        scores, classes = probabilities.topk(min(top_k, len(probabilities)))
        target = int(model_outputs["target"][0])
        attribution = to_original_size(model_outputs["attributions"][0], model_outputs["region"]).numpy()
        result = {
            "predictions": [{"label": labels[int(c)], "score": float(s)} for s, c in zip(scores, classes)],
            "target": target,
            "target_label": labels[target],
            "target_score": float(probabilities[target]),
            "attribution": attribution,
        }
        if with_overlay:
            caption = f"explained: {labels[target]!r} (class {target}), p = {result['target_score']:.3f}"
            result["overlay"] = explained_picture(model_outputs["original"], attribution, caption)
        for name in ("deletion", "insertion"):
            if f"{name}_auc" in model_outputs:
                result[name] = CurveResult(
                    default_fractions(), model_outputs[f"{name}_curves"], model_outputs[f"{name}_auc"]
                )
        return result


def register_pipeline() -> None:
    """Make ``pipeline("image-attribution", ...)`` build an :class:`ImageAttributionPipeline` (run on ``import aha``)."""
    if TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(
            TASK, pipeline_class=ImageAttributionPipeline, pt_model=AutoModel, type="image"
        )


__all__ = ["ImageAttributionPipeline", "TASK", "register_pipeline"]
