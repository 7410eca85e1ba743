"""KTO (Kahneman-Tversky Optimization; Ethayarajh et al. 2024, "KTO: Model Alignment as
Prospect Theoretic Optimization") with TRL ``KTOTrainer`` on unpaired labels: rows ``prompt``
(messages), ``completion`` (one assistant message), ``label`` (desirable or not), from
``prefloop export --format kto``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import TrainingError

__all__ = ["run", "check_unpaired", "KTO_COLUMNS"]

KTO_COLUMNS = ["prompt", "completion", "label"]


def check_unpaired(export_id: int, train, cfg) -> tuple[int, int]:
    """``(n_desirable, n_undesirable)`` of a KTO training split, checked before a run starts.

    Raises:
        TrainingError: one of the two is empty, or a batch smaller than 2.
    """
    labels = train["label"]
    n_good = sum(bool(x) for x in labels)
    n_bad = len(labels) - n_good
    if not n_good or not n_bad:
        raise TrainingError(f"export {export_id}: KTO needs desirable and undesirable "
                            f"examples ({n_good} desirable, {n_bad} undesirable)")
    if cfg.per_device_train_batch_size < 2:
        raise TrainingError("per_device_train_batch_size must be at least 2 for KTO (its KL "
                            "estimate pairs completions with other rows' prompts)")
    return n_good, n_bad


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import KTOTrainer

    cfg = ctx.config
    train = ctx.data["train"].select_columns(KTO_COLUMNS)
    n_good, n_bad = check_unpaired(ctx.export.id, train, cfg)
    tok, model, peft_config = ctx.policy()
    test = ctx.eval_split()
    trainer = KTOTrainer(model=model, args=cfg, train_dataset=train,
                         eval_dataset=test.select_columns(KTO_COLUMNS) if test is not None else None,
                         processing_class=tok, peft_config=peft_config, callbacks=ctx.callbacks())
    result = ctx.fit(trainer)
    return ctx.finish(trainer, result, tok, peft_config, test, train_rows=len(train), desirable=n_good, undesirable=n_bad)
