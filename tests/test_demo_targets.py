"""The demo's targets (no model): each is read from the evaluation, waits while people's labels
are missing, and can fail."""

from __future__ import annotations

from prefloop.core.stats import WinRate
from prefloop.pipelines.demo import DEFAULT, demo_targets
from prefloop.pipelines.eval_results import EvalRow, EvalSummary, Slice, View
from prefloop.pipelines.evaluation import PeopleProgress


def _w(rate, low, high, n=96):
    return WinRate(rate, low, high, n)


def _summary(people_h=None, people_b=None, kl=3.2, second=0.6, refusals=(0.02, 0.04)):
    base = EvalRow("base", "base", "base", None, None, Slice(n=200, kl=0.0),
                   {"harmless": Slice(n=100), "benign": Slice(n=100, refusal_rate=refusals[0])})
    final = EvalRow("run:9", "run:9", "dpo", 9, 8,
                    Slice(n=200, kl=kl, second_rm=View(win=_w(second, second - 0.08, second + 0.08))),
                    {"harmless": Slice(n=100, people=View(win=people_h) if people_h else None),
                     "benign": Slice(n=100, refusal_rate=refusals[1], people=View(win=people_b) if people_b else None)})
    return EvalSummary(baseline="base", prompts=200, prompt_source="set:test", rows=[base, final])


def test_targets_wait_for_people_and_pass_only_on_the_figures_that_meet_them():
    waiting = demo_targets(_summary(), PeopleProgress(180, 180, 0), "run:9", {"a": 600.0}, DEFAULT)
    assert [t.met for t in waiting] == [True, None, None, True, True, True]
    assert waiting[1].measured == "waiting for 180 blind labels"
    good = demo_targets(_summary(_w(0.66, 0.57, 0.75), _w(0.52, 0.42, 0.61)), PeopleProgress(180, 180, 180),
                        "run:9", {"a": 600.0}, DEFAULT)
    assert all(t.met for t in good), good
    assert good[1].measured == "0.66 [0.57, 0.75]"
    # each failure shows as a gap: too slow, a harmless win whose CI touches 0.5, a benign loss,
    # refusing benign requests, too much KL, the second RM disagreeing
    bad = demo_targets(_summary(_w(0.62, 0.49, 0.71), _w(0.40, 0.31, 0.48), kl=5.4, second=0.45,
                                refusals=(0.02, 0.10)), PeopleProgress(180, 180, 180), "run:9",
                       {"a": 1300.0}, DEFAULT)
    assert [t.met for t in bad] == [False] * 6


def test_board_settings_fail_in_one_line_naming_the_option_before_any_run(db, cli):
    import pytest

    from prefloop.pipelines.board import BoardConfig, BoardError

    for kw, words in (({"methods": ("dpo", "bogus")}, "--methods: unknown method 'bogus'"),
                      ({"methods": ("sft+dpo",)}, r"--methods: sft\+dpo starts from the sft policy"),
                      ({"seeds": (1, 1)}, "--seeds: expected distinct seeds"),
                      ({"budget": 0.0}, "--budget: expected seconds > 0")):
        with pytest.raises(BoardError, match=words):
            BoardConfig(**kw)
    db.close()
    r = cli("--db", db.path, "board", "run", "--methods", "dpo,telepathy")
    assert r.exit_code == 1 and r.output.strip() == (
        "Error: --methods: unknown method 'telepathy'; the board's methods: aa, sft, dpo, dpo-random, "
        "iterative-dpo, sft+dpo, rs-sft, ppo, grpo, rloo, orpo, kto")
    assert db.runs.list() == []
