"""Importers on the real shared data and on bad input."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefloop import store
from prefloop.store.counts import store_stats
from prefloop.store.importer import import_file

from .conftest import ALPACA, HH, MT_BENCH


def _counts(db):
    return store_stats(db).tables


def test_hh_every_line_is_accounted_for(db, shared_data):
    r = import_file(db, HH, "hh")
    # data README: 1800 lines = 1794 clean pairs + 4 with an empty final reply + 2 whose
    # shared prefix differs between chosen and rejected
    assert (r.lines_read, r.imported, r.duplicates, r.rejected) == (1800, 1794, 0, 6)
    by_reason = {reason: lines for reason, _, lines in r.reasons()}
    assert by_reason["rejected: field 'chosen': the final Assistant reply is empty"] == [87, 517, 926, 1104]
    assert [lines for reason, _, lines in r.reasons() if "differs" in reason] == [[1255, 1689]]
    assert r.comparisons_added == 1794 and r.responses_added == 3588
    c = db.comparisons.list()[0]
    assert c.labeler_kind == "human" and c.ranking == [[1], [2]]
    p = db.prompts.get(c.prompt_id)
    assert p.messages[0]["role"] == "user" and p.messages[-1]["role"] == "user"
    assert p.dataset == "harmless-base-test-dev"


def test_reimporting_adds_nothing(db, shared_data):
    import_file(db, HH, "hh")
    before = _counts(db)
    again = import_file(db, HH, "hh")
    assert (again.imported, again.duplicates, again.rejected) == (0, 1794, 6)
    assert _counts(db) == before


def test_alpaca_eval_ai_labels_and_preference_zero(db, shared_data):
    r = import_file(db, ALPACA, "alpaca-eval")
    # data README: 805 rows = 584 x "1" + 205 x "2" + 16 x "0"
    assert (r.lines_read, r.imported, r.rejected) == (805, 805, 0)
    assert r.comparisons_added == 789 and r.without_comparison == 16
    comps = db.comparisons.list()
    assert {c.labeler_kind for c in comps} == {"ai"} and {c.labeler for c in comps} == {"alpaca_eval_gpt4"}
    winners = db.responses.get_many([c.ranking[0][0] for c in comps])
    first_won = sum(w.model == "text_davinci_003" for w in winners)
    models = {x["model"] for x in store_stats(db).responses_by_origin}
    assert models == {"alpaca-7b", "text_davinci_003"}
    raw = json.loads(ALPACA.read_text())
    assert first_won == sum(1 for x in raw if x["preference"] == 1 and x["generator_1"] == "text_davinci_003") \
        + sum(1 for x in raw if x["preference"] == 2 and x["generator_2"] == "text_davinci_003")


def test_mt_bench_prompts_first_turn(db, shared_data):
    r = import_file(db, MT_BENCH, "prompts")
    assert (r.lines_read, r.imported, r.rejected, r.dataset) == (80, 80, 0, "mt-bench")
    first = json.loads(MT_BENCH.read_text().splitlines()[0])
    assert db.prompts.list(dataset="mt-bench")[0].messages == [{"role": "user", "content": first["turns"][0]}]


# ------------------------------------------------------------------------ bad input
def _write(path, lines, gz=False):
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


GOOD_HH = json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"})


@pytest.mark.parametrize("line, field, reason", [
    ('{"chosen": "x", ', None, "malformed JSON"),
    (json.dumps({"rejected": "\n\nHuman: a\n\nAssistant: b"}), "chosen", "missing"),
    (json.dumps({"chosen": 5, "rejected": "\n\nHuman: a\n\nAssistant: b"}), "chosen", "expected a string"),
    (json.dumps([1, 2]), None, "expected a JSON object"),
])
def test_bad_lines_name_file_line_and_field_and_change_nothing(db, tmp_path, line, field, reason, shared_data):
    import_file(db, HH, "hh")
    before = _counts(db)
    path = _write(tmp_path / "bad.jsonl", [GOOD_HH, GOOD_HH.replace("hello", "hey"), line])
    with pytest.raises(store.InvalidInputError) as e:
        import_file(db, path, "hh")
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 3, field)
    assert reason in str(e.value) and str(path) + ":3" in str(e.value)
    assert _counts(db) == before


def test_invalid_utf8_is_reported_by_line(db, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(GOOD_HH.encode() + b"\n" + b'{"chosen": "\xff\xfe"}\n')
    with pytest.raises(store.InvalidInputError, match=r"bad.jsonl:2: invalid UTF-8"):
        import_file(db, path, "hh")
    assert _counts(db)["comparisons"] == 0


def test_empty_and_truncated_files(db, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(store.InvalidInputError, match="empty"):
        import_file(db, empty, "hh")
    data = gzip.compress(("\n".join([GOOD_HH] * 2000) + "\n").encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(store.InvalidInputError, match="truncated"):
        import_file(db, cut, "hh")
    with pytest.raises(store.InvalidInputError, match="does not exist"):
        import_file(db, tmp_path / "missing.jsonl", "hh")
    assert _counts(db)["prompts"] == 0


def test_skip_invalid_imports_the_good_lines_and_writes_rejects(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "mixed.jsonl.gz", [GOOD_HH, "{oops", json.dumps({"chosen": 1}),
                                                 GOOD_HH.replace("hello", "hey")], gz=True)
    r = import_file(db, path, "hh", skip_invalid=True)
    assert (r.lines_read, r.imported, r.rejected) == (4, 2, 2)
    rejects = [json.loads(x) for x in open(r.rejects_path)]
    assert [(x["line"], x["field"]) for x in rejects] == [(2, None), (3, "chosen")]
    assert rejects[0]["raw"] == "{oops" and "malformed JSON" in rejects[0]["reason"]


def test_hh_prefix_mismatch_is_rejected_with_line_and_field(db, tmp_path):
    bad = json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: a\n\nHuman: more\n\nAssistant: x",
                      "rejected": "\n\nHuman: hi\n\nAssistant: b\n\nHuman: more\n\nAssistant: y"})
    r = import_file(db, _write(tmp_path / "p.jsonl", [GOOD_HH, bad]), "hh",
                    rejects_path=tmp_path / "rej.jsonl")
    assert r.imported == 1
    (p,) = r.problems
    assert (p.line, p.field, p.kind) == (2, "rejected", "rejected")
    assert "differs from 'chosen'" in p.reason and "turn 2" in p.reason
    assert json.loads((tmp_path / "rej.jsonl").read_text())["line"] == 2


# ------------------------------------------------------------------------ TRL formats
ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
     "chosen": [{"role": "assistant", "content": "Paris"}],
     "rejected": [{"role": "assistant", "content": "Lyon"}]},
]
IMPLICIT = {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go."}]}


def _check_trl(db, r, n=2):
    assert (r.imported, r.rejected) == (n, 0)
    comps = db.comparisons.list()
    assert len(comps) == n and {c.labeler_kind for c in comps} == {"human"}
    texts = {db.responses.get_many(c.ranking[0])[0].text for c in comps}
    assert {"4", "Paris"} <= texts


def test_trl_jsonl_standard_conversational_and_implicit(db, tmp_path):
    path = _write(tmp_path / "prefs.jsonl", [json.dumps(x) for x in ROWS + [IMPLICIT]])
    r = import_file(db, path, "trl", dataset="mine", labeler_kind="ai", labeler="judge-x")
    assert (r.imported, r.rejected) == (3, 0)
    comps = db.comparisons.list()
    assert {(c.labeler_kind, c.labeler) for c in comps} == {("ai", "judge-x")}
    system_prompt = db.prompts.get(comps[1].prompt_id)
    assert system_prompt.messages[0] == {"role": "system", "content": "Be brief."}
    assert db.prompts.get(comps[2].prompt_id).messages == [{"role": "user", "content": "Hi"}]


def test_trl_parquet(db, tmp_path):
    path = tmp_path / "prefs.parquet"
    pq.write_table(pa.Table.from_pylist([ROWS[0], {"prompt": "Capital of France?", "chosen": "Paris",
                                                    "rejected": "Lyon"}]), path)
    _check_trl(db, import_file(db, path, "trl"))


def test_trl_datasets_dir(db, tmp_path):
    ds = datasets.DatasetDict({"train": datasets.Dataset.from_list([ROWS[1]]),
                               "test": datasets.Dataset.from_list([{**ROWS[1], "chosen": [
                                   {"role": "assistant", "content": "4"}]}])})
    ds.save_to_disk(str(tmp_path / "ds"))
    r = import_file(db, tmp_path / "ds", "trl")
    assert (r.imported, r.rejected) == (2, 0)


def test_trl_mistyped_field_names_the_row(db, tmp_path):
    path = _write(tmp_path / "p.jsonl", [json.dumps(ROWS[0]),
                                          json.dumps({"prompt": [{"role": "user", "content": "q"}],
                                                      "chosen": [{"role": "assistant"}], "rejected": "x"})])
    with pytest.raises(store.InvalidInputError, match=r"p.jsonl:2: field 'chosen\[0\].content'"):
        import_file(db, path, "trl")


def test_alpaca_eval_soft_preferences(db, tmp_path):
    rows = [{"instruction": f"i{k}", "output_1": "a", "output_2": "b", "generator_1": "g1",
             "generator_2": "g2", "annotator": "gpt", "preference": p}
            for k, p in enumerate([1, 2, 1.5, 1.25, "0"])]
    r = import_file(db, _write(tmp_path / "a.json", [json.dumps(rows)]), "alpaca-eval")
    assert (r.imported, r.comparisons_added, r.without_comparison) == (5, 4, 1)
    comps = {db.prompts.get(c.prompt_id).messages[0]["content"]: c for c in db.comparisons.list()}
    assert len(comps["i2"].ranking) == 1                      # 1.5: a tie
    assert comps["i3"].confidence == pytest.approx(0.5)       # 1.25: output_1, soft
    bad = [{**rows[0], "preference": 7}]
    with pytest.raises(store.InvalidInputError, match="field 'preference'"):
        import_file(db, _write(tmp_path / "b.json", [json.dumps(bad)]), "alpaca-eval")


def test_imported_prompts_hash_like_the_api(db, tmp_path):
    path = _write(tmp_path / "p.jsonl", [json.dumps(ROWS[1])])
    import_file(db, path, "trl")
    pid = db.comparisons.list()[0].prompt_id
    assert db.prompts.add([ROWS[1]["prompt"]]) == [pid]
    assert db.prompts.get(pid).text_hash == store.prompt_hash(ROWS[1]["prompt"])


def test_trl_parquet_bad_rows_are_reported_like_jsonl(db, tmp_path):
    rows = [ROWS[0], {"prompt": None, "chosen": "a", "rejected": "b"},
            {"prompt": "q", "chosen": " ", "rejected": "b"}, {"prompt": "q2", "chosen": "same", "rejected": "same"},
            {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"}]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(store.InvalidInputError, match=r"p.parquet:2: field 'prompt': missing"):
        import_file(db, path, "trl")
    r = import_file(db, path, "trl", skip_invalid=True, rejects_path=tmp_path / "rej.jsonl")
    assert (r.lines_read, r.imported, r.rejected) == (5, 2, 3)
    assert sorted((p.line, p.field, p.kind) for p in r.problems) == [
        (2, "prompt", "invalid"), (3, "chosen", "rejected"), (4, "rejected", "rejected")]


def test_a_label_studio_pairwise_export_imports_each_annotator_as_a_labeler(db, tmp_path):
    """Label Studio's RLHF pairwise template export: one human comparison per (task, annotator),
    cancelled annotations and predictions left out, choices and ties read, bad rows named."""
    import json

    from prefloop.store.importer import import_file

    tasks = [
        {"id": 1, "data": {"prompt": "Capital of France?", "answer1": "Paris.", "answer2": "Lyon."},
         "annotations": [
             {"completed_by": 3, "result": [{"from_name": "comparison", "to_name": ["answer1", "answer2"],
                                             "type": "pairwise", "value": {"selected": "left"}}]},
             {"completed_by": {"id": 4, "email": "bo@example.com"},
              "result": [{"type": "pairwise", "value": {"selected": "right"}}]},
             {"completed_by": 5, "was_cancelled": True, "result": []}],
         "predictions": [{"result": [{"type": "pairwise", "value": {"selected": "right"}}]}]},
        {"id": 2, "data": {"prompt": "2+2?", "text1": "4", "text2": "5"},
         "annotations": [{"completed_by": 3, "result": [{"type": "choices", "value": {"choices": ["Answer 1"]}}]},
                         {"completed_by": 4, "result": [{"type": "choices", "value": {"choices": ["Tie"]}}]}]},
        {"id": 3, "data": {"prompt": "Hi", "answer1": "a", "answer2": "b"},
         "annotations": [{"completed_by": 3, "result": [{"type": "pairwise", "value": {"selected": "up"}}]}]},
    ]
    f = tmp_path / "ls.json"
    f.write_text(json.dumps(tasks, indent=1))
    report = import_file(db, f, "label-studio", skip_invalid=True)
    assert report.rejected == 1 and "selected" in str(report.reasons()[0])
    got = sorted((c.labeler, [[len(g) for g in c.ranking]]) for c in db.comparisons.list())
    assert [g[0] for g in got] == ["label-studio:3", "label-studio:3", "label-studio:4",
                                   "label-studio:bo@example.com"]
    texts = {r.id: r.text for rs in db.responses.for_prompts([p.id for p in db.prompts.list()]).values() for r in rs}
    by = {c.labeler: c for c in db.comparisons.list() if texts[c.ranking[0][0]] in ("Paris.", "Lyon.")}
    assert texts[by["label-studio:3"].ranking[0][0]] == "Paris."
    assert texts[by["label-studio:bo@example.com"].ranking[0][0]] == "Lyon."
    tie = [c for c in db.comparisons.list() if c.labeler == "label-studio:4"][0]
    assert len(tie.ranking) == 1 and len(tie.ranking[0]) == 2
    assert all(c.labeler_kind == "human" for c in db.comparisons.list())


def test_label_studio_round_trip_export_annotate_import(db, tmp_path):
    """Export pairs as Label Studio tasks (AI labels as predictions), annotate them as Label
    Studio would (a pairwise result per task), import the annotated export: every label lands
    on the same prompt and responses, by the Label Studio annotator."""
    import json

    from prefloop.store.export_files import ExportOptions, export_pairs
    from prefloop.store.importer import import_file
    from prefloop.store.pairs import PairFilters

    for i in range(4):
        pid = db.prompts.add([[{"role": "user", "content": f"round trip {i}?"}]])[0]
        a, b = db.responses.add([store.ResponseIn(pid, f"good {i}"), store.ResponseIn(pid, f"bad {i}")])
        db.comparisons.record(pid, [[a], [b]], labeler_kind="ai" if i % 2 else "human", labeler="j")
    export_pairs(db, tmp_path / "e", PairFilters(test_fraction=0.0), ExportOptions(format="label-studio"))
    assert "<Pairwise" in (tmp_path / "e" / "label-studio" / "config.xml").read_text()
    tasks = json.loads((tmp_path / "e" / "label-studio" / "train.json").read_text())
    assert len(tasks) == 4 and sum("predictions" in t for t in tasks) == 2
    for t in tasks:                                    # a person picks the "good" answer
        side = "left" if t["data"]["answer1"].startswith("good") else "right"
        if "predictions" in t:
            assert t["predictions"][0]["result"][0]["value"]["selected"] == side
        t["annotations"] = [{"completed_by": 7, "result": [
            {"from_name": "comparison", "to_name": ["answer1", "answer2"], "type": "pairwise",
             "value": {"selected": side}}]}]
    (tmp_path / "done.json").write_text(json.dumps(tasks))
    before = {p.id for p in db.prompts.list()}
    import_file(db, tmp_path / "done.json", "label-studio")
    assert {p.id for p in db.prompts.list()} == before            # the same prompts, not new ones
    ls = db.comparisons.list(labeler="label-studio:7")
    texts = {r.id: r.text for rs in db.responses.for_prompts(sorted(before)).values() for r in rs}
    assert len(ls) == 4 and all(texts[c.ranking[0][0]].startswith("good") for c in ls)


def _argilla_to_disk(folder, records, questions, fields=("prompt", "response1", "response2")):
    """A folder as ``rg.Dataset.to_disk`` writes it (Argilla 2.x): ``Settings.serialize()`` in
    ``.argilla/settings.json``, one ``Record.to_dict()`` per record in ``records.json``, both
    dumped on one line as Argilla's ``json.dump`` does."""
    (folder / ".argilla").mkdir(parents=True)
    settings = {"guidelines": None, "allow_extra_metadata": False, "vectors": [], "metadata": [],
                "fields": [{"id": None, "name": f, "title": f, "required": True,
                            "settings": {"type": "text", "use_markdown": False}} for f in fields],
                "questions": questions}
    (folder / ".argilla" / "settings.json").write_text(json.dumps(settings))
    (folder / ".argilla" / "dataset.json").write_text(json.dumps({"name": folder.name}))
    (folder / "records.json").write_text(json.dumps(records))


