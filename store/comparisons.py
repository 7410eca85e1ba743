"""Comparisons: rankings of a prompt's responses by one labeler (a person or an AI judge)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .engine import Engine, fetch_records, to_json
from .errors import LeaseError, NotFoundError, ValidationError
from .platform import emit_event
from .records import LABELER_KINDS, STRENGTHS, Comparison, Ranking, text_hash, utcnow
from .tasks import DEFAULT_LEASE_SECONDS, TasksAPI
from .validation import validate_name, validate_ranking, validate_text
from .votes import LABELER_JOIN, LABELER_SQL, votes_cte

__all__ = ["ComparisonsAPI", "COMPARISON_SELECT"]

#: Comparison rows as :class:`Comparison` records (``c`` joined to its annotator).
COMPARISON_SELECT = (f"SELECT c.id, c.prompt_id, c.ranking, c.labeler_kind, {LABELER_SQL} AS labeler, "
                     "c.task_id, c.rationale, c.flags, c.confidence, c.duration_ms, c.created_at, "
                     f"c.annotator_id, c.eval_run_id, c.strength FROM comparisons c {LABELER_JOIN}")


class ComparisonsAPI:
    """``store.comparisons``. A submission from the labeling app records the annotator's id
    (``annotator_id``); imported and AI labels record a ``labeler`` name."""

    def __init__(self, engine: Engine, tasks: TasksAPI):
        self.engine, self.tasks = engine, tasks

    def record(self, prompt_id: int, ranking: Ranking, *, labeler_kind: str,
               labeler: str | None = None, task_id: int | None = None,
               annotator_id: int | None = None, rationale: str | None = None,
               flags: Sequence[str] = (), confidence: float | None = None,
               duration_ms: int | None = None, dedup_key: str | None = None,
               eval_run_id: int | None = None, now: datetime | None = None,
               suggestion: dict | None = None, strength: str | None = None) -> int:
        """Record a ranking of responses of one prompt; returns the comparison id.

        With ``task_id`` (a submission from the labeling app) the ranking must cover exactly the
        task's responses and ``annotator_id`` must hold a lease on it (an expired lease is still
        accepted while the task has a free slot); the assignment becomes ``done`` in the same
        transaction. A second submission of the same task by the same annotator raises.
        With ``dedup_key`` an existing comparison with that key is returned instead of a new one.
        ``eval_run_id`` marks an evaluation label (a task's is inherited): training exports
        leave such labels out unless asked for. ``suggestion`` records the AI suggestion the
        task had (``{"response_id": best or None for a tie, "labeler": ..., "shown_before":
        bool}``; see :meth:`ai_suggestion`). ``strength`` (one of
        :data:`~prefloop.store.records.STRENGTHS`) says how much better the first of a
        two-group ranking of two responses is.

        Raises:
            ValidationError: bad ranking, responses not of this prompt, bad labeler kind, no
                labeler (neither ``labeler`` nor ``annotator_id``), a rationale over
                :data:`MAX_TEXT_CHARS`, confidence outside [0, 1], or a strength that is not
                one of :data:`STRENGTHS` or on a ranking other than one response over another.
            LeaseError: no lease, or the task is already full.
        """
        ranking = validate_ranking(ranking)
        if labeler_kind not in LABELER_KINDS:
            raise ValidationError(f"labeler_kind {labeler_kind!r} is not one of {LABELER_KINDS}")
        if annotator_id is None and not labeler:
            raise ValidationError("a comparison needs a labeler name or an annotator id")
        validate_name(labeler, "labeler")
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise ValidationError(f"confidence {confidence} is outside [0, 1]")
        if rationale is not None:
            validate_text(rationale, "rationale")
        if strength is not None and (strength not in STRENGTHS or len(ranking) != 2
                                     or any(len(g) != 1 for g in ranking)):
            raise ValidationError(f"strength {strength!r}: expected one of {STRENGTHS}, on a "
                                  "ranking of one response over another")
        rids = [r for g in ranking for r in g]
        now = now or utcnow()
        with self.engine.atomic() as con:
            key = None if dedup_key is None else text_hash(f"api:{dedup_key}")
            if key is not None:
                row = con.execute("SELECT id FROM comparisons WHERE dedup_key = ?", [key]).fetchone()
                if row:
                    return row[0]
            owners = dict(con.execute("SELECT id, prompt_id FROM responses WHERE id IN "
                                      "(SELECT unnest(?))", [rids]).fetchall())
            bad = [r for r in rids if owners.get(r) != prompt_id]
            if bad:
                raise ValidationError(f"ranking: responses {bad} do not exist or are not "
                                      f"responses to prompt {prompt_id}")
            if task_id is not None:
                eval_run_id = self.tasks.complete_assignment(con, task_id, annotator_id, prompt_id,
                                                             rids, now) or eval_run_id
            cid = con.execute(
                "INSERT INTO comparisons (prompt_id, task_id, ranking, labeler_kind, labeler, "
                "annotator_id, rationale, flags, confidence, duration_ms, dedup_key, created_at, "
                "eval_run_id, suggestion, strength) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                [prompt_id, task_id, ranking, labeler_kind,
                 None if annotator_id is not None else labeler, annotator_id, rationale,
                 list(flags), confidence, duration_ms, key, now, eval_run_id,
                 to_json(suggestion), strength]).fetchone()[0]
            emit_event(con, "comparison.created", {"comparison_id": cid, "prompt_id": prompt_id,
                                                   "task_id": task_id, "labeler_kind": labeler_kind})
            return cid

    def ai_suggestion(self, prompt_id: int, response_ids: Sequence[int], *,
                      labeler: str | None = None) -> tuple[int | None, str] | None:
        """What AI labels (judges, reward models; evaluation labels left out) say about two
        responses: ``(the preferred response id, or None for a tie, the labelers)`` by the
        majority of their directed votes, or ``None`` when no AI label covers the pair.
        ``labeler``: only that AI labeler's comparisons."""
        if len(response_ids) != 2:
            return None
        lo, hi = sorted(int(r) for r in response_ids)
        with self.engine.atomic() as con:
            row = con.execute(f"""
                WITH {votes_cte("SELECT c.id, c.prompt_id, c.ranking, c.labeler FROM comparisons c "
                                "WHERE c.labeler_kind = 'ai' AND c.eval_run_id IS NULL AND c.prompt_id = $p "
                                "AND ($labeler::VARCHAR IS NULL OR c.labeler = $labeler)", carry=["labeler"])}
                SELECT sum(dir), count(*), string_agg(DISTINCT labeler, ', ' ORDER BY labeler)
                FROM votes WHERE lo = $lo AND hi = $hi""",
                {"p": prompt_id, "lo": lo, "hi": hi, "labeler": labeler}).fetchone()
        if not row or not row[1]:
            return None
        s = row[0] or 0
        return (lo if s > 0 else hi if s < 0 else None), row[2]

    def assist_report(self) -> list[dict]:
        """Anchoring: people's agreement with the AI suggestion their task had, by whether it
        was shown before their choice. Rows ``{shown_before, labels, agree, rate, low, high}``
        (Wilson 95% interval); ties on either side count as agreement only with each other."""
        from prefloop.core.stats import wilson_ci

        with self.engine.atomic() as con:
            rows = con.execute("""
                SELECT (suggestion->>'shown_before')::BOOLEAN AS shown,
                       count(*), count(*) FILTER (
                           CASE WHEN suggestion->>'response_id' IS NULL THEN len(ranking) = 1
                                ELSE len(ranking) = 2 AND ranking[1][1] = (suggestion->>'response_id')::BIGINT
                           END)
                FROM comparisons WHERE suggestion IS NOT NULL AND labeler_kind = 'human'
                GROUP BY 1 ORDER BY 1""").fetchall()
        out = []
        for shown, n, k in rows:
            low, high = wilson_ci(k, n)
            out.append({"shown_before": bool(shown), "labels": n, "agree": k,
                        "rate": k / n if n else None, "low": low, "high": high})
        return out

    def undo(self, comparison_id: int, annotator_id: int, *, window_seconds: float = 60.0,
             lease_seconds: float = DEFAULT_LEASE_SECONDS, now: datetime | None = None) -> int:
        """Withdraw an annotator's own task submission made less than ``window_seconds`` ago.

        The comparison is deleted with the edit it carried (the ``edit:<task>:<annotator>``
        comparison of a human edit, so nothing withdrawn is exported and a new edit can be
        recorded), the task is leased to the annotator again, and any other task leased to
        them since (the next task shown after the submission) goes back to the queue, so the
        withdrawn task is the one they see. Returns the task id.

        Raises:
            LeaseError: not a task submission of this annotator, or past the undo window.
        """
        now = now or utcnow()
        with self.engine.atomic() as con:
            row = con.execute(
                "SELECT c.task_id, c.created_at FROM comparisons c JOIN assignments a ON "
                "a.task_id = c.task_id AND a.annotator_id = c.annotator_id AND a.state = 'done' "
                "WHERE c.id = ? AND c.annotator_id = ?", [comparison_id, annotator_id]).fetchone()
            if row is None:
                raise LeaseError(f"comparison {comparison_id} is not a task submission of "
                                 f"annotator {annotator_id}")
            if (now - row[1]).total_seconds() > window_seconds:
                raise LeaseError(f"comparison {comparison_id} is older than the "
                                 f"{window_seconds:.0f} s undo window")
            con.execute("DELETE FROM comparisons WHERE id = ?", [comparison_id])
            con.execute("DELETE FROM ratings WHERE comparison_id = ?", [comparison_id])
            con.execute("DELETE FROM comparisons WHERE dedup_key = ? AND annotator_id = ?",
                        [text_hash(f"api:edit:{row[0]}:{annotator_id}"), annotator_id])
            con.execute("DELETE FROM assignments WHERE annotator_id = ? AND state = 'leased' "
                        "AND task_id <> ?", [annotator_id, row[0]])
            self.tasks.reopen(con, row[0], annotator_id, now, lease_seconds)
            return row[0]

    def rate(self, comparison_id: int, ratings: dict[int, dict[str, int]], *, scale: int) -> int:
        """Attach per-response ratings of named aspects to a comparison (in its transaction
        when nested): ``{response_id: {aspect: value}}``, values in ``1..scale``. Returns the
        number of rating rows.

        Raises:
            ValidationError: a value outside ``1..scale``, an aspect name that is empty or
                over 64 characters, a response not in the comparison.
            NotFoundError: no such comparison.
        """
        rows = []
        for rid, by_aspect in ratings.items():
            for aspect, value in by_aspect.items():
                if not isinstance(aspect, str) or not aspect.strip() or len(aspect) > 64:
                    raise ValidationError(f"rating aspect {aspect!r}: a name of 1 to 64 characters")
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= scale:
                    raise ValidationError(f"rating {aspect} of response {rid}: {value!r} is not an "
                                          f"integer in 1..{scale}")
                rows.append((int(rid), aspect.strip(), int(value)))
        with self.engine.atomic() as con:
            found = con.execute("SELECT prompt_id, flatten(ranking) FROM comparisons WHERE id = ?",
                                [comparison_id]).fetchone()
            if found is None:
                raise NotFoundError(f"no comparison with id {comparison_id}")
            bad = sorted({r for r, _, _ in rows} - set(found[1]))
            if bad:
                raise ValidationError(f"ratings of responses {bad} that comparison {comparison_id} "
                                      "does not rank")
            if rows:
                con.executemany("INSERT INTO ratings (comparison_id, prompt_id, response_id, aspect, "
                                "value, scale) VALUES (?, ?, ?, ?, ?, ?)",
                                [(comparison_id, found[0], r, a, v, scale) for r, a, v in rows])
        return len(rows)

    def max_id(self) -> int:
        """The newest comparison's id (0 in an empty store): labels recorded later have larger ids."""
        with self.engine.atomic() as con:
            return con.execute("SELECT coalesce(max(id), 0) FROM comparisons").fetchone()[0]

    def count_after(self, after: int, *, labeler_kind: str | None = "human") -> int:
        """How many comparisons (of ``labeler_kind``; evaluation labels left out) have an id
        above ``after``."""
        with self.engine.atomic() as con:
            return con.execute("SELECT count(*) FROM comparisons WHERE id > ? AND eval_run_id IS NULL "
                               "AND (?::VARCHAR IS NULL OR labeler_kind = ?)",
                               [after, labeler_kind, labeler_kind]).fetchone()[0]

    def page(self, *, after: int = 0, limit: int = 100) -> list[Comparison]:
        """Comparisons with an id above ``after``, oldest first, at most ``limit`` (cursor
        pagination: pass the last id as the next ``after``)."""
        with self.engine.atomic() as con:
            return fetch_records(con, Comparison, f"{COMPARISON_SELECT} WHERE c.id > ? ORDER BY c.id "
                                 "LIMIT ?", [after, limit])

    def get(self, comparison_id: int) -> Comparison:
        """The comparison with this id. Raises :class:`NotFoundError`."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Comparison, f"{COMPARISON_SELECT} WHERE c.id = ?",
                                  [comparison_id], flags=list)
        if not found:
            raise NotFoundError(f"no comparison with id {comparison_id}")
        return found[0]

    def list(self, *, labeler_kind: str | None = None, labeler: str | None = None,
             prompt_ids: Sequence[int] | None = None, task_id: int | None = None,
             annotator_id: int | None = None, eval_run_id: int | None = None) -> list[Comparison]:
        """Comparisons matching every given filter, by id (``labeler`` matches the name as
        people read it: an annotator's current name or the recorded labeler; ``eval_run_id``:
        the labels of that evaluation's blind tasks)."""
        with self.engine.atomic() as con:
            return fetch_records(
                con, Comparison, f"""{COMPARISON_SELECT} WHERE
                    ($kind::VARCHAR IS NULL OR c.labeler_kind = $kind)
                AND ($labeler::VARCHAR IS NULL OR {LABELER_SQL} = $labeler)
                AND ($pids::BIGINT[] IS NULL OR c.prompt_id IN (SELECT unnest($pids::BIGINT[])))
                AND ($task::BIGINT IS NULL OR c.task_id = $task)
                AND ($ann::BIGINT IS NULL OR c.annotator_id = $ann)
                AND ($ev::BIGINT IS NULL OR c.eval_run_id = $ev) ORDER BY c.id""",
                {"kind": labeler_kind, "labeler": labeler,
                 "pids": None if prompt_ids is None else list(prompt_ids), "task": task_id,
                 "ann": annotator_id, "ev": eval_run_id}, flags=list)

    def candidate_pairs(self, source: str = "human", *, dataset: str | None = None,
                        limit: int | None = None) -> list[tuple[int, int, int]]:
        """Response pairs to judge, as ``(prompt_id, a_id, b_id)`` with ``a_id < b_id``,
        deduplicated, in a stable order (prompt id, then response ids).

        ``source``: ``human`` / ``ai`` (pairs ranked by such labelers: every two responses
        in different groups of a comparison), ``tasks`` (every two responses of a labeling
        task) or ``generated`` (every two model-sampled responses of a prompt).

        Raises:
            ValidationError: unknown source.
        """
        if source in ("human", "ai"):
            sql = (f"WITH {votes_cte('SELECT id, prompt_id, ranking FROM comparisons WHERE labeler_kind = $source')} "
                   "SELECT DISTINCT prompt_id, lo AS x, hi AS y FROM votes WHERE dir <> 0")
        elif source == "tasks":
            sql = """
                WITH i AS (SELECT id, prompt_id, unnest(response_ids) rid FROM tasks)
                SELECT DISTINCT a.prompt_id, a.rid x, b.rid y
                FROM i a JOIN i b ON a.id = b.id AND a.rid < b.rid"""
        elif source == "generated":
            sql = """
                SELECT DISTINCT a.prompt_id, a.id x, b.id y FROM responses a
                JOIN responses b ON a.prompt_id = b.prompt_id AND a.id < b.id
                WHERE a.origin = 'model' AND b.origin = 'model'"""
        else:
            raise ValidationError(f"source {source!r}: expected human, ai, tasks or generated")
        params = {"dataset": dataset, "limit": limit if limit is not None else 2**62}
        if source in ("human", "ai"):
            params["source"] = source
        with self.engine.atomic() as con:
            rows = con.execute(f"""
                SELECT s.* FROM ({sql}) s JOIN prompts p ON p.id = s.prompt_id
                WHERE $dataset::VARCHAR IS NULL OR p.dataset = $dataset
                ORDER BY 1, 2, 3 LIMIT $limit""", params).fetchall()
        return [tuple(r) for r in rows]
