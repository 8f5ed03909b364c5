"""Stage 8 — ablation: evaluate base, SFT-only and SFT+GRPO (and their best checkpoints) side by side, per qtype."""

from __future__ import annotations

from ftmodel.answers import AnswerRules
from ftmodel.context import StageContext, timestamp
from ftmodel.contracts import StageContract
from ftmodel.evaluation import check_judge
from ftmodel.models import check_model_source, find_adapter
from ftmodel.textio import format_table, write_json, write_text_atomic
from ftmodel.words import VARIANT_PREFIX

# Never reused: it compares whatever is latest, so its inputs are not pinned.
CONTRACT = StageContract("ablation", reusable=False)

# Variant → (model loaded, metric prefix as in the original project, which checkpoint: `--checkpoint`'s values).
VARIANTS = {
    "base": ("base", VARIANT_PREFIX["base"], None),
    "sft_only": ("sft", VARIANT_PREFIX["sft_only"], None),
    "sft_grpo": ("grpo", VARIANT_PREFIX["sft_grpo"], None),
    "sft_best": ("sft", VARIANT_PREFIX["sft_best"], "best"),
    "grpo_best": ("grpo", VARIANT_PREFIX["grpo_best"], "best"),
}


def preflight(ctx: StageContext) -> None:
    """Check every variant's model exists before any model loads."""
    check_model_source(ctx.cfg)
    check_judge(ctx)
    for variant in ctx.cfg.ablation.variants:
        which, _, checkpoint = VARIANTS[variant]
        if which != "base":
            find_adapter(ctx.ws, None, which, checkpoint)


def comparison(results: dict[str, dict]) -> tuple[list[str], list[list]]:
    """The comparison table: one row per qtype (and overall), format/answer accuracy per variant."""
    variants = list(results)
    first = results[variants[0]]
    columns = ["qtype", "total", "majority_baseline"]
    judged = "avg_judge_score" in first
    for v in variants:
        columns += [f"{VARIANTS[v][1]}/format", f"{VARIANTS[v][1]}/answer"] + (
            [f"{VARIANTS[v][1]}/judge"] if judged else []
        )
    rows = []
    for qtype in [*first["per_qtype"], "overall"]:
        base_row = first if qtype == "overall" else first["per_qtype"][qtype]
        row = [qtype, base_row["total"], base_row.get("majority_baseline")]
        for v in variants:
            c = results[v] if qtype == "overall" else results[v]["per_qtype"][qtype]
            row += [c["format_accuracy"], c["answer_accuracy"]] + ([c.get("avg_judge_score")] if judged else [])
        rows.append(row)
    return columns, rows


def run(ctx: StageContext) -> dict:
    """Evaluate each variant, log `<variant>/…` metrics, print and save the comparison."""
    from ftmodel.evaluation import (
        baseline_for,
        eval_questions,
        flat_metrics,
        generate,
        judge_completions,
        load_target,
        maybe_judge,
        score,
    )

    questions = eval_questions(ctx)
    baseline = baseline_for(ctx, questions)
    judge = maybe_judge(ctx)
    results: dict[str, dict] = {}
    variants = ctx.cfg.ablation.variants
    for i, variant in enumerate(variants):
        which, prefix, checkpoint = VARIANTS[variant]
        model, tokenizer, adapter = load_target(ctx, which, checkpoint=checkpoint)
        ctx.log(f"{prefix}: {adapter or 'base model'}")
        completions = generate(
            ctx,
            model,
            tokenizer,
            questions,
            label=prefix,
            progress_offset=i * len(questions),
            progress_total=len(variants) * len(questions),
        )
        judge_scores = judge_completions(ctx, judge, questions, completions, label=prefix) if judge else None
        summary, _ = score(questions, completions, baseline, judge_scores, AnswerRules.from_config(ctx.cfg.answers))
        results[variant] = {**summary, "adapter": str(adapter) if adapter else None}
        del model
    stamp = timestamp("_")
    columns, rows = comparison(results)
    table = format_table(columns, rows)
    print(table, flush=True)
    path = ctx.run.path / f"ablation_summary_{stamp}.json"
    write_json(path, {"variants": results, "majority_baseline": baseline, "table": {"columns": columns, "rows": rows}})
    write_text_atomic(ctx.run.path / "ablation_table.txt", table + "\n")
    tracker = ctx.tracker(
        run_name=f"{ctx.cfg.wandb.run_name_ablation}-{stamp}",
        tags=["ablation"],
        wandb_config={
            "variants": ctx.cfg.ablation.variants,
            "num_samples": len(questions),
            "use_judge": judge is not None,
        },
    )
    metrics = {}
    for variant, summary in results.items():
        metrics.update(flat_metrics(summary, prefix=f"{VARIANTS[variant][1]}/"))
    tracker.log(metrics, step=0)
    tracker.summary(metrics)
    tracker.table("ablation_comparison", columns, rows)
    tracker.artifact(path, name=f"ablation-summary-{ctx.run.id}", kind="ablation")
    return {"summary": path, "table": ctx.run.path / "ablation_table.txt"}
