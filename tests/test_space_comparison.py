"""What the web demo computes (spaces/aha-explain/comparison.py and demo_explainer.py), without a browser: the
methods side by side on one image, and the default explainer taken from ``aha demo``'s folder (trained by it first
when absent)."""

import ast

import datasets
import numpy as np
import pytest
import torch
from comparison import Comparison, default_comparisons
from conftest import SPACE
from demo_explainer import demo_examples, demo_explainer
from PIL import Image
from test_pipeline import LABELS, crop_processor, labelled_classifier, random_image, saved  # noqa: F401 (saved: fixture)
from transformers import pipeline

import aha.demo
from aha import AHAExplainer
from aha.baselines import get_attributor
from aha.imaging.visualization import overlay
from aha.metrics import deletion_insertion


@pytest.fixture(scope="module")
def comparison(saved):
    return Comparison(str(saved), default_comparisons(rise_masks=30), device="cpu")


def test_the_predicted_class_and_top_classes_are_the_pipelines(comparison, saved):
    image = random_image(40, 57, seed=1)
    result = pipeline("image-attribution", model=str(saved), device="cpu")(image, top_k=3)
    explained = comparison.explain(image, top_k=3)
    assert (explained.predictions, explained.target) == (result["predictions"], result["target"])
    assert comparison.labels == LABELS


def test_aha_then_each_method_for_the_chosen_class_with_the_pipelines_protocol(comparison, saved):
    image, target = random_image(57, 23, seed=2), 3
    explained = comparison.explain(image, target, refine_steps=1)
    results = explained.methods
    assert explained.target == target and [r.name for r in results] == ["AHA", "Chefer", "RISE (30 masks)"]
    # AHA's curves and map are the pipeline's for the same image, class and refinement (the page shows the bare
    # overlay; the pipeline's adds a colour bar and a caption)
    pipe = pipeline("image-attribution", model=str(saved), device="cpu")
    expected = pipe(image, target=target, refine_steps=1, overlay=True, curves=True)
    torch.testing.assert_close(results[0].deletion.curves, expected["deletion"].curves)
    torch.testing.assert_close(results[0].insertion.auc, expected["insertion"].auc)
    np.testing.assert_array_equal(np.asarray(results[0].overlay), np.asarray(overlay(image, expected["attribution"])))
    # the comparison methods: their own maps of the same processed image, scored for the same class
    pixel_values = pipe.image_processor(images=image, return_tensors="pt").pixel_values
    for result, (name, options) in zip(results[1:], [("chefer", {}), ("rise", {"n_masks": 30})]):
        maps = get_attributor(name, comparison.classifier, **options)(pixel_values, [target])
        curves = deletion_insertion(comparison.classifier, pixel_values, maps, torch.tensor([target]))
        torch.testing.assert_close(result.deletion.auc, curves.deletion.auc)
        torch.testing.assert_close(result.insertion.curves, curves.insertion.curves)
    for result in results:
        assert result.overlay.size == image.size and result.seconds > 0
        assert result.deletion.curves.shape == (1, 21)


def test_overlays_of_a_large_image_are_shrunk_to_max_side_and_the_numbers_kept(comparison):
    image = random_image(120, 300, seed=5)
    full, shrunk = comparison.explain(image, 1).methods, comparison.explain(image, 1, max_side=100).methods
    for big, small in zip(full, shrunk):
        assert big.overlay.size == (300, 120) and small.overlay.size == (100, 40)
        torch.testing.assert_close(small.deletion.curves, big.deletion.curves)
        # the same picture: the small overlay is the big one shrunk, up to the resampling of the map and image
        difference = np.abs(
            np.asarray(big.overlay.resize((100, 40)), dtype=int) - np.asarray(small.overlay, dtype=int)
        )
        assert difference.mean() < 5  # (about 1.4; shifting one by 20 columns gives about 50)
    assert comparison.explain(image, 1, max_side=300).methods[0].overlay.size == (300, 120)  # not larger than max_side


PUBLIC_MODULES = {"aha", "aha.baselines", "aha.demo", "aha.imaging.images", "aha.metrics", "aha.imaging.visualization"}


def test_the_space_uses_the_librarys_public_api_only():
    """The app and its modules import only public names of public modules, and never call a pipeline's stages
    (preprocess, _forward, postprocess) or any other underscored attribute of the library's objects: the Space is an
    app on the library."""
    seen = set()
    for path in sorted(SPACE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aha":
                seen.add(node.module)
                assert node.module in PUBLIC_MODULES, (path.name, node.module)
                assert not any(alias.name.startswith("_") for alias in node.names), (path.name, node.module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("aha.") and a.name not in PUBLIC_MODULES for a in node.names)
            elif isinstance(node, ast.Attribute):
                own = isinstance(node.value, ast.Name) and node.value.id == "self"  # the app's own classes
                private = node.attr.startswith("_") and not node.attr.startswith("__") and not own
                assert not private and node.attr not in {"preprocess", "postprocess"}, (path.name, node.attr)
    assert {"aha.baselines", "aha.metrics", "aha.demo"} <= seen  # the check reads the imports it is about
    with pytest.raises(ModuleNotFoundError):
        __import__("aha.space")


def test_no_comparison_methods_leaves_aha_alone(saved):
    only_aha = Comparison(str(saved), comparisons={}, device="cpu")
    assert [r.name for r in only_aha.explain(random_image(32, 32), 0).methods] == ["AHA"]


def test_the_demo_explainer_is_trained_when_absent_and_reused_after(tmp_path, monkeypatch, capsys):
    runs = []

    def fake_build_world(
        world, output, settings
    ):  # what aha demo leaves behind: a saved explainer in OUTPUT/WORLD/explainer
        runs.append((world.name, output, settings))
        explainer = AHAExplainer.from_classifier(labelled_classifier(), image_processor=crop_processor())
        explainer.save_pretrained(f"{output}/explainer")

    monkeypatch.setattr(aha.demo, "build_world", fake_build_world)
    folder = tmp_path / "demo"
    path = demo_explainer(folder, preset="quick")
    assert path == folder / "shapes" / "explainer"
    assert runs == [("shapes", folder / "shapes", aha.demo.preset_settings("quick"))]
    message = capsys.readouterr().out
    assert (
        f"no trained explainer in {folder / 'shapes' / 'explainer'}: training one now as `aha demo --output {folder} "
        "--preset quick` does, without its report"
    ) in message
    Comparison(str(path), comparisons={}, device="cpu")  # the page can load what the demo saved
    assert demo_explainer(folder, preset="quick") == path and len(runs) == 1  # cached: not trained again
    assert capsys.readouterr().out == ""


def test_demo_examples_are_aha_shapes_test_images_with_their_class(tmp_path):
    labels = datasets.ClassLabel(names=["circle", "ring"])
    images = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    test = datasets.Dataset.from_dict(
        {"image": images, "label": [1, 0, 1]}, features=datasets.Features({"image": datasets.Image(), "label": labels})
    )
    datasets.DatasetDict({"test": test}).save_to_disk(str(tmp_path / "shapes" / "data"))
    examples = demo_examples(tmp_path, count=2)
    assert [caption for _, caption in examples] == ["ring", "circle"]
    assert np.asarray(examples[1][0])[0, 0].tolist() == [0, 128, 0]
    assert demo_examples(tmp_path / "elsewhere") == []
