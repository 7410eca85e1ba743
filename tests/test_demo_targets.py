"""The demo's target check (no model): each target is read from the eval summary and can fail."""

from __future__ import annotations

from prefloop.pipelines.demo import demo_targets


def _w(rate, low, high):
    return {"rate": rate, "low": low, "high": high, "n": 96}


def test_demo_targets_are_met_only_by_the_figures_that_meet_them():
    ev = {"models": [
        {"model": "base", "kl": 0.0},
        {"model": "run:4", "kl": 0.3, "gold": {"win": _w(0.55, 0.51, 0.60),
                                               "length_controlled": _w(0.54, 0.48, 0.60)}},
        {"model": "run:5", "kl": 3.2, "gold": {"win": _w(0.62, 0.55, 0.70),
                                               "length_controlled": _w(0.57, 0.50, 0.66)}}]}
    ppo = {"reward_model": [0.0, 0.1, 0.2, 0.3], "reward_gold": [0.1, 0.1, 0.2, 0.2]}
    rows = demo_targets(ev, "run:4", "run:5", ppo, {"a": 600.0, "b": 500.0})
    assert all(met for _, _, met in rows), rows
    assert len(rows) == 7 and rows[1][1] == "0.62 [0.55, 0.70]"
    # each failure shows as a gap: too slow, the final policy's CI touching 0.5, too much KL,
    # DPO not above the base, gold falling while the proxy rises
    ev["models"][2].update(kl=5.5, gold={"win": _w(0.60, 0.49, 0.70), "length_controlled": _w(0.55, 0.45, 0.65)})
    ev["models"][1]["gold"]["win"] = _w(0.52, 0.47, 0.58)
    ppo["reward_gold"] = [0.3, 0.3, 0.1, 0.1]
    rows = demo_targets(ev, "run:4", "run:5", ppo, {"a": 1300.0})
    assert [met for _, _, met in rows] == [False] * 7
    assert demo_targets({"models": []}, "run:4", "run:5", {}, {})[1] == (
        "final policy: gold win >= 0.60, CI low > 0.5", "-", False)
