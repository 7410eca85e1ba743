"""The statistics behind evaluation are right: Bradley-Terry recovers planted strengths,
bootstrap CIs cover the truth about 95% of the time, and length control removes a planted
length preference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefloop.core.stats import (
    ELO_BASE,
    ELO_SCALE,
    bootstrap_ci,
    bradley_terry,
    length_controlled_win_rate,
    win_rate,
)


def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(0)
    theta = {"base": 0.0, "dpo": 0.5, "ppo": 1.2, "sft": -0.4}        # log-strengths
    votes = []
    names = list(theta)
    for _ in range(6000):
        a, b = rng.choice(names, 2, replace=False)
        p = 1 / (1 + math.exp(theta[b] - theta[a]))
        votes.append((a, b, 1.0 if rng.random() < p else 0.0))
    board = bradley_terry(votes, anchor="base", n_resamples=50)
    assert [r["model"] for r in board.rows()] == ["ppo", "dpo", "base", "sft"]
    to_theta = math.log(10) / ELO_SCALE
    for m, t in theta.items():                                         # ratios within 10%
        assert (board.ratings[m] - ELO_BASE) * to_theta == pytest.approx(t, abs=0.1)
        assert board.low[m] <= board.ratings[m] <= board.high[m]
    assert board.ratings["base"] == ELO_BASE
    assert sum(board.votes.values()) == 2 * len(votes)


def test_bradley_terry_counts_a_tie_as_a_win_each_way():
    board = bradley_terry([("a", "b", 0.5)] * 20, anchor="a", n_resamples=20)
    assert board.ratings["b"] == pytest.approx(ELO_BASE, abs=1e-6)
    with pytest.raises(ValueError, match="no votes"):
        bradley_terry([])


def test_a_bootstrap_ci_covers_a_known_win_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true, reps, n = 0.6, 300, 96
    covered = 0
    for seed in range(reps):
        outcomes = (rng.random(n) < true).astype(float)
        w = win_rate(outcomes, seed=seed)
        covered += w.low <= true <= w.high
    assert 0.90 <= covered / reps <= 0.99


def test_win_rate_counts_and_degenerate_cases():
    w = win_rate([1, 1, 1])
    assert (w.rate, w.low, w.high, w.wins) == (1.0, 1.0, 1.0, 3)
    assert math.isnan(win_rate([]).rate)
    with pytest.raises(ValueError, match="1 \\(win\\)"):
        win_rate([2])
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)


def test_length_control_removes_a_planted_length_preference():
    rng = np.random.default_rng(2)
    n = 400
    length_diff = rng.normal(0, 50, n)                        # model minus baseline, tokens
    # equal quality: the judge's only preference is for the longer answer
    p_win = 1 / (1 + np.exp(-2.0 * np.tanh(length_diff / 50)))
    longer_bias = length_diff + 40                           # ...and the model writes longer
    outcomes = (rng.random(n) < 1 / (1 + np.exp(-2.0 * np.tanh(longer_bias / 50)))).astype(float)
    raw = win_rate(outcomes)
    lc = length_controlled_win_rate(outcomes, longer_bias, n_resamples=100)
    assert raw.rate > 0.62                                   # the planted bias shows raw
    assert lc.low <= 0.5 <= lc.high and abs(lc.rate - 0.5) < 0.08
    assert p_win.mean() == pytest.approx(0.5, abs=0.05)       # the sanity of the plant itself


def test_style_control_takes_a_planted_length_preference_out_of_the_ratings():
    from prefloop.core.stats import bradley_terry_style, length_feature

    rng = np.random.default_rng(3)
    theta = {"base": 0.0, "verbose": 0.0, "better": 0.6}   # verbose is no better, only longer
    mean_len = {"base": 40, "verbose": 80, "better": 40}
    votes, la, lb = [], [], []
    names = list(theta)
    for _ in range(3000):
        a, b = rng.choice(names, 2, replace=False)
        na, nb = rng.poisson(mean_len[a]) + 1, rng.poisson(mean_len[b]) + 1
        f = (na - nb) / (na + nb)
        p = 1 / (1 + math.exp(-(theta[a] - theta[b] + 4.0 * f)))   # voters like length
        votes.append((a, b, 1.0 if rng.random() < p else 0.0))
        la.append(na)
        lb.append(nb)
    to_theta = math.log(10) / ELO_SCALE
    plain = bradley_terry(votes, anchor="base", n_resamples=30)
    styled = bradley_terry_style(votes, {"length": length_feature(la, lb)}, anchor="base",
                                 n_resamples=30)
    # plain Bradley-Terry credits the verbose model with its length ...
    assert (plain.ratings["verbose"] - ELO_BASE) * to_theta > 0.5
    # ... style control does not, keeps the real gain, and finds the length preference
    assert abs(styled.ratings["verbose"] - ELO_BASE) * to_theta < 0.2
    assert (styled.ratings["better"] - ELO_BASE) * to_theta == pytest.approx(0.6, abs=0.2)
    assert styled.style["length"]["low"] > 0
    assert styled.low["verbose"] <= styled.ratings["verbose"] <= styled.high["verbose"]
    with pytest.raises(ValueError, match="3 values for"):
        bradley_terry_style(votes, {"length": [1.0, 2.0, 3.0]})


def test_a_separable_bootstrap_sample_does_not_overflow(monkeypatch):
    """A bootstrap sample the length covariate separates drives the intercept to about -1e3;
    P(win) at equal length is then 0, not an OverflowError."""
    import numpy as np
    import sklearn.linear_model

    from prefloop.core.stats import _lc_fit

    class Separated:
        def __init__(self, **kw):
            self.intercept_ = np.array([-1000.0])

        def fit(self, *a, **kw):
            return self

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegression", Separated)
    assert _lc_fit(np.array([1.0, 1.0, 0.0, 0.0]), np.array([[900.0], [950.0], [1.0], [2.0]])) == 0.0
