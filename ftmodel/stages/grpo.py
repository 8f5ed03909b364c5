"""Stage 5 — grpo: GRPO with TRL's GRPOTrainer, continuing the SFT adapter.

Rewards are format + accuracy (+ the LLM judge where configured), weighted by [grpo]. With
`beta > 0` TRL keeps a frozen copy of the SFT adapter as the reference, so the KL is measured
against the SFT policy. `--checkpoint best|last|STEP` starts from one of the SFT run's checkpoints
instead of its final adapter. The probe (ftmodel/probe.py) scores every checkpoint, as in SFT.
"""

from __future__ import annotations

from ftmodel.context import StageContext, StageError
from ftmodel.contracts import RunInput, StageContract
from ftmodel.data.loaders import read_jsonl
from ftmodel.i18n import t
from ftmodel.models import check_model_source, find_adapter
from ftmodel.rundir import ADAPTER_DIR
from ftmodel.training import resume_checkpoint
from ftmodel.workspace import RAW_EVAL, RAW_TRAIN

CONTRACT = StageContract(
    "grpo",
    reads=(
        "model",
        "lora",
        "grpo",
        "answers",
        "data.system_prompt",
        "launch.launcher",
        "launch.num_processes",
        "launch.num_machines",  # ranks change the effective batch
        # The probe at checkpoints: which checkpoint is best (best.json, the one rotation keeps).
        "probe",
        "eval.batch_size",
        "eval.max_new_tokens",
    ),
    judge_switch="grpo.use_judge",
    inputs=(RAW_TRAIN, RAW_EVAL),  # the eval split holds the probe's questions
    consumes=lambda args: RunInput("sft", ("sft_run",), "sft_run"),  # `--sft-run`, else the newest SFT run
    run_outputs=(f"{ADAPTER_DIR}/adapter_config.json",),
)


def judge_enabled(ctx: StageContext) -> bool:
    """Whether the judge reward is on (`--no-judge` always wins)."""
    return ctx.cfg.grpo.use_judge and not ctx.args.get("no_judge")


def preflight(ctx: StageContext) -> None:
    """Check prompts, the SFT adapter, the judge and the resume point before any model loads."""
    if not ctx.ws.raw_train.exists():
        raise StageError(t("{path} not found: run `ftmodel {stage}` first", path=ctx.ws.raw_train, stage="prepare"))
    check_model_source(ctx.cfg)
    find_adapter(ctx.ws, ctx.args.get("sft_run"), "sft", ctx.args.get("checkpoint"))
    if ctx.cfg.grpo.qtypes:
        present = {q["qtype"] for q in read_jsonl(ctx.ws.raw_train)}
        missing = [q for q in ctx.cfg.grpo.qtypes if q not in present]
        if missing:
            raise StageError(
                t(
                    "grpo.qtypes: no training questions of type {missing} (types present: {present})",
                    missing=", ".join(missing),
                    present=", ".join(sorted(present)),
                )
            )
    if judge_enabled(ctx):
        from ftmodel.llm import check_service

        check_service(ctx.cfg.judge, "judge")
    if ctx.run.path.exists():
        resume_checkpoint(ctx)


def wandb_config(ctx: StageContext, sft_adapter) -> dict:
    """The config fields the original project logged for GRPO."""
    c, g = ctx.cfg, ctx.cfg.grpo
    return {
        "model_name": c.model.name_or_path,
        "sft_adapter": str(sft_adapter),
        "use_judge": judge_enabled(ctx),
        "judge_reward_weight": g.judge_reward_weight,
        "num_generations": g.num_generations,
        "temperature": g.temperature,
        "kl_coef": g.beta,
        "loss_type": g.loss_type,
        "scale_rewards": g.scale_rewards,
        "format_reward_weight": g.format_reward_weight,
        "accuracy_reward_weight": g.accuracy_reward_weight,
        "learning_rate": g.learning_rate,
        "batch_size": g.batch_size,
        "max_steps": g.max_steps,
        "max_completion_length": g.max_completion_length,
        "lora_r": c.lora.r,
        "lora_alpha": c.lora.alpha,
    }


COMPLETIONS_FILE = "completions.jsonl"


def dataset_rows(questions: list[dict], system_prompt: str) -> list[dict]:
    """Prompt rows with the columns the rewards read (gold answer, qtype, question for the judge)."""
    from ftmodel.prompts import prompt_messages

    return [
        {
            "prompt": prompt_messages(q["question"], system_prompt),
            "answer": q["answer"],
            "qtype": q["qtype"],
            "question": q["question"],
        }
        for q in questions
    ]


