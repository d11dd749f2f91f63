"""AHAConfig and the small APIs refuse what they cannot honour: unknown keys, field values outside their rule (NaN
and 0 included), strings or numbers for booleans, and a one-class classifier."""

import json
import logging
import math
import re

import pytest
import torch
import transformers as T
from conftest import make_classifier

from aha import AHAConfig, AHAExplainer
from aha.modeling.configuration_aha import _LIST_RULES, _NUMBER_RULES
from aha.persistence.fingerprints import saved_fingerprints
from aha.ranking.refinement import RefinementPlan


# fields checked by something other than a rule table or the type of a non-None default
_STRING_OR_CONFIG_FIELDS = {
    "classifier_config",
    "classifier_name_or_path",
    "classifier_revision",
    "classifier_fingerprint",
    "fingerprints",
    "feature_backbone_config",
}


def _config(**fields):
    return AHAConfig(classifier_config=make_classifier("vit").config, **fields)


def test_every_field_is_checked():
    """A new field needs a rule, or a non-None default whose type gives one (bool, int, float, str)."""
    for name, default in AHAConfig.own_fields().items():
        typed = default is not None and isinstance(default, (bool, int, float, str))
        assert name in _NUMBER_RULES or name in _LIST_RULES or name in _STRING_OR_CONFIG_FIELDS or typed, name