def _argilla_record(i, prompt, a, b, responses, suggestions=None):
    return {"id": f"rec-{i}", "fields": {"prompt": prompt, "response1": a, "response2": b},
            "metadata": {}, "suggestions": suggestions or {}, "responses": responses,
            "vectors": {}, "_server_id": None}


def test_an_argilla_to_disk_ranking_dataset_imports_each_user_as_a_labeler(db, tmp_path):
    """Argilla 2.x ``to_disk``: a RankingQuestion over two response fields; each submitted user
    response is one human comparison by ``argilla:<user_id>``; drafts, discarded responses and
    suggestions are not labels; a record without responses adds its texts only."""
    ranking = {"name": "ranking", "title": "Rank", "required": True, "settings": {
        "type": "ranking", "options": [{"value": "response1", "text": "Response 1", "description": None},
                                       {"value": "response2", "text": "Response 2", "description": None}]}}
    u1, u2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    records = [
        _argilla_record(0, "Capital of France?", "Paris.", "Lyon.", {"ranking": [
            {"value": ["response1", "response2"], "user_id": u1},
            {"value": ["response2", "response1"], "user_id": u2, "status": "submitted"},
            {"value": ["response2", "response1"], "user_id": "draft-user", "status": "draft"}]},
            suggestions={"ranking": {"value": ["response2", "response1"], "score": 0.9, "agent": "gpt"}}),
        _argilla_record(1, "2+2?", "4", "5", {"ranking": [       # the server's raw form, a tie
            {"value": [{"value": "response1", "rank": 1}, {"value": "response2", "rank": 1}], "user_id": u1}]}),
        _argilla_record(2, "Unlabeled?", "yes", "no", {}),
    ]
    _argilla_to_disk(tmp_path / "ds", records, [ranking])
    r = import_file(db, tmp_path / "ds", "argilla")
    assert (r.rejected, r.comparisons_added) == (0, 3)
    assert len(db.prompts.list()) == 3 and r.dataset == "ds"
    texts = {x.id: x.text for rs in db.responses.for_prompts([p.id for p in db.prompts.list()]).values()
             for x in rs}
    got = sorted((c.labeler, [sorted(texts[i] for i in g) for g in c.ranking])
                 for c in db.comparisons.list())
    assert got == [(f"argilla:{u1}", [["4", "5"]]), (f"argilla:{u1}", [["Paris."], ["Lyon."]]),
                   (f"argilla:{u2}", [["Lyon."], ["Paris."]])]
    assert all(c.labeler_kind == "human" for c in db.comparisons.list())
    assert import_file(db, tmp_path / "ds", "argilla").comparisons_added == 0     # idempotent


