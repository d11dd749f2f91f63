"""Loading is strict: the stored classifier is the fingerprinted one, no weight is left random, damaged files and
wrong folders are named."""

import re
import shutil

import pytest
import torch
import transformers as T
from conftest import make_classifier
from safetensors.torch import load_file, save_file
from training_helpers import processor

from aha import AHAExplainer
from aha.fingerprint import short_fingerprint, weights_fingerprint
from aha.loading import looks_local
from aha.training.classifier import load_classifier_and_processor


@pytest.fixture
def saved(tmp_path):
    """A self-contained explainer save."""
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), fusion_channels=16)
    explainer.save_pretrained(tmp_path / "explainer")
    return tmp_path / "explainer"


@pytest.fixture
def headless(tmp_path):
    """A ViT saved without a classification head, with its image processor."""
    config = T.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, num_labels=5)
    T.ViTModel(config).save_pretrained(tmp_path / "headless")
    processor().save_pretrained(tmp_path / "headless")
    return tmp_path / "headless"


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_stored_classifier_changed_after_saving_is_refused(saved):
    weights = load_file(saved / "model.safetensors")
    expected = short_fingerprint(weights_fingerprint(make_classifier("vit")))
    weights["classifier.classifier.bias"][0] += 1e-3
    save_file(weights, saved / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"stored in {re.escape(str(saved))} has the weights fingerprint .*records "
                                         f"{re.escape(expected)}: the weights file or config.json was changed"):
        AHAExplainer.from_pretrained(saved)


def test_a_fingerprint_edited_in_config_is_refused(saved):
    config = (saved / "config.json").read_text()
    fingerprint = weights_fingerprint(make_classifier("vit"))
    (saved / "config.json").write_text(config.replace(fingerprint, "sha256:" + "0" * 64))
    with pytest.raises(ValueError, match="records sha256:000000000000"):
        AHAExplainer.from_pretrained(saved)


def test_the_check_runs_in_the_stored_dtype_and_dtype_casts_after_it(tmp_path, images):
    explainer = AHAExplainer.from_classifier(make_classifier("vit").to(torch.bfloat16))
    explainer.save_pretrained(tmp_path)
    assert AHAExplainer.from_pretrained(tmp_path).classifier.dtype == torch.bfloat16
    reloaded = AHAExplainer.from_pretrained(tmp_path, dtype=torch.float32)
    assert reloaded.classifier.dtype == reloaded.decoder.to_head.weight.dtype == torch.float32


def test_a_truncated_explainer_file_is_named(saved):
    _truncate(saved / "model.safetensors")
    with pytest.raises(ValueError, match=re.escape(f"{saved / 'model.safetensors'} is not a readable safetensors file")):
        AHAExplainer.from_pretrained(saved)


def test_a_damaged_recorded_classifier_is_named(tmp_path):
    make_classifier("vit").save_pretrained(tmp_path / "classifier")
    classifier = T.ViTForImageClassification.from_pretrained(tmp_path / "classifier")
    AHAExplainer.from_classifier(classifier).save_pretrained(tmp_path / "decoder", include_classifier=False)
    (tmp_path / "classifier" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'classifier' / 'model.safetensors'} is not a readable")):
        AHAExplainer.from_pretrained(tmp_path / "decoder")


def test_a_headless_checkpoint_is_refused_as_a_classifier(tmp_path, headless):
    with pytest.raises(ValueError, match=r"--model_name_or_path .*headless lacks 2 weights of ViTForImageClassification "
                                         r"\(classifier.bias, classifier.weight\): they would be randomly initialised"):
        load_classifier_and_processor(str(headless))
    # a decoder-only explainer whose recorded classifier folder now holds a headless model
    make_classifier("vit").save_pretrained(tmp_path / "classifier")
    classifier = T.ViTForImageClassification.from_pretrained(tmp_path / "classifier")
    AHAExplainer.from_classifier(classifier).save_pretrained(tmp_path / "decoder", include_classifier=False)
    shutil.rmtree(tmp_path / "classifier")
    shutil.copytree(headless, tmp_path / "classifier")
    with pytest.raises(ValueError, match="lacks 2 weights of ViTForImageClassification"):
        AHAExplainer.from_pretrained(tmp_path / "decoder")


def test_a_truncated_classifier_checkpoint_is_named(tmp_path):
    make_classifier("vit").save_pretrained(tmp_path / "classifier")
    processor().save_pretrained(tmp_path / "classifier")
    _truncate(tmp_path / "classifier" / "model.safetensors")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'classifier' / 'model.safetensors'} is not a readable")):
        load_classifier_and_processor(str(tmp_path / "classifier"))


def test_folders_that_hold_no_explainer_say_what_they_hold(tmp_path):
    make_classifier("vit").save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match="holds a model of type 'vit', not an AHA explainer.*from_classifier"):
        AHAExplainer.from_pretrained(tmp_path / "vit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty holds no config.json: it is not a saved explainer"):
        AHAExplainer.from_pretrained(tmp_path / "empty")
    for missing in (str(tmp_path / "nowhere"), "./nowhere/explainer"):
        with pytest.raises(FileNotFoundError, match=f"no such local folder {re.escape(missing)}"):
            AHAExplainer.from_pretrained(missing)
        with pytest.raises(FileNotFoundError, match=f"--model_name_or_path: no such local folder {re.escape(missing)}"):
            load_classifier_and_processor(missing)


def test_hub_ids_are_not_taken_for_local_paths():
    assert not looks_local("google/vit-base-patch16-224") and not looks_local("vit-base")
    assert looks_local("./vit") and looks_local("/models/vit") and looks_local("a/b/c") and looks_local("~/vit")


def test_save_pretrained_to_a_file_raises(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is a file"):
        AHAExplainer.from_classifier(make_classifier("vit")).save_pretrained(tmp_path / "file")
