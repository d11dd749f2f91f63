"""Loading is strict: the stored classifier is the fingerprinted one, so is everything else that decides a map
(weights, configs, image processor), no weight is left random or non-finite, no file asks for custom code, damaged
files and wrong folders are named."""

import json
import re
import shutil

import pytest
import torch
import transformers as T
from conftest import make_classifier
from safetensors.torch import load_file, save_file
from training_helpers import processor
from transformers import pipeline

from aha import AHAExplainer
from aha.persistence.fingerprints import short_fingerprint, weights_fingerprint
from aha.persistence.strict_loading import load_classifier_and_processor, looks_local


@pytest.fixture
def saved(tmp_path):
    """A self-contained explainer save."""
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), fusion_channels=16)
    explainer.save_pretrained(tmp_path / "explainer")
    return tmp_path / "explainer"


@pytest.fixture
def headless(tmp_path):
    """A ViT saved without a classification head, with its image processor."""
    config = T.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=5,
    )
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
    with pytest.raises(
        ValueError,
        match=f"stored in {re.escape(str(saved))} has the weights fingerprint .*records "
        f"{re.escape(expected)}: the weights file or config.json was changed",
    ):
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
    with pytest.raises(
        ValueError, match=re.escape(f"{saved / 'model.safetensors'} is not a readable safetensors file")
    ):
        AHAExplainer.from_pretrained(saved)


def test_a_damaged_recorded_classifier_is_named(tmp_path):
    make_classifier("vit").save_pretrained(tmp_path / "classifier")
    classifier = T.ViTForImageClassification.from_pretrained(tmp_path / "classifier")
    AHAExplainer.from_classifier(classifier).save_pretrained(tmp_path / "decoder", include_classifier=False)
    (tmp_path / "classifier" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'classifier' / 'model.safetensors'} is not a readable")
    ):
        AHAExplainer.from_pretrained(tmp_path / "decoder")


def test_a_headless_checkpoint_is_refused_as_a_classifier(tmp_path, headless):
    with pytest.raises(
        ValueError,
        match=r"--model_name_or_path .*headless lacks 2 weights of ViTForImageClassification "
        r"\(classifier.bias, classifier.weight\): they would be randomly initialised",
    ):
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
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'classifier' / 'model.safetensors'} is not a readable")
    ):
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
        with pytest.raises(
            FileNotFoundError, match=f"--model_name_or_path: no such local folder {re.escape(missing)}"
        ):
            load_classifier_and_processor(missing)


def test_hub_ids_are_not_taken_for_local_paths():
    assert not looks_local("google/vit-base-patch16-224") and not looks_local("vit-base")
    assert looks_local("./vit") and looks_local("/models/vit") and looks_local("a/b/c") and looks_local("~/vit")


def test_save_pretrained_to_a_file_raises(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is a file"):
        AHAExplainer.from_classifier(make_classifier("vit")).save_pretrained(tmp_path / "file")


# ------------------------------------------------------------------ everything that decides a map is fingerprinted
@pytest.fixture
def saved_with_processor(tmp_path):
    """A self-contained explainer save with its image processor."""
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), image_processor=processor(), fusion_channels=16)
    explainer.save_pretrained(tmp_path / "with_processor")
    return tmp_path / "with_processor"


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _nudge_decoder(path):
    weights = load_file(path)
    key = next(k for k in sorted(weights) if k.startswith("decoder."))
    weights[key].view(-1)[0] += 1e-3
    save_file(weights, path, metadata={"format": "pt"})


def _swap_labels(config):
    labels = config["classifier_config"]["id2label"]
    labels["0"], labels["1"] = labels["1"], labels["0"]


