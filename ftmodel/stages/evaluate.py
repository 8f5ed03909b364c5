"""Stage 6 — evaluate: generate on the eval split and score format and answer accuracy, overall
and per question type; write `eval_*.json` and `eval_details_*.jsonl`.

By default the latest GRPO adapter is evaluated; `--eval-sft` picks the SFT one, `--model base`
the base model, `--adapter RUN|DIR` any adapter.
"""

from __future__ import annotations

from ftmodel.answers import AnswerRules
from ftmodel.context import StageContext, timestamp
from ftmodel.evaluation import check_judge
from ftmodel.models import check_model_source, find_adapter
from ftmodel.textio import format_table, write_json, write_jsonl_lines

# Model labels in run and file names, as the original project named them.
LABELS = {"base": "base", "sft": "sft_lora", "grpo": "grpo_lora"}


def target(ctx: StageContext) -> str:
    """Which model to evaluate: base, sft or grpo."""
    if ctx.args.get("model"):
        return ctx.args["model"]
    return "sft" if ctx.args.get("eval_sft") else "grpo"


def adapter_ref(ctx: StageContext) -> str | None:
    """The adapter to evaluate: `--adapter`, else the run pinned when the stage started (its lineage)."""
    return ctx.args.get("adapter") or ctx.args.get("adapter_run")


def preflight(ctx: StageContext) -> None:
    """Check the eval data and the model to evaluate before any model loads."""
    check_model_source(ctx.cfg)
    check_judge(ctx)
    if ctx.args.get("adapter") or target(ctx) != "base":
        find_adapter(ctx.ws, adapter_ref(ctx), target(ctx))


def load_target(ctx: StageContext, which: str, adapter_ref: str | None = None):
    """Load (model, tokenizer, adapter path or None) for base / sft / grpo."""
    from ftmodel.models import load_adapter_model, load_base_model, load_tokenizer, resolve_base

    if which == "base" and not adapter_ref:
        base = resolve_base(ctx)
        return load_base_model(base, ctx.cfg), load_tokenizer(base, ctx.cfg, "left"), None
    adapter = find_adapter(ctx.ws, adapter_ref, which)
    model, tokenizer, _ = load_adapter_model(adapter, ctx.cfg)
    return model, tokenizer, adapter


def run(ctx: StageContext) -> dict:
    """Evaluate one model and write its report, details and metrics."""
    from ftmodel.evaluation import (
        baseline_for,
        eval_questions,
        flat_metrics,
        generate,
        judge_completions,
        maybe_judge,
        qtype_table,
        score,
    )

    which = target(ctx)
    label = LABELS[which] if not ctx.args.get("adapter") else "adapter"
    questions = eval_questions(ctx)
    model, tokenizer, adapter = load_target(ctx, which, adapter_ref(ctx))
    ctx.log(f"evaluating {label} ({adapter or 'base model'}) on {len(questions)} questions")
    judge = maybe_judge(ctx)
    completions = generate(ctx, model, tokenizer, questions, label=label)
    judge_scores = judge_completions(ctx, judge, questions, completions) if judge else None
    summary, details = score(
        questions, completions, baseline_for(ctx, questions), judge_scores, AnswerRules.from_config(ctx.cfg.answers)
    )
    summary.update(model=label, adapter=str(adapter) if adapter else None)
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
