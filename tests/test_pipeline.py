"""The image-attribution pipeline, run as users run it: from a saved explainer folder."""

import numpy as np
import pytest
import torch
import transformers as T
from conftest import NUM_LABELS, make_classifier
from PIL import Image
from transformers import pipeline

from aha import AHAExplainer, ImageAttributionPipeline
from aha.imaging.image_geometry import processed_region, to_original_size
from aha.imaging.visualization import explained_picture
from aha.metrics import deletion_insertion


LABELS = ["cat", "dog", "fox", "owl", "eel"]
SIZES = [(40, 40), (57, 23), (20, 90)]  # (height, width)


def labelled_classifier():
    classifier = make_classifier("vit", head_scale=20)
    classifier.config.id2label = dict(enumerate(LABELS))
    classifier.config.label2id = {label: i for i, label in enumerate(LABELS)}
    return classifier


def crop_processor():
    """Resize to 40 x 40, then centre-crop the classifier's 32 x 32: the map must be carried back through both."""
    return T.DeiTImageProcessorPil(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32})


def random_image(height, width, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explainer")
    AHAExplainer.from_classifier(labelled_classifier(), image_processor=crop_processor()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipe(saved):
    return pipeline("image-attribution", model=str(saved), device="cpu")


def _expected(pipe, image, target=None, refine_steps=0):
    """The map the pipeline should return: the explainer on the processed image, carried back."""
    image = image.convert("RGB")
    pixel_values = pipe.image_processor(images=image, return_tensors="pt").pixel_values
    maps = pipe.model.explain(pixel_values, target, refine_steps=refine_steps)
    return to_original_size(maps[0], processed_region(pipe.image_processor, image.height, image.width)).numpy()


def test_saved_folder_loads_the_explainer_and_its_processor(pipe):
    assert isinstance(pipe, ImageAttributionPipeline) and isinstance(pipe.model, AHAExplainer)
    assert pipe.image_processor.crop_size.height == 32 and pipe.task == "image-attribution"


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_maps_at_each_inputs_original_size(pipe, mode):
    for height, width in SIZES:
        image = random_image(height, width, mode)
        result = pipe(image)
        attribution = result["attribution"]
        assert attribution.shape == (height, width) and attribution.dtype == np.float32
        np.testing.assert_allclose(attribution, _expected(pipe, image), rtol=1e-5, atol=1e-6)
        # the 40 -> 32 crop drops a tenth of each side: the classifier never saw it, it ranks last
        rows = int(height * 0.1) - 1
        assert rows < 0 or (attribution[:rows] == attribution.min()).all()
        assert len(result["predictions"]) == 5 and result["predictions"][0]["label"] in LABELS
        assert result["target"] == LABELS.index(result["predictions"][0]["label"])


def test_paths_and_numpy_arrays_are_images_too(pipe, tmp_path):
    image = random_image(33, 47)
    image.save(tmp_path / "a.png")
    from_path = pipe(str(tmp_path / "a.png"))["attribution"]
    np.testing.assert_array_equal(from_path, pipe(image)["attribution"])
    np.testing.assert_array_equal(pipe(np.asarray(image))["attribution"], from_path)
    np.testing.assert_array_equal(pipe(np.asarray(image) / 255.0)["attribution"], from_path)


def test_target_by_label_name_or_index_and_top_k(pipe):
    image = random_image(45, 30)
    by_name, by_index = pipe(image, target="owl", top_k=2), pipe(image, target=3, top_k=2)
    np.testing.assert_array_equal(by_name["attribution"], by_index["attribution"])
    assert by_name["target"] == 3 and by_name["target_label"] == "owl" and len(by_name["predictions"]) == 2
    scores = [p["score"] for p in pipe(image, top_k=NUM_LABELS)["predictions"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert by_name["target_score"] == pytest.approx(
        next(p["score"] for p in pipe(image, top_k=5)["predictions"] if p["label"] == "owl")
    )
    other = pipe(image, target="cat")["attribution"]
    assert not np.allclose(other, by_name["attribution"])


def test_a_batch_equals_its_images_one_by_one(pipe):
    images = [random_image(h, w, seed=i) for i, (h, w) in enumerate(SIZES)] + [random_image(30, 30, "L", seed=9)]
    batched = pipe(images, batch_size=3, target="fox", curves=True)
    for image, result in zip(images, batched):
        single = pipe(image, target="fox", curves=True)
        assert single["attribution"].shape == result["attribution"].shape
        np.testing.assert_allclose(
            result["attribution"], single["attribution"], rtol=1e-4, atol=1e-5
        )  # conv algorithms vary with batch size
        assert result["predictions"][0]["label"] == single["predictions"][0]["label"]
        assert result["deletion"].mean_auc == pytest.approx(single["deletion"].mean_auc, abs=1e-6)


def test_refine_steps_pass_through(pipe):
    image = random_image(36, 28)
    refined = pipe(image, refine_steps=2, target=1)["attribution"]
    np.testing.assert_allclose(refined, _expected(pipe, image, target=1, refine_steps=2), rtol=1e-5, atol=1e-5)
    assert not np.allclose(refined, pipe(image, target=1)["attribution"])


def test_overlay_and_curves_on_request(pipe):
    image = random_image(50, 26)
    plain = pipe(image)
    assert "overlay" not in plain and "deletion" not in plain
    result = pipe(image, overlay=True, curves=True)
    caption = f"explained: {result['target_label']!r} (class {result['target']}), p = {result['target_score']:.3f}"
    assert result["overlay"] == explained_picture(
        image, result["attribution"], caption
    )  # colour bar, class, probability
    pixel_values = pipe.image_processor(images=image, return_tensors="pt").pixel_values
    expected = deletion_insertion(pipe.model.classifier, pixel_values, pipe.model.explain(pixel_values))
    assert result["deletion"].auc.item() == pytest.approx(expected.deletion.auc.item(), abs=1e-6)
    assert result["insertion"].curves.shape == (1, 21)


def test_in_memory_explainer_needs_its_processor_and_bad_arguments_are_named():
    explainer = AHAExplainer.from_classifier(labelled_classifier())
    with pytest.raises(ValueError, match="needs the classifier's image processor"):
        pipeline("image-attribution", model=explainer, device="cpu")
    pipe = pipeline("image-attribution", model=explainer, image_processor=crop_processor(), device="cpu")
    assert pipe(random_image(40, 40))["attribution"].shape == (40, 40)
    with pytest.raises(ValueError, match=r"target 'lion' is not a label of the classifier \(labels: 'cat', 'dog'"):
        pipe(random_image(40, 40), target="lion")
    with pytest.raises(ValueError, match=r"target must be in \[0, 5\), got 5"):
        pipe(random_image(40, 40), target=5)
    with pytest.raises(ValueError, match="refine_steps must be an integer >= 0"):
        pipe(random_image(40, 40), refine_steps=-1)
    with pytest.raises(ValueError, match="runs an AHAExplainer, got ViTForImageClassification"):
        ImageAttributionPipeline(model=labelled_classifier(), image_processor=crop_processor(), device="cpu")


def test_dtype_follows_the_pipeline_argument(saved, pipe):
    half = pipeline("image-attribution", model=str(saved), device="cpu", dtype=torch.bfloat16)
    assert half.model.dtype == torch.bfloat16
    image = random_image(40, 30)
    result = half(image)
    assert result["attribution"].dtype == np.float32 and result["attribution"].shape == (40, 30)
    assert np.corrcoef(result["attribution"].ravel(), pipe(image)["attribution"].ravel())[0, 1] > 0.99
