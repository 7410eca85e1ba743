"""SFT rows from a pair split: one per distinct (prompt, chosen), demonstrations longer than
the sampling budget left out, and at most N rows of each dataset (the mixture's weights)."""

from __future__ import annotations

from datasets import Dataset

from prefloop.training.data import sft_rows


class WordTokenizer:
    """One token per word: enough to count a reply's length."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def _split(rows):
    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"q{p}"}],
                               "chosen": [{"role": "assistant", "content": text}],
                               "rejected": [{"role": "assistant", "content": "no"}],
                               "prompt_id": p, "chosen_id": c, "dataset": d} for p, c, d, text in rows])


def test_rows_are_distinct_short_enough_and_capped_per_dataset():
    rows = [(1, 10, "hh", "a b c"), (1, 10, "hh", "a b c"),          # one pair twice: one row
            (2, 20, "hh", "a " * 50), (3, 30, "hh", "d e"), (4, 40, "hh", "f"),
            (5, 50, "alpaca", "g h"), (6, 60, "alpaca", "i")]
    split = _split(rows)
    assert len(sft_rows(split)) == 6
    short = sft_rows(split, WordTokenizer(), max_completion_tokens=10)
    assert len(short) == 5 and all(len(r["completion"][0]["content"].split()) <= 10 for r in short)
    mixed = sft_rows(split, WordTokenizer(), max_completion_tokens=10, max_rows_per_dataset=2, seed=1)
    assert len(mixed) == 4                                            # 2 of hh's 3, both of alpaca's
    again = sft_rows(split, WordTokenizer(), max_completion_tokens=10, max_rows_per_dataset=2, seed=1)
    assert mixed["prompt"] == again["prompt"]                          # seeded: the same choice