@pytest.mark.parametrize(
    "name",
    sorted(
        n
        for n, d in AHAConfig.own_fields().items()
        if n in _NUMBER_RULES or (isinstance(d, (int, float)) and not isinstance(d, bool))
    ),
)
@pytest.mark.parametrize("bad", [math.nan, math.inf, "1", True])
def test_every_numeric_field_refuses_nan_infinity_and_non_numbers(name, bad):
    with pytest.raises(ValueError, match=f"{name} must be (a finite number|an integer)"):
        _config(**{name: bad})


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("fusion_channels", 0, "fusion_channels must be an integer >= 1 (or None), got 0"),
        ("fusion_channels", 2.5, "fusion_channels must be an integer >= 1 (or None), got 2.5"),
        ("num_fractions", 2, "num_fractions must be an integer >= 3 and <= 256, got 2"),
        ("sinkhorn_iterations", 0, "sinkhorn_iterations must be an integer >= 1, got 0"),
        ("perturbation_batch_size", 0, "perturbation_batch_size must be an integer >= 1, got 0"),
        ("peak_window", 0, "peak_window must be an integer >= 1, got 0"),
        ("mask_sigma", -1.0, "mask_sigma must be a finite number >= 0, got -1.0"),
        ("mask_sigma", math.nan, "mask_sigma must be a finite number >= 0, got nan"),
        ("guide_blur_sigma", -0.5, "guide_blur_sigma must be a finite number >= 0, got -0.5"),
        ("guide_blur_sigma", math.inf, "guide_blur_sigma must be a finite number >= 0, got inf"),
        ("tau_start", 0.0, "tau_start must be a finite number > 0, got 0.0"),
        ("tau_end", math.nan, "tau_end must be a finite number > 0, got nan"),
        ("peak_weight", math.nan, "peak_weight must be a finite number >= 0, got nan"),
        ("deletion_weight", -0.5, "deletion_weight must be a finite number >= 0, got -0.5"),
        ("refine_lr", 0.0, "refine_lr must be a finite number > 0, got 0.0"),
        ("initializer_range", 0.0, "initializer_range must be a finite number > 0, got 0.0"),
        ("second_class", 1, "second_class must be True or False (a bool), got 1"),
        ("second_class", "false", "second_class must be True or False (a bool), got 'false'"),
        ("fingerprints", {"weights": "sha256:0"}, "fingerprints must be None or a dict with the keys"),
        ("image_std", [0.5, 0.0, 0.5], "image_std[1] must be a finite number > 0, got 0.0"),
        ("image_mean", [0.5, math.nan, 0.5], "image_mean[1] must be a finite number, got nan"),
        ("grid_cell_patches", [0.5], "grid_cell_patches must be a list of 2 values, got [0.5]"),
        ("grid_cell_patches", [math.nan, 2.0], "grid_cell_patches[0] must be a finite number > 0, got nan"),
        ("feature_layers", [1, -1], "feature_layers[1] must be an integer >= 0, got -1"),
        ("feature_layers", [], "feature_layers must be a list of at least one value, got []"),
        ("references", "mean", "references must be a list of at least one value, got 'mean'"),
        ("classifier_fingerprint", "abc", 'classifier_fingerprint must be "sha256:" and 64 hex digits'),
        ("classifier_revision", 3, "classifier_revision must be a string or None, got 3"),
    ],
)
def test_bad_values_name_the_field_and_the_expected_value(name, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        _config(**{name: value})


# config.json fields of earlier versions (the "conv" pixel head, the decoder budget, two decoder widths), at the values
# a save with the guided head holds: every save of the benchmark suite has them
EARLIER_FIELDS = {
    "pixel_head": "guided",
    "head_channels": None,
    "image_branch_stride": None,
    "decoder_blocks": None,
    "class_embedding_dim": None,
    "decoder_flops_budget": None,
}


def _as_an_earlier_version_saved_it(folder, fields: dict) -> None:
    """Add ``fields`` to the save's config.json and record its fingerprint again, as the version that had them did."""
    path = folder / "config.json"
    stored = json.loads(path.read_text())
    stored.update(fields)
    stored["fingerprints"]["explainer_config"] = saved_fingerprints({}, stored, None)["explainer_config"]
    path.write_text(json.dumps(stored))


def test_a_save_with_fields_of_an_earlier_version_loads_the_same_explainer_with_a_warning(tmp_path, caplog):
    explainer = AHAExplainer.from_classifier(make_classifier("vit", head_scale=20), fusion_channels=12).eval()
    explainer.save_pretrained(tmp_path)
    # as a budget wrote them: the width it chose, recorded
    fields = {**EARLIER_FIELDS, "class_embedding_dim": 12, "decoder_blocks": 0, "decoder_flops_budget": 0.08}
    _as_an_earlier_version_saved_it(tmp_path, fields)
    with caplog.at_level(logging.WARNING):
        reloaded = AHAExplainer.from_pretrained(tmp_path)
    ignored = re.search(r"AHAConfig: ignoring (.*), fields of an earlier version", caplog.text).group(1)
    assert sorted(ignored.split(", ")) == sorted(f"{name}={value!r}" for name, value in fields.items())
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(reloaded.explain(images), explainer.explain(images))
    reloaded.save_pretrained(tmp_path / "again")  # saving again drops them
    assert not set(fields) & set(json.loads((tmp_path / "again" / "config.json").read_text()))


@pytest.mark.parametrize(
    "name, value, became",
    [
        ("pixel_head", "conv", 'the "conv" pixel head was removed'),
        ("head_channels", 8, 'the removed "conv" pixel head'),
        ("image_branch_stride", 2, 'the removed "conv" pixel head'),
        ("decoder_blocks", 2, "the decoder has no residual units"),
        ("class_embedding_dim", 8, "the class embedding is fusion_channels wide"),
    ],
)
def test_a_field_of_an_earlier_version_describing_another_decoder_is_refused(name, value, became):
    """Loading it would build a decoder its weights do not fit, or drop some of them in silence."""
    with pytest.raises(
        ValueError,
        match=re.escape(f"{name}={value!r} describes a decoder that this version of aha-explain no longer builds")
        + f".*{re.escape(became)}.*train it again",
    ):
        _config(**{**EARLIER_FIELDS, "fusion_channels": 16, name: value})


def test_a_conv_head_save_is_refused_naming_the_field(tmp_path):
    AHAExplainer.from_classifier(make_classifier("vit")).save_pretrained(tmp_path)
    _as_an_earlier_version_saved_it(tmp_path, {**EARLIER_FIELDS, "pixel_head": "conv"})
    with pytest.raises(ValueError, match=r"pixel_head='conv' describes a decoder .* no longer builds"):
        AHAExplainer.from_pretrained(tmp_path)


def test_a_save_from_before_the_guided_head_is_refused():
    """Such a config has head_channels and the other decoder fields but no pixel_head: its decoder was the conv
    head, whatever the values."""
    fields = {name: value for name, value in EARLIER_FIELDS.items() if name != "pixel_head"}
    with pytest.raises(ValueError, match=r"head_channels without pixel_head: .* before the guided pixel head existed"):
        _config(**fields)


def test_zero_weights_for_every_term_are_refused():
    with pytest.raises(ValueError, match="all 0: at least one must be > 0"):
        _config(deletion_weight=0.0, lrf_insertion_weight=0.0)


def test_mismatched_normalisation_lengths_are_refused():
    with pytest.raises(ValueError, match="one value per channel each, got 3 and 2"):
        _config(image_mean=[0.5] * 3, image_std=[0.5] * 2)


def test_a_misspelled_key_is_refused_listing_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown keys \['fusion_chanels'\] \(did you mean 'fusion_channels' "
        r"for 'fusion_chanels'\?\); valid keys: \[.*'fusion_channels'.*\]",
    ):
        _config(fusion_chanels=8)
    with pytest.raises(ValueError, match="unknown keys"):
        AHAExplainer.from_classifier(make_classifier("vit"), fusion_chanels=8)


def test_valid_configs_round_trip(tmp_path):
    config = _config(fusion_channels=8, references=["mean"], tau_start=2, mask_sigma=0)
    config.save_pretrained(tmp_path)
    reloaded = AHAConfig.from_pretrained(tmp_path)
    assert reloaded.fusion_channels == 8 and reloaded.references == ["mean"] and reloaded.tau_start == 2


def _save(value, explainer, tmp_path):
    explainer.save_pretrained(tmp_path / "save", include_classifier=value)


# boolean options of the small APIs -> a call that passes the value; "false" is never taken as true
BOOLEAN_OPTIONS = {
    "checkpoint": lambda value, explainer, tmp_path: RefinementPlan(checkpoint=value),
    "alternate_terms": lambda value, explainer, tmp_path: RefinementPlan(alternate_terms=value),
    "second_class": lambda value, explainer, tmp_path: _config(second_class=value),
    "noise": lambda value, explainer, tmp_path: explainer.objective(
        explainer.classifier,
        torch.zeros(1, 3, 32, 32),
        torch.zeros(1, 32, 32),
        torch.zeros(1, dtype=torch.long),
        tau=1.0,
        grid=4,
        reference="mean",
        noise=value,
    ),
    "include_classifier": _save,
}


@pytest.mark.parametrize("option", BOOLEAN_OPTIONS)
@pytest.mark.parametrize("value", ["false", "no", "0", 0, 1, None])
def test_boolean_options_refuse_strings_and_numbers(tmp_path, option, value):
    explainer = AHAExplainer.from_classifier(make_classifier("vit"))
    with pytest.raises(ValueError, match=re.escape(f"{option} must be True or False (a bool), got {value!r}")):
        BOOLEAN_OPTIONS[option](value, explainer, tmp_path)
    assert not (tmp_path / "save").exists()


def test_a_one_class_classifier_is_refused_naming_num_labels():
    classifier = T.ViTForImageClassification(
        T.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=1,
        )
    )
    message = re.escape(
        "classifier_config.num_labels is 1: a classifier with fewer than 2 classes cannot be explained"
    )
    with pytest.raises(ValueError, match=message + r".*objective, is constant"):
        AHAExplainer.from_classifier(classifier)
    with pytest.raises(ValueError, match=message):
        AHAConfig(classifier_config=classifier.config.to_dict())


