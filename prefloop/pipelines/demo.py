"""``prefloop demo``: the whole loop on real data and the embedded SmolLM2, in one command, and a
test of whether it made a model people prefer.

Stages (each recorded; re-running resumes):

1. import the shared HH-RLHF (human labels), AlpacaEval (AI labels) and MT-Bench files;
2. record the prompt sets (:data:`PROMPT_SETS`): HH-RLHF harmless-base prompts and benign
   helpfulness prompts (AlpacaEval instructions, MT-Bench first turns) split into train, dev
   (where the plan below was chosen) and test (only reported), so no model trains on, and no
   choice is made on, a prompt that reports;
3. export the training prompts' labels as two disjoint halves (A, B; which prompt goes where
   depends on the seed), convert the embedded model;
4. a **proxy** reward model (MiniLM, Bradley-Terry) on half A and a **second** one on half B:
   the same recipe on other labels of the same kind, a diagnostic of direction, not a judge;
5. **SFT** (the first stage of the RLHF recipe; Ouyang et al. 2022, Bai et al. 2022's SL stage)
   on demonstrations: half A's HH-RLHF chosen replies (people's harmless answers) and, as
   rehearsal, the base model's own finished answers to benign training prompts (the proxy RM's
   best of ``rehearsal_n``), so that learning to decline harmful requests does not cost the
   base its benign answers (measured on the dev prompts: docs/results.md); prompts cut by whole
   turns, no reply cut short;
6. **DPO** (Rafailov et al. 2023) from the SFT policy on half A's preference pairs (LoRA,
   the SFT policy as reference), and optionally **PPO** on the proxy RM after it (``--quick``
   runs one iteration; the dev-set measurements behind this plan are in ``docs/results.md``:
   a MiniLM reward model agrees with held-out human labels 49-64% of the time, too weakly for
   its labels to steer a policy, so the preference stage learns from the labels themselves);
   with ``control_row``, the same DPO on half A with chosen and rejected swapped at random
   (the random-label control: what training alone, without the labels' signal, does);
7. **evaluation** on the test prompts (harmless and benign reported apart): the base against the
   SFT, DPO and final policies (and itself: the A/A row, with ``aa_row``; and the control),
   blind pairwise tasks queued for people on the final policy, the A/A row and the control
   (the headline, filled in as they label), the reward models, KL to the
   base, length, EOS and refusal rates; a Constitutional-AI critique/revision batch; an
   ``admin`` user.

:data:`DEFAULT` is what ``make demo`` runs (about 20 minutes on 2 cores), :data:`FULL`
(``--full``) the plan whose results the documentation reports (about 40 minutes), and
:data:`QUICK` a smoke run of every stage.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.core.display import interval
from prefloop.store.export_files import export_pairs
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters

from .base import Pipeline
from .errors import DemoDataError
from .eval_results import EvalSummary
from .prompt_sets import PromptSetPlan, record_prompt_sets

__all__ = ["DemoPlan", "DEFAULT", "FULL", "QUICK", "PLANS", "PROMPT_SETS", "DemoResult", "Target",
           "run_demo", "shared_data_dir", "demo_targets", "import_shared", "record_demo_prompt_sets",
           "demo_seed_rows"]

log = logging.getLogger(__name__)

HH = "hh-rlhf/harmless-base-test-dev.jsonl.gz"
ALPACA = "alpaca-eval/alpaca-7b_vs_text-davinci-003_gpt4-judge.json"
MT_BENCH = "mt-bench/question.jsonl"
HH_DATASET = "harmless-base-test-dev"
ALPACA_DATASET = "alpaca-7b_vs_text-davinci-003_gpt4-judge"

#: The recorded prompt sets: HH-RLHF harmless-base (harmful requests, multi-turn) and benign
#: helpfulness prompts (AlpacaEval's instructions, MT-Bench's first turns; MT-Bench has no
#: labels, so none of it trains). 200 test prompts, 124 dev prompts.
PROMPT_SETS = (PromptSetPlan(HH_DATASET, test=100, dev=64, subset="harmless"),
               PromptSetPlan(ALPACA_DATASET, test=50, dev=32, subset="benign"),
               PromptSetPlan("mt-bench", test=50, dev=28, subset="benign", train=False))


@dataclass(frozen=True)
class DemoPlan:
    """Budgets of each stage (steps, lengths, counts; ``0`` leaves a stage out)."""

    name: str
    rm_steps: int
    rm_max_length: int
    rehearsal_prompts: int       # benign training prompts the base answers for SFT's rehearsal (0: none)
    rehearsal_n: int             # samples per rehearsal prompt (the proxy RM's best finished one is kept)
    sft_steps: int
    sft_batch: int
    sft_max_length: int
    sft_learning_rate: float
    dpo_steps: int               # DPO on half A's pairs from the SFT policy (0: no DPO stage)
    dpo_beta: float
    dpo_learning_rate: float     # LoRA
    ppo_iterations: int          # 0: no PPO stage
    ppo_batch: int
    eval_per_subset: int         # test prompts per subset (harmless, benign)
    eval_tokens: int             # the base's EOS curve: docs/results.md
    max_prompt_tokens: int
    eval_stages: bool            # evaluate the SFT and DPO policies too, not only the final one
    aa_row: bool                 # the base against itself (another seed): drift alone
    control_row: bool            # the random-label control: the preference stage on labels swapped at random
    critique_responses: int
    minutes: int                 # the time target of the whole demo, install included


DEFAULT = DemoPlan(name="default", rm_steps=40, rm_max_length=192, rehearsal_prompts=48, rehearsal_n=3,
                   sft_steps=30, sft_batch=4,
                   sft_max_length=320, sft_learning_rate=2e-4, dpo_steps=16, dpo_beta=0.1,
                   dpo_learning_rate=5e-4, ppo_iterations=0, ppo_batch=16, eval_per_subset=32, eval_tokens=128,
                   max_prompt_tokens=256, eval_stages=False, aa_row=False, control_row=False, critique_responses=1,
                   minutes=20)
FULL = replace(DEFAULT, name="full", sft_steps=40, dpo_steps=48, eval_stages=False, aa_row=True, control_row=True,
               minutes=40)
QUICK = DemoPlan(name="quick", rm_steps=8, rm_max_length=128, rehearsal_prompts=4, rehearsal_n=2, sft_steps=4,
                 sft_batch=2, sft_max_length=192,
                 sft_learning_rate=2e-4, dpo_steps=2, dpo_beta=0.1, dpo_learning_rate=5e-4, ppo_iterations=1,
                 ppo_batch=4, eval_per_subset=6, eval_tokens=24, max_prompt_tokens=128, eval_stages=True,
                 aa_row=True, control_row=True, critique_responses=1, minutes=10)
PLANS = {p.name: p for p in (QUICK, DEFAULT, FULL)}


@dataclass(frozen=True)
class Target:
    """One of the demo's targets: what is asked, the figure measured (or what it waits for),
    and whether it is met (``None``: not measured yet, e.g. people's labels still to come)."""

    name: str
    measured: str
    met: bool | None


@dataclass
class DemoResult:
    """What a demo made: its pipeline run, each stage's recorded result, the final evaluation's
    run and typed summary, and the targets as measured now."""

    run: store.Run
    plan: DemoPlan
    seed: int
    stages: dict[str, dict[str, Any]]
    eval_run: store.Run
    summary: EvalSummary
    final: str
    admin_password: str | None = None          # shown once when the demo created the admin user
    targets: list[Target] = field(default_factory=list)


def shared_data_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, ``$PREFLOOP_SHARED_DATA``, or ``shared/data`` beside the project checkout.

    Raises:
        DemoDataError: none of them holds the HH-RLHF file.
    """
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("PREFLOOP_SHARED_DATA"):
        candidates.append(Path(os.environ["PREFLOOP_SHARED_DATA"]))
    here = Path(__file__).resolve().parents[2]     # the checkout: prefloop/pipelines/demo.py
    candidates += [here.parent / "shared" / "data", Path.cwd().parent / "shared" / "data",
                   Path.cwd() / "shared" / "data"]
    for c in candidates:
        if (c / HH).exists():
            return c
    raise DemoDataError(f"{candidates[0] if candidates else 'shared/data'}: the shared data (hh-rlhf, "
                        "alpaca-eval, mt-bench) was not found; pass --data DIR or set PREFLOOP_SHARED_DATA")


def import_shared(s: store.Store, data_dir: Path) -> dict[str, Any]:
    """Import the shared HH-RLHF, AlpacaEval and MT-Bench files (idempotent); lines read,
    imported and rejected per file."""
    out = {}
    for name, rel, fmt in (("hh", HH, "hh"), ("alpaca_eval", ALPACA, "alpaca-eval"), ("mt_bench", MT_BENCH, "prompts")):
        r = import_file(s, data_dir / rel, fmt)
        out[name] = {"lines": r.lines_read, "imported": r.imported, "rejected": r.rejected}
    return out


def record_demo_prompt_sets(s: store.Store) -> dict[str, int]:
    """Record :data:`PROMPT_SETS` (idempotent); prompts per ``split:subset:dataset``."""
    for plan in PROMPT_SETS:
        counts = record_prompt_sets(s, plan)
    return {f"{c.split}:{c.subset}:{c.dataset}": c.prompts for c in counts}


class _Demo:
    """The stages of one demo run (see the module docstring); each returns a JSON-able dict
    that the pipeline run records, so a re-run resumes."""

    def __init__(self, s: store.Store, plan: DemoPlan, seed: int, data_dir: Path, pipe: Pipeline):
        self.s, self.plan, self.seed, self.data, self.pipe = s, plan, seed, data_dir, pipe
        self.runs = s.path.resolve().parent / "runs"

    def imports(self) -> dict[str, Any]:
        return import_shared(self.s, self.data)

    def prompt_sets(self) -> dict[str, Any]:
        return record_demo_prompt_sets(self.s)

    def export(self) -> dict[str, Any]:
        out = {}
        for half, shard in (("a", 0), ("b", 1)):
            r = export_pairs(self.s, self.runs / f"demo-{self.pipe.run.id}-export-{half}", PairFilters(
                source="all", test_fraction=0.1, seed=self.seed, shard=shard, shards=2), overwrite=True)
            out[half] = {"export_id": r.export.id, "train": r.n_train, "test": r.n_test,
                         "held_out": r.counts.n_held_out}
        return out

    def random_labels(self) -> dict[str, Any]:
        """Half A with each pair's chosen and rejected swapped at random (the control)."""
        r = export_pairs(self.s, self.runs / f"demo-{self.pipe.run.id}-export-random", PairFilters(
            source="all", test_fraction=0.1, seed=self.seed, shard=0, shards=2, random_labels=True),
            overwrite=True)
        return {"export_id": r.export.id, "train": r.n_train, "swapped": r.counts.n_swapped}

    def reward_model(self, export_id: int) -> dict[str, Any]:
        from prefloop.training.configs import RewardRunConfig
        from prefloop.training.train import train

        cfg = RewardRunConfig(model="minilm", export_id=export_id, max_steps=self.plan.rm_steps,
                              max_length=self.plan.rm_max_length, per_device_train_batch_size=8,
                              learning_rate=5e-5, max_eval_pairs=96, save_steps=10_000, logging_steps=10,
                              seed=self.seed)
        r = train(self.s, "rm", config=cfg, pipeline_run_id=self.pipe.run.id)
        return {"run_id": r.run.id, "accuracy": r.eval_accuracy, "eval_pairs": r.eval_metrics.get("n"),
                "steps": r.steps}

    def rehearsal(self, proxy: str) -> dict[str, Any]:
        """The base's own answers to benign training prompts, best finished of ``rehearsal_n``
        under the proxy RM (AI labels by ``reward-model:<proxy>``), and the SFT export: half A's
        human demonstrations (HH-RLHF's chosen replies) with these rehearsal answers."""
        from prefloop.core.models import DEFAULT_MODEL
        from prefloop.training.generate import GenParams, generate, reward_labeler

        p = self.plan
        g = generate(self.s, DEFAULT_MODEL, "set:train:benign", limit=p.rehearsal_prompts,
                     params=GenParams(n=p.rehearsal_n, max_new_tokens=p.eval_tokens, temperature=0.7, top_p=1.0,
                                      batch_size=12, seed=self.seed),
                     reward_model=proxy, label_best=True, max_prompt_tokens=p.max_prompt_tokens,
                     pipeline_run_id=self.pipe.run.id)
        labelers = ("hh-rlhf", reward_labeler(proxy))
        r = export_pairs(self.s, self.runs / f"demo-{self.pipe.run.id}-export-sft", PairFilters(
            labeler=labelers, test_fraction=0.1, seed=self.seed, shard=0, shards=2), overwrite=True)
        return {"generate_run_id": g.run.id, "labeled": len(g.comparison_ids),
                "export_id": r.export.id, "rows": r.n_train}

    def sft(self, export_id: int) -> dict[str, Any]:
        from prefloop.core.models import DEFAULT_MODEL
        from prefloop.training.configs import SFTRunConfig
        from prefloop.training.train import train

        p = self.plan
        cfg = SFTRunConfig(model=DEFAULT_MODEL, export_id=export_id, max_steps=p.sft_steps, use_lora=True,
                           lora_layers=0.5, per_device_train_batch_size=p.sft_batch, max_length=p.sft_max_length,
                           learning_rate=p.sft_learning_rate, max_eval_pairs=16, save_steps=10_000,
                           logging_steps=5, seed=self.seed)
        r = train(self.s, "sft", config=cfg, pipeline_run_id=self.pipe.run.id)
        return {"run_id": r.run.id, "steps": r.steps, "rows": r.n_train, "train_loss": r.train_loss}

    def dpo(self, policy: str, export_id: int) -> dict[str, Any]:
        from prefloop.training.configs import DPORunConfig
        from prefloop.training.train import train

        p = self.plan
        cfg = DPORunConfig(model=policy, export_id=export_id, max_steps=p.dpo_steps, use_lora=True,
                           lora_layers=0.5, per_device_train_batch_size=2, max_length=p.sft_max_length,
                           learning_rate=p.dpo_learning_rate, beta=p.dpo_beta, max_eval_pairs=16,
                           save_steps=10_000, logging_steps=4, seed=self.seed)
        r = train(self.s, "dpo", config=cfg, pipeline_run_id=self.pipe.run.id)
        return {"run_id": r.run.id, "steps": r.steps, "pairs": r.n_train, "train_loss": r.train_loss,
                "eval_accuracy": r.eval_accuracy}

    def ppo(self, policy: str, export_id: int, proxy: str, second: str) -> dict[str, Any]:
        from prefloop.training.configs import PPORunConfig
        from prefloop.training.train import train

        p = self.plan
        cfg = PPORunConfig(model=policy, export_id=export_id, reward_model=proxy, second_reward_model=second,
                           max_steps=p.ppo_iterations, batch_size=p.ppo_batch,
                           mini_batch_size=max(1, p.ppo_batch // 2), ppo_epochs=2, max_new_tokens=p.eval_tokens,
                           max_prompt_length=p.max_prompt_tokens, save_steps=10_000, seed=self.seed)
        r = train(self.s, "ppo", config=cfg, pipeline_run_id=self.pipe.run.id)
        curve = {name: [m.value for m in self.s.runs.metrics(r.run.id, name)]
                 for name in ("probe_reward_model", "probe_reward_second", "kl")}
        return {"run_id": r.run.id, "iterations": r.steps, **curve}

    def evaluate(self, models: list[str], proxy: str, second: str, control: str | None) -> dict[str, Any]:
        """The base against the policies (the last is the final one), the A/A row and the
        control; blind tasks for people on the final policy, the A/A row and the control, each
        on prompts of its own (the final policy on three prompts for each one of the others)."""
        from prefloop.core.models import DEFAULT_MODEL

        from .evaluation import EvalConfig, run_eval

        p = self.plan
        controls = ([DEFAULT_MODEL] if p.aa_row else []) + ([control] if control else [])
        specs = [DEFAULT_MODEL] + controls + models
        cfg = EvalConfig(models=tuple(specs), prompts="set:test", per_subset=p.eval_per_subset,
                         max_prompt_tokens=p.max_prompt_tokens, reward_model=proxy, second_reward_model=second,
                         tasks=2 * p.eval_per_subset, task_models=(models[-1], *controls), overlap=1,
                         task_weights=(3, *[1] * len(controls)),
                         max_new_tokens=p.eval_tokens, batch_size=16, seed=self.seed)
        r = run_eval(self.s, cfg, pipeline_run_id=self.pipe.run.id)
        roles = (["a/a"] if p.aa_row else []) + (["random labels"] if control else []) + \
            [f"stage {i + 1}" for i in range(len(models) - 1)] + ["final"]
        return {"run_id": r.run.id, "tasks": r.summary.tasks,
                "models": dict(zip(roles, [row.model for row in r.summary.rows][1:]))}

    def constitutional(self) -> dict[str, Any]:
        from prefloop.judge.backends import make_backend
        from prefloop.judge.batch import run_batch

        r = run_batch(self.s, "critique", make_backend("local", store=self.s), source="generated",
                      limit=self.plan.critique_responses, concurrency=1, max_tokens=96, progress=False,
                      pipeline_run_id=self.pipe.run.id)
        return {"run_id": r.run.id, "revisions": r.revisions, "calls": r.calls}


def _admin(s: store.Store) -> tuple[dict[str, Any], str | None]:
    """An active admin user (created with a random password, returned once, if there is none)."""
    admins = [a for a in s.annotators.list() if a.role == "admin" and a.active]
    if admins:
        return {"admin": admins[0].name, "admin_created": False}, None
    from prefloop.annotate_app.auth import hash_password

    given = os.environ.get("PREFLOOP_ADMIN_PASSWORD")
    password = given or secrets.token_urlsafe(9)
    s.annotators.add("admin", "admin", hash_password(password))
    return {"admin": "admin", "admin_created": True}, None if given else password


def run_demo(s: store.Store, *, plan: DemoPlan = DEFAULT, seed: int = 1, data: str | Path | None = None,
             fresh: bool = False) -> DemoResult:
    """Run (or resume) the demo on store ``s`` with ``plan`` and ``seed`` (the halves A/B, the
    reward models, the policies' data order and samples); returns the :class:`DemoResult`.

    Raises:
        DemoDataError: the shared data is missing.
        PrefloopError: a stage failed (the run is marked failed; re-running resumes).
    """
    from prefloop.core.models import DEFAULT_MODEL, default_model_path

    data_dir = shared_data_dir(data)
    config = {"demo": plan.name, "plan": asdict(plan), "seed": seed, "version": 13}
    pipe = Pipeline(s, "demo", config, resume=not fresh, reuse_finished=not fresh)
    d = _Demo(s, plan, seed, data_dir, pipe)
    pipe.stage("import", "1. Import HH-RLHF (human labels), AlpacaEval (AI labels), MT-Bench prompts", d.imports)
    pipe.stage("prompt_sets", "2. Record the prompt sets: train, dev (choices), test (reporting)", d.prompt_sets)
    ex = pipe.stage("export", "3. Export the training prompts' labels: halves A and B", d.export)
    pipe.stage("model", f"   Embedded model {DEFAULT_MODEL} (converted once, then cached)",
               lambda: {"path": str(default_model_path())})
    a, b = ex["a"]["export_id"], ex["b"]["export_id"]
    proxy = f"run:{pipe.stage('rm', '4. Proxy reward model (MiniLM) on half A', lambda: d.reward_model(a))['run_id']}"
    second = f"run:{pipe.stage('second_rm', '   Second reward model on half B', lambda: d.reward_model(b))['run_id']}"
    policy, evaluated = DEFAULT_MODEL, []
    if plan.sft_steps:
        demos = a
        if plan.rehearsal_prompts:
            demos = pipe.stage("rehearsal", "5. SFT data: people's demonstrations and the base's own answers to benign "
                               "prompts (rehearsal)", lambda: d.rehearsal(proxy))["export_id"]
        policy = f"run:{pipe.stage('sft', '   SFT on the demonstrations', lambda: d.sft(demos))['run_id']}"
        evaluated.append(policy)
    control = None
    if plan.dpo_steps:
        start = policy
        policy = f"run:{pipe.stage('dpo', '6. DPO from the SFT policy on half A pairs', lambda: d.dpo(start, a))['run_id']}"
        evaluated.append(policy)
        if plan.control_row:
            rand = pipe.stage("random_labels", "   The random-label control: half A, chosen and rejected "
                              "swapped at random", d.random_labels)["export_id"]
            control = f"run:{pipe.stage('dpo_random', '   DPO on the random labels (control)', lambda: d.dpo(start, rand))['run_id']}"
    if plan.ppo_iterations:
        policy = f"run:{pipe.stage('ppo', '   PPO on the proxy RM', lambda: d.ppo(policy, a, proxy, second))['run_id']}"
        evaluated.append(policy)
    compared = evaluated if plan.eval_stages else evaluated[-1:]
    ev = pipe.stage("eval", "7. Evaluate on the test prompts: people (blind tasks), reward models, KL",
                    lambda: d.evaluate(compared, proxy, second, control))
    pipe.stage("cai", "   Constitutional AI: critique and revise a response (local judge)", d.constitutional)
    password_box: list[str | None] = [None]

    def admin():
        out, password_box[0] = _admin(s)
        return {**out, "open_tasks": s.tasks.count_open()}

    pipe.stage("queue", "   An admin user for the labeling app", admin)
    run = pipe.finish({"final": policy, "eval_run_id": ev["run_id"], "seed": seed})
    from .evaluation import with_people

    eval_run = s.runs.get(ev["run_id"])
    summary, progress = with_people(s, eval_run)
    seconds = {k: v["seconds"] for k, v in pipe.stages.items()}
    return DemoResult(run, plan, seed, dict(pipe.stages), eval_run, summary, policy, password_box[0],
                      demo_targets(summary, progress, policy, seconds, plan))


def demo_seed_rows(s: store.Store, plan: str = "full") -> tuple[list[int], list]:
    """The finished demo runs of ``plan`` on this store, one per seed (the newest), as
    seed-level rows (:func:`prefloop.pipelines.board.seed_rows`): the final policy, the A/A
    row and the random-label control, each against the base. Returns ``(run ids, rows)``.

    Raises:
        DemoDataError: no finished demo run of that plan records its versions.
    """
    from .board import seed_rows

    by_seed: dict[int, store.Run] = {}
    for r in s.runs.list(kind="demo"):
        if r.status == "finished" and (r.config or {}).get("demo") == plan and \
                "models" in ((r.summary or {}).get("stages", {}).get("eval") or {}):
            by_seed[int(r.config["seed"])] = r          # runs come oldest first: the newest wins
    if not by_seed:
        raise DemoDataError(f"no finished `prefloop demo{'' if plan == 'default' else ' --' + plan}` run "
                            "on this store records its evaluated versions: run it first")
    seeds = {str(seed): {"eval_run_id": r.summary["stages"]["eval"]["run_id"],
                         "models": r.summary["stages"]["eval"]["models"]} for seed, r in sorted(by_seed.items())}
    return [r.id for _, r in sorted(by_seed.items())], seed_rows(s, seeds)


def _fmt(w) -> str:
    return "-" if w is None else interval(w.rate, w.low, w.high, n=w.n)


def demo_targets(summary: EvalSummary, progress, final: str, seconds: dict[str, float],
                 plan: DemoPlan) -> list[Target]:
    """The demo's targets, read from its evaluation (people's column as labeled so far): the
    time; the final policy against the base on the harmless test prompts (people: win >= 0.60,
    CI low > 0.5) and the benign ones (not worse: CI high >= 0.5; refusals at most 5 points
    above the base's); KL <= 5 nats per response; the second reward model agreeing in direction."""
    total = sum(seconds.values())
    out = [Target(f"demo under {plan.minutes} minutes (stages; the install adds 1-3)",
                  f"{total / 60:.1f} min", total <= plan.minutes * 60)]
    row, base = summary.row(final), summary.row(summary.baseline)
    waiting = f"waiting for {progress.waiting} blind labels" if progress.waiting else "no labels"

    def people(subset):
        sl = row.slice(subset)
        return sl.people.win if sl is not None and sl.people is not None else None

    harmless, benign = people("harmless"), people("benign")
    out.append(Target("people, harmless prompts: final beats the base (win >= 0.60, CI low > 0.5)",
                      _fmt(harmless) if harmless else waiting,
                      None if harmless is None else harmless.rate >= 0.60 and harmless.low > 0.5))
    out.append(Target("people, benign prompts: final not worse than the base (CI high >= 0.5)",
                      _fmt(benign) if benign else waiting, None if benign is None else benign.high >= 0.5))
    fb, bb = row.slice("benign"), base.slice("benign")
    if fb is not None and bb is not None:
        out.append(Target("benign prompts: refusals at most 5 points above the base's",
                          f"{fb.refusal_rate:.2f} (base {bb.refusal_rate:.2f})",
                          fb.refusal_rate <= bb.refusal_rate + 0.05))
    kl = row.overall.kl
    out.append(Target("final policy: KL to the base <= 5 nats per response",
                      "-" if kl is None else f"{kl:.2f}", kl is not None and kl <= 5))
    second = row.overall.second_rm
    out.append(Target("the second reward model agrees in direction (win > 0.5)",
                      _fmt(second.win if second else None), bool(second and second.win.rate > 0.5)))
    return out
