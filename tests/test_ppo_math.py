"""PPO building blocks against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from prefloop.training.ppo_math import (
    AdaptiveKLController,
    compute_gae,
    masked_mean,
    masked_whiten,
    policy_loss,
    value_loss,
)


def test_gae_matches_a_hand_computation():
    # one row, 3 real tokens then padding; gamma 0.9, lambda 0.8
    rewards = torch.tensor([[1.0, 0.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 1.0, 1.5, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    g, lam = 0.9, 0.8
    d2 = 2.0 + g * 0.0 - 1.5                 # last real token: V_{t+1} = 0
    d1 = 0.0 + g * 1.5 - 1.0
    d0 = 1.0 + g * 1.0 - 0.5
    a2 = d2
    a1 = d1 + g * lam * a2
    a0 = d0 + g * lam * a1
    adv, ret = compute_gae(rewards, values, mask, g, lam)
    assert adv.tolist()[0] == pytest.approx([a0, a1, a2, 0.0])
    assert ret.tolist()[0] == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5, 0.0])


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 3.0], [1.0, 1.0, 0.0]])
    values = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = compute_gae(rewards, values, mask, 1.0, 1.0)
    assert ret.flatten().tolist() == pytest.approx([3.0, 3.0, 3.0, 2.0, 1.0, 0.0])
    assert adv.flatten().tolist() == pytest.approx([2.0, 1.0, 2.5, 2.0, 1.0, 0.0])


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))     # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, -2.0, 3.0]])
    mask = torch.tensor([[1, 1, 0]])                     # the third token is padding
    loss, stats = policy_loss(new, old, adv, mask, cliprange=0.2)
    # token 0: max(-1*1.5, -1*1.2) = -1.2 (clipped); token 1: max(2*0.5, 2*0.8) = 1.6 (clipped)
    assert loss.item() == pytest.approx((-1.2 + 1.6) / 2)
    assert stats["clipfrac"].item() == pytest.approx(1.0)
    assert stats["approxkl"].item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2)


def test_unclipped_policy_loss_is_minus_advantage_times_ratio():
    new = torch.log(torch.tensor([[1.1, 0.9]]))
    loss, stats = policy_loss(new, torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]),
                              torch.ones(1, 2), cliprange=0.2)
    assert loss.item() == pytest.approx((-2.0 * 1.1 + 1.0 * 0.9) / 2)
    assert stats["clipfrac"].item() == 0.0


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[2.0, 1.0]])
    old = torch.tensor([[1.0, 0.0]])
    returns = torch.tensor([[1.0, 1.0]])
    loss, stats = value_loss(values, old, returns, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: unclipped (2-1)^2 = 1, clipped V=1.2 -> 0.04: max 1 (unclipped)
    # token 1: unclipped (1-1)^2 = 0, clipped V=0.2 -> 0.64: max 0.64 (clipped)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 0.64) / 2)
    assert stats["vf_clipfrac"].item() == pytest.approx(0.5)


def test_masked_statistics_ignore_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mean(x, mask).item() == 2.0
    w = masked_whiten(x, mask)
    assert w[0, 2].item() == 0.0 and w[0, 0].item() == pytest.approx(-w[0, 1].item())


def test_adaptive_kl_controller_moves_toward_the_target():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl.update(current_kl=12.0, n_steps=10)       # error clipped to +0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    ctl2 = AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl2.update(current_kl=5.4, n_steps=10)       # error -0.1
    assert ctl2.value == pytest.approx(0.1 * (1 - 0.1 * 10 / 100))
