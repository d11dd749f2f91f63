"""Perturbation primitives shared by the training objective and the evaluation metrics.

All images here are ``pixel_values`` in the classifier's *normalised* space, shape (B, C, H, W),
float. A reference ("baseline") image is what a pixel becomes once it is deleted:

- ``"mean"``: the normalisation mean colour, i.e. zeros in normalised space (RISE and the AHA reference);
- ``"black"``: 0 in [0, 1] pixel space, i.e. ``-mean / std`` in normalised space (needs mean/std);
- ``"blur"``: a strong Gaussian blur of the image itself (kernel 37 px, sigma 37 px at 224 px, scaled
  linearly with the image side).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

REFERENCES = ("mean", "black", "blur")


def gaussian_kernel1d(sigma: float, kernel_size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length ``kernel_size`` and std ``sigma`` (pixels), shape (kernel_size,)."""
    x = torch.arange(kernel_size, device=device, dtype=dtype) - (kernel_size - 1) / 2
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding.

    Args:
        images: (N, C, H, W) float.
        sigma: standard deviation in pixels.
        kernel_size: odd kernel length in pixels; clipped to the largest odd size reflect padding allows.
    Returns:
        (N, C, H, W), same dtype and device.
    """
    height, width = images.shape[-2:]
    limit = 2 * (min(height, width) - 1) - 1  # reflect padding needs radius < side
    kernel_size = max(1, min(kernel_size, limit))
    kernel_size -= 1 - kernel_size % 2
    if kernel_size == 1:
        return images
    channels = images.shape[1]
    kernel = gaussian_kernel1d(sigma, kernel_size, device=images.device, dtype=images.dtype)
    radius = kernel_size // 2
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return out


def reference_blur(images: torch.Tensor) -> torch.Tensor:
    """The strong blur used as a reference: kernel 37 / sigma 37 at 224 px, scaled with the image side."""
    side = min(images.shape[-2:])
    sigma = 37.0 * side / 224.0
    kernel_size = int(round(sigma)) | 1
    return gaussian_blur(images, sigma=sigma, kernel_size=kernel_size)


def black_in_normalised_space(
    image_mean: Sequence[float], image_std: Sequence[float], like: torch.Tensor
) -> torch.Tensor:
    """The colour 0 of [0, 1] pixel space, expressed in normalised space: shape (1, C, 1, 1)."""
    mean = torch.as_tensor(image_mean, device=like.device, dtype=like.dtype)
    std = torch.as_tensor(image_std, device=like.device, dtype=like.dtype)
    if mean.numel() != like.shape[1] or std.numel() != like.shape[1]:
        raise ValueError(
            f"image_mean and image_std need one value per channel ({like.shape[1]}), "
            f"got {mean.numel()} and {std.numel()}"
        )
    return (-mean / std).view(1, -1, 1, 1)


def make_reference(
    pixel_values: torch.Tensor,
    kind: str,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> torch.Tensor:
    """The reference image that deleted pixels move towards.

    Args:
        pixel_values: (B, C, H, W) images in normalised space.
        kind: one of ``"mean"``, ``"black"``, ``"blur"`` (see the module docstring).
        image_mean, image_std: the processor's normalisation, needed for ``"black"`` only.
    Returns:
        (B, C, H, W) reference, in normalised space.
    """
    if kind == "mean":
        return torch.zeros_like(pixel_values)
    if kind == "black":
        if image_mean is None or image_std is None:
            raise ValueError('reference "black" needs image_mean and image_std (the processor normalisation)')
        return black_in_normalised_space(image_mean, image_std, pixel_values).expand_as(pixel_values).clone()
    if kind == "blur":
        return reference_blur(pixel_values)
    raise ValueError(f"unknown reference {kind!r}; expected one of {REFERENCES}")


def smoothing_matrix(size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Gaussian smoothing of a length-``size`` signal as a matrix: ``S @ x`` smooths ``x`` (size,) with std
    ``sigma`` pixels, a kernel of radius ``2 * sigma`` and reflect padding (the kernel is clipped to what
    reflect padding allows), shape (size, size). The identity when ``sigma`` is 0."""
    eye = torch.eye(size, device=device, dtype=dtype)
    kernel_size = 2 * int(round(2 * sigma)) + 1
    kernel_size = max(1, min(kernel_size, 2 * size - 3)) if size > 1 else 1
    kernel_size -= 1 - kernel_size % 2
    if sigma <= 0 or kernel_size == 1:
        return eye
    radius = kernel_size // 2
    kernel = gaussian_kernel1d(sigma, kernel_size, device=device, dtype=dtype)
    padded = F.pad(eye.unsqueeze(1), (radius, radius), mode="reflect")  # column j of S = smoothed e_j
    return F.conv1d(padded, kernel.view(1, 1, -1)).squeeze(1).T


def cell_to_pixel_matrix(grid: int, size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Nearest-neighbour upsampling from ``grid`` cells to ``size`` pixels followed by Gaussian smoothing
    (:func:`smoothing_matrix`), as one (size, grid) matrix."""
    nearest = F.interpolate(torch.eye(grid, device=device, dtype=dtype).unsqueeze(0), size=size, mode="nearest")
    return smoothing_matrix(size, sigma, device, dtype) @ nearest.squeeze(0).T


def cell_masks_to_pixels(cell_masks: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Cell masks (..., G, G) -> smoothed pixel masks (..., H, W): nearest upsampling then a Gaussian of std
    ``sigma`` pixels, done as two small matrix products ``A @ M @ B^T`` (both steps are separable and linear)."""
    grid = cell_masks.shape[-1]
    rows = cell_to_pixel_matrix(grid, size[0], sigma, cell_masks.device, cell_masks.dtype)
    columns = rows if size[1] == size[0] else cell_to_pixel_matrix(grid, size[1], sigma, cell_masks.device, cell_masks.dtype)
    return rows @ cell_masks @ columns.T


def blend(images: torch.Tensor, reference: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Move masked pixels towards the reference: ``images + masks * (reference - images)``.

    Args:
        images, reference: (..., C, H, W), broadcastable to each other.
        masks: (..., H, W) in [0, 1], broadcastable to the images' leading dims; 1 means fully replaced
            by the reference.
    Returns:
        (..., C, H, W).
    """
    return torch.lerp(images, reference, masks.unsqueeze(-3).to(images.dtype))