# edit -> (file, what the message says differs)
EDITS = {
    "decoder weight": ("model.safetensors", _nudge_decoder, "the explainer's own weights"),
    "id2label swapped": (
        "config.json",
        lambda p: _edit_json(p, _swap_labels),
        "classifier_config: the classifier's id2label",
    ),
    "classifier architecture field": (
        "config.json",
        lambda p: _edit_json(p, lambda c: c["classifier_config"].update(layer_norm_eps=1e-5)),
        "classifier_config: the classifier's id2label",
    ),
    "explainer normalisation": (
        "config.json",
        lambda p: _edit_json(p, lambda c: c.update(image_mean=[0.4, 0.5, 0.5])),
        "the explainer's own config fields",
    ),
    "processor mean": (
        "preprocessor_config.json",
        lambda p: _edit_json(p, lambda c: c.update(image_mean=[0.4, 0.5, 0.5])),
        "the image processor's settings",
    ),
    "processor std": (
        "preprocessor_config.json",
        lambda p: _edit_json(p, lambda c: c.update(image_std=[0.2, 0.5, 0.5])),
        "the image processor's settings",
    ),
    "processor resample": (
        "preprocessor_config.json",
        lambda p: _edit_json(p, lambda c: c.update(resample=3)),
        "the image processor's settings",
    ),
    "processor rescale": (
        "preprocessor_config.json",
        lambda p: _edit_json(p, lambda c: c.update(do_rescale=False)),
        "the image processor's settings",
    ),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_to_anything_that_decides_the_map_is_refused_naming_the_file(saved_with_processor, edit):
    name, change, part = EDITS[edit]
    change(saved_with_processor / name)
    with pytest.raises(
        ValueError,
        match=re.escape(f"{saved_with_processor / name} [{part}")
        + r".*\]: fingerprint sha256:\w+\.\.\., saved sha256:",
    ):
        AHAExplainer.from_pretrained(saved_with_processor)


def test_the_files_as_saved_load_and_config_arguments_still_apply(saved_with_processor):
    """Fingerprints are taken from the files, so a field passed as an argument is not an edit."""
    reloaded = AHAExplainer.from_pretrained(saved_with_processor, refine_lr=0.1)
    assert reloaded.config.refine_lr == 0.1 and reloaded.image_processor is not None


def test_a_processor_added_or_removed_after_saving_is_refused(saved, saved_with_processor):
    shutil.copy(saved_with_processor / "preprocessor_config.json", saved)
    with pytest.raises(
        ValueError,
        match=re.escape(f"{saved / 'preprocessor_config.json'} [the image processor's settings")
        + ".*saved none, the save had no such file",
    ):
        AHAExplainer.from_pretrained(saved)
    (saved_with_processor / "preprocessor_config.json").unlink()
    with pytest.raises(
        ValueError, match=r"the image processor's settings.*\]: fingerprint none, the file is missing, saved sha256:"
    ):
        AHAExplainer.from_pretrained(saved_with_processor)


def test_saving_without_a_processor_removes_an_earlier_saves_one(saved_with_processor):
    AHAExplainer.from_classifier(make_classifier("vit"), fusion_channels=16).save_pretrained(saved_with_processor)
    assert not (saved_with_processor / "preprocessor_config.json").exists()
    assert AHAExplainer.from_pretrained(saved_with_processor).image_processor is None


@pytest.mark.parametrize("field", ["fingerprints", "classifier_fingerprint"])
def test_a_nulled_fingerprint_is_refused_and_the_legacy_path_says_so(saved, field, caplog):
    _edit_json(saved / "config.json", lambda config: config.update({field: None}))
    with pytest.raises(
        ValueError, match=re.escape(f"{saved / 'config.json'} records no {field}") + ".*allow_unfingerprinted=True"
    ):
        AHAExplainer.from_pretrained(saved)
    reloaded = AHAExplainer.from_pretrained(saved, allow_unfingerprinted=True)  # a save from before fingerprints
    assert f"records no {field}" in caplog.text
    reloaded.save_pretrained(saved)  # saving again records them
    AHAExplainer.from_pretrained(saved)
    with pytest.raises(ValueError, match="allow_unfingerprinted must be True or False"):
        AHAExplainer.from_pretrained(saved, allow_unfingerprinted="false")


def test_nan_weights_never_load_naming_the_file_and_the_tensor(saved, tmp_path):
    weights = load_file(saved / "model.safetensors")
    key = next(k for k in sorted(weights) if k.startswith("decoder."))
    weights[key].view(-1)[0] = float("nan")
    save_file(weights, saved / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        ValueError, match=re.escape(f"{saved / 'model.safetensors'}: {key} holds NaN or infinite values")
    ):
        AHAExplainer.from_pretrained(saved)
    classifier = make_classifier("vit")
    with torch.no_grad():
        classifier.classifier.bias[0] = float("inf")
    classifier.save_pretrained(tmp_path / "classifier")
    processor().save_pretrained(tmp_path / "classifier")
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'classifier' / 'model.safetensors'}: classifier.bias holds NaN")
    ):
        load_classifier_and_processor(str(tmp_path / "classifier"))


def _no_prompt(*_):
    raise AssertionError("transformers asked on the terminal whether to run custom code")


@pytest.mark.parametrize(
    "name, key",
    [
        ("config.json", "auto_map"),
        ("config.json", "classifier_config.auto_map"),
        ("preprocessor_config.json", "auto_map"),
    ],
)
def test_auto_map_in_a_saved_explainer_is_refused_naming_the_file(saved_with_processor, monkeypatch, name, key):
    monkeypatch.setattr("builtins.input", _no_prompt)
    custom = {"AutoImageProcessor": "custom.CustomProcessor", "AutoConfig": "custom.CustomConfig"}
    target = key.rpartition(".")[0]
    _edit_json(saved_with_processor / name, lambda c: (c[target] if target else c).update(auto_map=custom))
    message = re.escape(f"{saved_with_processor / name} sets {key}: it asks transformers to run custom code")
    with pytest.raises(ValueError, match=message):
        AHAExplainer.from_pretrained(saved_with_processor)
    with pytest.raises(ValueError, match=message):  # the pipeline from a saved folder, as users run it
        pipeline("image-attribution", model=str(saved_with_processor))


@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json"])
def test_auto_map_in_a_classifier_folder_is_refused_naming_the_file(tmp_path, monkeypatch, name):
    monkeypatch.setattr("builtins.input", _no_prompt)
    make_classifier("vit").save_pretrained(tmp_path)
    processor().save_pretrained(tmp_path)
    _edit_json(tmp_path / name, lambda c: c.update(auto_map={"AutoImageProcessor": "custom.CustomProcessor"}))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / name} sets auto_map")):
        load_classifier_and_processor(str(tmp_path))
