"""The one ``resolve_target``: the predicted classes when the target is None, else the given classes checked, with
messages that name what was expected; and every verb that takes a target (the explainer, the comparison methods,
the metrics) resolving None to the same predicted classes through it."""

import re

import pytest
import torch
from conftest import NUM_LABELS

from aha import AHAExplainer, metrics
from aha.baselines import get_attributor
from aha.validation import resolve_target


PREDICTED = torch.tensor([4, 0, 2, 1])


def _resolve(target, name="target", num_labels=NUM_LABELS):
    return resolve_target(target, 4, num_labels, lambda: PREDICTED, name)


def test_none_is_the_predicted_classes_and_predicted_runs_only_then():
    calls = []

    def predicted():
        calls.append(1)
        return PREDICTED

    assert resolve_target(None, 4, NUM_LABELS, predicted) is PREDICTED and calls == [1]
    assert torch.equal(resolve_target(3, 4, NUM_LABELS, predicted), torch.full((4,), 3)) and calls == [1]


@pytest.mark.parametrize(
    "target, expected",
    [
        (0, [0, 0, 0, 0]),
        (torch.tensor(NUM_LABELS - 1), [4, 4, 4, 4]),  # a 0-d tensor is one class for every image
        ([3, 1, 0, 2], [3, 1, 0, 2]),
        ((3, 1, 0, 2), [3, 1, 0, 2]),
        (torch.tensor([3, 1, 0, 2], dtype=torch.int32), [3, 1, 0, 2]),
        (torch.tensor([3, 1, 0, 2], dtype=torch.uint8), [3, 1, 0, 2]),
    ],
    ids=["int", "0-d tensor", "list", "tuple", "int32", "uint8"],
)
def test_given_classes_become_a_long_tensor_of_one_class_per_image(target, expected):
    classes = _resolve(target)
    assert classes.dtype == torch.long and classes.tolist() == expected


@pytest.mark.parametrize(
    "target, message",
    [
        (NUM_LABELS, r"target classes must be in [0, 5), got [5, 5, 5, 5]"),
        (-1, r"target classes must be in [0, 5), got [-1, -1, -1, -1]"),
        ([0, 1, 9, 2], r"target classes must be in [0, 5), got [0, 1, 9, 2]"),
        (1.0, "target must hold integer class indices, got dtype torch.float32"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), "target must hold integer class indices, got dtype torch.float32"),
        (True, "target must hold integer class indices, got dtype torch.bool"),
        (torch.tensor([1 + 0j] * 4), "target must hold integer class indices, got dtype torch.complex64"),
        ([0, 1, 2], "target must be an int or a (4,) tensor of classes (shape (4,)), got shape (3,)"),
        (
            torch.zeros(4, 1, dtype=torch.long),
            "target must be an int or a (4,) tensor of classes (shape (4,)), got shape (4, 1)",
        ),
    ],
    ids=["num_labels", "negative", "one out of range", "float", "float tensor", "bool", "complex", "too few", "2-D"],
)
def test_bad_classes_are_refused_naming_what_was_expected(target, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _resolve(target)


def test_the_message_names_the_classes_and_num_labels_none_skips_the_range_check():
    with pytest.raises(ValueError, match=re.escape("labels classes must be in [0, 5), got [7, 7, 7, 7]")):
        _resolve(7, name="labels")
    assert _resolve(7, num_labels=None).tolist() == [7, 7, 7, 7]


def test_the_classes_go_to_the_device_asked_for():
    # (the meta device holds no values: the range check, which reads them, is skipped with num_labels=None)
    assert resolve_target([0, 1, 2, 3], 4, None, lambda: PREDICTED, device="meta").device.type == "meta"


def test_every_verb_explains_the_predicted_class_when_given_none(vit, images):
    """The explainer, a comparison method reading the classifier's logits, and the metrics (which run their own
    chunked forward) all resolve None to the classifier's top-1 class."""
    with torch.no_grad():
        predicted = vit(pixel_values=images).logits.argmax(-1)
    explainer = AHAExplainer.from_classifier(vit)
    assert torch.equal(explainer(images).target, predicted)
    gradcam = get_attributor("gradcam", vit)
    assert torch.equal(gradcam(images), gradcam(images, predicted))
    maps = torch.randn(images.shape[0], *images.shape[-2:], generator=torch.Generator().manual_seed(0))
    assert torch.equal(metrics.deletion_insertion(vit, images, maps, chunk_size=3).target, predicted)
    with pytest.raises(ValueError, match=re.escape(f"target classes must be in [0, {NUM_LABELS})")):
        gradcam(images, NUM_LABELS)
    with pytest.raises(ValueError, match=re.escape(f"target classes must be in [0, {NUM_LABELS})")):
        explainer(images, target=NUM_LABELS)
