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
   (V_old + clip(V - V_old, -c, c) - R)^2))``.
5. **KL control.** Fixed ``beta``, or adaptive (Ziegler et al. 2019):
   ``beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon``.

The value model is a sequence classifier whose ``score`` head is applied at every position
(its backbone's hidden states, shape ``(B, T, H)`` -> ``(B, T)``); it is initialized from the
reward model when both share the policy's tokenizer, else from the policy with a fresh head.
Every metric is averaged over real tokens only (padding masked; TRL 1.12 did not, see
huggingface/trl#6809).

Shapes: ``B`` rollouts, ``P`` prompt tokens (left-padded), ``R`` response tokens (right-padded).
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

__all__ = ["masked_mean", "masked_var", "masked_whiten", "compute_gae", "policy_loss",
           "value_loss", "FixedKLController", "AdaptiveKLController", "Rollout", "PPOTrainer",
           "token_values"]


# --------------------------------------------------------------------------- math helpers
def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (same shape)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of ``x`` over masked positions."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask)
    return var * n / (n - 1).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``(x - mean) / std`` over masked positions (mean kept if ``shift_mean`` is False);
    padding positions are set to 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over response tokens.

    Args:
        rewards, values, mask: ``(B, R)``; ``mask`` is 1 for real tokens (a prefix of each row).
    Returns:
        ``(advantages, returns)``, both ``(B, R)``, zero at padding; ``returns = A + V``.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``,
    with ``V`` and ``A`` taken as 0 after the last real token.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    B, R = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(R)):
        next_v = values[:, t + 1] if t + 1 < R else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate loss (Schulman et al. 2017, eq. 7), all inputs ``(B, R)``.

    Returns the loss and stats: ``clipfrac`` (share of tokens where the clipped term won),
    ``approxkl`` (``0.5 * mean((logp - logp_old)^2)``), ``ratio`` (mean).
    """
    logratio = logprobs - old_logprobs
    ratio = torch.exp(logratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
                 "approxkl": 0.5 * masked_mean(logratio ** 2, mask),
                 "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, cliprange_value: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss ``0.5 * mean(max((V - R)^2, (V_clip - R)^2))`` with
    ``V_clip = V_old + clip(V - V_old, -c, c)``; inputs ``(B, R)``."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    l1, l2 = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(l1, l2), mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((l2 > l1).float(), mask)}
    return loss, stats


class FixedKLController:
    """A constant KL coefficient ``value``."""

    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Ziegler et al. 2019, section 2.2: a proportional controller of the KL coefficient.

    ``error = clip(KL / target - 1, -0.2, 0.2)``; ``value *= 1 + error * n_steps / horizon``.
    """

    def __init__(self, init: float, target: float, horizon: int):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = max(-0.2, min(0.2, current_kl / self.target - 1.0))
        self.value *= 1.0 + error * n_steps / self.horizon


# --------------------------------------------------------------------------- model helpers
def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def response_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      prompt_len: int, temperature: float, with_entropy: bool = False):
    """Log-probabilities ``(B, R)`` of the response tokens ``input_ids[:, P:]`` under ``model``
    with logits divided by ``temperature``; optionally the entropy ``(B, R)`` too."""
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=_position_ids(attention_mask), use_cache=False)
    logits = out.logits[:, prompt_len - 1:-1].float() / temperature       # (B, R, V)
    logp_all = F.log_softmax(logits, dim=-1)
    logp = torch.gather(logp_all, 2, input_ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return logp
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def token_values(value_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 prompt_len: int) -> torch.Tensor:
    """Values ``(B, R)``: the value model's score head at every position before a response
    token (the state in which that token is chosen)."""
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask,
                      position_ids=_position_ids(attention_mask), use_cache=False).last_hidden_state
    return value_model.score(hidden).squeeze(-1)[:, prompt_len - 1:-1].float()


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
    contains_eos: torch.Tensor    # (B,) bool
    kl: torch.Tensor              # (B,) sum over response tokens of logp - ref_logp (nats)


ScoreFn = Callable[[Sequence[Any], list[list[int]]], torch.Tensor]


