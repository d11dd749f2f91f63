"""The decoder's compute budget: counted (never timed) FLOPs and parameters of the decoder stay within the budget's
fraction of the classifier's, for every supported family; the choice is recorded in the config and reloads."""

import re

import pytest
import torch
from conftest import IMAGE_SIZE, TINY_CLASSIFIERS, make_classifier
from torch.utils.flop_counter import FlopCounterMode

from aha import AHAExplainer


BUDGET = 0.08


def _flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _costs(explainer, classifier) -> tuple[float, float]:
    """The decoder's FLOPs and parameters as fractions of the classifier's, counted on the real models with real
    inputs, independently of the meta-device counting the budget itself uses."""
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    _, features = explainer._features(images)
    classes = torch.zeros(1, dtype=torch.long)
    classifier_flops = _flops(lambda: classifier(pixel_values=images))
    decoder_flops = _flops(lambda: explainer.decoder(features, classes, images))
    assert decoder_flops > 0
    return decoder_flops / classifier_flops, _parameters(explainer.decoder) / _parameters(classifier)


def _classifier(family):
    return make_classifier(family, attn_implementation=None if family == "swin" else "eager")  # attention counts too


@pytest.mark.parametrize("family", sorted(TINY_CLASSIFIERS))
def test_default_decoder_stays_within_budget(family):
    """The default decoder (the "guided" pixel head) costs at most 8% of the classifier with no budget set, even
    on the tests' tiny classifiers, where the decoder is largest next to the classifier."""
    classifier = _classifier(family)
    explainer = AHAExplainer.from_classifier(classifier).eval()
    assert explainer.config.pixel_head == "guided" and explainer.config.decoder_flops_budget is None
    flops, parameters = _costs(explainer, classifier)
    assert flops <= BUDGET and parameters <= BUDGET, (family, flops, parameters)
    maps = explainer(torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)).attributions
    assert maps.shape == (1, IMAGE_SIZE, IMAGE_SIZE) and torch.isfinite(maps).all()


@pytest.mark.parametrize("family", sorted(TINY_CLASSIFIERS))
def test_budgeted_conv_head_stays_within_budget(family):
    classifier = _classifier(family)
    explainer = AHAExplainer.from_classifier(classifier, pixel_head="conv", decoder_flops_budget=BUDGET).eval()
    flops, parameters = _costs(explainer, classifier)
    assert flops <= BUDGET and parameters <= BUDGET, (family, flops, parameters)
    # without a budget the conv head costs more than the classifier at this size: the budget is what cut it
    unbudgeted, _ = _costs(AHAExplainer.from_classifier(classifier, pixel_head="conv").eval(), classifier)
    assert unbudgeted > 3 * flops


def test_budget_choice_is_recorded_and_reloads(tmp_path):
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), pixel_head="conv", decoder_flops_budget=BUDGET)
    config = explainer.config
    chosen = (
        config.fusion_channels,
        config.head_channels,
        config.class_embedding_dim,
        config.image_branch_stride,
        config.decoder_blocks,
    )
    assert None not in chosen
    assert explainer.decoder.image_stride == config.image_branch_stride > 1  # full resolution does not fit at 32 px
    assert len(explainer.decoder.blocks) == config.decoder_blocks
    explainer.save_pretrained(tmp_path)
    reloaded = AHAExplainer.from_pretrained(tmp_path)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(reloaded.explain(images), explainer.explain(images), rtol=0, atol=0)


def test_budget_with_the_guided_head_chooses_the_fusion_width():
    classifier = make_classifier("vit")
    explainer = AHAExplainer.from_classifier(classifier, decoder_flops_budget=0.06)
    config = explainer.config
    assert config.fusion_channels < 16 and config.head_channels is None and config.image_branch_stride is None
    flops, _ = _costs(explainer.eval(), classifier)
    assert flops <= 0.06


def test_budget_keeps_fields_set_in_the_config_and_refuses_what_cannot_fit():
    classifier = make_classifier("vit")
    explainer = AHAExplainer.from_classifier(classifier, decoder_flops_budget=0.5, fusion_channels=12)
    assert explainer.decoder.projection.out_channels == 12 and explainer.config.fusion_channels == 12
    with pytest.raises(
        ValueError,
        match=r"decoder_flops_budget=0.08 is too small for this classifier: the cheapest "
        r"decoder .* costs \d+\.\d% of the classifier's FLOPs",
    ):
        AHAExplainer.from_classifier(classifier, pixel_head="conv", decoder_flops_budget=BUDGET, image_branch_stride=1)


def test_default_decoders():
    """The default decoder of each pixel head keeps the widths its faithfulness benchmarks were recorded with."""
    guided = AHAExplainer.from_classifier(make_classifier("vit")).decoder
    assert (guided.projection.out_channels, guided.to_head.out_features, len(guided.blocks)) == (16, 4, 0)
    conv = AHAExplainer.from_classifier(make_classifier("vit"), pixel_head="conv").decoder
    assert (conv.projection.out_channels, conv.to_head.out_channels, conv.image_stride, len(conv.blocks)) == (
        16,
        8,
        1,
        2,
    )


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("decoder_flops_budget", 0.0, "decoder_flops_budget must be a finite number > 0 (or None), got 0.0"),
        ("image_branch_stride", 0, "image_branch_stride must be an integer >= 1 (or None), got 0"),
        ("decoder_blocks", -1, "decoder_blocks must be an integer >= 0 (or None), got -1"),
    ],
)
def test_config_refuses_bad_budget_fields(name, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        AHAExplainer.from_classifier(make_classifier("vit"), **{name: value})
