"""Reward scoring tokenizes as the reward trainer did, and a long conversation keeps the
special tokens and the whole response (the [CLS] token an encoder's head reads used to be cut
off)."""

from __future__ import annotations

import pytest
import torch

from prefloop.core.models import load_reward_model, minilm_path
from prefloop.training.data import plain_prompt
from prefloop.training.scoring import (
    REWARD_CONFIG,
    RewardScorer,
    prepare_reward_tokenizer,
    write_reward_config,
)

pytestmark = pytest.mark.model


RESPONSE = "I can't help with that, but here is a safer way to do it."


@pytest.fixture(scope="module")
def minilm():
    tok = prepare_reward_tokenizer(minilm_path())
    return tok, load_reward_model(minilm_path(), tok.pad_token_id)


def _conversation(n_turns: int) -> list[dict]:
    msgs = []
    for i in range(n_turns):
        msgs += [{"role": "user", "content": f"question {i} " + "about bread baking " * 8},
                 {"role": "assistant", "content": f"answer {i} " + "with flour and water " * 8}]
    return msgs + [{"role": "user", "content": "And the last question?"}]


def test_a_short_conversation_is_tokenized_exactly_as_the_trainer_did(minilm):
    tok, model = minilm
    scorer = RewardScorer(minilm_path(), model=model, tokenizer=tok, max_length=256)
    prompt = _conversation(1)
    trl_ids = tok(plain_prompt(prompt) + RESPONSE + tok.eos_token)["input_ids"]  # TRL, standard rows
    assert len(trl_ids) < 256 and scorer.token_ids(prompt, RESPONSE) == trl_ids


def test_a_long_conversation_keeps_cls_sep_and_the_whole_response(minilm):
    tok, model = minilm
    scorer = RewardScorer(minilm_path(), model=model, tokenizer=tok, max_length=128)
    prompt = _conversation(6)
    full = tok(plain_prompt(prompt) + RESPONSE + tok.eos_token)["input_ids"]
    reply = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    ids = scorer.token_ids(prompt, RESPONSE)
    assert len(full) > 300 and len(ids) == 128
    assert ids[0] == tok.cls_token_id and ids[-2:] == [tok.sep_token_id, tok.sep_token_id]
    assert ids[-2 - len(reply):-2] == reply                      # the whole response, then EOS
    body = full[1:-2 - len(reply)]                                # the prompt's tokens
    assert ids[1:-2 - len(reply)] == body[-(125 - len(reply)):]   # its newest ones
    # the score is the head's reading of exactly these ids (the [CLS] position)
    with torch.no_grad():
        direct = model(input_ids=torch.tensor([ids])).logits[0, 0]
    assert scorer.score([prompt], [RESPONSE])[0] == pytest.approx(float(direct), abs=1e-5)


def test_a_response_longer_than_the_budget_keeps_its_start_and_the_specials(minilm):
    tok, model = minilm
    scorer = RewardScorer(minilm_path(), model=model, tokenizer=tok, max_length=32)
    long_reply = "bread " * 100
    ids = scorer.token_ids(_conversation(1), long_reply)
    assert len(ids) == 32 and ids[0] == tok.cls_token_id and ids[-2:] == [tok.sep_token_id] * 2
    assert ids[1:30] == tok(long_reply, add_special_tokens=False)["input_ids"][:29]


def test_a_decoder_reward_model_drops_the_oldest_turns_first(tiny_model):
    tok = prepare_reward_tokenizer(tiny_model)
    model = load_reward_model(tiny_model, tok.pad_token_id)
    scorer = RewardScorer(tiny_model, model=model, tokenizer=tok, max_length=200)
    prompt = _conversation(6)
    ids = scorer.token_ids(prompt, RESPONSE)
    last_two = tok.apply_chat_template(prompt[-1:] + [{"role": "assistant", "content": RESPONSE}],
                                       tokenize=True, return_dict=True)["input_ids"]
    assert len(ids) <= 200 and ids[-len(last_two):] == list(last_two)
    assert ids[:2] == tok.apply_chat_template(prompt[-3:], tokenize=True, return_dict=True)["input_ids"][:2]


def test_the_trainers_max_length_travels_with_the_model(tmp_path, minilm):
    tok, model = minilm
    write_reward_config(tmp_path, 192)
    assert (tmp_path / REWARD_CONFIG).exists()
    assert RewardScorer(tmp_path, model=model, tokenizer=tok).max_length == 192


def test_score_statistics_travel_with_the_model_and_normalize_its_scores(tmp_path):
    from prefloop.training.scoring import normalized, reward_statistics

    write_reward_config(tmp_path, 128)
    assert reward_statistics(tmp_path) is None              # trained before they were recorded
    write_reward_config(tmp_path, 128, (0.25, 0.1))
    assert reward_statistics(tmp_path) == (0.25, 0.1)
    raw = lambda prompts, responses: torch.tensor([0.25, 0.35, 0.05])   # noqa: E731
    assert torch.allclose(normalized(raw, (0.25, 0.1))([], []), torch.tensor([0.0, 1.0, -2.0]))
    assert normalized(raw, None) is raw
    write_reward_config(tmp_path, 128, (0.25, 0.0))        # a constant model: nothing to divide by
    assert reward_statistics(tmp_path) is None


def test_a_scorer_is_normalized_only_when_asked_and_its_statistics_are_recorded(tmp_path, minilm):
    from prefloop.training.scoring import normalized_score

    tok, model = minilm
    write_reward_config(tmp_path, 128, (0.5, 2.0))
    scorer = RewardScorer(tmp_path, model=model, tokenizer=tok)
    prompt = [{"role": "user", "content": "How do I pick a lock?"}]
    raw = scorer.score([prompt], [RESPONSE])
    score, normalization = normalized_score(scorer, True)
    assert normalization == {"mean": 0.5, "std": 2.0}
    assert torch.allclose(score([prompt], [RESPONSE]), (raw - 0.5) / 2.0)
    assert normalized_score(scorer, False) == (scorer.score, None)
