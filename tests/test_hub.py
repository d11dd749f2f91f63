"""explainer.push_to_hub through HfApi patched at its network boundary (create_repo / create_commit write into
a local folder), then loaded back from that folder and as a repo id from a Hub cache."""

import os

import numpy as np
import pytest
import torch
from conftest import add_to_hub_cache, make_classifier
from huggingface_hub import ModelCard
from safetensors import safe_open
from test_pipeline import crop_processor, labelled_classifier, random_image
from training_helpers import image_dataset, processor, sharp_classifier, train_argv
from transformers import pipeline

from aha import AHAExplainer
from aha.persistence.model_cards import faithfulness_results
from aha.training import build_parser, train


REPO_ID = "org/aha-tiny"


def _explainer():
    return AHAExplainer.from_classifier(
        labelled_classifier(), image_processor=crop_processor(), classifier_name_or_path="org/tiny-vit"
    )


def test_push_uploads_weights_processor_and_card_and_reloads_identically(hub, images):
    root, calls = hub
    explainer = _explainer()
    results = faithfulness_results({"deletion_auc": 0.21, "insertion_auc": 0.74}, dataset="org/pets", split="test")
    explainer.push_to_hub(REPO_ID, eval_results=results, token="hf_xxx")
    assert [call[0] for call in calls] == ["create_repo", "create_commit"] and calls[0][1] == REPO_ID
    folder = root / REPO_ID
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model == "org/tiny-vit" and card.data.pipeline_tag == "image-attribution"
    assert [r.metric_value for r in card.data.eval_results] == [0.21, 0.74] and "Self-contained" in str(card)
    reloaded = AHAExplainer.from_pretrained(folder)
    assert torch.equal(reloaded.explain(images), explainer.explain(images))
    assert reloaded.image_processor.crop_size == explainer.image_processor.crop_size


def test_decoder_only_push_holds_no_classifier_weights(hub, images):
    root, _ = hub
    explainer = _explainer()
    explainer.push_to_hub(REPO_ID, include_classifier=False)
    folder = root / REPO_ID
    with safe_open(folder / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and not any(key.startswith("classifier.") for key in keys)
    assert "Decoder only" in (folder / "README.md").read_text()
    reloaded = AHAExplainer.from_pretrained(folder, classifier=labelled_classifier())
    assert torch.equal(reloaded.explain(images), explainer.explain(images))
    with pytest.raises(ValueError, match="different classifier"):
        AHAExplainer.from_pretrained(folder, classifier=make_classifier("vit", seed=3))


def test_pipeline_loads_a_pushed_repo_id(hub, tmp_path):
    """The captured upload laid out as a Hub cache snapshot: pipeline(model=<repo id>) resolves it offline."""
    root, _ = hub
    explainer = _explainer()
    explainer.push_to_hub(REPO_ID)
    add_to_hub_cache(tmp_path / "cache", REPO_ID, root / REPO_ID)
    pipe = pipeline(
        "image-attribution", model=REPO_ID, device="cpu", model_kwargs={"cache_dir": str(tmp_path / "cache")}
    )
    assert isinstance(pipe.model, AHAExplainer) and pipe.image_processor.crop_size.height == 32
    image = random_image(44, 37)
    local = pipeline("image-attribution", model=explainer, device="cpu")
    # (not bit for bit: a batch of one image through weights loaded from safetensors differs by ~1e-7)
    np.testing.assert_allclose(pipe(image)["attribution"], local(image)["attribution"], rtol=1e-5, atol=1e-6)


def test_train_push_uploads_the_run_without_its_checkpoints(hub, tmp_path):
    root, calls = hub
    args = build_parser().parse_args(
        train_argv(
            tmp_path / "run", "--max_train_steps", 1, "--push_to_hub", "--hub_model_id", REPO_ID, "--decoder_only"
        )
    )
    splits = {
        "train": image_dataset(4).remove_columns("id"),
        "validation": image_dataset(2, seed=1).remove_columns("id"),
    }
    train(*args, classifier=sharp_classifier(), image_processor=processor(), splits=splits)
    assert os.listdir(tmp_path / "run" / "checkpoints")  # written locally ...
    uploaded = {p.relative_to(root / REPO_ID).as_posix() for p in (root / REPO_ID).rglob("*") if p.is_file()}
    assert not any(path.startswith("checkpoints/") for path in uploaded)  # ... but not pushed
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"} <= uploaded
    card = ModelCard.load(root / REPO_ID / "README.md")
    assert "Decoder only" in str(card) and {r.metric_type for r in card.data.eval_results} == {
        "deletion_auc",
        "insertion_auc",
    }
    assert [call[0] for call in calls] == ["create_repo", "create_commit"]
