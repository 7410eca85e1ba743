"""Statistics of model comparisons, from maintained libraries (no torch): win rates with
bootstrap confidence intervals (scipy), a length-controlled win rate (scikit-learn's logistic
regression, the idea of AlpacaEval 2) and Bradley-Terry ratings of model versions (choix, with
bootstrap CIs as FastChat's Chatbot Arena reports them).

An *outcome* is one comparison of a model's response with a baseline's on one prompt:
1 (the model's won), 0.5 (tie) or 0 (the baseline's won).

>>> w = win_rate([1, 1, 0.5, 0])
>>> w.rate, (w.wins, w.ties, w.losses)
(0.625, (2, 1, 1))
>>> bradley_terry([("a", "b", 1.0)] * 30 + [("a", "b", 0.0)] * 10, anchor="b").ratings["b"]
1000.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["WinRate", "win_rate", "wilson_ci", "leaderboards", "VOTE_GROUPS", "bootstrap_ci", "length_controlled_win_rate", "seed_win_rate", "Leaderboard",
           "bradley_terry", "bradley_terry_style", "length_feature", "ELO_SCALE", "ELO_BASE"]

#: Bradley-Terry strengths are reported on the Elo scale, as Chatbot Arena does:
#: ``rating = ELO_BASE + ELO_SCALE * log10(e) * theta``, so 400 points = 10:1 odds.
ELO_SCALE = 400.0
ELO_BASE = 1000.0


@dataclass(frozen=True)
class WinRate:
    """A win rate (ties count half) with its 95% bootstrap CI ``[low, high]`` over prompts."""

    rate: float
    low: float
    high: float
    n: int
    wins: int = 0
    ties: int = 0
    losses: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"rate": self.rate, "low": self.low, "high": self.high, "n": self.n,
                "wins": self.wins, "ties": self.ties, "losses": self.losses}


def wilson_ci(k: float, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson's interval for ``k`` successes in ``n`` trials (``scipy.stats.binomtest``;
    ``k`` is rounded); ``(None, None)`` for no trials.

    >>> tuple(round(x, 3) for x in wilson_ci(8, 10))
    (0.49, 0.943)
    """
    if n == 0:
        return None, None
    from scipy.stats import binomtest

    ci = binomtest(int(round(k)), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_ci(values: Sequence[float], statistic=np.mean, *, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over ``values`` (``scipy.stats.bootstrap``);
    ``(v, v)`` when every value is the same, ``(nan, nan)`` for no values."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=confidence,
                    method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def win_rate(outcomes: Sequence[float], *, seed: int = 0) -> WinRate:
    """Mean outcome with a 95% bootstrap CI over prompts.

    Raises:
        ValueError: an outcome other than 0, 0.5 or 1.
    """
    x = np.asarray(outcomes, dtype=float)
    if not np.isin(x, (0.0, 0.5, 1.0)).all():
        raise ValueError("outcomes must be 1 (win), 0.5 (tie) or 0 (loss)")
    if x.size == 0:
        return WinRate(float("nan"), float("nan"), float("nan"), 0)
    low, high = bootstrap_ci(x, seed=seed)
    return WinRate(float(x.mean()), low, high, int(x.size), int((x == 1).sum()),
                   int((x == 0.5).sum()), int((x == 0).sum()))


def _lc_fit(outcomes: np.ndarray, features: np.ndarray) -> float:
    """P(win) at zero covariates from ``logit P(win) = b0 + b . features`` (``features``:
    ``(n, k)``); a tie is a half win and a half loss (sample weights)."""
    from scipy.special import expit  # a separable bootstrap sample drives b0 to +-1e3: no overflow
    from sklearn.linear_model import LogisticRegression

    y = np.concatenate([np.ones_like(outcomes), np.zeros_like(outcomes)])
    w = np.concatenate([outcomes, 1 - outcomes])
    if w[y == 1].sum() == 0 or w[y == 0].sum() == 0:
        return float(outcomes.mean())
    X = np.concatenate([features, features])
    model = LogisticRegression(C=1e6, max_iter=1000).fit(X, y, sample_weight=w)
    return float(expit(model.intercept_[0]))


def length_controlled_win_rate(outcomes: Sequence[float], length_diff: Sequence[float],
                               finished_diff: Sequence[float] | None = None, *,
                               n_resamples: int = 500, seed: int = 0) -> WinRate:
    """The win rate a judge would give at zero length difference (Dubois et al. 2024,
    "Length-Controlled AlpacaEval"): regress the outcome on ``tanh(length_diff / std)``
    (``length_diff`` = model length - baseline length, any unit) and, with ``finished_diff``
    (model finished - baseline finished: -1, 0 or 1), on whether each response ended before the
    token budget, so that "it stopped where the other was cut off" is controlled too; read
    the fit at 0. CI: bootstrap over prompts, refitting each resample.

    Returns a :class:`WinRate` whose counts are the raw ones.
    """
    x = np.asarray(outcomes, dtype=float)
    d = np.asarray(length_diff, dtype=float)
    if x.size == 0:
        return WinRate(float("nan"), float("nan"), float("nan"), 0)
    scale = d.std() or 1.0
    cols = [np.tanh(d / scale)]
    if finished_diff is not None:
        f = np.asarray(finished_diff, dtype=float)
        if f.std() > 0:
            cols.append(f)
    features = np.stack(cols, 1)
    rate = _lc_fit(x, features)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_resamples):
        idx = rng.integers(0, x.size, x.size)
        boots.append(_lc_fit(x[idx], features[idx]))
    raw = win_rate(x)
    return WinRate(rate, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)),
                   int(x.size), raw.wins, raw.ties, raw.losses)


