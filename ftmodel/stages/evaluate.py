"""Stage 6 — evaluate: generate on the eval split and score format and answer accuracy, overall
and per question type; write `eval_*.json` and `eval_details_*.jsonl`.

By default the latest GRPO adapter is evaluated; `--eval-sft` picks the SFT one, `--model base`
the base model, `--adapter RUN|DIR` any adapter; `--checkpoint best|last|STEP` one of that run's
checkpoints (ftmodel/checkpoints.py).
"""

from __future__ import annotations

from ftmodel.answers import AnswerRules
from ftmodel.context import StageContext, StageError, timestamp
from ftmodel.contracts import RunInput, StageContract
from ftmodel.evaluation import check_judge
from ftmodel.models import check_model_source, find_adapter
from ftmodel.textio import format_table, write_json, write_jsonl_lines
from ftmodel.workspace import RAW_EVAL

# Model labels in run and file names, as the original project named them.
LABELS = {"base": "base", "sft": "sft_lora", "grpo": "grpo_lora"}


def target_of(args: dict) -> str:
    """Which model the args ask to evaluate: base, sft or grpo."""
    return args.get("model") or ("sft" if args.get("eval_sft") else "grpo")


def consumed_adapter(args: dict) -> RunInput | None:
    """The run whose adapter is evaluated: `--adapter`, the pinned run, else the newest of the target (base: none)."""
    keys = ("adapter", "adapter_run")
    if target_of(args) == "base" and not any(args.get(k) for k in keys):
        return None
    return RunInput(target_of(args), keys, "adapter_run")


CONTRACT = StageContract(
    "evaluate",
    reads=("model", "eval", "answers", "data.system_prompt"),
    judge_switch="judge.enabled",
    inputs=(RAW_EVAL,),
    consumes=consumed_adapter,
)


def target(ctx: StageContext) -> str:
    """Which model to evaluate: base, sft or grpo."""
    return target_of(ctx.args)


def adapter_ref(ctx: StageContext) -> str | None:
    """The adapter to evaluate: `--adapter`, else the run pinned when the stage started (its lineage)."""
    return ctx.args.get("adapter") or ctx.args.get("adapter_run")


def preflight(ctx: StageContext) -> None:
    """Check the eval data and the model to evaluate before any model loads."""
    check_model_source(ctx.cfg)
    check_judge(ctx)
    if ctx.args.get("adapter") or target(ctx) != "base":
        find_adapter(ctx.ws, adapter_ref(ctx), target(ctx), ctx.args.get("checkpoint"))
    elif ctx.args.get("checkpoint"):
        raise StageError(f"--checkpoint {ctx.args['checkpoint']}: the base model has no checkpoints (name an adapter)")


def run(ctx: StageContext) -> dict:
    """Evaluate one model and write its report, details and metrics."""
    from ftmodel.evaluation import (
        baseline_for,
        eval_questions,
        flat_metrics,
        generate,
        judge_completions,
        load_target,
        maybe_judge,
        qtype_table,
        score,
    )

    which = target(ctx)
    label = LABELS[which] if not ctx.args.get("adapter") else "adapter"
    questions = eval_questions(ctx)
    model, tokenizer, adapter = load_target(ctx, which, adapter_ref(ctx), ctx.args.get("checkpoint"))
    ctx.log(f"evaluating {label} ({adapter or 'base model'}) on {len(questions)} questions")
    judge = maybe_judge(ctx)
    completions = generate(ctx, model, tokenizer, questions, label=label)
    judge_scores = judge_completions(ctx, judge, questions, completions, label=label) if judge else None
    summary, details = score(
        questions, completions, baseline_for(ctx, questions), judge_scores, AnswerRules.from_config(ctx.cfg.answers)
    )
    summary.update(model=label, adapter=str(adapter) if adapter else None, checkpoint=ctx.args.get("checkpoint"))
    stamp = timestamp()
    report = ctx.run.path / f"eval_{label}_{stamp}.json"
    details_path = ctx.run.path / f"eval_details_{label}_{stamp}.jsonl"
    write_json(report, summary)
    write_jsonl_lines(details_path, details)
    columns, rows = qtype_table(summary)
    print(format_table(columns, rows), flush=True)
    tracker = ctx.tracker(
        run_name=f"{ctx.cfg.wandb.run_name_eval}-{label}-{stamp}",
        tags=["evaluation"],
        wandb_config={
            "model": label,
            "adapter": str(adapter),
            "checkpoint": ctx.args.get("checkpoint") or "last",
            "num_samples": len(questions),
            "use_judge": judge is not None,
            "max_new_tokens": ctx.cfg.eval.max_new_tokens,
        },
    )
    metrics = flat_metrics(summary)
    tracker.log(metrics, step=0)
    tracker.summary(metrics)
    tracker.table("per_qtype", columns, rows)
    tracker.artifact(report, name=f"eval-{label}-{ctx.run.id}", kind="evaluation")
    tracker.artifact(details_path, name=f"eval-details-{label}-{ctx.run.id}", kind="evaluation")
    return {"report": report, "details": details_path}
