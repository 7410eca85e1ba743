"""A judge panel's uncertain pairs go to people first: members that disagree or flip with the
order make a pair uncertain; the most uncertain are queued with the highest priority."""

from __future__ import annotations

import pytest

from prefloop.judge.errors import JudgeError
from prefloop.judge.routing import panel_pairs, route_to_people

from .conftest import make_pairs


def _panel(db):
    pairs = make_pairs(db, 5)
    # pair 0: three judges agree, confident; 1: two say a, one says b; 2: one judge flips with the
    # order; 3: a tie and a confident a; 4: one judge, confidence 0.55
    plan = {0: [("j1", 0, 0.9, []), ("j2", 0, 0.9, []), ("j3", 0, 0.8, [])],
            1: [("j1", 0, 0.9, []), ("j2", 0, 0.9, []), ("j3", 1, 0.9, [])],
            2: [("j1", 0, 0.9, ["position_inconsistent"]), ("j2", 0, 0.9, [])],
            3: [("j1", None, None, []), ("j2", 0, 1.0, [])],
            4: [("j1", 1, 0.55, [])]}
    for i, votes in plan.items():
        pid, (a, b) = pairs[i]
        for judge, winner, conf, flags in votes:
            ranking = [[a, b]] if winner is None else [[a], [b]] if winner == 0 else [[b], [a]]
            db.comparisons.record(pid, ranking, labeler_kind="ai", labeler=judge, confidence=conf, flags=flags)
    db.comparisons.record(pairs[0][0], [[pairs[0][1][0]], [pairs[0][1][1]]], labeler_kind="human", labeler="ann")
    return pairs


def test_the_panel_orders_pairs_by_uncertainty(db):
    pairs = _panel(db)
    panel = panel_pairs(db)
    order = [next(i for i, (p, _) in enumerate(pairs) if p == x.prompt_id) for x in panel]
    assert order == [4, 1, 2, 3, 0]              # uncertain 0.9, 0.73, 0.6, 0.5, 0.27
    by = {x.prompt_id: x for x in panel}
    assert by[pairs[2][0]].flips == 1 and by[pairs[0][0]].members == 3          # people's label is not a member
    assert by[pairs[0][0]].majority == min(pairs[0][1])
    assert [x.members for x in panel_pairs(db, labelers=["j3"])] == [1, 1]


def test_routing_queues_the_most_uncertain_first_once(db):
    pairs = _panel(db)
    r = route_to_people(db, fraction=0.4)
    assert r.pairs == 5 and len(r.task_ids) == 2 and r.created == 2
    tasks = [db.tasks.get(t) for t in r.task_ids]
    assert [t.prompt_id for t in tasks] == [pairs[4][0], pairs[1][0]]
    assert tasks[0].priority == 90 and "judge panel unsure" in tasks[0].reason
    again = route_to_people(db, n=3)
    assert again.created == 1 and again.task_ids[:2] == r.task_ids          # nothing queued twice
    assert route_to_people(db, n=5, min_uncertainty=0.55).created == 0      # pairs 3 and 0 are too sure


@pytest.mark.parametrize("kw, match", [({}, "one of them"), ({"fraction": 0.2, "n": 2}, "one of them"),
                                       ({"fraction": 1.5}, "share"), ({"n": 0}, "at least 1")])
def test_bad_routing_options_are_one_line_errors(db, kw, match):
    with pytest.raises(JudgeError, match=match):
        route_to_people(db, **kw)


def test_nothing_to_route_says_what_to_run(db):
    with pytest.raises(JudgeError, match="prefloop judge --mode pairwise"):
        route_to_people(db, n=1)