def seed_win_rate(per_seed: Sequence[Sequence[float]], *, n_resamples: int = 4000,
                  seed: int = 0) -> WinRate:
    """A win rate over several end-to-end seeds (reward models, pairs and policies trained
    anew each time), with a two-level bootstrap CI: resample the seeds, then the prompts within
    each drawn seed (Field & Welsh 2007's cases bootstrap for clustered data), so the spread
    between seeds counts, not only the spread between prompts. The point estimate is the mean
    of the seeds' win rates.

    >>> w = seed_win_rate([[1, 1, 0], [1, 0.5, 1], [0, 1, 1]])
    >>> round(w.rate, 3), w.n
    (0.722, 9)

    Raises:
        ValueError: no seed, or a seed without outcomes.
    """
    groups = [np.asarray(g, dtype=float) for g in per_seed]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("every seed needs at least one outcome")
    point = float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    boots = np.empty(n_resamples)
    for b in range(n_resamples):
        drawn = rng.integers(0, len(groups), len(groups))
        boots[b] = np.mean([groups[i][rng.integers(0, groups[i].size, groups[i].size)].mean()
                            for i in drawn])
    allx = np.concatenate(groups)
    return WinRate(point, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)),
                   int(allx.size), int((allx == 1).sum()), int((allx == 0.5).sum()),
                   int((allx == 0).sum()))


@dataclass
class Leaderboard:
    """Bradley-Terry ratings (Elo scale) with 95% bootstrap CIs and vote counts per model;
    with style control, ``style`` holds each style feature's coefficient (log-odds per unit of
    the standardized feature) with its CI, ``{name: {coef, low, high}}``."""

    ratings: dict[str, float]
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    votes: dict[str, int] = field(default_factory=dict)
    style: dict[str, dict[str, float]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, float | int | str]]:
        """One row per model, best first."""
        return [{"model": m, "rating": round(r, 1), "low": round(self.low.get(m, r), 1),
                 "high": round(self.high.get(m, r), 1), "votes": self.votes.get(m, 0)}
                for m, r in sorted(self.ratings.items(), key=lambda kv: -kv[1])]


def _fit_bt(models: list[str], votes: list[tuple[str, str, float]], alpha: float) -> np.ndarray:
    import choix

    index = {m: i for i, m in enumerate(models)}
    data = []
    for a, b, outcome in votes:
        if outcome == 1.0:
            data.append((index[a], index[b]))
        elif outcome == 0.0:
            data.append((index[b], index[a]))
        else:                                   # a tie: a win each way (as FastChat counts it)
            data += [(index[a], index[b]), (index[b], index[a])]
    return choix.ilsr_pairwise(len(models), data, alpha=alpha)