def test_an_argilla_label_question_and_bad_records_are_named(db, tmp_path):
    """A LabelQuestion whose labels are positions (A, B, tie) works without settings too; a
    label that names no response, or a ranking that leaves one out, is one line naming
    records.json, the record and the field; nothing is written."""
    label = {"name": "preference", "title": "Which is better?", "required": True,
             "settings": {"type": "label_selection", "options": [
                 {"value": "A", "text": "A"}, {"value": "B", "text": "B"}, {"value": "tie", "text": "Tie"}]}}
    good = [_argilla_record(0, "Hi?", "Hello!", "Go away.", {"preference": [{"value": "A", "user_id": "u1"},
                                                                              {"value": "tie", "user_id": "u2"}]})]
    _argilla_to_disk(tmp_path / "lab", good, [label])
    assert import_file(db, tmp_path / "lab", "argilla").comparisons_added == 2
    bare = tmp_path / "bare"                                      # records.json alone: inferred
    bare.mkdir()
    (bare / "records.json").write_text(json.dumps(
        [_argilla_record(0, "Bye?", "Bye!", "No.", {"preference": [{"value": "B", "user_id": "u3"}]})]))
    assert import_file(db, bare / "records.json", "argilla").comparisons_added == 1
    assert any(c.labeler == "argilla:u3" for c in db.comparisons.list())

    n = len(db.comparisons.list())
    bad = good + [_argilla_record(1, "Q?", "x", "y", {"preference": [{"value": "C?", "user_id": "u1"}]})]
    _argilla_to_disk(tmp_path / "bad", bad, [label])
    with pytest.raises(store.InvalidInputError,
                       match=r"bad/records.json:2: field 'responses.preference\[0\].value': option 'C\?'"):
        import_file(db, tmp_path / "bad", "argilla")
    ranking = {"name": "r", "settings": {"type": "ranking", "options": [
        {"value": "response1"}, {"value": "response2"}]}}
    _argilla_to_disk(tmp_path / "short", [_argilla_record(0, "Q?", "x", "y", {"r": [
        {"value": ["response1"], "user_id": "u1"}]})], [ranking])
    with pytest.raises(store.InvalidInputError, match=r"records.json:1: .*ranked once"):
        import_file(db, tmp_path / "short", "argilla")
    with pytest.raises(store.InvalidInputError, match=r"empty/records.json: not found"):
        (tmp_path / "empty").mkdir()
        import_file(db, tmp_path / "empty", "argilla")
    _argilla_to_disk(tmp_path / "noq", good, [{"name": "t", "settings": {"type": "text"}}])
    with pytest.raises(store.InvalidInputError, match=r"settings.json: field 'questions': no ranking"):
        import_file(db, tmp_path / "noq", "argilla")
    assert len(db.comparisons.list()) == n