def test_a_save_from_before_guide_blur_sigma_existed_keeps_its_maps(tmp_path):
    """Saves written before the field existed read the image itself: they load with 0, not today's default."""
    from aha.persistence.fingerprints import UNFINGERPRINTED_CONFIG_KEYS, json_fingerprint

    assert AHAConfig().guide_blur_sigma == 1.5
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    explainer = AHAExplainer.from_classifier(make_classifier(), fusion_channels=8, guide_blur_sigma=0.0)
    explainer.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    del config["guide_blur_sigma"]  # as an earlier version wrote it, its fingerprint too
    fingerprinted = {k: v for k, v in config.items() if k not in UNFINGERPRINTED_CONFIG_KEYS | {"classifier_config"}}
    config["fingerprints"]["explainer_config"] = json_fingerprint(fingerprinted)
    path.write_text(json.dumps(config))
    reloaded = AHAExplainer.from_pretrained(tmp_path)
    assert reloaded.config.guide_blur_sigma == 0.0 and reloaded.decoder.guide_blur_sigma == 0.0
    assert torch.equal(reloaded(images).attributions, explainer(images).attributions)
    # a save that records the field keeps its value, and a config built in code takes the default
    assert AHAConfig.from_dict({**config, "guide_blur_sigma": 2.0}).guide_blur_sigma == 2.0
    assert AHAConfig.from_dict({"references": ["mean"]}).guide_blur_sigma == 1.5
