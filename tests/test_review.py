"""Review and adjudication, qualification and hidden gold (store/reviews.py and the labeling
service); the browser flow is in test_annotate_browser.py."""

from __future__ import annotations

import pytest

from prefloop import store
from prefloop.annotate_app.auth import caller
from prefloop.annotate_app.config import AppConfig
from prefloop.annotate_app.errors import InvalidSubmission, NotAuthorized
from prefloop.annotate_app.render import render_review_item
from prefloop.annotate_app.services import AppServices
from prefloop.store.export_files import ExportOptions, export_pairs
from prefloop.store.pairs import PairFilters, derive_pairs


class Req:
    def __init__(self, username):
        self.username = username


def _pair(db, text, answers=("good", "bad")):
    pid, = db.prompts.add([[{"role": "user", "content": text}]], dataset="r")
    return pid, db.responses.add([store.ResponseIn(pid, a) for a in answers])


def _submit(db, annotator_id, ranking, *, flags=(), task_id=None):
    lt = db.tasks.lease_next(annotator_id)
    assert task_id is None or lt.task.id == task_id
    return db.comparisons.record(lt.prompt.id, ranking, labeler_kind="human", task_id=lt.task.id,
                                 annotator_id=annotator_id, flags=list(flags))


@pytest.fixture
def team(db):
    return {n: db.annotators.add(n, role).id for n, role in
            (("ann", "annotator"), ("bob", "annotator"), ("rev", "reviewer"), ("boss", "admin"))}


def test_queue_reasons_each_rule_and_leaves_decided_tasks_out(db, team):
    p1, (a1, b1) = _pair(db, "disagreement")
    p2, (a2, b2) = _pair(db, "flagged")
    p3, (a3, b3) = _pair(db, "gold")
    p4, (a4, b4) = _pair(db, "ai says otherwise")
    p5, (a5, b5) = _pair(db, "fine")
    t1, t2, t4, t5 = db.tasks.create([store.TaskIn(p, r, overlap=2, priority=9 - i) for i, (p, r) in
                                      enumerate([(p1, [a1, b1]), (p2, [a2, b2]), (p4, [a4, b4]), (p5, [a5, b5])])])
    t3, = db.tasks.create([store.TaskIn(p3, [a3, b3], gold_ranking=[[a3], [b3]])])
    ann, bob = team["ann"], team["bob"]
    _submit(db, ann, [[a1], [b1]], task_id=t1)
    _submit(db, bob, [[b1], [a1]], task_id=t1)
    _submit(db, ann, [[a2], [b2]], flags=["unsafe"], task_id=t2)
    _submit(db, bob, [[a2], [b2]], task_id=t2)
    _submit(db, ann, [[a4], [b4]], task_id=t4)
    _submit(db, bob, [[a4], [b4]], task_id=t4)
    _submit(db, ann, [[a5], [b5]], task_id=t5)
    _submit(db, bob, [[a5], [b5]], task_id=t5)
    lt = db.tasks.lease_next(ann, gold_only=True)
    assert lt.task.id == t3
    db.comparisons.record(p3, [[b3], [a3]], labeler_kind="human", task_id=t3, annotator_id=ann)
    db.comparisons.record(p4, [[b4], [a4]], labeler_kind="ai", labeler="judge")
    db.comparisons.record(p5, [[a5], [b5]], labeler_kind="ai", labeler="judge")   # agrees

    reasons = {i.task_id: i.reasons for i in db.reviews.queue()}
    assert reasons == {t1: ["agreement"], t2: ["flag"], t3: ["gold_miss"], t4: ["ai_disagreement"]}
    assert {i.task_id for i in db.reviews.queue(store.ReviewRules(min_agreement=None, flags=False,
                                                                  gold_miss=False))} == {t4}
    db.reviews.decide(t2, team["rev"], "ambiguous", note="unclear")
    assert t2 not in {i.task_id for i in db.reviews.queue()}
    assert db.reviews.item(t2).reasons == ["flag"]          # still says why it was reviewed
    assert db.reviews.counts() == {"adjudicated": 0, "ambiguous": 1}