def bradley_terry(votes: Sequence[tuple[str, str, float]], *, anchor: str | None = None,
                  n_resamples: int = 200, alpha: float = 0.01, seed: int = 0) -> Leaderboard:
    """Bradley-Terry ratings of the models in ``votes`` (``(model_a, model_b, outcome for a)``)
    fitted by ``choix.ilsr_pairwise`` (Bradley & Terry 1952; a small ``alpha`` regularizes
    models that never lost), on the Elo scale with ``anchor`` at :data:`ELO_BASE` (default: the
    first model). CIs: percentile bootstrap over votes, as Chatbot Arena (Chiang et al. 2024).

    Raises:
        ValueError: no votes, or an ``anchor`` that has none.
    """
    votes = [(a, b, float(o)) for a, b, o in votes]
    if not votes:
        raise ValueError("no votes between model versions yet")
    models = sorted({m for a, b, _ in votes for m in (a, b)})
    anchor = anchor or models[0]
    if anchor not in models:
        raise ValueError(f"the anchor model {anchor!r} has no votes")
    to_elo = ELO_SCALE / math.log(10)

    def ratings(sample: list[tuple[str, str, float]]) -> np.ndarray:
        theta = _fit_bt(models, sample, alpha)
        return ELO_BASE + to_elo * (theta - theta[models.index(anchor)])

    point = ratings(votes)
    rng = np.random.default_rng(seed)
    boots = np.array([ratings([votes[i] for i in rng.integers(0, len(votes), len(votes))])
                      for _ in range(n_resamples)])
    counts = {m: sum(m in (a, b) for a, b, _ in votes) for m in models}
    return Leaderboard({m: float(point[i]) for i, m in enumerate(models)},
                       {m: float(np.percentile(boots[:, i], 2.5)) for i, m in enumerate(models)},
                       {m: float(np.percentile(boots[:, i], 97.5)) for i, m in enumerate(models)},
                       counts)


def length_feature(tokens_a: Sequence[float], tokens_b: Sequence[float]) -> np.ndarray:
    """FastChat's length style feature of each vote: ``(len_a - len_b) / (len_a + len_b)``
    (0 where both are empty), shape ``(n_votes,)``; :func:`bradley_terry_style` standardizes it."""
    a, b = np.asarray(tokens_a, dtype=float), np.asarray(tokens_b, dtype=float)
    total = a + b
    return np.divide(a - b, total, out=np.zeros_like(total), where=total > 0)


