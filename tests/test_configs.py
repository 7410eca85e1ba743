"""Configs are typed objects built once: one registry of kinds, CLI options that name config
fields, learning rates that follow ``use_lora``, and bad values refused at construction."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from prefloop.core.kinds import POLICY_KINDS, RUN_KINDS, TRAIN_KINDS


@pytest.mark.model   # imports the training stack (TRL's configs)
def test_one_registry_of_training_kinds():
    from prefloop.annotate_app.services.jobs import JOB_KINDS
    from prefloop.store.records import RUN_KINDS as STORE_RUN_KINDS
    from prefloop.training.configs import CONFIGS

    assert set(CONFIGS) == set(TRAIN_KINDS) and len(CONFIGS) == len(TRAIN_KINDS) and set(TRAIN_KINDS) <= set(RUN_KINDS)
    assert STORE_RUN_KINDS is RUN_KINDS and set(POLICY_KINDS) <= set(TRAIN_KINDS)
    assert set(JOB_KINDS["train"]) <= set(TRAIN_KINDS)


def _options(name: str) -> set[str]:
    """The options of ``prefloop NAME``."""
    from prefloop.cli import app

    return {p.name for p in typer.main.get_command(app).commands[name].params}


@pytest.mark.model   # imports the training stack (TRL's configs)
def test_the_train_commands_options_are_config_fields():
    from prefloop.training.configs import CONFIGS

    names = _options("train") - {"kind", "config", "resume", "run", "set_"}
    aliases = {"export": "export_id", "output": "output_dir"}
    every = set.union(*({f.name for f in dataclasses.fields(c)} for c in CONFIGS.values()))
    assert {aliases.get(n, n) for n in names} <= every


def test_the_eval_commands_options_are_eval_config_fields():
    from prefloop.pipelines.eval_config import EvalConfig

    names = _options("eval")
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    assert {"judge_base_url" if n == "base_url" else n for n in names} <= fields


@pytest.mark.model   # imports the training stack (TRL's configs)
@pytest.mark.parametrize("kind", TRAIN_KINDS)
def test_the_learning_rate_follows_use_lora(kind, tmp_path):
    from prefloop.training.configs import CONFIGS

    cls = CONFIGS[kind]
    full = cls(output_dir=str(tmp_path), use_lora=False)
    lora = cls(output_dir=str(tmp_path), use_lora=True)
    assert full.learning_rate == cls.LEARNING_RATES["full"] and lora.learning_rate == cls.LEARNING_RATES["lora"]
    assert lora.learning_rate >= 10 * full.learning_rate                 # LoRA needs a far larger rate
    assert cls(output_dir=str(tmp_path), use_lora=True, learning_rate=1e-5).learning_rate == 1e-5


@pytest.mark.model   # imports the training stack (TRL's configs)
@pytest.mark.parametrize("value", [-1, 0, "abc"])
def test_a_bad_learning_rate_is_refused_when_the_config_is_built(value, tmp_path):
    from prefloop.training.configs import load_config
    from prefloop.training.errors import ConfigError

    with pytest.raises(ConfigError, match="learning_rate"):
        load_config("dpo", overrides={"learning_rate": value, "output_dir": str(tmp_path)})


def test_the_app_config_is_checked_once_and_names_the_file_and_key(tmp_path):
    from prefloop.annotate_app.config import AppConfig, RatingsConfig
    from prefloop.annotate_app.errors import AppError

    cfg = tmp_path / "app.yaml"
    for text, match in [("lease_seconds: soon\n", "app.yaml: lease_seconds: expected a number, found 'soon'"),
                        ("ratings: {aspects: [a], scale: 20}\n", "app.yaml: ratings.scale: expected an integer in 2..10"),
                        ("assist: {when: never}\n", "app.yaml: assist.when: expected after, before or random"),
                        ("review: {min_agreement: 2}\n", "app.yaml: review.min_agreement: expected a number in 0..1"),
                        ("title: [1]\n", "app.yaml: title: expected a string"),
                        ("gold_rate: 1.5\n", "app.yaml: gold_rate: expected a number in 0..1"),
                        ("qualification_tasks: -2\n", "app.yaml: qualification_tasks: expected an integer >= 0"),
                        ("gold_rate: [\n", "app.yaml:2:1: not valid YAML")]:
        cfg.write_text(text)
        with pytest.raises(AppError, match=match.replace("[", r"\[").replace(".", r"\.")):
            AppConfig.load(cfg)
    with pytest.raises(AppError, match="cannot read the app config"):
        AppConfig.load(tmp_path / "missing.yaml")
    cfg.write_text("ratings: {aspects: [honesty, harm], datasets: [d]}\nlease_seconds: 30\n")
    loaded = AppConfig.load(cfg)
    assert loaded.ratings == RatingsConfig(aspects=("honesty", "harm"), datasets=("d",))
    assert loaded.lease_seconds == 30.0 and loaded.ratings.applies_to("d") and not loaded.ratings.applies_to("e")
