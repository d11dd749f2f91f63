"""The decoder's cost: counted (never timed) FLOPs and parameters of the default decoder stay under 8% of the
classifier's for every supported family, and :mod:`aha.modeling.decoder_cost`'s meta-device count is the real models' count."""

import pytest
import torch
from conftest import IMAGE_SIZE, TINY_CLASSIFIERS, make_classifier
from torch.utils.flop_counter import FlopCounterMode

from aha import AHAExplainer
from aha.modeling.decoder_cost import classifier_cost, decoder_cost, guide_cost


BUDGET = 0.08


def _flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _costs(explainer, classifier) -> tuple[int, int, int, int]:
    """FLOPs and parameters of the decoder and of the classifier, counted on the real models with real inputs,
    independently of the meta-device counting of :mod:`aha.modeling.decoder_cost`."""
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    _, features = explainer._features(images)
    classes = torch.zeros(1, dtype=torch.long)
    decoder_flops = _flops(lambda: explainer.decoder(features, classes, images))
    assert decoder_flops > 0
    classifier_flops = _flops(lambda: classifier(pixel_values=images))
    return decoder_flops, _parameters(explainer.decoder), classifier_flops, _parameters(classifier)


def _classifier(family):
    return make_classifier(family, attn_implementation=None if family == "swin" else "eager")  # attention counts too


@pytest.mark.parametrize("family", sorted(TINY_CLASSIFIERS))
def test_default_decoder_stays_within_budget(family):
    """The default decoder, but for its guide's fixed per-pixel blur, costs at most 8% of the classifier, even on the
    tests' tiny classifiers, where the decoder is largest next to the classifier; aha.modeling.decoder_cost counts the decoder's FLOPs and parameters as they are on
    the real model (the classifier's too, up to the attention kernel its copy from the config uses)."""
    classifier = _classifier(family)
    explainer = AHAExplainer.from_classifier(classifier).eval()
    decoder_flops, decoder_parameters, classifier_flops, classifier_parameters = _costs(explainer, classifier)
    # The guide's blur (sigma 1.5) is two dense matrix products with the side x side blur matrix over 3 channels, the
    # matrix built by an 11-tap convolution of an identity: 12 S^3 + 22 S^2 FLOPs, 12 S + 22 per pixel (406 at these
    # 32 px, 34% of these tiny models; 790, 4.2% of the 64 px benchmark ViT; 2.7 k, 1.5% of ViT-S/16 at 224 px). Dense,
    # it does more arithmetic than a depthwise convolution but takes 2.5-6x less time on CPU. The budget holds for the
    # rest.
    images = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    guide_flops = _flops(lambda: explainer.decoder.guide(images))
    assert guide_flops == 12 * IMAGE_SIZE**3 + 22 * IMAGE_SIZE**2 == guide_cost(explainer)
    assert decoder_flops - guide_flops <= BUDGET * classifier_flops
    assert decoder_parameters <= BUDGET * classifier_parameters
    counted = decoder_cost(explainer)
    assert (counted.flops, counted.parameters) == (decoder_flops, decoder_parameters)
    assert classifier_cost(explainer).parameters == classifier_parameters
    maps = explainer(torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)).attributions
    assert maps.shape == (1, IMAGE_SIZE, IMAGE_SIZE) and torch.isfinite(maps).all()


def test_default_decoder_widths():
    """The default decoder keeps the widths its faithfulness benchmarks were recorded with; fusion_channels sets
    the projection and the class embedding."""
    decoder = AHAExplainer.from_classifier(make_classifier("vit")).decoder
    assert (decoder.projection.out_channels, decoder.class_embedding.embedding_dim, decoder.to_head.out_features) == (
        16,
        16,
        4,
    )
    assert len(decoder.blocks) == 0
    wider = AHAExplainer.from_classifier(make_classifier("vit"), fusion_channels=24).decoder
    assert (wider.projection.out_channels, wider.class_embedding.embedding_dim) == (24, 24)
    assert decoder_cost(AHAExplainer.from_classifier(make_classifier("vit"), fusion_channels=24)).flops > (
        decoder_cost(AHAExplainer.from_classifier(make_classifier("vit"))).flops
    )