def test_decisions_drive_exports(db, team, tmp_path):
    p1, (a1, b1) = _pair(db, "q1")
    p2, (a2, b2) = _pair(db, "q2")
    t1, t2 = db.tasks.create([store.TaskIn(p1, [a1, b1], overlap=2), store.TaskIn(p2, [a2, b2], overlap=2)])
    for name in ("ann", "bob"):
        _submit(db, team[name], [[b1], [a1]], task_id=t1)    # both prefer b1 ...
        _submit(db, team[name], [[a2], [b2]], task_id=t2)
    db.comparisons.record(p1, [[b1], [a1]], labeler_kind="human", labeler="crowd")
    rev = db.reviews.decide(t1, team["rev"], "adjudicated", ranking=[[a1], [b1]], note="a1 is right")
    assert db.comparisons.list(labeler="rev")[0].flags == ["adjudicated"]
    assert db.comparisons.list(labeler="rev")[0].task_id is None  # not one of the task's submissions

    def label(aggregate):
        table, counts = derive_pairs(db, PairFilters(aggregate=aggregate))
        return {r["prompt_id"]: (r["chosen_id"], r["p_chosen"]) for r in table.to_pylist()}, counts

    majority, _ = label("majority")
    assert majority[p1] == (b1, 0.75)                        # 3 votes to 1, the reviewer's included
    adjudicated, counts = label("adjudicated")
    assert adjudicated[p1] == (a1, 1.0) and adjudicated[p2] == (a2, 1.0)
    assert counts.warnings == []

    db.reviews.decide(t2, team["rev"], "ambiguous")
    res = export_pairs(db, tmp_path / "out", PairFilters(aggregate="adjudicated"))
    assert res.counts.n_ambiguous == 1 and res.export.n_pairs == 1  # q2 left out, and counted
    assert rev.comparison_id == db.comparisons.list(labeler="rev")[0].id

    db.reviews.decide(t1, team["rev"], "ambiguous")          # a later decision replaces the earlier
    assert db.comparisons.list(labeler="rev") == []          # ... and its comparison
    assert [r.decision for r in db.reviews.list()] == ["ambiguous", "ambiguous"]


def test_decisions_are_validated_and_write_nothing_when_bad(db, team):
    p1, (a1, b1) = _pair(db, "q1")
    t1, = db.tasks.create([store.TaskIn(p1, [a1, b1])])
    with pytest.raises(store.ValidationError, match="exactly task"):
        db.reviews.decide(t1, team["rev"], "adjudicated", ranking=[[a1]])
    with pytest.raises(store.ValidationError, match="needs the final ranking"):
        db.reviews.decide(t1, team["rev"], "adjudicated")
    with pytest.raises(store.ValidationError, match="takes no ranking"):
        db.reviews.decide(t1, team["rev"], "ambiguous", ranking=[[a1], [b1]])
    with pytest.raises(store.ValidationError, match="not one of"):
        db.reviews.decide(t1, team["rev"], "maybe")
    assert db.reviews.list() == [] and db.comparisons.list() == []


def test_review_actions_need_the_reviewer_role(db, team):
    svc = AppServices(db)
    p1, (a1, b1) = _pair(db, "q1")
    t1, = db.tasks.create([store.TaskIn(p1, [a1, b1])])
    with pytest.raises(NotAuthorized, match="not a reviewer"):
        caller(db, Req("ann"), role="reviewer")
    assert caller(db, Req("rev"), role="reviewer").name == "rev"
    assert caller(db, Req("boss"), role="reviewer").name == "boss"   # admins review too
    with pytest.raises(NotAuthorized, match="not an admin"):
        caller(db, Req("rev"), role="admin")
    rev = db.annotators.get("rev")
    with pytest.raises(InvalidSubmission, match="write it like"):
        svc.review.adjudicate(rev, t1, "A > C")
    with pytest.raises(InvalidSubmission, match="rank each"):
        svc.review.adjudicate(rev, t1, "A")
    assert "final ranking saved" in svc.review.adjudicate(rev, t1, "b > a")
    assert db.comparisons.list(labeler="rev")[0].ranking == [[b1], [a1]]   # labels in task order
    md = render_review_item(t1, *svc.review.item(t1))
    assert "**Response A**" in md and "**Response B**" in md and "B > A" in md


