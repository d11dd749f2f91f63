"""AHA and Grad-CAM on classifiers whose hidden states are feature maps (B, C, h, w): ResNet, ConvNeXt v1/v2, RegNet,
EfficientNet, MobileNetV2, MobileViT (tiny random configs, offline)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers as T
from conftest import CONVOLUTIONAL_CLASSIFIERS, IMAGE_SIZE, NUM_LABELS, make_classifier
from PIL import Image
from training_helpers import image_dataset, processor, train_argv
from transformers import AutoModel, pipeline

from aha import AHAConfig, AHAExplainer
from aha.baselines import get_attributor
from aha.imaging.image_geometry import processed_region, to_original_size
from aha.modeling.decoder_cost import classifier_cost, decoder_cost, guide_cost
from aha.training import build_parser, train


FAMILIES = sorted(CONVOLUTIONAL_CLASSIFIERS)
LABELS = torch.tensor([0, 1, 2, 3])


@pytest.fixture(scope="module")
def explainers():
    """One explainer per family, around a classifier with a sharpened head (so perturbations move it)."""
    return {name: AHAExplainer.from_classifier(make_classifier(name, head_scale=20)) for name in FAMILIES}


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_loss_and_gradients_reach_the_decoder_only(explainers, name, images):
    explainer = explainers[name].train()
    assert not explainer.classifier.training
    features = explainer._features(images)[1]
    assert [f.shape[1] for f in features] == [explainer.feature_spec.hidden_sizes[i] for i in explainer.feature_layers]
    assert all(f.ndim == 4 for f in features) and len({f.shape[-1] for f in features}) == len(
        features
    )  # one grid per depth
    out = explainer(images)
    assert out.attributions.shape == (4, IMAGE_SIZE, IMAGE_SIZE) and out.logits.shape == (4, NUM_LABELS)
    torch.testing.assert_close(out.logits, explainer.classifier(pixel_values=images).logits)
    explainer.zero_grad()
    loss = explainer(images, labels=LABELS, tau=1.0, generator=torch.Generator().manual_seed(0)).loss
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for param_name, param in explainer.decoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name
    assert all(not p.requires_grad and p.grad is None for p in explainer.classifier.parameters())
    explainer.eval()


@pytest.mark.parametrize("name", FAMILIES)
def test_refinement_lowers_the_objective(explainers, name, images):
    explainer = explainers[name]
    maps = explainer.explain(images)
    target = explainer(images).target
    refined = explainer.explain(
        images, refine_steps=5, refine_lr=0.03
    )  # small steps: the claim is descent (5 at 0.1 overshoot on some tiny random models)
    assert refined.shape == maps.shape and torch.isfinite(refined).all()
    with torch.no_grad():
        before = sum(explainer.refinement_objective(images, maps, target, step) for step in (0, 1))  # both references
        after = sum(
            explainer.refinement_objective(images, refined, target, step) for step in (0, 1)
        )  # both references
    assert after.mean() < before.mean(), (before, after)


@pytest.mark.parametrize("name", FAMILIES)
def test_save_and_load_reproduce_maps_bit_for_bit(explainers, name, images, tmp_path):
    explainer = explainers[name]
    expected = explainer.explain(images)
    explainer.save_pretrained(tmp_path)
    for loader in (AHAExplainer, AutoModel):
        reloaded = loader.from_pretrained(tmp_path)
        assert type(reloaded.classifier) is type(explainer.classifier)
        assert torch.equal(reloaded.explain(images), expected)


@pytest.mark.parametrize("name", FAMILIES)
def test_the_pipeline_runs_from_a_saved_folder(name, tmp_path):
    processor = T.ViTImageProcessorPil(
        size={"height": 48, "width": 40}
    )  # not the configured 32 px: CNNs take any size
    AHAExplainer.from_classifier(make_classifier(name, head_scale=20), image_processor=processor).save_pretrained(
        tmp_path
    )
    pipe = pipeline("image-attribution", model=str(tmp_path), device="cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    result = pipe(image, target=2)
    assert result["attribution"].shape == (30, 50) and result["target"] == 2
    pixel_values = pipe.image_processor(images=image, return_tensors="pt").pixel_values
    expected = to_original_size(pipe.model.explain(pixel_values, 2)[0], processed_region(pipe.image_processor, 30, 50))
    np.testing.assert_allclose(result["attribution"], expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet", "efficientnet"])
def test_classifier_checkpointing_works_without_gradient_checkpointing_support(name, images):
    """The explainer checkpoints whole classifier forwards itself (torch.utils.checkpoint per chunk of perturbed
    images): it needs nothing of the classifier, so families whose `supports_gradient_checkpointing` is False (their
    own `gradient_checkpointing_enable` raises) are checkpointed too, with the same gradients."""
    explainer = AHAExplainer.from_classifier(make_classifier(name, head_scale=20), perturbation_batch_size=16).train()
    assert not explainer.classifier.supports_gradient_checkpointing
    calls = []
    explainer.classifier.register_forward_hook(lambda *_: calls.append(1))

    def decoder_gradients():
        calls.clear()
        explainer.zero_grad()
        explainer(images, labels=LABELS, tau=1.0, generator=torch.Generator().manual_seed(0)).loss.backward()
        return [p.grad.clone() for p in explainer.decoder.parameters()], len(calls)

    plain, plain_calls = decoder_gradients()
    explainer.activation_checkpointing_enable()
    checkpointed, checkpointed_calls = decoder_gradients()
    assert checkpointed_calls - plain_calls == -(-4 * 2 * (explainer.config.num_fractions - 2) // 16)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


PUBLISHED = {  # the config.json fields of microsoft/resnet-50, facebook/convnext-tiny-224, google/mobilenet_v2_1.0_224
    "resnet-50": T.ResNetConfig(
        layer_type="bottleneck",
        depths=[3, 4, 6, 3],
        hidden_sizes=[256, 512, 1024, 2048],
        num_labels=1000,
        architectures=["ResNetForImageClassification"],
    ),
    "convnext-t": T.ConvNextConfig(num_labels=1000, architectures=["ConvNextForImageClassification"]),
    "mobilenet-v2": T.MobileNetV2Config(num_labels=1000, architectures=["MobileNetV2ForImageClassification"]),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_default_depths_and_decoder_cost_at_published_sizes(name):
    """The rule of `BackboneSpec.default_feature_layers`: the deepest map of each of the 3 coarsest strides, read from
    shapes on the meta device (nothing allocated); the decoder's grid (the middle one) has stride 16, the `patch_size`
    that sets training grids as a ViT-B/16's patches do; with 4, the stride-4 map comes in. The default decoder costs under 8% of the classifier in
    FLOPs and parameters (counted, as benchmarks/decoder_flops.py does), but for its guide's fixed per-pixel blur, as
    in test_decoder_cost (two dense 224 x 224 matrix products: 1.5-1.7% of ConvNeXt-T's and ResNet-50's FLOPs, 23% of
    MobileNetV2's)."""
    with torch.device("meta"):
        explainer = AHAExplainer(AHAConfig(classifier_config=PUBLISHED[name]))
    spec, layers = explainer.feature_spec, explainer.feature_layers
    assert [spec.strides[i] for i in layers] == [8, 16, 32] and spec.patch_size == 16
    assert [spec.strides[i] for i in spec.default_feature_layers(4)] == [4, 8, 16, 32]
    assert all(spec.strides[i] != spec.strides[i + 1] for i in layers if i + 1 < spec.num_layers)  # deepest of each
    assert spec.image_size == (224, 224) and spec.feature_maps == "hidden_states"
    decoder, classifier = decoder_cost(explainer), classifier_cost(explainer)
    flops = (decoder.flops - guide_cost(explainer)) / classifier.flops
    parameters = decoder.parameters / classifier.parameters
    assert flops < 0.08 and parameters < 0.08, (flops, parameters)


@pytest.mark.parametrize("name", FAMILIES)
def test_gradcam_reads_the_last_stage(name):
    classifier = make_classifier(name, head_scale=20)
    gradcam = get_attributor("gradcam", classifier)
    assert gradcam.target_layer == "hidden_states[-1]" and gradcam.module is None
    # 64 px: the last stage of MobileNetV2 and MobileViT (stride 32) is a single cell at the tests' 32 px
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    maps = gradcam(images)  # the predicted classes (another class's evidence may be negative everywhere: relu -> 0)
    assert maps.shape == (4, 64, 64) and maps.dtype == torch.float32 and torch.isfinite(maps).all()
    assert (maps.flatten(1).std(1) > 0).all()
    odd = torch.randn(2, 3, 45, 37, generator=torch.Generator().manual_seed(0))  # any size, the map at the image's
    assert gradcam(odd).shape == (2, 45, 37)


@pytest.mark.parametrize(
    "name, stage",
    [("resnet", lambda m: m.resnet.encoder.stages[-1]), ("convnext", lambda m: m.convnext.encoder.stages[-1])],
)
def test_gradcam_matches_the_hook_recipe_of_pytorch_grad_cam(name, stage, images):
    """pytorch-grad-cam's GradCAM on a CNN: activations and gradients of the target layer (here the last stage) by
    hooks, weights = spatial mean of the gradients, relu of the weighted sum, bilinear resize to the input."""
    classifier = make_classifier(name, head_scale=20)
    saved = {}
    layer = stage(classifier)
    layer.register_forward_hook(lambda module, inputs, output: saved.update(activations=output))
    logits = classifier(pixel_values=images).logits
    target = logits.argmax(-1)
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), saved["activations"])
    cam = (saved["activations"] * grads.mean((2, 3), keepdim=True)).sum(1).clamp(min=0)
    expected = F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(get_attributor("gradcam", classifier)(images), expected.detach())


