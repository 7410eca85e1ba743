"""The OpenAI backend against a real ``transformers serve`` subprocess on loopback."""

from __future__ import annotations

import pytest

from prefloop.judge.backends import OpenAIBackend
from prefloop.judge.batch import run_batch

from .conftest import make_pairs

pytestmark = pytest.mark.model


def test_pairwise_and_critique_through_transformers_serve(db, served_tiny, monkeypatch):
    monkeypatch.setenv("PREFLOOP_JUDGE_API_KEY", "sk-test-secret")
    base_url, model = served_tiny
    for p, (a, b) in make_pairs(db, 2):
        db.comparisons.record(p, [[a], [b]], labeler_kind="human", labeler="h")
    backend = OpenAIBackend(model, base_url, timeout=60)
    assert "sk-test-secret" not in repr(backend)
    r = run_batch(db, "pairwise", backend, concurrency=2, progress=False)
    assert r.summary["calls"] == 4 and r.summary["failed"] == 0
    js = db.judgments.list(judge_model=model)
    assert len(js) == 4 and all(j.raw_output is not None and j.tokens_in > 0 for j in js)
    # the tiny random model rarely says A or B: whatever it says is kept, parsed or not
    assert r.summary["unparseable"] == sum(j.verdict is None for j in js)
    c = run_batch(db, "critique", backend, limit=1, progress=False, max_tokens=16)
    assert c.summary["calls"] >= 2 and c.summary["failed"] == 0, c.summary.get("errors")
    run = db.runs.get(c.run.id)
    assert "sk-test-secret" not in str(run.config) and run.status == "finished"
