"""The library's Grad-CAM against pytorch-grad-cam's recipe for vision transformers and for a CNN, reproduced
literally.

pytorch-grad-cam (github.com/jacobgil/pytorch-grad-cam) needs torchvision, which does not import beside this
torch build, so its steps are written out here from its source, each with the file it comes from:

- target layer: ``model.blocks[-1].norm1``, the first LayerNorm of the last block (usage_examples/vit_example.py
  and the README's "Vision Transformers" entry); in a Hugging Face ViT that is
  ``vit.layers[-1].layernorm_before``;
- ``reshape_transform``: drop the CLS token, fold the rest into the (h, w) grid, channels first
  (usage_examples/vit_example.py), applied to the activations and to the gradients
  (pytorch_grad_cam/activations_and_gradients.py);
- the target's score: the logit of the class (``ClassifierOutputTarget``, utils/model_targets.py), summed over
  the batch and back-propagated (base_cam.py, ``forward``);
- weights: the mean of the gradients over space (grad_cam.py, ``get_cam_weights``); the map
  ``sum_c w_c A_c`` (base_cam.py, ``get_cam_image``), then ``np.maximum(cam, 0)`` and ``scale_cam_image``:
  min-max scaling per image and ``cv2.resize`` (bilinear) to the input size (base_cam.py,
  ``compute_cam_per_layer``; utils/image.py).

For a CNN the recipe is the same without ``reshape_transform``, on ``model.layer4[-1]`` of a torchvision ResNet
(the README's "Choosing the target layer"): in a Hugging Face ResNet the last stage, ``resnet.encoder.stages[-1]``.

The min-max scaling is monotone, so the library's maps (not rescaled) are compared by Spearman rank correlation
per image.
"""

import numpy as np
import pytest
import torch
from conftest import IMAGE_SIZE, make_classifier

from aha.baselines import get_attributor
from aha.metrics.randomisation import spearman


cv2 = pytest.importorskip("cv2")  # opencv-python, installed with the quantus extra


def reshape_transform(tensor, height, width):
    """usage_examples/vit_example.py."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def scale_cam_image(cam, target_size=None):
    """pytorch_grad_cam/utils/image.py."""
    result = []
    for img in cam:
        img = img - np.min(img)
        img = img / (1e-7 + np.max(img))
        if target_size is not None:
            img = cv2.resize(np.float32(img), target_size)
        result.append(img)
    return np.float32(result)


def pytorch_grad_cam(model, target_layer, images, targets, grid=None):
    """GradCAM(model, [target_layer], reshape_transform)(images, [ClassifierOutputTarget(t) for t in targets]), with
    the ViT's ``reshape_transform`` to a ``grid`` x ``grid`` grid, or none (``grid=None``: a CNN's feature map)."""
    activations, gradients = [], []

    def transform(tensor):
        return tensor if grid is None else reshape_transform(tensor, grid, grid)

    def save_activation(module, input, output):  # activations_and_gradients.py
        activations.append(transform(output).cpu().detach())

        def store_grad(grad):
            gradients.insert(0, transform(grad).cpu().detach())

        output.register_hook(store_grad)

    handle = target_layer.register_forward_hook(save_activation)
    try:
        outputs = model(pixel_values=images).logits
        model.zero_grad()
        loss = sum(output[category] for category, output in zip(targets.tolist(), outputs))
        loss.backward(retain_graph=True)
    finally:
        handle.remove()
    layer_activations, layer_grads = activations[0].numpy(), gradients[0].numpy()
    weights = np.mean(layer_grads, axis=(2, 3))  # grad_cam.py
    cam = (weights[:, :, None, None] * layer_activations).sum(axis=1)  # base_cam.py get_cam_image
    cam = np.maximum(cam, 0)
    return scale_cam_image(cam, (images.shape[-1], images.shape[-2]))


@pytest.mark.parametrize("family", ["vit", "beit"])  # one CLS token, as vit_example.py's reshape assumes
def test_gradcam_matches_pytorch_grad_cam_on_a_tiny_vit(family, images):
    model = make_classifier(family, head_scale=20)
    with torch.no_grad():
        targets = model(pixel_values=images).logits.argmax(-1)
    encoder = getattr(model, model.config.model_type)
    reference = pytorch_grad_cam(model, encoder.layers[-1].layernorm_before, images, targets, IMAGE_SIZE // 8)
    ours = get_attributor("gradcam", model)(images, targets)
    correlation = spearman(ours.flatten(1), torch.from_numpy(reference).flatten(1))
    assert (correlation > 0.999).all(), correlation
    assert (reference.reshape(4, -1).std(1) > 0.05).all()  # the maps are not flat: the check is not vacuous


def test_gradcam_matches_pytorch_grad_cam_on_a_tiny_resnet():
    model = make_classifier("resnet", head_scale=20)
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # an 8 x 8 last feature map
    with torch.no_grad():
        targets = model(pixel_values=images).logits.argmax(-1)
    reference = pytorch_grad_cam(model, model.resnet.encoder.stages[-1], images, targets)
    ours = get_attributor("gradcam", model)(images, targets)
    correlation = spearman(ours.flatten(1), torch.from_numpy(reference).flatten(1))
    assert (correlation > 0.999).all(), correlation
    assert (reference.reshape(4, -1).std(1) > 0.05).all()  # the maps are not flat: the check is not vacuous


def test_the_previous_default_layer_differs_from_the_recipe(images):
    """The library's old target (the residual stream entering the last block, before its LayerNorm) is not
    pytorch-grad-cam's: what this test pins is that the two layers differ on a tiny ViT."""
    model = make_classifier("vit", head_scale=20)
    with torch.no_grad():
        targets = model(pixel_values=images).logits.argmax(-1)
    reference = pytorch_grad_cam(model, model.vit.layers[-1].layernorm_before, images, targets, IMAGE_SIZE // 8)
    residual = get_attributor("gradcam", model, target_layer="vit.layers.2")(images, targets)
    correlation = spearman(residual.flatten(1), torch.from_numpy(reference).flatten(1))
    assert (correlation < 0.99).any(), correlation
