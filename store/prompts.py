"""Prompts and responses: content-addressed, deduplicated rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import pyarrow as pa

from .engine import Engine, fetch_records, id_list, registered, to_json
from .errors import NotFoundError, ValidationError
from .records import Message, Prompt, Response, ResponseIn, prompt_hash, text_hash
from .validation import validate_messages, validate_name, validate_origin, validate_response_text

__all__ = ["PromptsAPI", "ResponsesAPI"]

_PROMPT_COLS = "id, messages, text_hash, source, dataset, created_at"
_RESPONSE_COLS = ("id, prompt_id, text, text_hash, origin, model, run_id, parent_response_id, "
                  "gen_params, created_at")


class PromptsAPI:
    """``store.prompts``: conversations that end with a user turn."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, prompts: Iterable[Sequence[Message]], *, source: str | None = None,
            dataset: str | None = None) -> list[int]:
        """Add prompts, deduplicated by :func:`prompt_hash`; returns their ids in input order
        (an existing prompt's id when it was already there).

        Raises:
            ValidationError: a prompt is not a list of messages ending with a user turn.
        """
        validate_name(source, "source")
        validate_name(dataset, "dataset")
        rows = []
        for i, msgs in enumerate(prompts):
            try:
                clean = validate_messages(list(msgs))
            except ValidationError as exc:
                raise ValidationError(f"prompt {i}: {exc}") from None
            rows.append((prompt_hash(clean), json.dumps(clean, ensure_ascii=False)))
        if not rows:
            return []
        batch = pa.table({"idx": list(range(len(rows))), "messages": [m for _, m in rows],
                          "text_hash": pa.array([h for h, _ in rows], pa.binary())})
        with self.engine.atomic() as con, registered(con, "prompt_batch", batch):
            con.execute(
                "INSERT INTO prompts (messages, text_hash, source, dataset) "
                "SELECT messages, text_hash, ?, ? FROM prompt_batch "
                "WHERE text_hash NOT IN (SELECT text_hash FROM prompts) "
                "QUALIFY row_number() OVER (PARTITION BY text_hash ORDER BY idx) = 1 ORDER BY idx",
                [source, dataset])
            ids = dict(con.execute(
                "SELECT text_hash, id FROM prompts WHERE text_hash IN (SELECT unnest(?))",
                [[h for h, _ in rows]]).fetchall())
        return [ids[h] for h, _ in rows]

    def get(self, prompt_id: int) -> Prompt:
        """The prompt with this id. Raises :class:`NotFoundError`."""
        prompts = self.get_many([prompt_id])
        if not prompts:
            raise NotFoundError(f"no prompt with id {prompt_id}")
        return prompts[0]

    def get_many(self, prompt_ids: Sequence[int]) -> list[Prompt]:
        """Prompts with these ids, in the given order (missing ids are left out)."""
        if not prompt_ids:
            return []
        with self.engine.atomic() as con:
            found = fetch_records(con, Prompt, f"SELECT {_PROMPT_COLS} FROM prompts "
                                  f"WHERE id IN ({id_list(prompt_ids)})", messages=json.loads)
        by_id = {p.id: p for p in found}
        return [by_id[i] for i in prompt_ids if i in by_id]

    def list(self, *, dataset: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[Prompt]:
        """Prompts by id, optionally of one dataset."""
        with self.engine.atomic() as con:
            return fetch_records(
                con, Prompt, f"SELECT {_PROMPT_COLS} FROM prompts "
                "WHERE ($dataset::VARCHAR IS NULL OR dataset = $dataset) ORDER BY id "
                "LIMIT $limit OFFSET $offset",
                {"dataset": dataset, "limit": limit if limit is not None else 2**62,
                 "offset": offset}, messages=json.loads)

    def datasets(self) -> dict[str, int]:
        """Prompt counts per dataset (``"-"`` for prompts without one)."""
        with self.engine.atomic() as con:
            return dict(con.execute("SELECT coalesce(dataset, '-'), count(*) FROM prompts "
                                    "GROUP BY ALL ORDER BY ALL").fetchall())


class ResponsesAPI:
    """``store.responses``: replies to prompts, deduplicated per prompt by text."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, responses: Iterable[ResponseIn]) -> list[int]:
        """Add responses, deduplicated on ``(prompt_id, text_hash)``; returns ids in input order.

        Raises:
            ValidationError: empty or too long text, unknown origin, or a prompt id that does
                not exist.
        """
        items = list(responses)
        if not items:
            return []
        rows = []
        for r in items:
            validate_response_text(r.text, r.prompt_id)
            validate_origin(r.origin)
            rows.append((r.prompt_id, r.text, text_hash(r.text), r.origin, r.model, r.run_id,
                         r.parent_response_id, to_json(r.gen_params)))
        names = ("prompt_id", "text", "text_hash", "origin", "model", "run_id",
                 "parent_response_id", "gen_params")
        batch = pa.table({"idx": list(range(len(rows))),
                          **{n: [r[i] for r in rows] for i, n in enumerate(names)}},
                         schema=pa.schema([("idx", pa.int64()), ("prompt_id", pa.int64()),
                                           ("text", pa.string()), ("text_hash", pa.binary()),
                                           ("origin", pa.string()), ("model", pa.string()),
                                           ("run_id", pa.int64()), ("parent_response_id", pa.int64()),
                                           ("gen_params", pa.string())]))
        with self.engine.atomic() as con:
            missing = con.execute(
                "SELECT list(x) FROM (SELECT unnest(?) x) WHERE x NOT IN (SELECT id FROM prompts)",
                [sorted({r[0] for r in rows})]).fetchone()[0]
            if missing:
                raise ValidationError(f"responses name prompts that do not exist: {missing[:10]}")
            with registered(con, "response_batch", batch):
                con.execute(
                    "INSERT INTO responses (prompt_id, text, text_hash, origin, model, run_id, "
                    "parent_response_id, gen_params) "
                    "SELECT b.prompt_id, b.text, b.text_hash, b.origin, b.model, b.run_id, "
                    "b.parent_response_id, b.gen_params FROM response_batch b "
                    "LEFT JOIN responses r ON r.prompt_id = b.prompt_id AND r.text_hash = b.text_hash "
                    "WHERE r.id IS NULL "
                    "QUALIFY row_number() OVER (PARTITION BY b.prompt_id, b.text_hash ORDER BY b.idx) = 1 "
                    "ORDER BY b.idx")
            found = con.execute(
                "SELECT prompt_id, text_hash, id FROM responses r JOIN "
                "(SELECT unnest(?) AS p, unnest(?) AS h) k ON r.prompt_id = k.p AND r.text_hash = k.h",
                [[r[0] for r in rows], [r[2] for r in rows]]).fetchall()
        ids = {(p, h): i for p, h, i in found}
        return [ids[(r[0], r[2])] for r in rows]

    def get_many(self, response_ids: Sequence[int]) -> list[Response]:
        """Responses with these ids, in the given order (missing ids are left out)."""
        if not response_ids:
            return []
        with self.engine.atomic() as con:
            found = fetch_records(con, Response, f"SELECT {_RESPONSE_COLS} FROM responses "
                                  f"WHERE id IN ({id_list(response_ids)})", gen_params=json.loads)
        by_id = {r.id: r for r in found}
        return [by_id[i] for i in response_ids if i in by_id]

    def for_prompts(self, prompt_ids: Sequence[int]) -> dict[int, list[Response]]:
        """All responses of each prompt, by id; prompts without responses map to ``[]``."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Response, f"SELECT {_RESPONSE_COLS} FROM responses "
                                  "WHERE prompt_id IN (SELECT unnest(?)) ORDER BY id",
                                  [list(prompt_ids)], gen_params=json.loads)
        out: dict[int, list[Response]] = {p: [] for p in prompt_ids}
        for r in found:
            out[r.prompt_id].append(r)
        return out

    def of_run(self, run_id: int) -> list[Response]:
        """Responses a run generated (``responses.run_id``), by id."""
        with self.engine.atomic() as con:
            return fetch_records(con, Response, f"SELECT {_RESPONSE_COLS} FROM responses "
                                 "WHERE run_id = ? ORDER BY id", [run_id], gen_params=json.loads)