def test_qualification_then_rolling_gold_pause_and_reenable(db, team):
    cfg = AppConfig(qualification_tasks=2, min_gold_accuracy=0.5, gold_window=2)
    svc = AppServices(db, cfg)
    golds = []
    for i in range(5):
        p, (right, wrong) = _pair(db, f"gold {i}", (f"right {i}", f"wrong {i}"))
        golds += db.tasks.create([store.TaskIn(p, [right, wrong], gold_ranking=[[right], [wrong]])])
    p, r = _pair(db, "regular")
    regular, = db.tasks.create([store.TaskIn(p, r)])
    ann = db.annotators.get("ann")

    def answer(correct: bool):
        view = svc.labeling.current_task(ann)
        assert view is not None
        task = db.tasks.get(view.task_id)
        best = task.gold_ranking[0][0] if correct else task.gold_ranking[1][0]
        svc.labeling.submit_pair(ann, view.task_id, view.labels[view.response_ids.index(best)])
        return view.task_id

    assert {answer(True), answer(False)} <= set(golds)          # qualification: gold only
    view = svc.labeling.current_task(ann)                                 # 1 of 2 >= 0.5: qualified
    assert view.task_id == regular
    assert db.annotators.get("ann").qualified_at is not None
    svc.labeling.skip(ann, view.task_id)
    svc.config.gold_rate = 1.0
    answer(False)                                                # window: [False, False] < 0.5
    assert svc.labeling.current_task(ann) is None
    assert "gold accuracy 0 of the last 2" in svc.labeling.paused_reason(ann)
    assert "gold accuracy" in {r["user"]: r for r in svc.admin.people()}["ann"]["paused"]
    assert "re-enabled" in svc.admin.reenable("ann")
    assert svc.labeling.current_task(ann) is not None                     # window restarted

    bob = db.annotators.get("bob")
    for _ in range(2):
        view = svc.labeling.current_task(bob)
        task = db.tasks.get(view.task_id)
        svc.labeling.submit_pair(bob, view.task_id, view.labels[view.response_ids.index(task.gold_ranking[1][0])])
    assert svc.labeling.current_task(bob) is None
    assert svc.labeling.paused_reason(bob).startswith("qualification: 0 of 2 gold tasks right")
    rev = db.annotators.get("rev")                               # reviewers and admins skip it
    assert svc.labeling.gate(rev) == (None, False)


def test_app_yaml_review_rules_are_checked(tmp_path):
    cfg = tmp_path / "app.yaml"
    cfg.write_text("review: {min_agreement: 0.6, flags: false}\nqualification_tasks: 3\n")
    c = AppConfig.load(cfg)
    assert c.review_rules == store.ReviewRules(min_agreement=0.6, flags=False) and c.qualification_tasks == 3
    cfg.write_text("review: {agreement: 0.6}\n")
    from prefloop.annotate_app.errors import AppError
    with pytest.raises(AppError, match="review: unknown settings"):
        AppConfig.load(cfg)


def test_activity_plots_count_submissions_agreement_and_open_tasks(db, team):
    from prefloop.store.counts import labeling_activity

    assert labeling_activity(db) == {"submissions": [], "agreement": [], "burndown": []}
    p1, (a1, b1) = _pair(db, "q1")
    p2, (a2, b2) = _pair(db, "q2")
    t1, t2 = db.tasks.create([store.TaskIn(p1, [a1, b1], overlap=2), store.TaskIn(p2, [a2, b2], overlap=2)])
    _submit(db, team["ann"], [[a1], [b1]], task_id=t1)
    _submit(db, team["bob"], [[b1], [a1]], task_id=t1)
    _submit(db, team["ann"], [[a2], [b2]], task_id=t2)
    act = labeling_activity(db)
    assert sum(r["submissions"] for r in act["submissions"]) == 3
    assert [(r["agreement"], r["pairs"]) for r in act["agreement"]] == [(0.0, 1)]
    assert act["burndown"][0]["open"] == 0 and act["burndown"][-1]["open"] == 1   # t1 done, t2 open


def test_assisted_labeling_records_what_was_shown_and_reports_anchoring(db, team):
    from prefloop.annotate_app.render import COLLAPSE_CHARS

    svc = AppServices(db, AppConfig(assist={"when": "random"}, gold_rate=1.0))
    tasks = {}
    for i in range(12):
        p, (a, b) = _pair(db, f"q{i}", (f"first {i}", f"second {i}" + ("x" * (2 * COLLAPSE_CHARS) if i == 0 else "")))
        tasks[db.tasks.create([store.TaskIn(p, [a, b])])[0]] = (p, a, b)
        db.comparisons.record(p, [[a], [b]], labeler_kind="ai", labeler="judge")
    pg, (gr, gw) = _pair(db, "gold", ("right", "wrong"))
    db.tasks.create([store.TaskIn(pg, [gr, gw], gold_ranking=[[gr], [gw]])])
    ann = db.annotators.get("ann")
    seen = {True: 0, False: 0}
    while (view := svc.labeling.current_task(ann)) is not None:
        if view.gold:
            assert view.suggestion is None                  # gold stays a clean test
            svc.labeling.submit_pair(ann, view.task_id, "A")
            continue
        p, a, b = tasks[view.task_id]
        assert view.suggestion == view.labels[view.response_ids.index(a)]
        seen[view.suggestion_before] += 1
        if view.task_id == min(tasks):
            assert "<details><summary>Show all" in "".join(view.response_markdown)   # long: folded
        # this annotator follows the suggestion only when it was shown first
        choice = view.suggestion if view.suggestion_before else view.labels[view.response_ids.index(b)]
        svc.labeling.submit_pair(ann, view.task_id, choice)
    assert seen[True] > 0 and seen[False] > 0               # random: both arms
    recorded = [c.task_id for c in db.comparisons.list(labeler="ann")]
    assert len(recorded) == 13
    report = {r["shown_before"]: r for r in db.comparisons.assist_report()}
    assert report[True]["rate"] == 1.0 and report[True]["labels"] == seen[True]
    assert report[False]["rate"] == 0.0 and report[False]["labels"] == seen[False]
    assert 0 <= report[True]["low"] < report[True]["high"] <= 1