def _fit_bt_style(models: list[str], votes: list[tuple[str, str, float]], features: np.ndarray,
                  alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression of the outcome on +1/-1 model indicators and the style features
    (no intercept; a tie counts as a half win each way through sample weights)."""
    from sklearn.linear_model import LogisticRegression

    index = {m: i for i, m in enumerate(models)}
    n = len(votes)
    x = np.zeros((n, len(models) + features.shape[1]))
    for row, (a, b, _) in enumerate(votes):
        x[row, index[a]], x[row, index[b]] = 1.0, -1.0
    x[:, len(models):] = features
    outcome = np.array([o for _, _, o in votes])
    # each vote twice: as a win with weight p and as a loss with weight 1 - p
    xx, yy = np.vstack([x, x]), np.r_[np.ones(n), np.zeros(n)]
    ww = np.r_[outcome, 1 - outcome]
    keep = ww > 0
    if len(set(yy[keep])) < 2:         # one side never won: mirror a vanishing vote to fit at all
        xx, yy, ww = np.vstack([xx, -x[:1]]), np.r_[yy, 1 - yy[keep][0]], np.r_[ww, 1e-6]
        keep = ww > 0
    lr = LogisticRegression(fit_intercept=False, C=1.0 / max(alpha, 1e-12), max_iter=1000)
    lr.fit(xx[keep], yy[keep], sample_weight=ww[keep])
    coef = lr.coef_[0]
    return coef[:len(models)], coef[len(models):]


def bradley_terry_style(votes: Sequence[tuple[str, str, float]], style: Mapping[str, Sequence[float]],
                        *, anchor: str | None = None, n_resamples: int = 200, alpha: float = 0.01,
                        seed: int = 0) -> Leaderboard:
    """Bradley-Terry ratings with style control, as Chatbot Arena does it (FastChat's
    ``elo_analysis.py``, "style control", Li et al. 2024): the outcome of each vote is regressed
    on the models (+1 for a, -1 for b) and on each style feature of the vote (e.g.
    :func:`length_feature`), standardized; the models' coefficients are the ratings a model
    would get at equal style, on the Elo scale with ``anchor`` at :data:`ELO_BASE`. A
    positive length coefficient says the voters prefer the longer response beyond the models'
    strength. CIs: percentile bootstrap over votes.

    Args:
        votes: ``(model_a, model_b, outcome for a)`` with outcome 1 / 0.5 / 0.
        style: feature name -> one value per vote (``len(votes)`` each).

    Raises:
        ValueError: no votes, an ``anchor`` without votes, or a feature of another length.
    """
    votes = [(a, b, float(o)) for a, b, o in votes]
    if not votes:
        raise ValueError("no votes between model versions yet")
    names = list(style)
    cols = []
    for name in names:
        col = np.asarray(style[name], dtype=float)
        if col.shape != (len(votes),):
            raise ValueError(f"style feature {name!r}: {col.size} values for {len(votes)} votes")
        cols.append((col - col.mean()) / (col.std() or 1.0))
    features = np.stack(cols, 1) if cols else np.zeros((len(votes), 0))
    models = sorted({m for a, b, _ in votes for m in (a, b)})
    anchor = anchor or models[0]
    if anchor not in models:
        raise ValueError(f"the anchor model {anchor!r} has no votes")
    to_elo = ELO_SCALE / math.log(10)

    def fit(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta, beta = _fit_bt_style(models, [votes[i] for i in idx], features[idx], alpha)
        return ELO_BASE + to_elo * (theta - theta[models.index(anchor)]), beta

    point, beta = fit(np.arange(len(votes)))
    rng = np.random.default_rng(seed)
    boots = [fit(rng.integers(0, len(votes), len(votes))) for _ in range(n_resamples)]
    r_boot = np.array([b[0] for b in boots])
    s_boot = np.array([b[1] for b in boots]).reshape(len(boots), len(names))
    counts = {m: sum(m in (a, b) for a, b, _ in votes) for m in models}
    return Leaderboard({m: float(point[i]) for i, m in enumerate(models)},
                       {m: float(np.percentile(r_boot[:, i], 2.5)) for i, m in enumerate(models)},
                       {m: float(np.percentile(r_boot[:, i], 97.5)) for i, m in enumerate(models)},
                       counts,
                       {n: {"coef": float(beta[j]), "low": float(np.percentile(s_boot[:, j], 2.5)),
                            "high": float(np.percentile(s_boot[:, j], 97.5))}
                        for j, n in enumerate(names)})


#: Vote groups of the leaderboards: people only, AI judges only, and both together.
VOTE_GROUPS = ("human", "ai", "all")


def leaderboards(votes: Sequence[tuple], *, anchor: str | None = None, fallback_anchor: str | None = None,
                 n_resamples: int = 200, style_control: bool = False) -> dict[str, Leaderboard]:
    """A :class:`Leaderboard` per vote group that has votes (:data:`VOTE_GROUPS`), from votes
    ``(model_a, model_b, outcome for a, labeler_kind, tokens_a, tokens_b)`` (the store's
    ``samples.model_votes(with_tokens=True)``), on the Elo scale with ``anchor`` at 1000 (else
    ``fallback_anchor`` when rated, else the first model by name). With ``style_control`` each
    group also gets ``<group>-length``: the ratings at equal length (:func:`bradley_terry_style`
    on :func:`length_feature`, FastChat's style control), whose ``style`` holds the length
    coefficient; a rating that drops there was bought by length."""
    out = {}
    for group in VOTE_GROUPS:
        sel = [v for v in votes if group == "all" or v[3] == group]
        if not sel:
            continue
        pairs = [(a, b, o) for a, b, o, *_ in sel]
        rated = {m for a, b, _ in pairs for m in (a, b)}
        chosen = anchor if anchor in rated else fallback_anchor if fallback_anchor in rated else None
        out[group] = bradley_terry(pairs, anchor=chosen, n_resamples=n_resamples)
        if style_control:
            length = length_feature([v[4] for v in sel], [v[5] for v in sel])
            out[f"{group}-length"] = bradley_terry_style(pairs, {"length": length}, anchor=chosen,
                                                         n_resamples=n_resamples)
    return out
