"""The objective's mask builder: cell masks to smoothed pixel masks as two matrix products."""

import pytest
import torch
import torch.nn.functional as F

from aha.perturbation import cell_masks_to_pixels, gaussian_blur, smoothing_matrix


def upsample_then_smooth(cell_masks: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """The direct construction: nearest upsampling, then a separable Gaussian with reflect padding."""
    upsampled = F.interpolate(cell_masks.unsqueeze(1), size=size, mode="nearest")
    return gaussian_blur(upsampled, sigma=sigma, kernel_size=2 * int(round(2 * sigma)) + 1).squeeze(1)


@pytest.mark.parametrize("grid, size, sigma", [(7, (32, 32), 1.0), (16, (64, 64), 1.0), (5, (64, 64), 2.5),
                                                 (28, (224, 224), 1.0), (3, (8, 8), 1.0), (4, (32, 32), 0.0)])
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
    assert torch.autograd.gradcheck(lambda c: cell_masks_to_pixels(c, (12, 10), 1.0), (cells[:1, :3, :3].detach().requires_grad_(),))


def test_smoothing_keeps_constants_and_mass_inside():
    matrix = smoothing_matrix(20, 1.5, dtype=torch.float64)
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(20, dtype=torch.float64))  # a constant stays constant
    assert (matrix >= 0).all() and torch.equal(smoothing_matrix(9, 0.0), torch.eye(9))