def test_edit_preview_is_a_word_diff_against_the_closest_response(db, team):
    svc = AppServices(db)
    p, r = _pair(db, "q", ("The capital of France is Paris.", "I do not know."))
    db.tasks.create([store.TaskIn(p, r)])
    view = svc.labeling.current_task(db.annotators.get("ann"))
    md = svc.labeling.preview_edit(view, "The capital of France is <b>Paris</b>, on the Seine.")
    assert '<del class="pf-del">Paris.</del>' in md and "&lt;b&gt;Paris&lt;/b&gt;," in md
    assert svc.labeling.preview_edit(view, "  ") == ""


def test_ratings_with_and_without_a_ranking_are_stored_exported_and_summarized(db, team, tmp_path):
    from prefloop.store.counts import ratings_summary

    aspects = ["helpfulness", "harmlessness"]
    both = AppServices(db, AppConfig(ratings={"aspects": aspects, "scale": 5, "datasets": ["r"]}))
    p1, (a1, b1) = _pair(db, "rank and rate")
    t1, = db.tasks.create([store.TaskIn(p1, [a1, b1])])
    ann = db.annotators.get("ann")
    view = both.labeling.current_task(ann)
    assert view.aspects == aspects and view.ranked
    la, lb = view.labels[view.response_ids.index(a1)], view.labels[view.response_ids.index(b1)]
    with pytest.raises(InvalidSubmission, match="rate harmlessness of response"):
        both.labeling.submit_pair(ann, t1, la, ratings={la: {"helpfulness": 5}, lb: {"helpfulness": 2}})
    with pytest.raises(InvalidSubmission, match="outside 1..5"):
        both.labeling.submit_pair(ann, t1, la, ratings={la: {"helpfulness": 6, "harmlessness": 5},
                                               lb: {"helpfulness": 2, "harmlessness": 2}})
    assert db.comparisons.list() == []                       # nothing partial
    with pytest.raises(InvalidSubmission, match="asks for a ranking"):
        both.labeling.submit_ratings(ann, t1, {})
    both.labeling.submit_pair(ann, t1, la, ratings={la: {"helpfulness": 5, "harmlessness": "4"},
                                           lb: {"helpfulness": 2, "harmlessness": 3}})

    only = AppServices(db, AppConfig(ratings={"aspects": aspects, "ranking": False}))
    p2, (a2, b2) = _pair(db, "rate only")
    t2, = db.tasks.create([store.TaskIn(p2, [a2, b2])])
    bob = db.annotators.get("bob")
    view = only.labeling.current_task(bob)
    assert view.task_id == t2 and not view.ranked
    la, lb = view.labels[view.response_ids.index(a2)], view.labels[view.response_ids.index(b2)]
    cid, _ = only.labeling.submit_and_next(bob, t2, ratings={la: {"helpfulness": 1, "harmlessness": 2},
                                                    lb: {"helpfulness": 4, "harmlessness": 4}})
    c = db.comparisons.get(cid)
    assert c.ranking == [[b2], [a2]] and "from_ratings" in c.flags   # order of the mean ratings

    res = export_pairs(db, tmp_path / "out", PairFilters(), ExportOptions(format="openrlhf"))
    rows = {r["prompt_id"]: r for r in res_rows(tmp_path / "out")}
    assert rows[p1]["rating_margin"] == pytest.approx(2.0)      # (5+4)/2 - (2+3)/2
    assert rows[p2]["rating_margin"] == pytest.approx(2.5)
    import json
    margins = [json.loads(line)["margin"] for line in (tmp_path / "out" / "openrlhf" / "train.jsonl").open()]
    assert sorted(margins) == [2.0, 2.5]
    summary = {s["aspect"]: s for s in ratings_summary(db)}
    assert summary["helpfulness"]["ratings"] == 4 and summary["helpfulness"]["mean"] == 3.0
    assert res.export.n_pairs == 2


def res_rows(out):
    import pyarrow.parquet as pq

    return pq.read_table(out / "train.parquet").to_pylist()
