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


@pytest.mark.parametrize("family", sorted(TINY_CLASSIFIERS))
def test_budgeted_decoder_stays_within_budget(family):
    """Counted on the real models with real inputs (eager attention, so that the classifier's attention counts too),
    independently of the meta-device counting the budget itself uses."""
    attention = None if family == "swin" else "eager"
    classifier = make_classifier(family, attn_implementation=attention)
    explainer = AHAExplainer.from_classifier(classifier, decoder_flops_budget=BUDGET).eval()
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    _, features = explainer._features(images)
    classes = torch.zeros(1, dtype=torch.long)

    classifier_flops = _flops(lambda: classifier(pixel_values=images))
    decoder_flops = _flops(lambda: explainer.decoder(features, classes, images))
    assert 0 < decoder_flops <= BUDGET * classifier_flops, (family, decoder_flops / classifier_flops)
    assert _parameters(explainer.decoder) <= BUDGET * _parameters(classifier)
    # without a budget the same decoder costs more than the classifier at this size: the budget is what cut it
    unbudgeted = AHAExplainer.from_classifier(classifier).eval()
    assert _flops(lambda: unbudgeted.decoder(features, classes, images)) > 3 * decoder_flops
    maps = explainer(images).attributions
    assert maps.shape == (1, IMAGE_SIZE, IMAGE_SIZE) and torch.isfinite(maps).all()


def test_budget_choice_is_recorded_and_reloads(tmp_path):
    explainer = AHAExplainer.from_classifier(make_classifier("vit"), decoder_flops_budget=BUDGET)
    config = explainer.config
    chosen = (config.fusion_channels, config.head_channels, config.class_embedding_dim, config.image_branch_stride,
              config.decoder_blocks)
    assert None not in chosen
    assert explainer.decoder.image_stride == config.image_branch_stride > 1  # full resolution does not fit at 32 px
    assert len(explainer.decoder.blocks) == config.decoder_blocks
    explainer.save_pretrained(tmp_path)
    reloaded = AHAExplainer.from_pretrained(tmp_path)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(reloaded.explain(images), explainer.explain(images), rtol=0, atol=0)


def test_budget_keeps_fields_set_in_the_config_and_refuses_what_cannot_fit():
    classifier = make_classifier("vit")
    explainer = AHAExplainer.from_classifier(classifier, decoder_flops_budget=0.5, fusion_channels=12)
    assert explainer.decoder.projection.out_channels == 12 and explainer.config.fusion_channels == 12
    with pytest.raises(ValueError, match=r"decoder_flops_budget=0.08 is too small for this classifier: the cheapest "
                                         r"decoder .* costs \d+\.\d% of the classifier's FLOPs"):
        AHAExplainer.from_classifier(classifier, decoder_flops_budget=BUDGET, image_branch_stride=1)


def test_without_a_budget_the_decoder_is_unchanged():
    """The default decoder (no budget) keeps the widths the faithfulness benchmarks were recorded with."""
    explainer = AHAExplainer.from_classifier(make_classifier("vit"))
    decoder = explainer.decoder
    assert (decoder.projection.out_channels, decoder.to_head.out_channels, decoder.image_stride, len(decoder.blocks)) == (
        16, 8, 1, 2)
    assert explainer.config.fusion_channels is None and explainer.config.decoder_flops_budget is None


@pytest.mark.parametrize("name, value, expected", [
    ("decoder_flops_budget", 0.0, "decoder_flops_budget must be a finite number > 0 (or None), got 0.0"),
    ("image_branch_stride", 0, "image_branch_stride must be an integer >= 1 (or None), got 0"),
    ("decoder_blocks", -1, "decoder_blocks must be an integer >= 0 (or None), got -1"),
])
def test_config_refuses_bad_budget_fields(name, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        AHAExplainer.from_classifier(make_classifier("vit"), **{name: value})
