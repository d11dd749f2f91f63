"""Decoder-only saves (`save_pretrained(include_classifier=False)`): where the classifier comes from plus a fingerprint."""

import json
import shutil
import struct
from unittest import mock

import pytest
import torch
import transformers as T
from conftest import make_classifier
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from aha import AHAConfig, AHAExplainer
from aha.persistence.fingerprints import weights_fingerprint
from aha.persistence.model_cards import model_card


def _safetensors_keys(path) -> set[str]:
    """Tensor names from a safetensors header (8-byte little-endian length, then JSON), no tensor read."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return set(header) - {"__metadata__"}


@pytest.fixture
def classifier_dir(tmp_path):
    """A tiny ViT saved with save_pretrained: the "Hub" the decoder-only save records."""
    path = tmp_path / "classifier"
    make_classifier("vit").save_pretrained(path)
    return path


@pytest.fixture
def explainer(classifier_dir):
    return AHAExplainer.from_classifier(
        T.ViTForImageClassification.from_pretrained(classifier_dir), fusion_channels=16
    )


def test_fingerprint_covers_names_dtypes_and_bytes():
    classifier = make_classifier("vit")
    fingerprint = weights_fingerprint(classifier)
    assert fingerprint.startswith("sha256:") and len(fingerprint) == len("sha256:") + 64
    assert weights_fingerprint(AHAExplainer.from_classifier(classifier).classifier) == fingerprint
    assert weights_fingerprint(make_classifier("vit")) == fingerprint
    assert weights_fingerprint(make_classifier("vit").to(torch.float64)) != fingerprint
    with torch.no_grad():
        classifier.classifier.bias[0] += 1e-6
    assert weights_fingerprint(classifier) != fingerprint


def test_decoder_only_file_is_small_and_holds_no_classifier(tmp_path, classifier_dir, explainer):
    explainer.save_pretrained(tmp_path / "full")
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    assert explainer.config.includes_classifier  # the in-memory explainer still holds its classifier
    keys = _safetensors_keys(tmp_path / "decoder" / "model.safetensors")
    assert keys == {f"decoder.{k}" for k in explainer.decoder.state_dict()}
    assert _safetensors_keys(tmp_path / "full" / "model.safetensors") > keys
    sizes = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("full", "decoder")}
    assert sizes["decoder"] < sizes["full"] / 2, sizes
    config = AHAConfig.from_pretrained(tmp_path / "decoder")
    assert not config.includes_classifier
    assert config.classifier_name_or_path == str(classifier_dir)
    assert config.classifier_fingerprint == weights_fingerprint(explainer.classifier)


@pytest.mark.parametrize("how", ["reference", "auto_model", "explicit_classifier"])
def test_reload_reproduces_attributions_exactly(how, tmp_path, classifier_dir, explainer, images):
    expected = explainer(images).attributions
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    if how == "reference":
        reloaded = AHAExplainer.from_pretrained(tmp_path / "decoder")
    elif how == "auto_model":
        reloaded = AutoModel.from_pretrained(tmp_path / "decoder")
    else:
        classifier = T.ViTForImageClassification.from_pretrained(classifier_dir)
        shutil.rmtree(classifier_dir)  # the recorded classifier is not needed when one is passed in
        reloaded = AHAExplainer.from_pretrained(tmp_path / "decoder", classifier=classifier)
    assert isinstance(reloaded, AHAExplainer)
    assert torch.equal(reloaded(images).attributions, expected)
    assert not any(p.requires_grad for p in reloaded.classifier.parameters())


def test_a_different_classifier_fails_loudly(tmp_path, classifier_dir, explainer):
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    expected = weights_fingerprint(explainer.classifier)[: len("sha256:") + 12]
    other = make_classifier("vit", seed=1)
    got = weights_fingerprint(other)[: len("sha256:") + 12]
    with pytest.raises(ValueError, match=f"different classifier.*{got}.*expected {expected}.*{classifier_dir}"):
        AHAExplainer.from_pretrained(tmp_path / "decoder", classifier=other)
    other.save_pretrained(classifier_dir)  # the recorded folder now holds another model
    with pytest.raises(ValueError, match=f"different classifier.*{got}.*expected {expected}"):
        AHAExplainer.from_pretrained(tmp_path / "decoder")


def test_a_missing_classifier_is_explained(tmp_path, classifier_dir, explainer):
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    shutil.rmtree(classifier_dir)
    with pytest.raises(OSError, match=f"could not load the classifier {classifier_dir}.*classifier=classifier"):
        AHAExplainer.from_pretrained(tmp_path / "decoder")
    in_memory = AHAExplainer.from_classifier(make_classifier("vit"))
    assert in_memory.config.classifier_name_or_path is None
    in_memory.save_pretrained(tmp_path / "unreferenced", include_classifier=False)
    with pytest.raises(ValueError, match="records no classifier_name_or_path"):
        AHAExplainer.from_pretrained(tmp_path / "unreferenced")
    AHAExplainer.from_pretrained(tmp_path / "unreferenced", classifier=make_classifier("vit"))


def test_self_contained_saves_carry_the_fingerprint(tmp_path, classifier_dir, explainer, images):
    explainer.save_pretrained(tmp_path / "full")
    config = AHAConfig.from_pretrained(tmp_path / "full")
    assert config.includes_classifier and config.classifier_fingerprint == weights_fingerprint(explainer.classifier)
    shutil.rmtree(classifier_dir)  # a self-contained save never needs the recorded classifier
    reloaded = AHAExplainer.from_pretrained(tmp_path / "full")
    assert torch.equal(reloaded(images).attributions, explainer(images).attributions)
    assert not any(p.requires_grad for p in reloaded.classifier.parameters())  # loading keeps the classifier frozen
    with pytest.raises(ValueError, match="different classifier"):
        AHAExplainer.from_pretrained(tmp_path / "full", classifier=make_classifier("vit", seed=1))


def test_missing_decoder_weights_raise(tmp_path, explainer):
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    weights = tmp_path / "decoder" / "model.safetensors"
    state = load_file(weights)
    del state["decoder.to_head.weight"]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lacks 1 weights.*decoder\.to_head\.weight"):
        AHAExplainer.from_pretrained(tmp_path / "decoder")


def test_pickled_weights_are_never_loaded(tmp_path, explainer):
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    (tmp_path / "decoder" / "model.safetensors").unlink()
    torch.save(explainer.state_dict(), tmp_path / "decoder" / "pytorch_model.bin")
    with mock.patch("torch.load", side_effect=AssertionError("a pickle was opened")) as load:
        with pytest.raises(OSError, match=r"no file named model\.safetensors"):
            AHAExplainer.from_pretrained(tmp_path / "decoder")
    load.assert_not_called()


def test_feature_backbone_is_kept_in_decoder_only_saves(tmp_path, classifier_dir, images):
    backbone = T.Dinov2Model(
        T.Dinov2Config(image_size=32, patch_size=4, hidden_size=24, num_hidden_layers=3, num_attention_heads=2)
    )
    classifier = T.ViTForImageClassification.from_pretrained(classifier_dir)
    explainer = AHAExplainer.from_classifier(classifier, feature_backbone=backbone)
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    keys = _safetensors_keys(tmp_path / "decoder" / "model.safetensors")
    assert {k.split(".")[0] for k in keys} == {"decoder", "feature_backbone"}
    reloaded = AHAExplainer.from_pretrained(tmp_path / "decoder")
    assert torch.equal(reloaded(images).attributions, explainer(images).attributions)
    assert not any(p.requires_grad for p in reloaded.feature_backbone.parameters())


def test_a_classifier_loaded_by_a_relative_path_is_recorded_absolute(tmp_path, monkeypatch, classifier_dir, images):
    """aha demo trains on "aha-demo/classifier": the decoder-only save must load from any working directory."""
    monkeypatch.chdir(tmp_path)
    explainer = AHAExplainer.from_classifier(
        T.ViTForImageClassification.from_pretrained("classifier"), fusion_channels=16
    )
    explainer.save_pretrained(tmp_path / "decoder", include_classifier=False)
    assert json.loads((tmp_path / "decoder" / "config.json").read_text())["classifier_name_or_path"] == str(
        classifier_dir
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    reloaded = AHAExplainer.from_pretrained(tmp_path / "decoder")
    assert torch.equal(reloaded.explain(images), explainer.explain(images))
    card = str(model_card(explainer.config, include_classifier=False))
    assert "an absolute path" in card and str(tmp_path) not in card  # said, never shown
