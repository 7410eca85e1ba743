"""PPO for RLHF: policy, frozen reference, frozen reward, learned value model.

TRL no longer ships a PPO trainer, so this is ours. The algorithm is the clipped-surrogate PPO
of Schulman et al. 2017 ("Proximal Policy Optimization Algorithms") applied to language models
as in Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences"), with the
implementation details of Huang et al. 2024 ("The N+ Implementation Details of RLHF with PPO"):

1. **Rollout.** Sample a response per prompt with temperature ``T`` (logits divided by ``T``
   during training too); truncate after the first EOS. Score the whole conversation with the
   reward model; a response that never emits EOS gets ``missing_eos_penalty`` added.
2. **Per-token rewards.** ``r_t = -beta * (log pi(a_t|s_t) - log pi_ref(a_t|s_t))`` (the k1 KL
   estimator), plus the reward-model score at the response's last token.
3. **Advantages.** GAE (Schulman et al. 2016) with ``gamma``, ``lambda`` over the response
   tokens; returns ``R_t = A_t + V_t``; advantages whitened over the batch (padding masked).
4. **Updates.** ``ppo_epochs`` passes over minibatches of the rollout batch, minimizing
   ``L = L_clip + vf_coef * L_V`` where ``L_clip = mean(max(-A * ratio,
   -A * clip(ratio, 1 - eps, 1 + eps)))`` and ``L_V = 0.5 * mean(max((V - R)^2,
   (V_old + clip(V - V_old, -c, c) - R)^2))``; the policy's and the value function's gradients
   are clipped each to ``max_grad_norm`` on their own, and a shared value head learns on the
   backbone's detached features, so the value loss never shrinks or bends the policy's step.
5. **KL control.** Fixed ``beta``, or adaptive (Ziegler et al. 2019):
   ``beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon``.

Models, and what each costs (four models on one machine is PPO's price):

* the **policy**, optionally a LoRA adapter (peft; Hu et al. 2021) whose **reference** is the
  same backbone with the adapters disabled, so one copy of the weights serves both; without
  LoRA, the reference is a frozen copy (in reduced precision where the hardware has it);
* the **value function**: a :class:`ValueHead` sharing the policy's backbone (one forward gives
  log-probs and values), or a separate sequence classifier whose ``score`` head is applied at
  every position (initialized from the reward model when they share a tokenizer, else from
  the policy, as Huang et al. 2024 detail 4);
* the **reward model**, behind ``score_fn``.

Everything runs through ``accelerate.Accelerator``: device placement, DDP gradient sync when
several processes run (``accelerate launch``), ``save_state``/``load_state`` for resume. Every
metric is averaged over real tokens only (padding masked; TRL 1.12 did not, see
huggingface/trl#6809) and over processes.

Shapes: ``B`` rollouts, ``P`` prompt tokens (left-padded), ``R`` response tokens (right-padded),
``H`` hidden size.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    compute_gae,
    masked_mean,
    masked_whiten,
    policy_loss,
    value_loss,
)

__all__ = ["Rollout", "PPOTrainer", "ValueHead", "token_values", "response_logprobs", "SHARED_VALUE_HEAD_LR"]

#: The learning rate of a shared value head unless ``value_learning_rate`` is set: a fresh
#: linear layer, which at the policy's LoRA rate barely learns (a separate value model, a whole
#: network, learns at the policy's rate).
SHARED_VALUE_HEAD_LR = 1e-3


def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def _logprobs(logits: torch.Tensor, input_ids: torch.Tensor, prompt_len: int, temperature: float,
              with_entropy: bool = False):
    """Log-probs (and entropy) of the response tokens from logits of (at least) the last
    ``R + 1`` positions (the model ran with ``logits_to_keep=R + 1``)."""
    R = input_ids.shape[1] - prompt_len
    logits = logits[:, -(R + 1):-1].float() / temperature                          # (B, R, V)
    logp_all = F.log_softmax(logits, dim=-1)
    logp = torch.gather(logp_all, 2, input_ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return logp, None
    return logp, -(logp_all.exp() * logp_all).sum(-1)


def response_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      prompt_len: int, temperature: float, with_entropy: bool = False):
    """Log-probabilities ``(B, R)`` of the response tokens ``input_ids[:, P:]`` under ``model``
    with logits divided by ``temperature``; optionally the entropy ``(B, R)`` too."""
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=_position_ids(attention_mask), use_cache=False,
                logits_to_keep=input_ids.shape[1] - prompt_len + 1)   # the LM head on R + 1 positions
    logp, entropy = _logprobs(out.logits, input_ids, prompt_len, temperature, with_entropy)
    return (logp, entropy) if with_entropy else logp


def token_values(value_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 prompt_len: int) -> torch.Tensor:
    """Values ``(B, R)``: the value model's score head at every position before a response
    token (the state in which that token is chosen)."""
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask,
                      position_ids=_position_ids(attention_mask), use_cache=False).last_hidden_state
    return value_model.score(hidden).squeeze(-1)[:, prompt_len - 1:-1].float()


class ValueHead(torch.nn.Module):
    """A value function sharing the policy's backbone: ``Linear(H, 1)`` on its last hidden
    state, ``(B, T, H) -> (B, T)``; zero-initialized, so every value starts at 0."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.summary.weight)
        torch.nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