def trainer_args(c, output_dir: str, reward_weights: list[float]):
    """TRL's GRPOConfig for this config (also what bench/ gives plain TRL, so both train alike)."""
    from trl import GRPOConfig

    from ftmodel.models import trainer_precision

    g = c.grpo
    return GRPOConfig(
        output_dir=output_dir,
        learning_rate=g.learning_rate,
        max_steps=g.max_steps or -1,
        num_train_epochs=g.epochs,
        per_device_train_batch_size=g.batch_size,
        gradient_accumulation_steps=g.grad_accum,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        reward_weights=reward_weights,
        logging_steps=c.wandb.log_interval,
        save_steps=g.save_steps,
        save_total_limit=g.save_total_limit,
        seed=g.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **trainer_precision(c),
    )


def completion_recorder(trainer_cls, ctx: StageContext):
    """Subclass a GRPO trainer so every sampled completion is appended to `<run>/completions.jsonl`
    with its rewards (what the console's completions browser reads); rank 0 records its share."""
    from ftmodel.rewards import completion_text
    from ftmodel.rundir import dumps_strict

    class RecordingTrainer(trainer_cls):
        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            if ctx.is_main:
                local = rewards[: len(prompts)].tolist()  # gathered in rank order: rank 0's rows come first
                step = self.state.global_step + 1
                with open(ctx.run.path / COMPLETIONS_FILE, "a", encoding="utf-8") as fh:
                    for example, completion, values in zip(inputs, completions, local):
                        fh.write(
                            dumps_strict(
                                {
                                    "step": step,
                                    "question": example.get("question"),
                                    "answer": example.get("answer"),
                                    "qtype": example.get("qtype"),
                                    "completion": completion_text(completion),
                                    "rewards": dict(zip(self.reward_func_names, values)),
                                },
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
            return rewards

    return RecordingTrainer


def run(ctx: StageContext) -> dict:
    """Train from the SFT adapter and save the result to `<run>/adapter`."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from ftmodel.answers import AnswerRules
    from ftmodel.models import load_adapter_model
    from ftmodel.probe import best_outputs, make_probe_callback
    from ftmodel.rewards import accuracy_reward_with, format_reward
    from ftmodel.training import make_callback, train_and_save

    c, g = ctx.cfg, ctx.cfg.grpo
    resume = resume_checkpoint(ctx)
    sft_adapter = find_adapter(ctx.ws, ctx.args.get("sft_run"), "sft", ctx.args.get("checkpoint"))
    questions = read_jsonl(ctx.ws.raw_train)
    if g.qtypes:
        questions = [q for q in questions if q["qtype"] in g.qtypes]
    rows = dataset_rows(questions, c.data.system_prompt)
    reward_funcs = [format_reward, accuracy_reward_with(AnswerRules.from_config(ctx.cfg.answers))]
    weights = [g.format_reward_weight, g.accuracy_reward_weight]
    judge = None
    if judge_enabled(ctx):
        from ftmodel.judge import build_judge

        judge = build_judge(c, ctx.ws, ctx.log)
        reward_funcs.append(judge.reward_function())
        weights.append(g.judge_reward_weight)
    ctx.log(f"{len(rows)} prompts; starting from {sft_adapter}" + (f"; resuming from {resume}" if resume else ""))
    model, tokenizer, base = load_adapter_model(sft_adapter, c, trainable=True)
    args = trainer_args(c, str(ctx.run.path / "checkpoints"), weights)
    tracker = ctx.tracker(
        run_name=ctx.run_name(c.wandb.run_name_grpo), tags=["grpo"], wandb_config=wandb_config(ctx, sft_adapter)
    )
    trainer = completion_recorder(GRPOTrainer, ctx)(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[
            make_callback(ctx, tracker, judge),
            make_probe_callback(ctx, tracker, base=base, parent=str(sft_adapter)),
        ],
    )
    outputs = train_and_save(ctx, trainer, tokenizer, tracker, resume=resume, base=base, parent=str(sft_adapter))
    outputs = {**outputs, **best_outputs(ctx)} if outputs else outputs
    if judge is not None and judge.errors:  # rewards computed without the judge's word: not the run asked for
        ctx.mark_partial(
            f"the judge gave no score {judge.errors} times in {judge.calls} requests",
            missing=judge.errors,
            total=judge.calls,
            retry="train again with every judge score",
        )
    return outputs
