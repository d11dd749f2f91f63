"""Model cards: metadata that parses back through huggingface_hub, results, and a truthful body."""

import math

import pytest
from conftest import make_classifier
from huggingface_hub import ModelCard

from aha import AHAExplainer
from aha.persistence.model_cards import faithfulness_results, model_card


REPO_ID = "org/aha-vit-b16"  # only rendered into the card, never downloaded
MEASURED = {
    "deletion_auc": 0.1234567,
    "insertion_auc": 0.8123,
    "positive_auc": 0.19,
    "negative_auc": 0.55,
    "deletion_aucs": [0.1],
}


def _config(tmp_path, classifier_name_or_path):
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), classifier_name_or_path=classifier_name_or_path)
    explainer.save_pretrained(tmp_path, include_classifier=False)  # records the fingerprint, as a save does
    return explainer.config


def test_card_metadata_parses_back_with_the_numbers_of_the_run(tmp_path):
    config = _config(tmp_path, "google/vit-base-patch16-224")
    results = faithfulness_results(MEASURED, dataset="ILSVRC/imagenet-1k", split="validation", reference="blur")
    card = model_card(
        config,
        repo_id=REPO_ID,
        include_classifier=True,
        eval_results=results,
        dataset="ILSVRC/imagenet-1k",
        steps=1234,
    )
    card.save(tmp_path / "README.md")
    parsed = ModelCard.load(tmp_path / "README.md")
    assert parsed.data.base_model == "google/vit-base-patch16-224"
    assert (parsed.data.pipeline_tag, parsed.data.library_name, parsed.data.license) == (
        "image-attribution",
        "aha-explain",
        "apache-2.0",
    )
    assert parsed.data.datasets == ["ILSVRC/imagenet-1k"]
    values = {r.metric_type: r.metric_value for r in parsed.data.eval_results}
    assert values == {key: MEASURED[key] for key in ("deletion_auc", "insertion_auc", "positive_auc", "negative_auc")}
    deletion = next(r for r in parsed.data.eval_results if r.metric_type == "deletion_auc")
    assert (deletion.dataset_type, deletion.dataset_split, deletion.task_type) == (
        "ILSVRC/imagenet-1k",
        "validation",
        "image-attribution",
    )
    assert deletion.metric_args == {"target": "predicted", "reference": "blur", "fractions": 21}
    positive = next(r for r in parsed.data.eval_results if r.metric_type == "positive_auc")
    assert positive.metric_args == {"target": "label", "reference": "black", "fractions": 10}
    text = str(parsed)
    assert "Self-contained" in text and "Decoder only" not in text
    assert (
        f'pipeline("image-attribution", model="{REPO_ID}")' in text
        and "| Deletion AUC (lower is better) | 0.1235 |" in text
    )
    assert "Optimisation steps: 1234" in text and "{{" not in text and "Template of" not in text


def test_decoder_only_card_says_how_its_classifier_is_loaded(tmp_path):
    config = _config(tmp_path, "google/vit-base-patch16-224")
    config.classifier_revision = "abc123"
    text = str(model_card(config, repo_id=REPO_ID, include_classifier=False))
    assert "Decoder only" in text and "Self-contained" not in text
    assert (
        "[`google/vit-base-patch16-224`](https://huggingface.co/google/vit-base-patch16-224) at revision `abc123`"
        in text
    )
    assert config.classifier_fingerprint in text and "model-index" not in text


def test_a_local_classifier_is_never_recorded_as_base_model(tmp_path):
    local = tmp_path / "my-classifier"
    local.mkdir()
    config = _config(tmp_path / "out", str(local))
    card = ModelCard(str(model_card(config, repo_id=REPO_ID)))
    assert card.data.base_model is None and str(local) not in str(card)
    assert "a ViTForImageClassification loaded from a local folder" in str(card)


def test_faithfulness_results_check_their_values():
    with pytest.raises(ValueError, match="none of the faithfulness metrics"):
        faithfulness_results({"loss": 0.3}, dataset="d", split="s")
    with pytest.raises(ValueError, match="deletion_auc must be a finite number, got nan"):
        faithfulness_results({"deletion_auc": math.nan}, dataset="d", split="s")
    (insertion,) = faithfulness_results({"insertion_auc": 0.5}, dataset="d", split="s", insertion_convention="rise")
    assert insertion.metric_args["insertion"] == "rise"
