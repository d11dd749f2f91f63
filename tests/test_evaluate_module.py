"""The `evaluate` module in aha/metrics_hub: loads offline, matches the engine, accumulates with add_batch."""

import inspect
import os
import sys

import evaluate
import pytest
import torch
from huggingface_hub import RepoCard

from aha import metrics


MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.fixture
def module():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    return evaluate.load(metrics.EVALUATE_MODULE_PATH, keep_in_memory=True)


def test_loads_offline_and_matches_the_engine(module, vit, images, maps):
    inputs = dict(predictions=maps.numpy(), references=[0, 1, 2, 3], pixel_values=images.numpy())
    results = module.compute(**inputs, model=vit, reference="blur")
    engine = metrics.deletion_insertion(vit, images, maps, reference="blur")
    assert (
        sys.modules[type(module).__module__].PerturbationProtocol is metrics.PerturbationProtocol
    )  # the engine, not a copy
    for name in ("deletion", "insertion"):
        expected = getattr(engine, name)
        assert results[f"{name}_auc"] == pytest.approx(expected.mean_auc, abs=1e-6)
        assert results[f"{name}_aucs"] == pytest.approx(expected.auc.tolist(), abs=1e-6)
        assert results[f"{name}_curve"] == pytest.approx(expected.mean_curve.tolist(), abs=1e-6)
        assert results[f"{name}_fractions"] == pytest.approx(metrics.default_fractions().tolist())


def test_add_batch_over_two_batches_equals_one_call(vit, images, maps):
    labels = [2, 0, 1, 0]
    options = dict(
        model=vit,
        metrics=["deletion", "insertion", "positive", "negative"],
        target="label",
        insertion_convention="rise",
        image_mean=MEAN,
        image_std=STD,
    )
    whole = evaluate.load(metrics.EVALUATE_MODULE_PATH, keep_in_memory=True)
    once = whole.compute(predictions=maps, references=labels, pixel_values=images, **options)
    batched = evaluate.load(metrics.EVALUATE_MODULE_PATH, keep_in_memory=True)
    for part in (slice(0, 3), slice(3, 4)):
        batched.add_batch(predictions=maps[part], references=labels[part], pixel_values=images[part])
    assert batched.compute(**options) == once
    labels = torch.tensor(labels)
    engine = metrics.positive_perturbation(vit, images, maps, labels, image_mean=MEAN, image_std=STD)
    assert once["positive_aucs"] == pytest.approx(engine.auc.tolist(), abs=1e-6)


_BAD_INPUTS = {
    "uint8 images": ("pixel_values", lambda x: ((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)),  # were cast
    "0..255 images": ("pixel_values", lambda x: (x.clamp(-1, 1) + 1) * 127.5),
    "float labels": ("references", lambda r: torch.tensor(r, dtype=torch.float32) + 0.7),  # were truncated
    "NaN map": ("predictions", lambda m: m.index_put((torch.tensor([1]),), torch.tensor(float("nan")))),
    "3 maps for 4 images": ("predictions", lambda m: m[:3]),  # a batch property: add() takes one example
}


@pytest.mark.parametrize(
    "kind, how",
    [
        (kind, how)
        for kind in _BAD_INPUTS
        for how in ("compute", "add_batch", "add")
        if (kind, how) != ("3 maps for 4 images", "add")
    ],
)
def test_module_applies_exactly_the_direct_checks(vit, images, maps, kind, how):
    name, bad = _BAD_INPUTS[kind]
    inputs = dict(predictions=maps, references=[0, 1, 2, 3], pixel_values=images)
    inputs[name] = bad(inputs[name])
    with pytest.raises(ValueError) as direct:
        metrics.deletion(vit, inputs["pixel_values"], inputs["predictions"])
        metrics.positive_perturbation(
            vit, inputs["pixel_values"], inputs["predictions"], inputs["references"], image_mean=MEAN, image_std=STD
        )
    module = evaluate.load(metrics.EVALUATE_MODULE_PATH, keep_in_memory=True)
    with pytest.raises(ValueError) as through_module:
        if how == "compute":
            module.compute(**inputs, model=vit)
        elif how == "add_batch":
            module.add_batch(**inputs)
        else:
            for i in range(len(inputs["predictions"])):
                module.add(
                    prediction=inputs["predictions"][i],
                    reference=inputs["references"][i],
                    pixel_values=inputs["pixel_values"][i],
                )
    if name != "references":  # the direct API names the classes "target"/"labels", the module "references"
        assert str(through_module.value) == str(direct.value)
    else:
        assert "references must hold integer class indices" in str(through_module.value)


def test_module_rejects_bad_options(module, vit, images, maps):
    inputs = dict(predictions=maps, references=[0, 1, 2, 3], pixel_values=images)
    with pytest.raises(ValueError, match=r"compute\(model=...\)"):
        module.compute(**inputs)
    module = evaluate.load(metrics.EVALUATE_MODULE_PATH, keep_in_memory=True)
    with pytest.raises(ValueError, match="unknown metrics"):
        module.compute(**inputs, model=vit, metrics=["faithfulness"])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(metrics=[]), r"metrics must be a non-empty list"),
        (dict(metrics="deletion"), r"metrics must be a non-empty list"),
        (dict(fractions=[0.0, 0.5, 0.5, 1.0]), r"fractions must be distinct"),
        # the references are labels of this classifier even when the target is the predicted class
        (dict(references=[0, 1, 2, 5]), r"references classes must be in \[0, 5\)"),
        (dict(target="predicted", references=[0, -1, 2, 3]), r"references classes must be in \[0, 5\)"),
        (dict(predictions="complex"), "attributions must be real numbers"),
    ],
)
def test_meaningless_questions_are_refused_naming_the_option(module, vit, images, maps, options, message):
    inputs = dict(predictions=maps, references=[0, 1, 2, 3], pixel_values=images)
    for name in ("references", "predictions"):
        if name in options:
            value = options.pop(name)
            inputs[name] = maps.to(torch.complex64) if value == "complex" else value
    with pytest.raises(ValueError, match=message):
        module.compute(**inputs, model=vit, **options)


def test_constant_maps_warn_through_the_module(module, vit, images):
    constant = torch.zeros(4, 32, 32)
    with pytest.warns(UserWarning, match="are constant"):
        results = module.compute(predictions=constant, references=[0, 1, 2, 3], pixel_values=images, model=vit)
    assert results["deletion_aucs"] == results["insertion_aucs"]


def test_the_module_folder_readme_is_its_card_and_names_every_compute_keyword(module):
    """The folder's README.md is the module's one card (evaluate and a Space both read it): Hub metadata that
    huggingface_hub parses, and every keyword of ``compute`` documented (a new option must reach the card)."""
    card = RepoCard.load(os.path.join(metrics.EVALUATE_MODULE_PATH, "README.md"))
    assert card.data.title == "Deletion / Insertion" and {"evaluate", "metric"} <= set(card.data.tags)
    named = [name for name in inspect.signature(type(module)._compute).parameters if name not in ("self", "options")]
    keywords = named + list(sys.modules[type(module).__module__].PROTOCOL_OPTIONS)  # compute(**options)
    assert len(keywords) > 10
    missing = [name for name in keywords if f"**{name}**" not in card.text]
    assert not missing, f"compute keywords not documented in the module's README.md: {missing}"
