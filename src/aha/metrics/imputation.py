"""Noisy linear imputation (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution
Methods", ICML 2022): the perturbation of ROAD.

Every removed pixel takes the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12 for
the 4 diagonal ones; neighbours outside the image are dropped and the weights of the others kept), kept pixels
fixed: a discrete Laplace equation on the removed pixels, solved per image and channel, then Gaussian noise
of std ``noise`` is added to the removed pixels. Rong et al. and Quantus solve the sparse system with a direct
solver one image at a time; here it is solved for a whole batch at once by conjugate gradients with the
8-neighbour stencil as a convolution (Jacobi preconditioner), to a relative residual of ``tolerance``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


#: the neighbour weights of Rong et al.: 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones
NEIGHBOUR_WEIGHTS = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))


def linear_imputation(
    images: torch.Tensor, masks: torch.Tensor, tolerance: float = 1e-6, max_iterations: int | None = None
) -> torch.Tensor:
    """The removed pixels of each image replaced by the solution of the neighbour-mean equations.

    Args:
        images: (N, C, H, W) float images.
        masks: (N, H, W) bool, True where the pixel is removed (imputed); each image keeps at least one pixel.
        tolerance: relative residual (per image and channel) at which conjugate gradients stop.
        max_iterations: cap on the iterations; default ``4 * (H + W)``, far more than the stencil needs.
    Returns:
        (N, C, H, W) in float32 (float64 for float64 images): kept pixels unchanged, removed pixels imputed.
    """
    if masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"masks must be (N, H, W) = {(images.shape[0], *images.shape[2:])}, got {tuple(masks.shape)}")
    if masks.flatten(1).all(dim=1).any():
        raise ValueError("linear imputation needs at least one kept pixel per image (fractions must be < 1)")
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    x = images.to(dtype)
    batch, channels, height, width = x.shape
    flat = x.reshape(batch * channels, 1, height, width)
    removed = masks.to(dtype).repeat_interleave(channels, dim=0).unsqueeze(1)
    kept = 1 - removed

    def neighbours(values: torch.Tensor) -> torch.Tensor:
        """sum of w_ij * values_j over in-image neighbours: the stencil is (outer([1, 2, 1], [1, 2, 1]) - 4 at
        the centre) / 12, applied as two zero-padded [1, 2, 1] passes (a 1-channel conv2d is ~8x slower on CPU)."""
        rows = F.pad(values, (1, 1))
        rows = rows[..., :-2] + 2 * values + rows[..., 2:]
        columns = F.pad(rows, (0, 0, 1, 1))
        return (columns[..., :-2, :] + 2 * rows + columns[..., 2:, :] - 4 * values) / 12

    degree = neighbours(torch.ones_like(flat[:1]))  # the in-image weight of each pixel

    def apply(y: torch.Tensor) -> torch.Tensor:  # A y on the removed pixels, (D - W) restricted to them
        return removed * (degree * y - neighbours(removed * y))

    rhs = removed * neighbours(kept * flat)
    solution = removed * flat * 0
    residual = rhs.clone()
    preconditioned = residual / degree
    direction = preconditioned.clone()
    rho = (residual * preconditioned).sum(dim=(1, 2, 3), keepdim=True)
    threshold = tolerance * rhs.flatten(1).norm(dim=1).clamp_min(torch.finfo(dtype).tiny)
    for _ in range(max_iterations or 4 * (height + width)):
        if (residual.flatten(1).norm(dim=1) <= threshold).all():
            break
        product = apply(direction)
        step = rho / (direction * product).sum(dim=(1, 2, 3), keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        solution = solution + step * direction
        residual = residual - step * product
        preconditioned = residual / degree
        rho_next = (residual * preconditioned).sum(dim=(1, 2, 3), keepdim=True)
        direction = preconditioned + rho_next / rho.clamp_min(torch.finfo(dtype).tiny) * direction
        rho = rho_next
    return (kept * flat + removed * solution).view(batch, channels, height, width)


def noisy_linear_imputation(
    images: torch.Tensor, masks: torch.Tensor, noise: torch.Tensor | None = None, tolerance: float = 1e-6
) -> torch.Tensor:
    """:func:`linear_imputation` plus ``noise`` on the removed pixels.

    Args:
        images: (N, C, H, W) float images.
        masks: (N, H, W) bool, True where removed.
        noise: (N, C, H, W) values added to the removed pixels (e.g. ``std * torch.randn(..., generator=g)``);
            None adds nothing.
        tolerance: see :func:`linear_imputation`.
    Returns:
        (N, C, H, W) in the images' dtype.
    """
    imputed = linear_imputation(images, masks, tolerance)
    if noise is not None:
        imputed = imputed + masks.unsqueeze(1).to(imputed.dtype) * noise.to(imputed.dtype)
    return imputed.to(images.dtype)