_RANKING = {"name": "ranking", "title": "Rank", "required": True, "settings": {
    "type": "ranking", "options": [{"value": "response1", "text": "1"}, {"value": "response2", "text": "2"}]}}


@pytest.mark.parametrize("settings, field", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (json.dumps({"fields": [], "questions": [{"name": "r", "settings": {"type": "ranking", "options": 5}}]}),
     "questions[0].settings.options"),
    (json.dumps({"fields": [], "questions": [{"name": ["r"], "settings": {"type": "ranking"}}]}), "questions[0].name"),
    (json.dumps({"fields": [{"name": {"x": 1}}], "questions": [_RANKING]}), "fields[0].name"),
])
def test_a_hostile_argilla_settings_file_is_one_line_and_imports_nothing(db, tmp_path, settings, field):
    from prefloop.store.importer import import_file

    folder = tmp_path / "ds"
    _argilla_to_disk(folder, [_argilla_record(0, "q", "a", "b", {})], [_RANKING])
    (folder / ".argilla" / "settings.json").write_text(settings)
    with pytest.raises(store.InvalidInputError, match=re.escape(field)):
        import_file(db, folder, "argilla")
    assert db.prompts.list() == []


def test_argilla_problems_name_the_records_file_and_the_dataset_names_the_folder(db, tmp_path, monkeypatch):
    from prefloop.store.importer import import_file
    from prefloop.store.validation import MAX_TEXT_CHARS

    folder = tmp_path / "mine"
    long = "x" * (MAX_TEXT_CHARS + 1)
    _argilla_to_disk(folder, [_argilla_record(0, long, "a", "b", {})], [_RANKING])
    with pytest.raises(store.InvalidInputError, match=re.escape(f"{folder / 'records.json'}:1: field")):
        import_file(db, folder, "argilla")
    (folder / "records.json").write_text(json.dumps([_argilla_record(0, "q", "a", "b", {})]))
    monkeypatch.chdir(folder)
    assert import_file(db, Path("."), "argilla").dataset == "mine"
    monkeypatch.chdir(folder / ".argilla")
    assert import_file(db, Path(".."), "argilla").dataset == "mine"


