"""The objective's mask builder: cell masks to smoothed pixel masks as two matrix products."""

import math

import pytest
import torch
import torch.nn.functional as F

from aha.ranking.perturbation import cell_masks_to_pixels, gaussian_blur, gaussian_kernel1d, smoothing_matrix


def convolved(images: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    """The direct construction of a separable Gaussian blur: reflect padding, then two depthwise convolutions."""
    if sigma <= 0 or kernel_size == 1:
        return images
    channels, radius = images.shape[1], kernel_size // 2
    kernel = gaussian_kernel1d(sigma, kernel_size, dtype=images.dtype)
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def upsample_then_smooth(cell_masks: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """The direct construction: nearest upsampling, then a separable Gaussian with reflect padding."""
    upsampled = F.interpolate(cell_masks.unsqueeze(1), size=size, mode="nearest")
    kernel_size = min(2 * int(round(2 * sigma)) + 1, 2 * min(size) - 3)
    return convolved(upsampled, sigma, kernel_size - 1 + kernel_size % 2).squeeze(1)


@pytest.mark.parametrize(
    "shape, sigma, kernel_size",
    [
        ((2, 3, 64, 48), 1.5, None),
        ((1, 3, 32, 32), 37 * 32 / 224, 5),
        ((4, 1, 17, 9), 2.0, 7),
        ((1, 2, 5, 40), 3.0, None),
    ],
)
def test_gaussian_blur_equals_the_depthwise_convolution(shape, sigma, kernel_size):
    """Two matrix products give the padded depthwise convolution's values, the kernel clipped to the smaller side."""
    images = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected_size = min(kernel_size or 2 * math.ceil(3 * sigma) + 1, 2 * min(shape[-2:]) - 3)
    expected = convolved(images, sigma, expected_size - 1 + expected_size % 2)
    torch.testing.assert_close(gaussian_blur(images, sigma, kernel_size), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "grid, size, sigma",
    [
        (7, (32, 32), 1.0),
        (16, (64, 64), 1.0),
        (5, (64, 64), 2.5),
        (28, (224, 224), 1.0),
        (3, (8, 8), 1.0),
        (4, (32, 32), 0.0),
    ],
)
def test_matrix_products_equal_upsampling_then_smoothing(grid, size, sigma):
    cells = torch.rand(6, 2, grid, grid, dtype=torch.float64, generator=torch.Generator().manual_seed(grid))
    expected = upsample_then_smooth(cells.flatten(0, 1), size, sigma).view(6, 2, *size)
    torch.testing.assert_close(cell_masks_to_pixels(cells, size, sigma), expected, rtol=0, atol=1e-6)


def test_non_square_images_and_gradients():
    cells = torch.rand(3, 6, 6, dtype=torch.float64, requires_grad=True)
    masks = cell_masks_to_pixels(cells, (40, 24), 1.0)
    assert masks.shape == (3, 40, 24)
    # the same linear map as upsample-then-smooth, hence the same gradient for any upstream gradient
    weights = torch.randn(3, 40, 24, dtype=torch.float64)
    (grad,) = torch.autograd.grad((masks * weights).sum(), cells)
    direct = cells.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((upsample_then_smooth(direct, (40, 24), 1.0) * weights).sum(), direct)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-10)
    assert torch.autograd.gradcheck(
        lambda c: cell_masks_to_pixels(c, (12, 10), 1.0), (cells[:1, :3, :3].detach().requires_grad_(),)
    )


def test_smoothing_keeps_constants_and_mass_inside():
    matrix = smoothing_matrix(20, 1.5, dtype=torch.float64)
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(20, dtype=torch.float64))  # a constant stays constant
    assert (matrix >= 0).all() and torch.equal(smoothing_matrix(9, 0.0), torch.eye(9))


# --- the engine and the AUC: one implementation each, checked against plain loops ---------------------------


def test_the_engine_scores_every_perturbed_image_as_a_plain_loop_does(vit, images):
    from aha.ranking.perturbation import perturbation_scores
    from aha.ranking.scores import class_scores

    masks = torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(0))
    classes = torch.arange(24) % 5

    def images_at(chunk):  # index = mask * 4 + image
        index = torch.arange(chunk.start, chunk.stop)
        return images[index % 4] + masks[index // 4, None] * (0.5 - images[index % 4])

    expected = []
    with torch.no_grad():
        for index in range(24):
            logits = vit(
                pixel_values=images[index % 4 : index % 4 + 1] * (1 - masks[index // 4]) + 0.5 * masks[index // 4]
            ).logits
            expected.append(class_scores(logits, classes[index : index + 1], "probability"))
        for chunk_size in (1, 5, 24, 100):
            scores = perturbation_scores(vit, 24, images_at, classes, "probability", chunk_size)
            torch.testing.assert_close(scores, torch.cat(expected), rtol=0, atol=1e-6)


def test_checkpointed_chunks_give_the_same_gradients(vit, images):
    from aha.ranking.perturbation import perturbation_scores

    weights = torch.rand(8, 1, 1, 1, requires_grad=True)
    classes = torch.arange(8) % 5

    def gradient(checkpoint):
        scores = perturbation_scores(
            vit, 8, lambda c: images.repeat(2, 1, 1, 1)[c] * weights[c], classes, "logit", 3, checkpoint=checkpoint
        )
        return torch.autograd.grad(scores.sum(), weights)[0]

    torch.testing.assert_close(gradient(True), gradient(False), rtol=0, atol=1e-6)


def test_one_trapezoid_auc_for_even_and_given_fractions():
    from aha.ranking.perturbation import trapezoid_auc

    curves = torch.rand(5, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xs = torch.linspace(0, 1, 9, dtype=torch.float64)
    plain = [sum((c[i] + c[i + 1]) / 2 * (xs[i + 1] - xs[i]) for i in range(8)) for c in curves]
    torch.testing.assert_close(trapezoid_auc(curves), torch.stack(plain), rtol=0, atol=1e-12)
    torch.testing.assert_close(trapezoid_auc(curves, xs), torch.stack(plain), rtol=0, atol=1e-12)
    uneven = torch.tensor([0.0, 0.1, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0], dtype=torch.float64)
    plain = [sum((c[i] + c[i + 1]) / 2 * (uneven[i + 1] - uneven[i]) for i in range(8)) for c in curves]
    torch.testing.assert_close(trapezoid_auc(curves, uneven), torch.stack(plain), rtol=0, atol=1e-12)


def test_normalisation_comes_one_way_for_every_entry_point():
    import transformers as T

    from aha.ranking.perturbation import resolve_normalisation

    processor = T.ViTImageProcessorPil(image_mean=[0.1, 0.2, 0.3], image_std=[0.5, 0.6, 0.7])
    assert resolve_normalisation(processor) == ([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])
    assert resolve_normalisation(image_mean=[0.1] * 3, image_std=[0.5] * 3) == ([0.1] * 3, [0.5] * 3)
    assert resolve_normalisation() is None
    unnormalised = T.ViTImageProcessorPil(do_normalize=False)
    assert resolve_normalisation(unnormalised, channels=3) == ([0.0] * 3, [1.0] * 3)
    with pytest.raises(ValueError, match="either image_processor or image_mean/image_std, not both"):
        resolve_normalisation(processor, image_mean=[0.1] * 3)
    with pytest.raises(ValueError, match="pass both image_mean and image_std"):
        resolve_normalisation(image_mean=[0.1] * 3)
    with pytest.raises(ValueError, match=r"image_std\[2\] must be a finite number > 0, got 0.0"):
        resolve_normalisation(image_mean=[0.1] * 3, image_std=[0.5, 0.5, 0.0])