def test_a_classifier_without_spatial_hidden_states_is_refused_by_name():
    levit = T.LevitForImageClassification(
        T.LevitConfig(
            image_size=32,
            patch_size=16,
            hidden_sizes=[16, 24, 32],
            num_attention_heads=[1, 2, 2],
            depths=[1, 1, 1],
            key_dim=[8, 8, 8],
            num_labels=NUM_LABELS,
        )
    )
    with pytest.raises(
        ValueError,
        match=r"LevitForImageClassification \(model_type='levit'\).*feature maps \(B, C, h, w\).*"
        r"returns hidden_states of shapes \[\(1, 4, 16\)",
    ):
        AHAExplainer.from_classifier(levit)
    with pytest.raises(ValueError, match=r"gradcam: LevitForImageClassification.*random, centre"):
        get_attributor("gradcam", levit)


def test_any_image_size_down_to_the_deepest_stride(explainers):
    explainer = explainers["mobilenet_v2"]  # strides 4 .. 32
    assert explainer.explain(torch.randn(1, 3, 40, 72)).shape == (1, 40, 72)
    with pytest.raises(
        ValueError, match=r"mobilenet_v2 needs image sides of at least its deepest stride, 32 px, got 16x64"
    ):
        explainer.explain(torch.randn(1, 3, 16, 64))


def test_aha_train_on_a_resnet_with_checkpointing(tmp_path):
    """The training loop as users run it, with its default --gradient_checkpointing, on a classifier whose own
    gradient_checkpointing_enable raises."""
    args = build_parser().parse_args(train_argv(tmp_path, "--max_train_steps", 2, "--shuffle_buffer_size", 0))
    assert args[2].gradient_checkpointing
    trained = train(
        *args,
        classifier=make_classifier("resnet", head_scale=30),
        image_processor=processor(),
        splits={"train": image_dataset(8).remove_columns("id")},
    )
    assert trained.gradient_checkpointing
    pixel_values = processor()(list(image_dataset(4, seed=1)["image"]), return_tensors="pt").pixel_values
    assert torch.equal(
        AHAExplainer.from_pretrained(tmp_path).explain(pixel_values), trained.eval().explain(pixel_values)
    )
