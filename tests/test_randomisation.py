"""Adebayo et al.'s model randomisation check: it fails a method whose map ignores the classifier and passes
gradient-based maps of a tiny ViT."""

import pytest
import torch
from conftest import IMAGE_SIZE, make_classifier

from aha.baselines import get_attributor
from aha.metrics import model_randomisation
from aha.metrics.randomisation import parameter_groups, spearman


def image_edges(classifier):
    """A 'method' that never looks at the classifier: the image's horizontal gradient magnitude."""
    return lambda pixel_values, target: pixel_values.diff(dim=-1, append=pixel_values[..., -1:]).abs().sum(1)


def test_a_map_that_ignores_the_classifier_fails(images):
    model = make_classifier("vit", head_scale=20)
    for mode in ("full", "cascading"):
        result = model_randomisation(image_edges, model, images, mode=mode, generator=torch.Generator().manual_seed(0))
        assert not result.passed
        assert torch.allclose(result.similarity, torch.ones_like(result.similarity))


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients"])
def test_gradient_maps_of_a_tiny_vit_pass(images, method):
    model = make_classifier("vit", head_scale=20)
    before = {name: p.clone() for name, p in model.state_dict().items()}
    result = model_randomisation(
        lambda c: get_attributor(method, c), model, images, generator=torch.Generator().manual_seed(0)
    )
    assert result.passed and result.final_similarity < 0.5, result.similarity
    assert all(torch.equal(before[name], p) for name, p in model.state_dict().items())  # a copy was randomised


def test_cascading_goes_from_the_head_down_and_is_reproducible(images):
    model = make_classifier("vit", head_scale=20)
    groups = [name for name, _ in parameter_groups(model)]
    assert groups[0] == "classifier" and groups[-1] == "vit.embeddings" and "vit.layers.3" in groups

    def run(seed):
        return model_randomisation(
            lambda c: get_attributor("gradcam", c),
            model,
            images,
            mode="cascading",
            generator=torch.Generator().manual_seed(seed),
        )

    first, again = run(0), run(0)
    assert first.stages == groups and first.similarity.shape == (len(groups), 4)
    torch.testing.assert_close(first.similarity, again.similarity, equal_nan=True)


def test_spearman_and_bad_options(images):
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 3.0]])
    assert spearman(a, a**3).tolist() == [1.0, 1.0] and spearman(a, -a).tolist() == [-1.0, -1.0]
    assert spearman(a, torch.ones_like(a)).isnan().all()  # a constant map has no ranking
    model = make_classifier("vit")
    with pytest.raises(ValueError, match="unknown mode 'layerwise'"):
        model_randomisation(image_edges, model, images, mode="layerwise")
    with pytest.raises(ValueError, match="generator must be a CPU torch.Generator"):
        model_randomisation(image_edges, model, images, generator=0)
    with pytest.raises(ValueError, match="only='decoder.' matches no parameter name of ViTForImageClassification"):
        model_randomisation(image_edges, model, images, only="decoder.")
    with pytest.raises(ValueError, match="attributions hold 2 maps but there are 4 images"):
        model_randomisation(lambda c: lambda x, t: torch.zeros(2, IMAGE_SIZE, IMAGE_SIZE), model, images)


def test_an_explainers_classifier_is_randomised_and_its_decoder_kept(images):
    from aha import AHAExplainer

    explainer = AHAExplainer.from_classifier(make_classifier("vit", head_scale=20)).eval()
    seen = []

    def make_attributor(randomised):
        seen.append(randomised)
        return get_attributor("aha", randomised.classifier, explainer=randomised)

    result = model_randomisation(make_attributor, explainer, images, only="classifier.", mode="cascading")
    assert all(stage.startswith("classifier.") for stage in result.stages) and torch.isfinite(result.similarity).all()
    original, randomised = seen[0].state_dict(), seen[-1].state_dict()
    changed = {name for name in original if not torch.equal(original[name], randomised[name])}
    assert changed and all(name.startswith("classifier.") for name in changed)  # the decoder is the trained one
