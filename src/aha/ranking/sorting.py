"""Differentiable ranking: a Gumbel-Sinkhorn relaxation of sorting, and its hard counterpart.

Scores are per image over N items (cells of a G x G grid, or pixels), shape (B, N). Rank 0 is the
*most* important item. The soft permutation ``P`` has shape (B, N, N) with ``P[b, r, i]`` the
probability that item ``i`` sits at rank ``r``; it is (approximately) doubly stochastic.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ..validation import check_number


def normalize_scores(scores: torch.Tensor, bandwidth: float = 0.01) -> torch.Tensor:
    """Map each row of (B, N) scores to a smooth empirical CDF in (0, 1), the range of the anchors.

    ``u_i = mean_j sigmoid((z_i - z_j) / bandwidth)`` with ``z`` the scores centred on their median and
    scaled by their inter-quartile range (statistics taken without gradient). The result is
    order-preserving, differentiable and close to uniform whatever the score distribution, so every
    Sinkhorn anchor has scores near it. Min-max scaling does not do this: on heavy-tailed maps most
    scores bunch far from the high anchors, and 30 Sinkhorn iterations leave rank masses off by
    more than 1 (see tests/test_ranking.py).

    The gradient grows as 1 / scale. A map with more than half of its scores tied (a collapsing decoder) has an
    inter-quartile range of 0, and dividing by it sent gradients of 1e13 and more into training, where after
    clipping they drowned every other image's. Such rows are scaled by their mean absolute deviation from the
    median instead, and no scale goes below ``sqrt(eps) * (1 + |median|)`` (eps of the scores' dtype).
    """
    with torch.no_grad():
        quartiles = torch.quantile(
            scores, torch.tensor([0.25, 0.5, 0.75], device=scores.device, dtype=scores.dtype), dim=1
        )
        median = quartiles[1].unsqueeze(1)
        spread = (quartiles[2] - quartiles[0]).unsqueeze(1)
        floor = torch.finfo(scores.dtype).eps ** 0.5 * (1 + median.abs())
        deviation = (scores - median).abs().mean(dim=1, keepdim=True)
        scale = torch.where(spread >= floor, spread, torch.maximum(deviation, floor))
    z = (scores - median) / scale
    return torch.sigmoid((z.unsqueeze(2) - z.unsqueeze(1)) / bandwidth).mean(dim=2)


def sinkhorn_cost(scores: torch.Tensor) -> torch.Tensor:
    """Log-affinity of every rank for every item, (B, N) -> (B, N, N).

    ``log_alpha[b, r, i] = -N * (s_i - a_r)^2`` with anchors ``a = linspace(1, 0, N)`` and ``s`` the
    scores normalised by :func:`normalize_scores`. The factor N (= G^2) keeps the cost from being almost flat: anchors are
    only 1/N apart, so the plain squared distance barely separates neighbouring ranks at tau ~ 0.3.
    """
    n = scores.shape[1]
    anchors = torch.linspace(1.0, 0.0, n, device=scores.device, dtype=scores.dtype)
    s = normalize_scores(scores)
    return -n * (s.unsqueeze(1) - anchors.view(1, n, 1)) ** 2


def gumbel_sinkhorn(
    scores: torch.Tensor,
    tau: float = 1.0,
    n_iters: int = 30,
    noise: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Soft permutation matrices from scores.

    Args:
        scores: (B, N) item scores, higher = more important.
        tau: temperature (> 0); lower is closer to a hard permutation.
        n_iters: Sinkhorn iterations (each normalises rows, then columns; by scaling vectors after a first one in
            the log domain, all in the log domain for a map whose scalings would leave float32's range).
        noise: add Gumbel(0, 1) noise to the log-affinities (training); off for a deterministic relaxation.
        generator: optional RNG for the noise, on any device (the noise is drawn there, then moved to the scores').
    Returns:
        (B, N, N) with ``P[b, r, i]`` = soft probability that item i has rank r. Rows and columns sum to 1.
    """
    check_number("tau", tau, above=0)
    check_number("n_iters", n_iters, integer=True, minimum=1)
    device_type = scores.device.type
    # float32 throughout, also inside bf16/fp16 autocast (on devices that have autocast: not "meta")
    with torch.autocast(device_type, enabled=False) if torch.amp.is_autocast_available(device_type) else nullcontext():
        log_alpha = sinkhorn_cost(scores.float())
        if noise:
            # drawn where the generator lives (torch.rand needs both on one device), then moved to the scores
            device = generator.device if generator is not None else log_alpha.device
            uniform = torch.rand(log_alpha.shape, device=device, generator=generator).to(log_alpha.device)
            uniform = uniform.clamp(1e-10, 1 - 1e-7)
            log_alpha = log_alpha - torch.log(-torch.log(uniform))
        log_alpha = log_alpha / tau
        permutation, balanced = _sinkhorn_by_scaling(log_alpha, n_iters)
        if permutation.device.type != "meta" and not bool(balanced.all()):
            # rare (a map of tied scores): those maps in the log domain, the others redone without them in the graph
            kept, redone = balanced.nonzero().squeeze(1), (~balanced).nonzero().squeeze(1)
            permutation = torch.empty_like(permutation)
            if len(kept):
                permutation = permutation.index_put((kept,), _sinkhorn_by_scaling(log_alpha[kept], n_iters)[0])
            permutation = permutation.index_put((redone,), _sinkhorn_in_log_domain(log_alpha[redone], n_iters))
        return permutation.to(scores.dtype)


#: scaling vectors beyond [1 / SCALING_LIMIT, SCALING_LIMIT] fall back to the log domain (their gradients square them)
SCALING_LIMIT = 1e12


def _sinkhorn_by_scaling(log_alpha: torch.Tensor, n_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sinkhorn iterations on (B, N, N) log-affinities: (soft permutations, (B,) whether each map's scalings stayed
    within ``SCALING_LIMIT``; the others must be redone in the log domain).

    The first iteration runs in the log domain. Afterwards every column sums to 1 and every row holds an entry of at
    least 1 / N^2, and the other iterations rescale the rows and columns of K = exp(log_alpha) by vectors,
    u = 1 / (K v) and v = 1 / (K^T u): the log-domain iterations, at the cost of two matrix-vector products each
    instead of two log-sum-exps over all N^2 entries (forward and backward), which made the Sinkhorn most of a
    refinement step's time. When most scores are tied, balancing needs scalings beyond float32's range (1e25 seen):
    those maps are flagged.
    """
    kernel = _sinkhorn_in_log_domain(log_alpha, 1)  # (B, N, N)
    rows = torch.ones_like(kernel[:, :, :1])  # (B, N, 1)
    columns = torch.ones_like(kernel[:, :1, :])  # (B, 1, N)
    for _ in range(n_iters - 1):
        rows = 1 / torch.bmm(kernel, columns.transpose(1, 2))
        columns = 1 / torch.bmm(rows.transpose(1, 2), kernel)
    with torch.no_grad():
        scalings = torch.cat([rows.flatten(1), columns.flatten(1)], dim=1)
        balanced = ((scalings < SCALING_LIMIT) & (scalings > 1 / SCALING_LIMIT)).all(dim=1)  # NaN fails too
    return rows * kernel * columns, balanced


def _sinkhorn_in_log_domain(log_alpha: torch.Tensor, n_iters: int) -> torch.Tensor:
    """The textbook iterations, each two log-sum-exps over all entries: stable for any input."""
    for _ in range(n_iters):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=2, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=1, keepdim=True)
    return log_alpha.exp()


def _interpolate_counts(cumulative: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Rows of ``cumulative`` (B, N+1, N) at fractional counts ``fractions * N``, linearly interpolated.

    Returns (B, F, N).
    """
    n = cumulative.shape[2]
    k = fractions.to(cumulative.dtype) * n
    low = k.floor().long().clamp(0, n)
    high = k.ceil().long().clamp(0, n)
    weight = (k - low.to(k.dtype)).view(1, -1, 1)
    return torch.lerp(cumulative[:, low], cumulative[:, high], weight)


def soft_topk_membership(permutation: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Soft probability that each item is among the top ``k = p * N``, for each fraction p.

    Args:
        permutation: (B, N, N) soft permutation from :func:`gumbel_sinkhorn`.
        fractions: (F,) fractions in [0, 1]; a fractional k interpolates between floor(k) and ceil(k).
    Returns:
        (B, F, N) memberships in [0, 1]; each row sums to ``p * N``.
    """
    cumulative = torch.cumsum(permutation, dim=1)
    cumulative = torch.cat([torch.zeros_like(cumulative[:, :1]), cumulative], dim=1)
    return _interpolate_counts(cumulative, fractions)


def hard_order(scores: torch.Tensor, descending: bool = True, seed: int = 0) -> torch.Tensor:
    """Item indices sorted by score, with ties broken by a fixed random permutation.

    Args:
        scores: (B, N).
        descending: most important first when True.
        seed: seed of the tie-breaking permutation (the same for every image of the batch).
    Returns:
        (B, N) long tensor: ``order[b, r]`` is the item at rank r.
    """
    n = scores.shape[1]
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.randperm(n, generator=generator).to(scores.device)
    order = torch.argsort(scores[:, shuffle], dim=1, descending=descending, stable=True)
    return shuffle[order]


def hard_topk_membership(scores: torch.Tensor, fractions: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Hard counterpart of :func:`soft_topk_membership`: (B, N) scores -> (B, F, N) memberships.

    An item of rank r belongs to the top k = p * N with weight ``clamp(k - r, 0, 1)``: 1 below floor(k), 0
    from ceil(k) on, and the fractional part of k at rank floor(k), as in the soft version's interpolation.
    """
    b, n = scores.shape
    order = hard_order(scores, descending=True, seed=seed)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(n, device=scores.device).expand(b, n))
    k = fractions.to(device=scores.device, dtype=scores.dtype).view(1, -1, 1) * n
    return (k - ranks.unsqueeze(1).to(scores.dtype)).clamp(0, 1)
