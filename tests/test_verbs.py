"""One verb per act: ``attribute`` (the verb all methods share) calls ``explain`` (maps, with refinement), which
calls ``forward`` (one pass with every output); and no caller runs the classifier twice on the same images."""

from unittest import mock

import pytest
import torch
from accelerate import Accelerator
from conftest import make_classifier
from test_pipeline import random_image
from training_helpers import processor
from transformers import pipeline

from aha import AHAExplainer
from aha.baselines import get_attributor
from aha.training.held_out_evaluation import evaluate


@pytest.fixture(scope="module")
def explainer():
    torch.manual_seed(0)
    return AHAExplainer.from_classifier(make_classifier("vit", head_scale=30), image_processor=processor()).eval()


class CleanPasses:
    """Counts the classifier's passes over ``images`` themselves (perturbed copies, as the objective and the
    metrics make, are not counted)."""

    def __init__(self, classifier, images=None):
        self.images, self.inputs = images, []
        self.handle = classifier.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        self.inputs.append((kwargs.get("pixel_values") if "pixel_values" in kwargs else args[0]).detach().clone())

    def count(self, images=None) -> int:
        images = self.images if images is None else images
        return sum(x.shape == images.shape and torch.equal(x, images) for x in self.inputs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("refine_steps", [0, 2])
def test_attribute_calls_explain_calls_forward_and_the_classifier_sees_the_images_once(explainer, refine_steps):
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with (
        mock.patch.object(AHAExplainer, "explain", autospec=True, side_effect=AHAExplainer.explain) as explain,
        mock.patch.object(AHAExplainer, "forward", autospec=True, side_effect=AHAExplainer.forward) as forward,
        CleanPasses(explainer.classifier, images) as passes,
    ):
        maps = explainer.attribute(images, 2, refine_steps=refine_steps)
    assert explain.call_count == 1 and forward.call_count == 1 and passes.count() == 1
    assert maps.dtype == torch.float32 and maps.shape == (3, 32, 32)
    # explain's output with the forward pass's predictions: the same maps, the classifier still run once
    with CleanPasses(explainer.classifier, images) as passes:
        output = explainer.explain(images, refine_steps=refine_steps, return_dict=True)
    assert passes.count() == 1
    torch.testing.assert_close(output.logits, explainer.classifier(pixel_values=images).logits, rtol=0, atol=0)
    torch.testing.assert_close(output.target, output.logits.argmax(-1))
    torch.testing.assert_close(
        output.attributions, explainer.explain(images, refine_steps=refine_steps), rtol=0, atol=0
    )
    with pytest.raises(TypeError, match="return_dict must be True or False"):
        explainer.explain(images, return_dict="yes")


@pytest.mark.parametrize("refine_steps", [0, 1])
def test_the_pipeline_runs_the_classifier_once_per_image(explainer, refine_steps):
    pipe = pipeline("image-attribution", model=explainer, device="cpu")
    image = random_image(40, 57, seed=3)
    processed = processor()(images=image, return_tensors="pt").pixel_values
    with CleanPasses(explainer.classifier, processed) as passes:
        result = pipe(image, refine_steps=refine_steps, curves=True)
    assert passes.count() == 1
    assert result["target"] == int(explainer.classifier(pixel_values=processed).logits.argmax())


def test_the_pipeline_explains_with_another_method_on_the_same_processed_image(explainer):
    pipe = pipeline("image-attribution", model=explainer, device="cpu")
    image = random_image(40, 57, seed=4)
    seen = []

    def attributor(pixel_values, target):
        seen.append((pixel_values, target))
        return get_attributor("centre", explainer.classifier)(pixel_values, target)

    result = pipe(image, target=1, attributor=attributor, curves=True)
    ((pixel_values, target),) = seen
    torch.testing.assert_close(pixel_values, processor()(images=image, return_tensors="pt").pixel_values)
    assert target.tolist() == [1] and result["target"] == 1 and result["attribution"].shape == (40, 57)
    # the same map through the pipeline's default path is AHA's; the predictions do not depend on the method
    assert result["predictions"] == pipe(image)["predictions"]
    with pytest.raises(ValueError, match="attributor must be an aha.baselines.Attributor or a callable"):
        pipe(image, attributor="rise")
    with pytest.raises(ValueError, match="the attributor must return a \\(batch, height, width\\)"):
        pipe(image, attributor=lambda pixel_values, target: pixel_values)
    with pytest.raises(ValueError, match="an attributor takes its own options"):
        pipe(image, attributor=attributor, refine_steps=1)


def test_evaluation_runs_the_classifier_once_per_batch_and_scores_the_maps_of_that_pass(explainer):
    images = processor()([random_image(40, 40, seed=s) for s in range(4)], return_tensors="pt").pixel_values
    batches = [
        {"pixel_values": images[:2], "labels": torch.tensor([0, 1])},
        {"pixel_values": images[2:], "labels": torch.tensor([2, 3])},
    ]
    with (
        CleanPasses(explainer.classifier) as passes,
        mock.patch.object(AHAExplainer, "explain", autospec=True, side_effect=AHAExplainer.explain) as explain,
    ):
        result = evaluate(explainer, batches, Accelerator(cpu=True), seed=0)
    assert [passes.count(batch["pixel_values"]) for batch in batches] == [1, 1] and explain.call_count == 0
    assert result["eval/images"] == 4