# --------------------------------------------------------------------------- trainer
@dataclass
class Rollout:
    """One rollout batch; tensors are ``(B, P + R)`` for ids/masks, ``(B, R)`` otherwise."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    response_mask: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    scores: torch.Tensor          # (B,) reward-model score incl. the missing-EOS penalty
    rm_scores: torch.Tensor       # (B,) reward-model score alone
    contains_eos: torch.Tensor    # (B,) bool
    kl: torch.Tensor              # (B,) sum over response tokens of logp - ref_logp (nats)
    extra: dict[str, float]       # what score_fn reported besides the scores (e.g. reward_second)


ScoreFn = Callable[[Sequence[Any], list[list[int]]], Any]


class PPOTrainer:
    """Runs PPO iterations; see the module docstring for the algorithm and the models.

    Args:
        policy: causal LM being trained (a peft model when ``ref_policy`` is ``None``: the
            reference is then the policy with its adapters disabled).
        score_fn: ``(prompts, response_token_ids) -> (B,)`` rewards, or ``(rewards, extra)``
            where ``extra`` holds metrics to log (``{"reward_second": 0.3}``); ``prompts`` are
            the items of the prompt batch (chat messages for a reward model).
        pad_token_id, eos_token_id: must differ (a padded EOS must stay detectable).
        config: a :class:`prefloop.training.configs.PPORunConfig` (or any object with its fields).
        ref_policy: a frozen copy of the initial policy, or ``None`` (see ``policy``).
        value_model: a sequence classifier used as the value model, or ``None`` for a
            :class:`ValueHead` on the policy's backbone.
        accelerator: an ``accelerate.Accelerator`` (default: a new one).
        log: called with ``(iteration, metrics)`` after each iteration (main process only).
        on_save: called with the checkpoint directory once it is completely written.

    Raises:
        ValueError: ``pad_token_id == eos_token_id``, or no reference (neither a ``ref_policy``
            nor adapters to disable).
    """

    def __init__(self, policy, score_fn: ScoreFn, *, pad_token_id: int, eos_token_id: int, config,
                 ref_policy=None, value_model=None, accelerator=None,
                 log: Callable[[int, dict[str, float]], None] | None = None,
                 on_save: Callable[[Path], None] | None = None):
        from accelerate import Accelerator

        if pad_token_id == eos_token_id:
            raise ValueError("PPO needs a pad token different from EOS: a response's EOS must "
                             "not be confused with padding (set tokenizer.pad_token)")
        if ref_policy is None and not hasattr(policy, "disable_adapter"):
            raise ValueError("PPO needs a reference: pass ref_policy, or a LoRA (peft) policy "
                             "whose disabled adapters give the reference")
        self.accelerator = accelerator or Accelerator()
        self.score_fn, self.cfg, self.log, self.on_save = score_fn, config, log, on_save
        self.pad_id, self.eos_id = pad_token_id, eos_token_id
        self.shared_value = value_model is None
        value = (ValueHead(policy.config.get_text_config().hidden_size) if self.shared_value
                 else value_model)
        for m in (policy, value):
            m.train()
            for mod in m.modules():  # dropout off (Huang et al. 2024, detail 5)
                if isinstance(mod, torch.nn.Dropout):
                    mod.p = 0.0
        if getattr(config, "gradient_checkpointing", False):
            policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hasattr(policy, "enable_input_require_grads"):
                policy.enable_input_require_grads()
        # two parameter groups: the value function learns at its own rate (a fresh value head at
        # the policy's LoRA or full fine-tuning rate barely moves, so its advantages stay wrong)
        value_ids = {id(p) for p in value.parameters()}
        policy_params = [p for p in policy.parameters() if p.requires_grad and id(p) not in value_ids]
        value_params = [p for p in value.parameters() if p.requires_grad]
        vlr = getattr(config, "value_learning_rate", None) or (
            SHARED_VALUE_HEAD_LR if self.shared_value else config.learning_rate)
        groups = ([{"params": policy_params + value_params}] if vlr == config.learning_rate else
                  [{"params": policy_params}, {"params": value_params, "lr": vlr}])
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, eps=1e-5)
        self.policy_params, self.value_params = policy_params, value_params
        self.policy, self.value, self.optimizer = self.accelerator.prepare(policy, value, optimizer)
        self.ref_policy = ref_policy
        if ref_policy is not None:
            ref_policy.eval().requires_grad_(False)
            self.ref_policy = ref_policy.to(self.accelerator.device)
        self.kl_ctl = (AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
                       if config.adaptive_kl else FixedKLController(config.kl_coef))
        self.iteration = 0

    @property
    def unwrapped_policy(self):
        return self.accelerator.unwrap_model(self.policy)

    def parameter_checksums(self) -> list[list[float]]:
        """``[sum, sum of squares]`` of every trainable weight (policy and value, float64), one
        pair per process, gathered to every process (a collective: all ranks must call it).
        Equal pairs mean the ranks hold the same weights, as DDP's gradient all-reduce should
        keep them."""
        params = {id(p): p for m in (self.policy, self.value) for p in m.parameters() if p.requires_grad}
        with torch.no_grad():
            flat = [p.detach().double() for p in params.values()]
            t = torch.tensor([[float(sum(x.sum() for x in flat)), float(sum((x * x).sum() for x in flat))]],
                             dtype=torch.float64, device=self.accelerator.device)
        return [[float(a), float(b)] for a, b in self.accelerator.gather(t).cpu().tolist()]

    # -- forward passes -----------------------------------------------------------------
    def _forward(self, input_ids, attention_mask, prompt_len, with_entropy=False):
        """Policy log-probs ``(B, R)``, entropy ``(B, R)`` or ``None``, values ``(B, R)``. A
        shared value head reads the backbone's hidden states detached: the value loss trains
        the head only and never moves the policy (a critic of its own on the policy's
        features), so value errors cannot pull the policy's weights."""
        shared = self.shared_value
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=_position_ids(attention_mask), use_cache=False,
                          output_hidden_states=shared,
                          logits_to_keep=input_ids.shape[1] - prompt_len + 1)  # response positions
        logp, entropy = _logprobs(out.logits, input_ids, prompt_len, self.cfg.temperature, with_entropy)
        if shared:
            values = self.value(out.hidden_states[-1].detach())[:, prompt_len - 1:-1].float()
        else:
            values = token_values(self.accelerator.unwrap_model(self.value), input_ids,
                                  attention_mask, prompt_len)
        return logp, entropy, values

    @torch.no_grad()
    def _ref_logprobs(self, input_ids, attention_mask, prompt_len):
        if self.ref_policy is not None:
            return response_logprobs(self.ref_policy, input_ids, attention_mask, prompt_len,
                                     self.cfg.temperature).float()
        with self.unwrapped_policy.disable_adapter():
            return response_logprobs(self.unwrapped_policy, input_ids, attention_mask, prompt_len,
                                     self.cfg.temperature)

    # -- rollouts ---------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: Sequence[Any], prompt_ids: list[list[int]]) -> Rollout:
        """Sample (one batched ``generate`` call with the KV cache), score and compute
        advantages for one batch of prompts (token ids)."""
        cfg, device = self.cfg, self.accelerator.device
        P = max(len(p) for p in prompt_ids)
        ids = torch.full((len(prompt_ids), P), self.pad_id, dtype=torch.long)
        pmask = torch.zeros_like(ids)
        for i, p in enumerate(prompt_ids):  # left padding
            ids[i, P - len(p):] = torch.tensor(p)
            pmask[i, P - len(p):] = 1
        ids, pmask = ids.to(device), pmask.to(device)
        policy = self.unwrapped_policy
        policy.eval()
        seq = policy.generate(input_ids=ids, attention_mask=pmask, do_sample=True,
                              temperature=cfg.temperature, top_k=0, top_p=1.0,
                              max_new_tokens=cfg.max_new_tokens, pad_token_id=self.pad_id,
                              eos_token_id=self.eos_id, use_cache=True)
        policy.train()
        response = seq[:, P:]
        if response.shape[1] == 0:
            response = torch.full((len(prompt_ids), 1), self.pad_id, dtype=torch.long, device=device)
            seq = torch.cat([seq, response], 1)
        is_eos = response == self.eos_id
        contains_eos = is_eos.any(1)
        first_eos = torch.where(contains_eos, is_eos.float().argmax(1),
                                torch.full_like(contains_eos, response.shape[1] - 1, dtype=torch.long))
        positions = torch.arange(response.shape[1], device=device).unsqueeze(0)
        rmask = (positions <= first_eos.unsqueeze(1)).long()           # (B, R) through the EOS
        response = torch.where(rmask.bool(), response, torch.full_like(response, self.pad_id))
        input_ids = torch.cat([ids, response], 1)
        attention_mask = torch.cat([pmask, rmask], 1)

        logprobs, _, values = self._forward(input_ids, attention_mask, P)
        ref_logprobs = self._ref_logprobs(input_ids, attention_mask, P)
        responses = [r[m.bool()].tolist() for r, m in zip(response, rmask)]
        scored = self.score_fn(prompts, responses)
        rm_scores, extra = scored if isinstance(scored, tuple) else (scored, {})
        extra = dict(extra)
        rm_scores = torch.as_tensor(rm_scores, dtype=torch.float32).to(device)
        scores = rm_scores + (~contains_eos).float() * cfg.missing_eos_penalty

        logprobs, ref_logprobs, values = logprobs * rmask, ref_logprobs * rmask, values * rmask
        kl_tokens = (logprobs - ref_logprobs) * rmask                  # k1 estimator per token
        rewards = -self.kl_ctl.value * kl_tokens
        last = rmask.sum(1) - 1
        rewards[torch.arange(len(last), device=device), last] += scores
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, rmask, shift_mean=False)
        advantages, returns = compute_gae(rewards, values, rmask, cfg.gamma, cfg.lam)
        advantages = masked_whiten(advantages, rmask)
        # a batch in which every response scored the same carries no signal from the reward:
        # whitening would turn the KL term and the discounted EOS penalty into advantages as
        # large as real ones, so such a batch updates the value function only (see step())
        all_scores = self.accelerator.gather(scores.float())
        extra["no_signal"] = float(bool((all_scores.max() - all_scores.min()).abs() < 1e-6))
        return Rollout(input_ids, attention_mask, P, rmask, logprobs, ref_logprobs, values, rewards,
                       advantages, returns, scores, rm_scores, contains_eos, kl_tokens.sum(1),
                       dict(extra))

    # -- optimization -----------------------------------------------------------------
    def step(self, ro: Rollout) -> dict[str, float]:
        """``ppo_epochs`` passes of minibatch updates over one rollout; returns the metrics
        logged every iteration (masked means, averaged over processes). During the first
        ``value_warmup`` iterations, and on a batch whose scores are all equal (``no_signal``
        1: nothing for the policy to learn from the reward), only the value function learns."""
        cfg = self.cfg
        B = ro.input_ids.shape[0]
        warmup = self.iteration < getattr(cfg, "value_warmup", 0) or bool(ro.extra.get("no_signal"))
        acc: dict[str, list[float]] = {}
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(B)
            for start in range(0, B, cfg.mini_batch_size):
                mb = order[start:start + cfg.mini_batch_size].to(ro.input_ids.device)
                ids, am, rm = ro.input_ids[mb], ro.attention_mask[mb], ro.response_mask[mb]
                logp, entropy, vpred = self._forward(ids, am, ro.prompt_len, with_entropy=True)
                pg, pg_stats = policy_loss(logp, ro.logprobs[mb], ro.advantages[mb], rm, cfg.cliprange)
                vf, vf_stats = value_loss(vpred, ro.values[mb], ro.returns[mb], rm, cfg.cliprange_value)
                loss = cfg.vf_coef * vf if warmup else pg + cfg.vf_coef * vf
                self.optimizer.zero_grad()
                self.accelerator.backward(loss)
                # each side clipped on its own: a large value gradient cannot shrink the policy's step
                for params in (self.policy_params, self.value_params):
                    self.accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                self.optimizer.step()
                for k, v in {"policy_loss": pg, "value_loss": vf, "entropy": masked_mean(entropy, rm),
                             **pg_stats, **vf_stats}.items():
                    acc.setdefault(k, []).append(float(v.detach()))
        mean_kl = float(self._mean(ro.kl))
        self.kl_ctl.update(mean_kl, B * self.accelerator.num_processes)
        self.iteration += 1
        metrics = {k: float(self._mean(torch.tensor(sum(v) / len(v)))) for k, v in acc.items()}
        metrics.update({
            "reward": float(self._mean(ro.scores)),                  # RM score + EOS penalty
            "reward_model": float(self._mean(ro.rm_scores)),         # RM score alone
            "kl": mean_kl,                                           # nats per response
            "non_score_reward": float(self._mean(ro.rewards.sum(1) - ro.scores)),
            "kl_coef": float(self.kl_ctl.value),
            "response_length": float(self._mean(ro.response_mask.sum(1).float())),
            "eos_rate": float(self._mean(ro.contains_eos.float())),
            "advantage_mean": float(masked_mean(ro.advantages, ro.response_mask)),
            "value_mean": float(masked_mean(ro.values, ro.response_mask)),
            **{k: float(self._mean(torch.tensor(v))) for k, v in ro.extra.items()},
        })
        return metrics

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of ``x`` over this process's items, then over processes."""
        x = x.float().mean().to(self.accelerator.device)
        return self.accelerator.reduce(x, reduction="mean").cpu()

    @torch.no_grad()
    def probe(self, prompts: Sequence[Any], prompt_ids: list[list[int]]) -> dict[str, float]:
        """The current policy on a fixed probe set: one sample per prompt with a fixed seed (the
        same random numbers every iteration, so the curve moves only with the policy), scored
        like a rollout; ``probe_``-prefixed means of the reward-model score, the second reward
        model's (``probe_reward_second``), KL (nats per response) and EOS rate."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 7919)
            ro = self.rollout(prompts, prompt_ids)
        out = {"probe_reward_model": float(self._mean(ro.rm_scores)), "probe_kl": float(self._mean(ro.kl)),
               "probe_eos_rate": float(self._mean(ro.contains_eos.float()))}
        if "reward_second" in ro.extra:
            out["probe_reward_second"] = float(ro.extra["reward_second"])
        return out

    def train(self, prompts: Sequence[Any], prompt_ids: list[list[int]], *, output_dir: str | Path,
              resume_from: str | Path | None = None,
              probe: tuple[Sequence[Any], list[list[int]]] | None = None) -> list[dict[str, float]]:
        """Run ``config.max_steps`` iterations over the prompts (shuffled, cycled; each process
        takes its share of every global batch of ``batch_size``); save a checkpoint every
        ``save_steps`` iterations; resume from ``resume_from``; stop early after the first
        iteration past ``config.max_seconds`` of wall clock (:attr:`stopped_by_budget`). With
        ``probe`` (prompts and their token ids), :meth:`probe` scores the policy on them after
        every iteration, in the same metrics."""
        import time

        from .callbacks import over_budget

        cfg, acc = self.cfg, self.accelerator
        torch.manual_seed(cfg.seed + acc.process_index)
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        history, started, self.stopped_by_budget = [], time.perf_counter(), False
        while self.iteration < cfg.max_steps:
            if history and over_budget(started, getattr(cfg, "max_seconds", None)):
                self.stopped_by_budget = True
                break
            order = list(range(len(prompts)))
            random.Random(cfg.seed + self.iteration).shuffle(order)
            batch = [order[(self.iteration * cfg.batch_size + i) % len(order)]
                     for i in range(cfg.batch_size)]
            mine = batch[acc.process_index::acc.num_processes]
            ro = self.rollout([prompts[i] for i in mine], [prompt_ids[i] for i in mine])
            metrics = self.step(ro)
            if probe is not None:
                metrics.update(self.probe(*probe))
            history.append(metrics)
            if self.log and acc.is_main_process:
                self.log(self.iteration, metrics)
            if cfg.save_steps and self.iteration % cfg.save_steps == 0 and self.iteration < cfg.max_steps:
                saved = self.save_checkpoint(Path(output_dir) / f"checkpoint-{self.iteration}")
                if self.on_save and acc.is_main_process:
                    self.on_save(saved)
        return history

    # -- checkpoints ------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """``accelerate``'s state (policy and value weights, optimizer, RNG states) plus the
        iteration and KL coefficient: enough to resume."""
        path = Path(path)
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            (path / "ppo_state.json").write_text(json.dumps(
                {"iteration": self.iteration, "kl_coef": self.kl_ctl.value}))
        self.accelerator.wait_for_everyone()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore what :meth:`save_checkpoint` wrote.

        Raises:
            TrainingError: the checkpoint holds another architecture (missing, unexpected or
                differently shaped weights): resume only from this run's own checkpoints.
        """
        from .errors import TrainingError

        path = Path(path)
        try:
            self.accelerator.load_state(str(path))
        except RuntimeError as exc:          # load_state_dict(strict=True) refused the weights
            detail = str(exc).strip().splitlines()
            what = ("does not fit this model" if any("size mismatch" in d for d in detail)
                    else "is of another architecture")
            raise TrainingError(f"{path}: the checkpoint {what} ({detail[-1].strip()[:200]}); "
                                "resume a run only from its own checkpoints") from None
        st = json.loads((path / "ppo_state.json").read_text())
        self.iteration, self.kl_ctl.value = st["iteration"], st["kl_coef"]
