"""Samples: the response each model version gave to each evaluation prompt, and the votes
between model versions that they make possible (for the Bradley-Terry leaderboard)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from .engine import Engine, fetch_records, registered
from .records import Sample
from .votes import votes_cte

__all__ = ["SamplesAPI"]

_COLS = ("run_id, model, prompt_id, response_id, gen_key, n_tokens, finished, logprob, token_ids, "
         "created_at")


class SamplesAPI:
    """``store.samples``. A sample is keyed by ``(gen_key, prompt_id)``: the same checkpoint,
    sampling settings and seed on the same prompt are drawn once and reused."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, samples: Iterable[Sample]) -> int:
        """Record samples (a ``(gen_key, prompt_id)`` already present keeps its first row);
        returns how many were new."""
        items = list(samples)
        if not items:
            return 0
        batch = pa.table({
            "run_id": pa.array([x.run_id for x in items], pa.int64()),
            "model": [x.model for x in items],
            "prompt_id": pa.array([x.prompt_id for x in items], pa.int64()),
            "response_id": pa.array([x.response_id for x in items], pa.int64()),
            "gen_key": [x.gen_key for x in items],
            "n_tokens": pa.array([x.n_tokens for x in items], pa.int64()),
            "finished": pa.array([x.finished for x in items], pa.bool_()),
            "logprob": pa.array([x.logprob for x in items], pa.float64()),
            "token_ids": pa.array([x.token_ids for x in items], pa.list_(pa.int32()))})
        with self.engine.atomic() as con, registered(con, "sample_batch", batch):
            return con.execute("""
                INSERT INTO samples (run_id, model, prompt_id, response_id, gen_key, n_tokens,
                                     finished, logprob, token_ids)
                SELECT * FROM sample_batch b WHERE NOT EXISTS (
                    SELECT 1 FROM samples s WHERE s.gen_key = b.gen_key AND s.prompt_id = b.prompt_id)
                QUALIFY row_number() OVER (PARTITION BY gen_key, prompt_id) = 1""").fetchone()[0]

    def find(self, gen_key: str, prompt_ids: Sequence[int]) -> dict[int, Sample]:
        """The recorded samples of ``gen_key`` among these prompts, by prompt id."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Sample, f"SELECT {_COLS} FROM samples WHERE gen_key = ? "
                                  "AND prompt_id IN (SELECT unnest(?))", [gen_key, list(prompt_ids)])
        return {x.prompt_id: x for x in found}

    def models(self) -> dict[str, int]:
        """Model versions with samples, and how many prompts each has."""
        with self.engine.atomic() as con:
            return dict(con.execute("SELECT model, count(DISTINCT prompt_id) FROM samples "
                                    "GROUP BY model ORDER BY model").fetchall())

    def model_votes(self, *, with_tokens: bool = False) -> list[tuple]:
        """Every pairwise vote between responses of two different model versions, as
        ``(model_a, model_b, outcome for a, labeler_kind)`` with outcome 1 / 0.5 / 0, and with
        ``with_tokens`` the two responses' lengths too (``tokens_a, tokens_b``: generated tokens,
        for the leaderboard's style control). A text
        that several versions gave (sampling with common random numbers makes that frequent
        for versions that barely differ) counts for each of them: a comparison of texts ``x``
        and ``y`` votes between every version that gave ``x`` and every one that gave ``y``."""
        with self.engine.atomic() as con:
            rows = [tuple(r[1:]) for r in con.execute(f"""
                WITH {votes_cte("SELECT id, prompt_id, ranking, labeler_kind FROM comparisons",
                                carry=["labeler_kind"])}
                SELECT DISTINCT v.cid, a.model, b.model,
                       (CASE dir WHEN 1 THEN 1.0 WHEN -1 THEN 0.0 ELSE 0.5 END)::DOUBLE, v.labeler_kind,
                       coalesce(a.n_tokens, 0), coalesce(b.n_tokens, 0)
                FROM votes v
                JOIN samples a ON a.response_id = v.lo AND a.prompt_id = v.prompt_id
                JOIN samples b ON b.response_id = v.hi AND b.prompt_id = v.prompt_id
                WHERE a.model <> b.model ORDER BY v.cid, a.model, b.model""").fetchall()]
        return rows if with_tokens else [r[:4] for r in rows]
