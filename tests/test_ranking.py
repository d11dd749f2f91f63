import pytest
import torch

from aha.ranking import (
    gumbel_sinkhorn,
    hard_order,
    hard_topk_membership,
    normalize_scores,
    soft_topk_membership,
)


FRACTIONS = torch.linspace(0, 1, 16)


def _scores(kind: str, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(4, n, generator=g)
    return {"gaussian": base, "heavy_tailed": base.exp() ** 3}[kind]


@pytest.mark.parametrize("tau, noise", [(1.0, True), (1.0, False), (0.3, False)])
def test_sinkhorn_is_doubly_stochastic(tau, noise):
    p = gumbel_sinkhorn(_scores("gaussian", 49), tau=tau, n_iters=100, noise=noise)
    assert (p.sum(dim=1) - 1).abs().max() < 1e-3
    assert (p.sum(dim=2) - 1).abs().max() < 1e-3
    assert (p >= 0).all()


def test_sinkhorn_without_noise_at_low_tau_recovers_the_hard_sort():
    scores = _scores("gaussian", 25)
    p = gumbel_sinkhorn(scores, tau=0.01, n_iters=300, noise=False)
    assert torch.equal(p.argmax(dim=2), hard_order(scores))


@pytest.mark.parametrize("kind", ["gaussian", "heavy_tailed"])
def test_soft_topk_membership_approaches_hard_as_tau_falls(kind):
    scores = _scores(kind, 14 * 14)
    hard = hard_topk_membership(scores, FRACTIONS)
    errors = []
    for tau in [3.0, 1.0, 0.3]:
        soft = soft_topk_membership(gumbel_sinkhorn(scores, tau=tau, noise=False), FRACTIONS)
        errors.append((soft - hard).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    # at the final training temperature, soft membership tracks the hard one closely
    # (min-max normalisation gave 0.28 on heavy-tailed scores at this size)
    assert errors[2] < 0.03


def test_topk_membership_sums_to_k():
    scores = _scores("gaussian", 49)
    p = gumbel_sinkhorn(scores, tau=0.5, n_iters=100, noise=False)
    fractions = torch.tensor([0.0, 0.1, 0.37, 0.5, 1.0])
    k = fractions * 49
    soft = soft_topk_membership(p, fractions)
    hard = hard_topk_membership(scores, fractions)
    torch.testing.assert_close(soft.sum(-1), k.expand(4, -1), atol=1e-3, rtol=0)
    torch.testing.assert_close(hard.sum(-1), k.expand(4, -1), atol=1e-5, rtol=0)
    assert ((soft >= -1e-6) & (soft <= 1 + 1e-6)).all()


def test_hard_membership_marks_the_top_items():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    member = hard_topk_membership(scores, torch.tensor([0.5]))
    assert member.tolist() == [[[0.0, 1.0, 1.0, 0.0]]]


def test_hard_order_breaks_ties_by_seed():
    scores = torch.zeros(1, 50)
    assert torch.equal(hard_order(scores, seed=3), hard_order(scores, seed=3))
    assert not torch.equal(hard_order(scores, seed=3), hard_order(scores, seed=4))
    assert sorted(hard_order(scores, seed=3)[0].tolist()) == list(range(50))


def test_normalisation_preserves_order_and_spreads_scores():
    scores = _scores("gaussian", 100).exp()  # log-normal: skewed, as raw maps often are
    u = normalize_scores(scores)
    assert torch.equal(u.argsort(dim=1), scores.argsort(dim=1))
    # close to uniform on (0, 1) whatever the input distribution
    expected = (torch.arange(100) + 0.5) / 100
    assert (u.sort(dim=1).values - expected).abs().max() < 0.02