def test_labeler_names_are_bounded_and_cancelled_must_be_a_boolean(db, tmp_path):
    from prefloop.store.importer import import_file

    ann = {"completed_by": "u" * 1_000_013, "result": [{"type": "pairwise", "value": {"selected": "left"}}]}
    f = tmp_path / "ls.json"
    f.write_text(json.dumps([{"id": 1, "data": {"prompt": "p", "answer1": "a", "answer2": "b"}, "annotations": [ann]}]))
    with pytest.raises(store.InvalidInputError, match=r"ls.json:1: field 'labeler': .*more than the 255 allowed"):
        import_file(db, f, "label-studio")
    ann.update(completed_by=3, was_cancelled="false")
    f.write_text(json.dumps([{"id": 1, "data": {"prompt": "p", "answer1": "a", "answer2": "b"}, "annotations": [ann]}]))
    with pytest.raises(store.InvalidInputError, match=r"annotations\[0\].was_cancelled': expected true or false"):
        import_file(db, f, "label-studio")
    assert db.comparisons.list() == []


def test_a_path_part_over_255_bytes_is_one_line(db, tmp_path, cli):
    db.close()
    r = cli("--db", db.path, "import", str(tmp_path / ("z" * 300) / "x.jsonl"), "--format", "prompts")
    assert r.exit_code == 1 and "File name too long" in r.output and "Traceback" not in r.output
