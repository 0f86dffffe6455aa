"""harness.losses on hand-computed cases: the GAN losses, identity cross-entropy with label
smoothing, the association MSE, the collapse guards, and the critic's standardisation."""

from __future__ import annotations

import math

import pytest
import torch

from harness.losses import (
    association_mse,
    covariance_penalty,
    gan_d_loss,
    gan_g_loss,
    identity_ce,
    standardise,
    variance_hinge,
)


def test_standardise_uses_the_reference_statistics_and_passes_no_gradient_through_them():
    reference = torch.tensor([[1.0, 10.0], [3.0, 10.0]], requires_grad=True)
    x = torch.tensor([[2.0, 10.0], [5.0, 11.0]], requires_grad=True)
    y = standardise(x, reference)
    assert torch.allclose(
        y, torch.tensor([[0.0, 0.0], [3.0, 1e5]]), rtol=1e-4
    )  # std 0: 1 / sqrt(eps)
    y[:, 0].sum().backward()
    assert reference.grad is None and torch.equal(x.grad[:, 0], torch.ones(2))


def test_gan_losses_at_zero_logits():
    zero = torch.zeros(4)
    assert gan_d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert gan_g_loss(zero).item() == pytest.approx(math.log(2))
    assert gan_g_loss(torch.full((4,), 20.0)).item() < 1e-8


def test_identity_ce_matches_hand_value_with_smoothing():
    logits = torch.tensor([[0.0, 0.0]])
    assert identity_ce(logits, torch.tensor([0]), 0.1).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[2.0, 0.0]])
    logp = torch.log_softmax(logits, dim=1)[0]
    expected = -(0.95 * logp[0] + 0.05 * logp[1])
    assert identity_ce(logits, torch.tensor([0]), 0.1).item() == pytest.approx(float(expected))


def test_association_mse_is_mean_over_batch_and_dims_and_checks_shapes():
    a, b = torch.zeros(2, 4), torch.ones(2, 4)
    b[0, 0] = 3.0  # squared errors: 9 + 7 * 1 = 16 over 8 elements
    assert association_mse(a, b).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="equal shape"):
        association_mse(torch.zeros(2, 4), torch.zeros(2, 5))


def test_collapse_guard_terms_on_hand_cases():
    assert variance_hinge(torch.zeros(4, 3)).item() == pytest.approx(1 - math.sqrt(1e-4))
    assert variance_hinge(torch.tensor([[3.0], [-3.0]])).item() == 0.0
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # cov = [[2, 2], [2, 2]]: off-diagonal 2 * 4 / d
    assert covariance_penalty(z).item() == pytest.approx(4.0)