class PPOTrainer:
    """Runs PPO iterations; see the module docstring for the algorithm.

    Args:
        policy: causal LM being trained.
        ref_policy: frozen copy of the initial policy.
        value_model: sequence classifier with a ``score`` head (trained).
        score_fn: ``(prompts, response_token_ids) -> (B,)`` rewards; ``prompts`` are the items
            of the prompt batch (chat messages for a reward model).
        pad_token_id, eos_token_id: must differ (a padded EOS must stay detectable).
        config: a :class:`training.configs.PPORunConfig` (or any object with its fields).
        log: called with ``(iteration, metrics)`` after each iteration.
        on_save: called with the checkpoint directory once it is completely written.
    """

    def __init__(self, policy, ref_policy, value_model, score_fn: ScoreFn, *, pad_token_id: int,
                 eos_token_id: int, config, log: Callable[[int, dict[str, float]], None] | None = None,
                 on_save: Callable[[Path], None] | None = None):
        if pad_token_id == eos_token_id:
            raise ValueError("PPO needs a pad token different from EOS: a response's EOS must "
                             "not be confused with padding (set tokenizer.pad_token)")
        self.policy, self.ref_policy, self.value_model = policy, ref_policy, value_model
        self.score_fn, self.cfg, self.log, self.on_save = score_fn, config, log, on_save
        self.pad_id, self.eos_id = pad_token_id, eos_token_id
        for m in (ref_policy,):
            m.eval().requires_grad_(False)
        for m in (policy, value_model):
            m.train()
            for mod in m.modules():  # dropout off (Huang et al. 2024, detail 5)
                if isinstance(mod, torch.nn.Dropout):
                    mod.p = 0.0
        self.optimizer = torch.optim.AdamW(
            list(policy.parameters()) + list(value_model.parameters()), lr=config.learning_rate, eps=1e-5)
        self.kl_ctl = (AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
                       if config.adaptive_kl else FixedKLController(config.kl_coef))
        self.iteration = 0

    # -- rollouts ---------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: Sequence[Any], prompt_ids: list[list[int]]) -> Rollout:
        """Sample, score and compute advantages for one batch of prompts (token ids)."""
        cfg = self.cfg
        P = max(len(p) for p in prompt_ids)
        ids = torch.full((len(prompt_ids), P), self.pad_id, dtype=torch.long)
        pmask = torch.zeros_like(ids)
        for i, p in enumerate(prompt_ids):  # left padding
            ids[i, P - len(p):] = torch.tensor(p)
            pmask[i, P - len(p):] = 1
        self.policy.eval()
        seq = self.policy.generate(input_ids=ids, attention_mask=pmask, do_sample=True,
                                   temperature=cfg.temperature, top_k=0, top_p=1.0,
                                   max_new_tokens=cfg.max_new_tokens, pad_token_id=self.pad_id,
                                   eos_token_id=self.eos_id)
        self.policy.train()
        response = seq[:, P:]
        if response.shape[1] == 0:
            response = torch.full((len(prompt_ids), 1), self.pad_id, dtype=torch.long)
            seq = torch.cat([seq, response], 1)
        is_eos = response == self.eos_id
        contains_eos = is_eos.any(1)
        first_eos = torch.where(contains_eos, is_eos.float().argmax(1), torch.full_like(contains_eos, response.shape[1] - 1, dtype=torch.long))
        positions = torch.arange(response.shape[1]).unsqueeze(0)
        rmask = (positions <= first_eos.unsqueeze(1)).long()           # (B, R) through the EOS
        response = torch.where(rmask.bool(), response, torch.full_like(response, self.pad_id))
        input_ids = torch.cat([ids, response], 1)
        attention_mask = torch.cat([pmask, rmask], 1)

        logprobs = response_logprobs(self.policy, input_ids, attention_mask, P, cfg.temperature)
        ref_logprobs = response_logprobs(self.ref_policy, input_ids, attention_mask, P, cfg.temperature)
        values = token_values(self.value_model, input_ids, attention_mask, P)
        responses = [r[m.bool()].tolist() for r, m in zip(response, rmask)]
        scores = self.score_fn(prompts, responses).float().cpu()
        scores = scores + (~contains_eos).float() * cfg.missing_eos_penalty

        logprobs, ref_logprobs, values = logprobs * rmask, ref_logprobs * rmask, values * rmask
        kl_tokens = (logprobs - ref_logprobs) * rmask                  # k1 estimator per token
        rewards = -self.kl_ctl.value * kl_tokens
        last = rmask.sum(1) - 1
        rewards[torch.arange(len(last)), last] += scores
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, rmask, shift_mean=False)
        advantages, returns = compute_gae(rewards, values, rmask, cfg.gamma, cfg.lam)
        advantages = masked_whiten(advantages, rmask)
        return Rollout(input_ids, attention_mask, P, rmask, logprobs, ref_logprobs, values, rewards,
                       advantages, returns, scores, contains_eos, kl_tokens.sum(1))

    # -- optimization -----------------------------------------------------------------
    def step(self, ro: Rollout) -> dict[str, float]:
        """``ppo_epochs`` passes of minibatch updates over one rollout; returns the metrics
        logged every iteration (masked means)."""
        cfg = self.cfg
        B = ro.input_ids.shape[0]
        acc: dict[str, list[float]] = {}
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(B)
            for start in range(0, B, cfg.mini_batch_size):
                mb = order[start:start + cfg.mini_batch_size]
                ids, am, rm = ro.input_ids[mb], ro.attention_mask[mb], ro.response_mask[mb]
                logp, entropy = response_logprobs(self.policy, ids, am, ro.prompt_len,
                                                  cfg.temperature, with_entropy=True)
                vpred = token_values(self.value_model, ids, am, ro.prompt_len)
                pg, pg_stats = policy_loss(logp, ro.logprobs[mb], ro.advantages[mb], rm, cfg.cliprange)
                vf, vf_stats = value_loss(vpred, ro.values[mb], ro.returns[mb], rm, cfg.cliprange_value)
                loss = pg + cfg.vf_coef * vf
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    [p for g in self.optimizer.param_groups for p in g["params"]], cfg.max_grad_norm)
                self.optimizer.step()
                for k, v in {"policy_loss": pg, "value_loss": vf, "entropy": masked_mean(entropy, rm),
                             **pg_stats, **vf_stats}.items():
                    acc.setdefault(k, []).append(float(v.detach()))
        mean_kl = float(ro.kl.mean())
        self.kl_ctl.update(mean_kl, B)
        self.iteration += 1
        metrics = {k: sum(v) / len(v) for k, v in acc.items()}
        metrics.update({
            "reward": float(ro.scores.mean()),                       # RM score (+ EOS penalty)
            "kl": mean_kl,                                           # nats per response
            "non_score_reward": float((ro.rewards.sum(1) - ro.scores).mean()),
            "kl_coef": float(self.kl_ctl.value),
            "response_length": float(ro.response_mask.sum(1).float().mean()),
            "eos_rate": float(ro.contains_eos.float().mean()),
            "advantage_mean": float(masked_mean(ro.advantages, ro.response_mask)),
            "value_mean": float(masked_mean(ro.values, ro.response_mask)),
        })
        return metrics

    def train(self, prompts: Sequence[Any], prompt_ids: list[list[int]], *, output_dir: str | Path,
              resume_from: str | Path | None = None) -> list[dict[str, float]]:
        """Run ``config.max_steps`` iterations over the prompts (shuffled, cycled); save a
        checkpoint every ``save_steps`` iterations; resume from ``resume_from``."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        order = list(range(len(prompts)))
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        history = []
        while self.iteration < cfg.max_steps:
            epoch_order = order[:]
            random.Random(cfg.seed + self.iteration).shuffle(epoch_order)
            batch = [epoch_order[(self.iteration * cfg.batch_size + i) % len(order)]
                     for i in range(cfg.batch_size)]
            ro = self.rollout([prompts[i] for i in batch], [prompt_ids[i] for i in batch])
            metrics = self.step(ro)
            history.append(metrics)
            if self.log:
                self.log(self.iteration, metrics)
            if cfg.save_steps and self.iteration % cfg.save_steps == 0 and self.iteration < cfg.max_steps:
                saved = self.save_checkpoint(Path(output_dir) / f"checkpoint-{self.iteration}")
                if self.on_save:
                    self.on_save(saved)
        return history

    # -- checkpoints ------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """Policy, value model, optimizer, KL coefficient and iteration: enough to resume."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.policy.save_pretrained(path / "policy")
        self.value_model.save_pretrained(path / "value_model")
        torch.save({"optimizer": self.optimizer.state_dict(), "rng": torch.get_rng_state()},
                   path / "trainer_state.pt")
        (path / "ppo_state.json").write_text(json.dumps(
            {"iteration": self.iteration, "kl_coef": self.kl_ctl.value}))
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore what :meth:`save_checkpoint` wrote.

        Raises:
            TrainingError: the checkpoint holds another architecture (missing, unexpected or
                differently shaped weights): resume only from this run's own checkpoints.
        """
        from safetensors.torch import load_file

        from .errors import TrainingError

        path = Path(path)
        for name, model in (("policy", self.policy), ("value_model", self.value_model)):
            state = load_file(str(path / name / "model.safetensors"))
            tied = getattr(model, "_tied_weights_keys", None) or []
            tied = set(tied.keys() if isinstance(tied, dict) else tied)
            try:
                result = model.load_state_dict(state, strict=False)
            except RuntimeError as exc:      # shape mismatch
                detail = str(exc).strip().splitlines()[-1].strip()
                raise TrainingError(f"{path / name}: the checkpoint does not fit this model "
                                    f"({detail}); resume a run only from its own checkpoints") from None
            missing = [k for k in result.missing_keys if k not in tied]
            if missing or result.unexpected_keys:
                raise TrainingError(
                    f"{path / name}: the checkpoint is of another architecture (missing weights "
                    f"{missing[:3]}, unexpected {list(result.unexpected_keys)[:3]}); resume a run "
                    "only from its own checkpoints")
        blob = torch.load(path / "trainer_state.pt", weights_only=False)
        self.optimizer.load_state_dict(blob["optimizer"])
        torch.set_rng_state(blob["rng"])
        st = json.loads((path / "ppo_state.json").read_text())
        self.iteration, self.kl_ctl.value = st["iteration"], st["kl_coef"]
